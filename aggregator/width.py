"""How many columns text takes on a terminal or in the monospaced text digest (wcwidth)."""

from __future__ import annotations

from wcwidth import wcswidth, wcwidth


def char_width(ch: str) -> int:
    """Columns one character takes: 2 for a wide (CJK) one, 0 for a combining mark, a
    zero-width character or a control character, else 1."""
    return max(wcwidth(ch), 0)


def display_width(text: str) -> int:
    """Columns `text` takes: the sum of its characters' `char_width`, with emoji sequences
    (a skin tone, a ZWJ sequence) as wcwidth measures them."""
    width = wcswidth(text)
    # wcswidth gives up (-1) on a control character; those take no column.
    return width if width >= 0 else sum(map(char_width, text))


def fit(text: str, width: int) -> str:
    """The longest start of `text` that takes at most `width` columns (`char_width`)."""
    used = 0
    for i, ch in enumerate(text):
        used += char_width(ch)
        if used > width:
            return text[:i]
    return text
