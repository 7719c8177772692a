"""Function words of the Latin-script languages other than English, dropped from a text
that reads as one of them.

Story terms weigh a Latin-script word by its frequency in English (`terms.prior_share`),
so "dans", "pour", "los" and "para" looked like rare words: unrelated French or Spanish
headlines shared five or six of them, enough to be one story (tests/test_stories.py).
English's own function words are `terms.STOP_WORDS`, dropped from every text. Another
language's are dropped only from a text that reads as that language: at least `MIN_HITS`
of its words are that language's *telling* function words (at least `TELLING` times as
frequent in it as in English: "les", "dans", "los", "und"; not "son", "bon" or "war"), and
more than the text's English function words. So "Bon-Ton CEO to resign" and "War in
Ukraine: EU, UN, AI" keep every word.

The lists are the `stop-words` package's (python-stop-words, BSD licence); the
frequencies wordfreq's, as `terms` reads them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from functools import cache

from stop_words import get_stop_words

#: Latin-script languages besides English (`stop-words` and wordfreq codes).
LANGUAGES = (
    "fr", "es", "pt", "it", "de", "nl", "ca", "ro", "sv", "da", "nb", "fi", "pl", "cs",
    "sk", "hu", "tr", "id", "ms", "vi",
)  # fmt: skip
#: Fewer telling function words than this in a text decide nothing: "Lana Del Rey" or
#: "de Gaulle" in an English headline stays as it is.
MIN_HITS = 2
#: How much more frequent in its language than in English a function word must be to tell
#: that a text is in that language.
TELLING = 100.0


class FunctionWords:
    """The function words of `LANGUAGES`, English's (`english`) excepted.

    Args:
        english: English's function words (dropped from every text by the caller).
        frequencies: A language's word -> frequency table (wordfreq's, by code).
    """

    def __init__(
        self, english: frozenset[str], frequencies: Callable[[str], Mapping[str, float]]
    ) -> None:
        self.english = english
        self._frequencies = frequencies
        #: Each function word -> the bit mask of the `LANGUAGES` listing it.
        self.listed: dict[str, int] = {}
        for bit, language in enumerate(LANGUAGES):
            for word in get_stop_words(language):
                word = word.casefold()
                # Not "d'" or "s.v." (never cut so), nor one letter ("s" of "U.S.").
                if word.isalpha() and len(word) > 1 and word not in english:
                    self.listed[word] = self.listed.get(word, 0) | 1 << bit

    def language(self, words: list[str]) -> int | None:
        """The index in `LANGUAGES` of the language `words` (case-folded, as cut) read as,
        or None: English, or too few telling function words of any language to say."""
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
        telling = self._telling(best)
        told = sum(map(telling.__contains__, words))
        if told < MIN_HITS or told <= sum(map(self.english.__contains__, words)):
            return None
        return best

    def without(self, words: list[str]) -> list[str]:
        """`words` without the function words of the language they read as (`language`)."""
        found = self.language(words)
        if found is None:
            return words
        listed, bit = self.listed, 1 << found
        return [w for w in words if not listed.get(w, 0) & bit]

    def _weight(self, bit: int, words: list[str]) -> float:
        """The summed frequency, in the language, of its function words among `words`."""
        frequency = self._frequencies(LANGUAGES[bit]).get
        return sum(frequency(w, 0.0) for w in words if self.listed.get(w, 0) >> bit & 1)

    @cache  # noqa: B019 (one instance per process: `terms` holds it)
    def _telling(self, bit: int) -> frozenset[str]:
        """The language's function words `TELLING` times as frequent in it as in English."""
        ours, english = self._frequencies(LANGUAGES[bit]), self._frequencies("en")
        return frozenset(
            w
            for w, mask in self.listed.items()
            if mask >> bit & 1 and ours.get(w, 0.0) >= TELLING * english.get(w, 0.0)
        )
