"""feeds.toml -> Config (frozen dataclasses), and editing feeds.toml in place (tomlkit)."""

from __future__ import annotations

import difflib
import itertools
import re
import shlex
import shutil
import tomllib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import time, timedelta
from functools import lru_cache
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import tomlkit
import tomlkit.items

from aggregator.atomic import replace_file
from aggregator.exceptions import AggregatorError, ConfigError
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
        """Return the configured feed with this URL or name, if any.

        A URL matches when it is the same feed written differently (see feed_key).
        """
        for feed in self.feeds:
            if url_or_name in (feed.url, feed.name):
                return feed
        base = self.path.parent.resolve()
        key = feed_key(url_or_name, base)
        return next((f for f in self.feeds if feed_key(f.url, base) == key), None)


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


def duration_value(value: object) -> timedelta:
    """A duration as feeds.toml writes it: a string for parse_duration, or a number of seconds.

    Raises:
        ValueError: the value is not a positive duration.
    """
    if isinstance(value, str):
        return parse_duration(value)
    # `not value > 0` also refuses NaN.
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ValueError(f"{value!r} is not a duration like '30s' or a number of seconds")
    try:
        return timedelta(seconds=value)
    except OverflowError as e:
        raise ValueError(f"{value!r} seconds is too long a duration") from e


def duration_option(text: str) -> str | int:
    """A duration given on the command line, as feeds.toml will hold it: "15m" as written,
    "300" as 300 seconds.

    Raises:
        ValueError: the text is not a positive duration.
    """
    text = text.strip()
    value: str | int = int(text) if text.isdigit() else text
    duration_value(value)
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


_DEFAULT_PORTS = {"http": 80, "https": 443}


# Config.feed keys every configured feed at each look-up.
@lru_cache(maxsize=65536)
def feed_key(url: str, base: Path) -> str:
    """What two ways of writing one feed share: for an http(s) URL, the URL with scheme and
    host lower-cased, without a default port, a trailing slash or a fragment; for a local
    source, its path resolved against `base` (the folder of feeds.toml).
    """
    url = url.strip()
    if "://" not in url:
        return str((base / url).resolve())
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return url
    scheme = parts.scheme.lower()
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"  # IPv6
    if port is not None and port != _DEFAULT_PORTS.get(scheme):
        host = f"{host}:{port}"
    if parts.username is not None:
        host = f"{parts.netloc.rpartition('@')[0]}@{host}"
    query = f"?{parts.query}" if parts.query else ""
    return f"{scheme}://{host}{parts.path.rstrip('/')}{query}"


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
_EMAIL_KEYS = (
    "to", "from", "host", "port", "security", "username", "password_env", "send_empty",
)  # fmt: skip


class _Checker:
    """Validates one parsed document, building errors that say file, key and line."""

    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.lines = _lines(text)  # as the file counts them (see _lines)

    def error(
        self, message: str, key: str, *, section: str | None = None, index: int = 0
    ) -> ConfigError:
        return ConfigError(
            message, path=str(self.path), key=key, line=self.line(key, section, index)
        )

    def line(self, key: str, section: str | None, index: int = 0) -> int | None:
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
        text = _read(path).removeprefix(_BOM)
    except FileNotFoundError as e:
        raise ConfigError(
            f"config file not found: `{init_command(path)}` writes a commented one to start "
            "from (or name another with --config or $AGGREGATOR_CONFIG)",
            path=str(path),
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
    earlier = _Earlier(
        # Names the user wrote; a name derived for an unnamed feed avoids all of them.
        taken={
            raw["name"].strip()
            for raw in feeds_raw
            if isinstance(raw, dict) and isinstance(raw.get("name"), str)
        }
    )
    feeds = [_feed(check, raw, i, base, earlier) for i, raw in enumerate(feeds_raw)]

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

    def duration(key: str, default: timedelta) -> timedelta:
        if key not in raw:
            return default
        try:
            return duration_value(raw[key])
        except ValueError as e:
            raise check.error(str(e), f"poll.{key}", section=section) from e

    def seconds(key: str, default: float) -> float:
        return duration(key, timedelta(seconds=default)).total_seconds()

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


@dataclass
class _Earlier:
    """The feeds read so far, so that each new one is checked in a look-up, not a pass
    over them (loading 10,000 feeds took 30 s that way: docs/speed.md, Configuration).
    """

    taken: set[str]  # the names written anywhere in the file, and those given so far
    keys: dict[str, int] = field(default_factory=dict)  # feed_key -> index of its feed
    names: dict[str, int] = field(default_factory=dict)  # name -> index of its feed
    urls: list[str] = field(default_factory=list)  # as written, by index


def _feed(check: _Checker, raw: Any, i: int, base: Path, earlier: _Earlier) -> Feed:
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
    name = check.string(raw, "name", prefix, section="feeds", index=i)
    if name is None:
        name = _free_name(_default_names(url), earlier.taken)
    interval = None
    if "interval" in raw:
        try:
            interval = duration_value(raw["interval"])
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
    key = feed_key(url, base)
    same_url, same_name = earlier.keys.get(key), earlier.names.get(name)
    # The first earlier feed that clashes is named, the URL first when it is the same feed.
    if same_url is not None and (same_name is None or same_url <= same_name):
        other = earlier.urls[same_url]
        same = "" if other == url else f" (feeds[{same_url}] is {other!r})"
        raise check.error(
            f"duplicate feed url {url!r}{same}", f"{prefix}url", section="feeds", index=i
        )
    if same_name is not None:
        line = check.line("name", "feeds", same_name)
        at = f" at line {line}" if line is not None else ""
        raise check.error(
            f"duplicate feed name {name!r} (feeds[{same_name}]{at} has it too)",
            f"{prefix}name",
            section="feeds",
            index=i,
        )
    earlier.keys[key] = earlier.names[name] = i
    earlier.urls.append(url)
    earlier.taken.add(name)
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
                values[key] = duration_value(raw[key])
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
    send_empty = raw.get("send_empty", False)
    if not isinstance(send_empty, bool):
        raise check.error(
            f"must be true or false, not {send_empty!r}", f"{section}.send_empty", section=section
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
        send_empty=send_empty,
    )


# Last path segments that say "a feed" rather than which one: left out of default names.
_FEED_WORDS = frozenset({"atom", "feed", "feeds", "index", "rdf", "rss"})


def _default_names(url: str) -> Iterator[str]:
    """Names for a feed the user did not name, shortest first: its host (or file name),
    then host and folder ("feeds.bbci.co.uk/news/technology"), then host and path, then
    numbered ones.
    """
    full = url
    if is_http_url(url):
        parts = urlsplit(url)
        host = parts.hostname or url
        yield host
        try:
            if parts.port is not None and parts.port != _DEFAULT_PORTS.get(parts.scheme.lower()):
                host = f"{host}:{parts.port}"
        except ValueError:
            pass
        path = parts.path.rstrip("/")
        folder, _, last = path.rpartition("/")
        yield host + (folder if "." in last or last.lower() in _FEED_WORDS else path)
        yield host + path
        full = f"{host}{path}?{parts.query}" if parts.query else host + path
        yield full
    else:
        yield Path(url).name or url
        yield url
    for number in itertools.count(2):
        yield f"{full} ({number})"


def _free_name(candidates: Iterator[str], taken: set[str]) -> str:
    return next(name for name in candidates if name and name not in taken)


# --- editing feeds.toml in place --------------------------------------------------------
#
# Edits are made on the lines of the file, not through tomlkit's tree: tomlkit hangs the
# comments between two tables on the first one, so deleting a table took the comments
# above the next one with it, and appending put new tables under them. Each edit is checked
# to mean exactly the intended change (else tomlkit makes it, losing only comment places).

_BOM = "\ufeff"
# A table header, [name] or [[name]], maybe followed by a comment.
_HEADER = re.compile(r"^[ \t]*\[(\[)?[ \t]*([^\[\]#]*?)[ \t]*\]\]?[ \t]*(?:#.*)?$")


class _Table(NamedTuple):
    """A table of the file and the lines it owns, lines[start:end]."""

    name: str
    array: bool  # [[name]]
    start: int
    end: int


def _read(path: Path) -> str:
    """The file's text as written: its line ends, and a UTF-8 BOM as its first character."""
    return path.read_bytes().decode("utf-8")


def _lines(text: str) -> list[str]:
    # Not str.splitlines: it also splits at characters TOML strings may hold (U+2028, ...).
    return [line for line in re.split(r"(?<=\n)", text) if line]


def _is_comment(line: str) -> bool:
    return line.lstrip().startswith("#")


def _tables(lines: Sequence[str]) -> list[_Table]:
    """The tables of a file and the lines each owns.

    A table owns its header, the comment block directly above it, its keys, and comments
    directly below them that a blank line (or the end of the file) ends. Comments after a
    blank line belong to what follows, so they stay when the table goes.
    """
    headers = [
        (number, match)
        for number, line in enumerate(lines)
        if (match := _HEADER.match(line.rstrip("\r\n")))
    ]
    tables = []
    for position, (header, match) in enumerate(headers):
        following = headers[position + 1][0] if position + 1 < len(headers) else len(lines)
        start = header
        while start > 0 and _is_comment(lines[start - 1]):
            start -= 1
        last = header
        for number in range(header + 1, following):
            if lines[number].strip() and not _is_comment(lines[number]):
                last = number
        end = last + 1
        while end < following and _is_comment(lines[end]):
            end += 1
        if end == following < len(lines):
            end = last + 1  # comments running into the next header are that table's
        name = match.group(2).strip("\"' ")
        tables.append(_Table(name, match.group(1) is not None, start, end))
    return tables


def _without_lines(lines: list[str], start: int, end: int) -> list[str]:
    """lines without lines[start:end], leaving no doubled blank line where they were."""
    kept = lines[:start] + lines[end:]
    if start == len(kept):
        while kept and not kept[-1].strip():
            kept.pop()
    elif start == 0:
        while kept and not kept[0].strip():
            kept.pop(0)
    elif not kept[start - 1].strip() and not kept[start].strip():
        del kept[start]
    return kept


def _with_feeds(lines: list[str], tables: Sequence[Mapping[str, Any]], newline: str) -> list[str]:
    """lines with [[feeds]] tables added after the last feed, each after a blank line.

    Without feeds they go after [storage], or at the end of the file.
    """
    layout = _tables(lines)
    feeds = [t for t in layout if t.array and t.name == "feeds"]
    storage = [t for t in layout if not t.array and t.name == "storage"]
    at = feeds[-1].end if feeds else storage[0].end if storage else len(lines)
    before, after = lines[:at], lines[at:]
    if before and not before[-1].endswith(("\n", "\r")):
        before[-1] += newline
    new: list[str] = []
    for table in tables:
        previous = new[-1] if new else before[-1] if before else None
        if previous is not None and previous.strip():
            new.append(newline)
        new.extend(line + newline for line in _render(table).splitlines() if line.strip())
    if after and after[0].strip():
        new.append(newline)
    return before + new + after


def _render(table: Mapping[str, Any]) -> str:
    doc = tomlkit.document()
    doc.append("feeds", _aot([table]))
    return tomlkit.dumps(doc)


def _aot(tables: Sequence[Mapping[str, Any]]) -> tomlkit.items.AoT:
    aot = tomlkit.aot()
    for values in tables:
        table = tomlkit.table()
        for key, value in values.items():
            table.add(key, value)
        aot.append(table)
    return aot


def _loads(text: str) -> dict[str, Any] | None:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return None


def _validate_edit(path: Path, text: str) -> Config:
    """The config an edit would write, validated before it is written.

    Raises:
        ConfigError: the edit is invalid. Its line would be one of the edited text, not of
            the file, so the error names the key alone.
    """
    data = _loads(text)
    if data is None:
        raise ConfigError(
            "cannot edit the file: the result would not be valid TOML", path=str(path)
        )
    try:
        return config_from_dict(data, path, text)
    except ConfigError as e:
        raise ConfigError(e.message, path=str(path), key=e.key) from e


def _append_feeds(path: Path, tables: Sequence[Mapping[str, Any]]) -> Config:
    """Add [[feeds]] tables to the file (see _with_feeds); returns the new config.

    Raises:
        ConfigError: the result is invalid or cannot be written (then nothing is written).
    """
    text = _read(path)
    bom = _BOM if text.startswith(_BOM) else ""
    body = text.removeprefix(_BOM)
    newline = "\r\n" if "\r\n" in body else "\n"
    new_body = "".join(_with_feeds(_lines(body), tables, newline))
    data = tomllib.loads(body)
    if _loads(new_body) != {**data, "feeds": [*data.get("feeds", []), *tables]}:
        doc = tomlkit.parse(body)
        feeds = doc.get("feeds")
        if feeds is None:
            doc.append("feeds", _aot(tables))
        elif isinstance(feeds, tomlkit.items.AoT):
            for table in _aot(tables):
                feeds.append(table)
        else:  # feeds = [{...}, ...]
            for values in tables:
                feeds.append(dict(values))
        new_body = tomlkit.dumps(doc)
    config = _validate_edit(path, new_body)
    _write(path, bom + new_body)
    return config


def refuse_configured(config: Config, url: str, name: str | None = None) -> None:
    """Refuse a feed to add whose URL, however written (see feed_key), or name is taken;
    `feeds add` asks before it fetches anything.

    Raises:
        ConfigError: a configured feed has this URL or this name.
    """
    base = config.path.parent.resolve()
    key = feed_key(url, base)
    existing = next((f for f in config.feeds if feed_key(f.url, base) == key), None)
    if existing is not None:
        written = "" if existing.url == url else f" as {existing.url!r}"
        raise ConfigError(
            f"feed {url!r} is already configured{written} (named {existing.name!r})",
            path=str(config.path),
            key="feeds.url",
        )
    if name is not None and config.feed(name.strip()) is not None:
        raise ConfigError(
            f"a feed named {name!r} is already configured",
            path=str(config.path),
            key="feeds.name",
        )


def add_feed(
    path: Path, url: str, *, name: str | None = None, interval: str | int | None = None
) -> Feed:
    """Add a [[feeds]] table after the last feed, keeping comments with their tables.

    Raises:
        ConfigError: the file is invalid, the URL (however written) or name is already
            configured, or the new values are invalid (then nothing is written).
    """
    config = load_config(path)
    refuse_configured(config, url, name)
    table: dict[str, Any] = {"url": url}
    if name is not None:
        table["name"] = name
    if interval is not None:
        try:
            duration_value(interval)
        except ValueError as e:
            raise ConfigError(str(e), path=str(path), key="interval") from e
        table["interval"] = interval
    added = _append_feeds(path, [table]).feeds[len(config.feeds)]
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


def _numbered(name: str) -> Iterator[str]:
    yield name
    for number in itertools.count(2):
        yield f"{name} ({number})"


def add_feeds(path: Path, new: Sequence[NewFeed]) -> AddedFeeds:
    """Add many [[feeds]] tables at once after the last feed; written atomically.

    A URL already configured (however written) or listed twice is skipped, as is one that
    is not http(s); a name already taken gets a number: "News (2)".

    Raises:
        ConfigError: the file is invalid or cannot be written (then nothing is written).
    """
    config = load_config(path)
    base = path.parent.resolve()
    keys = {feed_key(f.url, base) for f in config.feeds}
    names = {f.name for f in config.feeds}
    skipped: list[tuple[str, str]] = []
    tables: list[dict[str, Any]] = []
    for item in new:
        url = item.url.strip()
        if not is_http_url(url):
            skipped.append((url, "not an http(s) URL"))
            continue
        key = feed_key(url, base)
        if key in keys:
            skipped.append((url, "already configured"))
            continue
        keys.add(key)
        given = (item.name or "").strip()
        name = _free_name(_numbered(given) if given else _default_names(url), names)
        names.add(name)
        table: dict[str, Any] = {"url": url, "name": name}
        tags = [t.strip() for t in item.tags if t.strip()]
        if tags:
            table["tags"] = tags
        tables.append(table)
    if not tables:
        return AddedFeeds([], skipped)
    new_config = _append_feeds(path, tables)
    return AddedFeeds(list(new_config.feeds[len(config.feeds) :]), skipped)


def remove_feed(path: Path, url_or_name: str) -> Feed:
    """Remove the [[feeds]] table with this URL or name, with the comment block directly
    above it; everything else stays as written.

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
    index = config.feeds.index(feed)
    text = _read(path)
    bom = _BOM if text.startswith(_BOM) else ""
    body = text.removeprefix(_BOM)
    lines = _lines(body)
    data = tomllib.loads(body)
    rest = [t for number, t in enumerate(data["feeds"]) if number != index]
    expected = {k: v for k, v in data.items() if k != "feeds"} | ({"feeds": rest} if rest else {})
    spans = [t for t in _tables(lines) if t.array and t.name == "feeds"]
    new_body = None
    if len(spans) == len(data["feeds"]):
        new_body = "".join(_without_lines(lines, spans[index].start, spans[index].end))
    if new_body is None or _loads(new_body) != expected:
        doc = tomlkit.parse(body)
        feeds = doc["feeds"]
        del feeds[index]
        if len(feeds) == 0:
            del doc["feeds"]
        new_body = tomlkit.dumps(doc)
    _write(path, bom + new_body)
    return feed


def set_feed_urls(path: Path, changes: Mapping[str, str]) -> None:
    """Replace feed URLs in feeds.toml (old -> new), keeping comments and everything else.

    Raises:
        ConfigError: the file is invalid, an old URL is not configured, or a new URL
            already is (then nothing is written).
    """
    load_config(path)
    text = _read(path)
    bom = _BOM if text.startswith(_BOM) else ""
    doc = tomlkit.parse(text.removeprefix(_BOM))
    feeds = doc.get("feeds")
    tables = list(feeds) if isinstance(feeds, tomlkit.items.AoT) else []
    for old, new in changes.items():
        table = next((t for t in tables if t.get("url") == old), None)
        if table is None:
            raise ConfigError(f"no feed with url {old!r}", path=str(path), key="feeds.url")
        table["url"] = new
    new_text = tomlkit.dumps(doc)
    _validate_edit(path, new_text)
    _write(path, bom + new_text)


# What `init` copies is package data (aggregator/shipped/), so that every installation has
# it, not only a clone: a copy of the repository's own feeds.toml and seeds/ (a test keeps
# them equal).
_SHIPPED = "shipped"
SEEDS_URL = "seeds"


def init_command(path: Path) -> str:
    """The command that writes a feeds.toml at `path` (for messages about a missing one)."""
    if path == Path("feeds.toml"):
        return "aggregator init"
    if path.name == "feeds.toml":
        return f"aggregator init {shlex.quote(str(path.parent))}"
    return f"aggregator --config {shlex.quote(str(path))} init"


def init_config(path: Path, *, with_seeds: bool = False) -> Path | None:
    """Write the shipped, commented feeds.toml at `path`: without its seeds feed, or with
    it and a copy of the seeds folder next to it.

    Returns:
        The seeds folder written (None without `with_seeds`).

    Raises:
        ConfigError: `path` (or, with `with_seeds`, the seeds folder beside it) already
            exists, or cannot be written; nothing is overwritten.
        AggregatorError: this installation has no shipped feeds.toml or seeds to copy.
    """
    folder = resources.files("aggregator").joinpath(_SHIPPED)
    shipped, seeds = folder.joinpath("feeds.toml"), folder.joinpath(SEEDS_URL)
    if path.exists() or path.is_symlink():
        raise ConfigError(
            "already exists: not overwritten (edit it, or remove it to start again)",
            path=str(path),
        )
    target_seeds = path.parent / SEEDS_URL
    if with_seeds and (target_seeds.exists() or target_seeds.is_symlink()):
        raise ConfigError(
            "already exists: not overwritten (without --with-seeds only feeds.toml is written)",
            path=str(target_seeds),
        )
    if not shipped.is_file() or (with_seeds and not seeds.is_dir()):
        raise AggregatorError(
            f"this installation has no shipped feeds.toml{' or seeds' if with_seeds else ''} "
            f"to copy (looked in {folder}); reinstall aggregator"
        )
    text = shipped.read_bytes().decode("utf-8")  # its line ends as written
    if not with_seeds:
        text = _without_feed(text, SEEDS_URL)
    config_from_dict(tomllib.loads(text.removeprefix(_BOM)), path, text)  # it must load
    stage = "folder"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        stage = "seeds"
        if with_seeds:
            _copy_resource(seeds, target_seeds)
        stage = "feeds.toml"
        with path.open("x", encoding="utf-8", newline="") as file:
            file.write(text)
    except OSError as e:
        # All or nothing (no seeds without the feeds.toml naming them, no half a file),
        # leaving alone what another process made meanwhile.
        ours = not isinstance(e, FileExistsError)
        if with_seeds and (stage == "feeds.toml" or (stage == "seeds" and ours)):
            shutil.rmtree(target_seeds, ignore_errors=True)
        if stage == "feeds.toml" and ours:
            path.unlink(missing_ok=True)
        raise ConfigError(f"cannot write: {e.strerror or e}", path=str(e.filename or path)) from e
    return target_seeds if with_seeds else None


def _copy_resource(source: Traversable, target: Path) -> None:
    """Copy a folder of package data to `target`, which must not exist yet."""
    target.mkdir()
    for item in source.iterdir():
        if item.is_dir():
            _copy_resource(item, target / item.name)
        else:
            (target / item.name).write_bytes(item.read_bytes())


def _without_feed(text: str, url: str) -> str:
    """text without the [[feeds]] table of this URL and the comment block directly above it."""
    lines = _lines(text)
    urls = [t.get("url") for t in tomllib.loads(text.removeprefix(_BOM)).get("feeds", [])]
    spans = [t for t in _tables(lines) if t.array and t.name == "feeds"]
    if url not in urls or len(spans) != len(urls):
        return text
    span = spans[urls.index(url)]
    return "".join(_without_lines(lines, span.start, span.end))


def _write(path: Path, text: str) -> None:
    """Replace the file atomically, so a crash leaves the old or the new config, never half."""
    try:
        replace_file(path, text)
    except OSError as e:
        raise ConfigError(f"cannot write config file: {e}", path=str(path)) from e
