"""Counted nouns: "1 feed", "2 stories", "3 days", in every message that counts."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from aggregator.config import load_config
from aggregator.core import make_aggregator
from aggregator.grammar import counted
from tests.conftest import write_config


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


def test_grouping_one_entry_logs_it_in_the_singular(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "one").mkdir()
    (tmp_path / "one" / "a.md").write_text("# Summit opens\n\nThe summit opened.\n", "utf-8")
    config = load_config(write_config(tmp_path, '[[feeds]]\nurl = "one"\nname = "One"\n'))
    with make_aggregator(config) as agg, caplog.at_level(logging.DEBUG, logger="aggregator"):
        agg.poll()
    assert "grouped 1 entry into articles and stories" in caplog.text
