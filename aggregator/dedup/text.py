"""Text normalisation for comparison only (the original text is what is shown)."""

from __future__ import annotations

import unicodedata
from functools import cache

import opencc


@cache
def _to_simplified() -> opencc.OpenCC:
    # tw2sp maps Taiwan vocabulary too (人工智慧 -> 人工智能, 軟體 -> 软件);
    # t2s maps characters only.
    return opencc.OpenCC("tw2sp")


def to_simplified(text: str) -> str:
    """Traditional -> Simplified Chinese (characters and Taiwan phrases); other text unchanged."""
    return str(_to_simplified().convert(text)) if text else text


def normalise(text: str) -> str:
    """NFKC, Simplified script, case-folded: the form keywords and copies are compared in."""
    return to_simplified(unicodedata.normalize("NFKC", text)).casefold()
