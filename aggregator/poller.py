"""Polls feeds: fetches (or reads) them, parses them, stores the entries and when to poll
each next, and returns what was stored."""

from __future__ import annotations

import hashlib
import logging
import os
import random
import socket
import threading
import time as _time
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, NamedTuple, Protocol
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from aggregator.exceptions import (
    AggregatorError,
    FeedGoneError,
    FetchError,
    ParseError,
    StorageError,
)
from aggregator.liveness import KEPT
from aggregator.parts import Part, Shared
from aggregator.polling import (
    CacheHints,
    Decision,
    Schedule,
    decide,
    due_for_manual_poll,
    fixed_interval,
    lease_retry_time,
    parse_expires,
    parse_max_age,
    parse_retry_after,
    parse_ttl,
)
from aggregator.storage import FeedState, FeedUpdate, PollerRecord
from aggregator.types import Feed, ParsedFeed, PollOutcome, PollResult, PollStatus, SourceKind

# httpx and the parsers are imported where they are used: a poll of local files only
# starts no fetcher.
if TYPE_CHECKING:
    from aggregator.sources.http import Fetcher, Request, Response

log = logging.getLogger("aggregator")

#: How many feeds' `Poller.stored_after` delays are kept.
STORED_AFTER_KEPT = 100_000

#: New entries a feed's first poll is expected to bring (its backlog: typically 10-50).
FIRST_POLL_ENTRIES = 20


class Polled(NamedTuple):
    """One feed's poll: its result, and the entries it stored (for the placer)."""

    result: PollResult
    new_ids: Sequence[int] = ()
    updated_ids: Sequence[int] = ()


class Source(Protocol):
    """Where a feed's entries come from; `source_for` chooses it, once per feed."""

    def request(self, state: FeedState | None) -> Request | None:
        """What to fetch, with the stored validators; None: read, not fetched."""
        ...

    def read(self) -> ParsedFeed:
        """Fetch (or read) and parse the feed's current entries, storing nothing."""
        ...

    def check(self) -> tuple[ParsedFeed, str | None]:
        """As `read`, and the 301/308 target of its URL (None if it did not move)."""
        ...


class FileSource:
    """A local file or folder (sources/files.py), read whole at each poll; no file larger
    than `max_bytes` ([poll] max_body, as a body over HTTP)."""

    def __init__(self, feed: Feed, max_bytes: int) -> None:
        self.feed = feed
        self.max_bytes = max_bytes

    def request(self, state: FeedState | None) -> None:
        return None  # nothing to ask a server

    def read(self) -> ParsedFeed:
        from aggregator.sources.files import read_source

        feed = self.feed
        tz = ZoneInfo(feed.timezone) if feed.timezone else None
        if feed.path is None:  # e.g. ftp://: only http(s) URLs are fetched
            raise FetchError(feed.url, "not an http(s) URL or a local path")
        return read_source(
            feed.path, default_tz=tz, default_language=feed.language, max_bytes=self.max_bytes
        )

    def check(self) -> tuple[ParsedFeed, str | None]:
        return self.read(), None


class HttpSource:
    """An http(s) URL, fetched on the shared fetcher (conditional GET, redirects)."""

    def __init__(self, feed: Feed, fetcher: Callable[[], Fetcher]) -> None:
        self.feed = feed
        self._fetcher = fetcher  # the Poller's, started on first use

    def request(self, state: FeedState | None) -> Request:
        from aggregator.sources.http import Request

        feed = self.feed
        if state is None:
            return Request(feed.url)
        # A feed that moved for good (301/308) is fetched at its new address.
        return Request(state.redirected_url or feed.url, state.etag, state.last_modified)

    def read(self) -> ParsedFeed:
        return self.check()[0]

    def check(self) -> tuple[ParsedFeed, str | None]:
        response = self._fetcher().get(self.feed.url)
        return parse_response(self.feed, response), response.permanent_url


def parse_response(feed: Feed, response: Response) -> ParsedFeed:
    """Parse a fetched feed body with the feed's default timezone and language.

    Raises:
        ParseError: it is not a feed (HtmlPageError: a web page, with the feeds it links to).
    """
    from aggregator.sources.parse import parse_feed

    return parse_feed(
        response.body,
        response.url,
        content_type=response.content_type,
        default_tz=ZoneInfo(feed.timezone) if feed.timezone else None,
        default_language=feed.language,
    )


class Poller(Part):
    """Polls feeds into storage, each on its own schedule (polling.py decides when)."""

    def __init__(
        self,
        shared: Shared,
        connect: Callable[[], Fetcher],
        rand: Callable[[], float] = random.random,
    ) -> None:
        super().__init__(shared)
        self._connect = connect  # makes the fetcher, on first use (see `fetcher`)
        self._fetcher: Fetcher | None = None
        self._fetcher_lock = threading.Lock()
        self._closed = False
        self.rand = rand
        self.schedule = Schedule.from_config(shared.config.poll)
        self.host = socket.gethostname()
        self.pid = os.getpid()
        #: Who holds the feeds this process leases on a shared store (`lease_feeds`).
        self.owner = f"{self.host}:{self.pid}:{uuid.uuid4().hex[:8]}"
        #: For each feed the last `poll` fetched and stored (200, entries written), seconds
        #: from the last byte of its answer to its entries committed: the wait for this
        #: thread (parsing and storing the feeds before it) and its own parse and store.
        #: (A daemon's polls, one feed at a time, add none.)
        self.stored_after: deque[float] = deque(maxlen=STORED_AFTER_KEPT)
        self._passing = False  # within `poll`

    def announce(
        self,
        started: datetime,
        every: timedelta,
        *,
        stopped: bool = False,
        storage_error: str | None = None,
        failing_since: datetime | None = None,
    ) -> None:
        """Record this poller in the store as seen now, running since `started` with a
        heartbeat `every`, or with `stopped` as stopped now (`status` on every host sharing
        the store lists it); the pollers gone for `liveness.KEPT` are forgotten meanwhile.

        Raises:
            StorageError: it could not be written.
        """
        now = self.clock()
        record = PollerRecord(
            self.owner,
            self.host,
            self.pid,
            started,
            now,
            now if stopped else None,
            every,
            storage_error,
            failing_since,
        )
        self.storage.record_poller(record, forget_before=now - KEPT)

    def end_others(self) -> int:
        """On a store one poller uses at a time (SQLite: the daemon holds its lock), record
        the other pollers not marked stopped as stopped at their last heartbeat: they died
        (kill -9, a crash) before this one started, and would be listed SILENT for
        `liveness.KEPT`. Returns how many.

        Raises:
            StorageError: they could not be read or written.
        """
        if self.storage.shared:
            return 0
        now = self.clock()
        ended = 0
        for state in self.storage.pollers(now):
            other = state.poller
            if other.owner != self.owner and other.stopped is None:
                self.storage.record_poller(
                    other._replace(stopped=other.seen), forget_before=now - KEPT
                )
                ended += 1
        return ended

    def close(self) -> None:
        with self._fetcher_lock:
            self._closed = True
            fetcher = self._fetcher
        if fetcher is not None:
            fetcher.close()

    @property
    def fetcher(self) -> Fetcher:
        """The HTTP fetcher, started on first use.

        Raises:
            RuntimeError: the aggregator is closed (as a closed fetcher does).
        """
        with self._fetcher_lock:
            if self._fetcher is None:
                if self._closed:
                    raise RuntimeError("the fetcher is closed")
                self._fetcher = self._connect()
            return self._fetcher

    def source_for(self, feed: Feed) -> Source:
        """The feed's source: the one place a local file and an http(s) URL part ways."""
        if feed.kind is SourceKind.FILE:
            return FileSource(feed, self.config.poll.max_body)
        return HttpSource(feed, lambda: self.fetcher)

    def read(self, feed: Feed) -> ParsedFeed:
        """Fetch and parse one feed's current entries, storing nothing.

        Raises:
            FetchError, ParseError: the source could not be read (an HTML page raises
                HtmlPageError, which names the feeds the page links to).
        """
        return self.source_for(feed).read()

    def check(self, feed: Feed) -> tuple[ParsedFeed, str | None]:
        """Fetch and parse a feed as `read` does; also say where it moved for good, if it did.

        Returns:
            The parsed feed, and the 301/308 target of its URL (None if it did not move).

        Raises:
            FetchError, ParseError: as `read`.
        """
        return self.source_for(feed).check()

    def poll_feed(
        self, feed: Feed, *, force: bool = False, catch_up: datetime | None = None
    ) -> Polled:
        """Poll one feed now and store the outcome; a failure is recorded, never raised.

        Synchronous and thread-safe: the daemon calls it from its worker threads, while
        the fetch itself runs on the shared fetcher (same connection pool and limits as
        `poll`). The result's `next_poll` (also stored) says when the feed wants polling
        again (None: disabled until `enable`), taking in its fixed or adaptive interval,
        backoff after failures, Retry-After, ttl and cache headers, jitter included.

        A disabled feed, or one whose server asked us to wait (Retry-After not yet
        passed), is not fetched (status "skipped") unless `force`. In a shared store a feed
        another poller holds is not fetched, nor (unless `force`) one not due, but with
        `catch_up` (a poll pulled forward for a daily digest) one last attempted before
        then: the first poller to lease it polls it (`Storage.lease_feeds`).

        Raises:
            StorageError: the outcome could not be written.
        """
        state = self.storage.feed_state(feed.url)
        skipped = self._skip(feed, state, force)
        if skipped is not None:
            return Polled(skipped)
        if self.storage.shared:
            refused = self._lease(
                [(feed, state)], due_only=not force, per_host=True, polled_before=catch_up
            )
            if refused:
                return Polled(refused[0])
        started = _time.monotonic()
        request = self.source_for(feed).request(state)
        if request is None:  # read, not fetched
            return self._poll_file(feed, state, started)
        outcome: Response | AggregatorError
        try:
            outcome = self.fetcher.fetch(request)
        except FetchError as e:
            outcome = e
        except RuntimeError as e:  # the fetcher was closed under us: shutting down
            outcome = FetchError(request.url, f"cancelled: {e}")
        return self._finish(feed, state, outcome, started)

    def poll(
        self,
        *,
        force: bool = False,
        only: Sequence[Feed] | None = None,
        expect: Callable[[int], None] | None = None,
    ) -> Iterator[Polled]:
        """Poll every configured feed (or those in `only`) now, concurrently.

        Their regular schedule does not matter here. `expect` is told, before any feed is
        read, how many new entries the pass may bring: a feed's first poll brings its
        backlog (`FIRST_POLL_ENTRIES`), a later one little.

        Disabled feeds and those whose server asked us to wait are skipped unless
        `force`. HTTP feeds are fetched concurrently within the [poll] limits; each is
        parsed and stored as soon as it arrives, and yielded.

        Yields:
            One per configured feed, in the order they finished.

        Raises:
            StorageError: an outcome could not be written.
        """
        self.stored_after.clear()
        self._passing = True
        states = {s.url: s for s in self.storage.feed_states()}  # one query, not one a feed
        polled: list[tuple[Feed, FeedState | None]] = []
        for feed in self.config.feeds if only is None else only:
            state = states.get(feed.url)
            skipped = self._skip(feed, state, force)
            if skipped is not None:
                yield Polled(skipped)
            else:
                polled.append((feed, state))
        if self.storage.shared and polled:
            # A manual poll polls now, whatever the schedule, but not a feed another poller
            # holds; its fetcher keeps its own feeds to per_host.
            refused = self._lease(polled, due_only=False, per_host=False)
            for result in refused:
                yield Polled(result)
            taken = {r.feed_url for r in refused}
            polled = [(feed, state) for feed, state in polled if feed.url not in taken]
        try:
            yield from self._poll_leased(polled, expect)
        except BaseException:
            # Stopped before recording them all (a write refused, the server gone, Ctrl-C):
            # the leases left would keep every poller, the next `poll` too, off these feeds
            # until they end, for a pass that is over.
            if self.storage.shared and polled:
                self._give_back([feed.url for feed, _ in polled])
            raise
        finally:
            self._passing = False

    def _give_back(self, urls: list[str]) -> None:
        try:
            self.storage.release_leases(urls, owner=self.owner)
        except StorageError as e:
            log.warning("leases not given back (they end on their own): %s", e)

    def _poll_leased(
        self,
        polled: list[tuple[Feed, FeedState | None]],
        expect: Callable[[int], None] | None,
    ) -> Iterator[Polled]:
        """`poll`'s fetches and records of the feeds it may poll (leased when shared)."""
        # By identity: two feeds may fetch one URL (one moved to where another already is).
        pending: dict[int, tuple[Feed, FeedState | None, float]] = {}
        requests: list[Request] = []
        local: list[tuple[Feed, FeedState | None]] = []
        if expect is not None:
            first = sum(state is None or state.last_success is None for _, state in polled)
            expect(first * FIRST_POLL_ENTRIES)
        for feed, state in polled:
            if (request := self.source_for(feed).request(state)) is None:  # read, not fetched
                local.append((feed, state))
            else:
                pending[id(request)] = (feed, state, _time.monotonic())
                requests.append(request)
        # Only local sources: no fetcher (nor httpx) is started.
        arriving = self.fetcher.fetch_many(requests) if requests else iter(())
        for feed, state in local:  # read while the fetches are under way
            yield self._poll_file(feed, state, _time.monotonic())
        # The leases were taken for all at once, but the fetches wait their turn (concurrency,
        # per_host): they are renewed while some wait, so that none ends before its fetch.
        # A fetch ends within `deadline` of its start, so another ends at least that often.
        poll = self.config.poll
        renew_every = (poll.lease.total_seconds() - poll.deadline) / 2
        leased_at = _time.monotonic()
        waiting = {id(request) for request in requests}
        for request, outcome in arriving:
            feed, state, started = pending[id(request)]
            waiting.discard(id(request))
            yield self._finish(feed, state, outcome, started)
            if self.storage.shared and waiting and _time.monotonic() - leased_at >= renew_every:
                self._lease([pending[i][:2] for i in waiting], due_only=False, per_host=False)
                leased_at = _time.monotonic()

    def _lease(
        self,
        feeds: Sequence[tuple[Feed, FeedState | None]],
        *,
        due_only: bool,
        per_host: bool,
        polled_before: datetime | None = None,
    ) -> list[PollResult]:
        """Lease these feeds for this poller (a shared store: docs/postgres.md, Several
        pollers); those refused, as skipped polls whose `next_poll` says when to ask again.

        Raises:
            StorageError: the leases could not be written.
        """
        now = self.clock()
        poll = self.config.poll
        hosts = {
            feed.url: None
            if feed.kind is SourceKind.FILE
            else (urlsplit((state and state.redirected_url) or feed.url).hostname or "").lower()
            for feed, state in feeds
        }
        leases = self.storage.lease_feeds(
            hosts,
            owner=self.owner,
            now=now,
            until=now + poll.lease,
            due_only=due_only,
            per_host=poll.per_host if per_host else None,
            polled_before=polled_before,
        )
        results = []
        for feed, state in feeds:
            if feed.url not in leases.refused:
                continue
            until = leases.refused[feed.url]
            reason = (
                "its host has per_host feeds in flight, or another poller is taking it"
                if until is None
                else "another poller polled it, or holds it"
            )
            log.debug("%s: skipped (%s)", feed.name, reason)
            results.append(
                PollResult(
                    feed.url,
                    feed.name,
                    PollStatus.SKIPPED,
                    0,
                    0,
                    reason,
                    0.0,
                    next_poll=lease_retry_time(now, until, self.rand()),
                    retry_after=state.retry_after if state is not None else None,
                )
            )
        return results

    def _skip(self, feed: Feed, state: FeedState | None, force: bool) -> PollResult | None:
        if state is None:
            # Every configured feed got its row when this config was read (sync_feeds): a
            # row gone since was renamed by `feeds update-urls`, entries and all, and the
            # config here predates it (a daemon reloads within 2 s). Polling the old URL
            # would make its row again and store every entry a second time under it.
            reason = (
                "no longer stored under this URL (moved by `aggregator feeds update-urls`): "
                "skipped until feeds.toml is read again"
            )
            log.warning("%s: %s", feed.name, reason)
            return PollResult(feed.url, feed.name, PollStatus.SKIPPED, 0, 0, reason, 0.0)
        due = due_for_manual_poll(
            now=self.clock(),
            disabled_reason=state.disabled_reason,
            retry_after=state.retry_after,
            force=force,
        )
        if due.due:
            return None
        log.info("%s: skipped (%s)", feed.name, due.reason)
        return PollResult(
            feed.url,
            feed.name,
            PollStatus.SKIPPED,
            0,
            0,
            due.reason,
            0.0,
            next_poll=state.next_poll,
            retry_after=state.retry_after,
            disabled_reason=state.disabled_reason,
        )

    def _poll_file(self, feed: Feed, state: FeedState | None, started: float) -> Polled:
        try:
            parsed = self.read(feed)
        except AggregatorError as e:
            return Polled(self._failed(feed, state, e, started))
        except Exception as e:  # a parser's surprise must not end everyone's poll
            return Polled(self._failed(feed, state, self._unexpected(feed, e), started))
        return self._store(feed, state, parsed, started, update=None, hints=CacheHints())

    def _finish(
        self,
        feed: Feed,
        state: FeedState | None,
        outcome: Response | AggregatorError,
        started: float,
    ) -> Polled:
        # A feed's time is its own fetch (not its wait for a slot behind other feeds of its
        # host, nor for this thread to store the feeds before it), then its parse and store.
        fetched = None
        if isinstance(outcome, FetchError):
            fetched = outcome.seconds
        elif not isinstance(outcome, AggregatorError):
            fetched = outcome.seconds
        if fetched is not None:
            started = _time.monotonic() - fetched
        if isinstance(outcome, AggregatorError):
            return Polled(self._failed(feed, state, outcome, started))
        now = self.clock()
        hints = CacheHints(
            max_age=parse_max_age(outcome.cache_control),
            expires=parse_expires(outcome.expires, now),
        )
        body_hash = None
        if not outcome.not_modified:
            # The settings that change how the bytes are read are part of "the same bytes":
            # after an edit of the feed's timezone or language, it is parsed again.
            fingerprint = hashlib.sha256(outcome.body)
            fingerprint.update(f"\0{feed.timezone}\0{feed.language}".encode())
            body_hash = fingerprint.hexdigest()
        update = FeedUpdate(
            http_status=outcome.status,
            etag=outcome.etag,
            last_modified=outcome.last_modified,
            content_hash=body_hash,
            redirected_url=outcome.permanent_url,
            lease_owner=self.owner,
        )
        if outcome.not_modified or (state is not None and state.content_hash == body_hash):
            # Nothing new: no parse, no entry written, only the poll record.
            decision = self._decide(PollOutcome.NOT_MODIFIED, feed, now, 0, hints)
            update = update._replace(next_poll=decision.next_poll)
            seconds = _time.monotonic() - started
            self.storage.record_not_modified(feed, now=now, seconds=seconds, update=update)
            log.info(
                "%s: not modified (%s), %.2fs%s",
                feed.name,
                "304" if outcome.not_modified else "same bytes",
                seconds,
                self._moved(feed, outcome),
            )
            not_modified = PollResult(
                feed.url,
                feed.name,
                PollStatus.NOT_MODIFIED,
                0,
                0,
                None,
                seconds,
                http_status=outcome.status,
                next_poll=decision.next_poll,
                retry_after=decision.retry_after,
            )
            return Polled(not_modified)
        try:
            parsed = parse_response(feed, outcome)
        except AggregatorError as e:
            return Polled(self._failed(feed, state, e, started, http_status=outcome.status))
        except Exception as e:  # a parser's surprise must not end everyone's poll
            error = self._unexpected(feed, e)
            return Polled(self._failed(feed, state, error, started, http_status=outcome.status))
        result = self._store(feed, state, parsed, started, update=update, hints=hints)
        if outcome.received and self._passing:
            self.stored_after.append(_time.monotonic() - outcome.received)
        if outcome.permanent_url:
            log.info("%s%s", feed.name, self._moved(feed, outcome))
        return result

    @staticmethod
    def _unexpected(feed: Feed, error: Exception) -> ParseError:
        log.error("%s: unexpected error while parsing", feed.name, exc_info=error)
        return ParseError(
            feed.url, f"unexpected error while parsing: {type(error).__name__}: {error}"
        )

    def _moved(self, feed: Feed, response: Response) -> str:
        if not response.permanent_url:
            return ""
        other = next((f for f in self.config.feeds if f.url == response.permanent_url), None)
        if other is not None:  # (`update-urls` leaves such a feed alone)
            return (
                f"; moved permanently to {response.permanent_url}, which the feed "
                f"{other.name!r} has: remove one of them (`aggregator feeds remove`)"
            )
        return (
            f"; moved permanently to {response.permanent_url} (see `aggregator feeds update-urls`)"
        )

    def _store(
        self,
        feed: Feed,
        state: FeedState | None,
        parsed: ParsedFeed,
        started: float,
        *,
        update: FeedUpdate | None,
        hints: CacheHints,
    ) -> Polled:
        from aggregator.sources.entries import undated_if_future

        now = self.clock()
        entries, future = undated_if_future(parsed.entries, now)
        warning = "; ".join([*parsed.warnings, *([future] if future else [])]) or None
        # The interval is decided from the entries including this poll's.
        recent = None
        if fixed_interval(feed, self.schedule) is None:  # adaptive: from the entries' dates
            published = [e.published for e in entries if e.published is not None]
            recent = sorted(published + self.storage.recent_published(feed.url), reverse=True)
        decision = self._decide(
            PollOutcome.OK, feed, now, 0, hints._replace(ttl=parse_ttl(parsed.ttl_minutes)), recent
        )
        update = (update or FeedUpdate())._replace(
            next_poll=decision.next_poll, lease_owner=self.owner
        )
        seconds = _time.monotonic() - started
        saved = self.storage.save_poll(
            feed,
            entries,
            now=now,
            seconds=seconds,
            title=parsed.title,
            error=warning,
            update=update,
            # First seen when the write lock is held, not when the feed was read: a daily
            # digest made meanwhile either saw them or took its time before them
            # (`Storage.write_barrier`).
            seen=self.clock,
        )
        if warning:
            log.warning("%s: %s", feed.name, warning)
        log.info("%s: ok, %d new, %d updated (%.2fs)", feed.name, saved.new, saved.updated, seconds)
        result = PollResult(
            feed.url,
            feed.name,
            PollStatus.OK,
            saved.new,
            saved.updated,
            warning,
            seconds,
            http_status=update.http_status,
            next_poll=decision.next_poll,
            retry_after=decision.retry_after,
        )
        return Polled(result, saved.new_ids, saved.updated_ids)

    def _failed(
        self,
        feed: Feed,
        state: FeedState | None,
        error: AggregatorError,
        started: float,
        *,
        http_status: int | None = None,
    ) -> PollResult:
        now = self.clock()
        failures = (state.consecutive_failures if state else 0) + 1
        message = getattr(error, "message", None) or str(error)
        retry_after = None
        kind = PollOutcome.ERROR
        if isinstance(error, FetchError):
            http_status = error.status
            if isinstance(error, FeedGoneError):
                kind = PollOutcome.GONE
            elif error.status in (429, 503):
                kind = PollOutcome.THROTTLED
                retry_after = parse_retry_after(error.retry_after, now)
        decision = self._decide(kind, feed, now, failures, CacheHints(retry_after=retry_after))
        update = FeedUpdate(
            http_status=http_status,
            next_poll=decision.next_poll,
            retry_after=decision.retry_after,
            disabled_reason=message if decision.disabled else None,
            lease_owner=self.owner,
        )
        status = PollStatus.GONE if decision.disabled else PollStatus.ERROR
        seconds = _time.monotonic() - started
        self.storage.record_failure(feed, message, now=now, seconds=seconds, update=update)
        when = (
            f"next poll {decision.next_poll.isoformat(timespec='seconds')}"
            if decision.next_poll
            else "disabled until `aggregator feeds enable`"
        )
        log.warning(
            "%s: %s: %s (%.2fs, failure %d; %s)",
            feed.name,
            status,
            message,
            seconds,
            failures,
            when,
        )
        return PollResult(
            feed.url,
            feed.name,
            status,
            0,
            0,
            message,
            seconds,
            http_status=http_status,
            next_poll=decision.next_poll,
            retry_after=decision.retry_after,
            disabled_reason=update.disabled_reason,
        )

    def _decide(
        self,
        outcome: PollOutcome,
        feed: Feed,
        now: datetime,
        failures: int,
        hints: CacheHints,
        recent: list[datetime] | None = None,
    ) -> Decision:
        fixed = fixed_interval(feed, self.schedule)
        if fixed is not None:
            recent = []  # a fixed interval needs no history: spare the query
        return decide(
            outcome,
            now=now,
            failures=failures,
            fixed_interval=fixed,
            recent=recent if recent is not None else self.storage.recent_published(feed.url),
            hints=hints,
            schedule=self.schedule,
            rand=self.rand(),
        )
