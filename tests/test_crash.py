"""Crashes lose nothing: kill -9 the daemon mid-poll and a digest mid-write, again and again."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.feedfarm import Farm

KILLS = 20


@pytest.fixture
def farm() -> Iterator[Farm]:
    # Some latency so that kills land while feeds are being fetched, parsed and written.
    farm = Farm(feeds=24, entries=30, seed=7, latency=0.02).start()
    yield farm
    farm.stop()


def _start(config: Path, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "aggregator", "--config", str(config), *args],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


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


def test_kill_9_during_polls_loses_and_duplicates_nothing(tmp_path: Path, farm: Farm) -> None:
    config = farm.write_config(tmp_path / "feeds.toml")
    text = config.read_text(encoding="utf-8").replace(
        'name = "farm', 'interval = "1s"\nname = "farm'
    )
    config.write_text(text, encoding="utf-8")
    db_path = tmp_path / "farm.db"
    rng = random.Random(2025)
    committed: set[tuple[str, str]] = set()
    for _ in range(KILLS):
        daemon = _start(config, "run")
        time.sleep(rng.uniform(0.6, 2.0))  # start-up is ~0.6 s; then polls are under way
        daemon.send_signal(signal.SIGKILL)
        daemon.wait(timeout=10)
        if not db_path.exists():
            continue
        seen, count = _snapshot(db_path)
        assert count == len(seen), "an entry was stored twice"
        assert committed <= seen, "a committed entry was lost"
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


def test_kill_9_during_digest_writing_leaves_no_half_file(tmp_path: Path, farm: Farm) -> None:
    config = farm.write_config(tmp_path / "feeds.toml")
    poll = _start(config, "poll")
    assert poll.wait(timeout=120) == 0
    out = tmp_path / "digest.html"
    complete = subprocess.run(
        [
            sys.executable,
            "-m",
            "aggregator",
            "--config",
            str(config),
            "digest",
            "--since",
            "2025-01-01",
            "--output",
            str(out),
        ],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        timeout=120,
    )
    assert complete.returncode == 0, complete.stderr
    reference = out.read_bytes()
    assert reference.rstrip().endswith(b"</html>")
    out.unlink()
    rng = random.Random(11)
    for _ in range(KILLS):
        writer = _start(config, "digest", "--since", "2025-01-01", "--output", str(out))
        time.sleep(rng.uniform(0.3, 2.5))
        writer.send_signal(signal.SIGKILL)
        writer.wait(timeout=10)
        if out.exists():  # the old file or the new one, never a part of one
            _assert_whole(out.read_bytes(), reference)
    final = _start(config, "digest", "--since", "2025-01-01", "--output", str(out))
    assert final.wait(timeout=120) == 0
    _assert_whole(out.read_bytes(), reference)
