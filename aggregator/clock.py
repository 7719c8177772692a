"""The one seam for time: everything that needs "now" receives a Clock."""

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def now() -> datetime:
    """Return the current time, timezone-aware in UTC."""
    return datetime.now(UTC)
