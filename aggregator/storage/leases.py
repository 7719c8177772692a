"""Which feeds a poller may lease (`Storage.lease_feeds`): the rule both backends apply to
the rows they read in the lease's transaction, pure."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import NamedTuple

from aggregator.storage.base import Leases

#: What ends a feed's lease, in SQL both backends speak: its poll's record (`save_poll`,
#: `record_not_modified`, `record_failure`, in the record's transaction), when the lease is
#: the recording poller's (`FeedUpdate.lease_owner`; `RELEASE`, with the backend's
#: placeholders and a typed NULL test: url, owner, owner).
RELEASED = "lease_owner = NULL, lease_until = NULL, lease_host = NULL"
RELEASE = f"UPDATE feeds SET {RELEASED} WHERE url = {{}} AND ({{}} IS NULL OR lease_owner = {{}})"


class LeaseRow(NamedTuple):
    """A feed's row as the lease reads it."""

    url: str
    owner: str | None
    until: datetime | None
    host: str | None
    next_poll: datetime | None
    last_attempt: datetime | None = None


def decide_leases(
    hosts: Mapping[str, str | None],
    rows: Mapping[str, LeaseRow],
    in_flight: Mapping[str, int],
    *,
    owner: str,
    now: datetime,
    due_only: bool,
    per_host: int | None,
    polled_before: datetime | None = None,
) -> Leases:
    """The leases `owner` gets among `hosts` (feed URL -> host), given the rows read (a URL
    without one is unknown, or locked by another poller leasing it) and each host's live
    leases (`in_flight`, by any owner, the asked feeds' included).

    Refused: a live lease of another owner (ask again when it ends), a feed not due with
    `due_only` (at its next poll) unless its last attempt is before `polled_before` (a
    poll pulled forward for a daily digest: once one poller has polled it, the others
    are refused), a host with `per_host` feeds in flight (soon: None).
    """
    counts = dict(in_flight)
    for mine in rows.values():  # this owner's own live leases are decided again below
        if mine.owner == owner and mine.until is not None and mine.until > now and mine.host:
            counts[mine.host] = counts.get(mine.host, 0) - 1
    granted: list[str] = []
    refused: dict[str, datetime | None] = {}
    for url, host in hosts.items():
        row = rows.get(url)
        if row is None:
            refused[url] = None
        elif row.owner not in (None, owner) and row.until is not None and row.until > now:
            refused[url] = row.until
        elif (
            due_only
            and row.next_poll is not None
            and row.next_poll > now
            and not (
                polled_before is not None
                and (row.last_attempt is None or row.last_attempt < polled_before)
            )
        ):
            refused[url] = row.next_poll
        elif host is not None and per_host is not None and counts.get(host, 0) >= per_host:
            refused[url] = None
        else:
            granted.append(url)
            if host is not None:
                counts[host] = counts.get(host, 0) + 1
    return Leases(granted, refused)
