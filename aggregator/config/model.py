"""The Config a feeds.toml becomes: frozen dataclasses, one per table, with their defaults."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import time, timedelta
from pathlib import Path

from aggregator.config.identity import feed_key
from aggregator.types import DedupSettings, Feed, Topic

DEFAULT_INTERVAL = timedelta(minutes=30)


@dataclass(frozen=True)
class EmailConfig:
    """Where and how the daily digest is mailed ([digest.email])."""

    to: tuple[str, ...] = ()
    sender: str | None = None
    host: str = "localhost"
    port: int = 25
    security: str = "none"
    username: str | None = None
    password_env: str | None = None
    # Mail a digest with no story ("nothing new") too; by default it is only written.
    send_empty: bool = False


@dataclass(frozen=True)
class DigestConfig:
    """The [digest] table."""

    timezone: str = "UTC"
    time: time = time(7, 0)
    output: Path = Path("digests")
    email: EmailConfig | None = None
    # Where the output folder is published (http/https, ending in "/"), if it is: makes
    # feed.xml's links absolute and gives emails a "view in a browser" link.
    base_url: str | None = None
    # Sections at most for the stories matching no topic, besides "Other" (dedup/topics.py).
    max_sections: int = 12


@dataclass(frozen=True)
class PollConfig:
    """The [poll] table: how feeds are fetched and scheduled."""

    concurrency: int = 20  # feeds fetched at once
    per_host: int = 2  # feeds fetched at once from one host
    timeout: float = 30.0  # seconds to connect, and between two reads
    deadline: float = 60.0  # seconds for a whole fetch, however the server trickles
    max_body: int = 10 * 1024 * 1024  # bytes, after decompression
    failure_threshold: int = 3  # `status` exits 1 when a feed failed this many times in a row
    allow_private_redirects: bool = False  # follow redirects from public to private addresses
    min_interval: timedelta = timedelta(minutes=5)  # adaptive interval bounds
    max_interval: timedelta = timedelta(hours=24)
    max_backoff: timedelta = timedelta(hours=24)  # longest wait after repeated failures
    # How long a poller sharing a PostgreSQL store holds a feed it polls: one that dies
    # mid-poll loses its feeds to the others after this (docs/postgres.md, Several pollers).
    lease: timedelta = timedelta(minutes=5)


@dataclass(frozen=True)
class WatchConfig:
    """One [[watches]] entry: which stories someone wants an alert for, and where."""

    name: str  # unique among the watches
    keywords: tuple[str, ...]  # any of these (Simplified and Traditional match alike)
    all: tuple[str, ...] = ()  # each of these too
    none: tuple[str, ...] = ()  # none of these
    topics: tuple[str, ...] = ()  # only stories filed under one of these topics
    feeds: tuple[str, ...] = ()  # only stories with a source among these feed names or tags
    min_sources: int = 1  # alert once the story is carried by this many distinct feeds
    renotify_sources: int = 0  # alert again each time it gains this many more (0: never)
    notify: tuple[str, ...] = ()  # channels: "email", "webhook", "command"


@dataclass(frozen=True)
class WebhookConfig:
    """[notify.webhook]: where alerts are POSTed."""

    url: str
    secret_env: str | None = None  # env var holding the HMAC-SHA256 key of the body
    format: str = "json"  # "json" (the contract), "slack", "discord" or "ntfy"
    timeout: float = 10.0  # seconds for the whole request


@dataclass(frozen=True)
class NotifyEmailConfig:
    """[notify.email]: who gets alerts by email (sent through [digest.email]'s SMTP)."""

    to: tuple[str, ...]


@dataclass(frozen=True)
class CommandConfig:
    """[notify.command]: a program run once per alert, the alert's JSON on its stdin."""

    argv: tuple[str, ...]
    timeout: float = 30.0  # seconds before it is killed


@dataclass(frozen=True)
class NotifyConfig:
    """The [notify] table: the channels watches can name (None: not configured)."""

    webhook: WebhookConfig | None = None
    email: NotifyEmailConfig | None = None
    command: CommandConfig | None = None


@dataclass(frozen=True)
class ServeConfig:
    """The [serve] table: where `aggregator serve` listens by default, and its token."""

    host: str = "127.0.0.1"
    port: int = 8080
    #: The environment variable holding the token a client must send (a bearer token, or
    #: a basic-auth password); required to listen on anything but a loopback address.
    token_env: str | None = None


@dataclass(frozen=True)
class Config:
    """A loaded, validated feeds.toml. Relative paths are resolved against its folder."""

    path: Path
    storage_path: Path
    feeds: tuple[Feed, ...] = ()
    topics: tuple[Topic, ...] = ()
    digest: DigestConfig = field(default_factory=DigestConfig)
    poll: PollConfig = field(default_factory=PollConfig)
    dedup: DedupSettings = field(default_factory=DedupSettings)
    watches: tuple[WatchConfig, ...] = ()
    notify: NotifyConfig = field(default_factory=NotifyConfig)
    #: A PostgreSQL database's URL (no password) instead of the SQLite file; `storage_path`
    #: then names only where the daemon's lock file goes (beside it).
    storage_url: str | None = None
    #: The environment variable holding the PostgreSQL password (read when connecting).
    storage_password_env: str | None = None
    serve: ServeConfig = field(default_factory=ServeConfig)

    def store_exists(self) -> bool:
        """Whether the store `[storage]` names may hold anything: a PostgreSQL database (its
        server says when opened), or an SQLite file that exists (a command that only reads
        makes none)."""
        return self.storage_url is not None or self.storage_path.exists()

    def feed(self, url_or_name: str) -> Feed | None:
        """Return the configured feed with this URL or name, if any.

        A URL matches when it is the same feed written differently (see feed_key). A local
        path is read relative to feeds.toml, as the file's own are, else to the current
        folder, as `feeds add PATH` read it: the path a feed was added by finds it.
        """
        for feed in self.feeds:
            if url_or_name in (feed.url, feed.name):
                return feed
        base = self.path.parent.resolve()
        keys = [feed_key(url_or_name, base)]
        try:
            keys.append(feed_key(url_or_name, Path.cwd()))
        except OSError:  # the current folder was removed: only the file's own reading
            pass
        for key in dict.fromkeys(keys):
            found = next((f for f in self.feeds if feed_key(f.url, base) == key), None)
            if found is not None:
                return found
        return None
