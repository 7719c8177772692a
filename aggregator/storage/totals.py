"""The running totals /metrics reads instead of counting whole tables: the rules and the SQL
both backends share, pure (docs/daemon.md, A 40-minute soak)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import NamedTuple

from aggregator.storage.base import POLL_SECONDS_BUCKETS

#: A poll's count in `poll_totals`, in its record's transaction: one row per status and
#: duration bucket (`poll_bucket`), with the backend's placeholders (status, bucket,
#: seconds). Rows of their own, not the polls': pruning the history (below) leaves them.
COUNT_POLL = (
    "INSERT INTO poll_totals (status, le, polls, seconds) VALUES ({0}, {0}, 1, {0}) "
    "ON CONFLICT (status, le) DO UPDATE SET polls = poll_totals.polls + 1, "
    "seconds = poll_totals.seconds + excluded.seconds"
)
READ_POLL_TOTALS = "SELECT status, le, polls, seconds FROM poll_totals"


def poll_bucket(seconds: float) -> float:
    """The bucket a poll that took `seconds` is counted in: the least bound of
    POLL_SECONDS_BUCKETS it is within, else infinity."""
    for bound in POLL_SECONDS_BUCKETS:
        if seconds <= bound:
            return bound
    return math.inf


class PollTotals(NamedTuple):
    """Every poll recorded, as `Tallies` reports them."""

    polls: dict[str, int]  # by status
    within: tuple[int, ...]  # at most each bound of POLL_SECONDS_BUCKETS (cumulative)
    seconds: float  # all polls' seconds


def poll_totals(rows: Iterable[tuple[str, float, int, float]]) -> PollTotals:
    """The totals of `poll_totals`' rows (status, bucket, polls, seconds)."""
    polls: dict[str, int] = {}
    within = [0] * len(POLL_SECONDS_BUCKETS)
    spent = []
    for status, bucket, count, seconds in rows:
        polls[str(status)] = polls.get(str(status), 0) + int(count)
        for i, bound in enumerate(POLL_SECONDS_BUCKETS):
            if bucket <= bound:
                within[i] += int(count)
        spent.append(float(seconds))
    return PollTotals(polls, tuple(within), math.fsum(spent))
