"""The pollers' rows (`Storage.record_poller`, `Storage.pollers`): the statements both
backends run, with their placeholders, and a row turned into the records they return."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from aggregator.storage.base import PollerRecord, PollerState

_COLUMNS = (
    "owner, host, pid, started_at, seen_at, stopped_at, heartbeat, storage_error, failing_since"
)
_UPDATED = ", ".join(f"{c} = excluded.{c}" for c in _COLUMNS.split(", ")[1:])

#: Forget the other pollers last seen before a time (placeholders: the time, the owner).
FORGET = "DELETE FROM pollers WHERE seen_at < {p} AND owner <> {p}"
#: A poller's row, made or replaced whole (placeholders: `poller_row`'s values).
RECORD = (
    f"INSERT INTO pollers ({_COLUMNS}) VALUES ({{p}}, {{p}}, {{p}}, {{p}}, {{p}}, {{p}}, {{p}}, "
    f"{{p}}, {{p}}) ON CONFLICT (owner) DO UPDATE SET {_UPDATED}"
)
#: Every poller with the feeds leased to it whose lease ends after a time (placeholder),
#: by start, then owner (`{c}`: the collation that orders text by code point).
LIST = (
    f"SELECT {', '.join(f'p.{c}' for c in _COLUMNS.split(', '))}, coalesce(l.n, 0) "
    "FROM pollers p LEFT JOIN (SELECT lease_owner, count(*) AS n FROM feeds "
    "WHERE lease_owner IS NOT NULL AND lease_until > {p} GROUP BY lease_owner) l "
    "ON l.lease_owner = p.owner ORDER BY p.started_at, p.owner{c}"
)


def poller_row(poller: PollerRecord, time: Callable[[datetime], Any]) -> tuple[Any, ...]:
    """`poller` as RECORD's values; `time`: a time as the backend stores it."""
    return (
        poller.owner,
        poller.host,
        poller.pid,
        time(poller.started),
        time(poller.seen),
        time(poller.stopped) if poller.stopped is not None else None,
        poller.every.total_seconds(),
        poller.storage_error,
        time(poller.failing_since) if poller.failing_since is not None else None,
    )


def poller_state(row: Sequence[Any], time: Callable[[Any], datetime]) -> PollerState:
    """One of LIST's rows; `time`: a stored time as a timezone-aware datetime."""
    owner, host, pid, started, seen, stopped, every, error, since, leases = row
    return PollerState(
        PollerRecord(
            owner=owner,
            host=host,
            pid=int(pid),
            started=time(started),
            seen=time(seen),
            stopped=time(stopped) if stopped is not None else None,
            every=timedelta(seconds=float(every)),
            storage_error=error,
            failing_since=time(since) if since is not None else None,
        ),
        int(leases),
    )
