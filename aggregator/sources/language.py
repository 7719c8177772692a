"""Languages: tags in canonical casing, and a cheap guess of a text's language (OpenCC for
Chinese scripts, function words for Latin-script languages: `wordlists`)."""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from typing import Any, NamedTuple

from aggregator.wordlists import latin_language

__all__ = ["base_language", "detect_language", "normalize_language"]


def base_language(tag: str) -> str:
    """A language tag's language, without its script or region: "ja" of "ja-JP", "zh" of
    "zh-Hant"."""
    return tag.split("-")[0].lower()


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


#: Runs of Han characters, and of Latin letters, below: counted by their lengths, a text
#: in that script gives a list of a few hundred runs rather than of thousands of characters
#: (2-5x cheaper on 3,000 characters of Chinese or English; the same counts).
_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")
_KANA = re.compile(r"[\u3040-\u30ff\u31f0-\u31ff]")
_HANGUL = re.compile(r"[\u1100-\u11ff\u3130-\u318f\uac00-\ud7af]")
_LATIN = re.compile(r"[A-Za-z\u00c0-\u024f]+")
#: A word of a Latin-script text, as `wordlists.latin_language` reads it: a run of letters
#: (the sample is NFC, so an accent is part of its letter; apostrophes and hyphens end a
#: word: "l'Élysée" gives "l" and "élysée").
_WORD = re.compile(r"[^\W\d_]+")


class _Script(NamedTuple):
    """A script whose letters tell the language of a text mostly written in it."""

    letters: re.Pattern[str]
    #: (what only that language writes in the script, its tag): the first found decides;
    #: else `language`, the script's one language in the news (None: no guess).
    told: tuple[tuple[re.Pattern[str], str], ...]
    language: str | None


def _any(letters: str) -> re.Pattern[str]:
    return re.compile(f"[{letters}]", re.IGNORECASE)


#: Scripts of one language (in the news): Greek, Gurmukhi, Gujarati, Tamil, Telugu, Kannada,
#: Malayalam, Sinhala, Thai, Lao, Burmese, Khmer, Georgian, Armenian.
_ONE_LANGUAGE = (
    ("\u0370-\u03ff\u1f00-\u1fff", "el"), ("\u0a00-\u0a7f", "pa"), ("\u0a80-\u0aff", "gu"),
    ("\u0b80-\u0bff", "ta"), ("\u0c00-\u0c7f", "te"), ("\u0c80-\u0cff", "kn"),
    ("\u0d00-\u0d7f", "ml"), ("\u0d80-\u0dff", "si"), ("\u0e00-\u0e7f", "th"),
    ("\u0e80-\u0eff", "lo"), ("\u1000-\u109f", "my"), ("\u1780-\u17ff", "km"),
    ("\u10a0-\u10ff", "ka"), ("\u0530-\u058f", "hy"),
)  # fmt: skip
_SCRIPTS = (
    # Kazakh, Belarusian, Ukrainian, Macedonian and Serbian letters; Russian's ы э ё (which
    # Bulgarian lacks); Bulgarian's ъ, but Russian's (объявил, съезд) before е ё ю я.
    _Script(
        re.compile(r"[\u0400-\u052f]"),
        (
            (_any("әғқңөұһ"), "kk"),
            (_any("ў"), "be"),
            (_any("іїєґ"), "uk"),
            (_any("ѓќѕ"), "mk"),
            (_any("ђћџљњј"), "sr"),
            (_any("ыэё"), "ru"),
            (re.compile("ъ(?![еёюя])", re.IGNORECASE), "bg"),
        ),
        "ru",
    ),
    # Urdu's letters, then Persian's (Urdu writes these too), then Arabic's own ة ي ى.
    _Script(
        re.compile(r"[\u0600-\u06ff\u0750-\u077f\ufb50-\ufdff\ufe70-\ufefc]"),
        ((_any("ٹڈڑںےۓ"), "ur"), (_any("پچژگکی"), "fa"), (_any("ةيى"), "ar")),
        None,
    ),
    _Script(re.compile(r"[\u0590-\u05ff\ufb1d-\ufb4f]"), ((_any("װױײ"), "yi"),), "he"),
    # Marathi's ळ; Hindi's commonest words ("is", "are", "in", "and"), not Nepali's.
    _Script(
        re.compile(r"[\u0900-\u097f]"),
        ((_any("ळ"), "mr"), (re.compile(r"(?<!\S)(?:है|हैं|में|और)(?![^\s।,.!?])"), "hi")),
        None,
    ),
    _Script(re.compile(r"[\u0980-\u09ff]"), ((_any("ৰৱ"), "as"),), "bn"),
    *(_Script(re.compile(f"[{letters}]"), (), language) for letters, language in _ONE_LANGUAGE),
)
#: A letter of any of `_SCRIPTS`: one scan counts them all (one class of all their ranges).
_OTHER = re.compile("[" + "".join(s.letters.pattern[1:-1] for s in _SCRIPTS) + "]")
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
        for text mostly in another script the language its letters tell ("ru", "uk",
        "ar", "fa", "he", "hi", "el", "th", …: `_SCRIPTS`); or None when there is too
        little to go by.
    """
    sample = unicodedata.normalize("NFC", text[:_SAMPLE])
    chars = "".join(_HAN.findall(sample))  # the Han characters
    kana = len(_KANA.findall(sample))
    hangul = len(_HANGUL.findall(sample))
    latin = sum(map(len, _LATIN.findall(sample)))
    other = len(_OTHER.findall(sample))
    total = len(chars) + kana + hangul + latin + other
    if total < 2:
        return None
    if other >= 0.5 * total:
        return _told(sample)
    if kana and kana >= 0.15 * (kana + len(chars)) and kana + len(chars) >= 0.3 * total:
        return "ja"
    if hangul >= 0.3 * total and hangul >= len(chars):
        return "ko"
    if len(chars) >= 0.3 * total:
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


#: A language's own letters must make this share of its script's letters in the sample (at
#: least one): one Kazakh word quoted in a Russian report, or a foreign name spelt with گ in
#: Arabic, does not make the text Kazakh or Persian.
TELLING_SHARE = 0.005


def _told(sample: str) -> str | None:
    """The language of a text mostly written in one of `_SCRIPTS`, if its letters tell it."""
    # The opening's letters tell the script (enough, and cheap); a text opening on anything
    # else (links, Latin names) is told by all of the sample's.
    letters = "".join(_OTHER.findall(sample, 0, 600)) or "".join(_OTHER.findall(sample))
    counts = [len(s.letters.findall(letters)) for s in _SCRIPTS]
    most = max(counts)
    if not most:
        return None
    script = _SCRIPTS[counts.index(most)]
    written = len(script.letters.findall(sample))
    for own, language in script.told:
        if len(own.findall(sample)) >= max(1.0, TELLING_SHARE * written):
            return language
    return script.language
