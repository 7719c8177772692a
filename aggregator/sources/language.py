"""Languages: tags in canonical casing, and a cheap guess of a text's language (OpenCC for
Chinese scripts, function words for Latin-script languages: `wordlists`)."""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from typing import Any

from aggregator.wordlists import latin_language

__all__ = ["detect_language", "normalize_language"]


def normalize_language(tag: str | None) -> str | None:
    """Canonical casing for a language tag: "zh-cn" -> "zh-CN", "ZH_hant" -> "zh-Hant".

    Args:
        tag: A BCP 47-ish language tag, or None.

    Returns:
        The tag with subtags cased as BCP 47 recommends, or None if blank.
    """
    if not tag or not tag.strip():
        return None
    parts = [p for p in re.split(r"[-_]", tag.strip()) if p]
    out = [parts[0].lower()]
    for n, part in enumerate(parts[1:], 1):
        if len(part) == 1:  # a singleton: extensions and private use ("x-…") stay lower
            out.extend(p.lower() for p in parts[n:])
            break
        if len(part) == 4 and part.isalpha():
            out.append(part.title())  # script
        elif len(part) == 2 and part.isalpha():
            out.append(part.upper())  # region
        else:
            out.append(part.lower())  # extlang, UN M.49 region digits, variant
    return "-".join(out)


@lru_cache(maxsize=1)
def _t2s() -> Any:
    import opencc  # building the converter loads dictionaries: do it once, on first use

    return opencc.OpenCC("t2s")


_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_KANA = re.compile(r"[\u3040-\u30ff\u31f0-\u31ff]")
_HANGUL = re.compile(r"[\u1100-\u11ff\u3130-\u318f\uac00-\ud7af]")
_LATIN = re.compile(r"[A-Za-z\u00c0-\u024f]")
#: A word of a Latin-script text, as `wordlists.latin_language` reads it: a run of letters
#: (the sample is NFC, so an accent is part of its letter; apostrophes and hyphens end a
#: word: "l'Élysée" gives "l" and "élysée").
_WORD = re.compile(r"[^\W\d_]+")
_SAMPLE = 3000  # characters looked at: enough to decide, cheap on long articles
_LATIN_SAMPLE = 600  # of which the words of a Latin-script text: its title and opening


def detect_language(text: str) -> str | None:
    """Guess a text's language, cheaply, among those this project meets.

    Chinese is told apart as Traditional or Simplified by converting it with OpenCC
    (Traditional to Simplified): if that changes a meaningful share of the Han
    characters, the text is Traditional.

    Args:
        text: Plain text.

    Returns:
        "zh-Hans", "zh-Hant", "ja", "ko"; for mostly Latin-script text the language its
        function words tell ("fr", "es", "de", …: `wordlists.latin_language`), else "en";
        or None when there is too little to go by.
    """
    sample = unicodedata.normalize("NFC", text[:_SAMPLE])
    han = _HAN.findall(sample)
    kana = len(_KANA.findall(sample))
    hangul = len(_HANGUL.findall(sample))
    latin = len(_LATIN.findall(sample))
    total = len(han) + kana + hangul + latin
    if total < 2:
        return None
    if kana and kana >= 0.15 * (kana + len(han)) and kana + len(han) >= 0.3 * total:
        return "ja"
    if hangul >= 0.3 * total and hangul >= len(han):
        return "ko"
    if len(han) >= 0.3 * total:
        chars = "".join(han)
        converted = _t2s().convert(chars)
        if not isinstance(converted, str) or len(converted) != len(chars):
            changed = sum(1 for c in chars if c not in converted)
        else:
            changed = sum(1 for a, b in zip(chars, converted, strict=True) if a != b)
        return "zh-Hant" if changed >= max(1, 0.05 * len(chars)) else "zh-Hans"
    if latin >= 0.6 * total and latin >= 3:
        # The words of the opening: ~100 are plenty to tell, and cheap.
        return latin_language(_WORD.findall(sample[:_LATIN_SAMPLE].casefold())) or "en"
    return None
