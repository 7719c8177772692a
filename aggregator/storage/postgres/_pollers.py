"""The pollers sharing the store, in PostgreSQL: each daemon's row (its start, heartbeat
and clean stop), read back with the feeds it holds leases on."""

from __future__ import annotations

from datetime import datetime

from aggregator.storage.base import PollerRecord, PollerState
from aggregator.storage.pollers import FORGET, LIST, RECORD, poller_row, poller_state
from aggregator.storage.postgres._base import PostgresBase, aware


class PollersMixin(PostgresBase):
    """The pollers table."""

    def record_poller(self, poller: PollerRecord, *, forget_before: datetime) -> None:
        """Store the poller's row and forget those last seen before `forget_before`; not
        under the write lock nor counted by `change_stamp`, as a lease is not (pollers
        record their heartbeats side by side, and no page shows them)."""
        row = poller_row(poller, aware)
        with self._transaction(serialised=False) as db:
            db.execute(FORGET.format(p="%s"), (aware(forget_before), poller.owner))
            db.execute(RECORD.format(p="%s"), row)

    def pollers(self, now: datetime) -> list[PollerState]:
        """Every recorded poller, by start (then owner), with its live leases at `now`."""
        rows = self._rows(LIST.format(p="%s", c=' COLLATE "C"'), (aware(now),))
        return [poller_state(row, aware) for row in rows]
