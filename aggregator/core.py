"""The Aggregator facade, and make_aggregator: the one place where the parts are wired."""

from __future__ import annotations

import logging
import os
import random
import time as _time
from collections.abc import Callable, Collection, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from aggregator import clock as _clock
from aggregator.browse import (
    Browse,
    SearchPage,
    Unreadable,
    choices,
    filter_digest,
)
from aggregator.config import Config, EmailConfig, WatchConfig
from aggregator.exceptions import ConfigError, DaemonRunningError, StorageError
from aggregator.feedadmin import FeedAdmin
from aggregator.feedadmin import export_opml as export_opml
from aggregator.feedadmin import import_opml as import_opml
from aggregator.mailer import EmailResult, Mailer
from aggregator.parallel import FeaturePool, default_workers
from aggregator.parts import Part, Shared
from aggregator.placer import Placer
from aggregator.placing import PlacingProcess
from aggregator.poller import Poller
from aggregator.polling import Schedule
from aggregator.publisher import Published, Publisher
from aggregator.publisher import Window as Window  # re-exported for the CLI and scheduler
from aggregator.storage import POLL_SECONDS_BUCKETS as POLL_SECONDS_BUCKETS  # for /metrics
from aggregator.storage import AlertRecord as AlertRecord  # re-exported for the CLI
from aggregator.storage import EmailDelivery as EmailDelivery  # re-exported for the CLI
from aggregator.storage import FeedState, Storage, open_storage
from aggregator.storage import PollerState as PollerState  # re-exported for the CLI
from aggregator.storage import Tallies as Tallies  # re-exported for /metrics
from aggregator.storage.lock import DaemonReport
from aggregator.types import (
    AlertPayload,
    Choices,
    Digest,
    Feed,
    Format,
    ParsedFeed,
    PollResult,
    PollStatus,
    StoryPage,
)
from aggregator.types import FeedStatus as FeedStatus  # re-exported for the CLI
from aggregator.types import Filters as Filters  # re-exported for the web pages
from aggregator.watcher import Deliver, Watcher
from aggregator.watcher import StoryMatch as StoryMatch  # re-exported for the CLI

# Fetching, parsing, deduplication and digests are imported where they are used (in the
# parts): a command that only reads the database (`status`, `feeds list`) starts without
# httpx, numpy or Jinja2, and a poll where every feed answers 304 without dedup and digest.
if TYPE_CHECKING:
    from aggregator.sources.http import Fetcher, Resolver, Transport

log = logging.getLogger("aggregator")


class Aggregator(Part):
    """Polls the configured sources into storage and makes digests from it."""

    def __init__(
        self,
        shared: Shared,
        poller: Poller,
        placer: Placer,
        publisher: Publisher,
        mailer: Mailer,
        admin: FeedAdmin,
        watcher: Watcher,
        browse: Browse,
    ) -> None:
        super().__init__(shared)
        self._poller = poller
        self.placer = placer
        self._publisher = publisher
        self._mailer = mailer
        self._admin = admin
        self._watcher = watcher
        self._browse = browse

    def sync_feeds(self) -> None:
        """Record the configured feeds in storage (a row each, for `status` and the digest's
        new feeds); what `make_aggregator` does unless read-only.

        Raises:
            StorageError: they could not be recorded.
        """
        self._admin.sync_feeds()

    @property
    def fetcher(self) -> Fetcher:
        """The HTTP fetcher, started on first use (bench/poll.py starts it before timing).

        Raises:
            RuntimeError: the aggregator is closed.
        """
        return self._poller.fetcher

    @property
    def stored_after(self) -> list[float]:
        """Seconds from each answer's last byte to its entries stored, in the last `poll`
        (see Poller.stored_after; bench/poll.py prints them)."""
        return list(self._poller.stored_after)

    @property
    def stage_seconds(self) -> dict[str, float]:
        """CPU seconds of grouping, by stage (bench/cluster_scale.py): this process's and its
        placing process's."""
        return self.placer.stage_seconds

    def group_stored(self) -> None:
        """Place what polls stored (new and edited entries) in articles and stories."""
        self.placer.group_stored()

    def assign(self, ids: Sequence[int]) -> int:
        """Place these entries, and any not yet placed (see Placer.assign)."""
        return self.placer.assign(ids)

    def daemon_report(self) -> DaemonReport | None:
        """What the daemon running on this database reports (None: no daemon runs)."""
        return self.storage.daemon_report()

    def announce_poller(
        self,
        started: datetime,
        every: timedelta,
        *,
        stopped: bool = False,
        storage_error: str | None = None,
        failing_since: datetime | None = None,
    ) -> None:
        """Record this process's poller in the store as alive now (the daemon's heartbeat),
        or stopped now (see Poller.announce).

        Raises:
            StorageError: it could not be written.
        """
        self._poller.announce(
            started,
            every,
            stopped=stopped,
            storage_error=storage_error,
            failing_since=failing_since,
        )

    def end_dead_pollers(self) -> int:
        """On SQLite, record the pollers a crash left running as stopped at their last
        heartbeat (see Poller.end_others); returns how many."""
        return self._poller.end_others()

    def pass_pending(self, *, due: bool = True, unrecorded: Collection[str] = ()) -> bool:
        """Whether the store's poll pass goes on: a poller holds a lease, or (`due`) a
        configured feed is due or was never polled (Storage.pass_pending), but for the
        feeds `unrecorded` (whose last poll here could not be recorded: their stored next
        poll is stale, and their retry is the caller's).

        Raises:
            StorageError: the store could not be read.
        """
        feeds = self.config.feeds if due else []
        urls = [feed.url for feed in feeds if feed.url not in unrecorded]
        return self.storage.pass_pending(urls, self.clock())

    def pollers(self) -> list[PollerState]:
        """Every poller recorded in the store, by start, with the feeds each holds leases on
        now (for `aggregator status`)."""
        return self.storage.pollers(self.clock())

    def close_now(self) -> None:
        """Close what leaving at once needs closed (the daemon leaving with work still in
        flight): the feature workers stopped without waiting for their pieces, and the
        database (the polls' and the placing's writes then fail and roll back)."""
        try:
            self.placer.abandon()
        finally:
            self._shared.close()

    def close(self) -> None:
        """Let the alerts in flight finish (those not started stay due), stop the feature
        workers and the fetcher, close storage (also when one of those fails)."""
        try:
            self._watcher.close()
            self.placer.close()
            self._poller.close()
        finally:
            self._shared.close()

    def reconfigure(self, config: Config) -> None:
        """Use a reloaded feeds.toml from now on (the daemon's reload).

        Storage, the fetcher and the feature workers stay as opened: a new [storage] path,
        new fetch limits in [poll] or a new [dedup] workers take a restart; the scheduling
        bounds in [poll] apply at once.

        Raises:
            StorageError: the new feeds could not be recorded.
        """
        self._admin.sync_feeds(config.feeds)
        self._poller.schedule = Schedule.from_config(config.poll)
        self._shared.config = config

    def __enter__(self) -> Aggregator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- polling -------------------------------------------------------------------------

    @property
    def schedule(self) -> Schedule:
        """The scheduling bounds of [poll] in use."""
        return self._poller.schedule

    def read(self, feed: Feed) -> ParsedFeed:
        """Fetch and parse one feed's current entries, storing nothing.

        Raises:
            FetchError, ParseError: the source could not be read (an HTML page raises
                HtmlPageError, which names the feeds the page links to).
        """
        return self._poller.read(feed)

    def check(self, feed: Feed) -> tuple[ParsedFeed, str | None]:
        """Fetch and parse a feed as `read` does; also say where it moved for good, if it did.

        Raises:
            FetchError, ParseError: as `read`.
        """
        return self._poller.check(feed)

    def poll_feed(
        self,
        feed: Feed,
        *,
        force: bool = False,
        place: bool = True,
        catch_up: datetime | None = None,
    ) -> PollResult:
        """Poll one feed now, store the outcome and place what it stored; a failure is
        recorded, never raised (see Poller.poll_feed). Thread-safe (the daemon's workers).
        Without `place`, what it stored waits for `place_stored` (the daemon places the
        entries of several polls at once), full batches of it handed to the placing process.
        `catch_up`: a poll pulled forward for the daily digest whose window ends then
        (Poller.poll_feed).

        Returns:
            The result; its `next_poll` (also stored) is when the feed wants polling again.

        Raises:
            StorageError: the outcome could not be written.
        """
        polled = self._poller.poll_feed(feed, force=force, catch_up=catch_up)
        if polled.result.status != PollStatus.SKIPPED:  # a skipped feed stored nothing to place
            self.placer.stored(polled.new_ids, polled.updated_ids)
            if place:
                self.place_stored()
        return polled.result

    def place_stored(self) -> int:
        """Place what polls stored and left unplaced, then evaluate the watches on the
        stories that changed and start their alerts' delivery (as a poll pass ends).

        Returns:
            How many entries were placed.

        Raises:
            CorruptDatabaseError: the database is damaged (other storage errors are logged:
                the entries stay stored, and the next call places them).
        """
        placed = self.placer.group_stored()
        self._watcher.after_pass()
        return placed

    def poll(
        self,
        *,
        force: bool = False,
        on_result: Callable[[PollResult], None] | None = None,
        only: Sequence[Feed] | None = None,
    ) -> list[PollResult]:
        """Poll every configured feed (or those in `only`) now, concurrently, and place what
        they stored: batches whose features the workers have finished as the poll goes on
        (`Placer.place_ready`), the rest after it (see Poller.poll); `on_result` is called
        with each result. Then the watches are evaluated on the stories the pass changed
        and their alerts' delivery started (`wait_alerts` waits for it).

        Returns:
            One result per configured feed, in the order they finished.

        Raises:
            StorageError: an outcome could not be written.
        """
        results = []
        # A large first pass warns the placing process ahead (`Placer.expect`).
        for polled in self._poller.poll(force=force, only=only, expect=self.placer.expect):
            self.placer.stored(polled.new_ids, polled.updated_ids)
            self.placer.place_ready()
            results.append(polled.result)
            if on_result is not None:
                on_result(polled.result)
        self.placer.group_stored()
        self._watcher.after_pass()
        return results

    # --- watches and alerts ----------------------------------------------------------------

    def evaluate_watches(self) -> list[int]:
        """Record the alerts due on the stories changed since the last evaluation (done by
        every poll pass); returns their ids (see Watcher.evaluate).

        Raises:
            StorageError: reading or recording failed.
        """
        return self._watcher.evaluate().recorded

    def deliver_alerts(self) -> int:
        """Start delivering the alerts due, the retries whose time has come and those a dead
        process left (the daemon calls this on a schedule); returns how many started.

        Raises:
            StorageError: the alerts could not be read.
        """
        return self._watcher.deliver_due()

    def wait_alerts(self, timeout: float | None = None) -> bool:
        """Wait for the alerts being delivered; False if some were still going at `timeout`."""
        return self._watcher.wait(timeout)

    def alerts(self, since: datetime | None = None, *, limit: int = 1000) -> list[AlertRecord]:
        """The alerts recorded since `since` (None: all), newest first."""
        return self._watcher.alerts(since, limit=limit)

    def alerts_sent(self) -> dict[str, int]:
        """How many alerts each watch has had sent, by watch name."""
        return self._watcher.sent_by_watch()

    def watch(self, name: str) -> WatchConfig:
        """The configured watch of this name.

        Raises:
            ConfigError: no watch has it.
        """
        for watch in self.config.watches:
            if watch.name == name:
                return watch
        names = ", ".join(w.name for w in self.config.watches) or "none is configured"
        raise ConfigError(
            f"no watch is named {name!r} (watches: {names})", path=str(self.config.path)
        )

    def test_watch(self, watch: WatchConfig, since: datetime, until: datetime) -> list[StoryMatch]:
        """The stored stories published in [since, until) that `watch` matches now, newest
        first; nothing is recorded or sent (see Watcher.test)."""
        return self._watcher.test(watch, since, until)

    # --- feeds ---------------------------------------------------------------------------

    def feed_states(self) -> list[FeedState]:
        """What storage holds of each feed polled or recorded (by name)."""
        return self._admin.feed_states()

    def status(self) -> list[FeedStatus]:
        """The health of every configured feed, in configuration order."""
        return self._admin.status()

    def enable(self, url_or_name: str) -> Feed:
        """Re-enable a feed disabled after a 410 (and forget its failures).

        Raises:
            ConfigError: no such feed is configured.
        """
        return self._admin.enable(url_or_name)

    def moved_feeds(self) -> list[tuple[Feed, str]]:
        """Configured feeds that moved permanently (301/308), with their new URLs."""
        return self._admin.moved_feeds()

    def update_urls(self) -> list[tuple[Feed, str]]:
        """Write the new URLs of moved feeds into feeds.toml and the database (see FeedAdmin).

        Raises:
            ConfigError: feeds.toml cannot be rewritten (the database is left as it was).
            StorageError: the database cannot be updated (nothing is changed).
        """
        return self._admin.update_urls()

    def feeds_named(self, names: Sequence[str]) -> list[Feed]:
        """The configured feeds with these URLs or names, in that order.

        Raises:
            ConfigError: one of them is not configured.
        """
        return self._admin.feeds_named(names)

    # --- digests -------------------------------------------------------------------------

    @property
    def tz(self) -> ZoneInfo:
        """The digest timezone."""
        return self._publisher.tz

    def today(self) -> date:
        """Today in the digest timezone."""
        return self._publisher.today()

    def make_digest(self, window: Window) -> Digest:
        """Collect the entries published in the window into stories under topics (a digest
        asked for by its window: no late arrivals, which only the daily digest shows)."""
        return self._publisher.make_digest(window)

    def make_day(self, day: date) -> Digest:
        """A day's digest asked for by its date: its daily digest as made, late arrivals
        and all, with the day's entries stored since; the day's window before the daily
        digest is made (see Publisher.make_day)."""
        return self._publisher.make_day(day)

    def digest_path(self, window: Window, fmt: Format) -> Path:
        """Where the window's digest in `fmt` goes in the output folder."""
        return self._publisher.digest_path(window, fmt)

    def write_digest(self, digest: Digest, fmt: Format, path: Path) -> Path:
        """Render the digest and write it atomically to `path` (see Publisher.write_digest)."""
        return self._publisher.write_digest(digest, fmt, path)

    def write_digest_files(self, window: Window, digest: Digest) -> tuple[Path, ...]:
        """Write the window's digest in every format, then the archive (see Publisher)."""
        return self._publisher.write_digest_files(window, digest)

    def check_output(self) -> None:
        """Check that [digest] output is a folder, or can become one (see Publisher)."""
        self._publisher.check_output()

    def write_archive(self) -> tuple[Path, Path]:
        """Rewrite the output folder's index.html and feed.xml (see Publisher)."""
        return self._publisher.write_archive()

    def publish_daily(self, window: Window | None = None, *, send_email: bool = True) -> Published:
        """The daily job: the last whole day's daily digest (its late arrivals too) in every
        format and the archive, then emailed when [digest.email] is configured (see
        Publisher.publish_daily).

        Raises:
            AggregatorError: a file cannot be written.
        """
        mail = self._mailer.mail_daily if send_email else None
        return self._publisher.publish_daily(window, mail=mail)

    def digest_made(self, day: date) -> datetime | None:
        """When the daily digest of `day` was made, or None if it has not been."""
        return self._publisher.digest_made(day)

    def making_digest(self) -> AbstractContextManager[None]:
        """Hold the digest lock for the block: one process of those sharing a store makes
        each daily digest (see Publisher.making_digest)."""
        return self._publisher.making_digest()

    def record_digest(self, day: date, *, made: datetime) -> None:
        """Record that the daily digest of `day` was made at `made`, when it read its
        entries (the daemon makes it once; see Publisher.record_digest).

        Raises:
            StorageError: it could not be recorded.
        """
        self._publisher.record_digest(day, made=made)

    def first_published(self) -> datetime | None:
        """When the earliest stored entry was published (None: no entry yet)."""
        return self._publisher.first_published()

    # --- reading (the served pages) ------------------------------------------------------

    def stories(
        self, since: datetime, until: datetime, filters: Filters | None = None
    ) -> tuple[Digest, Choices]:
        """The stories of [since, until) under their topics as a digest groups them, narrowed
        by `filters`, and the values each filter can take (those of the whole window)."""
        digest = self._browse.stories(since, until)
        feeds = self.config.feeds
        chosen = filter_digest(digest, filters, feeds) if filters else digest
        return chosen, choices(digest, feeds)

    def story(self, story_id: int) -> StoryPage | None:
        """A story by its stable id, with its topic and timeline (None: unknown id)."""
        return self._browse.story(story_id)

    def current_story_id(self, story_id: int) -> int | None:
        """The id a story answers to now (merged: the survivor's); None: unknown."""
        return self.storage.story_id(story_id)

    def search(self, query: str, page: int = 1) -> SearchPage:
        """A page of stories whose entries match `query` (see Storage.search)."""
        return self._browse.search(query, page)

    def index_search(self, limit: int | None = None) -> int:
        """Index the entries stored since the search index last caught up (at most `limit`);
        how many (see Storage.index_pending)."""
        return self.storage.index_pending(limit)

    def recent_errors(self) -> dict[str, list[tuple[datetime, str]]]:
        """Each feed's last few failed polls, newest first (the served feeds page)."""
        return self.storage.recent_errors()

    def change_stamp(self) -> str:
        """What differs once anything is written to the database (the served pages' cache)."""
        return self.storage.change_stamp()

    def unreadable(self) -> Unreadable | None:
        """Why the database cannot be read now, or None when it can (/healthz)."""
        return self._browse.unreadable()

    def tallies(self) -> Tallies:
        """The store's counts (entries, articles, stories, polls, emails, last digest).

        Raises:
            StorageError: the database cannot be read.
        """
        return self._browse.tallies()

    # --- email ---------------------------------------------------------------------------

    def email_config(self) -> EmailConfig:
        """The [digest.email] table, checked as far as it can be without sending (see Mailer)."""
        return self._mailer.email_config()

    def send_digest_email(
        self,
        window: Window,
        digest: Digest | None = None,
        *,
        force: bool = False,
        send_empty: bool = False,
        recipients: Sequence[str] | None = None,
        retry_now: bool = True,
    ) -> list[EmailResult]:
        """Email the window's digest to each recipient that has not had it yet (see Mailer).

        Raises:
            ConfigError: there is no [digest.email] table, or it has no recipients.
            SendError: the sender address is unusable.
            StorageError: the delivery records cannot be written.
        """
        return self._mailer.send_digest_email(
            window,
            digest,
            force=force,
            send_empty=send_empty,
            recipients=recipients,
            retry_now=retry_now,
        )

    def retry_emails(self) -> list[EmailResult]:
        """Resend the failed deliveries whose retry time has come (the daemon calls this)."""
        return self._mailer.retry_emails()

    def email_status(self, *, limit: int = 20) -> list[EmailDelivery]:
        """The most recent email deliveries, newest first (for `aggregator status`)."""
        return self._mailer.email_status(limit=limit)


def open_configured(config: Config) -> Storage:
    """Open the store `[storage]` names: the PostgreSQL database at `url`, else the SQLite
    file at `path` (creating its tables, or upgrading them, as needed).

    Raises:
        ConfigError: `password_env` names a variable that is not set.
        StorageError: the store cannot be opened (DatabasePathError: it names no usable
            database; SchemaVersionError: a newer aggregator made it).
    """
    if config.storage_url is None:
        return open_storage(config.storage_path)
    # psycopg is imported only by those who use PostgreSQL.
    from aggregator.storage.postgres import open_postgres

    password = _password(config.storage_password_env, "storage.password_env", config.path)
    return open_postgres(config.storage_url, password=password, lock_file_of=config.storage_path)


def _password(variable: str | None, key: str, path: Path | None = None) -> str | None:
    """The PostgreSQL password held by the environment `variable` (None: none given).

    Raises:
        ConfigError: the variable is not set.
    """
    if variable is None:
        return None
    password = os.environ.get(variable)
    if password is None:
        raise ConfigError(
            f"the environment variable {variable} (the PostgreSQL password) is not set",
            path=str(path) if path else None,
            key=key,
        )
    return password


def copy_to_postgres(
    config: Config, url: str, *, password_env: str | None = None
) -> dict[str, int]:
    """Copy the SQLite database `[storage] path` names (entries, articles and stories,
    feed state and polls, digest and email records) into the new PostgreSQL database at
    `url`, in one transaction, and check that every table's rows were copied.

    Returns:
        Each table's rows, as counted in both databases after the copy.

    Raises:
        ConfigError: `[storage]` names no SQLite database, `url` is no PostgreSQL URL or
            holds a password, or `password_env` is not set.
        DaemonRunningError: `aggregator run` is writing the SQLite database.
        StorageError: the target is not empty (nothing copied), a database cannot be read
            or written, or the counts differ.
    """
    from aggregator.storage.postgres import open_postgres, redact
    from aggregator.storage.schema import TABLES

    if config.storage_url is not None:
        raise ConfigError(
            "[storage] already names a PostgreSQL database; migrate copies an SQLite one "
            "(set [storage] path)",
            path=str(config.path),
            key="storage.url",
        )
    if not url.startswith(("postgresql://", "postgres://")) or redact(url) != url:
        raise ConfigError(
            "must be a PostgreSQL URL without a password (postgresql://user@host:port/dbname;"
            " the password in the variable --password-env names)",
            key="--to",
        )
    if not config.storage_path.exists():
        raise ConfigError(
            f"no SQLite database at {config.storage_path} to copy",
            path=str(config.path),
            key="storage.path",
        )
    password = _password(password_env, "--password-env")
    with open_storage(config.storage_path) as source:
        if source.daemon_report() is not None:
            raise DaemonRunningError(
                "`aggregator run` is writing this database: stop it before copying it",
                path=str(config.storage_path),
            )
        expected = source.table_counts()
        tables = [(table, *source.table_rows(table)) for table in TABLES]  # read as copied
        try:
            with open_postgres(url, password=password) as target:
                target.copy_in(tables)
                copied = target.table_counts()
        finally:
            # A copy that failed mid-table leaves its rows' snapshot open: end it while the
            # SQLite database is, not when the garbage collector finds it closed (a
            # traceback, "Exception ignored in: <generator ...>", after the error).
            for _, _, rows in tables:
                rows.close()
    if copied != expected:
        differ = ", ".join(
            f"{t}: {expected[t]} -> {copied.get(t)}"
            for t in expected
            if copied.get(t) != expected[t]
        )
        raise StorageError(f"the copy's counts differ from the source's: {differ}", path=url)
    return copied


def make_aggregator(
    config: Config,
    *,
    storage: Storage | None = None,
    transport: Transport | None = None,
    clock: _clock.Clock | None = None,
    resolver: Resolver | None = None,
    rand: Callable[[], float] | None = None,
    sleep: Callable[[float], None] | None = None,
    read_only: bool = False,
    deliver: Deliver | None = None,
    env: Mapping[str, str] | None = None,
) -> Aggregator:
    """Wire an Aggregator from its config; tests inject storage, transport, clock, DNS, sleep.

    Args:
        config: The loaded feeds.toml.
        storage: A storage to use instead of opening the configured one
            (`open_configured`).
        transport: An httpx transport instead of the network.
        clock: The time source.
        resolver: Host name resolution for the redirect (SSRF) check.
        rand: Random numbers in [0, 1) for the next poll's jitter.
        sleep: Waits between email retries.
        read_only: For commands that only read (`status`) or only fetch (the check of
            `feeds add`): the configured feeds get no rows (see `Aggregator.sync_feeds`),
            and the database is opened only when first used.
        deliver: Delivers one alert on one channel, once (default: notify.deliver, its
            emails dated by `clock`).
        env: The environment channels read their secrets from (default os.environ).

    Raises:
        StorageError: the database cannot be opened, or the feeds' rows written (unless
            read_only: then where it is first used).
    """
    poll = config.poll

    def connect() -> Fetcher:
        # Called on the first fetch: commands that fetch nothing never import httpx. The
        # TLS context is made in a thread while httpx is imported (`tls`).
        from aggregator.sources.tls import context_soon

        tls = context_soon() if transport is None else None
        from aggregator.sources.http import Fetcher, FetchLimits

        limits = FetchLimits.from_config(poll)
        return Fetcher(limits, transport=transport, resolver=resolver, tls=tls)

    def opened() -> Storage:
        return storage if storage is not None else open_configured(config)

    def notify(
        channel: str, payload: AlertPayload, config: Config, *, env: Mapping[str, str]
    ) -> str | None:
        # Imported on the first alert: a poll that sends none never imports the channels.
        from aggregator.notify import deliver

        return deliver(channel, payload, config, env=env, clock=shared.clock)

    shared = Shared(config, clock or _clock.now, opened)
    workers = default_workers() if config.dedup.workers is None else config.dedup.workers
    publisher = Publisher(shared)
    agg = Aggregator(
        shared,
        Poller(shared, connect, rand or random.random),
        # The placing process opens the configured database: not one a test hands over.
        Placer(
            shared,
            FeaturePool(workers),
            PlacingProcess(workers) if workers and storage is None else None,
        ),
        publisher,
        Mailer(shared, publisher, sleep or _time.sleep),
        FeedAdmin(shared),
        Watcher(shared, deliver or notify, os.environ if env is None else env),
        Browse(shared, publisher),
    )
    if not read_only:  # `status` and `feeds list` leave the database as they found it
        try:
            agg.sync_feeds()
        except BaseException:
            agg.close()  # its database closed, not left to the exit (`parallel.ending`)
            raise
    return agg
