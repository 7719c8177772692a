"""Email deliveries (one row per digest and recipient, claimed before sending) and the
daily digests made, in PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any

from aggregator.storage.base import DigestRun, EmailDelivery
from aggregator.storage.postgres._base import PostgresBase, aware
from aggregator.types import DeliveryStatus


class DeliveriesMixin(PostgresBase):
    """The email_deliveries and digest_runs tables."""

    def claim_email(
        self, digest: str, recipient: str, *, now: datetime, force: bool, stale_after: timedelta
    ) -> int | None:
        """Atomically take the right to send `digest` to `recipient` now (see the protocol).

        Raises:
            StorageError: the database cannot be written.
        """
        aware(now)
        with self._transaction() as db:  # writers are serialised: no other claim between
            row = db.execute(
                "SELECT status, last_attempt, attempts FROM email_deliveries "
                "WHERE digest = %s AND recipient = %s",
                (digest, recipient),
            ).fetchone()
            if row is not None:
                status, claimed, _ = row
                if status == DeliveryStatus.SENT and not force:
                    return None
                if status == DeliveryStatus.SENDING and now - claimed < stale_after:
                    return None
            db.execute(
                "INSERT INTO email_deliveries (digest, recipient, status, first_attempt, "
                "last_attempt) VALUES (%s, %s, 'sending', %s, %s) "
                "ON CONFLICT (digest, recipient) DO UPDATE SET status = 'sending', "
                "last_attempt = excluded.last_attempt",
                (digest, recipient, now, now),
            )
        return int(row[2]) if row is not None else 0

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
        aware(now)
        if next_attempt is not None:
            aware(next_attempt)
        with self._transaction() as db:
            db.execute(
                "UPDATE email_deliveries SET status = %s, attempts = attempts + %s, "
                "last_attempt = %s, sent_at = CASE WHEN %s THEN %s ELSE sent_at END, "
                "next_attempt = %s, error = %s, message_id = coalesce(%s, message_id) "
                "WHERE digest = %s AND recipient = %s",
                (
                    str(DeliveryStatus.SENT if ok else DeliveryStatus.FAILED),
                    attempts,
                    now,
                    ok,
                    now,
                    next_attempt,
                    None if ok else error,
                    message_id if ok else None,
                    digest,
                    recipient,
                ),
            )

    def email_deliveries(self, *, limit: int = 100) -> list[EmailDelivery]:
        """The most recent deliveries, newest attempt first."""
        rows = self._query(
            'SELECT * FROM email_deliveries ORDER BY last_attempt DESC, digest COLLATE "C" '
            'DESC, recipient COLLATE "C" LIMIT %s',
            (limit,),
        )
        return [_delivery(r) for r in rows]

    def email_retries_due(self, now: datetime) -> list[EmailDelivery]:
        """Failed deliveries whose next retry time has come, oldest digest first."""
        rows = self._query(
            "SELECT * FROM email_deliveries WHERE status = 'failed' AND next_attempt IS NOT NULL "
            'AND next_attempt <= %s ORDER BY digest COLLATE "C", recipient COLLATE "C"',
            (aware(now),),
        )
        return [_delivery(r) for r in rows]

    # --- daily digests -------------------------------------------------------------------

    def digest_made(self, day: date) -> datetime | None:
        """When the daily digest of `day` was made, or None if it has not been."""
        rows = self._rows("SELECT made_at FROM digest_runs WHERE day = %s", (day,))
        made: datetime | None = rows[0][0] if rows else None
        return made

    def digest_made_before(self, day: date) -> DigestRun | None:
        """The daily digest of the latest day before `day` that has one (day, made)."""
        rows = self._rows(
            "SELECT day, made_at FROM digest_runs WHERE day < %s ORDER BY day DESC LIMIT 1",
            (day,),
        )
        return DigestRun(rows[0][0], rows[0][1]) if rows else None

    def record_digest(self, day: date, *, now: datetime) -> None:
        """Record that the daily digest of `day` was made (again, if it already was).

        Raises:
            StorageError: the write failed.
        """
        aware(now)
        with self._transaction() as db:
            db.execute(
                "INSERT INTO digest_runs (day, made_at) VALUES (%s, %s) "
                "ON CONFLICT (day) DO UPDATE SET made_at = excluded.made_at",
                (day, now),
            )

    def write_barrier(self, clock: Callable[[], datetime]) -> datetime:
        """`clock` read while holding the write lock (see Storage.write_barrier), waited
        for as every write waits for it; not counted as a change (`change_stamp`): it
        writes nothing.

        Raises:
            StorageError: the connection or the server failed.
        """
        with self._transaction(counted=False):
            return clock()


def _delivery(r: dict[str, Any]) -> EmailDelivery:
    return EmailDelivery(
        digest=r["digest"],
        recipient=r["recipient"],
        status=DeliveryStatus(r["status"]),
        attempts=r["attempts"],
        first_attempt=r["first_attempt"],
        last_attempt=r["last_attempt"],
        sent_at=r["sent_at"],
        next_attempt=r["next_attempt"],
        error=r["error"],
        message_id=r["message_id"],
    )
