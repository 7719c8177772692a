"""SQLite storage: feeds, entries, poll records. The only module that imports sqlite3."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import struct
import sys
import threading
from array import array
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from operator import itemgetter
from pathlib import Path
from typing import Any, NamedTuple, Self

import orjson

from aggregator.exceptions import CorruptDatabaseError, DatabasePathError, StorageError
from aggregator.storage.lock import DaemonReport, read_report
from aggregator.storage.schema import migrate
from aggregator.types import (
    DeliveryStatus,
    Entry,
    EntryData,
    Features,
    Feed,
    Known,
    Outcome,
    PollStatus,
    StoryState,
    Vocabulary,
)

#: Words whose document frequency a storage keeps in memory (`vocabulary`): ~140 bytes
#: each (the word, its count, the dictionary slot), so at most ~35 MiB. A batch of 1,000
#: news entries uses ~17k words; the bench's 30k-entry database holds ~40k.
DF_CACHE_WORDS = 1 << 18
#: Databases up to this size are checked (PRAGMA quick_check) each time they are opened:
#: it reads every page, ~0.1 s at 60 MB. A larger one is found damaged by the first
#: statement that meets the damage ("malformed").
QUICK_CHECK_MAX = 64 << 20
#: SQLite's result codes for a path that names no usable database: a configuration error.
_UNUSABLE = {"SQLITE_NOTADB", "SQLITE_CANTOPEN", "SQLITE_READONLY", "SQLITE_PERM"}


class SaveResult(NamedTuple):
    """What saving one poll's entries changed."""

    new: int
    updated: int
    new_ids: list[int]
    updated_ids: list[int]


class FeedState(NamedTuple):
    """A feed's stored health record, as `status` shows it."""

    url: str
    name: str
    title: str | None
    last_attempt: datetime | None
    last_success: datetime | None
    last_error: str | None
    consecutive_failures: int
    next_poll: datetime | None
    disabled_reason: str | None
    redirected_url: str | None
    etag: str | None
    last_modified: str | None
    content_hash: str | None
    entry_count: int
    retry_after: datetime | None = None
    last_status: int | None = None

    @property
    def disabled(self) -> bool:
        return self.disabled_reason is not None

    @classmethod
    def never_polled(cls, url: str, name: str) -> FeedState:
        """The state of a configured feed the database has no row for (yet)."""
        return cls(url, name, None, None, None, None, 0, None, None, None, None, None, None, 0)


class FeedUpdate(NamedTuple):
    """What one poll learnt about a feed besides its entries (None: nothing to say)."""

    http_status: int | None = None
    etag: str | None = None
    last_modified: str | None = None
    content_hash: str | None = None  # of the body, to skip parsing identical bytes
    redirected_url: str | None = None  # a 301/308 target: used from then on
    next_poll: datetime | None = None
    retry_after: datetime | None = None
    disabled_reason: str | None = None


class EmailDelivery(NamedTuple):
    """One digest's delivery to one recipient, as `status` shows it."""

    digest: str  # the digest's window name, e.g. 2025-02-10
    recipient: str
    status: DeliveryStatus
    attempts: int
    first_attempt: datetime
    last_attempt: datetime
    sent_at: datetime | None
    next_attempt: datetime | None  # a failed delivery's next retry; None: given up
    error: str | None
    message_id: str | None


def to_db_time(value: datetime) -> str:
    """UTC, fixed width, so that text order is time order."""
    if value.tzinfo is None:
        raise ValueError("naive datetime reached storage")
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def from_db_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def content_hash(entry: EntryData) -> str:
    """A fingerprint of what a reader sees; an edit changes it, a re-poll does not."""
    # Each part and a NUL after it, encoded and hashed in one call (the same bytes as an
    # update a part: stored fingerprints still match).
    parts = (
        entry.title,
        entry.link or "",
        entry.published.isoformat() if entry.published else "",
        entry.author or "",
        entry.summary,
        entry.text,
        entry.language or "",
        "",
    )
    return hashlib.sha256("\x00".join(parts).encode("utf-8", "surrogatepass")).hexdigest()


class SqliteStorage:
    """Feeds, entries and poll records in one SQLite file (WAL mode).

    One connection, shared by threads (the daemon polls from a pool): every transaction and
    every read holds a lock, so two threads' statements never interleave inside one
    transaction.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        #: The stories `stories_near` returned last: story id -> (stored row, as returned).
        self._stories: dict[int, tuple[tuple[Any, ...], StoryState]] = {}
        #: The features `known_copies` returned last: entry id -> (its row's seq, features).
        self._known: dict[int, tuple[int, Features]] = {}
        #: Word document frequencies as stored after batch `_df_seq` (None: no row), for
        #: the words recent batches looked up: consecutive batches share most of their
        #: words, and this process recorded the changes itself. At most `DF_CACHE_WORDS`.
        self._df: dict[str, int | None] = {}
        self._df_seq = -1
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise DatabasePathError(
                f"cannot create database folder: {e}", path=str(self.path)
            ) from e
        try:
            self._db = sqlite3.connect(
                self.path, isolation_level=None, timeout=30, check_same_thread=False
            )
        except sqlite3.Error as e:
            raise self._error("cannot open database", e) from e
        try:
            self._db.row_factory = sqlite3.Row
            # One connection shared by threads (the daemon's workers): one statement or
            # transaction at a time.
            self._lock = threading.RLock()
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA synchronous = NORMAL")
            self._db.execute("PRAGMA foreign_keys = ON")
            # 64 MiB of page cache (default 2 MiB): deduplication reads and writes word
            # counts and story indexes spread over the file.
            self._db.execute("PRAGMA cache_size = -65536")
            self._check()
            migrate(self._db, str(self.path))
        except BaseException as e:
            self._db.close()
            if isinstance(e, sqlite3.Error):
                raise self._error("cannot open database", e) from e
            raise

    def _check(self) -> None:
        """Refuse a damaged database now, rather than part-way through a poll or a digest.

        Raises:
            CorruptDatabaseError: PRAGMA quick_check found damage.
        """
        try:
            size = self.path.stat().st_size
        except OSError:
            return
        if size > QUICK_CHECK_MAX:
            return
        problems = [row[0] for row in self._db.execute("PRAGMA quick_check(5)").fetchall()]
        if problems != ["ok"]:
            raise CorruptDatabaseError(
                _damaged("; ".join(problems), self.path), path=str(self.path)
            )

    def _error(self, doing: str, error: sqlite3.Error) -> StorageError:
        """Our error for SQLite's: damage, a path that names no database, or the rest
        (a full disk, an I/O error: operational)."""
        return storage_error(doing, error, self.path)

    def daemon_report(self) -> DaemonReport | None:
        """What the daemon running on this database reports (None: no daemon runs)."""
        return read_report(self.path)

    def close(self) -> None:
        # Under the lock: a transaction in flight in another thread finishes first.
        with self._lock:
            self._db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic write: all of it is committed, or none of it."""
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    yield self._db
                    self._db.execute("COMMIT")
                except BaseException:
                    self._rollback()
                    raise
            except sqlite3.Error as e:
                raise self._error("database write failed", e) from e

    def _rollback(self) -> None:
        # A failed COMMIT (a full disk) leaves the transaction open, and SQLite rolls some
        # failures back by itself: without this check the next BEGIN would fail forever,
        # and the ROLLBACK's own error would hide the one that matters.
        if self._db.in_transaction:
            try:
                self._db.execute("ROLLBACK")
            except sqlite3.Error:
                pass

    @contextmanager
    def _snapshot(self) -> Iterator[sqlite3.Cursor]:
        """Several reads that see one state of the database (rows as plain tuples)."""
        with self._lock:
            try:
                self._db.execute("BEGIN")
                try:
                    cursor = self._db.cursor()
                    cursor.row_factory = None
                    yield cursor
                finally:
                    self._db.execute("COMMIT")
            except sqlite3.Error as e:
                raise self._error("database read failed", e) from e

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        return self._read(sql, params, sqlite3.Row)

    def _tuples(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Like `_query`, rows as plain tuples: cheaper where they are thousands."""
        return self._read(sql, params, None)

    def _read(self, sql: str, params: Sequence[Any], row_factory: Any) -> list[Any]:
        with self._lock:
            try:
                cursor = self._db.cursor()
                cursor.row_factory = row_factory
                return cursor.execute(sql, params).fetchall()
            except sqlite3.Error as e:
                raise self._error("database read failed", e) from e

    # --- feeds ---------------------------------------------------------------------------

    def sync_feeds(self, feeds: Iterable[Feed], now: datetime) -> None:
        """Make sure every configured feed has a row, with its current name."""
        with self._transaction() as db:
            for feed in feeds:
                db.execute(
                    "INSERT INTO feeds (url, name, added_at) VALUES (?, ?, ?) "
                    "ON CONFLICT (url) DO UPDATE SET name = excluded.name",
                    (feed.url, feed.name, to_db_time(now)),
                )

    def feed_states(self) -> list[FeedState]:
        rows = self._query(
            "SELECT f.*, (SELECT count(*) FROM entries e WHERE e.feed_url = f.url) AS entry_count "
            "FROM feeds f ORDER BY f.name"
        )
        return [self._feed_state(r) for r in rows]

    def feed_state(self, url: str) -> FeedState | None:
        rows = self._query(
            "SELECT f.*, (SELECT count(*) FROM entries e WHERE e.feed_url = f.url) AS entry_count "
            "FROM feeds f WHERE f.url = ?",
            (url,),
        )
        return self._feed_state(rows[0]) if rows else None

    def feeds_added_between(self, since: datetime, until: datetime) -> list[str]:
        """Names of the feeds whose first entries were stored in [since, until), in the
        order they came: a feed is new when it brings its first entries, not when a row is
        made for it (a feed configured, then removed before it was ever polled, brings none).
        """
        rows = self._query(
            "SELECT f.name FROM feeds f JOIN (SELECT feed_url, min(first_seen) AS first "
            "FROM entries GROUP BY feed_url) e ON e.feed_url = f.url "
            "WHERE e.first >= ? AND e.first < ? ORDER BY e.first, f.name",
            (to_db_time(since), to_db_time(until)),
        )
        return [r["name"] for r in rows]

    @staticmethod
    def _feed_state(r: sqlite3.Row) -> FeedState:
        return FeedState(
            url=r["url"],
            name=r["name"],
            title=r["title"],
            last_attempt=from_db_time(r["last_attempt"]),
            last_success=from_db_time(r["last_success"]),
            last_error=r["last_error"],
            consecutive_failures=r["consecutive_failures"],
            next_poll=from_db_time(r["next_poll"]),
            disabled_reason=r["disabled_reason"],
            redirected_url=r["redirected_url"],
            etag=r["etag"],
            last_modified=r["last_modified"],
            content_hash=r["content_hash"],
            entry_count=r["entry_count"],
            retry_after=from_db_time(r["retry_after"]),
            last_status=r["last_status"],
        )

    def recent_published(self, url: str, limit: int = 10) -> list[datetime]:
        """Publication times of the feed's `limit` most recent entries, newest first."""
        rows = self._query(
            "SELECT published FROM entries WHERE feed_url = ? ORDER BY published DESC LIMIT ?",
            (url, limit),
        )
        return [t for t in (from_db_time(r[0]) for r in rows) if t is not None]

    def enable_feed(self, url: str) -> bool:
        """Clear a feed's disabled state and failures so that it is polled again.

        Returns:
            Whether the feed was disabled.
        """
        with self._transaction() as db:
            row = db.execute("SELECT disabled_reason FROM feeds WHERE url = ?", (url,)).fetchone()
            db.execute(
                "UPDATE feeds SET disabled_reason = NULL, consecutive_failures = 0, "
                "next_poll = NULL, retry_after = NULL WHERE url = ?",
                (url,),
            )
        return bool(row and row[0])

    def set_redirected_url(self, url: str, redirected_url: str | None) -> None:
        """Record (or with None, forget) the permanent new address of a feed."""
        with self._transaction() as db:
            db.execute("UPDATE feeds SET redirected_url = ? WHERE url = ?", (redirected_url, url))

    def rename_feed(self, old_url: str, new_url: str) -> None:
        """Give a feed a new URL (after a permanent redirect), keeping its entries and history.

        Raises:
            StorageError: the new URL already belongs to another stored feed.
        """
        if old_url == new_url:
            return
        with self._transaction() as db:
            if db.execute("SELECT 1 FROM feeds WHERE url = ?", (new_url,)).fetchone():
                raise StorageError(
                    f"cannot rename feed {old_url} to {new_url}: that URL is already stored",
                    path=str(self.path),
                )
            # The foreign key from entries is checked at COMMIT, when all rows agree again.
            db.execute("PRAGMA defer_foreign_keys = ON")
            db.execute(
                "UPDATE feeds SET url = ?, redirected_url = NULL WHERE url = ?", (new_url, old_url)
            )
            db.execute("UPDATE entries SET feed_url = ? WHERE feed_url = ?", (new_url, old_url))
            db.execute("UPDATE polls SET feed_url = ? WHERE feed_url = ?", (new_url, old_url))

    # --- polls ---------------------------------------------------------------------------

    def save_poll(
        self,
        feed: Feed,
        entries: Sequence[EntryData],
        *,
        now: datetime,
        seconds: float,
        title: str | None = None,
        error: str | None = None,
        update: FeedUpdate | None = None,
    ) -> SaveResult:
        """Store one successful poll's entries and its record, in one transaction.

        New guids are inserted; a known guid whose content changed is updated in place
        (keeping its id and first-seen time); an unchanged one is left alone.

        Raises:
            StorageError: the write failed; nothing of this poll was stored.
        """
        stamp = to_db_time(now)
        new_ids: list[int] = []
        updated_ids: list[int] = []
        with self._transaction() as db:
            known = {
                r["guid"]: (r["id"], r["content_hash"], r["first_seen"], r["dated"])
                for r in db.execute(
                    "SELECT id, guid, content_hash, first_seen, dated FROM entries "
                    "WHERE feed_url = ?",
                    (feed.url,),
                )
            }
            seen: set[str] = set()
            for entry in entries:
                if entry.guid in seen:  # a feed listing one guid twice: the first wins
                    continue
                seen.add(entry.guid)
                fingerprint = content_hash(entry)
                old = known.get(entry.guid)
                if old is not None and old[1] == fingerprint:
                    continue
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
                        (*values, feed.url, entry.guid, stamp),
                    )
                    assert cursor.lastrowid is not None
                    new_ids.append(cursor.lastrowid)
                else:
                    db.execute(
                        "UPDATE entries SET title = ?, link = ?, published = ?, dated = ?, "
                        "updated_at = ?, author = ?, summary = ?, text = ?, language = ?, "
                        "content_hash = ? WHERE id = ?",
                        (*values, old[0]),
                    )
                    updated_ids.append(old[0])
            db.execute(
                "UPDATE feeds SET last_attempt = ?, last_success = ?, last_error = NULL, "
                "consecutive_failures = 0, title = coalesce(?, title) WHERE url = ?",
                (stamp, stamp, title, feed.url),
            )
            if update is not None:
                # A full answer replaces the validators: a server that stopped sending an
                # ETag must not be asked with the old one.
                db.execute(
                    "UPDATE feeds SET etag = ?, last_modified = ?, content_hash = ? WHERE url = ?",
                    (update.etag, update.last_modified, update.content_hash, feed.url),
                )
                self._apply(db, feed.url, update)
            self._record(
                db,
                feed.url,
                stamp,
                seconds,
                PollStatus.OK,
                len(new_ids),
                len(updated_ids),
                error,
                update,
            )
        return SaveResult(len(new_ids), len(updated_ids), new_ids, updated_ids)

    def record_not_modified(
        self, feed: Feed, *, now: datetime, seconds: float, update: FeedUpdate
    ) -> None:
        """Record a poll that found nothing new (304, or the same bytes): no entry is touched."""
        stamp = to_db_time(now)
        with self._transaction() as db:
            db.execute(
                "UPDATE feeds SET last_attempt = ?, last_success = ?, last_error = NULL, "
                "consecutive_failures = 0, etag = coalesce(?, etag), "
                "last_modified = coalesce(?, last_modified), "
                "content_hash = coalesce(?, content_hash) WHERE url = ?",
                (stamp, stamp, update.etag, update.last_modified, update.content_hash, feed.url),
            )
            self._apply(db, feed.url, update)
            self._record(db, feed.url, stamp, seconds, PollStatus.NOT_MODIFIED, 0, 0, None, update)

    def record_failure(
        self,
        feed: Feed,
        error: str,
        *,
        now: datetime,
        seconds: float,
        update: FeedUpdate | None = None,
    ) -> None:
        """Record a failed poll: the error, the attempt, one more consecutive failure."""
        stamp = to_db_time(now)
        with self._transaction() as db:
            db.execute(
                "UPDATE feeds SET last_attempt = ?, last_error = ?, "
                "consecutive_failures = consecutive_failures + 1 WHERE url = ?",
                (stamp, error, feed.url),
            )
            status = PollStatus.ERROR
            if update is not None:
                self._apply(db, feed.url, update)
                if update.disabled_reason:
                    status = PollStatus.GONE
                    db.execute(
                        "UPDATE feeds SET disabled_reason = ? WHERE url = ?",
                        (update.disabled_reason, feed.url),
                    )
            self._record(db, feed.url, stamp, seconds, status, 0, 0, error, update)

    @staticmethod
    def _apply(db: sqlite3.Connection, url: str, update: FeedUpdate) -> None:
        db.execute(
            "UPDATE feeds SET last_status = ?, next_poll = ?, retry_after = ?, "
            "redirected_url = coalesce(?, redirected_url) WHERE url = ?",
            (
                update.http_status,
                to_db_time(update.next_poll) if update.next_poll else None,
                to_db_time(update.retry_after) if update.retry_after else None,
                update.redirected_url,
                url,
            ),
        )

    @staticmethod
    def _record(
        db: sqlite3.Connection,
        url: str,
        stamp: str,
        seconds: float,
        status: PollStatus,
        new: int,
        updated: int,
        error: str | None,
        update: FeedUpdate | None,
    ) -> None:
        db.execute(
            "INSERT INTO polls (feed_url, started_at, seconds, status, new, updated, error, "
            "http_status) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (url, stamp, seconds, status, new, updated, error, update and update.http_status),
        )

    # --- email deliveries ----------------------------------------------------------------

    def claim_email(
        self, digest: str, recipient: str, *, now: datetime, force: bool, stale_after: timedelta
    ) -> int | None:
        """Atomically take the right to send `digest` to `recipient` now.

        Refused when it was already sent (unless `force`) or when another process claimed
        it less than `stale_after` ago (a claim older than that is taken to have crashed).

        Returns:
            None if refused; else the attempts made before (the caller then sends, and calls
            `record_email`).

        Raises:
            StorageError: the database cannot be written.
        """
        stamp = to_db_time(now)
        with self._transaction() as db:
            row = db.execute(
                "SELECT status, last_attempt, attempts FROM email_deliveries "
                "WHERE digest = ? AND recipient = ?",
                (digest, recipient),
            ).fetchone()
            if row is not None:
                claimed = from_db_time(row["last_attempt"])
                if row["status"] == DeliveryStatus.SENT and not force:
                    return None
                if (
                    row["status"] == DeliveryStatus.SENDING
                    and claimed
                    and now - claimed < stale_after
                ):
                    return None
            db.execute(
                "INSERT INTO email_deliveries (digest, recipient, status, first_attempt, "
                "last_attempt) VALUES (?, ?, 'sending', ?, ?) "
                "ON CONFLICT (digest, recipient) DO UPDATE SET status = 'sending', "
                "last_attempt = excluded.last_attempt",
                (digest, recipient, stamp, stamp),
            )
        return int(row["attempts"]) if row is not None else 0

    def record_email(
        self,
        digest: str,
        recipient: str,
        *,
        now: datetime,
        ok: bool,
        attempts: int,
        error: str | None = None,
        message_id: str | None = None,
        next_attempt: datetime | None = None,
    ) -> None:
        """Record the outcome of a claimed delivery (see `claim_email`).

        Raises:
            StorageError: the database cannot be written.
        """
        stamp = to_db_time(now)
        with self._transaction() as db:
            db.execute(
                "UPDATE email_deliveries SET status = ?, attempts = attempts + ?, "
                "last_attempt = ?, sent_at = CASE WHEN ? THEN ? ELSE sent_at END, "
                "next_attempt = ?, error = ?, message_id = coalesce(?, message_id) "
                "WHERE digest = ? AND recipient = ?",
                (
                    DeliveryStatus.SENT if ok else DeliveryStatus.FAILED,
                    attempts,
                    stamp,
                    ok,
                    stamp,
                    to_db_time(next_attempt) if next_attempt else None,
                    None if ok else error,
                    message_id if ok else None,
                    digest,
                    recipient,
                ),
            )

    def email_deliveries(self, *, limit: int = 100) -> list[EmailDelivery]:
        """The most recent deliveries, newest attempt first."""
        rows = self._query(
            "SELECT * FROM email_deliveries ORDER BY last_attempt DESC, digest DESC, recipient "
            "LIMIT ?",
            (limit,),
        )
        return [self._delivery(r) for r in rows]

    def email_retries_due(self, now: datetime) -> list[EmailDelivery]:
        """Failed deliveries whose next retry time has come, oldest digest first."""
        rows = self._query(
            "SELECT * FROM email_deliveries WHERE status = 'failed' AND next_attempt IS NOT NULL "
            "AND next_attempt <= ? ORDER BY digest, recipient",
            (to_db_time(now),),
        )
        return [self._delivery(r) for r in rows]

    @staticmethod
    def _delivery(r: sqlite3.Row) -> EmailDelivery:
        first, last = from_db_time(r["first_attempt"]), from_db_time(r["last_attempt"])
        assert first is not None and last is not None
        return EmailDelivery(
            digest=r["digest"],
            recipient=r["recipient"],
            status=DeliveryStatus(r["status"]),
            attempts=r["attempts"],
            first_attempt=first,
            last_attempt=last,
            sent_at=from_db_time(r["sent_at"]),
            next_attempt=from_db_time(r["next_attempt"]),
            error=r["error"],
            message_id=r["message_id"],
        )

    # --- daily digests -------------------------------------------------------------------

    def digest_made(self, day: date) -> datetime | None:
        """When the daily digest of `day` was made, or None if it has not been."""
        rows = self._query("SELECT made_at FROM digest_runs WHERE day = ?", (day.isoformat(),))
        return from_db_time(rows[0]["made_at"]) if rows else None

    def record_digest(self, day: date, *, now: datetime) -> None:
        """Record that the daily digest of `day` was made (again, if it already was).

        Raises:
            StorageError: the write failed.
        """
        with self._transaction() as db:
            db.execute(
                "INSERT INTO digest_runs (day, made_at) VALUES (?, ?) "
                "ON CONFLICT (day) DO UPDATE SET made_at = excluded.made_at",
                (day.isoformat(), to_db_time(now)),
            )

    # --- entries -------------------------------------------------------------------------

    def entries_between(self, since: datetime, until: datetime) -> list[Entry]:
        """Entries published in [since, until), oldest first."""
        return self._select_entries(
            "published >= ? AND published < ?", (to_db_time(since), to_db_time(until))
        )

    def entries_by_ids(self, ids: Sequence[int]) -> list[Entry]:
        """The entries with these ids (those that exist), oldest first."""
        if not ids:
            return []
        return self._select_entries("id IN (SELECT value FROM json_each(?))", (_json(list(ids)),))

    def _select_entries(self, where: str, params: Sequence[Any]) -> list[Entry]:
        """The entries whose rows match `where`, oldest first (by published, then id)."""
        with self._snapshot() as db:
            rows = db.execute(
                f"SELECT {_ENTRY_COLUMNS} FROM entries WHERE {where}", params
            ).fetchall()
            # Feed names by a dict, rows sorted here: SQLite's join looked each row's feed
            # up in two B-trees, and its sorter copied every row, texts and all.
            names = dict(
                db.execute(
                    "SELECT url, name FROM feeds WHERE url IN (SELECT value FROM json_each(?))",
                    (_json(sorted({row[1] for row in rows})),),
                )
            )
        rows.sort(key=_OLDEST_FIRST)
        return _entries(rows, names)

    def first_published(self) -> datetime | None:
        """When the earliest stored entry was published (None: no entry yet)."""
        rows = self._query("SELECT min(published) FROM entries")  # by entries_by_published
        return from_db_time(rows[0][0])

    def entry_count(self) -> int:
        return int(self._query("SELECT count(*) FROM entries")[0][0])

    # --- deduplication: features, lookup keys, stories, word counts ----------------------

    def unassigned_ids(self) -> list[int]:
        """Entries not yet placed in an article (new ones, or stored before dedup existed)."""
        return [r[0] for r in self._query("SELECT id FROM entries WHERE article_id IS NULL")]

    def story_id(self, story_id: int) -> int | None:
        """The story a story id stands for now: itself, the story it was merged into, or
        None when no entry is filed under it (an unknown id)."""
        alias = self._query("SELECT story_id FROM story_aliases WHERE id = ?", (story_id,))
        current = int(alias[0][0]) if alias else story_id
        rows = self._query("SELECT ? FROM entries WHERE story_id = ? LIMIT 1", (current, current))
        return int(rows[0][0]) if rows else None

    def previous_placements(
        self, ids: Sequence[int]
    ) -> dict[int, tuple[int | None, dict[str, float] | None]]:
        """For entries placed before: the story their words counted in, and that vector."""
        rows = self._query(
            "SELECT entry_id, story_id, vector FROM dedup_entries "
            "WHERE entry_id IN (SELECT value FROM json_each(?))",
            (_json(list(ids)),),
        )
        return {
            r["entry_id"]: (r["story_id"], _load(r["vector"]) if r["vector"] else None)
            for r in rows
        }

    def dedup_features(self, after: int = 0) -> tuple[list[Features], int]:
        """Placed entries' copy features recorded after sequence number `after`.

        Returns:
            The features (without terms), and the sequence number they are complete up to.
        """
        with self._snapshot() as db:
            (seq,) = db.execute("SELECT value FROM dedup_meta WHERE key = 'seq'").fetchone()
            # "+entry_id": ordered by the primary key, SQLite would scan every row to
            # spare the sort; the few rows after `after` are found by dedup_entries_by_seq.
            rows = db.execute(
                f"SELECT {_FEATURE_COLUMNS} FROM dedup_entries WHERE seq > ? ORDER BY +entry_id",
                (after,),
            ).fetchall()
        return [_features(r) for r in rows], int(seq)

    def known_copies(self, shared: Mapping[int, Iterable[int]]) -> list[Known]:
        """The placed entries among `shared` (entry id -> the lookup keys it shares)."""
        if not shared:
            return []
        with self._lock, self._snapshot() as db:
            rows = db.execute(
                "SELECT d.entry_id, d.seq, e.article_id, e.story_id FROM dedup_entries d "
                "JOIN entries e ON e.id = d.entry_id "
                "WHERE d.entry_id IN (SELECT value FROM json_each(?)) AND e.article_id IS NOT NULL",
                (_json(list(shared)),),
            ).fetchall()
            # Consecutive batches share most of their possible copies. A row's features
            # change only when a batch records it again, under that batch's `seq`: the same
            # seq, the same features (read, and made into objects, once).
            previous = self._known
            missing = [
                id_
                for id_, seq, _, _ in rows
                if (hit := previous.get(id_)) is None or hit[0] != seq
            ]
            if missing:
                previous = previous.copy()
                for row in db.execute(
                    f"SELECT seq, {_FEATURE_COLUMNS} FROM dedup_entries "
                    "WHERE entry_id IN (SELECT value FROM json_each(?))",
                    (_json(missing),),
                ):
                    previous[row[1]] = (row[0], _features(row[1:]))
            known = self._known = {id_: previous[id_] for id_, _, _, _ in rows}
        return [
            Known(
                features=known[id_][1],
                article_id=article_id,
                story_id=story_id,
                keys=frozenset(shared[id_]),
            )
            for id_, _, article_id, story_id in rows
        ]

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
                        (_json(others),),
                    )
                )
        # Consecutive batches load mostly the same stories: a story stored unchanged comes
        # back as the same object, its centroid not decoded again (see `assign.StoryMemo`).
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
                    else (_load(blob) or {})
                )
                story = StoryState(
                    id=id_,
                    first=_time(first),
                    last=_time(last),
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
                        (_json(missing),),
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
                    _dump(placed[f.entry_id].vector),
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
                    _dump(s.centroid),
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
            (_json(sorted(outcome.merged)),),
        )
        # One statement over a JSON object, its words in key order (sorted by orjson, not
        # by SQLite's sorter: cheaper than the B-tree walk in key order saves): pairs
        # through `executemany` cost a statement step per word (docs/speed.md, Storage).
        # (`WHERE true`: an upsert's SELECT needs a WHERE before ON CONFLICT.)
        db.execute(
            "INSERT INTO term_counts (term, df) SELECT key, value FROM json_each(?) WHERE true "
            "ON CONFLICT (term) DO UPDATE SET df = max(df + excluded.df, 0)",
            (_json(outcome.df_delta, sort_keys=True),),
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


#: The columns `_entries` reads, in its order.
_ENTRY_COLUMNS = (
    "id, feed_url, guid, title, link, published, dated, first_seen, updated_at, author, "
    "summary, text, language, article_id, story_id"
)
#: Entries' order: by published time (stored as fixed-width UTC text), then id.
_OLDEST_FIRST = itemgetter(5, 0)


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
        published=_time(published),
        url=url,
        guid=guid,
        title_key=title_key,
        size=size,
        signature=signature,
        lead_size=lead_size,
        lead=lead,
    )


def _entries(rows: Iterable[tuple[Any, ...]], names: Mapping[str, str]) -> list[Entry]:
    """Entries from rows of `_ENTRY_COLUMNS`, given their feeds' names (a row of a feed
    without one is left out, as a join would)."""
    # The entries of one poll share their first-seen and update times: each distinct
    # stamp is parsed once (its datetime is immutable, so sharing it is safe).
    times: dict[str, datetime] = {}

    def parse(value: str) -> datetime:
        parsed = times.get(value)
        if parsed is None:
            parsed = times[value] = _time(value)
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


def _json(value: object, *, sort_keys: bool = False) -> str:
    """A statement's JSON parameter (read by json_each, never stored), encoded by orjson.

    Text, not orjson's bytes: SQLite takes a BLOB for JSON only from 3.45 on.
    """
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS if sort_keys else 0).decode()


def _time(value: str) -> datetime:
    parsed = from_db_time(value)
    assert parsed is not None
    return parsed


def _dump(vector: Mapping[str, float] | None) -> bytes | None:
    """A word vector as stored: its size, float32 weights, then the words (UTF-8, \\x1f-separated).

    JSON was the first format (still read): encoding floats as text cost ~80 us a vector.
    A finite weight beyond float32's range (~3.4e38) raises OverflowError; TF-IDF weights
    and centroids (at most a story's size) never come near it.
    """
    if vector is None:
        return None
    # One struct.pack ("<": little-endian whatever the machine) instead of an array, its
    # byte swap and two concatenations: 8.1 us a vector instead of 11.0 (~35 words), ~5 ms
    # of a 1,000-entry batch's save_outcome.
    size = len(vector)
    words = "\x1f".join(vector).encode("utf-8", "surrogatepass")
    return struct.pack(f"<I{size}f", size, *vector.values()) + words


def _load(value: bytes | str | None) -> dict[str, float] | None:
    """A stored word vector (`_dump`'s format, or the JSON text of earlier versions)."""
    if value is None:
        return None
    if isinstance(value, str):
        loaded: dict[str, float] = json.loads(value)
        return loaded
    size = int.from_bytes(value[:4], "little")
    if not size:
        return {}
    weights = array("f")
    weights.frombytes(value[4 : 4 + 4 * size])
    if sys.byteorder != "little":
        weights.byteswap()
    words = value[4 + 4 * size :].decode("utf-8", "surrogatepass").split("\x1f")
    return dict(zip(words, weights.tolist(), strict=True))


_RECOVER = (
    "the database is damaged ({problem}); stop `aggregator run`, then recover what it "
    'holds: sqlite3 {path} ".recover" | sqlite3 {fixed} and point [storage] path at {fixed} '
    "(see README, Recovering a damaged database)"
)


def _damaged(problem: str, path: Path) -> str:
    fixed = path.with_name(f"{path.stem}-recovered{path.suffix or '.db'}")
    return _RECOVER.format(problem=problem, path=path, fixed=fixed)


def storage_error(doing: str, error: sqlite3.Error, path: Path) -> StorageError:
    """Translate an SQLite error: damage, a path that names no database, or the rest."""
    name = getattr(error, "sqlite_errorname", "") or ""
    if name.startswith("SQLITE_CORRUPT") or "malformed" in str(error):
        return CorruptDatabaseError(f"{doing}: {_damaged(str(error), path)}", path=str(path))
    base = "_".join(name.split("_")[:2])  # SQLITE_CANTOPEN_ISDIR: SQLITE_CANTOPEN
    if base in _UNUSABLE:
        reason = unwritable_reason(path) if base != "SQLITE_NOTADB" else None
        # SQLite's "unable to open database file" does not say why; this is the likeliest.
        because = f": {reason}" if reason else ""
        return DatabasePathError(f"{doing}: {error}{because}", path=str(path))
    if base in ("SQLITE_FULL", "SQLITE_IOERR"):
        try:
            free = shutil.disk_usage(path.parent).free
        except OSError:
            pass
        else:  # the likeliest cause, which SQLite's words don't say
            return StorageError(
                f"{doing}: {error} ({free / 2**20:,.1f} MiB free on its disk)", path=str(path)
            )
    return StorageError(f"{doing}: {error}", path=str(path))


def unwritable_reason(path: Path) -> str | None:
    """Why SQLite cannot write the database at `path`, when its folder or file says so.

    SQLite writes the database and, in WAL mode, its -wal and -shm files beside it (a
    reader too), so the folder must be writable as well as the file.

    Returns:
        E.g. "/mnt/ro is on a read-only file system", or None when nothing is found.
    """
    folder = path.parent
    try:
        if os.statvfs(folder).f_flag & os.ST_RDONLY:
            return f"{folder} is on a read-only file system"
    except OSError:
        return None
    if path.exists() and not os.access(path, os.R_OK | os.W_OK):
        return f"the file {path} is not writable by this user"
    if not os.access(folder, os.W_OK | os.X_OK):
        return (
            f"the folder {folder} is not writable by this user (SQLite writes "
            f"{path.name}-wal and {path.name}-shm beside the database)"
        )
    return None


def open_storage(path: Path) -> SqliteStorage:
    """Open (creating and migrating as needed) the SQLite database at `path`.

    Raises:
        StorageError: it cannot be opened or created.
        SchemaVersionError: it was written by a newer aggregator.
    """
    return SqliteStorage(path)
