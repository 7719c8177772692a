"""Text normalisation for comparison only (the original text is what is shown).

`normalise` is the form keywords, copies and stories are compared in: Unicode NFKC,
Simplified script, case-folded. The script conversion is OpenCC's ``tw2sp`` (Taiwan
Traditional -> Simplified, with phrases: 人工智慧 -> 人工智能, 軟體 -> 软件); plain ``t2s``
maps characters only. ``bench/cluster_quality.py --opencc`` measures the configurations
on the fixture corpus (README "Deduplication" has the figures).

`comparison_text` also drops credit and copyright lines (a republisher's "来源：…", "责任
编辑：…", "© 2025 …", "Reporting by …"), which say who, not what.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from functools import cache
from typing import TypeVar

import opencc

#: The OpenCC configuration used to fold Traditional script into Simplified.
OPENCC_CONFIG = "tw2sp"

# A short paragraph that names a source, an editor, a reporter or a copyright holder: it
# opens with one of these, or contains one of `_CREDIT_WORDS` (plain substring tests: a
# regular expression searching for them at every position cost more than OpenCC).
_CREDIT_START = re.compile(
    r"[\s(（\[【]*(?:来源|來源|转载|轉載|转自|轉自|原标题|原文|本文来自|本文转自|作者|编辑|编者|责任编辑|"
    r"责编|记者|通讯员|校对|审核|监制|图片来源|图源|题图|摄影|"
    r"(?:source|credits?|photo|image)\s*(?:[:：]|by\b)|reporting by|writing by|editing by|"
    r"additional reporting|originally published|"
    r"this (?:article|story) (?:was|first)|republished)",
    re.IGNORECASE,
)
_CREDIT_WORDS = (
    "©", "(c)", "copyright", "版权", "版權", "all rights reserved", "未经授权", "不得转载",
    "禁止转载", "免责声明", "点击关注", "关注我们", "扫码", "二维码", "订阅", "subscribe",
)  # fmt: skip
#: Paragraphs longer than this are content even when they mention a source.
CREDIT_MAX_CHARS = 120


@cache
def _converter(config: str) -> opencc.OpenCC:
    return opencc.OpenCC(config)


#: A Chinese (Han) character, in the ranges words and tokens are told apart by.
HAN = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")


def has_han(text: str) -> bool:
    """True when `text` holds a `HAN` character."""
    # isascii() is a flag CPython keeps on the string: it spares English text a regular
    # expression scan of its whole length.
    return not text.isascii() and HAN.search(text) is not None


_V = TypeVar("_V")


class Memo(dict[str, _V]):
    """`function(key)`, computed once per distinct key (a word, a token).

    Bounded: past `limit` keys new results are returned but not kept, so a hostile feed of
    random words cannot grow it.
    """

    def __init__(self, function: Callable[[str], _V], limit: int = 1 << 17) -> None:
        super().__init__()
        self._function = function
        self._limit = limit

    def __missing__(self, key: str) -> _V:
        value = self._function(key)
        if len(self) < self._limit:
            self[key] = value
        return value


#: Characters OpenCC may change (CJK ideographs, compatibility ideographs, CJK punctuation).
_HAN = re.compile(r"[\u3000-\u303f\u3400-\u9fff\uf900-\ufaff\U00020000-\U0003134f]")


def to_simplified(text: str, config: str | None = None) -> str:
    """Traditional -> Simplified Chinese (characters, and phrases for ``tw2sp``/``hk2s``)."""
    # Nothing to convert (most non-Chinese text): spare OpenCC (and ASCII the scan).
    if text.isascii() or not _HAN.search(text):
        return text
    return str(_converter(config or OPENCC_CONFIG).convert(text))


def normalise(text: str, config: str | None = None) -> str:
    """NFKC, Simplified script, case-folded: the form keywords and copies are compared in."""
    return to_simplified(unicodedata.normalize("NFKC", text), config).casefold()


def is_credit(paragraph: str) -> bool:
    """True for a short paragraph that is a credit or copyright line (normalised input)."""
    return _is_credit_line(paragraph.strip(), folded=False)


def _is_credit_line(stripped: str, *, folded: bool) -> bool:
    """`is_credit` of a stripped paragraph (`folded`: it is case-folded already)."""
    if len(stripped) > CREDIT_MAX_CHARS:
        return False
    if _CREDIT_START.match(stripped):
        return True
    text = stripped if folded else stripped.casefold()
    return any(word in text for word in _CREDIT_WORDS)


def comparison_text(text: str, config: str | None = None) -> str:
    """The normalised body without credit/copyright paragraphs, spaces collapsed."""
    return " ".join(comparison_words(text, config))  # runs of white space -> one space


def comparison_words(text: str, config: str | None = None) -> list[str]:
    """`comparison_text` cut at its spaces (the chunks `minhash.tokens` cuts it into)."""
    normalised = normalise(text, config)
    kept = []
    dropped = False
    for paragraph in normalised.split("\n"):
        stripped = paragraph.strip()
        if not stripped:
            continue  # holds no words
        # `is_credit`, without its casefold: `normalised` is case-folded already, and case
        # folding is idempotent (tests/test_dedup.py checks every code point).
        if _is_credit_line(stripped, folded=True):
            dropped = True
        else:
            kept.append(paragraph)
    # With no credit line dropped, the words are the whole text's (blank lines hold none).
    return (" ".join(kept) if dropped else normalised).split()
