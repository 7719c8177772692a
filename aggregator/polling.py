"""When to poll a feed next, and whether to poll it now: pure decisions of data and `now`.

The one home of the timing rules: a poll's next time (`decide`, jitter included), the
daemon's first poll of a feed and its fallback after a poll that decided nothing
(`first_poll_time`, `next_poll_time`), the wait after a poll that could not be stored, and
which feeds to poll early before a daily digest is made (`catch_up_polls`).
Nothing here does I/O or reads a clock: the caller passes `now`, and a number in [0, 1)
(or a seeded `random.Random`) for the jitter, so every rule can be tested exhaustively.

The rules:

* A feed the server says is gone (HTTP 410) is disabled: it has no next poll until the
  user enables it again.
* After a failure (network error, timeout, 404, 5xx, a body that is not a feed, ...) the
  feed backs off exponentially: its regular interval doubled per consecutive failure,
  minus up to `jitter` of that (so feeds that failed together do not retry together),
  capped at `max_backoff`.
* A server that answered 429 or 503 with ``Retry-After`` is not asked again before then.
* After a success (200, or 304 Not Modified) the feed's regular interval applies: the
  user's fixed ``interval`` as given (even below `min_interval`), else an adaptive
  one: about the average gap between its recent entries, clamped to
  [`min_interval`, `max_interval`], and never sooner than the feed's ``<ttl>``,
  ``Cache-Control: max-age`` or ``Expires`` allow.
* Jitter is applied once per decision: a backoff is shortened (above); every other next
  poll is delayed by up to JITTER_FRACTION of its wait, at most MAX_JITTER (so feeds that
  share a schedule drift apart, and a Retry-After is never cut short).
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, NamedTuple

from aggregator.config import DEFAULT_INTERVAL, PollConfig
from aggregator.dates import parse_http_date
from aggregator.types import Feed, PollOutcome, SourceKind

if TYPE_CHECKING:
    from aggregator.storage import FeedState

#: How many of a feed's most recent entries the adaptive interval looks at.
RECENT_ENTRIES = 10
#: A next poll that is not a backoff is delayed by up to this fraction of its wait, at
#: most MAX_JITTER: feeds that happen to share a schedule drift apart.
JITTER_FRACTION = 0.1
MAX_JITTER = timedelta(seconds=30)
#: On start, first polls are spread so that feeds don't all fire at once: over 0.1 s per
#: feed, between 1 s and 60 s (1,000 feeds: a minute), or over a feed's interval if shorter.
SPREAD_PER_FEED = timedelta(seconds=0.1)
MIN_SPREAD = timedelta(seconds=1)
MAX_SPREAD = timedelta(seconds=60)
#: A poll that could not be stored (a full disk) is tried again after this, or the feed's
#: interval if longer, doubled per failure in a row: a full disk is not freed in a second.
STORAGE_RETRY = timedelta(seconds=30)

_DEFAULTS = PollConfig()  # the [poll] defaults: config.py is their one source


@dataclass(frozen=True)
class Schedule:
    """The knobs of the decisions (the [poll] table of feeds.toml)."""

    min_interval: timedelta = _DEFAULTS.min_interval
    max_interval: timedelta = _DEFAULTS.max_interval
    default_interval: timedelta = DEFAULT_INTERVAL
    max_backoff: timedelta = _DEFAULTS.max_backoff
    jitter: float = 0.2  # at most this fraction of a backoff delay is taken off at random

    @classmethod
    def from_config(cls, poll: PollConfig) -> Schedule:
        """The scheduling bounds of a [poll] table."""
        return cls(
            min_interval=poll.min_interval,
            max_interval=poll.max_interval,
            max_backoff=poll.max_backoff,
        )


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
        rand: A number in [0, 1) for the jitter (a backoff is shortened by it, any other
            wait lengthened: see `jitter`).

    Returns:
        The next poll time, jitter included (None when the feed is now disabled), and the
        Retry-After time to respect, if any.
    """
    hints = hints or CacheHints()
    if outcome is PollOutcome.GONE:
        return Decision(None, None, disabled=True)
    retry_after = hints.retry_after if hints.retry_after and hints.retry_after > now else None
    regular = interval(fixed_interval, recent, now=now, schedule=schedule)
    if outcome in (PollOutcome.ERROR, PollOutcome.THROTTLED):
        if outcome is PollOutcome.THROTTLED and retry_after is not None:
            return Decision(jitter(retry_after, now, rand), retry_after, disabled=False)
        delay = backoff(regular, failures, schedule=schedule, rand=rand)  # its own jitter
        candidates = [now + delay] + ([retry_after] if retry_after else [])
        return Decision(max(candidates), retry_after, disabled=False)
    if fixed_interval is not None:
        # The user's choice, honoured as given; only an explicit Retry-After outranks it.
        due = now + fixed_interval
        due = max(due, retry_after) if retry_after else due
        return Decision(jitter(due, now, rand), retry_after, False)
    due = now + regular
    for floor in _freshness_floors(hints, now):
        due = max(due, floor)
    return Decision(jitter(due, now, rand), retry_after, disabled=False)


def jitter(due: datetime, now: datetime, rand: float) -> datetime:
    """`due` delayed by `rand` times JITTER_FRACTION of the wait from `now`, at most
    MAX_JITTER: only ever later, so a server's Retry-After is never cut short."""
    return due + min((due - now) * JITTER_FRACTION, MAX_JITTER) * min(max(rand, 0.0), 1.0)


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
    cut = min(max(rand, 0.0), 1.0) * min(max(schedule.jitter, 0.0), 0.5)
    return delay * (1 - cut)


def fixed_interval(feed: Feed, schedule: Schedule) -> timedelta | None:
    """The interval `decide` keeps to for `feed`: the user's, or for a local file the
    default one (reading a file costs no server anything: no need to adapt); None means
    adaptive."""
    if feed.interval is None and feed.kind is SourceKind.FILE:
        return schedule.default_interval
    return feed.interval


def feed_interval(feed: Feed) -> timedelta:
    """The feed's fixed interval, or the default when it has none (the daemon's fallback)."""
    return feed.interval or DEFAULT_INTERVAL


# --- the daemon's times -------------------------------------------------------------------


def start_spread(feed_count: int) -> timedelta:
    """Over how long the first polls of `feed_count` feeds are spread on start."""
    return max(MIN_SPREAD, min(SPREAD_PER_FEED * feed_count, MAX_SPREAD))


def first_poll_time(
    now: datetime,
    next_poll: datetime | None,
    interval: timedelta,
    spread: timedelta,
    rng: random.Random,
    *,
    retry_after: datetime | None = None,
    fixed: timedelta | None = None,
    failures: int = 0,
) -> datetime:
    """When to poll a feed first after the daemon starts (or the feed is added).

    At its stored next poll if that is still ahead (a backoff, its schedule from before a
    restart) and never before a server's Retry-After, else now; plus up to `spread` (or
    its interval, if shorter) so that feeds don't all fire at once. A `fixed` interval
    (edited while the daemon was down) applies at once, unless `failures` are backing off.
    """
    if next_poll is not None and fixed is not None and failures == 0:
        next_poll = min(next_poll, now + fixed)
    base = max(t for t in (now, next_poll, retry_after) if t is not None)
    return base + min(interval, spread) * rng.random()


def next_poll_time(
    now: datetime,
    started: datetime,
    next_poll: datetime | None,
    interval: timedelta,
    rng: random.Random,
    *,
    retry_after: datetime | None = None,
) -> datetime:
    """When the daemon polls a feed again after a poll that started at `started`.

    `next_poll` is what the poll returned: decided by `decide`, jitter included, it is
    kept as it is (not before `now`). One that is not later than the poll's start was not
    decided by this poll (it was skipped), and then the feed's `interval` applies from
    now, never before a server's `retry_after`, plus `jitter`.
    """
    if next_poll is not None and next_poll > started:
        return max(now, next_poll)
    return jitter(max(now + interval, retry_after or now), now, rng.random())


def storage_retry_time(
    now: datetime, interval: timedelta, failures: int, schedule: Schedule, rand: float
) -> datetime:
    """When to poll a feed again whose last `failures` polls could not be stored.

    The backoff (doubling, capped at [poll] max_backoff), from the feed's interval but
    at least STORAGE_RETRY.
    """
    return now + backoff(max(interval, STORAGE_RETRY), failures, schedule=schedule, rand=rand)


def catch_up_polls(
    feeds: Iterable[Feed],
    states: Mapping[str, FeedState],
    *,
    window_end: datetime,
    now: datetime,
    schedule: Schedule = Schedule(),
) -> list[Feed]:
    """The feeds to poll now, before the daily digest of a window ending at `window_end`
    is made: those that may hold entries of the window not seen yet, and whose next poll
    is later than `now` only because of their interval.

    A feed on a long adaptive interval (up to `max_interval`, 24 h) last polled in the
    evening is next polled the next evening: what it published late that day would be
    stored after the day's digest was made, and be in no daily digest. So a feed of
    `feeds` is polled now when all of these hold:

    * it is stored (`states`, by URL; none: renamed by ``feeds update-urls``, skipped);
    * it is enabled (not disabled by a 410 Gone);
    * its interval is adaptive: a fixed ``interval`` is honoured exactly, and a local
      file keeps its default one (`fixed_interval`);
    * it is not backing off after failures, nor held off by a server's Retry-After;
    * its last attempt was before `window_end` (one polled since has been read past the
      window);
    * its next poll is after `now` (a due feed's poll comes anyway, and the digest waits
      for the store's pass).

    Returns:
        Those feeds, in the order of `feeds`.
    """
    chosen = []
    for feed in feeds:
        state = states.get(feed.url)
        if state is None or state.disabled_reason is not None:
            continue
        if fixed_interval(feed, schedule) is not None:
            continue
        if state.consecutive_failures > 0:
            continue
        if state.retry_after is not None and state.retry_after > now:
            continue
        if state.last_attempt is not None and state.last_attempt >= window_end:
            continue
        if state.next_poll is None or state.next_poll <= now:
            continue
        chosen.append(feed)
    return chosen


#: How soon a poller asks again for a feed it could not lease because its host had
#: `per_host` feeds in flight, or another poller was leasing it that moment (up to twice
#: this, at random, so that pollers refused together ask apart).
LEASE_RETRY = timedelta(seconds=2)


def lease_retry_time(now: datetime, refused_until: datetime | None, rand: float) -> datetime:
    """When to ask again for a feed another poller has (docs/postgres.md, Several pollers):
    when what refused it ends (the feed's next poll, the other's lease), else soon."""
    if refused_until is not None and refused_until > now:
        return refused_until
    return now + LEASE_RETRY * (1 + rand)


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
