"""Watches' alerts: one row per story, watch, channel and level, recorded 'due' before it is
sent and claimed while it is (like email deliveries); the dedup batches evaluated so far."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from aggregator.storage.base import AlertRecord, DueAlert
from aggregator.storage.sqlite._entries import EntriesMixin
from aggregator.storage.sqlite.codec import from_db_time, json_param, to_db_time
from aggregator.types import AlertStatus, Entry

#: An alert's story now: the story it was recorded for, or the one that was merged into.
_CURRENT = "coalesce((SELECT s.story_id FROM story_aliases s WHERE s.id = a.story_id), a.story_id)"
#: The alerts of the stories in a JSON list (twice), recorded for them or one merged in.
_OF_STORIES = (
    "(a.story_id IN (SELECT value FROM json_each(?)) OR a.story_id IN (SELECT s.id FROM "
    "story_aliases s WHERE s.story_id IN (SELECT value FROM json_each(?))))"
)
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
            meta = dict(db.execute("SELECT key, value FROM dedup_meta"))
            start = meta.get("alert_seq", 0) if after is None else after
            # By the batch numbers' index: without statistics SQLite would walk every
            # placed entry by story (16-22 ms a pass at 15,000 entries, nothing changed).
            rows = db.execute(
                "SELECT DISTINCT e.story_id FROM dedup_entries d "
                "INDEXED BY dedup_entries_by_seq JOIN entries e "
                "ON e.id = d.entry_id WHERE d.seq > ? AND e.story_id IS NOT NULL "
                "ORDER BY e.story_id",
                (start,),
            ).fetchall()
        return [r[0] for r in rows], int(meta["seq"])

    def entries_of_stories(self, story_ids: Sequence[int]) -> list[Entry]:
        """The entries filed under these stories, oldest first."""
        if not story_ids:
            return []
        return self._select_entries(
            "story_id IN (SELECT value FROM json_each(?))", (json_param(list(story_ids)),)
        )

    def alerted(self, story_ids: Sequence[int]) -> dict[tuple[int, str, str], tuple[int, int]]:
        """(story, watch, channel) -> (the first alert's source count, the highest level)."""
        if not story_ids:
            return {}
        rows = self._query(
            f"SELECT {_CURRENT} AS current, a.watch, a.channel, "
            "min(CASE WHEN a.level = 0 THEN a.sources END) AS base, max(a.level) AS top "
            f"FROM alerts a WHERE {_OF_STORIES} GROUP BY current, a.watch, a.channel",
            (json_param(list(story_ids)),) * 2,
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
        stamp = to_db_time(now)
        added: list[int] = []
        with self._transaction() as db:
            # What is recorded already, read by story (an index), not row by row: one query
            # for the whole pass, in the transaction that writes (docs/watches.md, Cost).
            known = {
                (r[0], r[1], r[2], r[3])
                for r in db.execute(
                    f"SELECT {_CURRENT}, a.watch, a.channel, a.level FROM alerts a "
                    f"WHERE {_OF_STORIES}",
                    (json_param(sorted({alert.story_id for alert in due})),) * 2,
                )
            }
            fresh = [
                (
                    alert.story_id,
                    alert.watch,
                    alert.channel,
                    alert.reason,
                    alert.level,
                    alert.sources,
                    stamp,
                    alert.payload,
                )
                for alert in due
                if (alert.story_id, alert.watch, alert.channel, alert.level) not in known
            ]
            if fresh:
                # The write lock is held: the rows added are those numbered after the last.
                (last,) = db.execute("SELECT coalesce(max(id), 0) FROM alerts").fetchone()
                db.executemany(
                    "INSERT INTO alerts (story_id, watch, channel, reason, level, sources, "
                    "status, created_at, payload) VALUES (?, ?, ?, ?, ?, ?, 'due', ?, ?) "
                    "ON CONFLICT DO NOTHING",
                    fresh,
                )
                added = [
                    r[0]
                    for r in db.execute("SELECT id FROM alerts WHERE id > ? ORDER BY id", (last,))
                ]
            db.execute(
                "INSERT INTO dedup_meta (key, value) VALUES ('alert_seq', ?) "
                "ON CONFLICT (key) DO UPDATE SET value = max(value, excluded.value)",
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
        """Take the right to deliver the alert now, unless it was sent, a live claim holds
        it, or it failed and its next attempt is not due (or it was given up).

        Raises:
            StorageError: the database cannot be written.
        """
        gone = set(dead)
        with self._transaction() as db:
            row = db.execute(
                "SELECT status, last_attempt, claimed_by, attempts, next_attempt FROM alerts "
                "WHERE id = ?",
                (alert_id,),
            ).fetchone()
            if row is None or row["status"] == AlertStatus.SENT:
                return None
            if row["status"] == AlertStatus.FAILED:
                # Read as due from an older state, by the alert job and a poll at once: the
                # other's failure since then keeps its backoff.
                due_at = from_db_time(row["next_attempt"])
                if due_at is None or due_at > now:
                    return None
            if row["status"] == AlertStatus.SENDING:
                claimed = from_db_time(row["last_attempt"])
                fresh = claimed is not None and now - claimed < stale_after
                if fresh and row["claimed_by"] not in gone:
                    return None
            db.execute(
                "UPDATE alerts SET status = 'sending', last_attempt = ?, claimed_by = ? "
                "WHERE id = ?",
                (to_db_time(now), owner, alert_id),
            )
        return int(row["attempts"])

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
        stamp = to_db_time(now)
        with self._transaction() as db:
            db.execute(
                "UPDATE alerts SET status = ?, attempts = attempts + 1, last_attempt = ?, "
                "sent_at = CASE WHEN ? THEN ? ELSE sent_at END, next_attempt = ?, error = ?, "
                "receipt = CASE WHEN ? THEN ? ELSE receipt END WHERE id = ?",
                (
                    AlertStatus.SENT if ok else AlertStatus.FAILED,
                    stamp,
                    ok,
                    stamp,
                    None if ok or next_attempt is None else to_db_time(next_attempt),
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
            "OR (a.status = 'failed' AND a.next_attempt IS NOT NULL AND a.next_attempt <= ?) "
            "ORDER BY a.id",
            (to_db_time(now),),
        )
        return [_record(r) for r in rows]

    def alerts_since(
        self, since: datetime | None = None, *, limit: int = 1000
    ) -> list[AlertRecord]:
        """The alerts recorded at or after `since` (None: all), newest first."""
        rows = self._query(
            f"SELECT {_RECORD_COLUMNS} FROM alerts a WHERE a.created_at >= ? "
            "ORDER BY a.created_at DESC, a.id DESC LIMIT ?",
            (to_db_time(since) if since is not None else "", limit),
        )
        return [_record(r) for r in rows]

    def alerts_sent(self) -> dict[str, int]:
        """Alerts sent, by watch name."""
        rows = self._query(
            "SELECT watch, count(*) AS n FROM alerts WHERE status = 'sent' GROUP BY watch"
        )
        return {r["watch"]: r["n"] for r in rows}


def _record(r: sqlite3.Row) -> AlertRecord:
    created = from_db_time(r["created_at"])
    assert created is not None
    return AlertRecord(
        id=r["id"],
        story_id=r["current"],
        watch=r["watch"],
        channel=r["channel"],
        reason=r["reason"],
        level=r["level"],
        sources=r["sources"],
        status=AlertStatus(r["status"]),
        attempts=r["attempts"],
        created_at=created,
        last_attempt=from_db_time(r["last_attempt"]),
        next_attempt=from_db_time(r["next_attempt"]),
        sent_at=from_db_time(r["sent_at"]),
        claimed_by=r["claimed_by"],
        error=r["error"],
        receipt=r["receipt"],
        payload=r["payload"],
    )
