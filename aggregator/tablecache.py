"""Word tables derived from shipped data files, kept on disk for the next process.

Every process that weighs words (the placing process, each feature worker, a command that
groups entries) reads the same large files into the same tables: jieba's IDF table, the
Chinese-English dictionary, the Latin languages' word lists. Parsing them costs ~0.5 s of
CPU a process; reading a table back from its `marshal` form costs a few milliseconds to
~40 ms. A table is kept under a key naming what it was built from (each source file's
path, size and modification time, the builder's version, the interpreter's `marshal`
format): a changed file or builder builds it afresh. The data's length and CRC-32 are
checked before `marshal` reads it.

The folder is ``$AGGREGATOR_CACHE_DIR``, else ``$XDG_CACHE_HOME/aggregator``, else
``~/.cache/aggregator``; ``AGGREGATOR_CACHE_DIR=off`` keeps nothing. The cache only saves
time: a folder that cannot be written, a file damaged or written by another version, and
the table is built from its sources as without it (logged at debug level).
"""

from __future__ import annotations

import logging
import marshal
import os
import struct
import sys
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from aggregator.atomic import replace_file

log = logging.getLogger(__name__)

_T = TypeVar("_T")

#: The environment variable naming the folder ("off": none).
CACHE_ENV = "AGGREGATOR_CACHE_DIR"
#: Bumped when the file layout below changes.
_LAYOUT = 2
#: After the key: the length and CRC-32 of the `marshal` data that follows.
_SUM = struct.Struct("<QI")


def cache_dir() -> Path | None:
    """The folder tables are kept in, or None (``AGGREGATOR_CACHE_DIR=off``)."""
    chosen = os.environ.get(CACHE_ENV)
    if chosen:
        return None if chosen.lower() == "off" else Path(chosen)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base, "aggregator")


def _key(name: str, version: str, sources: Sequence[Path]) -> bytes:
    """What a kept table must have been built from to be used: one line, ending in NUL."""
    parts = [f"aggregator table {_LAYOUT}", name, version, f"marshal {marshal.version}"]
    parts.append("python {}.{}".format(*sys.version_info[:2]))
    for source in sources:
        stat = source.stat()  # OSError: a source that is not there builds nothing to keep
        parts.append(f"{source.resolve()} {stat.st_size} {stat.st_mtime_ns}")
    return "\t".join(parts).encode("utf-8", "surrogateescape") + b"\x00"


def table(
    name: str,
    version: str,
    sources: Sequence[Path],
    build: Callable[[], _T],
    check: Callable[[Any], bool],
) -> _T:
    """`build()`, or what it returned before from the same `sources` and `version`.

    Args:
        name: The table's file name in the folder.
        version: The builder's version: a change of what `build` returns must change it.
        sources: The files `build` reads.
        build: Builds the table; its result must be `marshal`-able (dicts, lists, tuples,
            str, bytes, numbers).
        check: Whether a value read back has the table's shape (a file another version
            wrote under the same key is rebuilt rather than trusted).
    """
    folder = cache_dir()
    try:
        key = _key(name, version, sources) if folder is not None else None
    except OSError as e:
        log.debug("table %s: its sources cannot be read for a key (%s); not kept", name, e)
        key = None
    if folder is None or key is None:
        return build()
    path = folder / f"{name}.marshal"
    try:
        data = path.read_bytes()
    except OSError:
        data = b""
    kept = _payload(data, key)
    if kept is not None:
        try:
            value = marshal.loads(kept)
        except (EOFError, ValueError, TypeError) as e:
            log.debug("table %s: %s cannot be read (%s); built again", name, path, e)
        else:
            if check(value):
                return value  # type: ignore[no-any-return]
            log.debug("table %s: %s holds another shape; built again", name, path)
    value = build()
    try:
        data = marshal.dumps(value)  # type: ignore[arg-type]
        folder.mkdir(parents=True, exist_ok=True)
        replace_file(path, key + _SUM.pack(len(data), zlib.crc32(data)) + data)
    except (OSError, ValueError) as e:  # ValueError: not marshal-able (a builder's bug)
        log.debug("table %s: not kept in %s (%s)", name, folder, e)
    return value


def _payload(data: bytes, key: bytes) -> memoryview | None:
    """The `marshal` data of a kept file, if it was kept under `key` and is whole: its
    length and CRC-32 are checked before `marshal` reads it, as a damaged length inside
    its data can make it allocate gigabytes before it fails."""
    start = len(key) + _SUM.size
    if not data.startswith(key) or len(data) < start:
        return None
    payload = memoryview(data)[start:]
    if _SUM.unpack_from(data, len(key)) != (len(payload), zlib.crc32(payload)):
        log.debug("a kept table is damaged (%d bytes); built again", len(data))
        return None
    return payload
