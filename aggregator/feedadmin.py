"""Feed administration: the feeds' health, enabling them, their moves (feeds.toml and the
database changed together), OPML."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from aggregator.config import Config
from aggregator.exceptions import ConfigError, StorageError
from aggregator.parts import Part
from aggregator.storage import FeedState
from aggregator.types import Feed, FeedStatus, SourceKind

if TYPE_CHECKING:
    from aggregator.config import AddedFeeds

log = logging.getLogger("aggregator")


class FeedAdmin(Part):
    """The configured feeds as the database knows them: rows, health, enabling, moves."""

    def sync_feeds(self, feeds: Sequence[Feed] | None = None) -> None:
        """Record the configured feeds (or `feeds`) in storage: a row each, for `status`
        and the digest's new feeds.

        Raises:
            StorageError: they could not be recorded.
        """
        self.storage.sync_feeds(self.config.feeds if feeds is None else feeds, self.clock())

    def feed_states(self) -> list[FeedState]:
        """What storage holds of each feed polled or recorded (by name)."""
        return self.storage.feed_states()

    def status(self) -> list[FeedStatus]:
        """The health of every configured feed, in configuration order."""
        threshold = self.config.poll.failure_threshold
        # Read only: a feed never polled has no row, and gets none here.
        states = {s.url: s for s in self.storage.feed_states()}
        out = []
        for feed in self.config.feeds:
            state = states.get(feed.url) or FeedState.never_polled(feed.url, feed.name)
            out.append(
                FeedStatus(
                    name=feed.name,
                    url=feed.url,
                    redirected_url=state.redirected_url,
                    last_success=state.last_success,
                    last_attempt=state.last_attempt,
                    last_error=state.last_error,
                    consecutive_failures=state.consecutive_failures,
                    next_poll=state.next_poll,
                    disabled=state.disabled,
                    disabled_reason=state.disabled_reason,
                    entry_count=state.entry_count,
                    failing=not state.disabled and state.consecutive_failures >= threshold,
                )
            )
        return out

    def enable(self, url_or_name: str) -> Feed:
        """Re-enable a feed disabled after a 410 (and forget its failures).

        Raises:
            ConfigError: no such feed is configured.
        """
        feed = self._configured(url_or_name)
        self._state(feed)
        self.storage.enable_feed(feed.url)
        return feed

    def moved_feeds(self) -> list[tuple[Feed, str]]:
        """Configured feeds that moved permanently (301/308), with their new URLs."""
        moved = []
        for feed in self.config.feeds:
            state = self._state(feed)
            if state is not None and state.redirected_url and state.redirected_url != feed.url:
                moved.append((feed, state.redirected_url))
        return moved

    def update_urls(self) -> list[tuple[Feed, str]]:
        """Write the new URLs of moved feeds into feeds.toml and the database.

        The stored feed keeps its entries and history under its new URL. A feed that
        moved to a URL another configured feed already has is left alone (with a warning):
        the user decides which one to keep. So is one whose new URL still holds the entries
        of a feed removed from feeds.toml (kept, as `feeds remove` keeps them): the two
        cannot be one stored feed, and the others are written all the same.

        Returns:
            The feeds changed, with their new URLs.

        Raises:
            ConfigError: feeds.toml cannot be rewritten (the database is left as it was).
            StorageError: the database cannot be updated (nothing is changed).
        """
        configured = {f.url for f in self.config.feeds}
        moved: list[tuple[Feed, str]] = []
        for feed, new_url in self.moved_feeds():
            if new_url in configured or new_url in {new for _, new in moved}:
                log.warning(
                    "%s moved to %s, which another feed already has: remove one of them",
                    feed.name,
                    new_url,
                )
            elif self.storage.feed_state(new_url) is not None:
                log.warning(
                    "%s moved to %s, where the entries of a feed removed from feeds.toml are "
                    "still stored: left at its old URL (its polls follow the redirect); write "
                    "the new URL into feeds.toml yourself to poll it there, its entries so far "
                    "staying under the old one",
                    feed.name,
                    new_url,
                )
            else:
                moved.append((feed, new_url))
        if not moved:
            return []
        from aggregator.config import set_feed_urls  # tomlkit: only to edit feeds.toml

        renamed: list[tuple[Feed, str]] = []
        try:
            for feed, new_url in moved:
                self.storage.rename_feed(feed.url, new_url)
                renamed.append((feed, new_url))
            set_feed_urls(self.config.path, {feed.url: new for feed, new in moved})
        except (ConfigError, StorageError):
            for feed, new_url in renamed:  # keep the database in step with the config
                self.storage.rename_feed(new_url, feed.url)
                self.storage.set_redirected_url(feed.url, new_url)
            raise
        return moved

    def feeds_named(self, names: Sequence[str]) -> list[Feed]:
        """The configured feeds with these URLs or names, in that order, each once (a feed
        named twice, or by name and URL, is polled once).

        Raises:
            ConfigError: one of them is not configured.
        """
        return list(dict.fromkeys(self._configured(name) for name in names))

    def _configured(self, url_or_name: str) -> Feed:
        feed = self.config.feed(url_or_name)
        if feed is None:
            raise ConfigError(
                f"no feed with url or name {url_or_name!r}", path=str(self.config.path), key="feeds"
            )
        return feed


def import_opml(config_path: Path, data: bytes, source: str) -> AddedFeeds:
    """Add the subscriptions of an OPML file to feeds.toml (folders become tags).

    Raises:
        ParseError: the file is not OPML.
        ConfigError: feeds.toml is invalid or cannot be written.
    """
    from aggregator.config import NewFeed, add_feeds
    from aggregator.sources.opml import parse_opml

    subscriptions = parse_opml(data, source)
    return add_feeds(config_path, [NewFeed(s.url, s.name, s.tags) for s in subscriptions])


def export_opml(config: Config, now: datetime) -> tuple[str, list[Feed]]:
    """The configured http(s) feeds as an OPML document, and the local ones left out."""
    from aggregator.sources.opml import render_opml

    shared = [f for f in config.feeds if f.kind is SourceKind.HTTP]
    local = [f for f in config.feeds if f.kind is not SourceKind.HTTP]
    return render_opml(shared, title="aggregator feeds", created=now), local
