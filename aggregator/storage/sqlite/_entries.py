"""Entries: a poll's entries written (new guids inserted, edits updated in place) and
read back oldest first with their feeds' names."""

from __future__ import annotations

import atexit
import contextlib
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from operator import itemgetter
from pathlib import Path
from typing import Any

from aggregator.storage.base import EntryRange
from aggregator.storage.encoding import (
    STAMP_SELECT,
    FeedItems,
    range_where,
    stamps,
)
from aggregator.storage.sqlite._base import BUSY_TIMEOUT, SqliteBase, storage_error
from aggregator.storage.sqlite.codec import db_time, from_db_time, json_param, to_db_time
from aggregator.types import Entry, EntryData, EntryReader


class EntriesMixin(SqliteBase):
    """The entries table's reads (written by `store_entries`, inside a poll's transaction)."""

    def entries_between(self, since: datetime, until: datetime) -> list[Entry]:
        """Entries published in [since, until), oldest first."""
        return self._select_entries(
            "published >= ? AND published < ?", (to_db_time(since), to_db_time(until))
        )

    def entries_in(self, ranges: Sequence[EntryRange]) -> list[Entry]:
        """The entries in any of `ranges` (each once), in one snapshot, oldest first."""
        with self._snapshot() as db:
            rows: dict[int, tuple[Any, ...]] = {}
            for part in ranges:
                # By first-seen time when bounded below by it (a daily digest's late
                # arrivals): SQLite, without statistics, may as well take the index of
                # publication times, and walk every entry published in the range.
                by = "entries_by_first_seen" if part.seen_since is not None else None
                where, times = range_where(part, "?")
                params = [to_db_time(t) for t in times]
                for row in _entry_rows(db, where, params, indexed_by=by):
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
        rows = self._query(
            "SELECT DISTINCT article_id FROM entries WHERE story_id IN "
            "(SELECT value FROM json_each(?)) AND article_id IN (SELECT value FROM json_each(?)) "
            "AND first_seen < ? AND published < ?",
            (
                json_param(sorted({s for s, _ in placed})),
                json_param(sorted({a for _, a in placed})),
                to_db_time(stored_before),
                to_db_time(dated_before),
            ),
        )
        return {r[0] for r in rows}

    def entries_by_ids(self, ids: Sequence[int]) -> list[Entry]:
        """The entries with these ids (those that exist), oldest first."""
        if not ids:
            return []
        return self._select_entries(
            "id IN (SELECT value FROM json_each(?))", (json_param(list(ids)),)
        )

    def entry_stamps(self, ids: Sequence[int]) -> dict[int, str]:
        """A fingerprint of each of these entries (see `Storage.entry_stamps`)."""
        if not ids:
            return {}
        with self._snapshot() as db:
            return _stamps(db, json_param(list(ids)))

    def stamped_entries(self, ids: Sequence[int]) -> tuple[list[Entry], dict[int, str]]:
        """`entries_by_ids` and `entry_stamps` of these ids, in one snapshot."""
        if not ids:
            return [], {}
        with self._snapshot() as db:
            return _stamped_entries(db, ids)

    def entry_reader(self) -> EntryReader | None:
        """A reader another process can open this file with (`SqliteReader`)."""
        return SqliteReader(self.path.absolute())

    def _select_entries(
        self, where: str, params: Sequence[Any], *, indexed_by: str | None = None
    ) -> list[Entry]:
        """The entries whose rows match `where` (found by the index `indexed_by`, if
        given), oldest first (by published, then id)."""
        with self._snapshot() as db:
            return _read_entries(db, where, params, indexed_by=indexed_by)

    def first_published(self) -> datetime | None:
        """When the earliest stored entry was published (None: no entry yet)."""
        rows = self._query("SELECT min(published) FROM entries")  # by entries_by_published
        return from_db_time(rows[0][0])

    def entry_count(self) -> int:
        return int(self._query("SELECT count(*) FROM entries")[0][0])


def store_entries(
    db: sqlite3.Connection, feed_url: str, entries: Sequence[EntryData], stamp: str
) -> tuple[list[int], list[int]]:
    """Store a poll's entries inside its transaction (`stamp`: its time, as stored).

    Items are matched to the feed's stored entries by guid, else as `encoding.FeedItems`
    says (the same item under another guid; another item under a reused one). New ones
    are inserted; a known one whose content changed is updated in place (keeping its id
    and first-seen time); an unchanged one is left alone.

    Returns:
        The new entries' ids and the updated ones', in the order listed.
    """
    new_ids: list[int] = []
    updated_ids: list[int] = []

    def stored_item(id_: int) -> tuple[str, str | None, datetime | None]:
        title, link, published, dated = db.execute(
            "SELECT title, link, published, dated FROM entries WHERE id = ?", (id_,)
        ).fetchone()
        return title, link, db_time(published) if dated else None

    known = {
        r["guid"]: (r["id"], r["content_hash"], r["first_seen"], r["dated"])
        for r in db.execute(
            "SELECT id, guid, content_hash, first_seen, dated FROM entries WHERE feed_url = ?",
            (feed_url,),
        )
    }
    searched: list[tuple[int, str]] = []  # (id, content hash): queued for the index
    for entry, fingerprint, old in FeedItems(known, stored_item).changed(entries):
        published = (
            to_db_time(entry.published)
            if entry.published
            else (old[2] if old is not None else stamp)
        )
        values = (
            entry.title,
            entry.link,
            published,
            int(entry.published is not None),
            stamp,
            entry.author,
            entry.summary,
            entry.text,
            entry.language,
            fingerprint,
        )
        if old is None:
            cursor = db.execute(
                "INSERT INTO entries (title, link, published, dated, updated_at, author, "
                "summary, text, language, content_hash, feed_url, guid, first_seen) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (*values, feed_url, entry.guid, stamp),
            )
            assert cursor.lastrowid is not None
            new_ids.append(cursor.lastrowid)
            searched.append((cursor.lastrowid, fingerprint))
        else:
            db.execute(
                "UPDATE entries SET title = ?, link = ?, published = ?, dated = ?, "
                "updated_at = ?, author = ?, summary = ?, text = ?, language = ?, "
                "content_hash = ? WHERE id = ?",
                (*values, old[0]),
            )
            updated_ids.append(old[0])
            searched.append((old[0], fingerprint))
    queue_for_search(db, searched)
    return new_ids, updated_ids


def queue_for_search(db: sqlite3.Connection, entries: Sequence[tuple[int, str]]) -> None:
    """Queue new and edited entries (id, content hash) for the search index, which
    `SearchMixin.index_pending` brings up to date (schema.py says why not here)."""
    db.executemany(
        "INSERT OR REPLACE INTO fts_pending (entry_id, content_hash) VALUES (?, ?)", entries
    )


@dataclass(frozen=True)
class SqliteReader:
    """`stamped_entries` of the database at `path`, for another process (a feature worker).

    Its own connection, opened on the first call and kept for the process's life (closed
    at its exit: `_close_readers`): opened as it is (never created, checked or upgraded:
    the process that handed the reader out did that), refusing writes, and with SQLite's
    default page cache (2 MiB, not the 64 MiB of the storage's own connection).
    """

    path: Path

    def __call__(self, ids: Sequence[int]) -> tuple[list[Entry], dict[int, str]]:
        try:
            db = _READERS.get(self.path)
            if db is None:
                db = sqlite3.connect(
                    f"{self.path.absolute().as_uri()}?mode=rw",
                    uri=True,
                    timeout=BUSY_TIMEOUT,
                    isolation_level=None,
                    check_same_thread=False,
                )
                try:
                    db.execute("PRAGMA query_only = ON")
                except BaseException:
                    db.close()
                    raise
                if not _READERS:
                    atexit.register(_close_readers)
                _READERS[self.path] = db
            if not ids:
                return [], {}
            db.execute("BEGIN")
            try:
                return _stamped_entries(db.cursor(), ids)
            finally:
                # A read that failed on memory or the disk may have ended the transaction
                # itself: committing then would say only that, not what went wrong.
                if db.in_transaction:
                    db.execute("COMMIT")
        except sqlite3.Error as e:
            raise storage_error("cannot read entries", e, self.path) from e


#: The connections `SqliteReader` opened in this process, by database path.
_READERS: dict[Path, sqlite3.Connection] = {}


def _close_readers() -> None:
    """At the process's exit: close `SqliteReader`'s connections. A connection is in a
    reference cycle (its statement cache), which the exit's last collection no longer
    reaches in our processes (`parallel.ending`); the last connection to a database to
    close is the one that removes its WAL and shared-memory files."""
    while _READERS:
        _, db = _READERS.popitem()
        with contextlib.suppress(sqlite3.Error):
            db.close()


def _stamped_entries(db: sqlite3.Cursor, ids: Sequence[int]) -> tuple[list[Entry], dict[int, str]]:
    """`stamped_entries` within a snapshot."""
    wanted = json_param(list(ids))
    entries = _read_entries(db, "id IN (SELECT value FROM json_each(?))", (wanted,))
    return entries, _stamps(db, wanted)


def _read_entries(
    db: sqlite3.Cursor, where: str, params: Sequence[Any], *, indexed_by: str | None = None
) -> list[Entry]:
    """The entries whose rows match `where` (by the index `indexed_by`, if given), oldest
    first, within a snapshot."""
    return _oldest_first(db, _entry_rows(db, where, params, indexed_by=indexed_by))


def _entry_rows(
    db: sqlite3.Cursor, where: str, params: Sequence[Any], *, indexed_by: str | None = None
) -> list[tuple[Any, ...]]:
    """The rows (`_ENTRY_COLUMNS`) that match `where`, found by the index `indexed_by`, if
    given."""
    table = f"entries INDEXED BY {indexed_by}" if indexed_by else "entries"
    return db.execute(f"SELECT {_ENTRY_COLUMNS} FROM {table} WHERE {where}", params).fetchall()


def _oldest_first(db: sqlite3.Cursor, rows: list[tuple[Any, ...]]) -> list[Entry]:
    """Entries of rows of `_ENTRY_COLUMNS`, oldest first, with their feeds' names."""
    # Feed names by a dict, rows sorted here: SQLite's join looked each row's feed
    # up in two B-trees, and its sorter copied every row, texts and all.
    names = dict(
        db.execute(
            "SELECT url, name FROM feeds WHERE url IN (SELECT value FROM json_each(?))",
            (json_param(sorted({row[1] for row in rows})),),
        )
    )
    rows.sort(key=_OLDEST_FIRST)
    return _entries(rows, names)


def _stamps(db: sqlite3.Cursor, wanted: str) -> dict[int, str]:
    """`entry_stamps` of the ids in the JSON array `wanted`, within a snapshot."""
    rows = db.execute(
        f"{STAMP_SELECT} WHERE e.id IN (SELECT value FROM json_each(?))",
        (wanted,),
    )
    return stamps(rows)


#: The columns `_entries` reads, in its order.
_ENTRY_COLUMNS = (
    "id, feed_url, guid, title, link, published, dated, first_seen, updated_at, author, "
    "summary, text, language, article_id, story_id"
)
#: Entries' order: by published time (stored as fixed-width UTC text), then id.
_OLDEST_FIRST = itemgetter(5, 0)


def _entries(rows: Iterable[tuple[Any, ...]], names: Mapping[str, str]) -> list[Entry]:
    """Entries from rows of `_ENTRY_COLUMNS`, given their feeds' names (a row of a feed
    without one is left out, as a join would)."""
    # The entries of one poll share their first-seen and update times: each distinct
    # stamp is parsed once (its datetime is immutable, so sharing it is safe).
    times: dict[str, datetime] = {}

    def parse(value: str) -> datetime:
        parsed = times.get(value)
        if parsed is None:
            parsed = times[value] = db_time(value)
        return parsed

    return [
        Entry(
            id=id_,
            feed_url=feed_url,
            feed_name=names[feed_url],
            guid=guid,
            title=title,
            link=link,
            published=parse(published),
            dated=bool(dated),
            first_seen=parse(first_seen),
            updated_at=parse(updated_at),
            author=author,
            summary=summary,
            text=text,
            language=language,
            article_id=article_id,
            story_id=story_id,
        )
        for (
            id_,
            feed_url,
            guid,
            title,
            link,
            published,
            dated,
            first_seen,
            updated_at,
            author,
            summary,
            text,
            language,
            article_id,
            story_id,
        ) in rows
        if feed_url in names
    ]
