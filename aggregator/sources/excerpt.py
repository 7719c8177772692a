"""Excerpts: the start of a text cut at a sentence end (an entry's summary, a missing title).

Not the digest's story teaser (`digest.summary.summarize`): this cuts by characters, for
storage; that picks whole sentences by display width, for the page.
"""

from __future__ import annotations

import re

__all__ = ["SUMMARY_LENGTH", "excerpt"]

SUMMARY_LENGTH = 200

_SENTENCE_ENDS = "。！？!?…"  # and "." before a space
_CLOSERS = "”’\"'」』）)】"
_CJK_BEFORE_BREAK = re.compile(r"(?<=[\u2e80-\u9fff\uf900-\ufaff\uff00-\uffef])[ \t]*\n\s*")


def excerpt(text: str, limit: int = SUMMARY_LENGTH) -> str:
    """A short plain-text summary: the start of `text`, cut at a sentence end if possible.

    Args:
        text: Plain text (paragraphs are joined with a space).
        limit: The most characters to keep (an ellipsis may be added).

    Returns:
        At most `limit` characters (plus "…" when cut mid-sentence).
    """
    # The flattened start of a text is the start of the flattened text: once it is longer
    # than the limit, the rest of the text cannot change the summary.
    flat = _flatten(text[: 4 * limit])
    if len(flat) <= limit and len(text) > 4 * limit:
        flat = _flatten(text)
    if len(flat) <= limit:
        return flat
    best = _sentence_end(flat[: limit + 1], limit)
    if best >= limit * 0.4:
        return flat[:best]
    space = flat.rfind(" ", 0, limit)
    if space >= limit * 0.6:
        return flat[:space].rstrip() + "…"
    return flat[:limit].rstrip() + "…"


def _flatten(text: str) -> str:
    # Chinese and Japanese paragraphs join without a space; others with one.
    return " ".join(_CJK_BEFORE_BREAK.sub("", text).split())


def _sentence_end(cut: str, limit: int) -> int:
    """Where the last sentence ending before `limit` ends, its closing quotes included; or -1.

    A "." ends a sentence before a space only (`cut` holds the character after `limit`).
    """
    end = max(cut.rfind(". ", 0, limit + 1), *(cut.rfind(c, 0, limit) for c in _SENTENCE_ENDS))
    if end < 0:
        return -1
    end += 1
    while end < limit and cut[end] in _CLOSERS:
        end += 1
    return end
