"""Word tables derived from shipped data files, kept on disk for the next process.

Every process that weighs words (the placing process, each feature worker, a command that
groups entries) reads the same large files into the same tables: jieba's IDF table, the
Chinese-English dictionary, the Latin languages' word lists. Parsing them costs ~0.5 s of
CPU a process; reading a table back from its `marshal` form costs a few milliseconds to
~40 ms.

A table is kept under a key naming what it was built from: each source file's path, size,
inode, modification and change times (the modules that build it are sources too, so an
edited builder builds it afresh), the builder's version, the interpreter's version and
its `marshal` format. The file's name holds a hash of the key, so that environments
sharing the folder (two virtualenvs, two Pythons) keep a table each. The data's length and
CRC-32 are checked before `marshal` reads it.

The folder is ``$AGGREGATOR_CACHE_DIR``, else ``$XDG_CACHE_HOME/aggregator`` when that
is set, else ``~/.cache/aggregator``; ``AGGREGATOR_CACHE_DIR=off`` keeps nothing. It is
created readable by its owner only, and a folder another user owns, or that others (or a
group other than the user's own) may write to, is not used: its files could have been
planted (said once a process, at info level). A file read is marked used (its modification
time, at most hourly); a table's files not used for `STALE_SECONDS` (another key's: an
upgrade, an edited builder, an environment gone) are removed when one is written. The
cache only saves time: without a folder, with one that cannot be written, or a file
damaged or written by another version, the table is built from its sources as without it
(logged at debug level).
"""

from __future__ import annotations

import hashlib
import logging
import marshal
import os
import stat
import struct
import sys
import time
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
#: A table's files of other keys not used for this long, and temporary files a killed
#: process left (an hour old), are removed when a table is written.
STALE_SECONDS = 7 * 86400.0
#: A file read is marked used (`os.utime`) when its mark is older than this.
_MARK_SECONDS = 3600.0
#: The folders this process said it does not use (`_trusted`: said once each).
_said: list[Path] = []


def cache_dir() -> Path | None:
    """The folder tables are kept in, or None: ``AGGREGATOR_CACHE_DIR=off``, or no
    absolute folder to default to (no home, a relative ``XDG_CACHE_HOME`` is ignored as
    the XDG specification says)."""
    chosen = os.environ.get(CACHE_ENV)
    if chosen:
        return None if chosen.lower() == "off" else Path(chosen).absolute()
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    base = Path(xdg) if os.path.isabs(xdg) else Path(os.path.expanduser("~"), ".cache")
    return base / "aggregator" if base.is_absolute() else None


def _key(name: str, version: str, sources: Sequence[Path]) -> bytes:
    """What a kept table must have been built from to be used: one line, ending in NUL."""
    parts = [f"aggregator table {_LAYOUT}", name, version, f"marshal {marshal.version}"]
    parts.append(f"python {sys.version}")
    for source in sources:
        found = source.stat()  # OSError: a source that is not there builds nothing to keep
        parts.append(
            f"{source.resolve()} {found.st_size} {found.st_ino} {found.st_mtime_ns} "
            f"{found.st_ctime_ns}"
        )
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
        name: The table's name (its files' names start with it).
        version: The builder's version, for what its source files do not say.
        sources: The files `build` reads, and the modules that hold its code.
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
    path = folder / f"{name}-{hashlib.sha256(key).hexdigest()[:16]}.marshal"
    kept = _payload(path, key) if folder.is_dir() and _trusted(folder) else None
    if kept is not None:
        try:
            value = marshal.loads(kept)
        except Exception as e:  # (MemoryError too: marshal trusts its lengths)
            log.debug("table %s: %s cannot be read (%s); built again", name, path, e)
        else:
            if check(value):
                _mark_used(path)
                return value  # type: ignore[no-any-return]
            log.debug("table %s: %s holds another shape; built again", name, path)
    value = build()
    try:
        if _key(name, version, sources) != key:  # a source replaced while it was read
            return value
        data = marshal.dumps(value)  # type: ignore[arg-type]
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        if _trusted(folder):
            replace_file(path, key + _SUM.pack(len(data), zlib.crc32(data)) + data)
            _remove_stale(folder, name, path)
    except (OSError, ValueError) as e:  # ValueError: not marshal-able (a builder's bug)
        log.debug("table %s: not kept in %s (%s)", name, folder, e)
    return value


def _trusted(folder: Path) -> bool:
    """Whether the folder is this user's, and no one else may write to it: not others, nor
    a group other than the user's own (with a group of one's own, 002 is a usual umask)."""
    try:
        found = folder.stat()
    except OSError:
        return False
    if not hasattr(os, "getuid"):  # (no owners to tell apart)
        return True
    shared = found.st_mode & stat.S_IWOTH or (
        found.st_mode & stat.S_IWGRP and found.st_gid != os.getgid()
    )
    if found.st_uid == os.getuid() and not shared:
        return True
    if folder not in _said:
        _said.append(folder)
        log.info(
            "word tables not kept in %s: it is not this user's, or others may write to it "
            "(each process reads them from their files; set %s)",
            folder,
            CACHE_ENV,
        )
    return False


def _payload(path: Path, key: bytes) -> memoryview | None:
    """The `marshal` data of a kept file, if it was kept under `key` and is whole: its
    length and CRC-32 are checked before `marshal` reads it, as a damaged length inside
    its data can make it allocate gigabytes before it fails."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    start = len(key) + _SUM.size
    if not data.startswith(key) or len(data) < start:
        return None
    payload = memoryview(data)[start:]
    if _SUM.unpack_from(data, len(key)) != (len(payload), zlib.crc32(payload)):
        log.debug("tables: %s is damaged; built again", path)
        return None
    return payload


def _mark_used(path: Path) -> None:
    """Mark a kept file used now (its modification time), at most hourly."""
    try:
        if path.stat().st_mtime < time.time() - _MARK_SECONDS:
            os.utime(path)
    except OSError:
        pass  # (a folder read-only for this process: the file may go in STALE_SECONDS)


def _remove_stale(folder: Path, name: str, kept: Path) -> None:
    """Remove the table's files of other keys not used for `STALE_SECONDS`, and its
    temporary files a killed process left (an hour old)."""
    now = time.time()
    tag = "-" + "?" * 16  # (another table's name may start with this one's)
    files = [(f, STALE_SECONDS) for f in folder.glob(f"{name}{tag}.marshal")]
    files += [(f, _MARK_SECONDS) for f in folder.glob(f".{name}{tag}.marshal.*.tmp")]
    for other, age in files:
        try:
            if other != kept and other.stat().st_mtime < now - age:
                other.unlink()
        except OSError:
            pass  # (another process removed it, or may not)
