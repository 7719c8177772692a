"""Which stories match which watches, and when a match is due an alert: pure decisions.

Keywords (`keywords`, `all`, `none`) are matched as the topics' are (dedup/topics.py): on
text compared case-folded and in Simplified script, so one keyword matches both scripts; a
keyword of Latin letters or digits matches whole words only (a plural "s" may follow), a
Greek or Cyrillic one at the start of a word (and as a whole word when in capitals:
`text.cased_edges`), a Chinese one anywhere. Every keyword of every watch is looked for in
one pass over each entry's title and text (an Aho-Corasick DFA over each keyword's
`spellings`: the text is only case-folded, never converted, which is what makes 100
watches cheap: docs/watches.md has the measurements). A story's words are those of all its
entries: it matches a watch when one of its keywords, each of its `all` and none of its
`none` are in them, a source is among its `feeds` (feed names or tags), and it is filed
under one of its `topics`. It is due its first alert ("new") once `min_sources` distinct
feeds carry it, then one "grew" each time it gains `renotify_sources` more (`alert_due`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import NamedTuple, Protocol

import ahocorasick_rs

from aggregator.dedup.text import CASED_LETTERS, cased_edges, spellings
from aggregator.types import Entry

_LATIN = frozenset("0123456789abcdefghijklmnopqrstuvwxyz") | frozenset(
    chr(c) for c in range(0xC0, 0x250)
)
_CASED_LETTER = re.compile(f"[{CASED_LETTERS}]")


class WatchQuery(Protocol):
    """What matching reads of a watch (config.WatchConfig is one)."""

    @property
    def name(self) -> str: ...
    @property
    def keywords(self) -> tuple[str, ...]: ...
    @property
    def all(self) -> tuple[str, ...]: ...
    @property
    def none(self) -> tuple[str, ...]: ...
    @property
    def topics(self) -> tuple[str, ...]: ...
    @property
    def feeds(self) -> tuple[str, ...]: ...


class _Spelling(NamedTuple):
    """One way of writing a term, as the automaton finds it."""

    term: int
    latin_start: bool  # the term starts with a Latin letter or digit: a word must start here
    latin_end: bool  # ... ends with one: a word (or its plural) must end here
    word_start: bool  # a Greek or Cyrillic term must start a word (`text.cased_edges`)
    word_end: bool  # ... and an acronym end one


class _Query(NamedTuple):
    """A watch's keyword lists as term numbers."""

    any: frozenset[int]
    all: frozenset[int]
    none: frozenset[int]


class WatchMatcher:
    """The watches' keywords compiled once; finds which terms a text holds in one pass."""

    def __init__(self, watches: Sequence[WatchQuery]) -> None:
        self.watches = tuple(watches)
        terms: dict[str, int] = {}

        def numbers(words: Iterable[str]) -> frozenset[int]:
            return frozenset(terms.setdefault(w.strip(), len(terms)) for w in words)

        self._queries = [
            _Query(numbers(w.keywords), numbers(w.all), numbers(w.none)) for w in self.watches
        ]
        found: dict[str, list[_Spelling]] = {}
        for term, number in terms.items():
            edges = cased_edges(term)
            for spelling in spellings(term):
                found.setdefault(spelling, []).append(
                    _Spelling(number, spelling[0] in _LATIN, spelling[-1] in _LATIN, *edges)
                )
        #: Each spelling's terms, by its number among the automaton's patterns.
        self._kinds = [tuple(kinds) for kinds in found.values()]
        self._automaton = (
            # A DFA: 2-3x faster than the NFAs on 10,000 entries (docs/watches.md).
            ahocorasick_rs.AhoCorasick(
                list(found), implementation=ahocorasick_rs.Implementation.DFA
            )
            if found
            else None
        )

    def terms_in(self, text: str) -> set[int]:
        """The numbers of the terms `text` holds (as a whole word, for Latin ones)."""
        if self._automaton is None or not text:
            return set()
        text = text.casefold()
        found: set[int] = set()
        settled: set[int] = set()  # spellings whose terms are all found: skipped after
        size = len(text)
        for number, start, end in self._automaton.find_matches_as_indexes(text, overlapping=True):
            if number in settled:
                continue
            kinds = self._kinds[number]
            for kind in kinds:
                if kind.term in found:
                    continue
                if kind.latin_start and start > 0 and text[start - 1] in _LATIN:
                    continue
                if kind.latin_end and not _word_ends(text, end, size):
                    continue
                if kind.word_start and start > 0 and _in_word(text[start - 1]):
                    continue
                if kind.word_end and end < size and _in_word(text[end]):
                    continue
                found.add(kind.term)
            if all(kind.term in found for kind in kinds):
                settled.add(number)
        return found

    def story_terms(self, entries: Iterable[Entry]) -> set[int]:
        """The terms in any of a story's entries' titles and texts."""
        found: set[int] = set()
        for entry in entries:
            found |= self.terms_in(f"{entry.title}\n{entry.text or entry.summary}")
        return found

    def matching(self, terms: set[int]) -> list[int]:
        """The indexes of the watches whose keywords these terms satisfy: one of
        `keywords`, each of `all`, none of `none`."""
        return [
            n
            for n, query in enumerate(self._queries)
            if query.any & terms and query.all <= terms and not query.none & terms
        ]


def _in_word(char: str) -> bool:
    """Whether a character is a letter of a word a Greek or Cyrillic term must not be in."""
    return char in _LATIN or _CASED_LETTER.match(char) is not None


def _word_ends(text: str, at: int, size: int) -> bool:
    """Whether a Latin word may end at `at`: the text ends, or no Latin letter follows
    (after an optional plural "s" or "es")."""
    for plural in ("", "s", "es"):
        if text.startswith(plural, at):
            after = at + len(plural)
            if after >= size or text[after] not in _LATIN:
                return True
    return False


def from_feeds(watch: WatchQuery, names: Iterable[str], tags: Iterable[str]) -> bool:
    """Whether a story carried by feeds of these names and tags passes the watch's `feeds`."""
    if not watch.feeds:
        return True
    wanted = set(watch.feeds)
    return not wanted.isdisjoint(names) or not wanted.isdisjoint(tags)


def sources_of(entries: Iterable[Entry]) -> int:
    """How many distinct feeds carry a story: what `min_sources` counts."""
    return len({e.feed_url for e in entries})


def alert_due(
    min_sources: int, renotify_sources: int, sources: int, alerted: tuple[int, int] | None
) -> tuple[str, int] | None:
    """The alert a matching story is due on one channel, if any.

    Args:
        min_sources: The watch's `min_sources`.
        renotify_sources: The watch's `renotify_sources` (0: never again).
        sources: The distinct feeds carrying the story now.
        alerted: What was recorded for it on this channel: its first alert's source count
            and the highest level (None: nothing yet).

    Returns:
        ("new", 0) the first time it is carried by `min_sources` feeds; ("grew", k) when
        it has gained k times `renotify_sources` feeds since its first alert and k is above
        every level alerted (several thresholds crossed at once: one alert, the highest);
        else None.
    """
    if alerted is None:
        return ("new", 0) if sources >= min_sources else None
    base, top = alerted
    if renotify_sources <= 0:
        return None
    level = (sources - base) // renotify_sources
    return ("grew", level) if level > top else None
