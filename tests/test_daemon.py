"""`aggregator run` end to end: the real daemon in a subprocess, feeds on 127.0.0.1, signals."""

from __future__ import annotations

import os
import select
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from xml.sax.saxutils import escape

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from tests.conftest import ROOT, RunCli

pytestmark = pytest.mark.slow


class FeedServer:
    """RSS feeds on a local HTTP server whose items tests add while the daemon runs."""

    def __init__(self, httpserver: HTTPServer) -> None:
        self.httpserver = httpserver
        self.items: dict[str, list[tuple[str, str, datetime]]] = {}
        httpserver.expect_request("").respond_with_handler(self._serve)  # any path

    def add(self, path: str, title: str, published: datetime | None = None) -> None:
        items = self.items.setdefault(path, [])
        guid = f"{path}/{len(items) + 1}"
        items.append((guid, title, published or datetime.now(UTC)))

    def url(self, path: str) -> str:
        return self.httpserver.url_for(path)

    def _serve(self, request: Request) -> Response:
        items = self.items.get(request.path)
        if items is None:
            return Response("not found", status=404)
        body = "".join(
            f"<item><title>{escape(title)}</title><link>http://example.org{guid}</link>"
            f"<guid>{guid}</guid><pubDate>{format_datetime(published)}</pubDate>"
            f"<description>{escape(title)}: the full story.</description></item>"
            for guid, title, published in items
        )
        return Response(
            f'<?xml version="1.0"?><rss version="2.0"><channel><title>{request.path}</title>'
            f"<link>http://example.org/</link><description>test</description>{body}"
            "</channel></rss>",
            content_type="application/rss+xml",
        )


@pytest.fixture
def feeds(httpserver: HTTPServer) -> FeedServer:
    return FeedServer(httpserver)


def config_text(*feeds: tuple[str, str, str], digest: str = "") -> str:
    tables = "".join(
        f'[[feeds]]\nurl = "{url}"\nname = "{name}"\ninterval = "{interval}"\n\n'
        for url, name, interval in feeds
    )
    digest = digest or 'timezone = "UTC"'
    return f'[storage]\npath = "test.db"\n\n{tables}[digest]\n{digest}\n'


class Run:
    """One `aggregator run` subprocess, its standard error in a file the test reads."""

    def __init__(self, folder: Path, name: str = "run") -> None:
        self.log_path = folder / f"{name}.log"
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        env.pop("AGGREGATOR_CONFIG", None)
        with self.log_path.open("w") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "aggregator", "--config", "feeds.toml", "run"],
                cwd=folder,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )

    @property
    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8")

    def wait_log(self, text: str, timeout: float = 10, count: int = 1) -> None:
        wait_for(lambda: self.log.count(text) >= count, timeout, f"{text!r} in the log", self)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10) -> tuple[int, float]:
        """Send `sig`; return the exit code and how long the process took to exit."""
        started = time.monotonic()
        self.proc.send_signal(sig)
        code = self.proc.wait(timeout=timeout)
        return code, time.monotonic() - started


def wait_for(
    condition: Callable[[], bool], timeout: float, what: str, run: Run | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if run is not None and run.proc.poll() is not None:
            pytest.fail(f"daemon exited ({run.proc.returncode}) waiting for {what}:\n{run.log}")
        if time.monotonic() > deadline:
            log = run.log if run is not None else ""
            pytest.fail(f"timed out after {timeout}s waiting for {what}\n{log}")
        time.sleep(0.05)


def query(db: Path, sql: str, *params: object) -> list[tuple[object, ...]]:
    """Read the daemon's database as another process would; nothing while it doesn't exist."""
    if not db.exists():
        return []
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            return conn.execute(sql, params).fetchall()
    except sqlite3.OperationalError:  # not migrated yet
        return []


def entry_titles(db: Path, feed_url: str) -> set[object]:
    return {row[0] for row in query(db, "SELECT title FROM entries WHERE feed_url = ?", feed_url)}


def unplaced(db: Path, feed_url: str) -> int:
    rows = query(
        db, "SELECT count(*) FROM entries WHERE feed_url = ? AND story_id IS NULL", feed_url
    )
    return int(rows[0][0]) if rows else -1  # type: ignore[call-overload]


def poll_count(db: Path, feed_url: str) -> int:
    rows = query(db, "SELECT count(*) FROM polls WHERE feed_url = ?", feed_url)
    return int(rows[0][0]) if rows else 0  # type: ignore[call-overload]


def integrity(db: Path) -> str:
    with sqlite3.connect(db) as conn:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])


@pytest.fixture
def runs(tmp_path: Path) -> Iterator[list[Run]]:
    """Daemons a test starts; any still running when it ends (a failed test) are killed."""
    started: list[Run] = []
    yield started
    for run in started:
        if run.proc.poll() is None:
            run.proc.kill()
            run.proc.wait(timeout=10)


def test_run_polls_new_entries_until_sigterm(
    tmp_path: Path, feeds: FeedServer, runs: list[Run], run_console: RunCli
) -> None:
    fast, slow = feeds.url("/fast.xml"), feeds.url("/slow.xml")
    feeds.add("/fast.xml", "Fast one")
    feeds.add("/fast.xml", "Fast two")
    feeds.add("/slow.xml", "Slow one")
    (tmp_path / "feeds.toml").write_text(
        config_text((fast, "Fast", "1s"), (slow, "Slow", "1h")), encoding="utf-8"
    )
    db = tmp_path / "test.db"
    run = Run(tmp_path)
    runs.append(run)

    wait_for(lambda: len(entry_titles(db, fast)) == 2, 10, "the first poll of Fast", run)
    wait_for(lambda: entry_titles(db, slow) == {"Slow one"}, 10, "the first poll of Slow", run)
    feeds.add("/fast.xml", "Fast three")
    feeds.add("/fast.xml", "Fast four")
    feeds.add("/slow.xml", "Slow two")
    wait_for(lambda: len(entry_titles(db, fast)) == 4, 10, "new entries of Fast", run)
    assert entry_titles(db, fast) == {"Fast one", "Fast two", "Fast three", "Fast four"}
    run.wait_log("Fast: ok, 2 new")

    # One daemon per database: a second one is refused at once, saying why.
    second = run_console("--config", "feeds.toml", "run", cwd=tmp_path, timeout=20)
    assert second.returncode == 2
    assert "already running" in second.stderr
    assert f"pid {run.proc.pid}" in second.stderr
    assert run.proc.poll() is None  # the first one is unharmed

    # Each feed on its own schedule: Fast every second, Slow (1h) only once.
    wait_for(lambda: poll_count(db, fast) >= 4, 10, "Fast polled again and again", run)
    assert poll_count(db, slow) == 1
    assert entry_titles(db, slow) == {"Slow one"}

    code, seconds = run.stop(signal.SIGTERM)
    assert code == 0, run.log
    assert seconds < 5, f"took {seconds:.1f}s to stop"
    assert "SIGTERM: stopping" in run.log
    assert run.log.rstrip().endswith("INFO stopped")
    assert integrity(db) == "ok"


def test_a_first_round_is_placed_in_a_few_batches_and_a_stop_places_the_rest(
    tmp_path: Path, feeds: FeedServer, runs: list[Run]
) -> None:
    """The daemon gathers its polls' entries and places them together once the store's
    pass is over (no lease held, no feed due or never polled), not one dedup batch per feed
    nor one per pause of the polls; a stop places what the last polls stored."""
    urls = []
    for n in range(30):
        path = f"/f{n}.xml"
        for k in range(3):
            feeds.add(path, f"Feed {n} story {k} about topic {n * 3 + k}")
        urls.append((feeds.url(path), f"F{n}", "1h"))
    (tmp_path / "feeds.toml").write_text(config_text(*urls), encoding="utf-8")
    db = tmp_path / "test.db"
    run = Run(tmp_path)
    runs.append(run)

    def placed() -> int:
        rows = query(db, "SELECT count(*) FROM entries WHERE story_id IS NOT NULL")
        return int(rows[0][0]) if rows else 0  # type: ignore[call-overload]

    wait_for(lambda: placed() == 90, 30, "every entry placed", run)
    # The 30 first polls are spread over 3 s: one batch, once the last of them is stored.
    batches = query(db, "SELECT count(DISTINCT seq) FROM dedup_entries")[0][0]
    assert batches == 1, batches

    # A feed polled again (interval 1h: by a reload that shortens it) just before a stop.
    feeds.add("/f0.xml", "Feed 0 late news")
    urls[0] = (urls[0][0], "F0", "1s")
    (tmp_path / "feeds.toml").write_text(config_text(*urls), encoding="utf-8")
    run.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: len(entry_titles(db, urls[0][0])) == 4, 20, "the late entry stored", run)
    code, _ = run.stop(signal.SIGTERM)
    assert code == 0, run.log
    assert placed() == 91  # placed on the way out, not left for the next start


# `aggregator run`, whose placing waits once its feature workers are under way: the first
# batch to place says so on the file descriptor PLACING_REPORT and waits there for ever (a
# placing that outlasts the stop's grace, however fast the machine).
HELD_PLACING = r"""
import multiprocessing, os, sys, threading
from aggregator import placer

place = placer.Placer._assign_batch


def held(self, *args, **kwargs):
    if multiprocessing.active_children():  # the workers compute the next batch meanwhile
        os.write(int(os.environ["PLACING_REPORT"]), b"placing\n")
        threading.Event().wait()
    return place(self, *args, **kwargs)


placer.Placer._assign_batch = held
sys.argv = ["aggregator", *sys.argv[1:]]
from aggregator.cli import main

main()
"""


def test_a_stop_that_abandons_the_placing_exits_0_without_a_leaked_semaphore_warning(
    tmp_path: Path,
) -> None:
    """SIGTERM while a first round too large for the grace is placed: the placing is
    abandoned after 5 s (its entries stay stored, unplaced, for the next start) and the
    daemon exits 0, its feature workers' queues released: multiprocessing's resource
    tracker has no "leaked semaphore objects" to warn of."""
    from aggregator.parallel import MIN_PARALLEL
    from aggregator.placer import ASSIGN_BATCH

    count = ASSIGN_BATCH + MIN_PARALLEL  # a second batch, large enough for the workers
    items = "".join(
        f"<item><title>Story {n} on topic {n}</title><guid>g{n}</guid>"
        f"<description>What story {n} says.</description></item>"
        for n in range(count)
    )
    (tmp_path / "big.xml").write_text(
        f'<?xml version="1.0"?><rss version="2.0"><channel><title>Big</title>{items}'
        "</channel></rss>",
        encoding="utf-8",
    )
    config = config_text(("big.xml", "Big", "1h")) + "\n[dedup]\nworkers = 1\n"
    (tmp_path / "feeds.toml").write_text(config, encoding="utf-8")
    read, write = os.pipe()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PLACING_REPORT": str(write)}
    env.pop("AGGREGATOR_CONFIG", None)
    daemon = subprocess.Popen(
        [sys.executable, "-c", HELD_PLACING, "--config", "feeds.toml", "run"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        pass_fds=(write,),
    )
    os.close(write)
    try:
        ready, _, _ = select.select([read], [], [], 120)
        assert ready and os.read(read, 100) == b"placing\n", "the placing never began"
        daemon.send_signal(signal.SIGTERM)
        _, log = daemon.communicate(timeout=60)  # to its end, the resource tracker's too
    finally:
        os.close(read)
        if daemon.poll() is None:
            daemon.kill()
            daemon.communicate()
    assert daemon.returncode == 0, log
    assert "abandoning after 5s: placing what the polls stored" in log
    assert "leaked" not in log and "Traceback" not in log, log
    db = tmp_path / "test.db"
    assert query(db, "SELECT count(*) FROM entries") == [(count,)]  # nothing lost
    left = query(db, "SELECT count(*) FROM entries WHERE story_id IS NULL")
    assert left and left[0][0] > 0  # left for the next start


def test_sigint_stops_too_and_kill_9_leaves_no_stale_lock(
    tmp_path: Path, feeds: FeedServer, runs: list[Run]
) -> None:
    url = feeds.url("/a.xml")
    feeds.add("/a.xml", "First")
    (tmp_path / "feeds.toml").write_text(config_text((url, "A", "1s")), encoding="utf-8")
    db = tmp_path / "test.db"
    killed = Run(tmp_path, "killed")
    runs.append(killed)
    wait_for(lambda: entry_titles(db, url) == {"First"}, 10, "the first poll", killed)
    killed.stop(signal.SIGKILL)

    # The kernel dropped the dead daemon's lock: a new one starts, and picks up new entries.
    run = Run(tmp_path, "again")
    runs.append(run)
    feeds.add("/a.xml", "Second")
    wait_for(lambda: entry_titles(db, url) == {"First", "Second"}, 10, "the restart's poll", run)
    # and places them (its first deduplication imports the stack): then nothing is in flight,
    # and the time to stop is the signal's, not up to the grace a poll in flight is given
    wait_for(lambda: unplaced(db, url) == 0, 15, "the restart's entries placed", run)
    code, seconds = run.stop(signal.SIGINT)
    assert code == 0, run.log
    assert seconds < 5
    assert "SIGINT: stopping" in run.log
    assert integrity(db) == "ok"


def test_the_start_line_counts_one_feed_in_the_singular(
    tmp_path: Path, feeds: FeedServer, runs: list[Run]
) -> None:
    feeds.add("/a.xml", "First")
    config = config_text((feeds.url("/a.xml"), "A", "1h"))
    (tmp_path / "feeds.toml").write_text(config, encoding="utf-8")
    run = Run(tmp_path)
    runs.append(run)
    run.wait_log("running (pid")
    assert f"running (pid {run.proc.pid}): 1 feed, daily digest at 07:00 UTC;" in run.log
    assert run.stop()[0] == 0, run.log


def test_edit_and_sighup_reload_the_config_without_restart(
    tmp_path: Path, feeds: FeedServer, runs: list[Run]
) -> None:
    a, b = feeds.url("/a.xml"), feeds.url("/b.xml")
    feeds.add("/a.xml", "A one")
    feeds.add("/b.xml", "B one")
    config = tmp_path / "feeds.toml"
    config.write_text(config_text((a, "A", "1s")), encoding="utf-8")
    db = tmp_path / "test.db"
    run = Run(tmp_path)
    runs.append(run)
    wait_for(lambda: entry_titles(db, a) == {"A one"}, 10, "the first poll of A", run)
    assert entry_titles(db, b) == set()

    # An edit of feeds.toml is noticed: the added feed starts.
    config.write_text(config_text((a, "A", "1s"), (b, "B", "1s")), encoding="utf-8")
    wait_for(lambda: entry_titles(db, b) == {"B one"}, 10, "the added feed B polled", run)
    run.wait_log("B: added")

    # A broken edit is reported and the daemon keeps going on the old config.
    config.write_text(config_text((a, "A", "1s"), (b, "B", "soon")), encoding="utf-8")
    run.wait_log("config reload failed; still running on the previous config")
    assert "feeds.toml:" in run.log and "feeds[1].interval" in run.log
    feeds.add("/a.xml", "A two")
    feeds.add("/b.xml", "B two")
    wait_for(lambda: len(entry_titles(db, a)) == 2, 10, "A still polled", run)
    wait_for(lambda: len(entry_titles(db, b)) == 2, 10, "B still polled", run)

    # SIGHUP reloads: A removed stops being polled, B goes on. The file keeps its size,
    # inode and mtime, so that only the signal can have told the daemon.
    run.wait_log("config reloaded", count=1)
    before = config.stat()
    text = config_text((b, "B", "1s"))
    old_size = len(config.read_text(encoding="utf-8").encode())
    text += "#" * (old_size - len(text.encode()) - 1) + "\n"
    with config.open("r+", encoding="utf-8") as f:  # in place: same inode
        f.write(text)
        f.truncate()
    os.utime(config, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert config.stat().st_size == before.st_size
    run.proc.send_signal(signal.SIGHUP)
    run.wait_log("A: removed; no longer polled")
    assert "SIGHUP: reloading" in run.log
    # A poll of A already in flight may still land: it has by B's second poll from now.
    # Then, while B (also every second) is polled twice more, A is not polled at all.
    polls_of_b = poll_count(db, b)
    wait_for(lambda: poll_count(db, b) >= polls_of_b + 2, 10, "B polled after the reload", run)
    polls_of_a, polls_of_b = poll_count(db, a), poll_count(db, b)
    wait_for(lambda: poll_count(db, b) >= polls_of_b + 2, 10, "B polled twice more", run)
    assert poll_count(db, a) == polls_of_a

    code, _ = run.stop()
    assert code == 0, run.log
    assert integrity(db) == "ok"


def test_a_digest_missed_while_down_is_made_on_start_once(
    tmp_path: Path, feeds: FeedServer, runs: list[Run]
) -> None:
    now = datetime.now(UTC)
    yesterday = now.date() - timedelta(days=1)
    url = feeds.url("/news.xml")
    feeds.add("/news.xml", "Yesterday's big story", now - timedelta(days=1))
    # At 00:00 UTC the digest of the day before is due; the daemon was not running then.
    (tmp_path / "feeds.toml").write_text(
        config_text((url, "News", "1s"), digest='timezone = "UTC"\ntime = "00:00"'),
        encoding="utf-8",
    )
    db = tmp_path / "test.db"
    html = tmp_path / "digests" / f"{yesterday}.html"
    run = Run(tmp_path)
    runs.append(run)
    wait_for(
        lambda: bool(query(db, "SELECT 1 FROM digest_runs WHERE day = ?", str(yesterday))),
        15,
        "the missed digest recorded",
        run,
    )
    # Made after the first polls, so it has what the feeds published while the daemon was down.
    assert "Yesterday&#39;s big story" in html.read_text(encoding="utf-8") or (
        "Yesterday's big story" in html.read_text(encoding="utf-8")
    )
    for ext in ("txt", "json"):
        assert (tmp_path / "digests" / f"{yesterday}.{ext}").exists()
    code, _ = run.stop()
    assert code == 0, run.log
    made = html.stat().st_mtime_ns

    again = Run(tmp_path, "again")
    runs.append(again)
    again.wait_log(f"daily digest of {yesterday}: already made", timeout=15)
    code, _ = again.stop()
    assert code == 0, again.log
    assert html.stat().st_mtime_ns == made
    assert query(db, "SELECT count(*) FROM digest_runs") == [(1,)]
