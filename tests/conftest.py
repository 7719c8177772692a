"""Shared fixtures: a temp config folder with a real SQLite file, a frozen clock, the seeds."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.feedserver import FeedServer
from tests.pgserver import PgServer
from tests.smtpserver import Server, smtp_server

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "seeds"


def pytest_configure(config: pytest.Config) -> None:
    """The word tables' cache (`aggregator.tablecache`) in a folder of the test run, not
    the user's ~/.cache (subprocesses inherit it); one the caller named is used as it is."""
    if "AGGREGATOR_CACHE_DIR" not in os.environ:
        import tempfile

        folder = tempfile.mkdtemp(prefix="aggregator-tables-")
        os.environ["AGGREGATOR_CACHE_DIR"] = folder
        config.add_cleanup(lambda: shutil.rmtree(folder, ignore_errors=True))


class FrozenClock:
    """A clock tests move by hand; with a `tick`, it also moves on by that much each time
    it is read, as time passes between a daemon's steps run on its own threads (its polls
    store their entries before the daily digest that waited for them reads the store)."""

    def __init__(self, start: datetime, tick: timedelta = timedelta(0)) -> None:
        self.current = start
        self.tick = tick

    def __call__(self) -> datetime:
        now = self.current
        self.current += self.tick
        return now

    def advance(self, **kwargs: float) -> None:
        self.current += timedelta(**kwargs)


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(datetime(2025, 2, 12, 12, 0, tzinfo=UTC))


@pytest.fixture
def feed_server() -> Iterator[FeedServer]:
    """A threaded HTTP server on 127.0.0.1 with scriptable routes (see tests/feedserver.py)."""
    server = FeedServer()
    yield server
    server.close()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """A PostgreSQL server of this test process's own (tests/pgserver.py); without
    Debian's `postgresql` installed, the tests that need it fail saying so."""
    try:
        server = PgServer()
    except RuntimeError as e:
        pytest.fail(str(e), pytrace=False)
    yield server
    server.stop()


@pytest.fixture
def pg_url(pg_server: PgServer) -> str:
    """The URL of a new, empty PostgreSQL database (as the superuser, no password)."""
    return pg_server.database()


@pytest.fixture
def smtp() -> Iterator[Server]:
    """A real SMTP server on 127.0.0.1 (aiosmtpd) keeping what it receives (tests/smtpserver.py)."""
    with smtp_server() as server:
        yield server


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A folder holding a copy of the seeds and of the shipped feeds.toml."""
    shutil.copytree(SEEDS, tmp_path / "seeds")
    shutil.copy(ROOT / "feeds.toml", tmp_path / "feeds.toml")
    return tmp_path


def write_config(folder: Path, feeds: str, extra: str = "") -> Path:
    """Write a minimal feeds.toml with the given [[feeds]] tables."""
    path = folder / "feeds.toml"
    path.write_text(
        f"""
[storage]
path = "test.db"

{feeds}

[[topics]]
name = "Summit"
keywords = ["峰会", "summit"]

[digest]
timezone = "Asia/Shanghai"
{extra}
""",
        encoding="utf-8",
    )
    return path


def news_rss(title: str, items: int = 2) -> str:
    """An RSS 2.0 feed titled `title` with `items` dated items, each with its own link."""
    entries = "".join(
        f"<item><title>{title} item {n}</title><link>https://news.example/{title}/{n}</link>"
        f"<pubDate>Tue, 11 Feb 2025 0{n}:00:00 GMT</pubDate></item>"
        for n in range(1, items + 1)
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
        f"<title>{title}</title><link>https://news.example/</link>{entries}</channel></rss>"
    )


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll `condition` until it holds; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


def run_python(
    script: str,
    *args: str,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    """Run `script` in a fresh interpreter importing this checkout (`python -c script
    args...`), its output captured; fail the test unless it exits 0."""
    done = subprocess.run(
        [sys.executable, "-c", script, *args],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, done.stderr
    return done


RunCli = Callable[..., subprocess.CompletedProcess[str]]

#: The console script pip installed beside this interpreter (the README's command makes it).
CONSOLE_SCRIPT = Path(sys.executable).with_name("aggregator")


def cli(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run the CLI in this process, as a fresh `aggregator` process would, from folder `cwd`.

    click's CliRunner captures stdout and stderr; logging is set up by the CLI itself, as in
    a process of its own (pytest's handlers are set aside meanwhile); AGGREGATOR_CONFIG is
    unset unless `env` gives it. An exception the CLI lets through is exit code 1 with its
    traceback on stderr, as Python prints it. Taking longer than `timeout` seconds raises
    TimeoutExpired, as subprocess.run does (after the fact: a thread cannot be killed).
    """
    from click.testing import CliRunner

    from aggregator.cli import cli as command

    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    levels = {
        name: logger.level
        for name, logger in logging.root.manager.loggerDict.items()
        if isinstance(logger, logging.Logger)
    }
    root.handlers = []
    started = time.monotonic()
    before = Path.cwd()
    os.chdir(cwd)
    try:
        result = CliRunner().invoke(
            command,
            list(args),
            env={"AGGREGATOR_CONFIG": None, **(env or {})},
            prog_name="aggregator",
        )
    finally:
        os.chdir(before)
        for handler in root.handlers:  # the CLI's own, writing to the runner's stderr
            handler.close()
        root.handlers = handlers
        root.setLevel(level)
        for name, saved in levels.items():
            logging.getLogger(name).setLevel(saved)
        for name, logger in logging.root.manager.loggerDict.items():
            if name not in levels and isinstance(logger, logging.Logger):
                logger.setLevel(logging.NOTSET)
    elapsed = time.monotonic() - started
    if elapsed > timeout:
        raise subprocess.TimeoutExpired(["aggregator", *args], timeout)
    stderr = result.stderr
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        stderr += "".join(traceback.format_exception(result.exception))
    return subprocess.CompletedProcess(
        ["aggregator", *args], result.exit_code, result.stdout, stderr
    )


def console(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run the real console script in a subprocess, returning the completed process."""
    full_env = {**os.environ, **(env or {})}
    if env is None or "AGGREGATOR_CONFIG" not in env:
        full_env.pop("AGGREGATOR_CONFIG", None)
    return subprocess.run(
        [str(CONSOLE_SCRIPT), *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def ctrl_c() -> Iterator[None]:
    """Ctrl-C (SIGINT) raises KeyboardInterrupt in this process, and takes its default
    action in the processes it starts, whatever this one inherited: a shell without job
    control starts a background job (`.ci/run &`) with SIGINT ignored, which Python and
    every process started from it keep."""
    import signal
    import threading

    assert threading.current_thread() is threading.main_thread(), "signals are the main's"
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, before)


@pytest.fixture
def run_cli() -> RunCli:
    """The CLI, run in this process (see `cli`)."""
    return cli


@pytest.fixture
def run_console() -> RunCli:
    """The installed console script in a subprocess (see `console`)."""
    return console


def kept_counts_are_counted(path: Path) -> tuple[int, int, int]:
    """Check that the SQLite database at `path` keeps the counts of its entries, articles
    and stories (/metrics) and of each feed's entries (status) right: what counting its
    entries finds. Returns them."""
    import sqlite3

    from aggregator.storage import open_storage

    with open_storage(path) as storage:
        tallies, states = storage.tallies(), storage.feed_states()
    with sqlite3.connect(path) as raw:
        entries, articles, stories = raw.execute(
            "SELECT count(*), count(DISTINCT article_id), count(DISTINCT story_id) FROM entries"
        ).fetchone()
        per_feed = dict(raw.execute("SELECT feed_url, count(*) FROM entries GROUP BY feed_url"))
    raw.close()
    assert tallies[:3] == (entries, articles, stories)
    assert {s.url: s.entry_count for s in states if s.entry_count} == per_feed
    return entries, articles, stories
