"""Email deliveries (one row per digest and recipient, claimed before sending) and the
daily digests the daemon has made."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import date, datetime, timedelta

from aggregator.storage.base import DigestRun, EmailDelivery
from aggregator.storage.sqlite._base import SqliteBase
from aggregator.storage.sqlite.codec import db_time, from_db_time, to_db_time
from aggregator.types import DeliveryStatus


class DeliveriesMixin(SqliteBase):
    """The email_deliveries and digest_runs tables."""

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

    def digest_made_before(self, day: date) -> DigestRun | None:
        """The daily digest of the latest day before `day` that has one (day, made)."""
        rows = self._query(
            "SELECT day, made_at FROM digest_runs WHERE day < ? ORDER BY day DESC LIMIT 1",
            (day.isoformat(),),
        )
        if not rows:
            return None
        return DigestRun(date.fromisoformat(rows[0]["day"]), db_time(rows[0]["made_at"]))

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

    def write_barrier(self, clock: Callable[[], datetime]) -> datetime:
        """`clock` read while holding the write lock (see Storage.write_barrier).

        Raises:
            StorageError: the lock could not be taken.
        """
        with self._lock:  # (this handle's other threads: their transactions end first)
            try:
                # Granted once no other connection writes: every write begun before has
                # committed. Nothing is written, so nothing is committed or checkpointed.
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    return clock()
                finally:
                    self._rollback()
            except sqlite3.Error as e:
                raise self._error("database write failed", e) from e
