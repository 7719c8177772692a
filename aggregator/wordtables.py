"""A feature worker's word table, kept across its pieces: each piece ships only new words.

Term counts cross from a feature worker packed against a table of words
(`dedup.terms.PackedTerms`). With a table per piece, every piece shipped each of its words,
and the placing process met each again: a batch of 2,000 entries in 32 pieces brought
115–119k words for its 32k distinct ones, each one hashed and numbered again there
(docs/speed.md, Eighteenth session). A worker now numbers words in one `WordTable` for as
long as it lives (`serve`), and a piece's pickle carries only the words added since the
worker's previous piece was pickled (`WordTable.__reduce__`). The process reading the
results (its pool's manager thread, which unpickles them in the order each worker sent
them) extends its copy of that table (`received`), so every piece of a worker reads back
as positions in one list: the batch's layout needs no word looked up
(`dedup.vectors.BatchTerms`).

A copy out of line with the table (a piece sent but never read, only when a pool breaks;
or a result whose pickling failed after its table's was made) makes `received` raise; the
pool then counts as broken and its pieces are computed by the process that set them. The
copies of a pool's tables are dropped with the pool (`forget`), and none is made for it
after. No heavy import: the feature pool uses this without the dedup stack.
"""

from __future__ import annotations

import os
import threading

#: Words a worker's table holds at most: past it, the next piece starts a new table (a
#: stream of ever new words, say random ones, must not grow it, its copy, nor the arrays
#: `vectors.BatchTerms` lays a batch out in, without end).
MAX_WORDS = 1 << 18

#: A table's name: the pool it serves (`serve`), the worker's process id, the table's number.
Token = tuple[str, int, int]


class WordTable(list[str]):
    """A worker's words, numbered in the order first met (`slots`), kept across pieces.

    As a list it is its words. Pickled, it is the words added since it was last pickled,
    which `received` adds to the reading process's copy: a worker's results are read in
    the order it sent them, so the copy holds every word before them. Pickling moves the
    table on: it is pickled only as part of a result sent (another pickle would leave the
    copy short, and the next piece refused).
    """

    __slots__ = ("token", "slots", "shipped")

    def __init__(self, token: Token) -> None:
        super().__init__()
        self.token = token
        #: word -> its place in the table
        self.slots: dict[str, int] = {}
        #: How many of the words earlier pickles carried.
        self.shipped = 0

    def __reduce__(self) -> tuple[object, tuple[Token, int, list[str]]]:
        start, self.shipped = self.shipped, len(self)
        return received, (self.token, start, self[start:])


_lock = threading.Lock()
#: The table this worker numbers words in (`serving`), once `serve` made it one.
_serving: WordTable | None = None
_pool: str | None = None
#: In a process reading workers' results: each worker table's copy, by its token.
_copies: dict[Token, list[str]] = {}
#: The pools whose copies were dropped (`forget`): a result of theirs still read makes none.
_ended: set[str] = set()


def serve(pool: str) -> None:
    """Make this process a worker of `pool` (its name among the pools of the process that
    started it): its pieces pack their terms in one table (`serving`)."""
    global _pool, _serving
    _pool, _serving = pool, None


def serving() -> WordTable | None:
    """The table this worker's pieces pack their terms in; None in any other process (each
    call packs against its own words, as a batch computed where it is placed does)."""
    global _serving
    if _pool is None:
        return None
    table = _serving
    if table is None or len(table) >= MAX_WORDS:
        number = 0 if table is None else table.token[2] + 1
        table = _serving = WordTable((_pool, os.getpid(), number))
    return table


def received(token: Token, start: int, words: list[str]) -> list[str]:
    """The reading process's copy of a worker's table, with `words` (from place `start`)
    added: what a `WordTable` is unpickled as.

    Raises:
        ValueError: the copy does not end at `start` (a piece sent and never read), or
            the worker's pool ended (`forget`).
    """
    with _lock:
        if token[0] in _ended:
            raise ValueError(f"feature worker {token[1]}'s pool has ended")
        copy = _copies.get(token)
        if copy is None:
            copy = []
            if start == 0:
                _copies[token] = copy
                pool, worker, number = token
                _copies.pop((pool, worker, number - 1), None)  # that worker's full table
        if len(copy) != start:
            raise ValueError(
                f"feature worker {token[1]}'s word table: {len(copy)} words known, "
                f"a piece's new words start at {start}"
            )
        copy.extend(words)
        return copy


def forget(pool: str) -> None:
    """Drop the copies of the tables of `pool`'s workers (the pool ended), and make none
    for a result of theirs still read."""
    with _lock:
        _ended.add(pool)
        for token in [t for t in _copies if t[0] == pool]:
            del _copies[token]
