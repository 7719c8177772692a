"""The Aggregator facade, and make_aggregator: the one place where the parts are wired."""

from __future__ import annotations

import logging
import time as _time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from aggregator import clock as _clock
from aggregator.config import Config
from aggregator.dedup.group import group_stories
from aggregator.dedup.topics import group_by_topic
from aggregator.digest.render import render
from aggregator.digest.write import write_atomic
from aggregator.exceptions import AggregatorError
from aggregator.sources.files import read_source
from aggregator.sources.http import Fetcher, Transport
from aggregator.sources.parse import parse_feed
from aggregator.storage import SqliteStorage, open_storage
from aggregator.types import Digest, Feed, Format, ParsedFeed, PollResult, SourceKind

log = logging.getLogger("aggregator")

EXTENSIONS = {Format.HTML: "html", Format.TEXT: "txt", Format.JSON: "json"}


@dataclass(frozen=True)
class Window:
    """A digest's time window: whole days [first, last] in the digest timezone."""

    first: date
    last: date

    @property
    def name(self) -> str:
        return self.first.isoformat() if self.first == self.last else f"{self.first}_{self.last}"


class Aggregator:
    """Polls the configured sources into storage and makes digests from it."""

    def __init__(
        self, config: Config, storage: SqliteStorage, fetcher: Fetcher, clock: _clock.Clock
    ) -> None:
        self.config = config
        self.storage = storage
        self.fetcher = fetcher
        self.clock = clock
        self.storage.sync_feeds(config.feeds, clock())

    def close(self) -> None:
        self.fetcher.close()
        self.storage.close()

    def reconfigure(self, config: Config) -> None:
        """Use a reloaded feeds.toml from now on (the daemon's reload); storage stays as opened."""
        self.storage.sync_feeds(config.feeds, self.clock())
        self.config = config

    def __enter__(self) -> Aggregator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- polling -------------------------------------------------------------------------

    def read(self, feed: Feed) -> ParsedFeed:
        """Fetch and parse one feed's current entries, storing nothing.

        Raises:
            FetchError, ParseError: the source could not be read.
        """
        tz = ZoneInfo(feed.timezone) if feed.timezone else None
        if feed.kind is SourceKind.FILE:
            assert feed.path is not None
            return read_source(feed.path, default_tz=tz, default_language=feed.language)
        response = self.fetcher.get(feed.url)
        return parse_feed(
            response.body,
            feed.url,
            content_type=response.content_type,
            default_tz=tz,
            default_language=feed.language,
        )

    def poll_feed(self, feed: Feed) -> PollResult:
        """Poll one feed and store what changed; a failure is recorded, never raised."""
        started = _time.monotonic()
        now = self.clock()
        try:
            parsed = self.read(feed)
        except AggregatorError as e:
            seconds = _time.monotonic() - started
            self.storage.record_failure(feed, str(e), now=now, seconds=seconds)
            log.warning("%s: error: %s (%.2fs)", feed.name, e, seconds)
            return PollResult(feed.url, feed.name, "error", 0, 0, str(e), seconds)
        warning = "; ".join(parsed.warnings) or None
        seconds = _time.monotonic() - started
        saved = self.storage.save_poll(
            feed, parsed.entries, now=now, seconds=seconds, title=parsed.title, error=warning
        )
        if warning:
            log.warning("%s: %s", feed.name, warning)
        log.info("%s: ok, %d new, %d updated (%.2fs)", feed.name, saved.new, saved.updated, seconds)
        return PollResult(feed.url, feed.name, "ok", saved.new, saved.updated, warning, seconds)

    def poll(self, on_result: Callable[[PollResult], None] | None = None) -> list[PollResult]:
        """One pass over every configured feed."""
        results = []
        for feed in self.config.feeds:
            result = self.poll_feed(feed)
            if on_result is not None:
                on_result(result)
            results.append(result)
        return results

    # --- digests -------------------------------------------------------------------------

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.config.digest.timezone)

    def today(self) -> date:
        return self.clock().astimezone(self.tz).date()

    def make_digest(self, window: Window) -> Digest:
        """Collect the window's entries into stories under topics."""
        since = datetime.combine(window.first, datetime.min.time(), self.tz)
        until = datetime.combine(window.last + timedelta(days=1), datetime.min.time(), self.tz)
        entries = self.storage.entries_between(since, until)
        topics = group_by_topic(group_stories(entries), self.config.topics)
        return Digest(
            since=since,
            until=until,
            generated_at=self.clock(),
            timezone=self.config.digest.timezone,
            topics=topics,
        )

    def digest_path(self, window: Window, fmt: Format) -> Path:
        return self.config.digest.output / f"{window.name}.{EXTENSIONS[fmt]}"

    def write_digest(self, digest: Digest, fmt: Format, path: Path) -> Path:
        """Render the digest and write it atomically to `path`."""
        write_atomic(path, render(digest, fmt))
        return path


def make_aggregator(
    config: Config,
    *,
    storage: SqliteStorage | None = None,
    transport: Transport | None = None,
    clock: _clock.Clock | None = None,
) -> Aggregator:
    """Wire an Aggregator from its config; tests inject storage, transport and clock.

    Raises:
        StorageError: the database cannot be opened.
    """
    return Aggregator(
        config,
        storage if storage is not None else open_storage(config.storage_path),
        Fetcher(transport=transport),
        clock or _clock.now,
    )
