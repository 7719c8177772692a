"""The pollers sharing the store: each daemon's row (its start, heartbeat and clean stop),
read back with the feeds it holds leases on."""

from __future__ import annotations

from datetime import datetime

from aggregator.storage.base import PollerRecord, PollerState
from aggregator.storage.pollers import FORGET, LIST, RECORD, poller_row, poller_state
from aggregator.storage.sqlite._base import SqliteBase
from aggregator.storage.sqlite.codec import db_time, to_db_time


class PollersMixin(SqliteBase):
    """The pollers table."""

    def record_poller(self, poller: PollerRecord, *, forget_before: datetime) -> None:
        """Store the poller's row and forget those last seen before `forget_before`."""
        row = poller_row(poller, to_db_time)
        with self._transaction() as db:
            db.execute(FORGET.format(p="?"), (to_db_time(forget_before), poller.owner))
            db.execute(RECORD.format(p="?"), row)

    def pollers(self, now: datetime) -> list[PollerState]:
        """Every recorded poller, by start (then owner), with its live leases at `now`."""
        rows = self._read(LIST.format(p="?", c=""), (to_db_time(now),), None)
        return [poller_state(row, db_time) for row in rows]
