"""Full-text search's rules on PostgreSQL: an entry as a tsvector and a reader's query as a
tsquery, over the same normalised text SQLite's FTS5 index holds (storage/fulltext.py).

PostgreSQL has no FTS5. Its own parser would split the text otherwise (a host name or a
path is one token there, two words in FTS5's `unicode61`), so the words are found here, as
`unicode61` finds them in `fulltext.index_text`'s output (letters and digits, each Han
character a word, Latin diacritics removed), and handed to PostgreSQL as literal
tsvector and tsquery values, which no dictionary changes. A title's words carry weight A,
the body's D: `title:`/`body:` filters and ranking use them.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg

from aggregator.storage.fulltext import (
    _SYNTAX,
    _WORD,
    QueryError,
    body_text,
    index_text,
    unreadable,
)
from aggregator.types import EntryData

#: tsvector's limits: a word's position (later ones are recorded at it), positions kept per
#: word, a word's bytes, and the whole value's (about: words beyond it are not indexed).
MAX_POSITION = 16_383
MAX_POSITIONS = 256
MAX_WORD_BYTES = 2_046
MAX_VECTOR_BYTES = 900_000

# Latin diacritics, as unicode61's remove_diacritics removes them (café finds cafe).
_DIACRITIC = re.compile(r"[\u0300-\u036f]")
# A query's pieces: a quoted phrase (or an unterminated one), a parenthesis, FTS5's `+`
# (which joins phrases), or a bare word.
_PIECE = re.compile(r'"([^"]*)"|(")|([()+])|([^\s"()+]+)')
_COLUMNS = {"title": "A", "body": "D"}
#: Parentheses nested deeper are refused (each level is a few frames of Python's stack).
MAX_DEPTH = 50


def words(text: str) -> list[str]:
    """The words FTS5 indexes `text` by: `index_text`'s form split as unicode61 splits it."""
    folded = index_text(text)
    if not folded.isascii():
        decomposed = unicodedata.normalize("NFD", folded)
        if _DIACRITIC.search(decomposed):
            folded = unicodedata.normalize("NFC", _DIACRITIC.sub("", decomposed))
    return _WORD.findall(folded)


def tsvector(title: str, summary: str, text: str) -> str:
    """An entry as a tsvector literal: its title's words (weight A), then, one position
    apart so that no phrase spans the two, its body's (as `fulltext.body_text`, weight D).

    Within tsvector's limits: positions past MAX_POSITION are recorded at it, a word keeps
    its first MAX_POSITIONS, and words past MAX_VECTOR_BYTES are left out (texts of
    hundreds of thousands of distinct words).
    """
    positions: dict[str, list[str]] = {}
    size = 0
    at = 0
    for found, weight in ((words(title), "A"), (words(body_text(summary, text)), "")):
        for word in found:
            at += 1
            kept = positions.get(word)
            if kept is None:
                width = len(word.encode())
                if width > MAX_WORD_BYTES or size + width > MAX_VECTOR_BYTES:
                    continue
                size += width + 8
                kept = positions[word] = []
            if len(kept) < MAX_POSITIONS:
                kept.append(f"{min(at, MAX_POSITION)}{weight}")
                size += 2
        at += 1
    return " ".join(f"'{word}':{','.join(kept)}" for word, kept in positions.items())


# --- a reader's query ------------------------------------------------------------------


@dataclass(frozen=True)
class _Phrase:
    words: tuple[str, ...]
    prefix: bool = False


@dataclass(frozen=True)
class _Node:
    op: str  # "&", "|", "not" (the first child without any of the others)
    children: tuple[_Tree, ...]


@dataclass(frozen=True)
class _Column:
    weight: str
    child: _Tree


_Tree = _Phrase | _Node | _Column


def tsquery(query: str) -> str | None:
    """A reader's query (already checked by `fulltext.parse_query`) as a tsquery literal.

    Plain words must all occur, each a phrase of its words (a Chinese word: its characters
    in a row). FTS5's syntax is read as FTS5 reads it: "phrases", AND, OR, NOT (binary: `a
    NOT b`), implicit AND, parentheses, `prefix*`, `a + b` (one phrase), `title:`/`body:`
    filters; `^` (a column's first word) is ignored. FTS5 refuses some queries this reads
    (a group next to a word, `e-mail OR x`); NEAR is not supported.

    Returns:
        The tsquery, or None when the query holds no word (it finds nothing).

    Raises:
        QueryError: the query cannot be read (unbalanced, an operator without operands, an
            unknown column, NEAR).
    """
    if not _SYNTAX.search(query):
        return _render(_Node("&", tuple(_Phrase(tuple(words(w))) for w in query.split())))
    tokens: list[tuple[str, str]] = []
    for match in _PIECE.finditer(query):
        phrase, open_quote, mark, bare = match.groups()
        if open_quote is not None:
            raise QueryError(unreadable("unterminated string"))
        if phrase is not None:
            tokens.append(("phrase", phrase))
        elif mark is not None:
            tokens.append((mark, mark))
        elif bare in ("AND", "OR", "NOT"):
            tokens.append((bare, bare))
        elif bare == "NEAR" and query[match.end() : match.end() + 1] == "(":
            raise QueryError("NEAR( ) is not supported here: use AND, or a phrase in quotes")
        else:
            tokens.append(("word", bare))
    parser = _Parser(tokens)
    tree = parser.parse()
    return _render(tree)


class _Parser:
    """FTS5's grammar: OR binds loosest, then AND (explicit or implied), then NOT."""

    def __init__(self, tokens: Sequence[tuple[str, str]]) -> None:
        self.tokens = list(tokens)
        self.at = 0
        self.depth = 0

    def peek(self) -> str | None:
        return self.tokens[self.at][0] if self.at < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        if self.at >= len(self.tokens):
            raise QueryError(unreadable("it ends too early"))
        token = self.tokens[self.at]
        self.at += 1
        return token

    def parse(self) -> _Tree:
        tree = self.either()
        if self.at < len(self.tokens):
            raise QueryError(unreadable(f"unexpected {self.tokens[self.at][1]!r}"))
        return tree

    def either(self) -> _Tree:
        items = [self.both()]
        while self.peek() == "OR":
            self.take()
            items.append(self.both())
        return items[0] if len(items) == 1 else _Node("|", tuple(items))

    def both(self) -> _Tree:
        items = [self.unless()]
        while self.peek() in ("AND", "phrase", "word", "("):
            if self.peek() == "AND":
                self.take()
            items.append(self.unless())
        return items[0] if len(items) == 1 else _Node("&", tuple(items))

    def unless(self) -> _Tree:
        tree = self.primary()
        while self.peek() == "NOT":
            self.take()
            tree = _Node("not", (tree, self.primary()))
        return tree

    def primary(self) -> _Tree:
        kind, text = self.take()
        if kind == "(":
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise QueryError(unreadable(f"parentheses nested over {MAX_DEPTH} deep"))
            tree = self.either()
            self.depth -= 1
            if self.take()[0] != ")":
                raise QueryError(unreadable("a parenthesis is not closed"))
            return tree
        if kind == "word" and ":" in text:
            column, _, rest = text.partition(":")
            weight = _COLUMNS.get(column.lower())
            if weight is None:
                raise QueryError(unreadable(f"no such column: {column}"))
            if rest:
                self.tokens.insert(self.at, ("word", rest))
            return _Column(weight, self.primary())
        if kind not in ("phrase", "word"):
            raise QueryError(unreadable(f"unexpected {text!r}"))
        phrase = self.phrase(kind, text)
        while self.peek() == "+":  # FTS5: `a + b` is the phrase "a b"
            self.take()
            following = self.take()
            if following[0] not in ("phrase", "word"):
                raise QueryError(unreadable("+ needs a word after it"))
            after = self.phrase(*following)
            phrase = _Phrase(phrase.words + after.words, after.prefix)
        return phrase

    @staticmethod
    def phrase(kind: str, text: str) -> _Phrase:
        if kind == "phrase":
            return _Phrase(tuple(words(text)))
        stem = text.lstrip("^").rstrip("*")
        return _Phrase(tuple(words(stem)), prefix=stem != text.lstrip("^"))


def _render(tree: _Tree, weight: str = "") -> str | None:
    """The tree as tsquery text; None for a part without words (FTS5 ignores it)."""
    if isinstance(tree, _Phrase):
        if not tree.words:
            return None
        last = len(tree.words) - 1
        parts = []
        for n, word in enumerate(tree.words):
            suffix = ("*" if tree.prefix and n == last else "") + weight
            parts.append(f"'{word}':{suffix}" if suffix else f"'{word}'")
        return parts[0] if len(parts) == 1 else "(" + " <-> ".join(parts) + ")"
    if isinstance(tree, _Column):
        return _render(tree.child, tree.weight)
    rendered = [_render(child, weight) for child in tree.children]
    if tree.op == "not":
        kept, dropped = rendered
        return kept if kept is None or dropped is None else f"({kept} & !{dropped})"
    present = [r for r in rendered if r is not None]
    if not present:
        return None
    return present[0] if len(present) == 1 else "(" + f" {tree.op} ".join(present) + ")"


# --- the index -------------------------------------------------------------------------


def index_entries(db: psycopg.Connection[Any], entries: Iterable[tuple[int, EntryData]]) -> None:
    """Index new and edited entries (an edit replaces the entry's row), in the caller's
    transaction."""
    rows = [(id_, tsvector(e.title, e.summary, e.text)) for id_, e in entries]
    if rows:
        db.cursor().executemany(
            "INSERT INTO entries_fts (id, words) VALUES (%s, %s::tsvector) "
            "ON CONFLICT (id) DO UPDATE SET words = excluded.words",
            rows,
        )


def index_all(db: psycopg.Connection[Any], batch: int = 1_000) -> None:
    """Index every stored entry not indexed yet (the search migration; a copy), in the
    caller's transaction, `batch` entries at a time."""
    after = 0
    while True:
        rows = db.execute(
            "SELECT e.id, e.title, e.summary, e.text FROM entries e WHERE e.id > %s "
            "AND NOT EXISTS (SELECT 1 FROM entries_fts s WHERE s.id = e.id) "
            "ORDER BY e.id LIMIT %s",
            (after, batch),
        ).fetchall()
        if not rows:
            return
        db.cursor().executemany(
            "INSERT INTO entries_fts (id, words) VALUES (%s, %s::tsvector)",
            [(id_, tsvector(title, summary, text)) for id_, title, summary, text in rows],
        )
        after = rows[-1][0]
