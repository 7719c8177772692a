"""Editing feeds.toml in place (tomlkit): adding and removing feeds, changing their URLs."""

from __future__ import annotations

import difflib
import itertools
import stat
import tomllib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import tomlkit
import tomlkit.items

from aggregator.atomic import replace_file
from aggregator.config.durations import duration_value
from aggregator.config.identity import _default_names, _free_name, feed_key, is_http_url
from aggregator.config.layout import _BOM, _lines, _read, _tables, _without_lines
from aggregator.config.load import config_from_dict, load_config
from aggregator.config.model import Config
from aggregator.exceptions import ConfigError
from aggregator.types import Feed

# Edits are made on the lines of the file, not through tomlkit's tree: tomlkit hangs the
# comments between two tables on the first one, so deleting a table took the comments
# above the next one with it, and appending put new tables under them. Each edit is checked
# to mean exactly the intended change (else tomlkit makes it, losing only comment places).


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
    # By name alone: `Config.feed` also reads its argument as a path, and a name may be
    # spelt as a configured folder is ("notes").
    if name is not None and any(f.name == name.strip() for f in config.feeds):
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


def _write(path: Path, text: str) -> None:
    """Replace the file atomically, so a crash leaves the old or the new config, never half.

    The file a symlink names is replaced, not the link (a feeds.toml kept in dotfiles or a
    repository and linked in), and it keeps its permissions (one kept private stays so).
    """
    try:
        real = path.resolve()
        replace_file(real, text, mode=stat.S_IMODE(real.stat().st_mode))
    except OSError as e:
        raise ConfigError(f"cannot write config file: {e}", path=str(path)) from e
