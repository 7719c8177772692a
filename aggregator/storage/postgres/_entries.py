"""Entries in PostgreSQL: a poll's entries written (new guids inserted, edits updated in
place) and read back oldest first with their feeds' names."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from operator import itemgetter
from typing import Any

import psycopg

from aggregator.storage.base import EntryRange
from aggregator.storage.encoding import (
    STAMP_SELECT,
    FeedItems,
    range_where,
    stamps,
)
from aggregator.storage.postgres._base import Connection, PostgresBase, Row, aware
from aggregator.storage.postgres._fulltext import index_entries
from aggregator.types import Entry, EntryData, EntryReader


class EntriesMixin(PostgresBase):
    """The entries table's reads (written by `store_entries`, inside a poll's transaction)."""

    def entries_between(self, since: datetime, until: datetime) -> list[Entry]:
        """Entries published in [since, until), oldest first."""
        return self._select_entries(
            "published >= %s AND published < %s", (aware(since), aware(until))
        )

    def entries_in(self, ranges: Sequence[EntryRange]) -> list[Entry]:
        """The entries in any of `ranges` (each once), in one snapshot, oldest first."""
        with self._snapshot() as db:
            rows: dict[int, Row] = {}
            for part in ranges:
                where, times = range_where(part, "%s")
                for row in _entry_rows(db, where, [aware(t) for t in times]):
                    rows[row[0]] = row
            return _oldest_first(db, list(rows.values()))

    def articles_stored(
        self, placed: Sequence[tuple[int, int]], *, stored_before: datetime, dated_before: datetime
    ) -> set[int]:
        """The articles of `placed` (story, article) with an entry first stored before
        `stored_before` and published before `dated_before` (by the index of entries by
        story and article)."""
        if not placed:
            return set()
        with self._snapshot() as db:
            rows = db.execute(
                "SELECT DISTINCT article_id FROM entries WHERE story_id = ANY(%s) "
                "AND article_id = ANY(%s) AND first_seen < %s AND published < %s",
                (
                    sorted({s for s, _ in placed}),
                    sorted({a for _, a in placed}),
                    aware(stored_before),
                    aware(dated_before),
                ),
            ).fetchall()
        return {r[0] for r in rows}

    def entries_by_ids(self, ids: Sequence[int]) -> list[Entry]:
        """The entries with these ids (those that exist), oldest first."""
        if not ids:
            return []
        return self._select_entries("id = ANY(%s)", (list(ids),))

    def entry_stamps(self, ids: Sequence[int]) -> dict[int, str]:
        """A fingerprint of each of these entries (see `Storage.entry_stamps`)."""
        if not ids:
            return {}
        with self._snapshot() as db:
            return _stamps(db, list(ids))

    def entry_reader(self) -> EntryReader | None:
        """None: the feature workers are sent the entries (a connection each would cost
        PostgreSQL a backend per worker, and the password would travel with the reader)."""
        return None

    def stamped_entries(self, ids: Sequence[int]) -> tuple[list[Entry], dict[int, str]]:
        """`entries_by_ids` and `entry_stamps` of these ids, in one snapshot."""
        if not ids:
            return [], {}
        with self._snapshot() as db:
            entries = _read_entries(db, "id = ANY(%s)", (list(ids),))
            return entries, _stamps(db, list(ids))

    def _select_entries(self, where: str, params: Sequence[Any]) -> list[Entry]:
        """The entries whose rows match `where`, oldest first (by published, then id)."""
        with self._snapshot() as db:
            return _read_entries(db, where, params)

    def first_published(self) -> datetime | None:
        """When the earliest stored entry was published (None: no entry yet)."""
        value: datetime | None = self._rows("SELECT min(published) FROM entries")[0][0]
        return value

    def entry_count(self) -> int:
        return int(self._rows("SELECT count(*) FROM entries")[0][0])


def store_entries(
    db: Connection, feed_url: str, entries: Sequence[EntryData], now: datetime
) -> tuple[list[int], list[int]]:
    """Store a poll's entries inside its transaction (`now`: its time).

    Items are matched to the feed's stored entries as SQLite's `store_entries` does
    (`encoding.FeedItems`); new ones are inserted, a known one whose content changed is
    updated in place (keeping its id and first-seen time), an unchanged one is left
    alone.

    Returns:
        The new entries' ids and the updated ones', in the order listed.
    """

    def stored_item(id_: int) -> tuple[str, str | None, datetime | None]:
        found = db.execute(
            "SELECT title, link, CASE WHEN dated THEN published END FROM entries WHERE id = %s",
            (id_,),
        ).fetchone()
        assert found is not None  # (in the transaction that read `known`)
        return found[0], found[1], found[2]

    known = {
        guid: (id_, fingerprint, first_seen)
        for id_, guid, fingerprint, first_seen in db.execute(
            "SELECT id, guid, content_hash, first_seen FROM entries WHERE feed_url = %s",
            (feed_url,),
        )
    }
    inserts: list[tuple[Any, ...]] = []
    updates: list[tuple[Any, ...]] = []
    inserted: list[EntryData] = []  # the entries of `inserts`, `updates`: to index them
    edited: list[EntryData] = []
    for entry, fingerprint, old in FeedItems(known, stored_item).changed(entries):
        published = entry.published or (old[2] if old is not None else now)
        values = (
            entry.title,
            entry.link,
            published,
            entry.published is not None,
            now,
            entry.author,
            entry.summary,
            entry.text,
            entry.language,
            fingerprint,
        )
        if old is None:
            inserts.append((*values, feed_url, entry.guid, now))
            inserted.append(entry)
        else:
            updates.append((*values, old[0]))
            edited.append(entry)
    new_ids: list[int] = []
    if inserts:
        cursor = db.cursor()
        cursor.executemany(
            "INSERT INTO entries (title, link, published, dated, updated_at, author, "
            "summary, text, language, content_hash, feed_url, guid, first_seen) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
            inserts,
            returning=True,
        )
        while True:  # one result per row inserted, in order
            row = cursor.fetchone()
            assert row is not None
            new_ids.append(int(row[0]))
            if not cursor.nextset():
                break
    if updates:
        db.cursor().executemany(
            "UPDATE entries SET title = %s, link = %s, published = %s, dated = %s, "
            "updated_at = %s, author = %s, summary = %s, text = %s, language = %s, "
            "content_hash = %s WHERE id = %s",
            updates,
        )
    updated_ids = [u[-1] for u in updates]
    index_entries(db, zip(new_ids + updated_ids, [*inserted, *edited], strict=True))
    return new_ids, updated_ids


def _read_entries(db: psycopg.Cursor[Row], where: str, params: Sequence[Any]) -> list[Entry]:
    """The entries whose rows match `where`, oldest first, within a snapshot."""
    return _oldest_first(db, _entry_rows(db, where, params))


def _entry_rows(db: psycopg.Cursor[Row], where: str, params: Sequence[Any]) -> list[Row]:
    """The rows (`_ENTRY_COLUMNS`) that match `where`."""
    return db.execute(f"SELECT {_ENTRY_COLUMNS} FROM entries WHERE {where}", params).fetchall()


def _oldest_first(db: psycopg.Cursor[Row], found: list[Row]) -> list[Entry]:
    """Entries of rows of `_ENTRY_COLUMNS`, oldest first, with their feeds' names."""
    names: dict[str, str] = {
        url: name
        for url, name in db.execute(
            "SELECT url, name FROM feeds WHERE url = ANY(%s)",
            (sorted({row[1] for row in found}),),
        )
    }
    found.sort(key=_OLDEST_FIRST)
    return _entries(found, names)


def _stamps(db: psycopg.Cursor[Row], ids: list[int]) -> dict[int, str]:
    """`entry_stamps` of these ids, within a snapshot."""
    rows = db.execute(
        f"{STAMP_SELECT} WHERE e.id = ANY(%s)",
        (ids,),
    )
    return stamps(rows)


#: The columns `_entries` reads, in its order.
_ENTRY_COLUMNS = (
    "id, feed_url, guid, title, link, published, dated, first_seen, updated_at, author, "
    "summary, text, language, article_id, story_id"
)
#: Entries' order: by published time, then id.
_OLDEST_FIRST = itemgetter(5, 0)


def _entries(rows: Iterable[Row], names: Mapping[str, str]) -> list[Entry]:
    """Entries from rows of `_ENTRY_COLUMNS`, given their feeds' names (a row of a feed
    without one is left out, as a join would)."""
    return [
        Entry(
            id=row[0],
            feed_url=row[1],
            feed_name=names[row[1]],
            guid=row[2],
            title=row[3],
            link=row[4],
            published=row[5],
            dated=bool(row[6]),
            first_seen=row[7],
            updated_at=row[8],
            author=row[9],
            summary=row[10],
            text=row[11],
            language=row[12],
            article_id=row[13],
            story_id=row[14],
        )
        for row in rows
        if row[1] in names
    ]
