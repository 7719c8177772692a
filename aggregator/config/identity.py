"""What identifies a feed: an http(s) URL or a local path (also as a file: URL), the key
two spellings of one feed share, and the name an unnamed feed is given."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit
from urllib.request import url2pathname

#: C0 and C1 control characters (a newline, a tab, an escape).
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def one_line_name(text: str) -> str:
    """A name from elsewhere (an OPML title) as a feed's name may be: its control characters
    (a newline, a tab) as spaces, runs of spaces as one (`name_problem`)."""
    return " ".join(_CONTROL.sub(" ", text).split())


def name_problem(name: str) -> str | None:
    """What is wrong with a feed's name, if anything: one holding a control character (a
    newline, a tab) breaks `feeds list`'s lines and the OPML `feeds export` writes."""
    if not name.strip():
        return "must not be empty"
    found = _CONTROL.search(name)
    if found is not None:
        return f"must not hold control characters ({found.group()!r}), not {name!r}"
    return None


def is_http_url(url: str) -> bool:
    """True for an absolute http(s) URL with a host, and a port from 0 to 65535 if any."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (read for its ValueError: a port out of range, or not one)
    except ValueError:
        return False
    host = parts.hostname or ""
    return (
        parts.scheme.lower() in ("http", "https")
        and bool(host)
        and not any(c.isspace() for c in host)
    )


def file_url_path(url: str) -> Path | None:
    """The local path a file: URL names (``file:///a/b``, ``file://localhost/a/b`` or
    ``file:/a/b``); None for anything else.

    Raises:
        ValueError: a file: URL naming another host (nothing here can read it).
    """
    if url[:5].lower() != "file:":
        return None
    parts = urlsplit(url.strip())
    if parts.netloc not in ("", "localhost"):
        raise ValueError("a file:// URL must name a file on this machine")
    if not parts.path:
        raise ValueError("a file: URL must name a file or folder")
    return Path(url2pathname(parts.path))


_DEFAULT_PORTS = {"http": 80, "https": 443}


def local_path(text: str, base: Path) -> Path:
    """A path as feeds.toml writes it: ``~/…`` in the home folder, as a shell reads it (not a
    folder named "~" beside the file), else relative to `base` (the folder of feeds.toml)."""
    if text == "~" or text.startswith("~/"):
        return Path.home() / text[2:]
    return base / text


# Config.feed keys every configured feed at each look-up.
@lru_cache(maxsize=65536)
def feed_key(url: str, base: Path) -> str:
    """What two ways of writing one feed share: for an http(s) URL, the URL with scheme and
    host lower-cased, without a default port, a trailing slash or a fragment; for a local
    source, its path resolved against `base` (the folder of feeds.toml).
    """
    url = url.strip()
    try:
        local = file_url_path(url)
    except ValueError:
        return url
    if local is not None:
        return str((base / local).resolve())
    if "://" not in url:
        return str(local_path(url, base).resolve())
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
        try:
            local = file_url_path(url)
        except ValueError:
            local = None
        yield (local or Path(url)).name or url
        yield url
    for number in itertools.count(2):
        yield f"{full} ({number})"


def _free_name(candidates: Iterator[str], taken: set[str]) -> str:
    return next(name for name in candidates if name and name not in taken)
