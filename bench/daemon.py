"""The daemon, measured: `aggregator run` on N local feeds with a fixed interval.

    python bench/daemon.py --feeds 50 --interval 2s --rounds 3

Starts a feed server on 127.0.0.1 and the real daemon in a subprocess, then reports:
how long until every feed's first entries are stored; for each round, the delay between
the server publishing a new entry in every feed and the daemon storing it (median, p95,
max; expect about half the interval plus jitter); the daemon's CPU time; and how long
SIGTERM takes to stop it, its exit code and PRAGMA integrity_check.
"""

from __future__ import annotations

import argparse
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


class Feeds:
    """N RSS feeds whose items grow while the daemon runs."""

    def __init__(self, count: int) -> None:
        self.items: list[list[str]] = [[f"f{i}-0"] for i in range(count)]
        self.lock = threading.Lock()
        feeds = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:  # quiet
                pass

            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                index = int(self.path.strip("/").split(".")[0])
                with feeds.lock:
                    guids = list(feeds.items[index])
                stamp = format_datetime(datetime.now(UTC))
                body = "".join(
                    f"<item><title>Entry {g}</title><guid>{g}</guid><pubDate>{stamp}</pubDate>"
                    f"<description>Text of {g}</description></item>"
                    for g in guids
                )
                data = (
                    f'<?xml version="1.0"?><rss version="2.0"><channel><title>Feed {index}'
                    f"</title>{body}</channel></rss>"
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/rss+xml")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, index: int) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/{index}.xml"

    def publish(self, round_: int) -> list[str]:
        with self.lock:
            guids = []
            for i, items in enumerate(self.items):
                items.append(f"f{i}-{round_}")
                guids.append(items[-1])
        return guids


def stored(db: Path, guids: set[str]) -> set[str]:
    if not db.exists():
        return set()
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            rows = conn.execute("SELECT guid FROM entries").fetchall()
    except sqlite3.OperationalError:
        return set()
    return {r[0] for r in rows} & guids


def wait_all(db: Path, guids: list[str], since: float, timeout: float) -> list[float]:
    """Seconds after `since` at which each guid was first seen stored."""
    seen: dict[str, float] = {}
    deadline = time.monotonic() + timeout
    while len(seen) < len(guids) and time.monotonic() < deadline:
        now = time.monotonic()
        for guid in stored(db, set(guids)) - seen.keys():
            seen[guid] = now - since
        time.sleep(0.05)
    if len(seen) < len(guids):
        raise SystemExit(f"only {len(seen)} of {len(guids)} entries arrived in {timeout}s")
    return sorted(seen.values())


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--feeds", type=int, default=50)
    parser.add_argument("--interval", default="2s")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    feeds = Feeds(args.feeds)
    folder = Path(tempfile.mkdtemp(prefix="daemon-bench-"))
    tables = "".join(
        f'[[feeds]]\nurl = "{feeds.url(i)}"\nname = "Feed {i}"\ninterval = "{args.interval}"\n'
        for i in range(args.feeds)
    )
    (folder / "feeds.toml").write_text(f'[storage]\npath = "bench.db"\n\n{tables}')
    db = folder / "bench.db"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    started = time.monotonic()
    with (folder / "daemon.log").open("w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "aggregator", "--config", "feeds.toml", "run"],
            cwd=folder,
            env=env,
            stderr=log,
        )
    try:
        first = wait_all(db, [f"f{i}-0" for i in range(args.feeds)], started, 120)
        print(f"{args.feeds} feeds, interval {args.interval}; folder {folder}")
        print(f"start to every feed's first entry stored: {first[-1]:.2f}s")
        cpu_before, wall_before = cpu_seconds(proc.pid), time.monotonic()
        for round_ in range(1, args.rounds + 1):
            published = time.monotonic()
            delays = wait_all(db, feeds.publish(round_), published, 120)
            print(
                f"round {round_}: new entry stored after median {statistics.median(delays):.2f}s,"
                f" p95 {delays[int(len(delays) * 0.95) - 1]:.2f}s, max {delays[-1]:.2f}s"
            )
        cpu = cpu_seconds(proc.pid) - cpu_before
        wall = time.monotonic() - wall_before
        print(f"daemon CPU: {cpu:.2f}s over {wall:.1f}s ({100 * cpu / wall:.0f}% of one core)")
        stop = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
        print(f"SIGTERM to exit: {time.monotonic() - stop:.2f}s, exit code {code}")
        with sqlite3.connect(db) as conn:
            print("integrity_check:", conn.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        if proc.poll() is None:
            proc.kill()
        feeds.server.shutdown()


if __name__ == "__main__":
    main()
