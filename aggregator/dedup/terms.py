"""Words for story clustering: jieba for Chinese, a simple tokenizer for other languages.

Other languages: runs of letters of the scripts that put spaces between words (Latin,
Cyrillic, Greek, Hangul, Arabic, Hebrew, Devanagari and the other Indic scripts, ...),
and in Japanese Katakana runs (names, loanwords) and pairs of kanji (compounds: jieba's
Chinese dictionary would cut Japanese into single characters).

A story is recognised by the words of its titles and leads, so an entry's terms are its
title's words (counted `TITLE_TERM_WEIGHT` times: a headline names the event) plus the words of
the first `LEAD_CHARS` characters of its body (news puts the event first; reading the whole
body would cost jieba ~10x more for little gain). Words are taken from normalised text, so
Traditional and Simplified spellings are one term. Stop words (English's, and another
Latin-script language's in a text that reads as that language: `wordlists`),
one-character Chinese words and bare numbers are dropped: they say nothing about which
event it is.

So that reports of one event in English and Chinese share terms, `entry_terms` (with
`CROSS_LANGUAGE`) counts a Chinese word as its English word where CC-CEDICT has one (峰会
as "summit", 马克龙 as "macron"), and amounts as one term in both languages (1090亿欧元 and
€109 billion as ``amt:109e9``): see `crosslang`. `words` (topics' words) stays as written.
"""

from __future__ import annotations

import math
import re
import unicodedata
from array import array
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from functools import cache
from itertools import islice
from pathlib import Path
from typing import cast

import numpy as np
import numpy.typing as npt

from aggregator import tablecache, wordlists
from aggregator.dedup import crosslang
from aggregator.dedup.text import HAN, Memo, has_han
from aggregator.wordlists import (
    ENGLISH,
    frequencies,
    frequency_file,
    function_words,
    package_folder,
    read_frequencies,
)
from aggregator.wordtables import WordTable

TITLE_TERM_WEIGHT = 2
LEAD_CHARS = 500


def _letter_class(*blocks: tuple[int, int]) -> str:
    """A regular expression class's body: the letters, marks and digits of the blocks (not
    their punctuation: Arabic's "،", Devanagari's "।", Katakana's "・")."""
    ranges: list[list[int]] = []
    for first, last in blocks:
        for point in range(first, last + 1):
            if unicodedata.category(chr(point))[0] not in "LMN":
                continue
            if ranges and ranges[-1][1] == point - 1:
                ranges[-1][1] = point
            else:
                ranges.append([point, point])
    return "".join(
        re.escape(chr(a)) if a == b else f"{re.escape(chr(a))}-{re.escape(chr(b))}"
        for a, b in ranges
    )


#: The letters of scripts that put spaces between words (besides Han, which jieba cuts):
#: Latin (Vietnamese's too), Greek, Cyrillic, Armenian, Hebrew, Arabic, the Indic scripts,
#: Georgian, Hangul, and Katakana (names and loanwords in Japanese: エヌビディア); and Thai,
#: which does not (a run of it is one word). With their combining marks (Devanagari's vowel
#: signs, Arabic's harakat), which ``\w`` lacks.
_LETTERS = _letter_class(
    (0x61, 0x7A), (0xC0, 0x24F), (0x370, 0x3FF), (0x400, 0x52F), (0x530, 0x58F),
    (0x590, 0x5FF), (0x600, 0x6FF), (0x750, 0x77F), (0x900, 0xDFF), (0xE00, 0xE7F),
    (0x10A0, 0x10FF), (0x1100, 0x11FF), (0x1E00, 0x1EFF), (0x3130, 0x318F), (0xAC00, 0xD7AF),
    (0x30A1, 0x30FA), (0x30FC, 0x30FF), (0x300, 0x36F),
)  # fmt: skip
#: Marks within a word: Hebrew's geresh and gershayim (צה״ל), Armenian's emphasis and
#: question marks (ինչո՞ւ), Devanagari's abbreviation sign (डॉ॰), Arabic's decimal and
#: thousands separators (٣٫٥), and the (non-)joiners of Persian and Indic words (می‌خواهم).
_WITHIN = "\u05f3\u05f4\u055b-\u055f\u0970\u066b\u066c\u200c\u200d"
# A decimal number ("4.5", "97.4": rates and sums name an event) or a word; hyphens split
# words ("Musk-led" -> musk, led). Combining marks (U+0300-036F) may follow a letter:
# "İstanbul" case-folds to "i̇stanbul".
_LATIN_WORD = re.compile(
    rf"\d+(?:\.\d+)+|[0-9{_LETTERS}][0-9_'{_LETTERS}{_WITHIN}]*(?<![{_WITHIN}])"
)
#: French and Italian elisions: "l'action" is "action", "dell'anno" is "anno".
_ELISION = re.compile(r"^(?:[ldjmntsc]|qu|dell|all|dall|nell|sull)'(?=\w)")
_DIGITS = re.compile(r"^[\d,%\-']+$")
_DECIMAL = re.compile(r"^\d+\.\d+$")

STOP_WORDS: frozenset[str] = ENGLISH | frozenset(
    """
我们 你们 他们 她们 它们 自己 这个 那个 这些 那些 这样 那样 这种 一个 一些 一种 没有 不是 就是 还是
可以 可能 已经 正在 进行 表示 认为 指出 称为 以及 因为 所以 但是 而且 如果 虽然 然而 并且 或者 以来
目前 当前 此次 这次 此前 之后 之前 其中 对于 关于 通过 由于 根据 作为 成为 有关 相关 方面 问题
今天 今日 昨天 昨日 明天 日前 近日 当天 当地 时间 日电 报道 记者 消息 新闻 编辑 来源 评论 文章
全文 点击 视频 图片 网友 发布 表明 显示 提到 称 的 了 在 是 和 与 及 也 都 将 被 对 从 把 让 向
独家 快讯 突发 直播 专访 图集 综述 深度 实录 组图
""".split()
)


#: Pseudo-documents of background knowledge blended into the corpus's word counts.
PRIOR_DOCS = 1_000
#: The same for the words of articles' story vectors (`vectors.article_vectors`), where the
#: background keeps at least half the say however large the corpus grows (`idf_many`'s
#: `capped`). A stream's own counts are inflated by its stories: a story of 300 headlines
#: makes its own names look common, and a subject that keeps coming back loses the words
#: its reports share. Measured on every labelled set (docs/stories.md, eleventh session):
#: 1,000 -> 30,000 raised story F1 on real headlines (dense 0.745 -> 0.767, 30-day sparse
#: 0.585 -> 0.624, five months 0.500 -> 0.548, read in one pass) and on the bilingual set,
#: and changed nothing on the fixture corpus; 10,000 gained about half of that, and more
#: than 30,000 (up to the background alone) no more.
STORY_PRIOR_DOCS = 30_000
#: Words in the title and lead a story is recognised by: turns a word's frequency per
#: token (wordfreq) into the share of such texts containing it.
TERMS_PER_TEXT = 40
#: The IDF of a word no table knows (names, new coinages: "DeepSeek"): rare, as the
#: median word of jieba's IDF table (0.42's; a test compares). A constant, so that a text
#: without Chinese never loads that table (270k words, ~0.5-1.4 s).
UNKNOWN_IDF = 11.9547675029


class _Table:
    """A read-only word -> float table held compactly: the words of up to `SHORT`
    characters sorted in a numpy array of fixed-width strings, found by binary search, their
    values beside them; longer words (2% of jieba's) in a dict. jieba's IDF table of 270k
    words takes ~6 MiB instead of ~86 MiB as a dict, in this process and in each feature
    worker; a lookup costs a few µs, once per word (`_SHARE` keeps the results)."""

    SHORT = 4

    def __init__(self, words: Sequence[str], values: Sequence[float]) -> None:
        # The last value of a word listed twice wins, as in a dict built from the pairs.
        keys = np.array(words, dtype=f"<U{max(map(len, words), default=1)}")
        order = np.argsort(keys, kind="stable")
        keys, numbers = keys[order], np.array(values, dtype=np.float64)[order]
        last = np.append(keys[1:] != keys[:-1], True)
        keys, numbers = keys[last], numbers[last]
        short = np.char.str_len(keys) <= self.SHORT
        self._words = keys[short].astype(f"<U{self.SHORT}")
        self._values = numbers[short]
        self._long = dict(zip(keys[~short].tolist(), numbers[~short].tolist(), strict=True))
        self.median = float(np.median(numbers)) if len(numbers) else 0.0

    def parts(self) -> tuple[bytes, bytes, dict[str, float], float]:
        """What the table holds, as `marshal` keeps it (`tablecache`): `of_parts`'s."""
        return self._words.tobytes(), self._values.tobytes(), self._long, self.median

    @classmethod
    def of_parts(cls, parts: tuple[bytes, bytes, dict[str, float], float]) -> _Table:
        """The table whose `parts` these are."""
        words, values, long, median = parts
        table = cls.__new__(cls)
        table._words = np.frombuffer(words, dtype=f"<U{cls.SHORT}")
        table._values = np.frombuffer(values, dtype=np.float64)
        table._long, table.median = long, median
        return table

    def get(self, word: str, default: float) -> float:
        if len(word) > self.SHORT:
            return float(self._long.get(word, default))
        at = int(np.searchsorted(self._words, word))
        if at < len(self._words) and self._words[at] == word:
            return float(self._values[at])
        return default

    def characters(self) -> list[tuple[str, float]]:
        """The one-character words and their values."""
        one = np.char.str_len(self._words) == 1
        return list(zip(self._words[one].tolist(), self._values[one].tolist(), strict=True))


@cache
def _prior_table() -> tuple[_Table, float]:
    """jieba's IDF table (from a large Chinese corpus) and its median, loaded once (from
    its `tablecache` copy when one was kept: ~5 ms instead of ~0.3 s)."""
    # Read the file jieba.analyse ships rather than importing jieba.analyse, which leaves
    # the file open at import time; found without importing jieba (~60 ms).
    folder = package_folder("jieba")
    if folder is None:
        raise ModuleNotFoundError("No module named 'jieba'", name="jieba")
    path = folder / "analyse" / "idf.txt"
    parts = tablecache.table(
        "jieba-idf",
        f"{_Table.SHORT}",
        [path, Path(__file__)],  # (this module builds it)
        lambda: _read_prior_table(path).parts(),
        _table_parts,
    )
    table = _Table.of_parts(parts)
    return table, table.median


def _table_parts(value: object) -> bool:
    """Whether a kept value has `_Table.parts`'s shape (`tablecache`)."""
    return (
        isinstance(value, tuple)
        and len(value) == 4
        and isinstance(value[0], bytes)
        and isinstance(value[1], bytes)
        and len(value[1]) % 8 == 0
        and len(value[0]) == len(value[1]) // 8 * 4 * _Table.SHORT
        and isinstance(value[2], dict)
        and isinstance(value[3], float)
    )


def _read_prior_table(path: Path) -> _Table:
    """jieba's IDF table, read from its file."""
    text = path.read_text(encoding="utf-8")
    # "word value" lines whose words hold no space: one split of the whole file reads them
    # ~2x faster than line by line.
    fields = text.split()
    lines = text.count("\n") + (not text.endswith("\n"))
    if len(fields) == 2 * lines:
        words, values = fields[::2], list(map(float, fields[1::2]))
    else:  # a line that is not one word and one value: read line by line
        rows = [line.rpartition(" ") for line in text.splitlines()]
        words = [word for word, _, _ in rows if word]
        values = [float(value) for word, _, value in rows if word]
    del text, fields
    return _Table(words, values)


#: wordfreq's languages by the script of a word's first letter (first code point, last
#: code point, languages). Not for Latin letters: there English decides, as a word common
#: in another language may be a name in the news ("ai" is Italian for "to the").
_SCRIPT_LANGUAGES: tuple[tuple[int, int, tuple[str, ...]], ...] = (
    (0x370, 0x3FF, ("el",)),
    (0x400, 0x52F, ("ru", "uk", "bg")),
    (0x590, 0x5FF, ("he",)),
    (0x600, 0x77F, ("ar", "fa", "ur")),
    (0x900, 0x97F, ("hi",)),
    (0x980, 0x9FF, ("bn",)),
    (0xB80, 0xBFF, ("ta",)),
    (0x30A0, 0x30FF, ("ja",)),
    (0xAC00, 0xD7AF, ("ko",)),
)


#: Latin-script languages whose frequencies weigh a word English does not know: the news
#: languages of Western Europe and Latin America ("président", "gobierno", "Macron").
LATIN_PRIORS = ("fr", "es", "pt", "it", "de", "nl")


@cache
def _latin_table() -> dict[str, float]:
    """Word -> its highest frequency in `LATIN_PRIORS`, for the words English's list lacks
    (the six lists read once, ~100-150 ms, or its `tablecache` copy, ~25 ms; ~12 MiB kept)."""
    files = [frequency_file(language) for language in ("en", *LATIN_PRIORS)]
    sources = [f for f in files if f is not None]
    if len(sources) < len(files):  # (wordfreq's own reading: nothing to key a copy by)
        return _read_latin_table()
    return tablecache.table(
        "latin-frequencies",
        " ".join(LATIN_PRIORS),
        [*sources, Path(__file__), Path(wordlists.__file__)],  # (the modules that build it)
        _read_latin_table,
        lambda value: isinstance(value, dict),
    )


def _read_latin_table() -> dict[str, float]:
    """`_latin_table`, read from the word lists."""
    english = frequencies("en")
    merged: dict[str, float] = {}
    for language in LATIN_PRIORS:
        for word, frequency in read_frequencies(language).items():
            if word not in english and frequency > merged.get(word, 0.0):
                merged[word] = frequency
    return merged


def _is_latin(term: str) -> bool:
    """Whether the term's first letter is a Latin one (Basic, Latin-1, Extended, Additional)."""
    first = term[0]
    return first.isalpha() and (first < "\u0250" or "\u1e00" <= first <= "\u1eff")


def _latin_frequency(term: str) -> float | None:
    """The term's frequency in `LATIN_PRIORS`, or its plural's: the S-stemmer (`_singular`)
    took "elecciones" to "eleccione", a word no list holds."""
    table = _latin_table()
    return table.get(term) or table.get(term + "s")


def _foreign_frequency(term: str) -> float | None:
    """The word's highest frequency in the languages of its script (not Latin)."""
    point = ord(term[0])
    for first, last, languages in _SCRIPT_LANGUAGES:
        if first <= point <= last:
            found = [f for lang in languages if (f := frequencies(lang).get(term))]
            return max(found) if found else None
    return None


def prior_share(term: str) -> float:
    """The share of documents a word is expected in before the corpus has seen it.

    Chinese words take it from jieba's IDF table (``exp(-idf)``); Latin-script words from
    their frequency in English, or, for a word English's list lacks, in French, Spanish,
    Portuguese, Italian, German or Dutch (`LATIN_PRIORS`: "gouvernement" and "presidente"
    are common words there, not names); words of other scripts in the languages written
    in them (wordfreq: Russian, Ukrainian, Bulgarian for Cyrillic; Arabic, Persian, Urdu;
    Korean, Hindi, Hebrew, Greek, Bengali, Tamil, Japanese Katakana). A text of `TERMS_PER_TEXT`
    words contains a word of frequency p with probability 1 - (1 - p)^TERMS_PER_TEXT, so
    that "Nvidia" weighs more than "market" — and 엔비디아 more than 주가 — before the
    corpus has counted either. Words none knows (names, new coinages: "DeepSeek") take
    `UNKNOWN_IDF`, i.e. they are rare.
    """
    if HAN.match(term):
        return math.exp(-_prior_table()[0].get(term, UNKNOWN_IDF))
    frequency = frequencies("en").get(term)
    if frequency is None:
        frequency = _latin_frequency(term) if _is_latin(term) else _foreign_frequency(term)
    if frequency is None:
        return math.exp(-UNKNOWN_IDF)
    return 1.0 - (1.0 - min(frequency, 1.0)) ** TERMS_PER_TEXT


#: term -> prior_share(term).
_SHARE: Memo[float] = Memo(prior_share)


@cache
def _expected(prior: int) -> Memo[float]:
    """term -> prior * prior_share(term): the background's documents holding the word."""
    return Memo(lambda term: prior * _SHARE[term])


def idf(term: str, df: int, docs: int, prior: int = PRIOR_DOCS, capped: bool = False) -> float:
    """Smoothed inverse document frequency: corpus counts blended with the prior.

    ``ln((N + P) / (df + P * prior_share + 1)) + 1`` with P = `prior` pseudo-documents of
    background (`PRIOR_DOCS`): on a small corpus the background decides (so the words every
    article of one event shares still count), on a large one the corpus does.

    `capped`: a corpus of more than P documents counts as P documents (its frequencies
    kept: df scaled by P / N), so that the background keeps half the say however long the
    stream runs: a word's share of the stream still corrects what the background misjudges
    (another language's function words, a feed's boilerplate), but months of one subject's
    reports do not make its names weightless.
    """
    return idf_many([(term, df)], docs, prior, capped)[term]


def idf_many(
    counts: Iterable[tuple[str, int]], docs: int, prior: int = PRIOR_DOCS, capped: bool = False
) -> dict[str, float]:
    """`idf` of each (word, document frequency) pair: word -> IDF.

    A batch weighs ~18k words at once: one comprehension (`idf` calls it with one word)
    saves a Python call per word. Not numpy: its bulk division measured no
    faster here (the dict lookups dominate), and its `log` is not libm's on every CPU
    (AVX-512), where a last bit could change.
    """
    expected, log = _expected(prior), math.log
    if capped and docs > prior:
        blended, scale = 2.0 * prior, prior / docs
        return {t: log(blended / (df * scale + expected[t] + 1.0)) + 1.0 for t, df in counts}
    blended = docs + prior
    return {t: log(blended / (df + expected[t] + 1.0)) + 1.0 for t, df in counts}


def idf_array(
    words: Sequence[str],
    dfs: Iterable[int],
    docs: int,
    prior: int = PRIOR_DOCS,
    capped: bool = False,
) -> npt.NDArray[np.float64]:
    """`idf_many`'s IDFs of `words` (with document frequencies `dfs`) as an array, to the
    bit: numpy's arithmetic in the same order, libm's `log` (`math.log`), ~40% less time
    on a batch's ~30k words."""
    n = len(words)
    df = np.fromiter(dfs, dtype=np.float64, count=n)  # the ints, exactly (below 2**53)
    expected = np.fromiter(map(_expected(prior).__getitem__, words), dtype=np.float64, count=n)
    if capped and docs > prior:
        ratio = 2.0 * prior / (df * (prior / docs) + expected + 1.0)
    else:
        ratio = (docs + prior) / (df + expected + 1.0)
    return np.fromiter(map(math.log, ratio.tolist()), dtype=np.float64, count=n) + 1.0


def _cut(text: str) -> list[str]:
    """jieba's words (its dictionary, without the HMM for unknown words), cut by rjieba.

    rjieba binds jieba-rs, the Rust port of jieba with the same dictionary and the same
    algorithm: identical words (tests/test_terms.py compares them), ~16x faster, and no
    1.5 s dictionary load. Without the HMM: names jieba would join still match as their
    dictionary parts. Imported on the first Chinese text (its import loads its dictionary,
    ~0.1 s: a stream without Chinese never pays it).
    """
    import rjieba

    return list(rjieba.cut(text, False))


#: How Chinese is cut into terms: "jieba" (words), "search" (jieba's words and the
#: dictionary words inside them), "bigram" (overlapping character pairs).
CHINESE = "jieba"
_CJK_RUN = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]+")


def _bigrams(text: str) -> list[str]:
    out: list[str] = []
    for run in _CJK_RUN.findall(text):
        out.extend(run[i : i + 2] for i in range(max(len(run) - 1, 1)))
    out.extend(_LATIN_WORD.findall(text))
    return out


def _term(word: str) -> str:
    """The term a cut word counts as, or "" when it says nothing about the event."""
    word = word.strip()
    if not word or word in STOP_WORDS or _DIGITS.match(word):
        return ""
    if HAN.match(word):
        return word if len(word) >= 2 else ""
    if _DECIMAL.match(word):
        return word
    if not _LATIN_WORD.fullmatch(word) or len(word) < 2:
        return ""
    word = _ELISION.sub("", word.strip("'"))
    if word.endswith("'s"):
        word = word[:-2]
    word = _without_particle(word) if "\uac00" <= word[0] <= "\ud7af" else _singular(word)
    return "" if word in STOP_WORDS or len(word) < 2 else word


def _singular(word: str) -> str:
    """Harman's S-stemmer (plural -ies/-es/-s), so that "rates" and "rate" are one term.

    Words ending in -us, -ss, -is or -as ("Paris", "Texas") are left alone.
    """
    if len(word) <= 3 or not word.endswith("s"):
        return word
    if word.endswith("ies") and not word.endswith(("eies", "aies")):
        return word[:-3] + "y"
    if word.endswith("es") and not word.endswith(("aes", "ees", "oes")):
        return word[:-1]
    if word.endswith(("us", "ss", "is", "as")):
        return word
    return word[:-1]


#: Korean particles (josa) written onto the noun before them, longest first.
_PARTICLES = (
    "에서는", "에게서", "으로는", "에서", "에게", "한테", "으로", "까지", "부터", "처럼", "보다",
    "은", "는", "이", "가", "을", "를", "의", "에", "로", "와", "과", "도", "만",
)  # fmt: skip


def _without_particle(word: str) -> str:
    """A Korean word without the particle written onto it (주가가, 주가는, 주가의 -> 주가), as
    the S-stemmer folds English plurals; at least two syllables are kept (국가 stays)."""
    for particle in _PARTICLES:
        if word.endswith(particle) and len(word) - len(particle) >= 2:
            return word[: -len(particle)]
    return word


#: Cut word -> `_term(word)`.
_TERMS = Memo(_term)


#: Kana letters (not "・" or "ー", which Chinese text uses too: 埃隆・马斯克).
_KANA = re.compile(r"[\u3041-\u3096\u30a1-\u30fa]")


def _cut_words(text: str) -> tuple[list[str], bool]:
    """A normalised text's words as cut, before `_term`; and whether they are jieba's cut
    of Chinese (the words `crosslang.units` reads)."""
    if has_han(text):
        if CHINESE == "bigram" or _KANA.search(text):
            # Japanese: jieba's Chinese dictionary cuts it into single characters. Its kanji
            # compounds are mostly two characters (急落, 衝撃), its names Katakana runs.
            return _bigrams(text), False
        if CHINESE == "search":
            import rjieba

            return rjieba.cut_for_search(text, False), False
        return _cut(text), True
    return _LATIN_WORD.findall(text), False


def words(text: str, language: str | None = None) -> list[str]:
    """The meaningful words of a normalised text, in order: without another Latin-script
    language's function words if the text reads as it, or declares it (`language`, as
    `entry_terms` takes it; topics read a title and a lead apart)."""
    cut, chinese = _cut_words(text)
    if not chinese:
        cut = function_words().without(cut, language)
    return list(filter(None, map(_TERMS.__getitem__, cut)))


#: Whether `entry_terms` bridges languages (`crosslang`; docs/bilingual.md has the
#: measurements).
CROSS_LANGUAGE = True


def entry_terms(title: str, body: str, language: str | None = None) -> Counter[str]:
    """Term counts of an entry for story clustering (see the module docstring).

    With `CROSS_LANGUAGE`, Chinese words the dictionary knows count as their English word
    (`crosslang.english`: 峰会 as "summit"), and amounts are terms in one form for all
    languages (``amt:109e9`` for 1090亿 and €109 billion), so that an English and a
    Chinese report of one event share terms.

    Args:
        title: The normalised title.
        body: The normalised body (credit lines already dropped).
        language: The entry's language tag, if it has one: a Latin-script language's
            function words go from a text declared in it even when its words alone are
            too few to tell (`wordlists.FunctionWords.declared_or_read`).
    """
    lead = body[:LEAD_CHARS]
    # One count over the title repeated TITLE_TERM_WEIGHT times, then the lead: the same counts
    # and key order as adding the title's words one by one, without a Python call per word.
    cuts = _cut_words(title), _cut_words(lead)
    # Which language's function words go is decided once, on the title and lead together:
    # a headline alone often holds too few to tell.
    latin = [w for cut, han in cuts if not han for w in cut]
    reading = function_words().declared_or_read(language, latin)
    if not CROSS_LANGUAGE:
        plain = [_terms(cut, han, reading, bridge=False) for cut, han in cuts]
        return Counter(plain[0] * TITLE_TERM_WEIGHT + plain[1])
    counts = Counter(_terms(*cuts[0], reading) * TITLE_TERM_WEIGHT + _terms(*cuts[1], reading))
    numbers = crosslang.number_terms(title) * TITLE_TERM_WEIGHT + crosslang.number_terms(lead)
    if numbers:
        counts.update(numbers)
    return counts


def _terms(cut: list[str], chinese: bool, reading: int | None, bridge: bool = True) -> list[str]:
    """`words` of a text cut (`_cut_words`), with Chinese words in English where the
    dictionary knows them (`bridge`), and without the function words of the language
    `reading` (`wordlists.FunctionWords.reading`)."""
    if chinese and bridge:
        joined = crosslang.units(cut, _standalone())
        return list(filter(None, map(_BRIDGED.__getitem__, joined)))
    return list(filter(None, map(_TERMS.__getitem__, function_words().drop(cut, reading))))


#: A single character this common in Chinese (jieba's IDF below it: 年 2.7, 说 2.6, 将 2.8)
#: is a word of its own, never part of a name jieba cut apart (龙 6.2, 曼 8.8, 悦 10.0).
STANDALONE_IDF = 6.0


@cache
def _standalone() -> frozenset[str]:
    """The characters `crosslang.units` leaves alone: stop words and common characters."""
    table, _ = _prior_table()
    common = (w for w, v in table.characters() if v < STANDALONE_IDF)
    return STOP_WORDS | frozenset(common)


def _bridged(word: str) -> str:
    """The term a cut Chinese word counts as with `CROSS_LANGUAGE`: `_term`, in English
    where the dictionary has the word (a stop word stays dropped in any language)."""
    term = _term(word)
    return (crosslang.english(term) or term) if HAN.match(term) else term


#: Cut word -> `_bridged(word)`.
_BRIDGED = Memo(_bridged)


class PackedTerms(Mapping[str, int]):
    """An entry's term counts (`entry_terms`') as `features.features_many` gives them: its
    words as positions in a word table, and their counts, each a C ``unsigned int`` array
    in bytes. The table is one call's (a batch or a piece computed where it is placed), or
    in a feature worker the worker's own, kept across its pieces (`aggregator.wordtables`).
    As a Mapping it is those counts, in `entry_terms`' order.

    A worker's piece pickles each entry as two byte strings and its table as the words no
    earlier piece of the worker shipped, which the placing process reads back faster than
    a dictionary of words per entry, and `vectors.BatchTerms.of` lays the batch out from
    the arrays (docs/speed.md, Seventeenth and Eighteenth sessions). The bytes are in the
    machine's own layout: they pass between processes on one machine, and are never
    stored.
    """

    __slots__ = ("table", "index", "counts", "_mapping")

    def __init__(self, table: list[str], index: bytes, counts: bytes) -> None:
        #: The word table (holding the entry's words once `pack_terms` returns): a list, or
        #: in a feature worker its `WordTable` (read back as the reading process's copy).
        self.table = table
        #: The positions in `table` of the entry's words, and their counts.
        self.index = index
        self.counts = counts
        self._mapping: dict[str, int] | None = None

    def __reduce__(self) -> tuple[type[PackedTerms], tuple[list[str], bytes, bytes]]:
        return PackedTerms, (self.table, self.index, self.counts)

    def _counts(self) -> dict[str, int]:
        if self._mapping is None:
            words = map(self.table.__getitem__, array("I", self.index))
            self._mapping = dict(zip(words, array("I", self.counts), strict=True))
        return self._mapping

    def __getitem__(self, word: str) -> int:
        return self._counts()[word]

    def __iter__(self) -> Iterator[str]:
        return iter(self._counts())

    def __len__(self) -> int:
        return len(self.index) // _UINT

    def __repr__(self) -> str:
        return f"PackedTerms({self._counts()!r})"


#: Bytes of a C ``unsigned int`` (array type "I", numpy's ``uintc``): `PackedTerms`' items.
_UINT = array("I").itemsize


def pack_terms(
    counts: Iterable[Mapping[str, int]], table: WordTable | None = None
) -> list[PackedTerms]:
    """Term counts as `PackedTerms` sharing one word table (each word once, first met
    first): a new one, or a feature worker's `table`, kept across its pieces
    (`aggregator.wordtables`). Counts are those of `entry_terms`: from 1 to below 2**32
    (`array` "I" holds no other: OverflowError)."""
    words: list[str] = [] if table is None else table
    slot: dict[str, int] = {} if table is None else table.slots
    known = slot.get
    packed = []
    try:
        for terms in counts:
            # The places of the words met before, in one C pass (a worker's table soon holds
            # most of a stream's words: ~30% less time than a `setdefault` call a word);
            # then each new one's, in order (an entry's terms are distinct, and `len(slot)`
            # is read before the word is set: a new word's place is the next).
            places = list(map(known, terms))
            if None in places:
                names = list(terms)
                at = places.index(None)
                while True:
                    places[at] = slot.setdefault(names[at], len(slot))
                    try:
                        at = places.index(None, at + 1)
                    except ValueError:
                        break
            index = array("I", cast("list[int]", places))  # (every place set now)
            packed.append(PackedTerms(words, index.tobytes(), array("I", terms.values()).tobytes()))
    finally:
        # The words numbered and not yet listed, from the end: also when `counts` raised
        # midway (a worker's table must stay in line with its numbering for its next piece).
        added = list(islice(reversed(slot), len(slot) - len(words)))
        added.reverse()
        words.extend(added)
    return packed
