"""polling.py: the pure scheduling decisions, exhaustively."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aggregator.polling import (
    CacheHints,
    Schedule,
    backoff,
    catch_up_polls,
    decide,
    due_for_manual_poll,
    interval,
    lease_retry_time,
    parse_expires,
    parse_max_age,
    parse_retry_after,
    parse_ttl,
)
from aggregator.storage import FeedState
from aggregator.types import Feed, PollOutcome

NOW = datetime(2025, 2, 12, 12, 0, tzinfo=UTC)
S = Schedule()  # 5 min .. 24 h, default 30 min, backoff cap 24 h, jitter 20 %
M = timedelta(minutes=1)
H = timedelta(hours=1)


def every(gap: timedelta, n: int = 10, last: datetime = NOW) -> list[datetime]:
    return [last - gap * i for i in range(n)]


# --- the regular interval ------------------------------------------------------------------


def test_fixed_interval_is_returned_as_given_even_below_the_minimum() -> None:
    assert interval(timedelta(seconds=2), every(H), now=NOW) == timedelta(seconds=2)
    assert interval(timedelta(days=3), [], now=NOW) == timedelta(days=3)


@pytest.mark.parametrize(
    ("recent", "expected"),
    [
        ([], 30 * M),  # nothing to go by: the default
        ([NOW - H], 30 * M),  # one entry is no rate
        (every(H), H * 9 / 10),  # ten entries an hour apart, the newest now
        (every(10 * M, n=30), 9 * M),  # only the last ten count
        (every(M), 5 * M),  # clamped to the minimum
        (every(timedelta(days=3)), 24 * H),  # clamped to the maximum
        (every(H, last=NOW - timedelta(days=30)), 24 * H),  # fell silent: back off to a day
        # Dates in the future count as now: the feed's clock is wrong, not its rate.
        (every(H, last=NOW + 2 * H), 42 * M),
    ],
)
def test_adaptive_interval(recent: list[datetime], expected: timedelta) -> None:
    assert interval(None, recent, now=NOW) == expected


def test_adaptive_interval_ignores_order_and_custom_bounds() -> None:
    recent = list(reversed(every(H)))
    assert interval(None, recent, now=NOW) == H * 9 / 10
    tight = Schedule(min_interval=2 * H, max_interval=3 * H, default_interval=10 * H)
    assert interval(None, recent, now=NOW, schedule=tight) == 2 * H
    assert interval(None, [], now=NOW, schedule=tight) == 3 * H


# --- backoff -------------------------------------------------------------------------------


def test_backoff_doubles_per_failure_and_is_capped() -> None:
    assert [backoff(M, n) for n in range(1, 6)] == [M, 2 * M, 4 * M, 8 * M, 16 * M]
    assert backoff(H, 30) == 24 * H
    assert backoff(H, 10_000) == 24 * H  # no overflow
    assert backoff(48 * H, 3) == 48 * H  # a fixed interval longer than the cap stays
    assert backoff(M, 0) == M


def test_backoff_jitter_only_shortens_and_by_at_most_its_fraction() -> None:
    assert backoff(H, 3, rand=0.0) == 4 * H
    assert backoff(H, 3, rand=0.5) == 4 * H * 0.9
    assert backoff(H, 30, rand=0.999) >= 24 * H * 0.8
    assert backoff(H, 30, rand=0.999) < 24 * H


@given(
    regular=st.timedeltas(min_value=timedelta(seconds=1), max_value=timedelta(days=2)),
    failures=st.integers(min_value=1, max_value=200),
    rand=st.floats(min_value=0, max_value=0.999999),
)
def test_backoff_bounds(regular: timedelta, failures: int, rand: float) -> None:
    delay = backoff(regular, failures, rand=rand)
    assert regular / 2 <= delay <= max(24 * H, regular)
    assert delay >= backoff(regular, failures, rand=0.999999)


# --- decide --------------------------------------------------------------------------------


def test_ok_with_fixed_interval_ignores_cache_hints_but_not_retry_after() -> None:
    hints = CacheHints(ttl=H, max_age=2 * H, expires=NOW + 3 * H)
    d = decide(PollOutcome.OK, now=NOW, failures=0, fixed_interval=10 * M, recent=[], hints=hints)
    assert d == (NOW + 10 * M, None, False)
    hints = CacheHints(retry_after=NOW + H)
    d = decide(PollOutcome.OK, now=NOW, failures=0, fixed_interval=10 * M, recent=[], hints=hints)
    assert d.next_poll == NOW + H


@pytest.mark.parametrize(
    ("hints", "expected"),
    [
        (CacheHints(), NOW + 30 * M),
        (CacheHints(ttl=H), NOW + H),
        (CacheHints(ttl=M), NOW + 30 * M),  # never sooner than the interval either
        (CacheHints(max_age=2 * H), NOW + 2 * H),
        (CacheHints(expires=NOW + 3 * H), NOW + 3 * H),
        (CacheHints(max_age=M, expires=NOW + 3 * H), NOW + 30 * M),  # max-age beats Expires
        (CacheHints(ttl=4 * H, max_age=2 * H), NOW + 4 * H),
        (CacheHints(retry_after=NOW + 5 * H), NOW + 5 * H),
    ],
)
def test_ok_adaptive_never_sooner_than_the_hints(hints: CacheHints, expected: datetime) -> None:
    for outcome in (PollOutcome.OK, PollOutcome.NOT_MODIFIED):
        d = decide(outcome, now=NOW, failures=0, fixed_interval=None, recent=[], hints=hints)
        assert d.next_poll == expected and not d.disabled


def test_error_backs_off_from_the_regular_interval() -> None:
    for failures, wait in ((1, 30 * M), (2, H), (3, 2 * H), (7, 24 * H), (50, 24 * H)):
        d = decide(PollOutcome.ERROR, now=NOW, failures=failures, fixed_interval=None, recent=[])
        assert d == (NOW + wait, None, False)
    d = decide(PollOutcome.ERROR, now=NOW, failures=3, fixed_interval=10 * M, recent=[], rand=0.5)
    assert d.next_poll == NOW + 40 * M * 0.9


def test_throttled_waits_for_retry_after_else_backs_off() -> None:
    hints = CacheHints(retry_after=NOW + 3 * H)
    d = decide(PollOutcome.THROTTLED, now=NOW, failures=1, fixed_interval=M, recent=[], hints=hints)
    assert d == (NOW + 3 * H, NOW + 3 * H, False)
    d = decide(PollOutcome.THROTTLED, now=NOW, failures=2, fixed_interval=M, recent=[])
    assert d == (NOW + 2 * M, None, False)
    past = CacheHints(retry_after=NOW - H)
    d = decide(PollOutcome.THROTTLED, now=NOW, failures=1, fixed_interval=M, recent=[], hints=past)
    assert d == (NOW + M, None, False)


def test_error_with_retry_after_waits_for_the_later_of_both() -> None:
    hints = CacheHints(retry_after=NOW + 2 * M)
    d = decide(PollOutcome.ERROR, now=NOW, failures=4, fixed_interval=M, recent=[], hints=hints)
    assert d.next_poll == NOW + 8 * M and d.retry_after == NOW + 2 * M


def test_jitter_is_applied_once_and_only_delays_a_wait_that_is_not_a_backoff() -> None:
    # After a success (or a Retry-After), up to 10 % of the wait later, at most 30 s.
    d = decide(PollOutcome.OK, now=NOW, failures=0, fixed_interval=timedelta(seconds=1), recent=[])
    assert d.next_poll == NOW + timedelta(seconds=1)
    d = decide(
        PollOutcome.OK,
        now=NOW,
        failures=0,
        fixed_interval=timedelta(seconds=1),
        recent=[],
        rand=0.5,
    )
    assert d.next_poll == NOW + timedelta(seconds=1.05)
    d = decide(PollOutcome.NOT_MODIFIED, now=NOW, failures=0, fixed_interval=H, recent=[], rand=0.5)
    assert d.next_poll == NOW + H + timedelta(seconds=15)
    hints = CacheHints(retry_after=NOW + 3 * H)
    d = decide(PollOutcome.THROTTLED, now=NOW, failures=1, fixed_interval=M, recent=[], hints=hints)
    assert d.retry_after == NOW + 3 * H
    d = decide(
        PollOutcome.THROTTLED, now=NOW, failures=1, fixed_interval=M, recent=[], hints=hints, rand=1
    )
    assert d.next_poll == NOW + 3 * H + timedelta(seconds=30)
    # A backoff has its own jitter (shorter), and nothing is added to it.
    d = decide(PollOutcome.ERROR, now=NOW, failures=3, fixed_interval=10 * M, recent=[], rand=0.5)
    assert d.next_poll == NOW + 40 * M * 0.9


def test_gone_disables() -> None:
    d = decide(PollOutcome.GONE, now=NOW, failures=1, fixed_interval=M, recent=every(H))
    assert d == (None, None, True)


# --- due for `aggregator poll` -------------------------------------------------------------


@pytest.mark.parametrize(
    ("disabled", "retry_after", "force", "due", "why"),
    [
        (None, None, False, True, None),
        (None, NOW - M, False, True, None),
        (None, NOW + M, False, False, "server asked to wait until 2025-02-12T12:01:00+00:00"),
        (None, NOW + M, True, True, None),
        ("HTTP 410 Gone", None, False, False, "disabled: HTTP 410 Gone"),
        ("HTTP 410 Gone", NOW + M, True, True, None),
    ],
)
def test_due_for_manual_poll(
    disabled: str | None, retry_after: datetime | None, force: bool, due: bool, why: str | None
) -> None:
    assert due_for_manual_poll(
        now=NOW, disabled_reason=disabled, retry_after=retry_after, force=force
    ) == (due, why)


# --- headers -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", NOW + 2 * M),
        (" 0 ", None),
        ("Wed, 12 Feb 2025 14:00:00 GMT", NOW + 2 * H),
        ("Wed, 12 Feb 2025 10:00:00 GMT", None),  # in the past
        ("99999999999", NOW + timedelta(days=7)),  # a week at most
        ("Fri, 12 Feb 2100 14:00:00 GMT", NOW + timedelta(days=7)),
        ("soon", None),
        ("-5", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_retry_after(value: str | None, expected: datetime | None) -> None:
    assert parse_retry_after(value, NOW) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("max-age=600", 10 * M),
        ("public, max-age=3600, must-revalidate", H),
        ('max-age="60"', M),
        ("no-cache, max-age=600", None),
        ("no-store", None),
        ("max-age=0", None),
        ("max-age=abc", None),
        ("s-maxage=600", None),
        (None, None),
    ],
)
def test_parse_max_age(value: str | None, expected: timedelta | None) -> None:
    assert parse_max_age(value) == expected


def test_parse_expires_and_ttl() -> None:
    assert parse_expires("Wed, 12 Feb 2025 13:00:00 GMT", NOW) == NOW + H
    assert parse_expires("Wed, 12 Feb 2025 11:00:00 GMT", NOW) is None
    assert parse_expires("0", NOW) is None and parse_expires(None, NOW) is None
    assert parse_ttl(60) == H and parse_ttl(0) is None and parse_ttl(None) is None
    assert parse_ttl(10_000) == 24 * H


def test_a_feed_another_poller_has_is_asked_for_again_when_that_ends() -> None:
    # Its next poll (another poller polled it), or the other's lease's end (it died).
    assert lease_retry_time(NOW, NOW + H, 0.7) == NOW + H
    # Its host full, or another poller taking it at that moment: 2-4 s, apart at random.
    assert lease_retry_time(NOW, None, 0.0) == NOW + timedelta(seconds=2)
    assert lease_retry_time(NOW, None, 0.5) == NOW + timedelta(seconds=3)
    assert lease_retry_time(NOW, NOW - M, 0.0) == NOW + timedelta(seconds=2)  # ended already


# --- which feeds a daily digest polls early ------------------------------------------------

#: The window of the digest made at NOW ends 12 hours before (midnight, digest timezone).
END = NOW - 12 * H


def state(
    url: str,
    *,
    last_attempt: datetime | None = END - 4 * H,
    next_poll: datetime | None = END + 20 * H,
    failures: int = 0,
    retry_after: datetime | None = None,
    disabled: str | None = None,
) -> FeedState:
    return FeedState.never_polled(url, url)._replace(
        last_attempt=last_attempt,
        last_success=last_attempt if not failures else None,
        next_poll=next_poll,
        consecutive_failures=failures,
        retry_after=retry_after,
        disabled_reason=disabled,
    )


def test_a_slow_feed_polled_before_midnight_is_polled_before_the_digest() -> None:
    """Polled at 20:00, next at 20:00 the next day (its adaptive 24 h): polled now; the
    same feed polled after midnight, due now, or on a fixed interval: not."""
    slow = Feed("https://slow.example/rss", "Slow")
    fixed = Feed("https://fixed.example/rss", "Fixed", interval=24 * H)
    seen = Feed("https://seen.example/rss", "Seen")
    due = Feed("https://due.example/rss", "Due")
    states = {
        slow.url: state(slow.url),
        fixed.url: state(fixed.url),
        seen.url: state(seen.url, last_attempt=END + 2 * H, next_poll=NOW + H),
        due.url: state(due.url, next_poll=NOW),
    }
    feeds = [slow, fixed, seen, due]
    assert catch_up_polls(feeds, states, window_end=END, now=NOW) == [slow]


def test_catch_up_polls_exhaustively() -> None:
    """Every combination of what decides it, against the rule written out: an enabled,
    stored feed on an adaptive interval (not a fixed one, not a local file's default),
    neither backing off nor held off by a Retry-After, last attempted before the window's
    end (or never) and not due yet."""
    kinds = {
        "adaptive": Feed("https://a.example/rss", "A"),
        "fixed": Feed("https://a.example/rss", "A", interval=2 * H),
        "fixed below min": Feed("https://a.example/rss", "A", interval=M),
        "file": Feed("/srv/news.xml", "A"),
    }
    attempts = [None, END - 20 * H, END - timedelta(microseconds=1), END, END + H, NOW]
    next_polls = [None, NOW - H, NOW, NOW + timedelta(seconds=1), NOW + 20 * H]
    retry_afters = [None, NOW - M, NOW, NOW + M]
    checked = 0
    for kind, last, next_poll, failures, retry_after, disabled, stored in itertools.product(
        kinds, attempts, next_polls, (0, 1, 5), retry_afters, (None, "HTTP 410 Gone"), (1, 0)
    ):
        feed = kinds[kind]
        states = {}
        if stored:
            states[feed.url] = state(
                feed.url,
                last_attempt=last,
                next_poll=next_poll,
                failures=failures,
                retry_after=retry_after,
                disabled=disabled,
            )
        expected = (
            bool(stored)
            and kind == "adaptive"
            and disabled is None
            and failures == 0
            and (retry_after is None or retry_after <= NOW)
            and (last is None or last < END)
            and next_poll is not None
            and next_poll > NOW
        )
        got = catch_up_polls([feed], states, window_end=END, now=NOW, schedule=S)
        assert got == ([feed] if expected else []), (kind, last, next_poll, failures, retry_after)
        checked += 1
    assert checked == 4 * 6 * 5 * 3 * 4 * 2 * 2


def test_catch_up_polls_keeps_the_feeds_order_and_reads_only_their_states() -> None:
    feeds = [Feed(f"https://{n}.example/rss", n) for n in "cab"]
    states = {feed.url: state(feed.url) for feed in feeds}
    states["https://other.example/rss"] = state("https://other.example/rss")  # not configured
    assert catch_up_polls(feeds, states, window_end=END, now=NOW) == feeds
