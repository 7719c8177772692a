"""Reading and validating feeds.toml into a Config; errors name the file, the key and the line."""

from __future__ import annotations

import difflib
import os
import re
import shlex
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import time, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from aggregator.config.durations import duration_value
from aggregator.config.identity import (
    _default_names,
    _free_name,
    feed_key,
    file_url_path,
    is_http_url,
    local_path,
    name_problem,
)
from aggregator.config.layout import _BOM, _lines, _read
from aggregator.config.model import (
    CommandConfig,
    Config,
    DigestConfig,
    EmailConfig,
    NotifyConfig,
    NotifyEmailConfig,
    PollConfig,
    ServeConfig,
    WatchConfig,
    WebhookConfig,
)
from aggregator.exceptions import ConfigError
from aggregator.types import DedupSettings, Feed, Topic

_TOP_KEYS = (
    "storage", "feeds", "topics", "digest", "poll", "dedup", "watches", "notify", "serve",
)  # fmt: skip
_SERVE_KEYS = ("host", "port", "token_env")
_STORAGE_KEYS = ("path", "url", "password_env")
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
    "lease",
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
_WATCH_KEYS = (
    "name", "keywords", "all", "none", "topics", "feeds", "min_sources", "renotify_sources",
    "notify",
)  # fmt: skip
_NOTIFY_KEYS = ("webhook", "email", "command")
#: The longest [notify.*] timeout, in seconds: under watcher.ALERT_CLAIM_STALE (15 minutes).
MAX_ALERT_TIMEOUT = 600
_WEBHOOK_KEYS = ("url", "secret_env", "format", "timeout")
_WEBHOOK_FORMATS = ("json", "slack", "discord", "ntfy")
_NOTIFY_EMAIL_KEYS = ("to",)
_COMMAND_KEYS = ("argv", "timeout")
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
                hint = _did_you_mean(key, allowed) or f"; valid keys: {', '.join(allowed)}"
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

    def no_nul(self, data: Mapping[str, Any]) -> None:
        """Refuse the NUL character (`\\u0000`) in any string: PostgreSQL's text cannot
        hold it, a program's arguments neither; a name stored on SQLite would differ."""

        def walk(value: Any, key: str, section: str | None, index: int) -> None:
            if isinstance(value, str) and "\x00" in value:
                raise self.error(
                    "must not hold the NUL character (\\u0000)", key, section=section, index=index
                )
            if isinstance(value, list):
                for item in value:
                    walk(item, key, section, index)
            elif isinstance(value, dict):
                for name, item in value.items():
                    walk(item, f"{key}.{name}", section, index)

        for name, value in data.items():
            if isinstance(value, list) and value and all(isinstance(t, dict) for t in value):
                for i, table in enumerate(value):  # [[name]]: each table's keys by its index
                    for key, item in table.items():
                        walk(item, f"{name}[{i}].{key}", name, i)
            elif isinstance(value, dict):
                for key, item in value.items():
                    inner = f"{name}.{key}" if isinstance(item, dict) else name
                    walk(item, f"{name}.{key}", inner, 0)
            else:
                walk(value, name, None, 0)


def _postgres(
    check: _Checker, storage: Mapping[str, Any], path: str | None
) -> tuple[str | None, str | None]:
    """`[storage] url`, a PostgreSQL database's URL without a password, and `password_env`,
    the environment variable holding it; never with `path` (SQLite)."""
    url = check.string(storage, "url", "storage.", section="storage")
    env = check.string(storage, "password_env", "storage.", section="storage")
    if url is None:
        if env is not None:
            raise check.error(
                "needs [storage] url (a password is for a PostgreSQL server)",
                "storage.password_env",
                section="storage",
            )
        return None, None
    if path is not None:
        raise check.error(
            "give either url (PostgreSQL) or path (an SQLite file), not both",
            "storage.url",
            section="storage",
        )
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres") or not parts.hostname:
        raise check.error(
            f"{url!r} is not a PostgreSQL URL (postgresql://user@host:port/dbname)",
            "storage.url",
            section="storage",
        )
    if parts.password is not None or "password" in parse_qs(parts.query):
        raise check.error(
            "holds a password: keep it out of the file, in an environment variable that "
            "password_env names",
            "storage.url",
            section="storage",
        )
    if env is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", env):
        raise check.error(
            f"{env!r} is not an environment variable's name",
            "storage.password_env",
            section="storage",
        )
    return url, env


def _did_you_mean(value: str, choices: Sequence[str]) -> str:
    """ "; did you mean 'x'?" for the nearest of `choices`, or "" when none is near."""
    near = difflib.get_close_matches(value, choices, n=1)
    return f"; did you mean {near[0]!r}?" if near else ""


def load_config(path: Path) -> Config:
    """Read and validate feeds.toml. The environment variables it names are read by the
    commands that need them (`require_alert_secrets`, `serve`'s token, the SMTP password).

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


def require_alert_secrets(config: Config, env: Mapping[str, str] | None = None) -> None:
    """Check what delivering alerts reads from the environment: `[notify.webhook]
    secret_env`, when a watch sends on the webhook, names a variable that is set. Asked by
    the commands that deliver alerts (`poll`, `run`), not when the file is read: the others
    (`status`, `feeds`, `digest`, `serve`, `watches test`) never use the secret.

    Args:
        config: The loaded configuration.
        env: The environment; default os.environ.

    Raises:
        ConfigError: the variable is unset or empty; it names the file, the key and its line.
    """
    webhook = config.notify.webhook
    if webhook is None or webhook.secret_env is None:
        return
    if not any("webhook" in watch.notify for watch in config.watches):
        return
    if (os.environ if env is None else env).get(webhook.secret_env):
        return
    try:
        text = _read(config.path).removeprefix(_BOM)
    except (OSError, UnicodeDecodeError):
        text = ""  # the error says the key, without its line
    raise _Checker(config.path, text).error(
        f"the environment variable {webhook.secret_env} is not set (it holds the key the "
        "webhook's body is signed with; alerts cannot be sent without it)",
        "notify.webhook.secret_env",
        section="notify.webhook",
    )


def config_from_dict(
    data: Mapping[str, Any],
    path: Path,
    text: str = "",
) -> Config:
    """Validate an already parsed feeds.toml document (see load_config)."""
    check = _Checker(path, text)
    base = path.parent.resolve()
    check.known(data, _TOP_KEYS, "")
    check.no_nul(data)

    storage = data.get("storage", {})
    if not isinstance(storage, dict):
        raise check.error("must be a table", "storage")
    check.known(storage, _STORAGE_KEYS, "storage.", section="storage")
    path_given = check.string(storage, "path", "storage.", section="storage")
    storage_path = local_path(path_given or "aggregator.db", base)
    storage_url, password_env = _postgres(check, storage, path_given)

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
    output = local_path(
        check.string(digest_raw, "output", "digest.", section="digest") or "digests", base
    )
    email = _email(check, digest_raw.get("email"))
    dedup = _dedup(check, data.get("dedup", {}))
    poll = _poll(check, data.get("poll", {}), shared=storage_url is not None)
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
    notify = _notify(check, data.get("notify", {}), email)
    watches = _watches(check, data.get("watches", []), notify, topics)
    return Config(
        path=path,
        storage_path=storage_path,
        storage_url=storage_url,
        storage_password_env=password_env,
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
        watches=watches,
        notify=notify,
        serve=_serve(check, data.get("serve", {})),
    )


def _serve(check: _Checker, raw: Any) -> ServeConfig:
    section = "serve"
    if not isinstance(raw, dict):
        raise check.error("must be a table", section)
    check.known(raw, _SERVE_KEYS, "serve.", section=section)
    host = check.string(raw, "host", "serve.", section=section) or ServeConfig.host
    port = raw.get("port", ServeConfig.port)
    if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
        raise check.error(
            f"must be a port number (1 to 65535), not {port!r}", "serve.port", section=section
        )
    token_env = check.string(raw, "token_env", "serve.", section=section)
    return ServeConfig(host=host, port=port, token_env=token_env)


def _poll(check: _Checker, raw: Any, *, shared: bool) -> PollConfig:
    """[poll]; `shared`: the store is PostgreSQL, where `lease` is used (SQLite ignores it)."""
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
        lease=duration("lease", defaults.lease),
    )
    if config.min_interval > config.max_interval:
        raise check.error(
            "must not be longer than max_interval", "poll.min_interval", section=section
        )
    if "lease" not in raw and config.lease.total_seconds() <= config.deadline:
        config = replace(config, lease=timedelta(seconds=config.deadline + 60))
    if shared and config.lease.total_seconds() <= config.deadline:
        # A lease ending while its fetch may still run would let a second poller fetch it.
        raise check.error("must be longer than deadline", "poll.lease", section=section)
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
    try:
        local = file_url_path(url)
    except ValueError as e:
        raise check.error(f"{url!r}: {e}", f"{prefix}url", section="feeds", index=i) from e
    if local is not None:
        local = (base / local).resolve()
    elif "://" in url:
        if not is_http_url(url):
            raise check.error(
                f"{url!r} is not an http(s) URL or a local path",
                f"{prefix}url",
                section="feeds",
                index=i,
            )
    else:
        local = local_path(url, base).resolve()
    name = check.string(raw, "name", prefix, section="feeds", index=i)
    problem = None if name is None else name_problem(name)
    if problem is not None:
        raise check.error(problem, f"{prefix}name", section="feeds", index=i)
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


def _strings(
    check: _Checker, raw: Mapping[str, Any], key: str, prefix: str, section: str, index: int = 0
) -> tuple[str, ...]:
    """An optional list of non-empty strings (stripped)."""
    value = raw.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise check.error(
            "must be a list of non-empty strings", f"{prefix}{key}", section=section, index=index
        )
    return tuple(v.strip() for v in value)


def _watches(
    check: _Checker, raw: Any, notify: NotifyConfig, topics: list[Topic]
) -> tuple[WatchConfig, ...]:
    """The [[watches]] tables (README "Watches", docs/watches.md)."""
    section = "watches"
    if not isinstance(raw, list):
        raise check.error("must be an array of tables ([[watches]])", section)
    configured = {"webhook": notify.webhook, "email": notify.email, "command": notify.command}
    topic_names = [t.name for t in topics]
    seen: dict[str, int] = {}
    watches = []
    for i, table in enumerate(raw):
        prefix = f"watches[{i}]."
        if not isinstance(table, dict):
            raise check.error("must be a table", f"watches[{i}]")
        check.known(table, _WATCH_KEYS, prefix, section=section, index=i)
        name = check.string(table, "name", prefix, section=section, index=i, required=True)
        assert name is not None
        if name in seen:
            line = check.line("name", section, seen[name])
            at = f" at line {line}" if line is not None else ""
            raise check.error(
                f"duplicate watch name {name!r} (watches[{seen[name]}]{at} has it too)",
                f"{prefix}name",
                section=section,
                index=i,
            )
        seen[name] = i
        if "keywords" not in table:
            raise check.error(
                "missing required key 'keywords'", f"{prefix}keywords", section=section, index=i
            )
        keywords = _strings(check, table, "keywords", prefix, section, i)
        if not keywords:
            raise check.error(
                "a watch needs at least one keyword", f"{prefix}keywords", section=section, index=i
            )
        wanted_topics = _strings(check, table, "topics", prefix, section, i)
        for topic in wanted_topics:
            if topic not in topic_names:
                raise check.error(
                    f"no [[topics]] is named {topic!r}{_did_you_mean(topic, topic_names)}",
                    f"{prefix}topics",
                    section=section,
                    index=i,
                )
        counts = {}
        for key, least, default in (("min_sources", 1, 1), ("renotify_sources", 0, 0)):
            value = table.get(key, default)
            if not isinstance(value, int) or isinstance(value, bool) or value < least:
                raise check.error(
                    f"must be a whole number of at least {least}, not {value!r}",
                    f"{prefix}{key}",
                    section=section,
                    index=i,
                )
            counts[key] = value
        channels = _strings(check, table, "notify", prefix, section, i)
        if not channels:
            raise check.error(
                f"must name at least one channel: {', '.join(_NOTIFY_KEYS)}",
                f"{prefix}notify",
                section=section,
                index=i,
            )
        for channel in channels:
            if channel not in configured:
                hint = _did_you_mean(channel, _NOTIFY_KEYS)
                raise check.error(
                    f"unknown channel {channel!r}{hint} (channels: {', '.join(_NOTIFY_KEYS)})",
                    f"{prefix}notify",
                    section=section,
                    index=i,
                )
            if configured[channel] is None:
                raise check.error(
                    f"channel {channel!r} has no [notify.{channel}] table",
                    f"{prefix}notify",
                    section=section,
                    index=i,
                )
        watches.append(
            WatchConfig(
                name=name,
                keywords=keywords,
                all=_strings(check, table, "all", prefix, section, i),
                none=_strings(check, table, "none", prefix, section, i),
                topics=wanted_topics,
                feeds=_strings(check, table, "feeds", prefix, section, i),
                min_sources=counts["min_sources"],
                renotify_sources=counts["renotify_sources"],
                notify=tuple(dict.fromkeys(channels)),
            )
        )
    return tuple(watches)


def _notify(check: _Checker, raw: Any, email: EmailConfig | None) -> NotifyConfig:
    """The [notify] tables: the channels watches send alerts on."""
    if not isinstance(raw, dict):
        raise check.error("must be a table", "notify")
    check.known(raw, _NOTIFY_KEYS, "notify.", section="notify")
    for key, table in raw.items():
        if not isinstance(table, dict):
            raise check.error("must be a table", f"notify.{key}", section=f"notify.{key}")

    def timeout(table: Mapping[str, Any], section: str, default: float) -> float:
        if "timeout" not in table:
            return default
        try:
            seconds = duration_value(table["timeout"]).total_seconds()
        except ValueError as e:
            raise check.error(str(e), f"{section}.timeout", section=section) from e
        # A delivery still running past watcher.ALERT_CLAIM_STALE (15 minutes) would be taken
        # for a crashed one and sent again by another process.
        if seconds > MAX_ALERT_TIMEOUT:
            raise check.error(
                f"at most {MAX_ALERT_TIMEOUT // 60} minutes (a delivery running longer is "
                "taken for a crashed one)",
                f"{section}.timeout",
                section=section,
            )
        return seconds

    webhook = None
    if "webhook" in raw:
        section, table = "notify.webhook", raw["webhook"]
        check.known(table, _WEBHOOK_KEYS, f"{section}.", section=section)
        url = check.string(table, "url", f"{section}.", section=section, required=True)
        assert url is not None
        if not is_http_url(url):
            raise check.error(f"{url!r} is not an http(s) URL", f"{section}.url", section=section)
        secret_env = check.string(table, "secret_env", f"{section}.", section=section)
        fmt = table.get("format", "json")
        if fmt not in _WEBHOOK_FORMATS:
            raise check.error(
                f"must be one of {', '.join(_WEBHOOK_FORMATS)}, not {fmt!r}",
                f"{section}.format",
                section=section,
            )
        webhook = WebhookConfig(
            url=url,
            secret_env=secret_env,
            format=fmt,
            timeout=timeout(table, section, WebhookConfig.timeout),
        )
    mail = None
    if "email" in raw:
        section, table = "notify.email", raw["email"]
        check.known(table, _NOTIFY_EMAIL_KEYS, f"{section}.", section=section)
        if email is None:
            raise check.error(
                "alerts by email are sent through the [digest.email] SMTP settings: add that "
                "table (host, port, security, from)",
                section,
                section=section,
            )
        to = table.get("to", [])
        if isinstance(to, str):
            to = [to]
        if not isinstance(to, list) or not to:
            raise check.error("must be a list of email addresses", f"{section}.to", section=section)
        for address in to:
            if not _is_address(address):
                raise check.error(
                    f"{address!r} is not an email address", f"{section}.to", section=section
                )
        mail = NotifyEmailConfig(to=tuple(to))
    command = None
    if "command" in raw:
        section, table = "notify.command", raw["command"]
        check.known(table, _COMMAND_KEYS, f"{section}.", section=section)
        argv = table.get("argv")
        if (
            not isinstance(argv, list)
            or not argv
            or not all(isinstance(a, str) for a in argv)
            or not argv[0].strip()
        ):
            raise check.error(
                "must be a non-empty list of strings: the program, then its arguments (no shell)",
                f"{section}.argv",
                section=section,
            )
        command = CommandConfig(
            argv=tuple(argv), timeout=timeout(table, section, CommandConfig.timeout)
        )
    return NotifyConfig(webhook=webhook, email=mail, command=command)


def _is_address(value: object) -> bool:
    """An address such as "a@b.org" or "Name <a@b.org>" (one, with a local part and a domain)."""
    from email.utils import parseaddr  # only for a file with [notify.email]

    if not isinstance(value, str) or "," in value:
        return False
    _name, address = parseaddr(value)
    local, at, domain = address.rpartition("@")
    return bool(at and local and domain and " " not in address)


def init_command(path: Path) -> str:
    """The command that writes a feeds.toml at `path` (for messages about a missing one)."""
    if path == Path("feeds.toml"):
        return "aggregator init"
    if path.name == "feeds.toml":
        return f"aggregator init {shlex.quote(str(path.parent))}"
    return f"aggregator --config {shlex.quote(str(path))} init"
