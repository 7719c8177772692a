"""When a failed delivery (a digest email, an alert) is tried again: one rule for both."""

from __future__ import annotations

from datetime import datetime, timedelta

# A failed delivery is retried after 5 min, 10, 20, … (doubling per attempt, at most 6 h
# apart) until MAX_ATTEMPTS attempts have failed.
RETRY_FIRST = timedelta(minutes=5)
RETRY_MAX = timedelta(hours=6)
MAX_ATTEMPTS = 24


def retry_time(total_attempts: int, now: datetime) -> datetime | None:
    """When to try a failed delivery again, or None (given up after MAX_ATTEMPTS).

    Args:
        total_attempts: Attempts so far, the one that just failed included.
        now: The time of that failure.
    """
    if total_attempts >= MAX_ATTEMPTS:
        return None
    doublings = min(max(total_attempts - 1, 0), 16)
    return now + min(RETRY_FIRST * (1 << doublings), RETRY_MAX)
