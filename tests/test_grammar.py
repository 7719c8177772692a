"""Counted nouns: "1 feed", "2 stories", "3 days", in every message that counts."""

from __future__ import annotations

import pytest

from aggregator.grammar import counted


@pytest.mark.parametrize(
    ("number", "noun", "plural", "expected"),
    [
        (1, "feed", None, "1 feed"),
        (0, "feed", None, "0 feeds"),
        (2, "story", None, "2 stories"),
        (1, "new entry", None, "1 new entry"),
        (5, "new entry", None, "5 new entries"),
        (3, "day", None, "3 days"),  # a vowel before the y: just an s
        (2, "copy", "copies", "2 copies"),
        (2, "byte sequence", None, "2 byte sequences"),
        (2, "child", "children", "2 children"),
    ],
)
def test_counted(number: int, noun: str, plural: str | None, expected: str) -> None:
    assert counted(number, noun, plural) == expected
