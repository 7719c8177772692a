"""dedup.text.nfkc: exactly unicodedata's NFKC, faster on Chinese text (issue 14's cost)."""

from __future__ import annotations

import unicodedata
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from aggregator.dedup.text import _compatibility, nfkc, normalise

ROOT = Path(__file__).resolve().parent.parent

#: Characters that combine with, or compose after, what comes before them: marks of several
#: combining classes, Hangul vowel and final jamo, the kana voiced sound marks (combining and
#: half-width), a variation selector, a zero-width joiner.
NEIGHBOURS = [
    "\u0301", "\u0308", "\u0327", "\u0323", "\u05b0", "\u0650", "\u093c", "\u1161", "\u11a8",
    "\u3099", "\u309a", "\uff9e", "\uff9f", "\ufe0f", "\u200d", "\u0345", "A", "a", "\u1100",
    "\u30ab", "\uff76", "\u4e00", "\u3000", "\uff0c", " ", "\n",
]  # fmt: skip


def test_every_replaced_character_beside_anything_that_combines() -> None:
    pattern, forms = _compatibility()
    assert len(forms) > 1000 and pattern.fullmatch("，") and forms["，"] == ","
    for char in forms:
        for other in NEIGHBOURS:
            for text in (char + other, other + char, other + char + other, char * 2 + other):
                assert nfkc(text) == unicodedata.normalize("NFKC", text), repr(text)


_ALPHABET = st.sampled_from(
    sorted(_compatibility()[1])
    + NEIGHBOURS
    + [chr(c) for c in range(0x4E00, 0x4E40)]  # ideographs
    + [chr(c) for c in range(0xAC00, 0xAC10)]  # Hangul syllables
    + [chr(c) for c in range(0x3131, 0x3140)]  # compatibility jamo
    + [chr(c) for c in range(0xFF61, 0xFFA0)]  # half-width katakana (kept by the filter)
    + ["é", "ﬁ", "Ⅻ", "㍿", "①", "…", "‥", "™", "Å", "Ω"]
)


@settings(max_examples=3000, deadline=None)
@given(st.lists(_ALPHABET | st.characters(), max_size=40).map("".join))
def test_nfkc_is_unicodedatas(text: str) -> None:
    assert nfkc(text) == unicodedata.normalize("NFKC", text)


def test_the_seeds_and_every_code_point_alone() -> None:
    for path in sorted((ROOT / "seeds").iterdir()):
        text = path.read_text(encoding="utf-8", errors="replace")
        assert nfkc(text) == unicodedata.normalize("NFKC", text)
        assert normalise(text) == normalise(unicodedata.normalize("NFKC", text))
    for code in range(0x110000):
        if 0xD800 <= code < 0xE000:
            continue  # surrogates
        char = chr(code)
        assert nfkc(char) == unicodedata.normalize("NFKC", char), hex(code)
