"""Watches: after each poll pass, the stories it changed are matched against the watches,
the alerts due are recorded, then delivered on a few threads and retried with backoff.

Exactly once, as far as it can be (docs/watches.md): an alert is recorded 'due' before it
is sent, claimed ('sending', by this process) while it is, and marked sent after; a crash
leaves it due or claimed by a dead process, and the next process delivers it. The one
window left: killed after the receiver took it and before the row says so, it is sent
again (at least once).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_all
from dataclasses import replace
from datetime import datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, NamedTuple, Protocol

from aggregator.backoff import retry_time
from aggregator.config import Config, WatchConfig
from aggregator.exceptions import AggregatorError, AlertError, CorruptDatabaseError, StorageError
from aggregator.grammar import counted
from aggregator.parts import Part, Shared
from aggregator.storage import AlertRecord, DueAlert
from aggregator.types import AlertPayload, AlertSource, AlertStatus, AlertStory, Entry

if TYPE_CHECKING:
    from aggregator.dedup.watches import WatchMatcher

log = logging.getLogger("aggregator")

#: A 'sending' claim older than this, or of a process that is gone, was left by a crash.
ALERT_CLAIM_STALE = timedelta(minutes=15)
#: Seconds between tries to record a delivery's outcome that the database refused (locked
#: past its busy timeout): an alert sent and not recorded is sent again (docs/watches.md).
RECORD_RETRY_DELAYS = (1.0, 2.0, 4.0)
#: Alerts delivered at once: a slow receiver holds one thread, not the poll or the others.
DELIVERY_THREADS = 4
#: An alert's topic is read from this many of the story's earliest articles (the story's
#: subject; a story of hundreds of copies otherwise cost seconds: docs/watches.md).
TOPIC_ARTICLES = 10


class Deliver(Protocol):
    """One attempt to deliver an alert on a channel (aggregator.notify.deliver).

    Returns:
        A receipt to record (a message id, a status), or None.

    Raises:
        AlertError: not delivered; `retryable` says whether to try again later.
    """

    def __call__(
        self, channel: str, payload: AlertPayload, config: Config, *, env: Mapping[str, str]
    ) -> str | None: ...


class Evaluated(NamedTuple):
    """What evaluating the watches on a pass's stories did."""

    stories: int  # stories the pass changed
    matched: int  # (story, watch) pairs that match, carried widely enough or not
    recorded: list[int]  # ids of the alerts recorded as due


class Hit(NamedTuple):
    """A changed story that watches match (topics and feeds checked, not yet min_sources)."""

    entries: list[Entry]
    watches: list[WatchConfig]
    topic: str | None  # the story's topic, when a watch's topics needed it


class StoryMatch(NamedTuple):
    """A stored story that a watch matches now (`watches test`)."""

    story_id: int
    headline: str
    sources: int  # distinct feeds
    topic: str
    last_published: datetime


class Watcher(Part):
    """Evaluates the watches on the stories each pass changed and delivers their alerts."""

    def __init__(self, shared: Shared, deliver: Deliver, env: Mapping[str, str]) -> None:
        super().__init__(shared)
        self._deliver = deliver
        self._env = env
        self._evaluating = threading.Lock()  # one evaluation at a time (the daemon's threads)
        self._lock = threading.Lock()  # guards what follows
        self._pool: ThreadPoolExecutor | None = None
        self._in_flight: dict[int, Future[None]] = {}
        self._closed = False
        self._matcher: tuple[tuple[WatchConfig, ...], WatchMatcher] | None = None

    # --- evaluation ------------------------------------------------------------------------

    def evaluate(self) -> Evaluated:
        """Match the watches against the stories changed since the last evaluation (by any
        process) and record the alerts due, in one transaction with the mark of what was
        evaluated. Without watches only the mark moves (a watch added later alerts on what
        changes from then on, not on the history).

        Raises:
            StorageError: reading or recording failed (nothing was recorded).
        """
        with self._evaluating:
            story_ids, seq = self.storage.stories_changed()
            watches = self.config.watches
            if not story_ids:
                return Evaluated(0, 0, [])
            if not watches:
                self.storage.record_alerts([], now=self.clock(), seq=seq)
                return Evaluated(len(story_ids), 0, [])
            hits = self._matches(self.storage.entries_of_stories(story_ids), watches)
            due = self._due(hits)
            recorded = self.storage.record_alerts(due, now=self.clock(), seq=seq)
        if recorded:
            log.info("watches: %s due", counted(len(recorded), "alert"))
        return Evaluated(len(story_ids), sum(len(hit.watches) for hit in hits), recorded)

    def _matches(self, entries: Sequence[Entry], watches: Sequence[WatchConfig]) -> list[Hit]:
        """The stories among these entries that watches match."""
        from aggregator.dedup.watches import from_feeds

        matcher = self._matcher_for(tuple(watches))
        tags = {feed.name: feed.tags for feed in self.config.feeds}
        stories: dict[int, list[Entry]] = {}
        for entry in entries:
            if entry.story_id is not None:
                stories.setdefault(entry.story_id, []).append(entry)
        found = []
        for story in stories.values():
            matching = [watches[n] for n in matcher.matching(matcher.story_terms(story))]
            if not matching:
                continue
            names = {e.feed_name for e in story}
            feed_tags = {t for name in names for t in tags.get(name, ())}
            matching = [w for w in matching if from_feeds(w, names, feed_tags)]
            topic = None
            if any(w.topics for w in matching):
                topic = self._topic(story)
                matching = [w for w in matching if not w.topics or topic in w.topics]
            if matching:
                found.append(Hit(story, matching, topic))
        return found

    def _due(self, hits: list[Hit]) -> list[DueAlert]:
        """The alerts the matching stories are due on each channel (dedup.watches.alert_due)."""
        from aggregator.dedup.watches import alert_due, sources_of

        if not hits:
            return []
        alerted = self.storage.alerted(
            [hit.entries[0].story_id for hit in hits if hit.entries[0].story_id is not None]
        )
        due = []
        for story, watches, topic in hits:
            story_id = story[0].story_id
            assert story_id is not None
            sources = sources_of(story)
            body: str | None = None  # the story's JSON, made once per story if an alert is due
            for watch in watches:
                for channel in watch.notify:
                    decided = alert_due(
                        watch.min_sources,
                        watch.renotify_sources,
                        sources,
                        alerted.get((story_id, watch.name, channel)),
                    )
                    if decided is None:
                        continue
                    reason, level = decided
                    if body is None:
                        body = json.dumps(self.story_body(story, topic), ensure_ascii=False)
                    # json.dumps of the AlertPayload, its story part written once above.
                    payload = (
                        f'{{"watch": {json.dumps(watch.name, ensure_ascii=False)}, '
                        f'"reason": "{reason}", "story": {body}}}'
                    )
                    due.append(
                        DueAlert(story_id, watch.name, channel, reason, level, sources, payload)
                    )
        return due

    def _matcher_for(self, watches: tuple[WatchConfig, ...]) -> WatchMatcher:
        """The matcher of these watches, compiled once per configuration."""
        from aggregator.dedup.watches import WatchMatcher

        if self._matcher is None or self._matcher[0] != watches:
            self._matcher = (watches, WatchMatcher(watches))
        return self._matcher[1]

    def _topic(self, entries: Sequence[Entry]) -> str:
        """The configured topic the story is about, or "Other": dedup.topics.best_topic on
        the story alone, the titles and leads of its `TOPIC_ARTICLES` earliest articles
        (docs/watches.md: the digest weighs keywords by the other stories of its day, and
        reads all of their texts)."""
        from aggregator.dedup.group import group_stories
        from aggregator.dedup.topics import LEAD_CHARS, OTHER, best_topic

        if not self.config.topics:
            return OTHER
        earliest = dict.fromkeys(
            e.article_id for e in sorted(entries, key=lambda e: (e.published, e.id))
        )
        first = set(list(earliest)[:TOPIC_ARTICLES])
        leads = [
            replace(e, text=e.text[:LEAD_CHARS], summary=e.summary[:LEAD_CHARS])
            for e in entries
            if e.article_id in first
        ]
        (story,) = group_stories(leads)
        return best_topic(story, self.config.topics)

    def story_body(self, entries: Sequence[Entry], topic: str | None = None) -> AlertStory:
        """The story part of an alert (the webhook `json` contract, types.AlertStory) for
        the story whose entries these are; `topic`, when known already. Its headline is
        made as a digest's (dedup.group.make_story: its lead article's title), of all its
        articles rather than a window's; its sources are its entries, oldest first."""
        from aggregator.dedup.group import article_copies, make_article, make_story

        articles = [make_article(copies) for copies in article_copies(entries)]
        story = make_story(articles, entries[0].story_id)
        ordered = sorted(entries, key=lambda e: (e.published, e.id))
        return AlertStory(
            id=str(story.id),
            headline=story.headline,
            topic=topic if topic is not None else self._topic(entries),
            first_seen=min(e.first_seen for e in entries).isoformat(),
            sources=[
                AlertSource(
                    feed=e.feed_name, title=e.title, link=e.link, published=e.published.isoformat()
                )
                for e in ordered
            ],
            link=story.articles[0].link,
        )

    def test(self, watch: WatchConfig, since: datetime, until: datetime) -> list[StoryMatch]:
        """The stored stories with an entry published in [since, until) that `watch` matches
        now, carried widely enough or not: nothing is recorded or sent."""
        from aggregator.dedup.group import group_stories
        from aggregator.dedup.watches import sources_of

        in_window = self.storage.entries_between(since, until)
        story_ids = sorted({e.story_id for e in in_window if e.story_id is not None})
        entries = self.storage.entries_of_stories(story_ids)
        found = []
        for story, _, topic in self._matches(entries, [watch]):
            (grouped,) = group_stories(story)
            found.append(
                StoryMatch(
                    story_id=grouped.id or 0,
                    headline=grouped.headline,
                    sources=sources_of(story),
                    topic=topic if topic is not None else self._topic(story),
                    last_published=max(e.published for e in story),
                )
            )
        return sorted(found, key=lambda m: (m.last_published, m.story_id), reverse=True)

    # --- delivery --------------------------------------------------------------------------

    def deliver_due(self) -> int:
        """Start delivering every alert due (new, retries whose time has come, claims left
        by a dead process) on the delivery threads; returns at once.

        Returns:
            How many deliveries were started.

        Raises:
            StorageError: the alerts could not be read.
        """
        started = 0
        for alert in self.storage.alerts_due(self.clock()):
            if alert.status == AlertStatus.SENDING and not self._abandoned(alert):
                continue
            with self._lock:
                if self._closed or alert.id in self._in_flight:
                    continue
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(DELIVERY_THREADS, "alert")
                future = self._pool.submit(self._attempt, alert)
                self._in_flight[alert.id] = future
            future.add_done_callback(partial(self._finished, alert.id))
            started += 1
        return started

    def _finished(self, alert_id: int, _future: Future[None]) -> None:
        with self._lock:
            self._in_flight.pop(alert_id, None)

    def _abandoned(self, alert: AlertRecord) -> bool:
        """Whether a 'sending' claim was left by a process that is gone (or is stale)."""
        if alert.last_attempt is not None and self.clock() - alert.last_attempt >= (
            ALERT_CLAIM_STALE
        ):
            return True
        return alert.claimed_by is not None and not _alive(alert.claimed_by)

    def _attempt(self, alert: AlertRecord) -> None:
        """Claim, deliver once and record the outcome; never raises (it runs on a thread)."""
        try:
            owner = os.getpid()
            dead = [alert.claimed_by] if alert.claimed_by and self._abandoned(alert) else []
            previous = self.storage.claim_alert(
                alert.id,
                now=self.clock(),
                owner=owner,
                stale_after=ALERT_CLAIM_STALE,
                dead=dead,
            )
            if previous is None:
                return  # sent meanwhile, or another process holds it
            error, retryable, receipt = None, False, None
            try:
                receipt = self._deliver(
                    alert.channel, json.loads(alert.payload), self.config, env=self._env
                )
            except AlertError as e:
                error, retryable = str(e), e.retryable
            except Exception as e:  # a channel's bug must not lose the alert: retried
                log.exception("alert %d on %s failed unexpectedly", alert.id, alert.channel)
                error, retryable = f"{type(e).__name__}: {e}", True
            now = self.clock()
            retry_at = retry_time(previous + 1, now) if error and retryable else None
            self._record_attempt(
                alert.id,
                now=now,
                ok=error is None,
                error=error,
                receipt=receipt,
                next_attempt=retry_at,
            )
            if error is None:
                log.info(
                    "alert sent: %s on %s (story %d)", alert.watch, alert.channel, alert.story_id
                )
            else:
                when = f"; retry after {retry_at:%Y-%m-%d %H:%M} UTC" if retry_at else " (for good)"
                log.warning(
                    "alert not sent: %s on %s (story %d): %s%s",
                    alert.watch,
                    alert.channel,
                    alert.story_id,
                    error,
                    when,
                )
        except StorageError as e:
            log.error("alert %d: %s", alert.id, e)
        except Exception:
            log.exception("alert %d: delivery failed unexpectedly", alert.id)

    def _record_attempt(
        self,
        alert_id: int,
        *,
        now: datetime,
        ok: bool,
        error: str | None,
        receipt: str | None,
        next_attempt: datetime | None,
    ) -> None:
        """Record a delivery's outcome, trying again a few times when the database refuses
        (another process holding it locked): the alert is claimed by this live process, so
        unrecorded it would be sent again only once its claim is stale, a duplicate.

        Raises:
            StorageError: still refused after `RECORD_RETRY_DELAYS` (or damage, at once).
        """
        for delay in (*RECORD_RETRY_DELAYS, None):
            try:
                self.storage.record_alert_attempt(
                    alert_id,
                    now=now,
                    ok=ok,
                    error=error,
                    receipt=receipt,
                    next_attempt=next_attempt,
                )
                return
            except StorageError as e:
                if delay is None or isinstance(e, CorruptDatabaseError):
                    raise
                log.warning("alert %d: recording it failed (%s); trying again", alert_id, e)
                time.sleep(delay)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the deliveries in flight (each bounded by its channel's timeout).

        Returns:
            Whether all finished in time.
        """
        with self._lock:
            futures = list(self._in_flight.values())
        if not futures:
            return True
        _done, pending = wait_all(futures, timeout=timeout)
        return not pending

    def after_pass(self) -> None:
        """What a poll pass ends with: evaluate, then start delivering. A storage failure is
        logged (the next pass evaluates what this one could not), never raised, but damage."""
        try:
            self.evaluate()
            self.deliver_due()
        except StorageError as e:
            if isinstance(e, CorruptDatabaseError):
                raise
            log.warning("watches: could not evaluate or deliver alerts: %s", e)
        except AggregatorError as e:
            log.error("watches: %s", e)

    def alerts(self, since: datetime | None = None, *, limit: int = 1000) -> list[AlertRecord]:
        """The alerts recorded since `since` (None: all), newest first."""
        return self.storage.alerts_since(since, limit=limit)

    def sent_by_watch(self) -> dict[str, int]:
        """How many alerts each watch has had sent."""
        return self.storage.alerts_sent()

    def close(self) -> None:
        """Stop taking deliveries; those not started stay due (the next process sends them),
        those in flight finish (each bounded by its channel's timeout)."""
        with self._lock:
            self._closed = True
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


def _alive(pid: int) -> bool:
    """Whether a process with this id runs (on this machine, where the database is)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    except OSError:
        return True
    return True
