"""Issue 16, the database: a damaged file is found and named, a full disk is an operational
failure that backs off and shows in `status`, digests are published only for days the
database holds, and the daemon's start matches the README."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from aggregator import cli as cli_module
from aggregator import scheduler
from aggregator.config import load_config
from aggregator.core import make_aggregator
from aggregator.digest.archive import scan_archive
from aggregator.exceptions import CorruptDatabaseError, StorageError
from aggregator.scheduler import Daemon, first_round, make_due_digest
from aggregator.storage import sqlite as sqlite_storage
from aggregator.storage.lock import RECORD_SIZE, DaemonReport, DatabaseLock, read_report
from aggregator.storage.sqlite import _base as sqlite_base
from tests.conftest import ROOT, FrozenClock, write_config

T0 = datetime(2025, 2, 12, 12, 0, tzinfo=UTC)

PAGE = 4096


def _invoke(workdir: Path, *args: str) -> Result:
    return CliRunner().invoke(cli_module.cli, ["--config", str(workdir / "feeds.toml"), *args])


def _corrupt(db: Path, pages: int = 20) -> None:
    """Write `pages` pages of random bytes into the middle of the file (the first half
    page of the file, its header, is left alone)."""
    size = db.stat().st_size
    start = max(2, size // PAGE // 2 - pages // 2) * PAGE
    with db.open("r+b") as f:
        f.seek(start)
        f.write(random.Random(8).randbytes(pages * PAGE))


def _integrity(db: Path) -> str:
    connection = sqlite3.connect(db)
    try:
        return str(connection.execute("PRAGMA integrity_check").fetchone()[0])
    except sqlite3.DatabaseError as e:
        return str(e)
    finally:
        connection.close()


# --- defect 8: a damaged database is found, named, and how to recover it is said ----------


@pytest.fixture
def corrupt_workdir(workdir: Path) -> Path:
    """The seeds polled into aggregator.db, then 20 pages of it overwritten at random."""
    result = _invoke(workdir, "poll")
    assert result.exit_code == 0, result.output
    db = workdir / "aggregator.db"
    assert _integrity(db) == "ok" and db.stat().st_size >= 30 * PAGE
    _corrupt(db)
    assert _integrity(db) != "ok"
    return workdir


@pytest.mark.parametrize(
    "command", [["status"], ["digest"], ["poll"], ["digest", "--output", "-"], ["feeds", "list"]]
)
def test_a_damaged_database_is_refused_with_exit_1_and_how_to_recover(
    corrupt_workdir: Path, command: list[str]
) -> None:
    result = _invoke(corrupt_workdir, *command)
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit)
    assert "damaged" in result.output and ".recover" in result.output
    assert "aggregator.db" in result.output
    assert not (corrupt_workdir / "digests").exists()


def test_damage_past_the_open_check_fails_the_poll(
    corrupt_workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A database too large to check on open: the first statement meeting the damage says so.
    monkeypatch.setattr(sqlite_base, "QUICK_CHECK_MAX", 0)
    for command in (["poll"], ["digest", "--output", "-"]):
        result = _invoke(corrupt_workdir, *command)
        assert result.exit_code == 1, result.output
        assert "damaged" in result.output and ".recover" in result.output


def test_malformed_errors_become_corrupt_database_errors(tmp_path: Path) -> None:
    db = tmp_path / "a.db"
    with sqlite_storage.SqliteStorage(db) as storage:
        assert storage.entry_count() == 0
    error = sqlite3.DatabaseError("database disk image is malformed")
    translated = sqlite_storage.storage_error("database read failed", error, db)
    assert isinstance(translated, CorruptDatabaseError) and translated.exit_code == 1
    assert f'sqlite3 {db} ".recover" | sqlite3 {tmp_path / "a-recovered.db"}' in str(translated)


def test_the_recovery_the_message_gives_works(corrupt_workdir: Path) -> None:
    import shutil
    import subprocess

    if shutil.which("sqlite3") is None:
        pytest.skip("no sqlite3 shell")
    db = corrupt_workdir / "aggregator.db"
    fixed = corrupt_workdir / "aggregator-recovered.db"
    subprocess.run(f'sqlite3 {db} ".recover" | sqlite3 {fixed}', shell=True, check=True)
    assert _integrity(fixed) == "ok"


# --- defect 11: a full disk is an operational failure, backed off, and shown by `status` ---

#: A file-size limit that takes the database's first writes (a few WAL frames) but no poll
#: of the seeds: the "full disk" of these tests (root needs no tmpfs).
FULL = 65536


def _with_file_limit(limit: int) -> list[str]:
    """A command prefix running `python -m aggregator` under a file-size limit; SIGXFSZ is
    ignored (inherited across exec), so a write past it fails with EFBIG as on a full disk."""
    code = (
        "import os, resource, signal, sys\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        f"resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, resource.RLIM_INFINITY))\n"
        "os.execv(sys.executable, [sys.executable, '-m', 'aggregator', *sys.argv[1:]])\n"
    )
    return [sys.executable, "-c", code]


def _env() -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("AGGREGATOR_CONFIG", None)
    return env


@pytest.fixture
def full_disk_workdir(tmp_path: Path) -> Path:
    """A local feed of 100 long entries (a poll stores ~100 pages: far past FULL) polled
    every second; the database made, empty (its first writes, a feed row, fit)."""
    items = "".join(
        f"<item><title>Story {i}</title><guid>s{i}</guid>"
        f"<description>{f'Paragraph {i} of a long story. ' * 120}</description></item>"
        for i in range(100)
    )
    (tmp_path / "big.rss").write_text(
        f'<?xml version="1.0"?><rss version="2.0"><channel><title>Big</title>{items}'
        "</channel></rss>",
        encoding="utf-8",
    )
    write_config(tmp_path, '[[feeds]]\nurl = "big.rss"\nname = "Big"\ninterval = "1s"\n')
    result = _invoke(tmp_path, "status")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "test.db").exists()
    return tmp_path


def test_a_poll_on_a_full_disk_exits_1_with_the_storage_error(full_disk_workdir: Path) -> None:
    result = subprocess.run(
        [*_with_file_limit(FULL), "poll"],
        cwd=full_disk_workdir,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1, result.stderr
    assert "database write failed" in result.stderr and "free on its disk" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_run_on_a_full_disk_backs_off_and_status_shows_the_error(full_disk_workdir: Path) -> None:
    daemon = subprocess.Popen(
        [*_with_file_limit(FULL), "run"],
        cwd=full_disk_workdir,
        env=_env(),
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    failed = threading.Event()

    def read() -> None:
        assert daemon.stderr is not None
        for line in daemon.stderr:
            lines.append(line)
            if "poll not stored" in line:
                failed.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert failed.wait(60), "".join(lines)
        status = _invoke(full_disk_workdir, "status")
        assert status.exit_code == 1, status.output
        assert "cannot write the database" in status.output
        assert f"pid {daemon.pid}" in status.output and "database write failed" in status.output
        as_json = _invoke(full_disk_workdir, "status", "--format", "json")
        assert as_json.exit_code == 1
        # A 1 s feed whose poll can't be stored is not tried again within the next seconds
        # (before: once a second, each an error in the log).
        time.sleep(3)
        assert sum("poll not stored" in line for line in lines) == 1, "".join(lines)
    finally:
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(30) == 0, "".join(lines)
        reader.join(10)
        assert daemon.stderr is not None
        daemon.stderr.close()
    # Stopped: the report is gone with the lock.
    status = _invoke(full_disk_workdir, "status")
    assert "cannot write the database" not in status.output


def test_polls_that_cannot_be_stored_back_off_and_are_reported(
    tmp_path: Path, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "feed.rss").write_text(
        '<?xml version="1.0"?><rss version="2.0"><channel><title>t</title><item><title>One'
        "</title><guid>1</guid></item></channel></rss>",
        encoding="utf-8",
    )
    config = load_config(
        write_config(tmp_path, '[[feeds]]\nurl = "feed.rss"\nname = "F"\ninterval = "1s"\n')
    )
    agg = make_aggregator(config, clock=clock)
    reports: list[tuple[str | None, datetime | None]] = []
    daemon = Daemon(agg, rng=random.Random(3), report=lambda e, t: reports.append((e, t)))
    url = config.feeds[0].url
    real_save = agg.storage.save_poll

    def full(*args: Any, **kwargs: Any) -> Any:
        raise StorageError("database write failed: database or disk is full")

    try:
        monkeypatch.setattr(agg.storage, "save_poll", full)
        waits = []
        for _ in range(3):
            when = daemon.poll_job(url)
            assert when is not None
            waits.append((when - clock()).total_seconds())
            clock.advance(seconds=waits[-1])
        # The backoff of the polling rules, from 30 s (not the feed's 1 s): 30, 60, 120 s,
        # less up to 20 % jitter.
        for wait, full_wait in zip(waits, (30, 60, 120), strict=True):
            assert 0.8 * full_wait <= wait <= full_wait
        assert [r[0] for r in reports] == ["database write failed: database or disk is full"] * 3
        assert {r[1] for r in reports} == {T0}  # failing since the first failure
        monkeypatch.setattr(agg.storage, "save_poll", real_save)
        when = daemon.poll_job(url)
        assert when is not None and when - clock() <= timedelta(seconds=1.1)
        assert reports[-1] == (None, None)
    finally:
        daemon.stop(grace=1)
        agg.close()


def test_run_that_cannot_write_its_lock_file_exits_1_with_a_message(workdir: Path) -> None:
    result = subprocess.run(
        [*_with_file_limit(0), "run"],
        cwd=workdir,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1, result.stderr
    assert "cannot write lock file" in result.stderr and "Traceback" not in result.stderr


def test_a_lock_report_round_trips(tmp_path: Path) -> None:
    db = tmp_path / "a.db"
    assert read_report(db) is None
    with DatabaseLock(db) as lock:
        assert read_report(db) == DaemonReport(os.getpid(), None, None)
        lock.note_storage_error("disk\nfull", T0)
        assert read_report(db) == DaemonReport(os.getpid(), "disk full", T0)
        size = lock.path.stat().st_size
        lock.note_storage_error(None)
        assert read_report(db) == DaemonReport(os.getpid(), None, None)
        assert lock.path.stat().st_size == size == RECORD_SIZE  # rewritten in place
    assert read_report(db) is None  # no daemon holds it: whatever it says is stale


# --- defect 13: no digest of days the database knows nothing of, none of days to come ----


def _rss(tmp_path: Path, published: str) -> str:
    (tmp_path / "feed.rss").write_text(
        '<?xml version="1.0"?><rss version="2.0"><channel><title>t</title><item>'
        f"<title>Summit news</title><guid>1</guid><pubDate>{published}</pubDate>"
        "<description>Summit news</description></item></channel></rss>",
        encoding="utf-8",
    )
    return '[[feeds]]\nurl = "feed.rss"\nname = "F"\n'


def test_the_first_start_on_a_fresh_database_publishes_no_empty_digest(
    tmp_path: Path, clock: FrozenClock
) -> None:
    # 12:00 UTC is 20:00 in Shanghai: the 07:00 digest, of the 11th, is due; nothing stored.
    config = load_config(write_config(tmp_path, _rss(tmp_path, "Wed, 12 Feb 2025 11:00:00 GMT")))
    agg = make_aggregator(config, clock=clock)
    daemon = Daemon(agg, rng=random.Random(1))
    try:
        assert daemon.digest_job() is None
        assert not (tmp_path / "digests").exists()
        # Polled: the feed's only entry is of the 12th, so the 11th is still not digested.
        agg.poll()
        assert daemon.digest_job() is None
        assert not (tmp_path / "digests").exists()
        assert agg.storage.digest_made(date(2025, 2, 11)) is None
        clock.advance(days=1)  # the 12th's digest is due: the database has that day
        assert daemon.digest_job() == date(2025, 2, 12)
        assert "Summit news" in (tmp_path / "digests" / "2025-02-12.html").read_text("utf-8")
    finally:
        daemon.stop(grace=1)
        agg.close()


def test_a_day_after_the_first_entry_is_digested_even_when_empty(
    tmp_path: Path, clock: FrozenClock
) -> None:
    config = load_config(write_config(tmp_path, _rss(tmp_path, "Sun, 09 Feb 2025 11:00:00 GMT")))
    with make_aggregator(config, clock=clock) as agg:
        agg.poll()
        assert make_due_digest(agg) == date(2025, 2, 11)  # "Nothing new", but a real day
        assert (tmp_path / "digests" / "2025-02-11.html").exists()


def test_a_digest_of_days_to_come_is_written_but_not_archived(workdir: Path) -> None:
    assert _invoke(workdir, "poll").exit_code == 0
    today = _invoke(workdir, "digest", "--format", "json")
    assert today.exit_code == 0, today.output
    future = _invoke(workdir, "digest", "--date", "2030-01-01")
    assert future.exit_code == 0, future.output
    digests = workdir / "digests"
    assert (digests / "2030-01-01.html").exists()  # asked for, so written
    index = (digests / "index.html").read_text(encoding="utf-8")
    feed = (digests / "feed.xml").read_text(encoding="utf-8")
    assert "2030-01-01" not in index and "2030-01-01" not in feed
    (made,) = [p.stem for p in digests.glob("*.json") if p.stem != "2030-01-01"]
    assert made in index and made in feed
    assert [d.name for d in scan_archive(digests)] == [made]


# --- defect 9: the start polls what is due; the catch-up digest waits for no other poll ---


def test_first_round_is_the_feeds_due_within_the_wait() -> None:
    wait = timedelta(minutes=2)
    polls = {"a": T0, "b": T0 + wait, "c": T0 + wait + timedelta(seconds=1)}
    assert first_round(polls, T0, wait) == {"a", "b"}
    assert first_round({}, T0, wait) == set()


@pytest.mark.parametrize("made_before", [False, True])
def test_the_catch_up_digest_waits_only_for_polls_that_are_coming(
    tmp_path: Path, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch, made_before: bool
) -> None:
    monkeypatch.setattr(scheduler, "CATCH_UP_WAIT", 3.0)
    feeds = _rss(tmp_path, "Tue, 11 Feb 2025 11:00:00 GMT").replace(
        'name = "F"\n', 'name = "F"\ninterval = "1h"\n'
    )
    feeds += '[[feeds]]\nurl = "never.rss"\nname = "Never"\ninterval = "1h"\n'
    config = load_config(write_config(tmp_path, feeds))
    agg = make_aggregator(config, clock=clock)
    # `aggregator poll` ran: F's next poll is an hour away, so the daemon does not poll it
    # on start. Never's file is missing: its failure backs it off an hour too.
    agg.poll()
    if made_before:  # and the due digest (of the 11th) was made: nothing to catch up
        agg.storage.record_digest(date(2025, 2, 11), now=T0)
    clock.advance(seconds=1)
    daemon = Daemon(agg, rng=random.Random(2))
    try:
        daemon.start(paused=True)
        started = time.monotonic()
        daemon._catch_up_digest()
        assert time.monotonic() - started < 1.5  # before: the whole wait, for no poll
        assert (tmp_path / "digests" / "2025-02-11.html").exists() != made_before
    finally:
        daemon.stop(grace=1)
        agg.close()


def test_the_catch_up_digest_waits_for_the_first_polls_of_new_feeds(
    tmp_path: Path, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(scheduler, "CATCH_UP_WAIT", 1.0)
    config = load_config(write_config(tmp_path, _rss(tmp_path, "Tue, 11 Feb 2025 11:00:00 GMT")))
    agg = make_aggregator(config, clock=clock)
    daemon = Daemon(agg, rng=random.Random(2))
    try:
        daemon.start(paused=True)  # F was never polled: polled at once, and waited for
        started = time.monotonic()
        daemon._catch_up_digest()
        assert time.monotonic() - started >= 0.9  # paused: its poll never ran
    finally:
        daemon.stop(grace=1)
        agg.close()


# --- defect 6: a read-only command writes no feed row; "new feeds" brought entries --------


def _feed_rows(db: Path) -> list[str]:
    connection = sqlite3.connect(db)
    try:
        return [r[0] for r in connection.execute("SELECT url FROM feeds ORDER BY url")]
    finally:
        connection.close()


def test_status_writes_no_feed_row_and_a_removed_feed_is_never_new(workdir: Path) -> None:
    gone = "http://127.0.0.1:9/never-polled.xml"
    assert _invoke(workdir, "poll").exit_code == 0  # the seeds: stored today
    added = _invoke(workdir, "feeds", "add", gone, "--name", "Never polled", "--no-check")
    assert added.exit_code == 0, added.output
    for command in (["status"], ["status", "--format", "json"], ["feeds", "list"]):
        assert _invoke(workdir, *command).exit_code == 0
        assert gone not in _feed_rows(workdir / "aggregator.db")
    assert _invoke(workdir, "feeds", "remove", "Never polled").exit_code == 0
    assert _invoke(workdir, "poll").exit_code == 0
    text = _invoke(workdir, "digest", "--format", "text", "--output", "-")
    assert text.exit_code == 0, text.output
    assert "Never polled" not in text.output
    assert "New feeds: Seeds" in text.output  # its first entries are of today


def test_new_feeds_are_those_whose_first_entries_are_in_the_window(
    tmp_path: Path, clock: FrozenClock
) -> None:
    config = load_config(write_config(tmp_path, _rss(tmp_path, "Tue, 11 Feb 2025 11:00:00 GMT")))
    with make_aggregator(config, clock=clock) as agg:
        # Configured (a row made) on the 12th, first polled on the 13th.
        assert agg.storage.feed_state(config.feeds[0].url) is not None
        clock.advance(days=1)
        agg.poll()
        day = timedelta(days=1)
        start_12 = datetime(2025, 2, 12, tzinfo=UTC)
        assert agg.storage.feeds_added_between(start_12, start_12 + day) == []
        assert agg.storage.feeds_added_between(start_12 + day, start_12 + 2 * day) == ["F"]
        clock.advance(days=1)
        agg.poll()  # nothing new, and not new again
        assert agg.storage.feeds_added_between(start_12 + 2 * day, start_12 + 3 * day) == []


def test_a_feed_removed_while_its_polls_cannot_be_stored_is_no_longer_reported(
    tmp_path: Path, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_config(tmp_path, _rss(tmp_path, "Tue, 11 Feb 2025 11:00:00 GMT"))
    agg = make_aggregator(load_config(path), clock=clock)
    reports: list[str | None] = []
    daemon = Daemon(agg, rng=random.Random(3), report=lambda e, t: reports.append(e))

    def full(*args: Any, **kwargs: Any) -> Any:
        raise StorageError("database write failed: database or disk is full")

    try:
        monkeypatch.setattr(agg.storage, "save_poll", full)
        assert daemon.poll_job(agg.config.feeds[0].url) is not None
        assert reports == ["database write failed: database or disk is full"]
        write_config(tmp_path, "")  # the feed removed
        assert daemon.reload()
        assert reports[-1] is None
    finally:
        daemon.stop(grace=1)
        agg.close()
