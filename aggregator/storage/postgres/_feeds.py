"""Feeds and their polls in PostgreSQL: the feed rows (names, health, validators, next poll,
renames), each poll's record, and a poll's entries stored in the same transaction."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from aggregator.exceptions import StorageError
from aggregator.storage.base import FeedState, FeedUpdate, Leases, SaveResult
from aggregator.storage.leases import RELEASE, LeaseRow, decide_leases
from aggregator.storage.postgres._base import Connection, PostgresBase, aware
from aggregator.storage.postgres._entries import store_entries
from aggregator.storage.totals import COUNT_POLL, PRUNE_POLLS, poll_bucket, prune_parameters
from aggregator.types import EntryData, Feed, PollStatus

# A NULL parameter of unknown type cannot be tested: typed.
_RELEASE = RELEASE.format("%s", "%s::text", "%s")
_COUNT_POLL = COUNT_POLL.format("%s")
_PRUNE_POLLS = PRUNE_POLLS.format("%s")

#: entry_count: kept by the polls that store entries (not counted: status and /metrics
#: read every feed's).
_STATE = "SELECT * FROM feeds f"


#: The class of the transaction-scoped advisory locks that serialise leases per host (the
#: second key is the host's hashtext): `per_host` counted by one lease at a time.
LEASE_HOST_LOCK = 0x61677201


class FeedsMixin(PostgresBase):
    """The feeds table and the polls table, and the feeds' leases."""

    def release_leases(self, urls: Iterable[str], *, owner: str) -> None:
        with self._transaction(serialised=False) as db, db.cursor() as cursor:
            cursor.executemany(_RELEASE, [(url, owner, owner) for url in urls])

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
        """Take these feeds for `owner` until `until` (see Storage.lease_feeds).

        Not under the write lock: pollers lease side by side, each skipping the rows
        another is leasing (`FOR UPDATE SKIP LOCKED`); with `per_host`, leases of one host
        are serialised by an advisory lock, so two pollers never both take its last slot.
        """
        aware(now)
        aware(until)
        with self._transaction(serialised=False) as db:
            if per_host is not None:
                for host in sorted({h for h in hosts.values() if h is not None}):
                    db.execute(
                        "SELECT pg_advisory_xact_lock(%s, hashtext(%s))",
                        (LEASE_HOST_LOCK, host),
                    )
            rows = {
                r[0]: LeaseRow(*r)
                for r in db.execute(
                    "SELECT url, lease_owner, lease_until, lease_host, next_poll, last_attempt "
                    "FROM feeds WHERE url = ANY(%s) FOR UPDATE SKIP LOCKED",
                    (list(hosts),),
                )
            }
            in_flight: dict[str, int] = {}
            if per_host is not None:
                in_flight = dict(
                    db.execute(
                        "SELECT lease_host, count(*) FROM feeds "
                        "WHERE lease_owner IS NOT NULL AND lease_until > %s "
                        "AND lease_host = ANY(%s) GROUP BY lease_host",
                        (now, [h for h in set(hosts.values()) if h is not None]),
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
            if leases.granted:
                db.execute(
                    "UPDATE feeds SET lease_owner = %s, lease_until = %s, "
                    "lease_host = l.host FROM unnest(%s::text[], %s::text[]) "
                    "AS l(url, host) WHERE feeds.url = l.url",
                    (owner, until, leases.granted, [hosts[u] for u in leases.granted]),
                )
        return leases

    def sync_feeds(self, feeds: Iterable[Feed], now: datetime) -> None:
        """Make sure every configured feed has a row, with its current name."""
        aware(now)
        with self._transaction() as db:
            db.cursor().executemany(
                "INSERT INTO feeds (url, name, added_at) VALUES (%s, %s, %s) "
                "ON CONFLICT (url) DO UPDATE SET name = excluded.name",
                [(feed.url, feed.name, now) for feed in feeds],
            )

    def feed_states(self) -> list[FeedState]:
        # COLLATE "C": by code point, as SQLite orders text, whatever the database's locale.
        return [_feed_state(r) for r in self._query(f'{_STATE} ORDER BY f.name COLLATE "C"')]

    def feed_state(self, url: str) -> FeedState | None:
        rows = self._query(f"{_STATE} WHERE f.url = %s", (url,))
        return _feed_state(rows[0]) if rows else None

    def pass_pending(self, urls: Iterable[str], now: datetime) -> bool:
        """Whether a poller holds a lease, or one of `urls` is due or never polled (see
        Storage.pass_pending)."""
        aware(now)
        rows = self._rows(
            "SELECT EXISTS (SELECT 1 FROM feeds WHERE lease_owner IS NOT NULL "
            "AND lease_until > %s) OR EXISTS (SELECT 1 FROM feeds WHERE url = ANY(%s) "
            "AND disabled_reason IS NULL AND (next_poll IS NULL OR next_poll <= %s))",
            (now, list(urls), now),
        )
        return bool(rows[0][0])

    def feeds_added_between(self, since: datetime, until: datetime) -> list[str]:
        """Names of the feeds whose first entries were stored in [since, until), in the
        order they came (a feed is new when it brings its first entries)."""
        rows = self._query(
            "SELECT f.name FROM feeds f JOIN (SELECT feed_url, min(first_seen) AS first "
            "FROM entries GROUP BY feed_url) e ON e.feed_url = f.url "
            'WHERE e.first >= %s AND e.first < %s ORDER BY e.first, f.name COLLATE "C"',
            (aware(since), aware(until)),
        )
        return [r["name"] for r in rows]

    def feed_urls_added_between(self, since: datetime, until: datetime) -> frozenset[str]:
        """The URLs of the feeds whose first entries were stored in [since, until)."""
        rows = self._query(
            "SELECT feed_url FROM entries GROUP BY feed_url "
            "HAVING min(first_seen) >= %s AND min(first_seen) < %s",
            (aware(since), aware(until)),
        )
        return frozenset(r["feed_url"] for r in rows)

    def recent_published(self, url: str, limit: int = 10) -> list[datetime]:
        """Publication times of the feed's `limit` most recent entries, newest first."""
        rows = self._rows(
            "SELECT published FROM entries WHERE feed_url = %s ORDER BY published DESC LIMIT %s",
            (url, limit),
        )
        return [r[0] for r in rows]

    def enable_feed(self, url: str) -> bool:
        """Clear a feed's disabled state and failures so that it is polled again.

        Returns:
            Whether the feed was disabled.
        """
        with self._transaction() as db:
            row = db.execute("SELECT disabled_reason FROM feeds WHERE url = %s", (url,)).fetchone()
            db.execute(
                "UPDATE feeds SET disabled_reason = NULL, consecutive_failures = 0, "
                "next_poll = NULL, retry_after = NULL WHERE url = %s",
                (url,),
            )
        return bool(row and row[0])

    def set_redirected_url(self, url: str, redirected_url: str | None) -> None:
        """Record (or with None, forget) the permanent new address of a feed."""
        with self._transaction() as db:
            db.execute("UPDATE feeds SET redirected_url = %s WHERE url = %s", (redirected_url, url))

    def rename_feed(self, old_url: str, new_url: str) -> None:
        """Give a feed a new URL (after a permanent redirect), keeping its entries and history.

        Raises:
            StorageError: the new URL already belongs to another stored feed.
        """
        if old_url == new_url:
            return
        with self._transaction() as db:
            if db.execute("SELECT 1 FROM feeds WHERE url = %s", (new_url,)).fetchone():
                raise StorageError(
                    f"cannot rename feed {old_url} to {new_url}: that URL is already stored",
                    path=self.path,
                )
            # The foreign key from entries is checked at COMMIT, when all rows agree again.
            db.execute("SET CONSTRAINTS ALL DEFERRED")
            db.execute(
                "UPDATE feeds SET url = %s, redirected_url = NULL WHERE url = %s",
                (new_url, old_url),
            )
            db.execute("UPDATE entries SET feed_url = %s WHERE feed_url = %s", (new_url, old_url))
            db.execute("UPDATE polls SET feed_url = %s WHERE feed_url = %s", (new_url, old_url))

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
        """Store one successful poll's entries and its record, in one transaction (the
        entries first seen at `now`, or with `seen`, at the time it gives once the write
        lock is held: `write_barrier`).

        Raises:
            ValueError: a naive datetime (nothing was stored).
            StorageError: the write failed; nothing of this poll was stored.
        """
        aware(now)
        _check_update(update)
        for entry in entries:
            if entry.published is not None:
                aware(entry.published)
        with self._transaction() as db:
            first_seen = now if seen is None else aware(seen())
            new_ids, updated_ids = store_entries(db, feed.url, entries, first_seen)
            db.execute(
                "UPDATE feeds SET last_attempt = %s, last_success = %s, last_error = NULL, "
                "consecutive_failures = 0, title = coalesce(%s, title), "
                "entry_count = entry_count + %s WHERE url = %s",
                (now, now, title, len(new_ids), feed.url),
            )
            if update is not None:
                # A full answer replaces the validators: a server that stopped sending an
                # ETag must not be asked with the old one.
                db.execute(
                    "UPDATE feeds SET etag = %s, last_modified = %s, content_hash = %s "
                    "WHERE url = %s",
                    (update.etag, update.last_modified, update.content_hash, feed.url),
                )
                _apply(db, feed.url, update)
            _record(
                db,
                feed.url,
                now,
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
        aware(now)
        _check_update(update)
        with self._transaction() as db:
            db.execute(
                "UPDATE feeds SET last_attempt = %s, last_success = %s, last_error = NULL, "
                "consecutive_failures = 0, etag = coalesce(%s, etag), "
                "last_modified = coalesce(%s, last_modified), "
                "content_hash = coalesce(%s, content_hash) WHERE url = %s",
                (now, now, update.etag, update.last_modified, update.content_hash, feed.url),
            )
            _apply(db, feed.url, update)
            _record(db, feed.url, now, seconds, PollStatus.NOT_MODIFIED, 0, 0, None, update)

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
        aware(now)
        _check_update(update)
        with self._transaction() as db:
            db.execute(
                "UPDATE feeds SET last_attempt = %s, last_error = %s, "
                "consecutive_failures = consecutive_failures + 1 "
                "WHERE url = %s",
                (now, error, feed.url),
            )
            status = PollStatus.ERROR
            if update is not None:
                _apply(db, feed.url, update)
                if update.disabled_reason:
                    status = PollStatus.GONE
                    db.execute(
                        "UPDATE feeds SET disabled_reason = %s WHERE url = %s",
                        (update.disabled_reason, feed.url),
                    )
            _record(db, feed.url, now, seconds, status, 0, 0, error, update)


def _check_update(update: FeedUpdate | None) -> None:
    if update is not None:
        for value in (update.next_poll, update.retry_after):
            if value is not None:
                aware(value)


def _apply(db: Connection, url: str, update: FeedUpdate) -> None:
    db.execute(
        "UPDATE feeds SET last_status = %s, next_poll = %s, retry_after = %s, "
        "redirected_url = coalesce(%s, redirected_url) WHERE url = %s",
        (update.http_status, update.next_poll, update.retry_after, update.redirected_url, url),
    )


def _record(
    db: Connection,
    url: str,
    now: datetime,
    seconds: float,
    status: PollStatus,
    new: int,
    updated: int,
    error: str | None,
    update: FeedUpdate | None,
) -> None:
    db.execute(
        "INSERT INTO polls (feed_url, started_at, seconds, status, new, updated, error, "
        "http_status) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
        (url, now, seconds, str(status), new, updated, error, update and update.http_status),
    )
    db.execute(_COUNT_POLL, (str(status), poll_bucket(seconds), seconds))
    db.execute(_PRUNE_POLLS, prune_parameters(url))
    owner = update and update.lease_owner
    db.execute(_RELEASE, (url, owner, owner))  # the poll's lease ends with its record


def _feed_state(r: dict[str, Any]) -> FeedState:
    return FeedState(
        url=r["url"],
        name=r["name"],
        title=r["title"],
        last_attempt=r["last_attempt"],
        last_success=r["last_success"],
        last_error=r["last_error"],
        consecutive_failures=r["consecutive_failures"],
        next_poll=r["next_poll"],
        disabled_reason=r["disabled_reason"],
        redirected_url=r["redirected_url"],
        etag=r["etag"],
        last_modified=r["last_modified"],
        content_hash=r["content_hash"],
        entry_count=r["entry_count"],
        retry_after=r["retry_after"],
        last_status=r["last_status"],
    )
