"""Crashes lose nothing: kill -9 the daemon mid-poll and a digest mid-write, at chosen points.

Each child runs the real CLI under `CHILD`, which stops it at a chosen point of its work
(an SQL statement, a step of writing a file), reports the point on a pipe and waits there:
the parent kills it only after that report, so every kill provably lands mid-work.
"""

from __future__ import annotations

import os
import re
import select
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.feedfarm import Farm

pytestmark = pytest.mark.slow

# Runs the CLI; the `CRASH_COUNT`-th event matching the regex `CRASH_AT` is written to the
# file descriptor `CRASH_REPORT`, and the thread that met it waits there to be killed.
# Events: each SQL statement as SQLite starts it (a trace callback on every connection),
# "created PATH" (a new file opened, still empty: atomic.replace_file's temporary file),
# "replace SRC -> DST" and "replaced SRC -> DST" (before and after).
CHILD = r"""
import builtins, os, re, sqlite3, sys, threading

point = re.compile(os.environ["CRASH_AT"])
count = int(os.environ["CRASH_COUNT"])
report = int(os.environ["CRASH_REPORT"])
seen = 0
lock = threading.Lock()


def reached(event):
    global seen
    if not point.search(event):
        return
    with lock:
        seen += 1
        if seen != count:
            return
    os.write(report, " ".join(event.split())[:300].encode() + b"\n")
    threading.Event().wait()  # here until kill -9


connect = sqlite3.connect


def traced(*args, **kwargs):
    db = connect(*args, **kwargs)
    db.set_trace_callback(reached)
    return db


replace, open_file = os.replace, builtins.open


def replace_(src, dst, *args, **kwargs):
    reached(f"replace {src} -> {dst}")
    replace(src, dst, *args, **kwargs)
    reached(f"replaced {src} -> {dst}")


def open_(file, mode="r", *args, **kwargs):
    opened = open_file(file, mode, *args, **kwargs)
    if "x" in mode:
        reached(f"created {file}")
    return opened


sqlite3.connect, os.replace, builtins.open = traced, replace_, open_
sys.argv = ["aggregator", *sys.argv[1:]]
from aggregator.cli import main

main()
"""


@pytest.fixture
def farm() -> Iterator[Farm]:
    # Some latency so that feeds are fetched concurrently while others are written.
    farm = Farm(feeds=24, entries=30, seed=7, latency=0.02).start()
    yield farm
    farm.stop()


@pytest.fixture
def small_farm() -> Iterator[Farm]:
    # Each digest kill lands at a chosen step of the write, not at a random time that a
    # bigger digest made likelier to fall inside the write: a few feeds suffice.
    farm = Farm(feeds=8, entries=10, seed=7).start()
    yield farm
    farm.stop()


def _start(config: Path, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "aggregator", "--config", str(config), *args],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _kill_at(config: Path, point: str, count: int, *args: str) -> str:
    """Run the CLI with `args` until the `count`-th event matching `point`, kill -9 it
    there, and return the event it was killed at."""
    read, write = os.pipe()
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, "--config", str(config), *args],
        env={
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "CRASH_AT": point,
            "CRASH_COUNT": str(count),
            "CRASH_REPORT": str(write),
        },
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        pass_fds=[write],
    )
    os.close(write)
    try:
        ready, _, _ = select.select([read], [], [], 60)
        event = os.read(read, 4096).decode() if ready else ""
        assert event, f"{' '.join(args)} never reached {point!r} #{count} (exit {child.poll()})"
        assert child.poll() is None, "the child must still be at the point when killed"
        return event.strip()
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
        os.close(read)


def _snapshot(db_path: Path) -> tuple[set[tuple[str, str]], int]:
    with sqlite3.connect(db_path, timeout=30) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master")}
        # killed before its first migration committed: an empty database, nothing to lose
        rows = (
            db.execute("SELECT feed_url, guid FROM entries").fetchall()
            if "entries" in tables
            else []
        )
    db.close()
    return {(feed, guid) for feed, guid in rows}, len(rows)


# Where the daemon is killed, in order: while a poll's entries are inserted (the first
# poll's, then later ones'), at a commit, while deduplication writes where entries go (its
# first write, a later one), while a poll is recorded once every entry is stored. Each kill
# leaves work for the next start (entries not committed, not placed): each point is reached.
DAEMON_KILLS = [
    (r"^INSERT INTO entries", 1),
    (r"^INSERT INTO entries", 47),
    (r"^COMMIT$", 4),
    (r"^INSERT INTO entries", 130),
    (r"^UPDATE entries SET", 1),
    (r"^UPDATE entries SET", 200),
    (r"^INSERT INTO polls", 30),
]


def test_kill_9_during_polls_loses_and_duplicates_nothing(tmp_path: Path, farm: Farm) -> None:
    config = farm.write_config(tmp_path / "feeds.toml")
    text = config.read_text(encoding="utf-8").replace(
        'name = "farm', 'interval = "1s"\nname = "farm'
    )
    config.write_text(text, encoding="utf-8")
    db_path = tmp_path / "farm.db"
    committed: set[tuple[str, str]] = set()
    for point, count in DAEMON_KILLS:
        event = _kill_at(config, point, count, "run")
        assert event.startswith(point.strip("^$")), event
        seen, count_stored = _snapshot(db_path)
        assert count_stored == len(seen), "an entry was stored twice"
        assert committed <= seen, "a committed entry was lost"
        # a poll is one transaction (docs/storage.md): the one killed mid-insert left nothing
        assert set(Counter(feed for feed, _ in seen).values()) <= {farm.entries}
        committed = seen
    # and the daemon resumes: left alone, it stores every entry of the farm
    daemon = _start(config, "run")
    expected = len(farm.feeds) * farm.entries
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            if db_path.exists() and _snapshot(db_path)[1] >= expected:
                break
            time.sleep(0.5)
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=20)
    seen, count = _snapshot(db_path)
    assert count == len(seen) == expected
    assert committed <= seen


def _assert_whole(html: bytes, reference: bytes) -> None:
    """The same digest as the reference (up to the generation time it prints)."""
    assert html.rstrip().endswith(b"</html>")
    for marker in (b"<li", b"<h3", b"href="):
        assert html.count(marker) == reference.count(marker)


def test_kill_9_during_digest_writing_leaves_no_half_file(tmp_path: Path, small_farm: Farm) -> None:
    config = small_farm.write_config(tmp_path / "feeds.toml")
    poll = _start(config, "poll")
    assert poll.wait(timeout=120) == 0
    out = tmp_path / "digest.html"
    digest = ["digest", "--since", "2025-01-01", "--output", str(out)]
    complete = _start(config, *digest)
    assert complete.wait(timeout=120) == 0
    reference = out.read_bytes()
    assert reference.rstrip().endswith(b"</html>")
    out.unlink()
    name = re.escape(f"{out.parent}/.{out.name}.")
    dst = re.escape(str(out))
    made, renaming, renamed = (
        f"^created {name}",
        f"^replace {name}.* -> {dst}$",
        f"^replaced {name}",
    )
    # Killed about to rename (no digest file yet), just after; then with that file there:
    # the temporary file just made (empty), written whole but not renamed, renamed.
    for point in (renaming, renamed, made, renaming, renamed):
        before = out.read_bytes() if out.exists() else None
        _kill_at(config, point, 1, *digest)
        if point == renamed:
            assert out.exists()
        else:  # the old file or none, never a part of the new one
            assert (out.read_bytes() if out.exists() else None) == before
        if out.exists():
            _assert_whole(out.read_bytes(), reference)
    final = _start(config, *digest)
    assert final.wait(timeout=120) == 0
    _assert_whole(out.read_bytes(), reference)
