"""The pollers `status` lists (docs/postgres.md, Several pollers): each `aggregator run`
records itself in the store when it starts, its heartbeat, and its clean stop; `status`
shows each one running, stopped or SILENT with the feeds it holds leases on now, on
SQLite (its one daemon) as on PostgreSQL (daemons of several hosts); a heartbeat that
cannot be written stops nothing."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from aggregator import scheduler
from aggregator.cli.status import _ago
from aggregator.config import load_config
from aggregator.core import make_aggregator
from aggregator.liveness import SHOWN, SILENT_AFTER, Condition, condition, shown
from aggregator.scheduler import Daemon
from aggregator.storage import PollerRecord
from aggregator.storage.lock import DatabaseLock, read_report
from tests.conftest import ROOT, FrozenClock, news_rss, wait_until, write_config
from tests.feedserver import FeedServer, respond

T0 = datetime(2025, 2, 12, 12, 0, tzinfo=UTC)
EVERY = timedelta(seconds=30)
HOST = socket.gethostname()


# --- the rules (pure) ----------------------------------------------------------------------


def test_a_poller_runs_until_it_misses_three_heartbeats_or_stops() -> None:
    poller = PollerRecord("h:1:a", "h", 1, T0, T0, None, EVERY)
    assert condition(poller, T0) is Condition.RUNNING
    assert condition(poller, T0 + SILENT_AFTER * EVERY) is Condition.RUNNING
    assert condition(poller, T0 + SILENT_AFTER * EVERY + timedelta(seconds=1)) is Condition.SILENT
    # Its own interval counts: a poller beating every 2 s is silent after 6 s.
    quick = poller._replace(every=timedelta(seconds=2))
    assert condition(quick, T0 + timedelta(seconds=7)) is Condition.SILENT
    stopped = poller._replace(stopped=T0)
    assert condition(stopped, T0 + timedelta(days=2)) is Condition.STOPPED


def test_status_shows_pollers_seen_within_a_day_or_not_stopped() -> None:
    stopped = PollerRecord("h:1:a", "h", 1, T0, T0, T0, EVERY)
    assert shown(stopped, T0 + SHOWN) and not shown(stopped, T0 + SHOWN + timedelta(seconds=1))
    dead = stopped._replace(stopped=None)  # silent, until the store forgets it
    assert shown(dead, T0 + timedelta(days=6))


def test_ago_says_how_long_ago_in_words() -> None:
    words = [_ago(T0 - timedelta(seconds=s), T0) for s in (0, 12, 119, 120, 7199, 7200, 172800)]
    assert words == ["0 s ago", "12 s ago", "119 s ago", "2 min ago", "119 min ago", "2 h ago"] + [
        "2 d ago"
    ]
    assert _ago(T0 + timedelta(seconds=5), T0) == "0 s ago"  # a host whose clock is ahead


# --- the daemon's record ---------------------------------------------------------------------


def _feed_config(tmp_path: Path, interval: str = "1h") -> Path:
    (tmp_path / "feed.rss").write_text(news_rss("F"), encoding="utf-8")
    return write_config(
        tmp_path, f'[[feeds]]\nurl = "feed.rss"\nname = "F"\ninterval = "{interval}"\n'
    )


def test_the_daemon_records_its_start_heartbeats_and_stop_by_its_clock(
    tmp_path: Path, clock: FrozenClock
) -> None:
    agg = make_aggregator(load_config(_feed_config(tmp_path)), clock=clock)
    daemon = Daemon(agg, rng=random.Random(1))
    try:
        assert agg.pollers() == []
        started = clock()
        daemon.start(paused=True)
        (listed,) = agg.pollers()
        assert (listed.poller.host, listed.poller.pid) == (HOST, os.getpid())
        assert listed.poller.owner.startswith(f"{HOST}:{os.getpid()}:")
        assert (listed.poller.started, listed.poller.seen, listed.poller.stopped) == (
            started,
            started,
            None,
        )
        assert listed.poller.every == timedelta(seconds=scheduler.HEARTBEAT_EVERY)
        job = daemon.scheduler.get_job("heartbeat")
        assert job is not None and job.trigger.interval == listed.poller.every
        clock.advance(seconds=30)
        assert daemon.heartbeat()
        assert agg.pollers()[0].poller.seen == started + timedelta(seconds=30)
        clock.advance(seconds=5)
        daemon.stop(grace=1)
        (stopped,) = agg.pollers()
        assert stopped.poller.stopped == stopped.poller.seen == started + timedelta(seconds=35)
        assert condition(stopped.poller, clock()) is Condition.STOPPED
        clock.advance(seconds=30)
        assert not daemon.heartbeat()  # stopped: nothing written after the stop
        assert agg.pollers()[0].poller.stopped == started + timedelta(seconds=35)
    finally:
        daemon.stop(grace=1)
        agg.close()


def test_a_heartbeat_that_cannot_be_written_stops_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database refuses the pollers' rows under a running daemon (a trigger): its
    heartbeats fail, are logged and reported in its lock file (`status` says it cannot
    write, exit 1), and it polls on; the trigger gone, the next heartbeat is recorded and
    the report withdrawn."""
    monkeypatch.setattr(scheduler, "HEARTBEAT_EVERY", 0.2)
    config = load_config(_feed_config(tmp_path, interval="1s"))
    db = config.storage_path
    lock = DatabaseLock(db)
    lock.acquire()
    agg = make_aggregator(config)
    daemon = Daemon(agg, rng=random.Random(1), report=lock.note_storage_error)

    def polls() -> int:
        with sqlite3.connect(db) as raw:
            return int(raw.execute("SELECT count(*) FROM polls").fetchone()[0])

    try:
        daemon.start()
        wait_until(lambda: polls() >= 1, 20, "the first poll")
        with sqlite3.connect(db) as raw:
            raw.execute(
                "CREATE TRIGGER refused BEFORE INSERT ON pollers "
                "BEGIN SELECT RAISE(ABORT, 'pollers refused'); END"
            )
        wait_until(
            lambda: read_report(db) is not None and bool(read_report(db).storage_error),
            20,
            "the report",
        )  # type: ignore[union-attr]
        report = read_report(db)
        assert report is not None and "pollers refused" in str(report.storage_error)
        status = subprocess.run(
            [sys.executable, "-m", "aggregator", "status"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert status.returncode == 1 and "cannot write the database" in status.stdout
        # Polling goes on, and the scheduler runs.
        before = polls()
        wait_until(lambda: polls() >= before + 2, 20, "polls after the failed heartbeats")
        assert daemon.problem() is None
        with sqlite3.connect(db) as raw:
            raw.execute("DROP TRIGGER refused")
        wait_until(lambda: read_report(db) == (os.getpid(), None, None), 20, "the report gone")
        assert [p.poller.pid for p in agg.pollers()] == [os.getpid()]
    finally:
        daemon.stop(grace=1)
        agg.close()
        lock.release()


# --- `status`, end to end ----------------------------------------------------------------------


def _status(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "aggregator", "status", *args],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _poller_rows(output: str) -> dict[int, tuple[str, str, int]]:
    """The pollers section: pid -> (host, state, leases)."""
    lines = output.splitlines()
    start = next(n for n, line in enumerate(lines) if line.startswith("pollers sharing"))
    assert lines[start + 1].split() == ["host", "pid", "started", "last", "seen", "state"] + [
        "leases"
    ]
    rows = {}
    row = re.compile(
        r"  (\S+) +(\d+)  \d\d-\d\d \d\d:\d\d  \d+ (?:s|min|h|d) ago +"
        r"(running|stopped|SILENT) +(\d+)"
    )
    for line in lines[start + 2 :]:
        if line.startswith("    "):
            continue  # a poller's storage error, under it
        found = row.fullmatch(line)
        if found is None:
            break
        rows[int(found[2])] = (found[1], found[3], int(found[4]))
    return rows


def test_status_shows_each_pollers_state_and_storage_error_and_exits_0(
    tmp_path: Path, run_cli: Any
) -> None:
    """Pollers as other hosts recorded them: a SILENT one (its error under it, wrapped), a
    running one, one stopped two days ago (not shown); the exit code stays 0."""
    config = load_config(_feed_config(tmp_path))
    now = datetime.now(UTC)
    error = " ".join(["database write failed: could not extend file: no space left"] * 2)
    with make_aggregator(config) as agg:
        for record in (
            PollerRecord(
                "a:1:x", "a", 1, now - EVERY * 9, now - EVERY * 4, None, EVERY, error, now
            ),
            PollerRecord("b:2:y", "b", 2, now - EVERY * 5, now - EVERY, None, EVERY),
            PollerRecord("c:3:z", "c", 3, now - SHOWN * 3, now - SHOWN * 2, now - SHOWN * 2, EVERY),
        ):
            agg.storage.record_poller(record, forget_before=now - timedelta(days=7))
    text = run_cli("status", cwd=tmp_path)
    assert text.returncode == 0, text.stderr
    assert _poller_rows(text.stdout) == {1: ("a", "SILENT", 0), 2: ("b", "running", 0)}
    lines = text.stdout.splitlines()
    failing = lines.index(next(line for line in lines if "writes FAILING" in line))
    assert lines[failing - 1].startswith("  a ")  # under its poller
    assert lines[failing].startswith("    writes FAILING since ")
    assert all(len(line) <= 80 for line in lines[failing:])  # wrapped
    assert " ".join(line.strip() for line in lines[failing : failing + 3]).count("extend") == 2
    assert "pollers sharing the store: 1 running, 1 SILENT" in text.stdout
    as_json = run_cli("status", "--format", "json", cwd=tmp_path)
    assert as_json.returncode == 0
    assert [row["name"] for row in json.loads(as_json.stdout)] == ["F"]
    assert as_json.stderr == "pollers: SILENT: a pid 1 (last seen 2 min ago)\n"


@pytest.mark.slow
def test_status_lists_the_one_sqlite_daemon_and_nothing_without_one(workdir: Path) -> None:
    polled = subprocess.run(
        [sys.executable, "-m", "aggregator", "poll"], cwd=workdir, capture_output=True, timeout=120
    )
    assert polled.returncode == 0
    before = _status(workdir)
    assert before.returncode == 0 and "pollers" not in before.stdout  # `poll` is no poller
    daemon = subprocess.Popen(
        [sys.executable, "-m", "aggregator", "run"],
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: "running" in _status(workdir).stdout, 60, "the daemon listed")
        running = _status(workdir)
        assert running.returncode == 0
        assert _poller_rows(running.stdout) == {daemon.pid: (HOST, "running", 0)}
        # The email and alerts lines come after it; the JSON is the feeds' list as before.
        as_json = _status(workdir, "--format", "json")
        assert as_json.returncode == 0 and as_json.stderr == ""
        assert [row["name"] for row in json.loads(as_json.stdout)] == ["Seeds"]
    finally:
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(60) == 0
    stopped = _status(workdir)
    assert _poller_rows(stopped.stdout) == {daemon.pid: (HOST, "stopped", 0)}
    assert stopped.returncode == 0


def test_a_daemon_that_cannot_start_serving_records_its_stop_and_exits(workdir: Path) -> None:
    # `run --serve` on a port taken: it had recorded itself as running, left the row so
    # (listed for a week, SILENT) and ran its queued polls before exiting.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = workdir / "feeds.toml"
        config.write_text(
            config.read_text(encoding="utf-8") + f"\n[serve]\nport = {port}\n", encoding="utf-8"
        )
        run = subprocess.run(
            [sys.executable, "-m", "aggregator", "run", "--serve"],
            cwd=workdir,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert run.returncode != 0 and "cannot listen" in run.stderr
    listed = _status(workdir)
    assert set(_poller_rows(listed.stdout).values()) == {(HOST, "stopped", 0)}


HEARTBEAT = 1.0  # seconds: silent after 3


def _leases_by_pid(url: str) -> dict[int, int]:
    """Each poller's leases not ended, from the store, by its pid (owner host:pid:tag)."""
    with psycopg.connect(url) as raw:
        try:
            rows = raw.execute(
                "SELECT lease_owner, count(*) FROM feeds WHERE lease_until > now() "
                "GROUP BY lease_owner"
            ).fetchall()
        except (psycopg.errors.UndefinedTable, psycopg.errors.UndefinedColumn):
            return {}  # no poller has made (or upgraded) the tables yet
    return {int(owner.split(":")[1]): int(n) for owner, n in rows}


@pytest.mark.slow
def test_two_pollers_on_one_postgres_are_listed_and_a_killed_one_turns_silent(
    pg_url: str, tmp_path: Path, feed_server: FeedServer
) -> None:
    """Two `aggregator run` (folders of their own, as hosts) on one PostgreSQL, each
    holding leases on two feeds whose fetches hang: `status` lists both running with
    those leases; the first killed (SIGKILL) turns SILENT after 3 heartbeats, its leases
    still held; the second stopped (SIGTERM) is stopped. The exit code stays 0."""
    gate = threading.Event()
    body = news_rss("slow").encode()

    def held(handler: Any) -> None:
        gate.wait(30)
        respond(handler, 200, body)

    feeds = ""
    for n in range(4):
        feed_server.routes[f"/f{n}.xml"] = held
        feeds += f'[[feeds]]\nurl = "{feed_server.url(f"/f{n}.xml")}"\nname = "F{n}"\n\n'
    folders = [tmp_path / "host0", tmp_path / "host1"]
    for folder in folders:
        folder.mkdir()
        # Two workers each: two fetches hang per poller, and the other two wait for them.
        (folder / "feeds.toml").write_text(
            f'[storage]\nurl = "{pg_url}"\n\n[poll]\nconcurrency = 2\nper_host = 4\n'
            f'deadline = "40s"\ntimeout = "40s"\nlease = "2m"\n\n[dedup]\nworkers = 0\n\n'
            f'[digest]\noutput = "digests"\n\n{feeds}',
            encoding="utf-8",
        )
    child = str(ROOT / "tests" / "heartbeat_child.py")
    pollers = []
    for folder in folders:
        with (folder / "run.log").open("wb") as log:
            pollers.append(
                subprocess.Popen(
                    [sys.executable, child, str(HEARTBEAT), "run"],
                    cwd=folder,
                    stdout=subprocess.DEVNULL,
                    stderr=log,
                )
            )
    first, second = (p.pid for p in pollers)
    try:
        wait_until(lambda: _leases_by_pid(pg_url) == {first: 2, second: 2}, 60, "2 leases each")
        both = _status(folders[0])
        assert both.returncode == 0, both.stderr
        assert _poller_rows(both.stdout) == {
            first: (HOST, "running", 2),
            second: (HOST, "running", 2),
        }
        assert "pollers sharing the store: 2 running" in both.stdout

        pollers[0].send_signal(signal.SIGKILL)
        assert pollers[0].wait(10) == -signal.SIGKILL
        wait_until(lambda: "SILENT" in _status(folders[1]).stdout, 30, "the killed one silent")
        silent = _status(folders[1])
        # Its leases are still held (they end after `lease`): counted as the store has them.
        assert _leases_by_pid(pg_url) == {first: 2, second: 2}
        assert _poller_rows(silent.stdout) == {
            first: (HOST, "SILENT", 2),
            second: (HOST, "running", 2),
        }
        assert silent.returncode == 0  # the other pollers take its feeds after its leases

        gate.set()  # the second records its polls, ending its leases, and is stopped
        wait_until(lambda: _leases_by_pid(pg_url) == {first: 2}, 30, "the polls recorded")
        pollers[1].send_signal(signal.SIGTERM)
        assert pollers[1].wait(60) == 0
        after = _status(folders[1])
        assert _poller_rows(after.stdout) == {
            first: (HOST, "SILENT", 2),
            second: (HOST, "stopped", 0),
        }
        assert "pollers sharing the store: 1 stopped, 1 SILENT" in after.stdout
        assert after.returncode == 0
        # JSON: the feeds' list as before; the silent poller on standard error.
        as_json = _status(folders[1], "--format", "json")
        assert as_json.returncode == 0
        assert sorted(row["name"] for row in json.loads(as_json.stdout)) == [
            f"F{n}" for n in range(4)
        ]
        assert as_json.stderr.startswith(f"pollers: SILENT: {HOST} pid {first} (last seen ")
    finally:
        gate.set()
        for process in pollers:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
            process.wait(60)


def test_a_host_name_cannot_drive_the_terminal() -> None:
    from aggregator.cli.status import _poller_lines
    from aggregator.storage import PollerState

    hostile = PollerRecord("x:1:a", "evil\x1b[2J\nhost", 1, T0, T0, None, EVERY)
    lines = _poller_lines([PollerState(hostile, 0)], now=T0, width=80, color=False)
    assert all("\x1b" not in line and "\n" not in line for line in lines)
    assert any("evil?[2J?host" in line for line in lines)


def test_a_pollers_start_across_a_clock_change_is_marked_with_its_offset() -> None:
    """As the feeds' table: a start in another UTC offset than now's (before the spring
    change) is marked, and the offset it is in noted under the pollers."""
    from zoneinfo import ZoneInfo

    from aggregator.cli.status import _poller_lines
    from aggregator.storage import PollerState

    paris = ZoneInfo("Europe/Paris")
    now = datetime(2025, 3, 30, 12, 0, tzinfo=paris)
    started = datetime(2025, 3, 29, 22, 0, tzinfo=paris)  # CET
    poller = PollerRecord("h:1:a", "h", 1, started, now - EVERY, None, EVERY)
    lines = _poller_lines([PollerState(poller, 2)], now=now, width=80, color=False)
    assert "03-29 22:00*" in lines[2]
    assert lines[-1] == "* in UTC+01:00: a clock change lies between then and now."
    again = poller._replace(started=now - timedelta(hours=1))
    assert not any(
        "*" in line
        for line in _poller_lines([PollerState(again, 2)], now=now, width=80, color=False)
    )


def test_on_sqlite_a_poller_a_crash_left_running_is_ended_by_the_next_start(
    tmp_path: Path, clock: FrozenClock
) -> None:
    # One daemon per SQLite database (its lock): another row not stopped is a dead one.
    agg = make_aggregator(load_config(_feed_config(tmp_path)), clock=clock)
    dead = PollerRecord(
        "h:9:dead", HOST, 9, T0 - timedelta(hours=2), T0 - timedelta(hours=1), None, EVERY
    )
    agg.storage.record_poller(dead, forget_before=T0 - timedelta(days=7))
    daemon = Daemon(agg, rng=random.Random(1))
    try:
        daemon.start(paused=True)
        rows = {p.poller.owner: p.poller for p in agg.pollers()}
        assert rows["h:9:dead"].stopped == dead.seen  # stopped when it was last heard of
        assert condition(rows["h:9:dead"], clock()) is Condition.STOPPED
        (own,) = [p for o, p in rows.items() if o != "h:9:dead"]
        assert own.stopped is None  # itself, running
    finally:
        daemon.stop(grace=1)
        agg.close()
