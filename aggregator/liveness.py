"""Whether a poller sharing the store is running, stopped or silent, which pollers `status`
lists, and how long the store keeps them: pure decisions of a poller's row and `now`.

Each `aggregator run` records a row when it starts, refreshes its "last seen" every
heartbeat (`scheduler.HEARTBEAT_EVERY`, recorded in the row as `every`) and marks it
stopped when it stops cleanly (docs/postgres.md, Several pollers).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum

from aggregator.storage.base import PollerRecord

#: A poller that has recorded no heartbeat for this many of its intervals, and did not
#: stop, is silent: it died (kill -9, a crash, its host went down) or lost the store.
SILENT_AFTER = 3
#: `status` lists the pollers seen this recently, and every one not marked stopped.
SHOWN = timedelta(hours=24)
#: Pollers stopped or silent for this long are forgotten (by every heartbeat's write).
KEPT = timedelta(days=7)


class Condition(StrEnum):
    RUNNING = "running"
    STOPPED = "stopped"  # it stopped cleanly (SIGTERM, SIGINT)
    SILENT = "SILENT"  # no heartbeat for SILENT_AFTER intervals, and not stopped


def condition(poller: PollerRecord, now: datetime) -> Condition:
    """Whether `poller` runs, stopped cleanly, or went silent, at `now`."""
    if poller.stopped is not None:
        return Condition.STOPPED
    if now - poller.seen > SILENT_AFTER * poller.every:
        return Condition.SILENT
    return Condition.RUNNING


def shown(poller: PollerRecord, now: datetime) -> bool:
    """Whether `status` lists `poller`: seen within `SHOWN`, or not marked stopped (running,
    or silent: until it is forgotten)."""
    return poller.stopped is None or now - poller.seen <= SHOWN
