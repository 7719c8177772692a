"""Deduplication's persistence in PostgreSQL: entries' copy features and placements, stories
with their centroids and index words, story aliases, word document frequencies, batch
numbers. No caches: every call reads and decodes afresh (docs/storage.md, Caches)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from aggregator.storage.encoding import dump_vector, index_parts, load_vector
from aggregator.storage.postgres._base import Connection, PostgresBase, aware
from aggregator.storage.totals import ADD_PLACED, touched_stories
from aggregator.types import Features, Known, Outcome, StoryState, Vocabulary

#: The distinct stories and articles among the entries of some stories (by
#: entries_by_story_article), before and after a batch: what it adds to the store's.
_PLACED_IN = (
    "SELECT count(DISTINCT story_id), count(DISTINCT article_id) FROM entries "
    "WHERE story_id = ANY(%s)"
)
_ADD_PLACED = ADD_PLACED.format("%s")


class DedupMixin(PostgresBase):
    """The dedup_entries, stories, story_aliases, term_counts and dedup_meta tables."""

    def unassigned_ids(self, among: Iterable[int] | None = None) -> list[int]:
        """Entries not yet placed in an article (new ones, or stored before dedup existed)."""
        if among is None:
            rows = self._rows("SELECT id FROM entries WHERE article_id IS NULL ORDER BY id")
        else:
            rows = self._rows(
                "SELECT id FROM entries WHERE article_id IS NULL AND id = ANY(%s) ORDER BY id",
                (list(among),),
            )
        return [r[0] for r in rows]

    def placing_order(self, ids: Iterable[int]) -> list[int]:
        """These entries' ids in the order a daemon places them (`Storage.placing_order`),
        text by code point as SQLite orders it."""
        wanted = list(ids)
        if not wanted:
            return []
        rows = self._rows(
            "SELECT id FROM entries WHERE id = ANY(%s) "
            'ORDER BY published, feed_url COLLATE "C", guid COLLATE "C", id',
            (wanted,),
        )
        return [r[0] for r in rows]

    def story_id(self, story_id: int) -> int | None:
        """The story a story id stands for now: itself, the story it was merged into, or
        None when no entry is filed under it (an unknown id)."""
        with self._snapshot() as db:
            alias = db.execute(
                "SELECT story_id FROM story_aliases WHERE id = %s", (story_id,)
            ).fetchone()
            current = int(alias[0]) if alias else story_id
            row = db.execute(
                "SELECT 1 FROM entries WHERE story_id = %s LIMIT 1", (current,)
            ).fetchone()
        return current if row else None

    def article_count(self, story_id: int, excluding: Iterable[int] = ()) -> int:
        """How many articles have entries in the story, not counting the entries whose ids
        are in `excluding`; 0 for an unknown id."""
        with self._snapshot() as db:
            row = db.execute(
                "SELECT count(DISTINCT article_id) FROM entries "
                "WHERE story_id = %s AND id <> ALL(%s)",
                (story_id, list(excluding)),
            ).fetchone()
        return int(row[0]) if row else 0

    def previous_placements(
        self, ids: Sequence[int]
    ) -> dict[int, tuple[int | None, dict[str, float] | None]]:
        """For entries placed before: the story their words counted in, and that vector."""
        rows = self._rows(
            "SELECT entry_id, story_id, vector FROM dedup_entries WHERE entry_id = ANY(%s)",
            (list(ids),),
        )
        return {
            entry_id: (story_id, load_vector(vector) if vector else None)
            for entry_id, story_id, vector in rows
        }

    def dedup_features(self, after: int = 0) -> tuple[list[Features], int]:
        """Placed entries' copy features recorded after batch number `after`.

        Returns:
            The features (without terms), and the batch number they are complete up to.
        """
        with self._snapshot() as db:
            seq = _meta(db.execute("SELECT value FROM dedup_meta WHERE key = 'seq'").fetchone())
            rows = db.execute(
                f"SELECT {_FEATURE_COLUMNS} FROM dedup_entries WHERE seq > %s ORDER BY entry_id",
                (after,),
            ).fetchall()
        return [_features(r) for r in rows], seq

    def kept_key_index(self, settings: str) -> tuple[int, bytes | bytearray] | None:
        """The kept copy of a lookup-key index made under `settings`, and its batch number:
        its first part's row and the others' after it, read in one snapshot, in binary (in
        text, bytea comes as hex: twice the bytes, and past 1 GB PostgreSQL refuses it)."""
        with self._snapshot() as db:
            row = db.execute(
                "SELECT seq, data FROM dedup_index WHERE id = 1 AND settings = %s",
                (settings,),
                binary=True,
            ).fetchone()
            if row is None:
                return None
            seq, first = int(row[0]), row[1]
            del row
            parts = db.execute(
                "SELECT part, octet_length(data) FROM dedup_index_parts ORDER BY part"
            ).fetchall()
            if not parts:
                return seq, first
            # One buffer of the copy's size, each part read into it in turn (as SQLite's).
            data = bytearray(len(first) + sum(n for _, n in parts))
            data[: len(first)] = first
            at, first = len(first), b""
            for part, size in parts:
                (chunk,) = db.execute(
                    "SELECT data FROM dedup_index_parts WHERE part = %s", (part,), binary=True
                ).fetchall()[0]
                data[at : at + size] = chunk
                at += size
        return seq, data

    def save_key_index(self, seq: int, settings: str, data: bytes | bytearray) -> None:
        """Keep a copy of a lookup-key index complete up to batch `seq`, unless the copy
        kept under the same settings is as recent (in parts, as SQLite's)."""
        first, *rest = index_parts(data)
        with self._transaction(serialised=False) as db:  # derived data: no page changes
            kept = db.execute(
                "INSERT INTO dedup_index (id, seq, settings, data) VALUES (1, %s, %s, %s) "
                "ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, "
                "settings = excluded.settings, data = excluded.data "
                "WHERE excluded.seq > dedup_index.seq "
                "OR excluded.settings != dedup_index.settings",
                (seq, settings, first),
            ).rowcount
            if kept:  # its other parts replace those of the copy before (the row locked)
                db.execute("DELETE FROM dedup_index_parts")
                for part, chunk in enumerate(rest, 1):
                    db.execute(
                        "INSERT INTO dedup_index_parts (part, data) VALUES (%s, %s)",
                        (part, chunk),
                    )

    def known_copies(self, ids: Iterable[int]) -> list[Known]:
        """The placed entries among `ids`, by entry id."""
        wanted = list(ids)
        if not wanted:
            return []
        rows = self._rows(
            f"SELECT e.article_id, e.story_id, {_FEATURE_COLUMNS_OF_D} FROM dedup_entries d "
            "JOIN entries e ON e.id = d.entry_id "
            "WHERE d.entry_id = ANY(%s) AND e.article_id IS NOT NULL ORDER BY d.entry_id",
            (wanted,),
        )
        return [
            Known(features=_features(row[2:]), article_id=row[0], story_id=row[1]) for row in rows
        ]

    def stories_near(
        self, terms: Iterable[str], since: datetime, until: datetime, ids: Iterable[int] = ()
    ) -> list[StoryState]:
        """Stories active in [since, until] indexed under one of `terms`, and those in `ids`."""
        wanted = terms if isinstance(terms, set | frozenset) else set(terms)
        with self._snapshot() as db:
            # The window's stories, matched by their index words here (as SQLite's does).
            rows = {
                row[0]: row[:6]
                for row in db.execute(
                    "SELECT id, first_published, last_published, size, centroid, short, terms "
                    "FROM stories WHERE last_published >= %s AND first_published <= %s",
                    (aware(since), aware(until)),
                )
                if row[6] is not None and not wanted.isdisjoint(row[6].split("\x1f"))
            }
            others = sorted(set(ids).difference(rows))
            if others:
                rows.update(
                    (row[0], row)
                    for row in db.execute(
                        "SELECT id, first_published, last_published, size, centroid, short "
                        "FROM stories WHERE id = ANY(%s)",
                        (others,),
                    )
                )
        return [
            StoryState(
                id=id_,
                first=first,
                last=last,
                size=size,
                centroid=load_vector(bytes(centroid)) or {},
                short=bool(short),
            )
            for id_, first, last, size, centroid, short in (rows[i] for i in sorted(rows))
        ]

    def vocabulary(self, terms: Iterable[str]) -> tuple[Vocabulary, int]:
        """Document frequencies of `terms`, the number of documents, and the next free id."""
        with self._snapshot() as db:
            meta = dict(db.execute("SELECT key, value FROM dedup_meta").fetchall())
            df = dict(
                db.execute(
                    "SELECT term, df FROM term_counts WHERE term = ANY(%s)", (list(set(terms)),)
                ).fetchall()
            )
        return Vocabulary(df, int(meta["docs"])), int(meta["next_id"])

    def save_outcome(
        self,
        features: Sequence[Features],
        outcome: Outcome,
        *,
        expected_next_id: int,
    ) -> int | None:
        """Record where a batch of entries went, in one transaction (see the protocol).

        Returns:
            The batch's number (see `dedup_features`); None, recording nothing, when
            another writer allocated article/story ids since `expected_next_id` was read.

        Raises:
            ValueError: a naive datetime (nothing was recorded).
            StorageError: the write failed; nothing of the batch was recorded.
        """
        for f in features:
            aware(f.published)
        for s in outcome.stories:
            aware(s.first)
            aware(s.last)
        with self._transaction() as db:
            return _record_outcome(db, features, outcome, expected_next_id)


def _record_outcome(
    db: Connection, features: Sequence[Features], outcome: Outcome, expected_next_id: int
) -> int | None:
    """`save_outcome`'s statements, inside its transaction; its batch number or None."""
    placed = {p.entry_id: p for p in outcome.placements}
    current = _meta(db.execute("SELECT value FROM dedup_meta WHERE key = 'next_id'").fetchone())
    if current != expected_next_id:
        return None
    seq = _meta(
        db.execute(
            "UPDATE dedup_meta SET value = value + 1 WHERE key = 'seq' RETURNING value"
        ).fetchone()
    )
    previous = db.execute(
        "SELECT DISTINCT story_id FROM entries WHERE id = ANY(%s) AND story_id IS NOT NULL",
        ([p.entry_id for p in outcome.placements],),
    )
    touched = touched_stories(outcome, (story for (story,) in previous))
    before = _two(db.execute(_PLACED_IN, (touched,)).fetchone())
    for gone, into in sorted(outcome.merged.items()):
        db.execute("UPDATE entries SET story_id = %s WHERE story_id = %s", (into, gone))
        db.execute("UPDATE dedup_entries SET story_id = %s WHERE story_id = %s", (into, gone))
        db.execute("UPDATE story_aliases SET story_id = %s WHERE story_id = %s", (into, gone))
        db.execute(
            "INSERT INTO story_aliases (id, story_id) VALUES (%s, %s) "
            "ON CONFLICT (id) DO UPDATE SET story_id = excluded.story_id",
            (gone, into),
        )
    cursor = db.cursor()
    cursor.executemany(
        "UPDATE entries SET article_id = %s, story_id = %s WHERE id = %s",
        [(p.article_id, p.story_id, p.entry_id) for p in outcome.placements],
    )
    for join in outcome.joined_articles:  # as on SQLite (sqlite/_dedup.py)
        if join.story != join.into_story:
            db.execute(
                "UPDATE dedup_entries SET story_id = %s, vector = NULL WHERE entry_id IN "
                "(SELECT id FROM entries WHERE story_id = %s AND article_id = %s)",
                (join.into_story, join.story, join.article),
            )
        db.execute(
            "UPDATE entries SET article_id = %s, story_id = %s "
            "WHERE story_id = %s AND article_id = %s",
            (join.into, join.into_story, join.story, join.article),
        )
    stories, articles = _two(db.execute(_PLACED_IN, (touched,)).fetchone())
    cursor.executemany(
        _ADD_PLACED, [(stories - before[0], "stories"), (articles - before[1], "articles")]
    )
    cursor.executemany(
        "INSERT INTO dedup_entries (entry_id, feed_url, published, url, guid, title_key, size, "
        "signature, lead_size, lead, story_id, vector, seq) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
        "ON CONFLICT (entry_id) DO UPDATE SET feed_url = excluded.feed_url, "
        "published = excluded.published, url = excluded.url, guid = excluded.guid, "
        "title_key = excluded.title_key, size = excluded.size, signature = excluded.signature, "
        "lead_size = excluded.lead_size, lead = excluded.lead, story_id = excluded.story_id, "
        "vector = excluded.vector, seq = excluded.seq",
        [
            (
                f.entry_id,
                f.feed_url,
                f.published,
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
    cursor.executemany(
        "INSERT INTO stories (id, first_published, last_published, size, centroid, terms, short) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s) "
        "ON CONFLICT (id) DO UPDATE SET first_published = excluded.first_published, "
        "last_published = excluded.last_published, size = excluded.size, "
        "centroid = excluded.centroid, terms = excluded.terms, short = excluded.short",
        [
            (
                s.id,
                s.first,
                s.last,
                s.size,
                dump_vector(s.centroid),
                "\x1f".join(outcome.story_terms[s.id]) or None,
                s.short,
            )
            for s in outcome.stories
            if s.id not in outcome.merged
        ],
    )
    # A story merged into another has no entries left: no row either.
    db.execute("DELETE FROM stories WHERE id = ANY(%s)", (sorted(outcome.merged),))
    # Words in one order, so that two writers' upserts could never deadlock on them.
    words = sorted(outcome.df_delta)
    db.execute(
        "INSERT INTO term_counts (term, df) SELECT * FROM unnest(%s::text[], %s::bigint[]) "
        "ON CONFLICT (term) DO UPDATE SET df = greatest(term_counts.df + excluded.df, 0)",
        (words, [outcome.df_delta[w] for w in words]),
    )
    db.execute(
        "UPDATE dedup_meta SET value = greatest(value + %s, 0) WHERE key = 'docs'",
        (outcome.docs_delta,),
    )
    db.execute(
        "UPDATE dedup_meta SET value = greatest(value, %s) WHERE key = 'next_id'",
        (outcome.next_id,),
    )
    return seq


def _meta(row: tuple[Any, ...] | None) -> int:
    assert row is not None
    return int(row[0])


def _two(row: tuple[Any, ...] | None) -> tuple[int, int]:
    assert row is not None
    return int(row[0]), int(row[1])


#: The columns of `Features` that dedup_entries stores, in `_features`'s order.
_FEATURE_COLUMNS = (
    "entry_id, feed_url, published, url, guid, title_key, size, signature, lead_size, lead"
)
_FEATURE_COLUMNS_OF_D = ", ".join(f"d.{c.strip()}" for c in _FEATURE_COLUMNS.split(","))


def _features(row: Sequence[Any]) -> Features:
    """Features (without terms) from a row of `_FEATURE_COLUMNS`."""
    entry_id, feed_url, published, url, guid, title_key, size, signature, lead_size, lead = row
    return Features(
        entry_id=entry_id,
        feed_url=feed_url,
        published=published,
        url=url,
        guid=guid,
        title_key=title_key,
        size=size,
        signature=signature,
        lead_size=lead_size,
        lead=lead,
    )
