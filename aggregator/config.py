"""feeds.toml -> Config (frozen dataclasses), and editing feeds.toml in place (tomlkit)."""

from __future__ import annotations

import difflib
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import time, timedelta
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import tomlkit
import tomlkit.items

from aggregator.exceptions import ConfigError
from aggregator.types import DedupSettings, Feed, Topic

DEFAULT_INTERVAL = timedelta(minutes=30)
_DURATION = re.compile(r"^\s*(?:(\d+)\s*d)?\s*(?:(\d+)\s*h)?\s*(?:(\d+)\s*m)?\s*(?:(\d+)\s*s)?\s*$")


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

    def feed(self, url_or_name: str) -> Feed | None:
        """Return the configured feed with this URL or name, if any."""
        for feed in self.feeds:
            if url_or_name in (feed.url, feed.name):
                return feed
        return None


def parse_duration(text: str) -> timedelta:
    """Parse a duration such as "30s", "15m", "2h", "1d" or "1h30m".

    Raises:
        ValueError: the text is not a positive duration.
    """
    match = _DURATION.match(text) if isinstance(text, str) else None
    if not text or not isinstance(text, str) or not match or not any(match.groups()):
        raise ValueError(f"{text!r} is not a duration like '30s', '15m', '2h' or '1d'")
    days, hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
    value = timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
    if value <= timedelta(0):
        raise ValueError(f"{text!r} must be longer than zero")
    return value


def format_duration(value: timedelta) -> str:
    """The inverse of parse_duration, in the shortest exact form."""
    seconds = int(value.total_seconds())
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return "".join(parts) or "0s"


def is_http_url(url: str) -> bool:
    """True for an absolute http(s) URL with a host."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme.lower() in ("http", "https") and bool(parts.hostname)


# --- validation -----------------------------------------------------------------------

_TOP_KEYS = ("storage", "feeds", "topics", "digest", "poll", "dedup")
_STORAGE_KEYS = ("path",)
_FEED_KEYS = ("url", "name", "interval", "timezone", "language", "tags")
_POLL_KEYS = (
    "concurrency",
    "per_host",
    "timeout",
    "deadline",
    "max_body",
    "failure_threshold",
    "allow_private_redirects",
    "min_interval",
    "max_interval",
    "max_backoff",
)
_SIZE = re.compile(r"^\s*(\d+)\s*(B|KB|KiB|MB|MiB|GB|GiB)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {
    "b": 1, "kb": 1000, "kib": 1024, "mb": 1000**2, "mib": 1024**2, "gb": 1000**3, "gib": 1024**3,
}  # fmt: skip
_TOPIC_KEYS = ("name", "keywords")
_DIGEST_KEYS = ("timezone", "time", "output", "email", "base_url", "max_sections")
_DEDUP_KEYS = (
    "tracking_params",
    "copy_threshold",
    "lead_threshold",
    "containment_threshold",
    "story_threshold",
    "headline_threshold",
    "story_window",
    "headline_window",
    "workers",
)
_EMAIL_KEYS = ("to", "from", "host", "port", "security", "username", "password_env")


class _Checker:
    """Validates one parsed document, building errors that say file, key and line."""

    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.lines = text.splitlines()

    def error(
        self, message: str, key: str, *, section: str | None = None, index: int = 0
    ) -> ConfigError:
        return ConfigError(
            message, path=str(self.path), key=key, line=self._line(key, section, index)
        )

    def _line(self, key: str, section: str | None, index: int) -> int | None:
        """Best-effort line of `key` inside the index-th `[section]`/`[[section]]`."""
        start = 0
        if section is not None:
            header = re.compile(r"^\s*\[\[?\s*" + re.escape(section) + r"\s*\]\]?\s*(#.*)?$")
            seen = -1
            for number, line in enumerate(self.lines):
                if header.match(line):
                    seen += 1
                    if seen == index:
                        start = number
                        break
            else:
                return None
        leaf = key.rsplit(".", 1)[-1]
        pattern = re.compile(r"^\s*\"?" + re.escape(leaf) + r"\"?\s*=")
        for number in range(start, len(self.lines)):
            if (
                number > start
                and section is not None
                and self.lines[number].lstrip().startswith("[")
            ):
                break
            if pattern.match(self.lines[number]):
                return number + 1
        return start + 1 if section is not None else None

    def known(
        self,
        table: Mapping[str, Any],
        allowed: tuple[str, ...],
        prefix: str,
        section: str | None = None,
        index: int = 0,
    ) -> None:
        for key in table:
            if key not in allowed:
                near = difflib.get_close_matches(key, allowed, n=1)
                hint = (
                    f"; did you mean {near[0]!r}?"
                    if near
                    else f"; valid keys: {', '.join(allowed)}"
                )
                raise self.error(
                    f"unknown key {key!r}{hint}", f"{prefix}{key}", section=section, index=index
                )

    def string(
        self,
        table: Mapping[str, Any],
        key: str,
        prefix: str,
        *,
        section: str | None = None,
        index: int = 0,
        required: bool = False,
    ) -> str | None:
        value = table.get(key)
        if value is None:
            if required:
                raise self.error(
                    f"missing required key {key!r}", f"{prefix}{key}", section=section, index=index
                )
            return None
        if not isinstance(value, str) or not value.strip():
            raise self.error(
                f"must be a non-empty string, not {value!r}",
                f"{prefix}{key}",
                section=section,
                index=index,
            )
        return value.strip()

    def timezone(
        self, value: str | None, key: str, *, section: str | None = None, index: int = 0
    ) -> None:
        if value is None:
            return
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as e:
            raise self.error(
                f"unknown timezone {value!r} (use an IANA name like 'Asia/Shanghai')",
                key,
                section=section,
                index=index,
            ) from e


def load_config(path: Path) -> Config:
    """Read and validate feeds.toml.

    Raises:
        ConfigError: the file is missing, unreadable, not TOML, or has a bad key or value;
            the message names the file, the key and the line.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as e:
        raise ConfigError(
            "config file not found (use --config or $AGGREGATOR_CONFIG)", path=str(path)
        ) from e
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read config file: {e}", path=str(path)) from e
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        match = re.search(r"line (\d+)", str(e))
        raise ConfigError(
            f"not valid TOML: {e}", path=str(path), line=int(match.group(1)) if match else None
        ) from e
    return config_from_dict(data, path, text)


def config_from_dict(data: Mapping[str, Any], path: Path, text: str = "") -> Config:
    """Validate an already parsed feeds.toml document (see load_config)."""
    check = _Checker(path, text)
    base = path.parent.resolve()
    check.known(data, _TOP_KEYS, "")

    storage = data.get("storage", {})
    if not isinstance(storage, dict):
        raise check.error("must be a table", "storage")
    check.known(storage, _STORAGE_KEYS, "storage.", section="storage")
    storage_path = base / (
        check.string(storage, "path", "storage.", section="storage") or "aggregator.db"
    )

    feeds_raw = data.get("feeds", [])
    if not isinstance(feeds_raw, list):
        raise check.error("must be an array of tables ([[feeds]])", "feeds")
    feeds: list[Feed] = []
    for i, raw in enumerate(feeds_raw):
        feeds.append(_feed(check, raw, i, base, feeds))

    topics_raw = data.get("topics", [])
    if not isinstance(topics_raw, list):
        raise check.error("must be an array of tables ([[topics]])", "topics")
    topics: list[Topic] = []
    for i, raw in enumerate(topics_raw):
        prefix = f"topics[{i}]."
        if not isinstance(raw, dict):
            raise check.error("must be a table", f"topics[{i}]")
        check.known(raw, _TOPIC_KEYS, prefix, section="topics", index=i)
        name = check.string(raw, "name", prefix, section="topics", index=i, required=True)
        keywords = raw.get("keywords", [])
        if not isinstance(keywords, list) or not all(
            isinstance(k, str) and k.strip() for k in keywords
        ):
            raise check.error(
                "must be a list of non-empty strings",
                f"{prefix}keywords",
                section="topics",
                index=i,
            )
        if not keywords:
            raise check.error(
                "a topic needs at least one keyword", f"{prefix}keywords", section="topics", index=i
            )
        assert name is not None
        topics.append(Topic(name, tuple(k.strip() for k in keywords)))

    digest_raw = data.get("digest", {})
    if not isinstance(digest_raw, dict):
        raise check.error("must be a table", "digest")
    check.known(digest_raw, _DIGEST_KEYS, "digest.", section="digest")
    tz = check.string(digest_raw, "timezone", "digest.", section="digest") or "UTC"
    check.timezone(tz, "digest.timezone", section="digest")
    send_at = time(7, 0)
    raw_time = digest_raw.get("time")
    if raw_time is not None:
        if isinstance(raw_time, time):
            send_at = raw_time
        else:
            match = re.fullmatch(r"([01]?\d|2[0-3]):([0-5]\d)", str(raw_time).strip())
            if not isinstance(raw_time, str) or not match:
                raise check.error(
                    f'must be a time like "07:00", not {raw_time!r}',
                    "digest.time",
                    section="digest",
                )
            send_at = time(int(match.group(1)), int(match.group(2)))
    output = base / (check.string(digest_raw, "output", "digest.", section="digest") or "digests")
    email = _email(check, digest_raw.get("email"))
    dedup = _dedup(check, data.get("dedup", {}))
    poll = _poll(check, data.get("poll", {}))
    base_url = check.string(digest_raw, "base_url", "digest.", section="digest")
    if base_url is not None:
        if not is_http_url(base_url):
            raise check.error(
                f"{base_url!r} is not an http(s) URL", "digest.base_url", section="digest"
            )
        base_url = base_url if base_url.endswith("/") else base_url + "/"
    max_sections = digest_raw.get("max_sections", DigestConfig.max_sections)
    if not isinstance(max_sections, int) or isinstance(max_sections, bool) or max_sections < 1:
        raise check.error(
            f"must be a whole number of at least 1, not {max_sections!r}",
            "digest.max_sections",
            section="digest",
        )
    return Config(
        path=path,
        storage_path=storage_path,
        feeds=tuple(feeds),
        topics=tuple(topics),
        digest=DigestConfig(
            timezone=tz,
            time=send_at,
            output=output,
            email=email,
            base_url=base_url,
            max_sections=max_sections,
        ),
        poll=poll,
        dedup=dedup,
    )


def _poll(check: _Checker, raw: Any) -> PollConfig:
    section = "poll"
    if not isinstance(raw, dict):
        raise check.error("must be a table", section)
    check.known(raw, _POLL_KEYS, "poll.", section=section)
    defaults = PollConfig()

    def count(key: str, default: int) -> int:
        value = raw.get(key, default)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise check.error(
                f"must be a whole number of at least 1, not {value!r}",
                f"poll.{key}",
                section=section,
            )
        return value

    def seconds(key: str, default: float) -> float:
        value = raw.get(key, default)
        if isinstance(value, str):
            try:
                return parse_duration(value).total_seconds()
            except ValueError as e:
                raise check.error(str(e), f"poll.{key}", section=section) from e
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise check.error(
                f"must be a duration like '30s' or a number of seconds, not {value!r}",
                f"poll.{key}",
                section=section,
            )
        return float(value)

    def duration(key: str, default: timedelta) -> timedelta:
        return timedelta(seconds=seconds(key, default.total_seconds()))

    max_body = raw.get("max_body", defaults.max_body)
    match = _SIZE.match(max_body) if isinstance(max_body, str) else None
    if match:
        max_body = int(match.group(1)) * _SIZE_UNITS[(match.group(2) or "b").lower()]
    if not isinstance(max_body, int) or isinstance(max_body, bool) or max_body < 1:
        raise check.error(
            f"must be a size like '10MiB' or a number of bytes, not {max_body!r}",
            "poll.max_body",
            section=section,
        )
    allow = raw.get("allow_private_redirects", defaults.allow_private_redirects)
    if not isinstance(allow, bool):
        raise check.error(
            f"must be true or false, not {allow!r}", "poll.allow_private_redirects", section=section
        )
    config = PollConfig(
        concurrency=count("concurrency", defaults.concurrency),
        per_host=count("per_host", defaults.per_host),
        timeout=seconds("timeout", defaults.timeout),
        deadline=seconds("deadline", defaults.deadline),
        max_body=max_body,
        failure_threshold=count("failure_threshold", defaults.failure_threshold),
        allow_private_redirects=allow,
        min_interval=duration("min_interval", defaults.min_interval),
        max_interval=duration("max_interval", defaults.max_interval),
        max_backoff=duration("max_backoff", defaults.max_backoff),
    )
    if config.min_interval > config.max_interval:
        raise check.error(
            "must not be longer than max_interval", "poll.min_interval", section=section
        )
    return config


def _feed(check: _Checker, raw: Any, i: int, base: Path, earlier: list[Feed]) -> Feed:
    prefix = f"feeds[{i}]."
    if not isinstance(raw, dict):
        raise check.error("must be a table", f"feeds[{i}]")
    check.known(raw, _FEED_KEYS, prefix, section="feeds", index=i)
    url = check.string(raw, "url", prefix, section="feeds", index=i, required=True)
    assert url is not None
    local: Path | None = None
    if "://" in url:
        if not is_http_url(url):
            raise check.error(
                f"{url!r} is not an http(s) URL or a local path",
                f"{prefix}url",
                section="feeds",
                index=i,
            )
    else:
        local = (base / url).resolve()
    name = check.string(raw, "name", prefix, section="feeds", index=i) or _default_name(url)
    interval = None
    if "interval" in raw:
        try:
            interval = parse_duration(raw["interval"])
        except ValueError as e:
            raise check.error(str(e), f"{prefix}interval", section="feeds", index=i) from e
    tz = check.string(raw, "timezone", prefix, section="feeds", index=i)
    check.timezone(tz, f"{prefix}timezone", section="feeds", index=i)
    language = check.string(raw, "language", prefix, section="feeds", index=i)
    tags = raw.get("tags", [])
    if isinstance(tags, str):
        tags = [tags]
    if not isinstance(tags, list) or not all(isinstance(t, str) and t.strip() for t in tags):
        raise check.error(
            "must be a list of non-empty strings", f"{prefix}tags", section="feeds", index=i
        )
    for other in earlier:
        if other.url == url:
            raise check.error(
                f"duplicate feed url {url!r}", f"{prefix}url", section="feeds", index=i
            )
        if other.name == name:
            raise check.error(
                f"duplicate feed name {name!r}", f"{prefix}name", section="feeds", index=i
            )
    return Feed(
        url=url,
        name=name,
        interval=interval,
        timezone=tz,
        language=language,
        path=local,
        tags=tuple(t.strip() for t in tags),
    )


def _dedup(check: _Checker, raw: Any) -> DedupSettings:
    """The [dedup] table; every key is optional (defaults: README "Deduplication")."""
    if not isinstance(raw, dict):
        raise check.error("must be a table", "dedup")
    check.known(raw, _DEDUP_KEYS, "dedup.", section="dedup")
    defaults = DedupSettings()
    values: dict[str, Any] = {}
    tracking = raw.get("tracking_params", [])
    if not isinstance(tracking, list) or not all(
        isinstance(t, str) and t.strip() for t in tracking
    ):
        raise check.error(
            "must be a list of query parameter names", "dedup.tracking_params", section="dedup"
        )
    values["tracking_params"] = tuple(t.strip() for t in tracking)
    for key in (
        "copy_threshold",
        "lead_threshold",
        "containment_threshold",
        "story_threshold",
        "headline_threshold",
    ):
        value = raw.get(key, getattr(defaults, key))
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 1:
            raise check.error(
                f"must be a number above 0 and at most 1, not {value!r}",
                f"dedup.{key}",
                section="dedup",
            )
        values[key] = float(value)
    for key in ("story_window", "headline_window"):
        if key in raw:
            try:
                values[key] = parse_duration(raw[key])
            except ValueError as e:
                raise check.error(str(e), f"dedup.{key}", section="dedup") from e
    if "workers" in raw:
        workers = raw["workers"]
        if isinstance(workers, bool) or not isinstance(workers, int) or not 0 <= workers <= 64:
            raise check.error(
                f"must be a whole number of processes from 0 to 64, not {workers!r}",
                "dedup.workers",
                section="dedup",
            )
        values["workers"] = workers
    return DedupSettings(**values)


def _email(check: _Checker, raw: Any) -> EmailConfig | None:
    if raw is None:
        return None
    section = "digest.email"
    if not isinstance(raw, dict):
        raise check.error("must be a table", section)
    check.known(raw, _EMAIL_KEYS, f"{section}.", section=section)
    to = raw.get("to", [])
    if isinstance(to, str):
        to = [to]
    if not isinstance(to, list) or not all(isinstance(t, str) and "@" in t for t in to):
        raise check.error("must be a list of email addresses", f"{section}.to", section=section)
    security = raw.get("security", "none")
    if security not in ("starttls", "ssl", "none"):
        raise check.error(
            f"must be one of starttls, ssl, none, not {security!r}",
            f"{section}.security",
            section=section,
        )
    port = raw.get("port", {"ssl": 465, "starttls": 587}.get(security, 25))
    if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
        raise check.error(
            f"must be a port number, not {port!r}", f"{section}.port", section=section
        )
    prefix = f"{section}."
    return EmailConfig(
        to=tuple(to),
        sender=check.string(raw, "from", prefix, section=section),
        host=check.string(raw, "host", prefix, section=section) or "localhost",
        port=port,
        security=security,
        username=check.string(raw, "username", prefix, section=section),
        password_env=check.string(raw, "password_env", prefix, section=section),
    )


def _default_name(url: str) -> str:
    if is_http_url(url):
        return urlsplit(url).hostname or url
    return Path(url).name or url


# --- editing feeds.toml in place --------------------------------------------------------


def add_feed(path: Path, url: str, *, name: str | None = None, interval: str | None = None) -> Feed:
    """Append a [[feeds]] table to feeds.toml, keeping its comments and order.

    Raises:
        ConfigError: the file is invalid, the URL or name is already configured,
            or the new values are invalid (then nothing is written).
    """
    config = load_config(path)
    if config.feed(url) is not None:
        raise ConfigError(f"feed {url!r} is already configured", path=str(path), key="feeds.url")
    if name is not None and config.feed(name) is not None:
        raise ConfigError(
            f"a feed named {name!r} is already configured", path=str(path), key="feeds.name"
        )
    text = path.read_text(encoding="utf-8")
    doc = tomlkit.parse(text)
    table = tomlkit.table()
    table.add("url", url)
    if name is not None:
        table.add("name", name)
    if interval is not None:
        table.add("interval", interval)
    feeds = doc.get("feeds")
    if feeds is None:
        aot = tomlkit.aot()
        aot.append(table)
        doc.append("feeds", aot)
    else:
        feeds.append(table)
    new_text = tomlkit.dumps(doc)
    new_config = config_from_dict(
        tomllib.loads(new_text), path, new_text
    )  # validate before writing
    _write(path, new_text)
    added = new_config.feed(url)
    assert added is not None
    return added


class NewFeed(NamedTuple):
    """A feed to add to feeds.toml (e.g. from an OPML file)."""

    url: str
    name: str | None = None
    tags: tuple[str, ...] = ()


class AddedFeeds(NamedTuple):
    """What add_feeds did: the feeds added, and those skipped with the reason."""

    added: list[Feed]
    skipped: list[tuple[str, str]]


def add_feeds(path: Path, new: Sequence[NewFeed]) -> AddedFeeds:
    """Append many [[feeds]] tables at once, keeping comments and order; written atomically.

    A URL already configured (or listed twice) is skipped, as is one that is not http(s);
    a name already taken gets a number: "News (2)".

    Raises:
        ConfigError: the file is invalid or cannot be written (then nothing is written).
    """
    config = load_config(path)
    doc = tomlkit.parse(path.read_text(encoding="utf-8"))
    urls = {f.url for f in config.feeds}
    names = {f.name for f in config.feeds}
    skipped: list[tuple[str, str]] = []
    added_urls: list[str] = []
    tables = []
    for item in new:
        url = item.url.strip()
        if not is_http_url(url):
            skipped.append((url, "not an http(s) URL"))
            continue
        if url in urls:
            skipped.append((url, "already configured"))
            continue
        urls.add(url)
        base = (item.name or "").strip() or _default_name(url)
        name, number = base, 2
        while name in names:
            name, number = f"{base} ({number})", number + 1
        names.add(name)
        table = tomlkit.table()
        table.add("url", url)
        table.add("name", name)
        tags = [t.strip() for t in item.tags if t.strip()]
        if tags:
            table.add("tags", tags)
        tables.append(table)
        added_urls.append(url)
    if not tables:
        return AddedFeeds([], skipped)
    feeds = doc.get("feeds")
    if feeds is None:
        feeds = tomlkit.aot()
        doc.append("feeds", feeds)
    for table in tables:
        feeds.append(table)
    new_text = tomlkit.dumps(doc)
    new_config = config_from_dict(tomllib.loads(new_text), path, new_text)
    _write(path, new_text)
    added = [f for f in new_config.feeds if f.url in set(added_urls)]
    return AddedFeeds(added, skipped)


def remove_feed(path: Path, url_or_name: str) -> Feed:
    """Remove the [[feeds]] table with this URL or name, keeping everything else as written.

    Raises:
        ConfigError: the file is invalid or no such feed is configured.
    """
    config = load_config(path)
    feed = config.feed(url_or_name)
    if feed is None:
        known = [f.name for f in config.feeds] + [f.url for f in config.feeds]
        near = difflib.get_close_matches(url_or_name, known, n=1)
        hint = f"; did you mean {near[0]!r}?" if near else ""
        raise ConfigError(
            f"no feed with url or name {url_or_name!r}{hint}", path=str(path), key="feeds"
        )
    doc = tomlkit.parse(path.read_text(encoding="utf-8"))
    feeds = doc["feeds"]
    assert isinstance(feeds, tomlkit.items.AoT)
    index = next(i for i, t in enumerate(feeds) if t.get("url") == feed.url)
    del feeds[index]
    if len(feeds) == 0:
        del doc["feeds"]
    _write(path, tomlkit.dumps(doc))
    return feed


def set_feed_urls(path: Path, changes: Mapping[str, str]) -> None:
    """Replace feed URLs in feeds.toml (old -> new), keeping comments and everything else.

    Raises:
        ConfigError: the file is invalid, an old URL is not configured, or a new URL
            already is (then nothing is written).
    """
    load_config(path)
    doc = tomlkit.parse(path.read_text(encoding="utf-8"))
    feeds = doc.get("feeds")
    tables = list(feeds) if isinstance(feeds, tomlkit.items.AoT) else []
    for old, new in changes.items():
        table = next((t for t in tables if t.get("url") == old), None)
        if table is None:
            raise ConfigError(f"no feed with url {old!r}", path=str(path), key="feeds.url")
        table["url"] = new
    new_text = tomlkit.dumps(doc)
    config_from_dict(tomllib.loads(new_text), path, new_text)  # validate before writing
    _write(path, new_text)


def _write(path: Path, text: str) -> None:
    """Replace the file atomically, so a crash leaves the old or the new config, never half."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise ConfigError(f"cannot write config file: {e}", path=str(path)) from e
