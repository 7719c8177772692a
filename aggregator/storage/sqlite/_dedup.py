"""Deduplication's persistence: entries' copy features and placements, stories with their
centroids and index words, story aliases, word document frequencies, batch numbers; and
the caches that spare re-reading and re-decoding what consecutive batches share."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from aggregator.storage.encoding import index_parts
from aggregator.storage.sqlite._base import SqliteBase
from aggregator.storage.sqlite.codec import (
    db_time,
    dump_vector,
    json_param,
    load_vector,
    to_db_time,
)
from aggregator.storage.totals import ADD_PLACED, touched_stories
from aggregator.types import Features, Known, Outcome, StoryState, Vocabulary

#: Words whose document frequency a storage keeps in memory (`vocabulary`): ~140 bytes
#: each (the word, its count, the dictionary slot), so at most ~35 MiB. A batch of 1,000
#: news entries uses ~17k words; the bench's 30k-entry database holds ~40k.
DF_CACHE_WORDS = 1 << 18

#: The distinct stories and articles among the entries of some stories (by
#: entries_by_story_article), before and after a batch: what it adds to the store's.
_PLACED_IN = (
    "SELECT count(DISTINCT story_id), count(DISTINCT article_id) FROM entries "
    "WHERE story_id IN (SELECT value FROM json_each(?))"
)
_ADD_PLACED = ADD_PLACED.format("?")


class DedupMixin(SqliteBase):
    """The dedup_entries, stories, story_aliases, term_counts and dedup_meta tables."""

    def __init__(self, path: Path) -> None:
        #: The stories `stories_near` returned last: story id -> (stored row, as returned).
        self._stories: dict[int, tuple[tuple[Any, ...], StoryState]] = {}
        #: What `known_copies` returned last: entry id -> (its row's seq, as returned).
        self._known: dict[int, tuple[int, Known]] = {}
        #: Word document frequencies as stored after batch `_df_seq` (None: no row), for
        #: the words recent batches looked up: consecutive batches share most of their
        #: words, and this process recorded the changes itself. At most `DF_CACHE_WORDS`.
        self._df: dict[str, int | None] = {}
        self._df_seq = -1
        super().__init__(path)

    def unassigned_ids(self, among: Iterable[int] | None = None) -> list[int]:
        """Entries not yet placed in an article (new ones, or stored before dedup existed)."""
        if among is None:
            rows = self._query("SELECT id FROM entries WHERE article_id IS NULL")
        else:  # searched for in the index of unplaced entries: their rows are not read
            rows = self._query(
                "SELECT id FROM entries INDEXED BY entries_unassigned "
                "WHERE article_id IS NULL AND id IN (SELECT value FROM json_each(?))",
                (json_param(list(among)),),
            )
        return [r[0] for r in rows]

    def placing_order(self, ids: Iterable[int]) -> list[int]:
        """These entries' ids in the order a daemon places them (`Storage.placing_order`):
        published is stored in UTC at a fixed width, so its text order is time order."""
        wanted = list(ids)
        if not wanted:
            return []
        rows = self._query(
            "SELECT id FROM entries WHERE id IN (SELECT value FROM json_each(?)) "
            "ORDER BY published, feed_url, guid, id",
            (json_param(wanted),),
        )
        return [r[0] for r in rows]

    def story_id(self, story_id: int) -> int | None:
        """The story a story id stands for now: itself, the story it was merged into, or
        None when no entry is filed under it (an unknown id)."""
        alias = self._query("SELECT story_id FROM story_aliases WHERE id = ?", (story_id,))
        current = int(alias[0][0]) if alias else story_id
        rows = self._query("SELECT ? FROM entries WHERE story_id = ? LIMIT 1", (current, current))
        return int(rows[0][0]) if rows else None

    def article_count(self, story_id: int, excluding: Iterable[int] = ()) -> int:
        """How many articles have entries in the story, not counting the entries whose ids
        are in `excluding`; 0 for an unknown id."""
        rows = self._query(
            "SELECT count(DISTINCT article_id) FROM entries WHERE story_id = ? "
            "AND id NOT IN (SELECT value FROM json_each(?))",
            (story_id, json_param(list(excluding))),
        )
        return int(rows[0][0])

    def previous_placements(
        self, ids: Sequence[int]
    ) -> dict[int, tuple[int | None, dict[str, float] | None]]:
        """For entries placed before: the story their words counted in, and that vector."""
        rows = self._query(
            "SELECT entry_id, story_id, vector FROM dedup_entries "
            "WHERE entry_id IN (SELECT value FROM json_each(?))",
            (json_param(list(ids)),),
        )
        return {
            r["entry_id"]: (r["story_id"], load_vector(r["vector"]) if r["vector"] else None)
            for r in rows
        }

    def dedup_features(self, after: int = 0) -> tuple[list[Features], int]:
        """Placed entries' copy features recorded after sequence number `after`.

        Returns:
            The features (without terms), and the sequence number they are complete up to.
        """
        with self._snapshot() as db:
            (seq,) = db.execute("SELECT value FROM dedup_meta WHERE key = 'seq'").fetchone()
            if after < 0:  # every row (an index's first load): the table in key order
                rows = db.execute(
                    f"SELECT {_FEATURE_COLUMNS} FROM dedup_entries ORDER BY entry_id"
                ).fetchall()
            else:
                # "+entry_id": ordered by the primary key, SQLite would scan every row to
                # spare the sort; the few rows after `after` are found by
                # dedup_entries_by_seq.
                rows = db.execute(
                    f"SELECT {_FEATURE_COLUMNS} FROM dedup_entries WHERE seq > ? "
                    "ORDER BY +entry_id",
                    (after,),
                ).fetchall()
        return [_features(r) for r in rows], int(seq)

    def kept_key_index(self, settings: str) -> tuple[int, bytes | bytearray] | None:
        """The kept copy of a lookup-key index made under `settings`, and its batch number:
        its first part's row and the others' after it, read in one state."""
        with self._snapshot() as db:
            row = db.execute(
                "SELECT seq, data FROM dedup_index WHERE id = 1 AND settings = ?", (settings,)
            ).fetchone()
            if row is None:
                return None
            seq, first = int(row[0]), row[1]
            del row
            sizes = [n for (n,) in db.execute("SELECT length(data) FROM dedup_index_parts")]
            if not sizes:
                return seq, first
            # One buffer of the copy's size, each part read into it in turn: the copy in
            # memory once (and one part), not once more as its rows.
            data = bytearray(len(first) + sum(sizes))
            data[: len(first)] = first
            at, first = len(first), b""
            for (part,) in db.execute("SELECT data FROM dedup_index_parts ORDER BY part"):
                data[at : at + len(part)] = part
                at += len(part)
        return seq, data

    def save_key_index(self, seq: int, settings: str, data: bytes | bytearray) -> None:
        """Keep a copy of a lookup-key index complete up to batch `seq`, unless the copy
        kept under the same settings is as recent: its first `KEPT_INDEX_PART` bytes in
        `dedup_index`, the rest in `dedup_index_parts`, in one transaction. Not waiting for
        another writer: a copy is kept at a process's close, which a busy database must not
        hold up (the next process keeps one)."""
        first, *rest = index_parts(data)
        with self._transaction(wait=False) as db:
            kept = db.execute(
                "INSERT INTO dedup_index (id, seq, settings, data) VALUES (1, ?, ?, ?) "
                "ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, "
                "settings = excluded.settings, data = excluded.data "
                "WHERE excluded.seq > dedup_index.seq OR excluded.settings != dedup_index.settings",
                (seq, settings, first),
            ).rowcount
            if kept:  # its other parts replace those of the copy before
                db.execute("DELETE FROM dedup_index_parts")
                db.executemany(
                    "INSERT INTO dedup_index_parts (part, data) VALUES (?, ?)",
                    enumerate(rest, 1),
                )

    def known_copies(self, ids: Iterable[int]) -> list[Known]:
        """The placed entries among `ids`, by entry id."""
        wanted = list(ids)
        if not wanted:
            return []
        with self._lock, self._snapshot() as db:
            rows = db.execute(
                "SELECT d.entry_id, d.seq, e.article_id, e.story_id FROM dedup_entries d "
                "JOIN entries e INDEXED BY entries_placement ON e.id = d.entry_id "
                "WHERE d.entry_id IN (SELECT value FROM json_each(?)) AND e.article_id IS NOT NULL",
                (json_param(wanted),),
            ).fetchall()
            # Consecutive batches share most of their possible copies. A row's features
            # change only when a batch records it again, under that batch's `seq`: the same
            # seq, the same features (read, and made into objects, once); and the same
            # placement too, the same `Known`.
            previous = self._known
            missing = [
                id_
                for id_, seq, _, _ in rows
                if (hit := previous.get(id_)) is None or hit[0] != seq
            ]
            fresh = {}
            if missing:
                fresh = {
                    row[1]: _features(row[1:])
                    for row in db.execute(
                        f"SELECT seq, {_FEATURE_COLUMNS} FROM dedup_entries "
                        "WHERE entry_id IN (SELECT value FROM json_each(?))",
                        (json_param(missing),),
                    )
                }
        rows.sort()
        known: dict[int, tuple[int, Known]] = {}
        for id_, seq, article_id, story_id in rows:
            hit = previous.get(id_)
            if hit is None or hit[0] != seq:
                hit = (seq, Known(fresh[id_], article_id, story_id))
            elif hit[1].article_id != article_id or hit[1].story_id != story_id:
                hit = (seq, Known(hit[1].features, article_id, story_id))
            known[id_] = hit
        self._known = known
        return [k for _, k in known.values()]

    def stories_near(
        self, terms: Iterable[str], since: datetime, until: datetime, ids: Iterable[int] = ()
    ) -> list[StoryState]:
        """Stories active in [since, until] indexed under one of `terms`, and those in `ids`."""
        wanted = terms if isinstance(terms, set | frozenset) else set(terms)
        with self._snapshot() as db:
            # The stories active in the window (by index on last_published: as many as the
            # window holds, however large the database), matched by their index words here,
            # a hash lookup each (SQLite's `IN` searched a B-tree it built of ~7k words).
            rows = {
                row[0]: row[:6]
                for row in db.execute(
                    "SELECT id, first_published, last_published, size, centroid, short, terms "
                    "FROM stories WHERE last_published >= ? AND first_published <= ?",
                    (to_db_time(since), to_db_time(until)),
                )
                if row[6] is not None and not wanted.isdisjoint(row[6].split("\x1f"))
            }
            others = sorted(set(ids).difference(rows))
            if others:
                rows.update(
                    (row[0], row)
                    for row in db.execute(
                        "SELECT id, first_published, last_published, size, centroid, short "
                        "FROM stories WHERE id IN (SELECT value FROM json_each(?))",
                        (json_param(others),),
                    )
                )
        # Consecutive batches load mostly the same stories: a story stored unchanged comes
        # back as the same object, its centroid not decoded again (see `stories.StoryMemo`).
        previous, self._stories = self._stories, {}
        stories = []
        for id_ in sorted(rows):
            row = rows[id_]
            hit = previous.get(id_)
            if hit is None or hit[0] != row:
                _, first, last, size, blob, short = row
                centroid = (
                    hit[1].centroid
                    if hit is not None and hit[0][4] == blob
                    else (load_vector(blob) or {})
                )
                story = StoryState(
                    id=id_,
                    first=db_time(first),
                    last=db_time(last),
                    size=size,
                    centroid=centroid,
                    short=bool(short),
                )
                hit = (row, story)
            self._stories[id_] = hit
            stories.append(hit[1])
        return stories

    def vocabulary(self, terms: Iterable[str]) -> tuple[Vocabulary, int]:
        """Document frequencies of `terms`, the number of documents, and the next free id."""
        wanted = set(terms)
        with self._lock:
            with self._snapshot() as db:  # the counts read are those of batch `seq`
                meta = dict(db.execute("SELECT key, value FROM dedup_meta").fetchall())
                if meta["seq"] != self._df_seq:  # another process recorded a batch
                    self._df.clear()
                    self._df_seq = meta["seq"]
                # Looked up one by one in key order (each B-tree step near the last): an
                # `IN (...)` list of them made SQLite build and walk a B-tree of its own first.
                missing = sorted(wanted.difference(self._df))
                stored = dict(
                    db.execute(
                        "SELECT term, df FROM json_each(?) CROSS JOIN term_counts ON term = value",
                        (json_param(missing),),
                    ).fetchall()
                    if missing
                    else ()
                )
            cached = self._df
            if len(cached) + len(missing) > DF_CACHE_WORDS:
                # Full: keep this batch's words only (the next batch's likeliest), if they fit.
                cached = {t: cached[t] for t in wanted.difference(missing)}
                self._df = cached if len(wanted) <= DF_CACHE_WORDS else {}
            for term in missing:
                cached[term] = stored.get(term)
            df = {t: n for t in wanted if (n := cached[t]) is not None}
        return Vocabulary(df, int(meta["docs"])), int(meta["next_id"])

    def save_outcome(
        self,
        features: Sequence[Features],
        outcome: Outcome,
        *,
        expected_next_id: int,
    ) -> int | None:
        """Record where a batch of entries went, in one transaction.

        Each story of `outcome.stories` is stored with its index words (those
        `stories_near` finds it under): `outcome.story_terms`.

        Returns:
            The batch's sequence number (see `dedup_features`); None, recording nothing,
            when another writer allocated article/story ids since `expected_next_id` was
            read (the batch must be decided again).

        Raises:
            StorageError: the write failed; nothing of the batch was recorded.
        """
        with self._lock:
            try:
                with self._transaction() as db:
                    seq = self._record_outcome(db, features, outcome, expected_next_id)
            except BaseException:
                self._df.clear()  # whatever was recorded, the counts are read afresh
                raise
            if seq is None:
                return None
            if seq == self._df_seq + 1:  # the cache was current: keep it so
                cached = self._df
                # As the upsert: a new row takes the change, a row stays >= 0 (no max():
                # the call took half of this loop's time).
                for term, change in outcome.df_delta.items():
                    if term in cached:
                        n = cached[term]
                        if n is None:
                            cached[term] = change
                        else:
                            n += change
                            cached[term] = n if n > 0 else 0
            else:
                self._df.clear()
            self._df_seq = seq
            return seq

    @staticmethod
    def _record_outcome(
        db: sqlite3.Connection,
        features: Sequence[Features],
        outcome: Outcome,
        expected_next_id: int,
    ) -> int | None:
        """`save_outcome`'s statements, inside its transaction; its batch number or None."""
        placed = {p.entry_id: p for p in outcome.placements}
        current = db.execute("SELECT value FROM dedup_meta WHERE key = 'next_id'").fetchone()
        if current[0] != expected_next_id:
            return None
        db.execute("UPDATE dedup_meta SET value = value + 1 WHERE key = 'seq'")
        (seq,) = db.execute("SELECT value FROM dedup_meta WHERE key = 'seq'").fetchone()
        previous = db.execute(
            "SELECT DISTINCT story_id FROM entries WHERE id IN (SELECT value FROM json_each(?)) "
            "AND story_id IS NOT NULL",
            (json_param([p.entry_id for p in outcome.placements]),),
        )
        touched = json_param(touched_stories(outcome, (story for (story,) in previous)))
        before = db.execute(_PLACED_IN, (touched,)).fetchone()
        for gone, into in sorted(outcome.merged.items()):
            db.execute("UPDATE entries SET story_id = ? WHERE story_id = ?", (into, gone))
            db.execute("UPDATE dedup_entries SET story_id = ? WHERE story_id = ?", (into, gone))
            db.execute("UPDATE story_aliases SET story_id = ? WHERE story_id = ?", (into, gone))
            db.execute(
                "INSERT OR REPLACE INTO story_aliases (id, story_id) VALUES (?, ?)", (gone, into)
            )
        db.executemany(
            "UPDATE entries SET article_id = ?, story_id = ? WHERE id = ?",
            [(p.article_id, p.story_id, p.entry_id) for p in outcome.placements],
        )
        # Articles an entry of the batch joined into another (found by their story: an
        # article's entries share one): their entries move to that article and its story.
        for join in outcome.joined_articles:
            if join.story != join.into_story:  # the story left keeps the words it counted
                db.execute(
                    "UPDATE dedup_entries SET story_id = ?, vector = NULL WHERE entry_id IN "
                    "(SELECT id FROM entries WHERE story_id = ? AND article_id = ?)",
                    (join.into_story, join.story, join.article),
                )
            db.execute(
                "UPDATE entries SET article_id = ?, story_id = ? "
                "WHERE story_id = ? AND article_id = ?",
                (join.into, join.into_story, join.story, join.article),
            )
        stories, articles = db.execute(_PLACED_IN, (touched,)).fetchone()
        db.executemany(
            _ADD_PLACED, [(stories - before[0], "stories"), (articles - before[1], "articles")]
        )
        db.executemany(
            "INSERT OR REPLACE INTO dedup_entries (entry_id, feed_url, published, url, guid, "
            "title_key, size, signature, lead_size, lead, story_id, vector, seq) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    f.entry_id,
                    f.feed_url,
                    to_db_time(f.published),
                    f.url,
                    f.guid,
                    f.title_key,
                    f.size,
                    f.signature,
                    f.lead_size,
                    f.lead,
                    placed[f.entry_id].story_id,
                    dump_vector(placed[f.entry_id].vector),
                    seq,
                )
                for f in features
            ],
        )
        db.executemany(
            "INSERT OR REPLACE INTO stories (id, first_published, last_published, size, "
            "centroid, terms, short) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    s.id,
                    to_db_time(s.first),
                    to_db_time(s.last),
                    s.size,
                    dump_vector(s.centroid),
                    "\x1f".join(outcome.story_terms[s.id]) or None,
                    int(s.short),
                )
                for s in outcome.stories
                if s.id not in outcome.merged
            ],
        )
        # A story merged into another has no entries left: no row either.
        db.execute(
            "DELETE FROM stories WHERE id IN (SELECT value FROM json_each(?))",
            (json_param(sorted(outcome.merged)),),
        )
        # One statement over a JSON object, its words in key order (sorted by orjson, not
        # by SQLite's sorter: cheaper than the B-tree walk in key order saves): pairs
        # through `executemany` cost a statement step per word (docs/speed.md, Storage).
        # (`WHERE true`: an upsert's SELECT needs a WHERE before ON CONFLICT.)
        db.execute(
            "INSERT INTO term_counts (term, df) SELECT key, value FROM json_each(?) WHERE true "
            "ON CONFLICT (term) DO UPDATE SET df = max(df + excluded.df, 0)",
            (json_param(outcome.df_delta, sort_keys=True),),
        )
        db.execute(
            "UPDATE dedup_meta SET value = max(value + ?, 0) WHERE key = 'docs'",
            (outcome.docs_delta,),
        )
        db.execute(
            "UPDATE dedup_meta SET value = max(value, ?) WHERE key = 'next_id'",
            (outcome.next_id,),
        )
        return int(seq)


#: The columns of `Features` that dedup_entries stores, in `_features`'s order.
_FEATURE_COLUMNS = (
    "entry_id, feed_url, published, url, guid, title_key, size, signature, lead_size, lead"
)


def _features(row: Sequence[Any]) -> Features:
    """Features (without terms) from a row of `_FEATURE_COLUMNS`."""
    entry_id, feed_url, published, url, guid, title_key, size, signature, lead_size, lead = row
    return Features(
        entry_id=entry_id,
        feed_url=feed_url,
        published=db_time(published),
        url=url,
        guid=guid,
        title_key=title_key,
        size=size,
        signature=signature,
        lead_size=lead_size,
        lead=lead,
    )
