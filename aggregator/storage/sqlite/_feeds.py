"""Feeds and their polls: the feed rows (names, health, validators, next poll, renames),
each poll's record, and a poll's entries stored in the same transaction."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime

from aggregator.exceptions import StorageError
from aggregator.storage.base import FeedState, FeedUpdate, Leases, LockName, SaveResult
from aggregator.storage.leases import RELEASE, LeaseRow, decide_leases
from aggregator.storage.sqlite._base import SqliteBase
from aggregator.storage.sqlite._entries import store_entries
from aggregator.storage.sqlite.codec import from_db_time, json_param, to_db_time
from aggregator.storage.totals import COUNT_POLL, PRUNE_POLLS, poll_bucket, prune_parameters
from aggregator.types import EntryData, Feed, PollStatus

_RELEASE = RELEASE.format("?", "?", "?")
_COUNT_POLL = COUNT_POLL.format("?")
_PRUNE_POLLS = PRUNE_POLLS.format("?")


class FeedsMixin(SqliteBase):
    """The feeds table and the polls table, and the feeds' leases."""

    #: One daemon per file (its lock file): see Storage.shared.
    shared = False

    @contextmanager
    def hold(self, name: LockName) -> Iterator[None]:
        """No lock: a store that is not shared has one daemon deciding alone."""
        yield

    def release_leases(self, urls: Iterable[str], *, owner: str) -> None:
        with self._transaction() as db:
            db.executemany(_RELEASE, [(url, owner, owner) for url in urls])

    def lease_feeds(
        self,
        hosts: Mapping[str, str | None],
        *,
        owner: str,
        now: datetime,
        until: datetime,
        due_only: bool = True,
        per_host: int | None = None,
        polled_before: datetime | None = None,
    ) -> Leases:
        """Take these feeds for `owner` until `until` (see Storage.lease_feeds); BEGIN
        IMMEDIATE serialises leases as every write."""
        stamp = to_db_time(now)
        with self._transaction() as db:
            rows = {
                r[0]: LeaseRow(
                    r[0], r[1], from_db_time(r[2]), r[3], from_db_time(r[4]), from_db_time(r[5])
                )
                for r in db.execute(
                    "SELECT url, lease_owner, lease_until, lease_host, next_poll, last_attempt "
                    "FROM feeds "
                    "WHERE url IN (SELECT value FROM json_each(?))",
                    (json_param(list(hosts)),),
                )
            }
            in_flight = dict(
                db.execute(
                    "SELECT lease_host, count(*) FROM feeds WHERE lease_owner IS NOT NULL "
                    "AND lease_until > ? AND lease_host IS NOT NULL GROUP BY lease_host",
                    (stamp,),
                ).fetchall()
            )
            leases = decide_leases(
                hosts,
                rows,
                in_flight,
                owner=owner,
                now=now,
                due_only=due_only,
                per_host=per_host,
                polled_before=polled_before,
            )
            db.executemany(
                "UPDATE feeds SET lease_owner = ?, lease_until = ?, lease_host = ? WHERE url = ?",
                [(owner, to_db_time(until), hosts[url], url) for url in leases.granted],
            )
        return leases

    def sync_feeds(self, feeds: Iterable[Feed], now: datetime) -> None:
        """Make sure every configured feed has a row, with its current name."""
        with self._transaction() as db:
            for feed in feeds:
                db.execute(
                    "INSERT INTO feeds (url, name, added_at) VALUES (?, ?, ?) "
                    "ON CONFLICT (url) DO UPDATE SET name = excluded.name",
                    (feed.url, feed.name, to_db_time(now)),
                )

    def pass_pending(self, urls: Iterable[str], now: datetime) -> bool:
        """Whether a poller holds a lease, or one of `urls` is due or never polled (see
        Storage.pass_pending)."""
        stamp = to_db_time(now)
        rows = self._query(
            "SELECT EXISTS (SELECT 1 FROM feeds WHERE lease_owner IS NOT NULL "
            "AND lease_until > ?) OR EXISTS (SELECT 1 FROM feeds "
            "WHERE url IN (SELECT value FROM json_each(?)) AND disabled_reason IS NULL "
            "AND (next_poll IS NULL OR next_poll <= ?))",
            (stamp, json_param(list(urls)), stamp),
        )
        return bool(rows[0][0])

    def feed_states(self) -> list[FeedState]:
        # entry_count: kept by the polls that store entries (not counted: status and
        # /metrics read every feed's).
        return [self._feed_state(r) for r in self._query("SELECT * FROM feeds ORDER BY name")]

    def feed_state(self, url: str) -> FeedState | None:
        rows = self._query("SELECT * FROM feeds WHERE url = ?", (url,))
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

    def feed_urls_added_between(self, since: datetime, until: datetime) -> frozenset[str]:
        """The URLs of the feeds whose first entries were stored in [since, until)."""
        rows = self._query(
            "SELECT feed_url FROM entries GROUP BY feed_url "
            "HAVING min(first_seen) >= ? AND min(first_seen) < ?",
            (to_db_time(since), to_db_time(until)),
        )
        return frozenset(r["feed_url"] for r in rows)

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
        seen: Callable[[], datetime] | None = None,
    ) -> SaveResult:
        """Store one successful poll's entries and its record, in one transaction.

        The entries are stored by `store_entries` (see there), first seen at `now`, or with
        `seen`, at the time it gives once the write lock is held (`write_barrier`).

        Raises:
            StorageError: the write failed; nothing of this poll was stored.
        """
        stamp = to_db_time(now)
        with self._transaction() as db:
            first_seen = stamp if seen is None else to_db_time(seen())
            new_ids, updated_ids = store_entries(db, feed.url, entries, first_seen)
            db.execute(
                "UPDATE feeds SET last_attempt = ?, last_success = ?, last_error = NULL, "
                "consecutive_failures = 0, title = coalesce(?, title), "
                "entry_count = entry_count + ? WHERE url = ?",
                (stamp, stamp, title, len(new_ids), feed.url),
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
        db.execute(_COUNT_POLL, (status, poll_bucket(seconds), seconds))
        db.execute(_PRUNE_POLLS, prune_parameters(url))
        owner = update and update.lease_owner
        db.execute(_RELEASE, (url, owner, owner))  # the poll's lease ends with its record
