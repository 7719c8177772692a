"""The daemon (`aggregator run`): APScheduler wiring, signals, reloads and the database lock.

The only module that imports APScheduler. What it schedules is decided elsewhere: when a
feed is polled next is the `next_poll` its last poll returned, and its first poll on
start comes from what was stored, both by the rules in polling.py; this module runs the
jobs and reacts to the outside world (SIGTERM/SIGINT stop, SIGHUP or an edit of
feeds.toml reloads).
"""

from __future__ import annotations

import logging
import os
import random
import signal
import sys
import threading
import time as _time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from apscheduler.events import EVENT_JOB_SUBMITTED, JobSubmissionEvent
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers import SchedulerNotRunningError
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import STATE_RUNNING
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from aggregator.config import Config, load_config, require_alert_secrets
from aggregator.core import Aggregator, Window, make_aggregator
from aggregator.exceptions import AggregatorError, ConfigError, StorageError
from aggregator.grammar import counted, entries_counted
from aggregator.liveness import SILENT_AFTER
from aggregator.polling import (
    MAX_JITTER as MAX_JITTER,  # re-exported: the daemon's timing rules live in polling.py
)
from aggregator.polling import (
    MIN_SPREAD,
    catch_up_polls,
    feed_interval,
    first_poll_time,
    next_poll_time,
    start_spread,
    storage_retry_time,
)
from aggregator.storage.lock import DatabaseLock
from aggregator.types import Feed, PollResult, PollStatus

log = logging.getLogger("aggregator")

#: After SIGTERM/SIGINT, polls and a digest in flight get this many seconds to finish
#: (each commits in one transaction, or not at all) before they are abandoned.
STOP_GRACE = 5.0
#: How often feeds.toml's modification time is checked.
CONFIG_CHECK = 2.0
#: How often every enabled feed is checked to have a job (a safety net, and how a feed
#: re-enabled in the database gets polled again without a restart).
RECONCILE_EVERY = 30.0
#: How long a daily digest to make waits for the polls before it: the first round of polls
#: on start (so that a digest missed while the daemon was down includes what the feeds
#: published meanwhile; only the feeds due within this time), the feeds polled early for
#: it (`polling.catch_up_polls`), then the store's pass. Only when the due digest is not
#: made yet.
CATCH_UP_WAIT = 120.0
#: How often failed digest emails are looked at; each has its own retry time (see
#: docs/digests.md, Email), the first 5 minutes after the failure.
EMAIL_RETRY_EVERY = timedelta(minutes=5)
#: A daily digest that failed (its folder not writable, a full disk) is tried again this
#: much later, until it is made: the next day's run makes only the latest due digest.
DIGEST_RETRY = timedelta(minutes=5)
#: How often alerts due are looked at: retries (each at its own time, docs/watches.md) and
#: those a crashed process left.
ALERT_RETRY_EVERY = timedelta(minutes=1)
#: How often the daemon records in the store that it is alive (its poller's heartbeat, which
#: `status` lists on every host sharing the store), in seconds; read when it starts. Silent
#: after liveness.SILENT_AFTER of these without one.
HEARTBEAT_EVERY = 30.0

#: What the polls store is placed once they pause this long, or this long after the first
#: of them at the latest while they go on storing (`_Gather`): a first round's thousands of
#: entries in a few batches (full ones handed to the placing process as they fill), not one
#: per feed; the entries of a lone poll are placed PLACE_QUIET seconds after it.
PLACE_QUIET = 1.0
PLACE_MOST = 10.0
#: Nor is it placed while the store's pass goes on (`Aggregator.pass_pending`: a poller,
#: this one or another, holds a lease, or a feed is due or never polled), so that one and
#: several pollers place the same entries in the same batches (docs/daemon.md); but no
#: longer than this many seconds after the first time placing waited for it.
PLACE_LONGEST = 300.0

#: A poll job waiting this long in the workers' queue is taken for lost by reconcile().
QUEUED_TRUSTED = timedelta(minutes=10)

_POLL = "poll:"
_DIGEST = "digest"
_DIGEST_RETRY = "digest-retry"
_PLACING = "(placing)"  # the placing's failed writes, beside the feeds' (by URL)
#: The heartbeat's executor (its own: the digest's waits for the first polls up to
#: CATCH_UP_WAIT, the polls' may all be busy) and its key among the failed writes.
_HEARTBEAT = "heartbeat"
_SIGNALS = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP}


# --- decisions (pure) ---------------------------------------------------------------------


def digest_time(day: date, tz: ZoneInfo, at: time) -> datetime:
    """When the daily digest made on `day` (the digest of the day before) is due: `at` on
    `day` in `tz`, in UTC.

    A time the clocks skip that day (spring forward) is read with the offset before the
    change, so it comes as much later as they jumped (02:30 in Paris on 30 March 2025 is
    03:30 CEST; 00:00 in Santiago on 7 September 2025, 01:00); one they pass twice (fall
    back) is its first pass.
    """
    return datetime.combine(day, at, tz).astimezone(UTC)  # fold=0: both rules above


def next_digest_time(after: datetime, tz: ZoneInfo, at: time) -> datetime:
    """The first daily digest time (`digest_time`) at or after `after`: one a local day."""
    today = after.astimezone(tz).date()
    for days in range(-1, 3):
        when = digest_time(today + timedelta(days=days), tz, at)
        if when >= after:
            return when
    raise AssertionError("a day's digest time is within a day of the day")  # pragma: no cover


def due_digest_day(now: datetime, tz: ZoneInfo, at: time) -> date:
    """The day whose daily digest is the latest one due at `now`.

    The digest made at `at` on day D covers D-1, so once today's `digest_time` has passed
    (in `tz`) that is yesterday, and before it, the day before yesterday.
    """
    today = now.astimezone(tz).date()
    passed = now >= digest_time(today, tz, at)
    return today - timedelta(days=1 if passed else 2)


def first_round(first_polls: dict[str, datetime], now: datetime, wait: timedelta) -> set[str]:
    """The feeds the digest made on start waits for: those whose first poll comes within
    `wait`; the others' polls are not coming soon enough to be worth delaying it."""
    return {url for url, when in first_polls.items() if when <= now + wait}


# --- the daily digest ---------------------------------------------------------------------


def write_daily_digest(agg: Aggregator, day: date | None = None) -> list[Path]:
    """The daily job: publish the digest of `day` (default yesterday, digest timezone) and
    record it as made, so that the daemon never makes it twice.

    Publishing (Aggregator.publish_daily) writes every format and the archive, then emails
    it when [digest.email] is configured; a failed email is recorded for retry, not raised.

    Raises:
        AggregatorError: a file could not be written, or the run not recorded.
    """
    published = agg.publish_daily(Window(day, day) if day is not None else None)
    digested = published.window.first
    # Made when it read its entries, not now: what was stored since is the next one's.
    agg.record_digest(digested, made=published.digest.generated_at)
    log.info(
        "daily digest of %s: %s, %s",
        digested,
        counted(published.digest.story_count, "story"),
        entries_counted(published.digest.entry_count, published.digest.late_count),
    )
    return list(published.paths)


def window_end(day: date, tz: ZoneInfo) -> datetime:
    """When the daily digest's window of `day` ends: the midnight after it in `tz`."""
    return datetime.combine(day + timedelta(days=1), time.min, tz)


def before_first_entry(day: date, tz: ZoneInfo, first_published: datetime | None) -> bool:
    """Whether `day` (in `tz`) ended before the earliest stored entry: a day the database
    knows nothing of, whose digest would be empty for want of data, not of news."""
    return first_published is None or first_published >= window_end(day, tz)


def make_due_digest(agg: Aggregator) -> date | None:
    """Make the latest daily digest that is due, unless it was made already, or the
    database holds nothing from that day or earlier (a fresh database).

    Returns the day digested, or None when none was made.

    Raises:
        AggregatorError: as write_daily_digest.
    """
    settings = agg.config.digest
    tz = ZoneInfo(settings.timezone)
    # Pollers sharing a store: whoever holds the lock checks, makes and records it; the
    # others then find it made.
    with agg.making_digest():
        day = due_digest_day(agg.clock(), tz, settings.time)
        made = agg.digest_made(day)
        if made is not None:
            when = made.isoformat(timespec="seconds")
            log.info("daily digest of %s: already made at %s", day, when)
            return None
        if before_first_entry(day, tz, agg.first_published()):
            log.info(
                "daily digest of %s: not made, no stored entry is from that day or before", day
            )
            return None
        write_daily_digest(agg, day)
    return day


# --- the daemon ---------------------------------------------------------------------------


class _DailyDigest(BaseTrigger):  # type: ignore[misc]  # APScheduler is untyped
    """Fires at each `next_digest_time`: once every local day. (APScheduler's CronTrigger
    skipped the day after a spring-forward for a time before the change's hour, and a
    midnight change's day for one before 01:00: a daily digest never made.)"""

    def __init__(self, tz: ZoneInfo, at: time) -> None:
        self.tz = tz
        self.at = at

    def get_next_fire_time(
        self, previous_fire_time: datetime | None, now: datetime
    ) -> datetime | None:
        # As CronTrigger: after a firing, from the one after it (a missed one is coalesced).
        after = now
        if previous_fire_time is not None:
            after = min(now, previous_fire_time + timedelta(microseconds=1))
        return next_digest_time(after, self.tz, self.at)

    def __str__(self) -> str:
        return f"daily at {self.at:%H:%M} {self.tz}"


class _Gather:
    """Runs `work` on a thread of its own some time after `note`: once the notes pause for
    `quiet` seconds, or `most` seconds after the first note it has not worked on yet."""

    def __init__(self, work: Callable[[], object], quiet: float, most: float) -> None:
        self._work = work
        self._quiet = quiet
        self._most = most
        self._cond = threading.Condition()
        self._first: float | None = None  # the first note not worked on (monotonic)
        self._last = 0.0
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="aggregator-place", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def note(self) -> None:
        with self._cond:
            self._last = _time.monotonic()
            if self._first is None:
                self._first = self._last
                self._cond.notify_all()

    def close(self, timeout: float | None = None) -> bool:
        """Work now on what was noted, and end; False if that was still going at `timeout`."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
            unstarted = self._thread.ident is None and self._first is not None
            if unstarted:
                self._first = None  # worked on here (a started thread works on it itself)
        if unstarted:
            self._guarded()
        if self._thread.is_alive():
            self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._first is None and not self._closing:
                    self._cond.wait()
                if self._first is None:
                    return  # closing, nothing noted
                while not self._closing:
                    due = min(self._last + self._quiet, self._first + self._most)
                    if _time.monotonic() >= due:
                        break
                    self._cond.wait(due - _time.monotonic())
                self._first = None
            self._guarded()

    def _guarded(self) -> None:
        try:
            self._work()
        except Exception:
            log.exception("placing stored entries failed unexpectedly")


class Daemon:
    """Schedules each feed's polls and the daily digest on an APScheduler BackgroundScheduler.

    Poll jobs are one-shot (a DateTrigger): when a poll finishes, the job adds itself again
    at the time its poll returned (PollResult.next_poll, jitter included).
    """

    def __init__(
        self,
        agg: Aggregator,
        *,
        rng: random.Random | None = None,
        workers: int | None = None,
        report: Callable[[str | None, datetime | None], None] | None = None,
    ) -> None:
        self.agg = agg
        self.rng = rng or random.Random()
        #: Told the storage error the daemon's writes meet (None: they work again), for
        #: `status`: the lock file's report (see DatabaseLock.note_storage_error).
        self._report = report
        # Feeds polled at the same time, [poll] concurrency by default: polls wait on the
        # network, and the shared fetcher holds them to its global and per-host limits.
        workers = workers or max(1, agg.config.poll.concurrency)
        self.scheduler = BackgroundScheduler(
            timezone=UTC,
            executors={
                "default": ThreadPoolExecutor(workers),
                _DIGEST: ThreadPoolExecutor(1),
                _HEARTBEAT: ThreadPoolExecutor(1),
            },
            # misfire_grace_time None: a job that starts late (all workers busy, the machine
            # asleep) still runs; a one-shot job skipped as "missed" would never come back.
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        )
        # Guards everything below; a Condition so stop() and the catch-up digest can wait.
        self._lock = threading.Condition()
        self._feeds = {feed.url: feed for feed in agg.config.feeds}
        self._busy: dict[str, datetime] = {}  # url -> when its poll in flight started
        #: url -> when its poll job was handed to the workers, which have not started it.
        self._queued: dict[str, datetime] = {}
        self._started: dict[str, datetime] = {}  # url -> when its last poll started
        self._digesting = 0
        self._stopping = False
        self._first_round: set[str] = set()
        #: Feeds polled early for the daily digest to make (`_poll_early`), which it waits
        #: for; until when (the clock's time) one refused for now is asked again early.
        self._early: set[str] = set()
        self._early_until: datetime | None = None
        self._disabled_noted: set[str] = set()
        #: Feeds whose polls could not be stored (and _PLACING, _HEARTBEAT: the placing's,
        #: the heartbeat's writes), with how many times in a row; since when; the last
        #: error but the heartbeat's (what the heartbeat records).
        self._storage_failures: dict[str, int] = {}
        self._storage_failing_since: datetime | None = None
        self._storage_error: str | None = None
        #: Places what the polls store, a few polls' entries at a time, in the placing
        #: order (`Placer.ordered`), once the store's pass is over.
        self._placing = _Gather(self.place_job, PLACE_QUIET, PLACE_MOST)
        agg.placer.ordered = True
        #: When placing first waited for the store's pass to end (monotonic; None: it
        #: does not wait).
        self._waiting_since: float | None = None
        #: Feeds whose last poll here raised, its outcome not recorded: their stored next
        #: poll is stale (their retry is scheduled here), so they keep no pass going.
        self._unrecorded: set[str] = set()
        #: This poller's record in the store: when it started (None: not started, or its
        #: stop recorded), its heartbeat; one write of it at a time, so that a heartbeat
        #: in flight never lands after the stop.
        self._started_at: datetime | None = None
        self._every = timedelta(seconds=HEARTBEAT_EVERY)
        self._announcing = threading.Lock()

    # --- life cycle

    def start(self, *, paused: bool = False) -> None:
        """Start the scheduler: first polls spread over the next seconds, the daily digest,
        and the catch-up of a digest missed while the daemon was down.

        `paused` starts without running anything (tests inspect the schedule).
        """
        self._every = timedelta(seconds=HEARTBEAT_EVERY)
        self._started_at = self.agg.clock()
        self.heartbeat()  # the poller is listed from its start
        try:
            if ended := self.agg.end_dead_pollers():
                log.info("%s left running by a crash recorded as stopped", counted(ended, "poller"))
        except AggregatorError as e:
            log.error("could not record the pollers a crash left as stopped: %s", e)
        self.scheduler.add_listener(self._submitted, EVENT_JOB_SUBMITTED)
        self.scheduler.start(paused=paused)
        if not paused:
            self._placing.start()
        self._schedule_digest()
        self.reconcile(first=True)
        self.scheduler.add_job(
            self._catch_up_digest,
            DateTrigger(self.agg.clock(), timezone=UTC),
            id="digest:catch-up",
            name="digest missed while down",
            executor=_DIGEST,
        )
        self.scheduler.add_job(
            self.email_retry_job,
            IntervalTrigger(seconds=EMAIL_RETRY_EVERY.total_seconds(), timezone=UTC),
            id="email-retries",
            name="digest email retries",
            executor=_DIGEST,
        )
        self.scheduler.add_job(
            self.alert_job,
            IntervalTrigger(seconds=ALERT_RETRY_EVERY.total_seconds(), timezone=UTC),
            id="alerts",
            name="alerts due and their retries",
            executor=_DIGEST,
            next_run_time=self.agg.clock(),  # at once: what a crash left due is sent now
        )
        self.scheduler.add_job(
            self.heartbeat,
            IntervalTrigger(seconds=self._every.total_seconds(), timezone=UTC),
            id=_HEARTBEAT,
            name="heartbeat",
            executor=_HEARTBEAT,
        )

    def problem(self) -> str | None:
        """Why the scheduler is not running its jobs (None: it is): `run --serve`'s /healthz."""
        if self._stopping:
            return "the daemon is stopping"
        thread = getattr(self.scheduler, "_thread", None)  # BackgroundScheduler's own
        if not self.scheduler.running or thread is None or not thread.is_alive():
            return "the daemon's scheduler is not running"
        return None

    def stop(self, grace: float = STOP_GRACE) -> bool:
        """Stop taking work; give polls and a digest in flight up to `grace` seconds.

        Returns True when nothing was left in flight, False when some work was abandoned
        (each poll commits in one transaction, so abandoned work has written nothing).
        """
        with self._lock:
            self._stopping = True
            self._lock.notify_all()
        try:
            self.scheduler.shutdown(wait=False)
        except SchedulerNotRunningError:
            pass
        deadline = _time.monotonic() + grace
        with self._lock:
            while self._busy or self._digesting:
                remaining = deadline - _time.monotonic()
                if remaining <= 0:
                    break
                self._lock.wait(remaining)
            left = [self._name(url) for url in self._busy]
            if self._digesting:
                left.append("the daily digest")
        # What the last polls stored is placed now (each batch in one transaction: one
        # abandoned is placed on the next start).
        if not self._placing.close(max(0.0, deadline - _time.monotonic())):
            left.append("placing what the polls stored")
        self._record_stop()
        if left:
            log.warning("abandoning after %.0fs: %s", grace, ", ".join(sorted(left)))
            return False
        return True

    # --- this poller's record: heartbeat and stop

    def heartbeat(self) -> bool:
        """The job: record this poller in the store as alive now, with the error its polls'
        writes meet (`status` lists every poller sharing the store). Returns whether it was
        recorded. Never raises: a heartbeat that cannot be written is logged and reported
        as a poll that cannot be stored is (the lock file's report), and tried again at the
        next one."""
        with self._announcing:
            with self._lock:
                started = self._started_at
                if self._stopping or started is None:
                    return False
                error, since = self._storage_error, self._storage_failing_since
            try:
                self.agg.announce_poller(
                    started, self._every, storage_error=error, failing_since=since
                )
            except StorageError as e:
                self._heartbeat_failed(e)
                return False
            except Exception:
                log.exception("heartbeat failed unexpectedly")
                return False
        if self._forget_storage_failures([_HEARTBEAT]):
            log.info("storage: writes work again")
        return True

    def _heartbeat_failed(self, error: StorageError) -> None:
        failures = self._note_storage_failure(_HEARTBEAT, error, self.agg.clock())
        log.error(
            "heartbeat not recorded: %s (failure %d; `status` shows this poller as silent "
            "after %d)",
            error,
            failures,
            SILENT_AFTER,
        )

    def _record_stop(self) -> None:
        """Record this poller as stopped (once; never raises: unrecorded, it is shown as
        silent once its heartbeats are missed)."""
        with self._announcing:
            started, self._started_at = self._started_at, None
            if started is None:
                return
            try:
                self.agg.announce_poller(started, self._every, stopped=True)
            except AggregatorError as e:
                log.error("could not record this poller as stopped: %s", e)
            except Exception:
                log.exception("could not record this poller as stopped")

    # --- feeds

    def reconcile(self, *, first: bool = False) -> list[str]:
        """Give every configured, enabled feed that has neither a job, nor a poll in flight
        or waiting for a worker, its first poll (on start, for feeds a reload added, for a
        feed re-enabled).

        With `first` (on start), the feeds due soon are the first round the digest made on
        start waits for; set under the lock a poll takes first, so none finishes unseen.

        Returns the URLs scheduled.

        Raises:
            StorageError: the feeds' states could not be read.
        """
        with self._lock:
            if self._stopping:
                return []
            now = self.agg.clock()
            missing = [
                feed
                for url, feed in self._feeds.items()
                if url not in self._busy
                and not self._waiting_worker(url, now)
                and self.scheduler.get_job(_POLL + url) is None
            ]
            if not missing:
                return []
            states = {state.url: state for state in self.agg.feed_states()}
            spread = start_spread(len(missing))
            scheduled = []
            times: dict[str, datetime] = {}
            for feed in missing:
                state = states.get(feed.url)
                if state is not None and state.disabled_reason:
                    if feed.url not in self._disabled_noted:
                        self._disabled_noted.add(feed.url)
                        log.warning(
                            "%s: disabled (%s); not polled until re-enabled",
                            feed.name,
                            state.disabled_reason,
                        )
                    continue
                self._disabled_noted.discard(feed.url)
                when = first_poll_time(
                    now,
                    state.next_poll if state is not None else None,
                    feed_interval(feed),
                    spread,
                    self.rng,
                    retry_after=state.retry_after if state is not None else None,
                    fixed=feed.interval,
                    failures=state.consecutive_failures if state is not None else 0,
                )
                self._add_poll(feed, when)
                scheduled.append(feed.url)
                times[feed.url] = when
            if first:
                self._first_round = first_round(times, now, timedelta(seconds=CATCH_UP_WAIT))
            return scheduled

    def poll_job(
        self,
        url: str,
        due: datetime | None = None,
        made: datetime | None = None,
        catch_up: datetime | None = None,
    ) -> datetime | None:
        """The job: poll one feed now, then schedule its next poll at the time it recorded.

        `due` is when the job was set to run, `made` when it was set. A job due before the
        feed's last poll started, or set before it, is skipped: reconcile() gave the feed a
        second job while its first waited for a free worker (out of the scheduler's store,
        not yet running), and the first has polled (and set the feed's next poll).
        `catch_up`: a poll pulled forward for the daily digest whose window ends then
        (`_poll_early`); one refused for now (a shared store's lease: its host's
        `per_host` full) is asked again as such while that digest waits.

        Returns that time, or None when the feed is not polled again (the daemon is
        stopping, the feed was removed or disabled, the job was skipped). Never raises: one
        feed can't stop the others; a feed left without a job is picked up by the next
        reconcile().
        """
        with self._lock:
            self._queued.pop(url, None)
            feed = self._feeds.get(url)
            if self._stopping or feed is None or url in self._busy:
                return None
            last = self._started.get(url)
            if last is not None and (
                (due is not None and due <= last) or (made is not None and made < last)
            ):
                log.debug(
                    "%s: a poll set at %s, due at %s: one ran since, at %s",
                    feed.name,
                    made,
                    due,
                    last,
                )
                return None
            started = self._busy[url] = self._started[url] = self.agg.clock()
        when: datetime | None = None
        result: PollResult | None = None
        try:
            try:
                result = self.agg.poll_feed(feed, place=False, catch_up=catch_up)
            except StorageError as e:  # fetch errors are recorded by poll_feed; this is not
                when = self._storage_failed(feed, e)
            except AggregatorError as e:
                log.error("%s: poll failed: %s", feed.name, e)
            except Exception:
                log.exception("%s: poll failed unexpectedly", feed.name)
            else:
                with self._lock:
                    self._unrecorded.discard(url)
                self._storage_worked(url)
                if result.new or result.updated:
                    self._placing.note()
            if result is None:
                with self._lock:
                    self._unrecorded.add(url)
            if when is None:
                when = self._next_poll(url, started, result)
        except Exception as e:
            log.error("%s: could not schedule the next poll: %s", feed.name, e)
        finally:
            # Adding the next job and leaving "busy" in one step: reconcile() never sees
            # the feed with neither. The job may fire before this one has returned, which is
            # why poll jobs allow two instances (the other one is only returning).
            with self._lock:
                self._busy.pop(url, None)
                self._first_round.discard(url)
                again = self._early_again(url, catch_up, result, when)
                if again is None:
                    self._early.discard(url)
                current = self._feeds.get(url)
                if when is not None and current is not None and not self._stopping:
                    self._add_poll(current, when, catch_up=again)
                    log.debug("%s: next poll at %s", current.name, when.isoformat())
                else:
                    when = None
                self._lock.notify_all()
        return when

    def _submitted(self, event: JobSubmissionEvent) -> None:
        """A poll job left the store for the workers' queue (listener, scheduler thread)."""
        if event.job_id.startswith(_POLL):
            url = event.job_id[len(_POLL) :]
            with self._lock:
                if url not in self._busy:
                    self._queued[url] = self.agg.clock()

    def _waiting_worker(self, url: str, now: datetime) -> bool:
        """Whether the feed's poll waits in the workers' queue (not for longer than
        QUEUED_TRUSTED: a job that started and ended before the listener ran left a stale
        mark, which its next poll clears). Called with the lock held."""
        queued = self._queued.get(url)
        return queued is not None and now - queued < QUEUED_TRUSTED

    def _storage_failed(self, feed: Feed, error: StorageError) -> datetime:
        """Note a poll that could not be stored; when to try the feed again (backing off:
        the poll's own record, its next poll, could not be written either)."""
        now = self.agg.clock()
        failures = self._note_storage_failure(feed.url, error, now)
        when = storage_retry_time(
            now, feed_interval(feed), failures, self.agg.schedule, self.rng.random()
        )
        log.error(
            "%s: poll not stored: %s (failure %d; next try %s)",
            feed.name,
            error,
            failures,
            when.isoformat(timespec="seconds"),
        )
        return when

    def _note_storage_failure(self, key: str, error: StorageError, now: datetime) -> int:
        """Count a failed write (`key`: a feed's URL, `_PLACING` or `_HEARTBEAT`) and report
        it in the lock file for `status` (the error of the others, also in the heartbeat);
        returns how many times in a row it failed."""
        with self._lock:
            failures = self._storage_failures[key] = self._storage_failures.get(key, 0) + 1
            if self._storage_failing_since is None:
                self._storage_failing_since = now
            since = self._storage_failing_since
            if key != _HEARTBEAT:  # what the heartbeat records, when it can
                self._storage_error = str(error)
        if self._report is not None:
            self._report(str(error), since)
        return failures

    def _storage_worked(self, url: str) -> None:
        if self._forget_storage_failures([url]):
            log.info("storage: writes work again")

    def _forget_storage_failures(self, urls: list[str]) -> bool:
        """Forget these feeds' failed writes (a poll stored, the feed removed); when no
        feed is left failing, withdraw the report. Returns whether it was withdrawn."""
        with self._lock:
            forgotten = [self._storage_failures.pop(url, None) for url in urls]
            if all(n is None for n in forgotten) or self._storage_failures:
                return False
            self._storage_failing_since = self._storage_error = None
        if self._report is not None:
            self._report(None, None)
        return True

    def _next_poll(self, url: str, started: datetime, result: PollResult | None) -> datetime | None:
        """When to poll the feed again: what its poll returned (`result`, None when the
        poll raised), by polling.next_poll_time; None when the feed is now disabled."""
        feed = self._feeds.get(url)
        if feed is None:
            return None
        if result is not None and result.disabled_reason:
            self._disabled_noted.add(url)
            log.warning(
                "%s: disabled (%s); not polled until re-enabled", feed.name, result.disabled_reason
            )
            return None
        return next_poll_time(
            self.agg.clock(),
            started,
            result.next_poll if result is not None else None,
            feed_interval(feed),
            self.rng,
            retry_after=result.retry_after if result is not None else None,
        )

    def _early_again(
        self,
        url: str,
        catch_up: datetime | None,
        result: PollResult | None,
        when: datetime | None,
    ) -> datetime | None:
        """`catch_up` when an early poll was refused (skipped) and is asked again while the
        digest still waits for it; else None. Called with the lock held."""
        if catch_up is None or result is None or result.status is not PollStatus.SKIPPED:
            return None
        until = self._early_until
        if url not in self._early or until is None or when is None or when > until:
            return None  # another poller has it, or polled it, or its server said wait
        return catch_up

    def _add_poll(self, feed: Feed, when: datetime, *, catch_up: datetime | None = None) -> None:
        self.scheduler.add_job(
            self.poll_job,
            DateTrigger(when, timezone=UTC),
            args=[feed.url, when, self.agg.clock()],
            kwargs={} if catch_up is None else {"catch_up": catch_up},
            id=_POLL + feed.url,
            name=f"poll {feed.name}",
            replace_existing=True,
            max_instances=2,
        )

    def _name(self, url: str) -> str:
        feed = self._feeds.get(url)
        return feed.name if feed is not None else url

    # --- digest

    def _schedule_digest(self) -> None:
        settings = self.agg.config.digest
        self.scheduler.add_job(
            self.digest_job,
            _DailyDigest(ZoneInfo(settings.timezone), settings.time),
            id=_DIGEST,
            name="daily digest",
            executor=_DIGEST,
            replace_existing=True,
        )

    def place_job(self, *, now: bool = False) -> int:
        """Place what the polls stored and left unplaced (`Aggregator.place_stored`) once
        the store's pass is over (`now`, or stopping: at once); returns how many entries
        were placed. Never raises: a damaged database is reported for `status` as a failed
        poll's write is (other storage failures are logged by the placer, and the entries
        placed next time)."""
        if not now and self._pass_goes_on():
            return 0
        self._waiting_since = None
        try:
            placed = self.agg.place_stored()
        except StorageError as e:
            self._note_storage_failure(_PLACING, e, self.agg.clock())
            log.error("placing stored entries: %s", e)
        except AggregatorError as e:
            log.error("placing stored entries: %s", e)
        except Exception:
            log.exception("placing stored entries failed unexpectedly")
        else:
            self._storage_worked(_PLACING)
            return placed
        return 0

    def _pass_goes_on(self) -> bool:
        """Whether placing waits for the store's pass to end: it goes on, and placing has
        not waited PLACE_LONGEST for it yet. Waiting, the placing looks again PLACE_QUIET
        seconds later."""
        with self._lock:
            if self._stopping:
                return False  # what this poller's polls stored is placed as it stops
        began = _time.monotonic()
        if self._waiting_since is not None and began - self._waiting_since >= PLACE_LONGEST:
            log.info(
                "placing what the polls stored: the pass still goes on after %.0fs", PLACE_LONGEST
            )
            return False
        if not self._pass_pending():
            return False
        if self._waiting_since is None:
            self._waiting_since = began
        self._placing.note()
        return True

    def _pass_pending(self, *, due: bool = True) -> bool:
        """`Aggregator.pass_pending`, leaving out the feeds whose poll here could not be
        recorded; False when the store cannot say (placing, and the digest, then say what
        is wrong, and it is recorded there)."""
        with self._lock:
            unrecorded = set(self._unrecorded)
        try:
            return self.agg.pass_pending(due=due, unrecorded=unrecorded)
        except AggregatorError as e:
            log.debug("could not tell whether the pass goes on: %s", e)
            return False

    def _digest_due(self) -> bool:
        """Whether the latest daily digest due is not made yet (or storage cannot say)."""
        settings = self.agg.config.digest
        day = due_digest_day(self.agg.clock(), ZoneInfo(settings.timezone), settings.time)
        try:
            return self.agg.digest_made(day) is None
        except AggregatorError:
            return True  # make_due_digest says what is wrong

    def _await_pass(self, seconds: float) -> None:
        """Wait until the store's pass is over (`Aggregator.pass_pending`; while this
        daemon's scheduler is not running its polls, until no poller holds a lease: it would
        wait for due feeds in vain), at most `seconds`, none once stopping: what the digest
        shows is then placed as any placing of this daemon's (or another's) would place it,
        after the pass the pollers are in."""
        deadline = _time.monotonic() + seconds
        due = self.scheduler.state == STATE_RUNNING
        while self._pass_pending(due=due):
            with self._lock:
                remaining = deadline - _time.monotonic()
                if self._stopping or remaining <= 0:
                    return
                self._lock.wait(min(PLACE_QUIET, remaining))

    def digest_job(self, retry: bool = False) -> date | None:
        """The job: make the latest due daily digest unless it was made, with every entry
        stored so far placed. Never raises. `retry`: a failed one's next try, which does not
        wait again for the polls in flight (the first try did; alerts and email retries
        share this job's one thread)."""
        with self._lock:
            if self._stopping:
                return None
            self._digesting += 1
        try:
            # A digest to make places what waits first (after the polls in flight); one
            # made already (a restart, another poller's) leaves the placing to its turn.
            due = self._digest_due()
            if due and not retry:
                self._await_polls(_time.monotonic() + CATCH_UP_WAIT)
            self.place_job(now=due)
            return make_due_digest(self.agg)
        except (AggregatorError, OSError) as e:
            log.error("daily digest failed: %s (tried again in %s)", e, DIGEST_RETRY)
            self._retry_digest()
        except Exception:
            log.exception("daily digest failed unexpectedly (tried again in %s)", DIGEST_RETRY)
            self._retry_digest()
        finally:
            with self._lock:
                self._digesting -= 1
                self._lock.notify_all()
        return None

    def _retry_digest(self) -> None:
        with self._lock:
            if self._stopping:
                return  # a start makes the digest missed meanwhile
        self.scheduler.add_job(
            self.digest_job,
            DateTrigger(self.agg.clock() + DIGEST_RETRY, timezone=UTC),
            kwargs={"retry": True},
            id=_DIGEST_RETRY,
            name="daily digest, again",
            executor=_DIGEST,
            replace_existing=True,
        )

    def email_retry_job(self) -> int:
        """The job: resend digest emails whose retry time has come. Returns how many were
        retried. Never raises."""
        email = self.agg.config.digest.email
        with self._lock:
            if self._stopping or email is None or not email.to:
                return 0
            self._digesting += 1
        try:
            return len(self.agg.retry_emails())
        except AggregatorError as e:
            log.error("digest email retries: %s", e)
        except Exception:
            log.exception("digest email retries failed unexpectedly")
        finally:
            with self._lock:
                self._digesting -= 1
                self._lock.notify_all()
        return 0

    def alert_job(self) -> int:
        """The job: start delivering the alerts due (retries whose time has come, those a
        crashed process left); the deliveries run on the watcher's threads. Returns how
        many started. Never raises."""
        with self._lock:
            if self._stopping:
                return 0
        try:
            return self.agg.deliver_alerts()
        except AggregatorError as e:
            log.error("alerts: %s", e)
        except Exception:
            log.exception("alerts failed unexpectedly")
        return 0

    def _catch_up_digest(self) -> None:
        """The job on start: the digest missed while the daemon was down, made after the
        first round of polls and the feeds polled early for it (`digest_job`)."""
        if not self._digest_due():  # nothing to catch up: no reason to hold the worker
            with self._lock:
                self._first_round.clear()
        self.digest_job()

    def _await_polls(self, deadline: float) -> None:
        """Before a due digest is made: poll early the feeds that may hold entries of its
        window not seen yet (`_poll_early`), wait for them and the first round of polls on
        start, then for the store's pass (`_await_pass`), all until `deadline` (monotonic)
        at most, none once stopping."""
        self._poll_early(deadline)
        with self._lock:
            while (self._first_round or self._early) and not self._stopping:
                remaining = deadline - _time.monotonic()
                if remaining <= 0:
                    break
                self._lock.wait(remaining)
            # Waited for: one still polling (a server that hangs) is not waited for again.
            self._first_round.clear()
            self._early.clear()
            self._early_until = None
        self._await_pass(max(0.0, deadline - _time.monotonic()))

    def _poll_early(self, deadline: float) -> list[str]:
        """Poll now the feeds that may hold entries of the due digest's window this daemon
        has not seen (`polling.catch_up_polls`: an adaptive interval's next poll after the
        window's end, not one held off by a backoff, a Retry-After or a 410, nor a fixed
        interval): each one's scheduled poll replaced by one now, whose next poll then
        follows from it as usual. Returns their URLs (none when the feeds' states cannot
        be read: the digest is made without)."""
        settings = self.agg.config.digest
        tz = ZoneInfo(settings.timezone)
        with self._lock:
            if self._stopping:
                return []
            now = self.agg.clock()
            day = due_digest_day(now, tz, settings.time)
            end = window_end(day, tz)
            try:
                states = {state.url: state for state in self.agg.feed_states()}
            except AggregatorError as e:
                log.error("daily digest of %s: feeds to poll first not known: %s", day, e)
                return []
            # A poll here in flight or waiting for a worker is one already; a feed whose
            # polls could not be stored keeps its retry (its stored state is stale).
            held = set(self._busy) | set(self._storage_failures) | self._unrecorded
            feeds = [
                feed
                for url, feed in self._feeds.items()
                if url not in held and not self._waiting_worker(url, now)
            ]
            early = catch_up_polls(
                feeds, states, window_end=end, now=now, schedule=self.agg.schedule
            )
            for feed in early:
                self._add_poll(feed, now, catch_up=end)
            self._early = {feed.url for feed in early}
            self._early_until = now + timedelta(seconds=max(0.0, deadline - _time.monotonic()))
        if early:
            log.info(
                "daily digest of %s: polling %s first, which may hold entries of that day: %s",
                day,
                counted(len(early), "feed"),
                ", ".join(feed.name for feed in early[:10]) + (", ..." if len(early) > 10 else ""),
            )
        return [feed.url for feed in early]

    # --- reload

    def reload(self) -> bool:
        """Re-read feeds.toml and apply it without a restart.

        Added feeds get a first poll within seconds, removed ones are not polled again (one
        in flight finishes), a shorter interval applies at once, a longer one from the next
        poll; a new digest time or timezone reschedules the digest. A file that does not
        load is logged and the running config kept.

        Returns whether the new config was applied.
        """
        old = self.agg.config
        try:
            new = load_config(old.path)
            require_alert_secrets(new)
        except ConfigError as e:
            log.error("config reload failed; still running on the previous config: %s", e)
            return False
        if new.storage_path != old.storage_path:
            log.warning(
                "[storage] path changed to %s: restart the daemon to use it (still using %s)",
                new.storage_path,
                old.storage_path,
            )
            new = replace(new, storage_path=old.storage_path)
        if (new.storage_url, new.storage_password_env) != (
            old.storage_url,
            old.storage_password_env,
        ):
            log.warning("[storage] url changed: restart the daemon to use it")
            new = replace(
                new, storage_url=old.storage_url, storage_password_env=old.storage_password_env
            )
        fetching = ("concurrency", "per_host", "timeout", "deadline", "max_body")
        if any(getattr(new.poll, k) != getattr(old.poll, k) for k in fetching) or (
            new.poll.allow_private_redirects != old.poll.allow_private_redirects
        ):
            log.warning("[poll] fetch limits changed: restart the daemon to apply them")
        try:
            self.agg.reconfigure(new)
        except AggregatorError as e:
            log.error("config reload failed; still running on the previous config: %s", e)
            return False
        added, removed, changed = self._apply_feeds(new)
        if new.digest.time != old.digest.time or new.digest.timezone != old.digest.timezone:
            self._schedule_digest()
            # The new time may already have passed today: make that digest now if it's due.
            self.scheduler.add_job(
                self.digest_job, DateTrigger(self.agg.clock(), timezone=UTC), executor=_DIGEST
            )
        self.reconcile()
        log.info(
            "config reloaded: %s (%d added, %d removed, %d changed)",
            counted(len(new.feeds), "feed"),
            len(added),
            len(removed),
            len(changed),
        )
        return True

    def _apply_feeds(self, config: Config) -> tuple[list[str], list[str], list[str]]:
        new_feeds = {feed.url: feed for feed in config.feeds}
        now = self.agg.clock()
        with self._lock:
            old_feeds = self._feeds
            self._feeds = new_feeds
            added = [url for url in new_feeds if url not in old_feeds]
            removed = [url for url in old_feeds if url not in new_feeds]
            changed = [
                url for url in new_feeds if url in old_feeds and new_feeds[url] != old_feeds[url]
            ]
            for url in removed:
                # Not polled again: neither the first round nor a digest waits for it.
                self._first_round.discard(url)
                self._early.discard(url)
                try:
                    self.scheduler.remove_job(_POLL + url)
                except JobLookupError:
                    pass  # in flight: it sees the feed gone and does not reschedule it
                log.info("%s: removed; no longer polled", old_feeds[url].name)
            for url in changed:
                feed = new_feeds[url]
                job = self.scheduler.get_job(_POLL + url)
                if job is None:
                    continue  # in flight: its next poll is scheduled with the new settings
                every = feed_interval(feed)
                if job.next_run_time > now + every:
                    self._add_poll(feed, first_poll_time(now, None, every, MIN_SPREAD, self.rng))
                else:
                    self.scheduler.modify_job(_POLL + url, name=f"poll {feed.name}")
            for url in added:
                log.info("%s: added", new_feeds[url].name)
            self._lock.notify_all()
        self._forget_storage_failures(removed)
        return added, removed, changed


# --- running it ---------------------------------------------------------------------------


#: Starts serving the web pages beside the daemon (`run --serve`): given the aggregator and
#: what says whether the scheduler runs, returns what stops the server.
StartServer = Callable[[Aggregator, Callable[[], str | None]], Callable[[], None]]


def run_daemon(config_path: Path, *, serve: StartServer | None = None) -> None:
    """Run until SIGTERM/SIGINT: poll each feed on its schedule, write the daily digest,
    reload feeds.toml on SIGHUP or when it changes; with `serve`, serve the web pages from
    this process too (its /healthz says whether the scheduler runs).

    Raises:
        ConfigError: the config cannot be used.
        DaemonRunningError: another `aggregator run` holds this database.
        StorageError: the database cannot be opened.
    """
    config = load_config(config_path)
    require_alert_secrets(config)
    lock = DatabaseLock(config.storage_path)
    lock.acquire()
    # Signals are taken by the main thread with sigtimedwait rather than by handlers (a
    # handler can run while the main thread holds a lock it needs). They are blocked before
    # any thread starts, so every thread inherits the mask and none is picked for delivery.
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
    try:
        agg = make_aggregator(config)
        daemon: Daemon | None = None
        try:
            daemon = Daemon(agg, report=lock.note_storage_error)
            daemon.start()
            stop_serving = serve(agg, daemon.problem) if serve is not None else None
            log.info(
                "running (pid %d): %s, daily digest at %s %s; "
                "SIGHUP or editing %s reloads, SIGTERM stops",
                os.getpid(),
                counted(len(config.feeds), "feed"),
                config.digest.time.strftime("%H:%M"),
                config.digest.timezone,
                config.path,
            )
            try:
                finished = _serve(daemon, config.path)
            finally:
                if stop_serving is not None:
                    stop_serving()
        except BaseException:
            if daemon is not None:
                # Started (its poller recorded, jobs queued): stopped, its stop recorded,
                # rather than left listed as running and its workers' queue run at exit.
                daemon.stop()
            agg.close()
            raise
        if not finished:
            # Threads still polling or placing would be joined at interpreter exit and
            # hold it up. Close the database under its lock (no transaction is left half
            # done; an abandoned write then fails and rolls back) and the feature workers
            # (their queues released: os._exit skips that) and leave without them.
            agg.close_now()
            log.info("stopped")
            logging.shutdown()
            sys.stderr.flush()
            os._exit(0)
        agg.close()
        log.info("stopped")
    finally:
        _drain_signals()
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
        lock.release()


def _serve(daemon: Daemon, config_path: Path) -> bool:
    """The main thread's loop: signals, the config file's mtime, the periodic reconcile.

    Returns what Daemon.stop returned.
    """
    seen = _file_signature(config_path)
    last_reconcile = _time.monotonic()
    while True:
        info = signal.sigtimedwait(_SIGNALS, CONFIG_CHECK)
        try:
            if info is not None and info.si_signo == signal.SIGHUP:
                log.info("SIGHUP: reloading %s", config_path)
                seen = _file_signature(config_path)
                daemon.reload()
            elif info is not None:
                log.info("%s: stopping", signal.Signals(info.si_signo).name)
                return daemon.stop()
            elif (current := _file_signature(config_path)) != seen:
                seen = current
                log.info("%s changed: reloading", config_path)
                daemon.reload()
            if _time.monotonic() - last_reconcile >= RECONCILE_EVERY:
                last_reconcile = _time.monotonic()
                daemon.reconcile()
        except AggregatorError as e:
            log.error("%s", e)  # e.g. the database busy for too long: try again next round


def _file_signature(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


def _drain_signals() -> None:
    """Take signals still pending, so unblocking them does not kill a process that stopped."""
    while signal.sigtimedwait(_SIGNALS, 0) is not None:
        pass
