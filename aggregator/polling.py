"""When to poll a feed next, and whether to poll it now: pure decisions of data and `now`.

Nothing here does I/O or reads a clock or a random source: the caller passes `now` and
a number in [0, 1) for the jitter, so every rule can be tested exhaustively.

The rules:

* A feed the server says is gone (HTTP 410) is disabled: it has no next poll until the
  user enables it again.
* After a failure (network error, timeout, 404, 5xx, a body that is not a feed, ...) the
  feed backs off exponentially: its regular interval doubled per consecutive failure,
  minus up to `jitter` of that (so feeds that failed together do not retry together),
  capped at `max_backoff`.
* A server that answered 429 or 503 with ``Retry-After`` is not asked again before then.
* After a success (200, or 304 Not Modified) the feed's regular interval applies: the
  user's fixed ``interval`` exactly as given (even below `min_interval`), else an adaptive
  one: about the average gap between its recent entries, clamped to
  [`min_interval`, `max_interval`], and never sooner than the feed's ``<ttl>``,
  ``Cache-Control: max-age`` or ``Expires`` allow.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NamedTuple

from aggregator.dates import parse_http_date
from aggregator.types import PollOutcome

#: How many of a feed's most recent entries the adaptive interval looks at.
RECENT_ENTRIES = 10


@dataclass(frozen=True)
class Schedule:
    """The knobs of the decisions (the [poll] table of feeds.toml)."""

    min_interval: timedelta = timedelta(minutes=5)
    max_interval: timedelta = timedelta(hours=24)
    default_interval: timedelta = timedelta(minutes=30)
    max_backoff: timedelta = timedelta(hours=24)
    jitter: float = 0.2  # at most this fraction of a backoff delay is taken off at random


class CacheHints(NamedTuple):
    """What the server and the feed said about how long their answer stays fresh."""

    ttl: timedelta | None = None  # RSS <ttl>
    max_age: timedelta | None = None  # Cache-Control: max-age
    expires: datetime | None = None  # Expires
    retry_after: datetime | None = None  # Retry-After, made absolute


class Decision(NamedTuple):
    """When to poll next, and what to remember about the server's wishes."""

    next_poll: datetime | None  # None: not until the user re-enables the feed
    retry_after: datetime | None  # a plain `poll` skips the feed until then
    disabled: bool


def decide(
    outcome: PollOutcome,
    *,
    now: datetime,
    failures: int,
    fixed_interval: timedelta | None,
    recent: Sequence[datetime],
    hints: CacheHints | None = None,
    schedule: Schedule = Schedule(),
    rand: float = 0.0,
) -> Decision:
    """Decide a feed's next poll from the outcome of the poll that just finished.

    Args:
        outcome: What the poll came to.
        now: When it finished (timezone-aware).
        failures: Consecutive failures including this poll (0 after a success).
        fixed_interval: The user's fixed ``interval`` for this feed, if any.
        recent: Publication times of the feed's recent entries (any order).
        hints: Freshness hints from the response and the feed (default: none).
        schedule: The limits.
        rand: A number in [0, 1) for the backoff jitter.

    Returns:
        The next poll time (None when the feed is now disabled) and the Retry-After time
        to respect, if any.
    """
    hints = hints or CacheHints()
    if outcome is PollOutcome.GONE:
        return Decision(None, None, disabled=True)
    retry_after = hints.retry_after if hints.retry_after and hints.retry_after > now else None
    regular = interval(fixed_interval, recent, now=now, schedule=schedule)
    if outcome in (PollOutcome.ERROR, PollOutcome.THROTTLED):
        if outcome is PollOutcome.THROTTLED and retry_after is not None:
            return Decision(retry_after, retry_after, disabled=False)
        delay = backoff(regular, failures, schedule=schedule, rand=rand)
        candidates = [now + delay] + ([retry_after] if retry_after else [])
        return Decision(max(candidates), retry_after, disabled=False)
    if fixed_interval is not None:
        # The user's choice, honoured as given; only an explicit Retry-After outranks it.
        due = now + fixed_interval
        return Decision(max(due, retry_after) if retry_after else due, retry_after, False)
    due = now + regular
    for floor in _freshness_floors(hints, now):
        due = max(due, floor)
    return Decision(due, retry_after, disabled=False)


def _freshness_floors(hints: CacheHints, now: datetime) -> list[datetime]:
    floors = []
    if hints.ttl:
        floors.append(now + hints.ttl)
    if hints.max_age:
        floors.append(now + hints.max_age)
    elif hints.expires:  # max-age overrides Expires (RFC 9111 5.3)
        floors.append(hints.expires)
    if hints.retry_after:
        floors.append(hints.retry_after)
    return floors


def interval(
    fixed: timedelta | None,
    recent: Sequence[datetime],
    *,
    now: datetime,
    schedule: Schedule = Schedule(),
) -> timedelta:
    """A feed's regular polling interval.

    Args:
        fixed: The user's fixed interval, returned unchanged when set.
        recent: Publication times of recent entries.
        now: The current time.
        schedule: The limits.

    Returns:
        `fixed`, else the average gap between the last RECENT_ENTRIES entries (measured
        up to `now`, so a feed that fell silent is polled less and less), clamped to
        [min_interval, max_interval]; `default_interval` (clamped too) with fewer than two
        entries to go by.
    """
    if fixed is not None:
        return fixed
    times = sorted((min(t, now) for t in recent), reverse=True)[:RECENT_ENTRIES]
    if len(times) < 2:
        return clamp(schedule.default_interval, schedule)
    average = (now - times[-1]) / len(times)
    return clamp(average, schedule)


def clamp(value: timedelta, schedule: Schedule) -> timedelta:
    """`value` limited to [min_interval, max_interval]."""
    return max(schedule.min_interval, min(schedule.max_interval, value))


def backoff(
    regular: timedelta, failures: int, *, schedule: Schedule = Schedule(), rand: float = 0.0
) -> timedelta:
    """The wait after `failures` consecutive failures.

    Args:
        regular: The feed's regular interval.
        failures: Consecutive failures so far (1 after the first).
        schedule: Holds the cap and the jitter fraction.
        rand: A number in [0, 1); `rand * jitter` of the delay is taken off.

    Returns:
        ``regular * 2**(failures - 1)``, capped at `max_backoff` (or at `regular`, when
        that is longer), less the jitter; never less than half of `regular`.
    """
    cap = max(schedule.max_backoff, regular)
    delay = regular
    for _ in range(failures - 1):
        if delay >= cap:  # doubling on would only overflow
            break
        delay *= 2
    delay = min(cap, delay)
    jitter = min(max(rand, 0.0), 1.0) * min(max(schedule.jitter, 0.0), 0.5)
    return delay * (1 - jitter)


class Due(NamedTuple):
    """Whether `poll` fetches a feed now, and if not, why."""

    due: bool
    reason: str | None = None


def due_for_manual_poll(
    *,
    now: datetime,
    disabled_reason: str | None,
    retry_after: datetime | None,
    force: bool,
) -> Due:
    """Whether ``aggregator poll`` fetches a feed now, whatever its regular schedule.

    Args:
        now: The current time.
        disabled_reason: Why the feed is disabled, if it is.
        retry_after: Until when its server asked us to wait, if it did.
        force: ``poll --force``: fetch it anyway.

    Returns:
        Due, or not due with the reason (disabled; Retry-After not yet passed).
    """
    if force:
        return Due(True)
    if disabled_reason:
        return Due(False, f"disabled: {disabled_reason}")
    if retry_after is not None and retry_after > now:
        return Due(False, f"server asked to wait until {retry_after.isoformat(timespec='seconds')}")
    return Due(True)


# --- reading the headers the decisions use --------------------------------------------


def parse_retry_after(value: str | None, now: datetime) -> datetime | None:
    """``Retry-After: 120`` or ``Retry-After: <HTTP-date>`` as an absolute time.

    Args:
        value: The header's value.
        now: When the response arrived.

    Returns:
        The time, or None when absent or unreadable. A wait longer than a week is
        limited to a week, so a typo cannot silence a feed for years.
    """
    if not value or not value.strip():
        return None
    text = value.strip()
    if text.isdigit():
        when = now + timedelta(seconds=min(int(text), 7 * 86400))
    else:
        parsed = parse_http_date(text)
        if parsed is None:
            return None
        when = min(parsed, now + timedelta(days=7))
    return when if when > now else None


def parse_max_age(cache_control: str | None) -> timedelta | None:
    """The ``max-age`` of a Cache-Control header (``no-cache``/``no-store`` mean none).

    Returns:
        The duration, or None when absent, unreadable, zero or negated by no-cache.
    """
    if not cache_control:
        return None
    directives = [d.strip().lower() for d in cache_control.split(",")]
    if "no-cache" in directives or "no-store" in directives:
        return None
    for directive in directives:
        name, _, arg = directive.partition("=")
        if name.strip() == "max-age":
            arg = arg.strip().strip('"')
            if arg.isdigit() and int(arg) > 0:
                return timedelta(seconds=min(int(arg), 7 * 86400))
    return None


def parse_expires(value: str | None, now: datetime) -> datetime | None:
    """An ``Expires`` header in the future (invalid or past dates mean none)."""
    parsed = parse_http_date(value.strip()) if value else None
    if parsed is None or parsed <= now:
        return None
    return min(parsed, now + timedelta(days=7))


def parse_ttl(minutes: int | None) -> timedelta | None:
    """An RSS ``<ttl>`` (minutes) as a duration; at most a day is honoured."""
    if minutes is None or minutes <= 0:
        return None
    return timedelta(minutes=min(minutes, 24 * 60))
