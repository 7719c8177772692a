"""Watches' alerts in PostgreSQL: one row per story, watch, channel and level, recorded 'due'
before it is sent and claimed while it is; the dedup batches evaluated so far."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from aggregator.storage.base import AlertRecord, DueAlert
from aggregator.storage.postgres._base import aware
from aggregator.storage.postgres._entries import EntriesMixin
from aggregator.types import AlertStatus, Entry

#: An alert's story now: the story it was recorded for, or the one that was merged into.
_CURRENT = "coalesce((SELECT s.story_id FROM story_aliases s WHERE s.id = a.story_id), a.story_id)"
_RECORD_COLUMNS = (
    f"a.id, {_CURRENT} AS current, a.watch, a.channel, a.reason, a.level, a.sources, a.status, "
    "a.attempts, a.created_at, a.last_attempt, a.next_attempt, a.sent_at, a.claimed_by, "
    "a.error, a.receipt, a.payload"
)


class AlertsMixin(EntriesMixin):
    """The alerts table and the `alert_seq` mark in dedup_meta."""

    def stories_changed(self, after: int | None = None) -> tuple[list[int], int]:
        """The stories of the entries placed in batches after `after` (None: after those
        alerts were evaluated on), and the latest batch number."""
        with self._snapshot() as db:
            meta = {k: int(v) for k, v in db.execute("SELECT key, value FROM dedup_meta")}
            start = meta.get("alert_seq", 0) if after is None else after
            rows = db.execute(
                "SELECT DISTINCT e.story_id FROM dedup_entries d JOIN entries e "
                "ON e.id = d.entry_id WHERE d.seq > %s AND e.story_id IS NOT NULL "
                "ORDER BY e.story_id",
                (start,),
            ).fetchall()
        return [int(r[0]) for r in rows], meta["seq"]

    def entries_of_stories(self, story_ids: Sequence[int]) -> list[Entry]:
        """The entries filed under these stories, oldest first."""
        if not story_ids:
            return []
        return self._select_entries("story_id = ANY(%s)", (list(story_ids),))

    def alerted(self, story_ids: Sequence[int]) -> dict[tuple[int, str, str], tuple[int, int]]:
        """(story, watch, channel) -> (the first alert's source count, the highest level)."""
        if not story_ids:
            return {}
        ids = list(story_ids)
        rows = self._query(
            f"SELECT {_CURRENT} AS current, a.watch, a.channel, "
            "min(CASE WHEN a.level = 0 THEN a.sources END) AS base, max(a.level) AS top "
            "FROM alerts a WHERE a.story_id = ANY(%s) "
            "OR a.story_id IN (SELECT s.id FROM story_aliases s WHERE s.story_id = ANY(%s)) "
            "GROUP BY current, a.watch, a.channel",
            (ids, ids),
        )
        return {
            (r["current"], r["watch"], r["channel"]): (
                r["base"] if r["base"] is not None else 0,
                r["top"],
            )
            for r in rows
        }

    def record_alerts(self, due: Sequence[DueAlert], *, now: datetime, seq: int) -> list[int]:
        """Record the alerts not recorded yet (for the story or one merged into it), and
        that batches up to `seq` were evaluated; one transaction.

        Raises:
            StorageError: the write failed; nothing was recorded.
        """
        aware(now)
        added = []
        with self._transaction() as db:
            # What is recorded already, read by story (an index), not row by row.
            ids = sorted({alert.story_id for alert in due})
            known = {
                (r[0], r[1], r[2], r[3])
                for r in db.execute(
                    f"SELECT {_CURRENT}, a.watch, a.channel, a.level FROM alerts a "
                    "WHERE a.story_id = ANY(%s) OR a.story_id IN "
                    "(SELECT s.id FROM story_aliases s WHERE s.story_id = ANY(%s))",
                    (ids, ids),
                ).fetchall()
            }
            for alert in due:
                if (alert.story_id, alert.watch, alert.channel, alert.level) in known:
                    continue
                row = db.execute(
                    "INSERT INTO alerts (story_id, watch, channel, reason, level, sources, "
                    "status, created_at, payload) VALUES (%s, %s, %s, %s, %s, %s, 'due', %s, %s) "
                    "ON CONFLICT DO NOTHING RETURNING id",
                    (
                        alert.story_id,
                        alert.watch,
                        alert.channel,
                        alert.reason,
                        alert.level,
                        alert.sources,
                        now,
                        alert.payload,
                    ),
                ).fetchone()
                if row is not None:
                    added.append(int(row[0]))
            db.execute(
                "INSERT INTO dedup_meta (key, value) VALUES ('alert_seq', %s) "
                "ON CONFLICT (key) DO UPDATE "
                "SET value = greatest(dedup_meta.value, excluded.value)",
                (seq,),
            )
        return added

    def claim_alert(
        self,
        alert_id: int,
        *,
        now: datetime,
        owner: int,
        stale_after: timedelta,
        dead: Iterable[int] = (),
    ) -> int | None:
        """Take the right to deliver the alert now, unless it was sent or a live claim holds it.

        Raises:
            StorageError: the database cannot be written.
        """
        aware(now)
        gone = set(dead)
        with self._transaction() as db:  # writers are serialised: no other claim between
            row = db.execute(
                "SELECT status, last_attempt, claimed_by, attempts, next_attempt FROM alerts "
                "WHERE id = %s",
                (alert_id,),
            ).fetchone()
            if row is None:
                return None
            status, claimed, claimed_by, attempts, due_at = row
            if status == AlertStatus.SENT:
                return None
            if status == AlertStatus.FAILED and (due_at is None or due_at > now):
                return None  # its backoff holds (see the SQLite backend)
            if status == AlertStatus.SENDING:
                fresh = claimed is not None and now - claimed < stale_after
                if fresh and claimed_by not in gone:
                    return None
            db.execute(
                "UPDATE alerts SET status = 'sending', last_attempt = %s, claimed_by = %s "
                "WHERE id = %s",
                (now, owner, alert_id),
            )
        return int(attempts)

    def record_alert_attempt(
        self,
        alert_id: int,
        *,
        now: datetime,
        ok: bool,
        error: str | None = None,
        receipt: str | None = None,
        next_attempt: datetime | None = None,
    ) -> None:
        """Record one attempt of a claimed alert: sent, or failed (retried at `next_attempt`).

        Raises:
            StorageError: the database cannot be written.
        """
        aware(now)
        if next_attempt is not None:
            aware(next_attempt)
        with self._transaction() as db:
            db.execute(
                "UPDATE alerts SET status = %s, attempts = attempts + 1, last_attempt = %s, "
                "sent_at = CASE WHEN %s THEN %s ELSE sent_at END, next_attempt = %s, "
                "error = %s, receipt = CASE WHEN %s THEN %s ELSE receipt END WHERE id = %s",
                (
                    str(AlertStatus.SENT if ok else AlertStatus.FAILED),
                    now,
                    ok,
                    now,
                    None if ok else next_attempt,
                    None if ok else error,
                    ok,
                    receipt,
                    alert_id,
                ),
            )

    def alerts_due(self, now: datetime) -> list[AlertRecord]:
        """'due' alerts, 'failed' ones whose retry time has come, and 'sending' ones."""
        rows = self._query(
            f"SELECT {_RECORD_COLUMNS} FROM alerts a WHERE a.status IN ('due', 'sending') "
            "OR (a.status = 'failed' AND a.next_attempt IS NOT NULL AND a.next_attempt <= %s) "
            "ORDER BY a.id",
            (aware(now),),
        )
        return [_record(r) for r in rows]

    def alerts_since(
        self, since: datetime | None = None, *, limit: int = 1000
    ) -> list[AlertRecord]:
        """The alerts recorded at or after `since` (None: all), newest first."""
        where, params = (
            ("", [limit]) if since is None else ("WHERE a.created_at >= %s", [aware(since), limit])
        )
        rows = self._query(
            f"SELECT {_RECORD_COLUMNS} FROM alerts a {where} "
            "ORDER BY a.created_at DESC, a.id DESC LIMIT %s",
            params,
        )
        return [_record(r) for r in rows]

    def alerts_sent(self) -> dict[str, int]:
        """Alerts sent, by watch name."""
        rows = self._rows("SELECT watch, count(*) FROM alerts WHERE status = 'sent' GROUP BY watch")
        return {watch: int(n) for watch, n in rows}


def _record(r: dict[str, Any]) -> AlertRecord:
    return AlertRecord(
        id=int(r["id"]),
        story_id=int(r["current"]),
        watch=r["watch"],
        channel=r["channel"],
        reason=r["reason"],
        level=r["level"],
        sources=r["sources"],
        status=AlertStatus(r["status"]),
        attempts=r["attempts"],
        created_at=r["created_at"],
        last_attempt=r["last_attempt"],
        next_attempt=r["next_attempt"],
        sent_at=r["sent_at"],
        claimed_by=r["claimed_by"],
        error=r["error"],
        receipt=r["receipt"],
        payload=r["payload"],
    )
