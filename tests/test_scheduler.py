"""The daemon's schedule: pure timing decisions, the wiring on a paused scheduler with a
frozen clock, reloads, the daily digest, the database lock and shared-connection safety."""

from __future__ import annotations

import itertools
import logging
import os
import random
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from datetime import time as dt_time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from apscheduler.events import EVENT_JOB_SUBMITTED, JobSubmissionEvent
from hypothesis import given
from hypothesis import strategies as st
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from aggregator.config import DEFAULT_INTERVAL, load_config
from aggregator.core import Aggregator, make_aggregator
from aggregator.exceptions import (
    CorruptDatabaseError,
    DaemonRunningError,
    DatabasePathError,
    StorageError,
)
from aggregator.scheduler import (
    DIGEST_RETRY,
    MAX_JITTER,
    MIN_SPREAD,
    QUEUED_TRUSTED,
    Daemon,
    _Gather,
    due_digest_day,
    first_poll_time,
    make_due_digest,
    next_poll_time,
    start_spread,
)
from aggregator.storage import FeedUpdate, Storage, open_storage
from aggregator.storage.lock import DatabaseLock, read_report
from aggregator.storage.sqlite import to_db_time
from aggregator.types import EntryData, Feed, PollResult
from tests.conftest import FrozenClock, wait_until, write_config

SHANGHAI = ZoneInfo("Asia/Shanghai")
T0 = datetime(2025, 2, 12, 12, 0, tzinfo=UTC)
H = timedelta(hours=1)

# --- pure decisions -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("now", "tz", "expected"),
    [
        # 07:00 in Shanghai is 23:00 UTC the day before.
        (datetime(2025, 2, 11, 23, 0, tzinfo=UTC), "Asia/Shanghai", date(2025, 2, 11)),
        (datetime(2025, 2, 11, 22, 59, 59, tzinfo=UTC), "Asia/Shanghai", date(2025, 2, 10)),
        (datetime(2025, 2, 12, 12, 0, tzinfo=UTC), "Asia/Shanghai", date(2025, 2, 11)),
        (datetime(2025, 2, 12, 6, 59, tzinfo=UTC), "UTC", date(2025, 2, 10)),
        (datetime(2025, 2, 12, 7, 0, tzinfo=UTC), "UTC", date(2025, 2, 11)),
        (datetime(2025, 1, 1, 0, 30, tzinfo=UTC), "UTC", date(2024, 12, 30)),
    ],
)
def test_due_digest_day_is_yesterday_once_the_time_has_passed(
    now: datetime, tz: str, expected: date
) -> None:
    assert due_digest_day(now, ZoneInfo(tz), datetime.min.time().replace(hour=7)) == expected


def test_due_digest_day_in_the_hour_the_clocks_pass_twice_follows_its_first_pass() -> None:
    """Paris, 26 October 2025, [digest] time 02:30: made at its first pass (00:30 UTC); a
    daemon started at 02:10 of the second pass (01:10 UTC) has yesterday's digest due
    (it was before: 02:10 read as not yet 02:30, so none was made until the next day)."""
    paris, at = ZoneInfo("Europe/Paris"), dt_time(2, 30)
    assert due_digest_day(datetime(2025, 10, 26, 0, 29, tzinfo=UTC), paris, at) == date(
        2025, 10, 24
    )
    for minutes in (30, 40, 70, 90):
        now = datetime(2025, 10, 26, 0, 0, tzinfo=UTC) + timedelta(minutes=minutes)
        assert due_digest_day(now, paris, at) == date(2025, 10, 25), now


#: Zones whose clocks change: Paris and New York (spring forward at 02:00), Sydney (the
#: southern hemisphere's), St John's (-03:30), Lord Howe (a half-hour change), Santiago
#: and Beirut (at midnight: the day starts at 01:00); Kathmandu (+05:45) never changes.
CHANGING = [
    ("Europe/Paris", 2025),
    ("America/New_York", 2025),
    ("Australia/Sydney", 2025),
    ("America/St_Johns", 2025),
    ("Australia/Lord_Howe", 2025),
    ("America/Santiago", 2025),
    ("Asia/Beirut", 2023),
    ("Asia/Kathmandu", 2025),
]


def change_days(tz: ZoneInfo, year: int) -> list[date]:
    """The days of `year` whose UTC offset at their end differs from their start's, and
    for a zone that never changes, one day."""
    days = []
    day = date(year, 1, 1)
    while day.year == year:
        start = datetime.combine(day, datetime.min.time(), tz).utcoffset()
        end = datetime.combine(day, datetime.max.time(), tz).utcoffset()
        if start != end:
            days.append(day)
        day += timedelta(days=1)
    return days or [date(year, 3, 30)]


def fired_days(trigger: Any, tz: ZoneInfo, at: dt_time, first: date, last: date) -> list[date]:
    """The local days an APScheduler trigger fires on from `first` to `last`, one entry
    per firing, checking at each that the digest then due is of the day before."""
    now = datetime.combine(first, datetime.min.time(), tz).astimezone(UTC)
    previous = None
    days = []
    for _ in range(3 * ((last - first).days + 2)):
        when = trigger.get_next_fire_time(previous, now)
        day = when.astimezone(tz).date()
        if day > last:
            break
        days.append(day)
        assert due_digest_day(when, tz, at) == day - timedelta(days=1), when
        previous, now = when, when.astimezone(UTC) + timedelta(seconds=1)
    return days


@pytest.mark.parametrize(("zone", "year"), CHANGING)
def test_the_daily_digest_fires_once_every_day_across_clock_changes(
    tmp_path: Path, clock: FrozenClock, stop_later: Any, zone: str, year: int
) -> None:
    """The daemon's digest job fires once each local day, at `[digest] time` or, on the
    day a spring-forward skips that time, as much later as the clocks jumped; each time
    the digest then due is yesterday's. APScheduler's CronTrigger skipped the day after a
    spring-forward for a time before the change's hour (Paris "00:30": no digest of 30
    March 2025) and Santiago's and Beirut's change day itself for "00:00"."""
    tz = ZoneInfo(zone)
    for at in ("00:00", "00:30", "01:30", "02:00", "02:30", "03:00", "23:00", "23:30"):
        write_config(tmp_path, "", f'time = "{at}"')
        config = load_config(tmp_path / "feeds.toml")
        config = replace(config, digest=replace(config.digest, timezone=zone))
        agg = make_aggregator(config, clock=clock)
        daemon = start(agg, stop_later)
        trigger = daemon.scheduler.get_job("digest").trigger
        for day in change_days(tz, year):
            first, last = day - timedelta(days=2), day + timedelta(days=2)
            expected = [first + timedelta(days=n) for n in range(5)]
            fired = fired_days(trigger, tz, agg.config.digest.time, first, last)
            assert fired == expected, (zone, at, day)


def test_start_spread_grows_with_the_number_of_feeds_within_bounds() -> None:
    assert start_spread(1) == MIN_SPREAD
    assert start_spread(300) == timedelta(seconds=30)
    assert start_spread(100_000) == timedelta(seconds=60)


@given(
    st.integers(0, 10**6).map(lambda s: random.Random(s)),
    st.timedeltas(timedelta(seconds=1), timedelta(days=2)),
    st.one_of(st.none(), st.timedeltas(timedelta(hours=-2), timedelta(days=2))),
)
def test_first_poll_is_never_before_next_poll_and_within_the_spread(
    rng: random.Random, interval: timedelta, offset: timedelta | None
) -> None:
    next_poll = None if offset is None else T0 + offset
    spread = timedelta(seconds=10)
    when = first_poll_time(T0, next_poll, interval, spread, rng)
    base = T0 if next_poll is None else max(T0, next_poll)
    assert base <= when <= base + min(interval, spread)


@given(
    st.integers(0, 10**6).map(lambda s: random.Random(s)),
    st.timedeltas(timedelta(seconds=1), timedelta(days=2)),
    st.timedeltas(timedelta(seconds=-1), timedelta(days=2)),  # newer than `started`
)
def test_next_poll_honours_the_recorded_time_plus_a_bounded_jitter(
    rng: random.Random, interval: timedelta, offset: timedelta
) -> None:
    started = T0 - timedelta(seconds=2)
    recorded = T0 + offset
    when = next_poll_time(T0, started, recorded, interval, rng)
    base = max(T0, recorded)
    assert base <= when <= base + min((base - T0) / 10, MAX_JITTER)


def test_next_poll_is_what_the_poll_decided_with_no_second_jitter() -> None:
    # The poll's decision holds its jitter (polling.decide): a backoff's, shortening it,
    # must not be undone by another one lengthening it here.
    rng = random.Random(1)
    for offset in (timedelta(seconds=1), timedelta(minutes=36), timedelta(days=1)):
        assert next_poll_time(T0, T0 - timedelta(seconds=2), T0 + offset, H, rng) == T0 + offset


def test_next_poll_falls_back_to_the_interval_when_the_poll_recorded_none() -> None:
    rng = random.Random(1)
    for recorded in (None, T0 - timedelta(hours=1), T0):  # absent, or older than this poll
        when = next_poll_time(T0, T0, recorded, timedelta(seconds=1), rng)
        assert T0 + timedelta(seconds=1) <= when <= T0 + timedelta(seconds=1.1)


# --- the wiring, on a paused scheduler with a frozen clock ---------------------------------


class Feeds:
    """A local server whose /a.xml and /b.xml are RSS feeds; /slow.xml answers late."""

    def __init__(self, httpserver: HTTPServer) -> None:
        self.httpserver = httpserver
        self.slow = threading.Event()
        self.slow_asked = threading.Event()  # a request for /slow.xml has arrived
        httpserver.expect_request("").respond_with_handler(self._serve)

    def url(self, path: str) -> str:
        return self.httpserver.url_for(path)

    def _serve(self, request: Request) -> Response:
        if request.path == "/slow.xml":
            self.slow_asked.set()
            self.slow.wait(5)
        item = (
            f"<item><title>Story from {request.path}</title><guid>{request.path}/1</guid>"
            "<pubDate>Tue, 11 Feb 2025 10:00:00 GMT</pubDate><description>Summit news"
            "</description></item>"
        )
        return Response(
            f'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>{item}'
            "</channel></rss>",
            content_type="application/rss+xml",
        )


@pytest.fixture
def feeds(httpserver: HTTPServer) -> Iterator[Feeds]:
    server = Feeds(httpserver)
    yield server
    server.slow.set()


def make(tmp_path: Path, feeds_toml: str, clock: FrozenClock, extra: str = "") -> Aggregator:
    return make_aggregator(load_config(write_config(tmp_path, feeds_toml, extra)), clock=clock)


@pytest.fixture
def stop_later() -> Iterator[list[tuple[Daemon, Aggregator]]]:
    started: list[tuple[Daemon, Aggregator]] = []
    yield started
    for daemon, agg in started:
        daemon.stop(grace=5)
        agg.close()


def start(agg: Aggregator, stop_later: list[tuple[Daemon, Aggregator]], seed: int = 7) -> Daemon:
    daemon = Daemon(agg, rng=random.Random(seed))
    daemon.start(paused=True)
    stop_later.append((daemon, agg))
    return daemon


def fire(daemon: Daemon, url: str) -> datetime | None:
    """Run a feed's poll job as the scheduler does: the one-shot job leaves the store, runs."""
    daemon.scheduler.remove_job("poll:" + url)
    return daemon.poll_job(url)


def run_time(daemon: Daemon, url: str) -> datetime | None:
    job = daemon.scheduler.get_job("poll:" + url)
    return None if job is None else job.next_run_time


def test_start_schedules_every_feed_soon_and_the_digest_at_its_time(
    tmp_path: Path, clock: FrozenClock, feeds: Feeds, stop_later: Any
) -> None:
    a, b = feeds.url("/a.xml"), feeds.url("/b.xml")
    agg = make(
        tmp_path,
        f'[[feeds]]\nurl = "{a}"\nname = "A"\ninterval = "1s"\n'
        f'[[feeds]]\nurl = "{b}"\nname = "B"\n',
        clock,
        'time = "07:30"',
    )
    daemon = start(agg, stop_later)
    assert T0 <= run_time(daemon, a) <= T0 + timedelta(seconds=1)  # type: ignore[operator]
    assert T0 <= run_time(daemon, b) <= T0 + MIN_SPREAD  # type: ignore[operator]
    digest = daemon.scheduler.get_job("digest").next_run_time.astimezone(SHANGHAI)
    assert (digest.hour, digest.minute, digest.second) == (7, 30, 0)


def test_after_a_poll_the_feed_is_rescheduled_from_what_the_poll_recorded(
    tmp_path: Path, clock: FrozenClock, feeds: Feeds, stop_later: Any
) -> None:
    a = feeds.url("/a.xml")
    agg = make(tmp_path, f'[[feeds]]\nurl = "{a}"\nname = "A"\ninterval = "1s"\n', clock)
    daemon = start(agg, stop_later)

    # The poll recorded its fixed interval: honoured, plus jitter.
    when = fire(daemon, a)
    assert when is not None and T0 + timedelta(seconds=1) <= when <= T0 + timedelta(seconds=1.1)
    assert run_time(daemon, a) == when
    assert agg.storage.feed_state(a).entry_count == 1  # type: ignore[union-attr]

    # The polling rules decided a later time (a server's Retry-After): it is honoured. The
    # daemon takes it from what the poll returns, not from storage.
    retry_after = T0 + timedelta(hours=1)
    original = agg.poll_feed

    def poll_recording_next(feed: Feed, **kwargs: Any) -> Any:
        return original(feed, **kwargs)._replace(next_poll=retry_after)

    agg.poll_feed = poll_recording_next  # type: ignore[method-assign]
    when = fire(daemon, a)
    assert when is not None and retry_after <= when <= retry_after + MAX_JITTER
    assert run_time(daemon, a) == when


def test_a_feed_rescheduled_while_its_job_waits_for_a_worker_is_polled_once(
    tmp_path: Path, clock: FrozenClock, feeds: Feeds, stop_later: Any
) -> None:
    """Every worker busy: a due job leaves the scheduler's store and waits in the executor.
    reconcile() then sees the feed with neither a job nor a poll in flight and gives it a
    second job, which fires and waits too. The first polls; the second must not (it did:
    each such feed was fetched twice)."""
    a = feeds.url("/a.xml")
    agg = make(tmp_path, f'[[feeds]]\nurl = "{a}"\nname = "A"\ninterval = "1h"\n', clock)
    daemon = start(agg, stop_later)

    def fired() -> datetime:
        """The job fires: out of the store, into the (busy) executor's queue."""
        job = daemon.scheduler.get_job("poll:" + a)
        assert job is not None
        daemon.scheduler.remove_job("poll:" + a)
        due: datetime = job.args[1]
        clock.current = max(clock.current, due)
        return due

    waiting = fired()
    assert daemon.reconcile() == [a]  # no job, no poll in flight: scheduled again
    duplicate = fired()
    clock.advance(seconds=5)  # a worker frees up: the queue runs in order
    assert daemon.poll_job(a, waiting) is not None  # polls, and sets the next poll
    next_job = run_time(daemon, a)
    assert daemon.poll_job(a, duplicate) is None  # due before that poll started: skipped
    assert run_time(daemon, a) == next_job  # the next poll stays as the poll set it
    assert [r.path for r, _ in feeds.httpserver.log] == ["/a.xml"]  # fetched once


def test_a_job_waiting_for_a_worker_gets_no_second_one(
    tmp_path: Path, clock: FrozenClock, feeds: Feeds, stop_later: Any
) -> None:
    """The scheduler tells the daemon when it hands a job to the workers: reconcile() leaves
    the feed alone while the job waits in their queue (an overloaded first round queued a
    second job, and then a third was refused with a warning: "maximum number of running
    instances reached", hundreds of times), unless it waits for longer than QUEUED_TRUSTED."""
    a = feeds.url("/a.xml")
    agg = make(tmp_path, f'[[feeds]]\nurl = "{a}"\nname = "A"\ninterval = "1h"\n', clock)
    daemon = start(agg, stop_later)
    job = daemon.scheduler.get_job("poll:" + a)
    assert job is not None
    daemon.scheduler.remove_job("poll:" + a)
    clock.current = max(clock.current, job.args[1])
    event = JobSubmissionEvent(EVENT_JOB_SUBMITTED, "poll:" + a, "default", [job.args[1]])
    daemon._submitted(event)  # as the scheduler's thread does when it hands it over
    assert daemon.reconcile() == []  # it waits for a worker: no second job
    clock.advance(seconds=QUEUED_TRUSTED.total_seconds() + 1)
    assert daemon.reconcile() == [a]  # waited too long: taken for lost
    daemon.scheduler.remove_job("poll:" + a)
    daemon._submitted(event)
    assert daemon.poll_job(*job.args) is not None  # it runs: the mark goes
    assert daemon._queued == {}
    assert [r.path for r, _ in feeds.httpserver.log] == ["/a.xml"]


def test_a_second_job_due_after_the_first_poll_started_is_skipped_too(
    tmp_path: Path, clock: FrozenClock, feeds: Feeds, stop_later: Any
) -> None:
    """As above, but reconcile() set the second job to run after the first poll began (a
    first round spreads new feeds over the next seconds): its due time says nothing, the
    time it was set does (bench/pollers.py's SQLite daemon fetched 38 of 1,000 feeds twice
    in their first round)."""
    a = feeds.url("/a.xml")
    agg = make(tmp_path, f'[[feeds]]\nurl = "{a}"\nname = "A"\ninterval = "1h"\n', clock)
    daemon = start(agg, stop_later)
    first = daemon.scheduler.get_job("poll:" + a)
    assert first is not None
    daemon.scheduler.remove_job("poll:" + a)  # fired: waits in the busy executor's queue
    clock.current = max(clock.current, first.args[1])
    assert daemon.reconcile() == [a]
    second = daemon.scheduler.get_job("poll:" + a)
    assert second is not None
    daemon.scheduler.remove_job("poll:" + a)  # fired too, and waits
    # The first starts before the second's due time (the spread may have made it "now").
    url, due, made = second.args
    due = max(due, clock.current + timedelta(seconds=3))
    clock.advance(seconds=1)  # a worker frees up
    assert daemon.poll_job(*first.args) is not None
    next_job = run_time(daemon, a)
    clock.current = due
    assert daemon.poll_job(url, due, made) is None  # set before that poll started: skipped
    assert run_time(daemon, a) == next_job
    assert [r.path for r, _ in feeds.httpserver.log] == ["/a.xml"]  # fetched once


def test_a_failing_feed_is_polled_again_at_the_time_its_poll_returned_and_stored(
    tmp_path: Path, clock: FrozenClock, httpserver: HTTPServer, stop_later: Any
) -> None:
    httpserver.expect_request("/down.xml").respond_with_data("no", status=500)
    a = httpserver.url_for("/down.xml")
    agg = make(tmp_path, f'[[feeds]]\nurl = "{a}"\nname = "A"\ninterval = "10m"\n', clock)
    daemon = start(agg, stop_later)
    returned: list[PollResult] = []
    original = agg.poll_feed

    def poll_keeping_result(feed: Feed, **kwargs: Any) -> PollResult:
        returned.append(original(feed, **kwargs))
        return returned[-1]

    agg.poll_feed = poll_keeping_result  # type: ignore[method-assign]
    for wait in (10, 20, 40):
        when = fire(daemon, a)
        assert returned[-1].status == "error"
        # The backoff's jitter only (at most 20 % off), and no second jitter on top of it:
        assert when == returned[-1].next_poll
        assert T0 + timedelta(minutes=wait) * 0.8 <= when <= T0 + timedelta(minutes=wait)
        state = agg.storage.feed_state(a)
        assert state is not None and state.next_poll == when  # `status` shows the real time


def test_on_start_a_stored_schedule_is_kept_but_a_shorter_fixed_interval_applies(
    tmp_path: Path, clock: FrozenClock, feeds: Feeds, stop_later: Any
) -> None:
    a, b = feeds.url("/a.xml"), feeds.url("/b.xml")
    agg = make(
        tmp_path,
        f'[[feeds]]\nurl = "{a}"\nname = "A"\n[[feeds]]\nurl = "{b}"\nname = "B"\n'
        'interval = "1m"\n',
        clock,
    )
    later = T0 + timedelta(hours=3)  # both were scheduled 3 h ahead before a restart
    with sqlite3.connect(agg.storage.path) as db:
        db.execute("UPDATE feeds SET next_poll = ?", (to_db_time(later),))
    daemon = start(agg, stop_later)
    assert later <= run_time(daemon, a) <= later + MIN_SPREAD  # type: ignore[operator]
    assert T0 <= run_time(daemon, b) <= T0 + timedelta(minutes=1) + MIN_SPREAD  # type: ignore[operator]


def test_a_disabled_feed_is_not_polled_again(
    tmp_path: Path, clock: FrozenClock, feeds: Feeds, stop_later: Any, caplog: Any
) -> None:
    a = feeds.url("/a.xml")
    agg = make(tmp_path, f'[[feeds]]\nurl = "{a}"\nname = "A"\ninterval = "1s"\n', clock)
    daemon = start(agg, stop_later)
    with sqlite3.connect(agg.storage.path) as db:
        db.execute("UPDATE feeds SET disabled_reason = 'HTTP 410 Gone' WHERE url = ?", (a,))
    with caplog.at_level(logging.WARNING, logger="aggregator"):
        assert fire(daemon, a) is None
    assert run_time(daemon, a) is None
    assert "A: disabled (HTTP 410 Gone)" in caplog.text
    assert daemon.reconcile() == []  # and the safety net leaves it alone
    with sqlite3.connect(agg.storage.path) as db:
        db.execute("UPDATE feeds SET disabled_reason = NULL WHERE url = ?", (a,))
    assert daemon.reconcile() == [a]  # re-enabled: polled again without a restart


def test_reload_starts_added_stops_removed_and_applies_a_shorter_interval(
    tmp_path: Path, clock: FrozenClock, feeds: Feeds, stop_later: Any, caplog: Any
) -> None:
    a, b, c = feeds.url("/a.xml"), feeds.url("/b.xml"), feeds.url("/c.xml")
    agg = make(
        tmp_path,
        f'[[feeds]]\nurl = "{a}"\nname = "A"\ninterval = "1h"\n'
        f'[[feeds]]\nurl = "{b}"\nname = "B"\ninterval = "1h"\n',
        clock,
    )
    daemon = start(agg, stop_later)
    fire(daemon, a)
    assert run_time(daemon, a) >= T0 + timedelta(hours=1)  # type: ignore[operator]

    write_config(
        tmp_path,
        f'[[feeds]]\nurl = "{a}"\nname = "A"\ninterval = "10s"\n'
        f'[[feeds]]\nurl = "{c}"\nname = "C"\ninterval = "1h"\n',
        'time = "08:15"',
    )
    assert daemon.reload()
    digest = daemon.scheduler.get_job("digest").next_run_time.astimezone(SHANGHAI)
    assert (digest.hour, digest.minute) == (8, 15)
    assert run_time(daemon, b) is None
    assert T0 <= run_time(daemon, a) <= T0 + MIN_SPREAD  # type: ignore[operator]
    assert T0 <= run_time(daemon, c) <= T0 + MIN_SPREAD  # type: ignore[operator]
    assert [f.name for f in agg.config.feeds] == ["A", "C"]
    assert agg.storage.feed_state(c) is not None

    # A broken edit: an error saying where, and the schedule as it was.
    jobs = {job.id: job.next_run_time for job in daemon.scheduler.get_jobs()}
    (tmp_path / "feeds.toml").write_text('[[feeds]]\nurl = "nope://x"\n', encoding="utf-8")
    with caplog.at_level(logging.ERROR, logger="aggregator"):
        assert not daemon.reload()
    assert "config reload failed" in caplog.text and "feeds[0].url" in caplog.text
    assert {job.id: job.next_run_time for job in daemon.scheduler.get_jobs()} == jobs
    assert [f.name for f in agg.config.feeds] == ["A", "C"]

    # A watch sending on a webhook whose secret's variable is unset: kept out the same way.
    unset = "AGG_TEST_UNSET_SECRET"
    assert unset not in os.environ
    (tmp_path / "feeds.toml").write_text(
        f'[[feeds]]\nurl = "{a}"\nname = "A"\n\n[notify.webhook]\nurl = "http://127.0.0.1:9/"\n'
        f'secret_env = "{unset}"\n\n[[watches]]\nname = "w"\nkeywords = ["x"]\n'
        'notify = ["webhook"]\n',
        encoding="utf-8",
    )
    with caplog.at_level(logging.ERROR, logger="aggregator"):
        assert not daemon.reload()
    assert f"[notify.webhook.secret_env]: the environment variable {unset}" in caplog.text
    assert [f.name for f in agg.config.feeds] == ["A", "C"] and agg.config.watches == ()


def test_a_feed_removed_while_polling_is_not_rescheduled(
    tmp_path: Path, clock: FrozenClock, feeds: Feeds, stop_later: Any
) -> None:
    slow, a = feeds.url("/slow.xml"), feeds.url("/a.xml")
    agg = make(
        tmp_path,
        f'[[feeds]]\nurl = "{slow}"\nname = "Slow"\n[[feeds]]\nurl = "{a}"\nname = "A"\n',
        clock,
    )
    daemon = start(agg, stop_later)
    results: list[datetime | None] = []
    worker = threading.Thread(target=lambda: results.append(fire(daemon, slow)))
    worker.start()
    assert feeds.slow_asked.wait(10), "the poll of Slow never reached the server"
    write_config(tmp_path, f'[[feeds]]\nurl = "{a}"\nname = "A"\n')
    assert daemon.reload()
    feeds.slow.set()
    worker.join(5)
    assert results == [None]
    assert run_time(daemon, slow) is None


def test_stop_waits_for_polls_in_flight_then_abandons_them(
    tmp_path: Path, clock: FrozenClock, feeds: Feeds, stop_later: Any, caplog: Any
) -> None:
    slow = feeds.url("/slow.xml")
    agg = make(tmp_path, f'[[feeds]]\nurl = "{slow}"\nname = "Slow"\n', clock)
    daemon = start(agg, stop_later)
    worker = threading.Thread(target=fire, args=[daemon, slow])
    worker.start()
    assert feeds.slow_asked.wait(10), "the poll of Slow never reached the server"
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="aggregator"):
        assert daemon.stop(grace=0.5) is False
    assert time.monotonic() - started < 2
    assert "abandoning after 0s: Slow" in caplog.text or "abandoning after 1s: Slow" in caplog.text
    assert daemon.poll_job(slow) is None  # stopped: takes no more work
    feeds.slow.set()
    worker.join(5)
    assert run_time(daemon, slow) is None  # the abandoned poll did not reschedule itself


def test_stop_with_nothing_in_flight_is_clean(
    tmp_path: Path, clock: FrozenClock, feeds: Feeds, stop_later: Any
) -> None:
    agg = make(tmp_path, f'[[feeds]]\nurl = "{feeds.url("/a.xml")}"\nname = "A"\n', clock)
    daemon = start(agg, stop_later)
    assert daemon.stop(grace=1) is True
    assert daemon.digest_job() is None


# --- the daily digest ---------------------------------------------------------------------


def test_the_due_digest_is_made_once(tmp_path: Path, clock: FrozenClock, feeds: Feeds) -> None:
    a = feeds.url("/a.xml")
    with make(tmp_path, f'[[feeds]]\nurl = "{a}"\nname = "A"\n', clock) as agg:
        agg.poll()
        clock.advance(seconds=1)  # a daily digest shows what was stored before it read
        # 12:00 UTC is 20:00 in Shanghai: the 07:00 digest, of the 11th, is due.
        assert make_due_digest(agg) == date(2025, 2, 11)
        html = tmp_path / "digests" / "2025-02-11.html"
        assert "Story from /a.xml" in html.read_text(encoding="utf-8")
        assert (tmp_path / "digests" / "2025-02-11.txt").exists()
        assert (tmp_path / "digests" / "2025-02-11.json").exists()
        assert agg.storage.digest_made(date(2025, 2, 11)) == T0 + timedelta(seconds=1)
        made = html.stat().st_mtime_ns
        clock.advance(hours=10)  # 06:00 next day in Shanghai: still the 11th's
        assert make_due_digest(agg) is None
        assert html.stat().st_mtime_ns == made
        clock.advance(hours=1)  # 07:00: the 12th's
        assert make_due_digest(agg) == date(2025, 2, 12)


def test_the_daemons_digest_places_what_its_polls_stored_first(
    tmp_path: Path, clock: FrozenClock, feeds: Feeds, stop_later: Any
) -> None:
    a = feeds.url("/a.xml")
    agg = make(tmp_path, f'[[feeds]]\nurl = "{a}"\nname = "A"\n', clock)
    daemon = start(agg, stop_later)  # paused: its placing thread waits for the start
    assert fire(daemon, a) is not None
    assert agg.storage.unassigned_ids()  # stored, left for the gathered placing
    clock.advance(seconds=1)
    assert daemon.digest_job() == date(2025, 2, 11)
    assert not agg.storage.unassigned_ids()
    html = tmp_path / "digests" / "2025-02-11.html"
    assert "Story from /a.xml" in html.read_text(encoding="utf-8")


def test_a_daily_digest_that_failed_is_tried_again_until_made(
    tmp_path: Path, clock: FrozenClock, feeds: Feeds, stop_later: Any
) -> None:
    # A digest that could not be written (its folder not writable, a full disk at 07:00)
    # was logged and never tried again while the daemon ran; the next day's then made only
    # the latest due one: that day's digest was lost.
    a = feeds.url("/a.xml")
    agg = make(tmp_path, f'[[feeds]]\nurl = "{a}"\nname = "A"\n', clock)
    agg.poll()
    (tmp_path / "digests").write_text("a file where the folder goes", encoding="utf-8")
    daemon = start(agg, stop_later)
    assert daemon.digest_job() is None
    retry = daemon.scheduler.get_job("digest-retry")
    assert retry is not None and retry.next_run_time == clock() + DIGEST_RETRY
    # Not waiting again for polls in flight: alerts share the job's one thread.
    assert retry.kwargs == {"retry": True}
    (tmp_path / "digests").unlink()
    clock.advance(seconds=DIGEST_RETRY.total_seconds())
    assert retry.func(**retry.kwargs) == date(2025, 2, 11)
    assert (tmp_path / "digests" / "2025-02-11.html").exists()


def test_the_daemons_logs_count_in_singular_and_plural(
    tmp_path: Path, clock: FrozenClock, feeds: Feeds, stop_later: Any, caplog: Any
) -> None:
    a = feeds.url("/a.xml")
    agg = make(tmp_path, f'[[feeds]]\nurl = "{a}"\nname = "A"\n', clock)
    agg.poll()
    clock.advance(seconds=1)
    daemon = start(agg, stop_later)
    with caplog.at_level(logging.INFO, logger="aggregator"):
        assert make_due_digest(agg) == date(2025, 2, 11)
        assert daemon.reload()
    assert "daily digest of 2025-02-11: 1 story, 1 entry" in caplog.text
    assert "config reloaded: 1 feed (0 added, 0 removed, 0 changed)" in caplog.text


class Inbox:
    def __init__(self) -> None:
        self.received: list[bytes] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.received.append(bytes(envelope.original_content))
        return "250 OK"


def test_the_daily_job_publishes_and_emails_the_digest_once(
    tmp_path: Path, clock: FrozenClock, feeds: Feeds, stop_later: Any
) -> None:
    from aiosmtpd.controller import Controller

    inbox = Inbox()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        a = feeds.url("/a.xml")
        agg = make(
            tmp_path,
            f'[[feeds]]\nurl = "{a}"\nname = "A"\n',
            clock,
            f'[digest.email]\nto = ["reader@example.org"]\nfrom = "d@example.org"\n'
            f'host = "127.0.0.1"\nport = {port}\nsecurity = "none"\n',
        )
        agg.poll()
        clock.advance(seconds=1)
        daemon = start(agg, stop_later)
        assert daemon.digest_job() == date(2025, 2, 11)
        assert (tmp_path / "digests" / "2025-02-11.html").exists()
        assert (tmp_path / "digests" / "index.html").exists()  # the archive too
        assert len(inbox.received) == 1
        assert b"2025-02-11" in inbox.received[0]
        assert daemon.digest_job() is None  # made: not again, and not mailed again
        assert daemon.email_retry_job() == 0  # nothing failed, nothing to retry
        assert len(inbox.received) == 1
    finally:
        controller.stop()


def test_digest_runs_are_stored(tmp_path: Path) -> None:
    with open_storage(tmp_path / "a.db") as db:
        assert db.digest_made(date(2025, 2, 11)) is None
        db.record_digest(date(2025, 2, 11), now=T0)
        db.record_digest(date(2025, 2, 11), now=T0 + timedelta(hours=1))
        assert db.digest_made(date(2025, 2, 11)) == T0 + timedelta(hours=1)
        assert db.digest_made(date(2025, 2, 12)) is None


# --- one daemon per database, and a connection shared by threads ---------------------------


def test_a_second_lock_on_the_same_database_is_refused(tmp_path: Path) -> None:
    database = tmp_path / "sub" / "a.db"
    with DatabaseLock(database):
        with pytest.raises(DaemonRunningError) as caught:
            DatabaseLock(database).acquire()
        assert caught.value.exit_code == 2
        assert "already running" in str(caught.value) and str(database) in str(caught.value)
        import os

        assert f"pid {os.getpid()}" in str(caught.value)
        with DatabaseLock(tmp_path / "other.db"):  # another database is another lock
            pass
    with DatabaseLock(database):  # released
        pass


def test_a_lock_file_that_cannot_be_made_there_is_a_path_error(tmp_path: Path) -> None:
    """A folder that cannot hold the lock file is the path's fault (exit 2, as `poll`'s
    database there), named in the message; not a passing storage error (exit 1)."""
    (tmp_path / "file").write_text("not a folder")
    for database in (tmp_path / "file" / "a.db", tmp_path / "file" / "sub" / "a.db"):
        with pytest.raises(DatabasePathError) as caught:
            DatabaseLock(database).acquire()
        assert caught.value.exit_code == 2
        assert f"cannot create lock file {database}.lock" in str(caught.value)


def test_a_database_named_through_a_symlink_is_the_same_lock(tmp_path: Path) -> None:
    # Two feeds.toml naming one database, one of them through a symlink (to the file, or
    # to its folder), ran two daemons on it: the lock file was beside each name.
    database = tmp_path / "data" / "a.db"
    (tmp_path / "link.db").symlink_to(database)
    (tmp_path / "folder").symlink_to(tmp_path / "data", target_is_directory=True)
    with DatabaseLock(database) as lock:
        for other in (tmp_path / "link.db", tmp_path / "folder" / "a.db"):
            with pytest.raises(DaemonRunningError):
                DatabaseLock(other).acquire()
            lock.note_storage_error("disk full", None)
            report = read_report(other)  # `status` through the other name sees the daemon
            assert report is not None and report.storage_error == "disk full"
    with DatabaseLock(tmp_path / "link.db"):
        with pytest.raises(DaemonRunningError):
            DatabaseLock(database).acquire()
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["a.db.lock"]


def test_threads_sharing_the_storage_never_interleave_transactions(tmp_path: Path) -> None:
    feeds = [Feed(url=f"https://example.org/{i}.xml", name=f"F{i}") for i in range(8)]
    errors: list[BaseException] = []
    with open_storage(tmp_path / "a.db") as db:
        db.sync_feeds(feeds, T0)

        def work(feed: Feed) -> None:
            try:
                for round_ in range(15):
                    entries = [
                        EntryData(
                            guid=f"{round_}-{n}",
                            title=f"t{n}",
                            link=None,
                            published=T0,
                            text="x" * 200,
                        )
                        for n in range(5)
                    ]
                    db.save_poll(feed, entries, now=T0, seconds=0.01)
                    db.entries_between(T0 - timedelta(days=1), T0 + timedelta(days=1))
                    db.record_failure(feed, "boom", now=T0, seconds=0.01)
            except BaseException as e:  # noqa: B036 - reported below
                errors.append(e)

        threads = [threading.Thread(target=work, args=[feed]) for feed in feeds]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert errors == []
        assert db.entry_count() == 8 * 15 * 5
    with sqlite3.connect(tmp_path / "a.db") as raw:
        assert raw.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert raw.execute("SELECT count(*) FROM polls").fetchone()[0] == 8 * 15 * 2


def test_default_interval_is_the_fallback() -> None:
    from aggregator.scheduler import feed_interval

    assert feed_interval(Feed(url="x", name="x")) == DEFAULT_INTERVAL
    assert feed_interval(Feed(url="x", name="x", interval=timedelta(seconds=1))) == timedelta(
        seconds=1
    )


# --- placing what the polls stored ----------------------------------------------------------


def test_gather_works_once_the_notes_pause_or_at_most_every_so_often() -> None:
    done: list[float] = []
    gather = _Gather(lambda: done.append(time.monotonic()), quiet=0.2, most=0.6)
    gather.start()
    try:
        began = time.monotonic()
        for _ in range(3):  # a burst: one work, after the pause
            gather.note()
            time.sleep(0.05)
        wait_until(lambda: len(done) == 1, 5, "the burst worked on")
        assert done[0] - began >= 0.2 + 0.1
        time.sleep(0.3)
        assert len(done) == 1  # nothing noted since
        began = time.monotonic()
        while time.monotonic() - began < 1.5:  # notes that never pause: worked on anyway
            gather.note()
            time.sleep(0.05)
        assert 1 <= len(done) - 1 <= 4  # every 0.6 s at most (2 unless the machine is busy)
        assert all(b - a >= 0.55 for a, b in itertools.pairwise(done[1:]))
    finally:
        assert gather.close(5)
    assert len(done) <= 5 + 1  # the last notes worked on at the close


def test_gather_close_works_on_what_was_noted_and_survives_a_failing_work(
    caplog: pytest.LogCaptureFixture,
) -> None:
    done: list[int] = []

    def work() -> None:
        done.append(1)
        if len(done) == 1:
            raise RuntimeError("boom")

    gather = _Gather(work, quiet=60, most=60)
    gather.start()
    gather.note()
    time.sleep(0.1)
    assert done == []  # waits for the pause
    assert gather.close(5) and done == [1]  # worked on at once by the close
    assert "placing stored entries failed unexpectedly" in caplog.text
    idle = _Gather(work, quiet=60, most=60)
    idle.start()
    assert idle.close(5) and done == [1]  # nothing noted: nothing done
    again = _Gather(work, quiet=0.05, most=1)
    again.start()
    again.note()
    wait_until(lambda: len(done) == 2, 5, "work after a failed one")
    assert again.close(5)


def test_gather_close_during_a_work_still_works_on_a_note_that_came_meanwhile() -> None:
    release = threading.Event()
    done: list[int] = []

    def work() -> None:
        release.wait(5)
        done.append(len(done))

    gather = _Gather(work, quiet=0.01, most=1)
    gather.start()
    gather.note()
    time.sleep(0.2)  # working on the first note, held
    gather.note()  # a poll that finished meanwhile
    closing = threading.Thread(target=gather.close, args=(5,))
    closing.start()
    time.sleep(0.1)
    release.set()
    closing.join(5)
    assert done == [0, 1]  # the second note worked on before the close returned


def test_a_failing_placing_is_reported_and_costs_no_digest(
    tmp_path: Path, clock: FrozenClock, feeds: Feeds, stop_later: Any
) -> None:
    a = feeds.url("/a.xml")
    agg = make(tmp_path, f'[[feeds]]\nurl = "{a}"\nname = "A"\n', clock)
    reports: list[str | None] = []
    daemon = Daemon(agg, rng=random.Random(7), report=lambda error, _: reports.append(error))
    daemon.start(paused=True)
    stop_later.append((daemon, agg))
    assert fire(daemon, a) is not None
    placing = agg.place_stored

    def broken() -> int:
        raise RuntimeError("a bug in placing")

    agg.place_stored = broken  # type: ignore[method-assign]
    assert daemon.digest_job() == date(2025, 2, 11)  # made all the same
    damaged = CorruptDatabaseError("database disk image is malformed")

    def corrupt() -> int:
        raise damaged

    agg.place_stored = corrupt  # type: ignore[method-assign]
    assert daemon.place_job() == 0
    assert reports == [str(damaged)]  # for `status`, as a poll's failed write is
    agg.place_stored = placing  # type: ignore[method-assign]
    assert daemon.place_job() == 1
    assert reports == [str(damaged), None]  # withdrawn once placing works again


def _lease(other: Storage, url: str, clock: FrozenClock) -> None:
    """Another poller (its handle `other`) leases its feed `url` for 5 minutes."""
    until = clock() + timedelta(minutes=5)
    leased = other.lease_feeds(
        {url: "127.0.0.1"}, owner="other", now=clock(), until=until, due_only=False
    )
    assert leased.granted == [url]


def test_placing_waits_for_the_store_s_pass_to_end(
    tmp_path: Path, clock: FrozenClock, feeds: Feeds, stop_later: Any, monkeypatch: Any
) -> None:
    """What the polls stored is placed once no poller holds a lease and no feed is due, so
    that one and several pollers place the same entries in the same batches (issue 20);
    placing that waited PLACE_LONGEST places all the same."""
    a, b = feeds.url("/a.xml"), feeds.url("/b.xml")
    agg = make(tmp_path, f'[[feeds]]\nurl = "{a}"\nname = "A"\n', clock)
    daemon = start(agg, stop_later)
    assert fire(daemon, a) is not None
    other = open_storage(agg.config.storage_path)  # another poller, with a feed of its own
    feed_b = Feed(url=b, name="B")
    later = FeedUpdate(next_poll=clock() + timedelta(hours=1), lease_owner="other")
    try:
        other.sync_feeds([feed_b], clock())
        _lease(other, b, clock)
        assert agg.pass_pending() and daemon.place_job() == 0  # its pass goes on
        assert len(other.unassigned_ids()) == 1
        other.record_not_modified(feed_b, now=clock(), seconds=0.1, update=later)
        assert not agg.pass_pending() and daemon.place_job() == 1
        # The other poller stores an entry, then leases its feed again (a pass that does not
        # seem to end): placing waits, then places all the same after PLACE_LONGEST.
        item = EntryData(guid="b1", title="Summit", link=None, published=clock(), text="News")
        other.save_poll(feed_b, [item], now=clock(), seconds=0.1, update=later)
        _lease(other, b, clock)
        assert daemon.place_job() == 0 and len(other.unassigned_ids()) == 1
        monkeypatch.setattr("aggregator.scheduler.PLACE_LONGEST", 0.0)
        assert daemon.place_job() == 1 and other.unassigned_ids() == []
    finally:
        other.close()


def test_the_digest_waits_for_another_poller_s_polls_in_flight(
    tmp_path: Path, clock: FrozenClock, feeds: Feeds, stop_later: Any
) -> None:
    """The digest places what waits before it is made, after the polls another poller has
    in flight (its leases), as placing would: at most CATCH_UP_WAIT."""
    a, b = feeds.url("/a.xml"), feeds.url("/b.xml")
    agg = make(tmp_path, f'[[feeds]]\nurl = "{a}"\nname = "A"\n', clock)
    daemon = start(agg, stop_later)
    assert fire(daemon, a) is not None
    other = open_storage(agg.config.storage_path)
    feed_b = Feed(url=b, name="B")
    try:
        other.sync_feeds([feed_b], clock())
        _lease(other, b, clock)
        digest = threading.Thread(target=daemon.digest_job)
        digest.start()
        time.sleep(1.5)
        assert digest.is_alive() and len(other.unassigned_ids()) == 1  # waiting
        update = FeedUpdate(next_poll=clock() + timedelta(hours=1), lease_owner="other")
        item = EntryData(guid="b1", title="Summit", link=None, published=clock(), text="News")
        other.save_poll(feed_b, [item], now=clock(), seconds=0.1, update=update)
        digest.join(10)
        assert not digest.is_alive() and other.unassigned_ids() == []  # both placed
    finally:
        other.close()


def test_a_feed_whose_poll_could_not_be_stored_keeps_no_pass_going(
    tmp_path: Path, clock: FrozenClock, feeds: Feeds, stop_later: Any, monkeypatch: Any
) -> None:
    """Its stored next poll is stale (the write failed), its retry is the daemon's, much
    later: placing does not wait for it (nor PLACE_LONGEST)."""
    a, b = feeds.url("/a.xml"), feeds.url("/b.xml")
    toml = f'[[feeds]]\nurl = "{a}"\nname = "A"\n[[feeds]]\nurl = "{b}"\nname = "B"\n'
    agg = make(tmp_path, toml, clock)
    daemon = start(agg, stop_later)
    assert fire(daemon, a) is not None
    save_poll = agg.storage.save_poll

    def failing(feed: Feed, *args: Any, **kwargs: Any) -> Any:
        if feed.url == b:
            raise StorageError("disk I/O error")
        return save_poll(feed, *args, **kwargs)

    monkeypatch.setattr(agg.storage, "save_poll", failing)
    retry = fire(daemon, b)
    assert retry is not None and retry - clock() > timedelta(minutes=5)
    monkeypatch.setattr(agg.storage, "save_poll", save_poll)  # writes work again
    state = agg.storage.feed_state(b)
    assert state is not None and state.next_poll is None  # never recorded: due, in the store
    clock.advance(minutes=1)
    assert agg.pass_pending()  # as the store tells it
    assert daemon.place_job() == 1 and agg.storage.unassigned_ids() == []
    # Its next poll is recorded: the store says when it is due again.
    assert fire(daemon, b) is not None
    assert not agg.pass_pending()


def test_a_digest_made_already_leaves_the_placing_to_the_pass_s_end(
    tmp_path: Path, clock: FrozenClock, feeds: Feeds, stop_later: Any
) -> None:
    """A restart's catch-up digest, made already (by this poller before, or another),
    does not place a pass another poller is in the middle of."""
    a, b = feeds.url("/a.xml"), feeds.url("/b.xml")
    agg = make(tmp_path, f'[[feeds]]\nurl = "{a}"\nname = "A"\n', clock)
    daemon = start(agg, stop_later)
    assert fire(daemon, a) is not None
    settings = agg.config.digest
    day = due_digest_day(clock(), ZoneInfo(settings.timezone), settings.time)
    agg.storage.record_digest(day, now=clock())
    other = open_storage(agg.config.storage_path)
    try:
        other.sync_feeds([Feed(url=b, name="B")], clock())
        _lease(other, b, clock)
        began = time.monotonic()
        assert daemon.digest_job() is None
        assert time.monotonic() - began < 5  # no wait for the other's polls either
        assert len(other.unassigned_ids()) == 1  # left for the placing, once the pass ends
    finally:
        other.close()


# --- the feeds a daily digest polls first --------------------------------------------------

#: Day D is 11 February in Shanghai (the digest's timezone). 20:00 on D, 12:00 UTC.
EVENING = datetime(2025, 2, 11, 12, 0, tzinfo=UTC)
#: 07:00 on D+1, 23:00 UTC on D: the daily digest of D is made.
MORNING = datetime(2025, 2, 11, 23, 0, tzinfo=UTC)


def rss_items(*items: tuple[str, datetime]) -> str:
    """An RSS feed of (title, publication time) items, each with a link of its own."""
    body = "".join(
        f"<item><title>{title}</title><link>https://slow.example/{n}</link>"
        f"<pubDate>{when.strftime('%a, %d %b %Y %H:%M:%S GMT')}</pubDate>"
        f"<description>{title}: summit news of the day</description></item>"
        for n, (title, when) in enumerate(items)
    )
    return (
        '<?xml version="1.0"?><rss version="2.0"><channel><title>Slow</title>'
        f"<link>https://slow.example/</link>{body}</channel></rss>"
    )


#: A publisher of a few items a week: its adaptive interval is max_interval, 24 h.
SPARSE = (
    ("Column of the first", datetime(2025, 2, 1, 1, 0, tzinfo=UTC)),
    ("Column of the sixth", datetime(2025, 2, 6, 1, 0, tzinfo=UTC)),
    ("Column of the morning", datetime(2025, 2, 11, 1, 0, tzinfo=UTC)),  # 09:00 on D
)
#: Published at 22:00 on D (Shanghai), after the evening's poll.
LATE = ("Column of the late evening", datetime(2025, 2, 11, 14, 0, tzinfo=UTC))


def fire_job(daemon: Daemon, url: str) -> datetime | None:
    """Run a feed's scheduled poll job as the scheduler does: out of the store, run with its
    arguments (a pulled-forward poll's included)."""
    job = daemon.scheduler.get_job("poll:" + url)
    assert job is not None, f"no poll scheduled for {url}"
    daemon.scheduler.remove_job("poll:" + url)
    return job.func(*job.args, **job.kwargs)  # type: ignore[no-any-return]


def pulled_forward(daemon: Daemon, url: str, clock: FrozenClock) -> bool:
    """Whether the daemon's digest has pulled the feed's poll forward: a poll due now that
    is a catch-up one (not the job a paused daemon kept from its start, due since then)."""
    job = daemon.scheduler.get_job("poll:" + url)
    when = None if job is None else job.next_run_time
    return job is not None and when is not None and when <= clock() and "catch_up" in job.kwargs


class Hanging:
    """A route that answers the sparse feed with LATE once `release` is set."""

    def __init__(self) -> None:
        self.asked = threading.Event()  # a request has arrived
        self.release = threading.Event()

    def __call__(self, handler: Any) -> None:
        from tests.feedserver import respond

        self.asked.set()
        self.release.wait(10)
        respond(handler, 200, rss_items(*SPARSE, LATE).encode())


class DigestThread(threading.Thread):
    """The daemon's digest job on a thread of its own (it waits for the polls it starts)."""

    def __init__(self, daemon: Daemon) -> None:
        super().__init__(daemon=True)
        self._daemon = daemon
        self.made: date | None = None

    def run(self) -> None:
        self.made = self._daemon.digest_job()


def slow_feed_daemon(
    tmp_path: Path, feed_server: Any, stop_later: Any, more: str = ""
) -> tuple[Daemon, Aggregator, str, FrozenClock]:
    """A daemon with the feed /slow.xml (sparse: on a 24 h adaptive interval) polled at
    20:00 on D, which then publishes LATE; the clock at 07:00 on D+1."""
    from tests.feedserver import static

    clock = FrozenClock(EVENING, tick=timedelta(microseconds=1))
    feed_server.routes["/slow.xml"] = static(rss_items(*SPARSE))
    slow = feed_server.url("/slow.xml")
    agg = make(tmp_path, f'[[feeds]]\nurl = "{slow}"\nname = "Slow"\n{more}', clock)
    daemon = start(agg, stop_later)
    when = fire(daemon, slow)
    assert when is not None and when >= EVENING + timedelta(hours=24)  # its interval: 24 h
    feed_server.routes["/slow.xml"] = static(rss_items(*SPARSE, LATE))
    clock.current = MORNING
    return daemon, agg, slow, clock


def test_the_daily_digest_holds_what_a_slow_feed_published_late_the_day_before(
    tmp_path: Path, feed_server: Any, stop_later: Any, caplog: Any
) -> None:
    """A feed on a 24 h adaptive interval polled at 20:00 on D is next polled at 20:00 on
    D+1: an item it published at 22:00 on D was stored after D's digest was made (07:00 on
    D+1), and was in no daily digest. The digest now polls it first, and holds it; the
    feed's next poll follows from that poll."""
    daemon, agg, slow, clock = slow_feed_daemon(tmp_path, feed_server, stop_later)
    digest = DigestThread(daemon)
    with caplog.at_level(logging.INFO, logger="aggregator"):
        digest.start()
        wait_until(lambda: pulled_forward(daemon, slow, clock), 10, "Slow polled first")
        assert digest.is_alive()  # waiting for that poll
        when = fire_job(daemon, slow)
        digest.join(10)
    assert digest.made == date(2025, 2, 11)
    html = (tmp_path / "digests" / "2025-02-11.html").read_text(encoding="utf-8")
    assert "Column of the late evening" in html
    assert when is not None and when >= MORNING + timedelta(hours=24)
    assert run_time(daemon, slow) == when
    assert len(feed_server.requests_to("/slow.xml")) == 2
    assert "daily digest of 2025-02-11: polling 1 feed first" in caplog.text
    # Made: the next digest job pulls nothing forward.
    assert daemon.digest_job() is None
    assert run_time(daemon, slow) == when


def test_a_missed_digest_made_on_start_polls_the_slow_feed_first_too(
    tmp_path: Path, feed_server: Any, stop_later: Any
) -> None:
    """A daemon down over 07:00 makes the missed digest on start: after the first round,
    and after polling the feeds whose next poll is not due yet but may hold entries of
    its day (their stored next poll is kept by the first round)."""
    daemon, agg, slow, clock = slow_feed_daemon(tmp_path, feed_server, stop_later)
    daemon.stop()
    stop_later.remove((daemon, agg))
    agg.close()
    clock.current = MORNING + timedelta(hours=2)  # started again at 09:00
    agg = make_aggregator(load_config(tmp_path / "feeds.toml"), clock=clock)
    again = start(agg, stop_later)
    when = run_time(again, slow)
    assert when is not None and when > clock()  # on start: its stored next poll
    catch_up = threading.Thread(target=again._catch_up_digest, daemon=True)
    catch_up.start()
    wait_until(lambda: pulled_forward(again, slow, clock), 10, "Slow polled first")
    fire_job(again, slow)
    catch_up.join(10)
    html = (tmp_path / "digests" / "2025-02-11.html").read_text(encoding="utf-8")
    assert "Column of the late evening" in html


def test_the_digest_does_not_poll_early_feeds_held_back_or_polled_since(
    tmp_path: Path, feed_server: Any, stop_later: Any
) -> None:
    """Polled at 20:00 on D with their next poll after 07:00 on D+1: one on a fixed
    interval (honoured exactly), one backing off after a failure, one whose server said
    Retry-After, one disabled by a 410; and one polled at 01:00 on D+1. None is polled
    before the digest; the slow adaptive one is."""
    from tests.feedserver import static

    clock = FrozenClock(EVENING - timedelta(hours=1))
    paths = ["/slow.xml", "/fixed.xml", "/failing.xml", "/throttled.xml", "/gone.xml", "/seen.xml"]
    for path in paths:
        feed_server.routes[path] = static(rss_items(*SPARSE))
    toml = "".join(
        f'[[feeds]]\nurl = "{feed_server.url(path)}"\nname = "{path[1:-4]}"\n'
        + ('interval = "24h"\n' if path == "/fixed.xml" else "")
        for path in paths
    )
    agg = make(tmp_path, toml, clock)
    daemon = start(agg, stop_later)
    url = {path: feed_server.url(path) for path in paths}
    for path in paths:  # 19:00: each polled once, their entries stored
        assert fire(daemon, url[path]) is not None
    clock.current = EVENING
    feed_server.routes["/failing.xml"] = static("oops", status=500, content_type="text/plain")
    feed_server.routes["/throttled.xml"] = static(
        "busy", status=503, content_type="text/plain", headers={"Retry-After": "86400"}
    )
    feed_server.routes["/gone.xml"] = static("gone", status=410, content_type="text/plain")
    for path in paths[:-1]:
        fire(daemon, url[path])
    clock.current = EVENING + timedelta(hours=5)  # 01:00 on D+1
    fire(daemon, url["/seen.xml"])
    states = {state.url: state for state in agg.feed_states()}
    assert states[url["/gone.xml"]].disabled_reason is not None
    assert states[url["/failing.xml"]].consecutive_failures == 1
    assert states[url["/throttled.xml"]].retry_after is not None
    for path in paths[:-2]:  # not due at 07:00 (the disabled one has no next poll)
        assert states[url[path]].next_poll > MORNING, path  # type: ignore[operator]
    clock.current = MORNING
    asked = len(feed_server.seen)
    scheduled = {path: run_time(daemon, url[path]) for path in paths}
    digest = DigestThread(daemon)
    digest.start()
    wait_until(lambda: pulled_forward(daemon, url["/slow.xml"], clock), 10, "Slow polled first")
    fire_job(daemon, url["/slow.xml"])
    digest.join(10)
    assert digest.made == date(2025, 2, 11)
    assert [seen.path for seen in feed_server.seen[asked:]] == ["/slow.xml"]
    for path in paths[1:]:  # their polls as they were
        assert run_time(daemon, url[path]) == scheduled[path], path


def test_the_digest_is_made_when_a_feed_polled_first_hangs_or_fails(
    tmp_path: Path, feed_server: Any, stop_later: Any, monkeypatch: Any
) -> None:
    """The polls first are waited for as the polls in flight are: at most CATCH_UP_WAIT
    (here 1 s). A feed that hangs is left to its poll; one that fails backs off."""
    from tests.feedserver import respond

    monkeypatch.setattr("aggregator.scheduler.CATCH_UP_WAIT", 1.0)
    daemon, agg, slow, clock = slow_feed_daemon(tmp_path, feed_server, stop_later)
    hang = Hanging()
    feed_server.routes["/slow.xml"] = hang
    digest = DigestThread(daemon)
    digest.start()
    wait_until(lambda: pulled_forward(daemon, slow, clock), 10, "Slow polled first")
    poll = threading.Thread(target=fire_job, args=[daemon, slow], daemon=True)
    poll.start()
    assert hang.asked.wait(10)
    began = time.monotonic()
    digest.join(10)
    assert digest.made == date(2025, 2, 11) and time.monotonic() - began < 5
    html = (tmp_path / "digests" / "2025-02-11.html").read_text(encoding="utf-8")
    assert "Column of the late evening" not in html  # not stored in time
    clock.advance(minutes=10)  # it answers at 07:10: its next poll, 07:10 on D+2
    hang.release.set()
    poll.join(10)
    assert not poll.is_alive() and run_time(daemon, slow) is not None  # rescheduled
    # The next day's digest: its feed polled early fails; the digest is made all the same.
    clock.current = MORNING + timedelta(days=1)
    state = agg.storage.feed_state(slow)
    assert state is not None and state.next_poll is not None and state.next_poll > clock()
    feed_server.routes["/slow.xml"] = lambda h: respond(h, 500, b"oops", "text/plain")
    digest = DigestThread(daemon)
    digest.start()
    wait_until(lambda: pulled_forward(daemon, slow, clock), 10, "Slow polled first")
    retry = fire_job(daemon, slow)
    digest.join(10)
    assert digest.made == date(2025, 2, 12)
    assert retry is not None and retry > clock()  # backing off
    assert agg.storage.feed_state(slow).consecutive_failures == 1  # type: ignore[union-attr]


def test_a_feed_removed_while_the_digest_waits_for_its_early_poll_is_not_waited_for(
    tmp_path: Path, feed_server: Any, stop_later: Any
) -> None:
    """The digest pulled the slow feed's poll forward and waits for it; feeds.toml is
    edited to remove the feed before it ran: the digest goes on at once, not when its wait
    ends (CATCH_UP_WAIT, 2 minutes)."""
    from tests.feedserver import static

    daemon, agg, slow, clock = slow_feed_daemon(tmp_path, feed_server, stop_later)
    digest = DigestThread(daemon)
    digest.start()
    wait_until(lambda: pulled_forward(daemon, slow, clock), 10, "Slow polled first")
    assert digest.is_alive()  # waiting for that poll
    feed_server.routes["/other.xml"] = static(rss_items(*SPARSE))
    write_config(tmp_path, f'[[feeds]]\nurl = "{feed_server.url("/other.xml")}"\nname = "Other"\n')
    started = time.monotonic()
    assert daemon.reload()
    digest.join(20)
    assert not digest.is_alive() and time.monotonic() - started < 10
    assert digest.made == date(2025, 2, 11)
    assert run_time(daemon, slow) is None  # not polled again


def pg_slow_daemons(
    tmp_path: Path, feed_server: Any, stop_later: Any, pg_url: str, paths: list[str], more: str = ""
) -> tuple[list[Daemon], list[Aggregator], FrozenClock]:
    """Two daemons sharing one PostgreSQL store and the sparse feeds `paths`, polled at
    20:00 on D by the first; the feeds then publish LATE; the clock at 07:00 on D+1."""
    from tests.feedserver import static

    clock = FrozenClock(EVENING, tick=timedelta(microseconds=1))
    feeds = ""
    for path in paths:
        feed_server.routes[path] = static(rss_items(*SPARSE))
        feeds += f'[[feeds]]\nurl = "{feed_server.url(path)}"\nname = "{path[1:-4]}"\n'
    config = write_config(tmp_path, feeds, more)
    text = config.read_text(encoding="utf-8").replace('path = "test.db"', f'url = "{pg_url}"')
    config.write_text(text, encoding="utf-8")
    aggs = [make_aggregator(load_config(config), clock=clock) for _ in range(2)]
    daemons = [start(agg, stop_later) for agg in aggs]
    for path in paths:
        assert fire(daemons[0], feed_server.url(path)) is not None
    for path in paths:
        feed_server.routes[path] = static(rss_items(*SPARSE, LATE))
    clock.current = MORNING
    return daemons, aggs, clock


def test_two_pollers_polling_a_feed_first_fetch_it_once(
    tmp_path: Path, feed_server: Any, stop_later: Any, pg_url: str
) -> None:
    """Two daemons sharing PostgreSQL both pull the slow feed's poll forward for the
    digest: the lease lets one fetch it; the other is refused (it has been polled since
    midnight, or is held) and leaves its schedule to that poll. The digest, made once,
    holds the late item."""
    daemons, aggs, clock = pg_slow_daemons(tmp_path, feed_server, stop_later, pg_url, ["/s.xml"])
    slow = feed_server.url("/s.xml")
    digests = [DigestThread(daemon) for daemon in daemons]
    for digest in digests:
        digest.start()
    for daemon in daemons:
        wait_until(lambda d=daemon: pulled_forward(d, slow, clock), 10, "Slow polled first")
    polls = [threading.Thread(target=fire_job, args=[d, slow], daemon=True) for d in daemons]
    for poll in polls:
        poll.start()
    for thread in polls + digests:
        thread.join(20)
    assert len(feed_server.requests_to("/s.xml")) == 2  # 20:00 on D, and once before 07:00
    assert sorted(str(d.made) for d in digests) == ["2025-02-11", "None"]
    html = (tmp_path / "digests" / "2025-02-11.html").read_text(encoding="utf-8")
    assert "Column of the late evening" in html
    # Its next poll follows from that poll (the refused one asks again when the lease
    # that refused it ends, if it was that: then refused until that next poll).
    state = aggs[0].storage.feed_state(slow)
    assert state is not None and state.next_poll > clock() + timedelta(hours=23)  # type: ignore[operator]
    assert all(run_time(d, slow) > clock() for d in daemons)  # type: ignore[operator]


def test_a_poller_not_holding_a_feed_s_lease_does_not_poll_it_first(
    tmp_path: Path, feed_server: Any, stop_later: Any, pg_url: str, monkeypatch: Any
) -> None:
    """Another poller holds the slow feed's lease at 07:00: the pulled-forward poll is
    refused and fetches nothing, and the digest waits for the other's poll (at most
    CATCH_UP_WAIT, here 1 s)."""
    monkeypatch.setattr("aggregator.scheduler.CATCH_UP_WAIT", 1.0)
    daemons, aggs, clock = pg_slow_daemons(tmp_path, feed_server, stop_later, pg_url, ["/s.xml"])
    slow = feed_server.url("/s.xml")
    asked = len(feed_server.requests_to("/s.xml"))
    until = clock() + timedelta(minutes=5)
    taken = aggs[1].storage.lease_feeds(
        {slow: "127.0.0.1"}, owner="other", now=clock(), until=until
    )
    assert taken.granted == [] and taken.refused  # not due: refused to a plain lease
    taken = aggs[1].storage.lease_feeds(
        {slow: "127.0.0.1"}, owner="other", now=clock(), until=until, due_only=False
    )
    assert taken.granted == [slow]
    digest = DigestThread(daemons[0])
    digest.start()
    wait_until(lambda: pulled_forward(daemons[0], slow, clock), 10, "Slow polled first")
    again = fire_job(daemons[0], slow)
    assert again == until  # asked again (as a regular poll) when the other's lease ends
    digest.join(10)
    assert digest.made == date(2025, 2, 11)
    assert len(feed_server.requests_to("/s.xml")) == asked  # not fetched


def test_a_poll_first_refused_for_its_host_s_limit_is_asked_again_early(
    tmp_path: Path, feed_server: Any, stop_later: Any, pg_url: str
) -> None:
    """`per_host = 1`, two slow feeds on one host polled first: the second is refused while
    the first is fetched, asked again a few seconds later still as a poll first, which the
    digest waits for; both late items are in it."""
    paths = ["/s.xml", "/t.xml"]
    daemons, aggs, clock = pg_slow_daemons(
        tmp_path, feed_server, stop_later, pg_url, paths, "[poll]\nper_host = 1\n"
    )
    daemon = daemons[0]
    s, t = (feed_server.url(path) for path in paths)
    hang = Hanging()
    feed_server.routes["/s.xml"] = hang
    digest = DigestThread(daemon)
    digest.start()
    for url in (s, t):
        wait_until(lambda u=url: pulled_forward(daemon, u, clock), 10, "polled first")
    first = threading.Thread(target=fire_job, args=[daemon, s], daemon=True)
    first.start()
    assert hang.asked.wait(10)
    retry = fire_job(daemon, t)  # refused: its host's one lease is taken
    assert retry is not None and retry <= clock() + timedelta(seconds=4)
    job = daemon.scheduler.get_job("poll:" + t)
    assert job.kwargs == {"catch_up": datetime(2025, 2, 11, 16, 0, tzinfo=UTC)}
    hang.release.set()
    first.join(10)
    assert digest.is_alive()  # still waiting for the second
    clock.current = retry
    fire_job(daemon, t)
    digest.join(10)
    assert digest.made == date(2025, 2, 11)
    assert len(feed_server.requests_to("/t.xml")) == 2
