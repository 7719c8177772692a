"""Full-text search's rules: the text an entry is indexed by, a reader's query as an FTS5
query over it, and the highlighted snippet of a hit (pure; storage/sqlite/_search.py runs
them).

Entries are indexed by their normalised text (NFKC, Simplified script, case-folded:
`dedup.text.normalise`) with a space around each Han character, under FTS5's `unicode61`
tokenizer: a Chinese word is then a phrase of characters, found whatever its length and
in either script (a Traditional query is normalised the same way). `trigram` cannot find
the two-character words most Chinese words are (docs/serve.md, Search: the measurements).

A ranked query's results are stories (an entry alone while not placed), ordered by their
best matching entry's score (SQLite's bm25, PostgreSQL's ts_rank) times 1 + ln(n), n the
story's matching entries, then by story id; each backend's SQL writes it. The best entry
alone put a story that one short title matches above the one most reports tell (short
titles win bm25's length normalisation): measured on labelled headlines by
bench/search_ranking.py (docs/serve.md, Search).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from functools import cache
from typing import NamedTuple

from aggregator.types import Entry

#: A query longer than this is refused with a message (no results), not run.
MAX_QUERY = 500
#: A query matching more entries than this lists its stories newest first, not ranked:
#: ranking reads every match (a word in every text: ~90 ms at 100,000 entries), and a word
#: that common ranks by little more than the texts' lengths (docs/serve.md, Search).
RANKED_MATCHES = 5_000
#: ... and counts its stories up to this many ("more than 1,000").
COUNT_CAP = 1_000
#: A snippet shows about this many characters of an entry's text ...
SNIPPET_CHARS = 200
#: ... found in its first this many (a hit further in is not marked; the time to normalise
#: a text grows with it).
SNIPPET_SCAN = 20_000

# Han (CJK ideographs, with extensions and compatibility forms): one token per character.
_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f]")
_ASTRAL = re.compile(r"[\U00020000-\U0003134f]")
_HAN_RUN = re.compile(rf"(?:{_HAN.pattern})+")
# What makes a query FTS5 syntax rather than plain words: quotes, groups, prefixes,
# column filters, and the operators (which FTS5 knows in capitals only).
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_SYNTAX = re.compile(r'["()*:^+]|\b(?:AND|OR|NOT|NEAR)\b')
_OPERATOR = re.compile(r"(\s+|[()]|\bAND\b|\bOR\b|\bNOT\b|\bNEAR\b)")
# What may come before a query's word: a column filter (`title:`), the first-word mark `^`.
_HEAD = re.compile(r"(?:[a-z_][a-z0-9_]*:)?\^?")
# A word as unicode61 sees it (letters, digits; Han apart): what a snippet highlights.
_WORD = re.compile(r"[^\W_]+")


class Marked(NamedTuple):
    """A piece of shown text; `hit`: it matched the query (a snippet shows it marked)."""

    text: str
    hit: bool


class Query(NamedTuple):
    """A reader's query as FTS5 runs it, and the normalised words a snippet marks."""

    match: str
    words: tuple[str, ...]  # normalised; a Han run is one word
    prefixes: tuple[str, ...]  # normalised words written with a trailing * (prefix match)


class QueryError(ValueError):
    """A query that cannot be run (too long, or empty); its message is for the reader."""


def _normalise(text: str) -> str:
    from aggregator.dedup.text import normalise  # OpenCC: loaded by what searches or stores

    return normalise(text)


@cache
def _spaced() -> dict[int, str]:
    """str.translate's table: each Han character of the Basic Multilingual Plane spaced."""
    ranges = ((0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xF900, 0xFAFF))
    return {code: f" {chr(code)} " for low, high in ranges for code in range(low, high + 1)}


def index_text(text: str) -> str:
    """The form an entry's text is indexed in: normalised, a space around each Han character.

    Args:
        text: A title, summary or body as stored.

    Returns:
        The text the FTS5 table holds for it.
    """
    # translate: ~10x a regular expression's substitution; the rarer planes by the latter.
    spaced = _normalise(text).translate(_spaced())
    return _HAN.sub(r" \g<0> ", spaced) if _ASTRAL.search(spaced) else spaced


def body_text(summary: str, text: str) -> str:
    """What an entry's body is indexed as: its text, and its summary unless the text holds
    it already (most feeds' summary is the text's opening)."""
    return text if summary and summary in text else f"{summary}\n{text}"


def _phrase(text: str) -> str:
    """A normalised piece as an FTS5 string (a phrase): quoted, quotes doubled, Han spaced."""
    return '"' + _HAN.sub(r" \g<0> ", text).replace('"', '""') + '"'


def parse_query(query: str) -> Query:
    """A reader's query as an FTS5 query over `index_text`.

    Plain words (the common case) are each quoted: all must occur, and no input is an
    FTS5 syntax error. A query using FTS5's syntax (``"a phrase"``, ``AND``/``OR``/``NOT``,
    parentheses, ``prefix*``) keeps it, its words normalised; such a query may still be
    malformed (FTS5 then says so when it is run).

    Args:
        query: What the reader typed.

    Returns:
        The FTS5 query and the words a snippet highlights.

    Raises:
        QueryError: it is empty or longer than MAX_QUERY characters.
    """
    # Control characters are no word's (the index holds none): spaces. SQLite's FTS5 read
    # a query only up to a NUL ("unterminated string"), where PostgreSQL's answered it.
    query = _CONTROL.sub(" ", query).strip()
    if not query:
        raise QueryError("type one or more words to search for")
    if len(query) > MAX_QUERY:
        raise QueryError(f"the query is {len(query):,} characters long; at most {MAX_QUERY}")
    words: list[str] = []
    prefixes: list[str] = []
    if not _SYNTAX.search(query):
        for word in query.split():
            norm = _normalise(word)
            words.append(norm)
        return Query(" ".join(_phrase(w) for w in words), tuple(words), ())
    pieces = []
    for n, part in enumerate(query.split('"')):
        if n % 2:  # inside quotes: a phrase
            norm = _normalise(part)
            words.append(norm)
            pieces.append(_phrase(norm))
            continue
        for token in _OPERATOR.split(part):
            if not token or token.isspace() or _OPERATOR.fullmatch(token):
                pieces.append(token)
                continue
            norm = _normalise(token)
            # A column filter (`title:`) and a first-word mark (`^`) stay outside the phrase.
            head = _HEAD.match(norm)
            lead = head.group(0) if head else ""
            word = norm[len(lead) :]
            stem = word.rstrip("*")
            (prefixes if stem != word else words).append(stem.strip("^+:"))
            if _HAN.search(word):  # Han characters as a phrase; a trailing * stays after it
                pieces.append(lead + _phrase(stem) + word[len(stem) :])
            else:
                pieces.append(norm)
    # The quotes were split away: FTS5 sees them again as written (an odd count is an error).
    match = "".join(pieces) if query.count('"') % 2 == 0 else "".join(pieces) + '"'
    return Query(match, tuple(w for w in words if w), tuple(p for p in prefixes if p))


def mark(text: str, query: Query, *, limit: int | None = None) -> tuple[Marked, ...]:
    """`text` with the query's words marked; cut to about `limit` characters around the
    first hit (at its start when nothing matches).

    Matching is on the normalised text, so a Simplified query marks Traditional words;
    the text shown is the original.

    Args:
        text: The original text (a title, a summary or a body).
        query: The parsed query.
        limit: Cut to about this many characters; None: the whole text.

    Returns:
        The pieces, in order; marked ones are hits.
    """
    text = " ".join(text.split())
    norm = _normalise(text)
    if len(norm) != len(text):  # a rare change of length (ß -> ss): show the normalised text
        text = norm
    spans = _hits(norm, query)
    start, end = 0, len(text)
    if limit is not None and len(text) > limit:
        first = spans[0][0] if spans else 0
        start = max(0, first - limit // 3)
        if start:  # begin at a word (or character, in Chinese)
            space = text.find(" ", start, first)
            start = space + 1 if 0 <= space < first and not _HAN.match(text[start]) else start
        end = min(len(text), start + limit)
    pieces: list[Marked] = []
    if start:
        pieces.append(Marked("…", False))
    at = start
    for begin, finish in spans:
        if finish <= at or begin >= end:
            continue
        begin, finish = max(begin, at), min(finish, end)
        if begin > at:
            pieces.append(Marked(text[at:begin], False))
        pieces.append(Marked(text[begin:finish], True))
        at = finish
    if at < end:
        pieces.append(Marked(text[at:end], False))
    if end < len(text):
        pieces.append(Marked("…", False))
    return tuple(pieces)


def marked(entry: Entry, query: Query) -> tuple[tuple[Marked, ...], tuple[Marked, ...]]:
    """A hit's title, whole, and its snippet: its text (else its summary) around the first
    hit, as every backend shows them."""
    body = entry.text or entry.summary
    return mark(entry.title, query), mark(body[:SNIPPET_SCAN], query, limit=SNIPPET_CHARS)


def newest_page(
    fetch: Callable[[int], Sequence[tuple[int, int]]], page: int, per_page: int
) -> tuple[list[tuple[int, int]], int, bool]:
    """A page of a common query's groups (stories, or entries alone), newest first, and
    how many groups there are, counted up to COUNT_CAP.

    Args:
        fetch: The query's newest `limit` matches, newest first, as (group, entry id).
        page: The page, from 1.
        per_page: Groups a page.

    Returns:
        The page's groups in order, each with its newest matching entry's id; the groups
        counted (at most COUNT_CAP); whether that is all of them. Matches are read until
        the page is full and more than COUNT_CAP groups were seen, or there are no more.
    """
    want = page * per_page
    need = max(want, COUNT_CAP + 1)
    limit = 5 * need  # a story's entries often all hold a common word
    while True:
        groups: dict[int, int] = {}
        rows = fetch(limit)
        for group, id_ in rows:
            groups.setdefault(group, id_)
        every = len(rows) < limit
        if every or len(groups) >= need:
            found = list(groups.items())[want - per_page : want]
            return found, min(len(groups), COUNT_CAP), every and len(groups) <= COUNT_CAP
        limit *= 4


def unreadable(detail: str) -> str:
    """The message for a query that cannot be run, `detail` saying why."""
    return (
        f"the query could not be read ({detail}); put words in double quotes to search "
        "for them as written"
    )


def _hits(norm: str, query: Query) -> list[tuple[int, int]]:
    """The spans of `norm` (normalised text) where one of the query's words occurs."""
    patterns: list[str] = []
    for word, prefix in [(w, False) for w in query.words] + [(p, True) for p in query.prefixes]:
        for part in _HAN_RUN.split(word):  # Han runs anywhere; other words whole
            patterns.extend(
                rf"(?<![^\W_]){re.escape(w)}" + (r"[^\W_]*" if prefix else r"(?![^\W_])")
                for w in _WORD.findall(part)
            )
        patterns.extend(re.escape(run) for run in _HAN_RUN.findall(word))
    if not patterns:
        return []
    # Longest first, so that a word is marked whole rather than by a shorter one in it.
    found = re.finditer("|".join(sorted(set(patterns), key=len, reverse=True)), norm)
    return [m.span() for m in found if m.end() > m.start()]
