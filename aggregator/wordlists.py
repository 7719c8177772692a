"""Word lists of many languages: wordfreq's word frequencies, and the function words of the
Latin-script languages besides English, by which a text is told to be in one of them.

Story terms (`dedup.terms`) weigh words by these frequencies and drop another language's
function words from a text that reads as that language; the parsers (`sources.language`)
label an undeclared Latin-script entry with the language it reads as, not always English.

A text reads as a language when at least `MIN_HITS` of its words are that language's
*telling* function words (`TELLING` times as frequent in it as in English: "les", "dans",
"los", "und"; not "son", "bon" or "war", which English uses too), and more than its
English function words. So "Bon-Ton CEO to resign" and "War in Ukraine: EU, UN, AI" read
as English, and of uci-news-dev's 6,290 real English headlines one reads as another
language (docs/stories.md, twelfth session).

The function words are the `stop-words` package's lists (python-stop-words, BSD-3); the
frequencies wordfreq's "small" lists (Apache-2.0 code; its data CC BY-SA 4.0), read from its
files without importing wordfreq.
"""

from __future__ import annotations

import importlib.util
from collections import Counter
from functools import cache
from pathlib import Path

from stop_words import get_stop_words

#: Latin-script languages besides English (`stop-words` and wordfreq codes).
LANGUAGES = (
    "fr", "es", "pt", "it", "de", "nl", "ca", "ro", "sv", "da", "nb", "fi", "pl", "cs",
    "sk", "hu", "tr", "id", "ms", "vi",
)  # fmt: skip
#: Fewer telling function words than this in a text decide nothing: "Lana Del Rey" or
#: "de Gaulle" in an English headline stays English.
MIN_HITS = 2
#: How much more frequent in its language than in English a function word must be to tell
#: that a text is in that language.
TELLING = 100.0


#: English's function words (and words of news that name no event), dropped from every
#: text's story terms (`dedup.terms.STOP_WORDS`, with Chinese's).
ENGLISH: frozenset[str] = frozenset(
    """
a about above after again against all also am an and any are as at be because been before being
below between both but by can could did do does doing down during each few for from further had
has have having he her here hers herself him himself his how i if in into is it its itself just
me more most my myself no nor not now of off on once only or other our ours out over own said
same says she should so some such than that the their theirs them themselves then there these
they this those through to too under until up very was we were what when where which while who
whom why will with would you your yours new news one two first last year years day days week
may might must could us via per amid after over get gets got make makes made told tell report
reports reported according mr mrs ms update updated live latest watch video photos read more
monday tuesday wednesday thursday friday saturday sunday today yesterday tomorrow
exclusive breaking analysis opinion explainer factbox comment column editorial podcast
newsletter highlights recap
""".split()
)


@cache
def frequencies(language: str) -> dict[str, float]:
    """A language's word frequencies per token (wordfreq's "small" list: 20-60k words,
    20-50 ms; English's ~29k), kept."""
    return read_frequencies(language)


def read_frequencies(language: str) -> dict[str, float]:
    """`frequencies`, read afresh (for a table built from several and not kept itself)."""
    # Read from wordfreq's file directly when it is there: importing wordfreq (ftfy,
    # langcodes, regex) costs ~0.2-0.5 s in every process that weighs words, for a table
    # its `get_frequency_dict` builds the same way (bucket i: frequency 10 ** (-i / 100)).
    spec = importlib.util.find_spec("wordfreq")
    folders = spec.submodule_search_locations if spec is not None else None
    path = Path(folders[0], "data", f"small_{language}.msgpack.gz") if folders else None
    if path is None or not path.is_file():
        from wordfreq import get_frequency_dict

        found: dict[str, float] = get_frequency_dict(language, wordlist="small")
        return found
    import gzip

    import msgpack

    with gzip.open(path, "rb") as packed:
        data = msgpack.load(packed, raw=False)
    header = data[0]
    if not isinstance(header, dict) or header.get("format") != "cB" or header.get("version") != 1:
        raise ValueError(f"{path}: not a wordfreq word list (header {header!r})")
    table: dict[str, float] = {}
    for index, bucket in enumerate(data[1:]):
        frequency = 10 ** (-index / 100)
        for word in bucket:
            table[word] = frequency
    return table


class FunctionWords:
    """The function words of `LANGUAGES`, those in `english` excepted.

    Args:
        english: The function words taken as English's (`ENGLISH`).
    """

    def __init__(self, english: frozenset[str]) -> None:
        self.english = english
        #: Each function word -> the bit mask of the `LANGUAGES` listing it.
        self.listed: dict[str, int] = {}
        for bit, language in enumerate(LANGUAGES):
            for word in get_stop_words(language):
                word = word.casefold()
                # Not "d'" or "s.v." (never cut so), nor one letter ("s" of "U.S.").
                if word.isalpha() and len(word) > 1 and word not in english:
                    self.listed[word] = self.listed.get(word, 0) | 1 << bit
        self._telling: dict[int, frozenset[str]] = {}

    def language(self, words: list[str]) -> str | None:
        """The code (`LANGUAGES`) of the language `words` (case-folded, as cut) read as,
        or None: English, or too few telling function words of any language to say."""
        found = self._reading(words)
        return None if found is None else LANGUAGES[found]

    def without(self, words: list[str]) -> list[str]:
        """`words` without the function words of the language they read as (`language`)."""
        found = self._reading(words)
        if found is None:
            return words
        listed, bit = self.listed, 1 << found
        return [w for w in words if not listed.get(w, 0) & bit]

    def _reading(self, words: list[str]) -> int | None:
        """`language`, as its index in `LANGUAGES`."""
        masks = list(filter(None, map(self.listed.get, words)))  # in C: most texts hold none
        if len(masks) < MIN_HITS:
            return None
        hits = [0] * len(LANGUAGES)
        for mask, n in Counter(masks).items():
            for bit in range(len(LANGUAGES)):
                if mask >> bit & 1:
                    hits[bit] += n
        most = max(hits)
        tied = [bit for bit, n in enumerate(hits) if n == most]
        # Of languages whose lists hold as many of the words ("os", "contra" and "dos" are
        # Spanish and Portuguese), the one in which they are most frequent (Portuguese).
        best = tied[0] if len(tied) == 1 else max(tied, key=lambda bit: self._weight(bit, words))
        telling = self._telling_words(best)
        told = sum(map(telling.__contains__, words))
        if told < MIN_HITS or told <= sum(map(self.english.__contains__, words)):
            return None
        return best

    def _weight(self, bit: int, words: list[str]) -> float:
        """The summed frequency, in the language, of its function words among `words`."""
        frequency = frequencies(LANGUAGES[bit]).get
        return sum(frequency(w, 0.0) for w in words if self.listed.get(w, 0) >> bit & 1)

    def _telling_words(self, bit: int) -> frozenset[str]:
        """The language's function words `TELLING` times as frequent in it as in English."""
        found = self._telling.get(bit)
        if found is None:
            ours, english = frequencies(LANGUAGES[bit]), frequencies("en")
            found = frozenset(
                w
                for w, mask in self.listed.items()
                if mask >> bit & 1 and ours.get(w, 0.0) >= TELLING * english.get(w, 0.0)
            )
            self._telling[bit] = found
        return found


@cache
def function_words() -> FunctionWords:
    """The function words of `LANGUAGES` but `ENGLISH`'s, built once."""
    return FunctionWords(ENGLISH)


def latin_language(words: list[str]) -> str | None:
    """The language (`LANGUAGES` code) case-folded words of a Latin-script text read as, or
    None (English, or too few function words to say): `FunctionWords.language`."""
    return function_words().language(words)
