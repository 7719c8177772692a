"""Several `aggregator run` processes against one store and the feed farm: starting them
(each in a folder of its own, as on hosts of their own), waiting for a pass over every
feed, and what they stored and fetched. Shared by tests/test_pollers.py and
bench/pollers.py (docs/postgres.md, Several pollers)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from tests.feedfarm import Farm

#: An article or a story: the (feed index, guid) of its entries.
Group = frozenset[tuple[int, str]]


@dataclass(frozen=True)
class Settings:
    """The [poll] table and feed interval every poller gets."""

    interval: str = "10m"  # each feed's fixed interval: one fetch per interval
    concurrency: int = 16
    per_host: int = 16  # the farm is one host: across pollers, this many fetches at once
    deadline: str = "10s"
    lease: str = "30s"


def write_config(folder: Path, farm: Farm, store: str, settings: Settings) -> Path:
    """A feeds.toml in `folder` for the farm's feeds; `store`: a postgresql:// URL, or an
    SQLite file's path."""
    folder.mkdir(parents=True, exist_ok=True)
    key = "url" if store.startswith("postgresql://") else "path"
    lines = [
        "[storage]",
        f'{key} = "{store}"',
        "",
        "[poll]",
        f"concurrency = {settings.concurrency}",
        f"per_host = {settings.per_host}",
        f'deadline = "{settings.deadline}"',
        f'lease = "{settings.lease}"',
        "",
        "[digest]",
        'output = "digests"',
        "",
    ]
    for feed in farm.feeds:
        lines += [
            "[[feeds]]",
            f'url = "{farm.url(feed)}"',
            f'name = "farm {feed.index}"',
            f'interval = "{settings.interval}"',
            "",
        ]
    path = folder / "feeds.toml"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def one_daemon_groups(
    config: Path, store: str, *, reverse: bool = False, batch: int | None = None,
    ordered: bool = True,
) -> tuple[set[Group], set[Group]]:  # fmt: skip
    """The articles and stories one daemon makes of the farm's entries, in this process:
    every feed of `config` polled in its order (or reversed) storing into `store`, then the
    daemon's placing, once the pass is over (`Daemon.place_job`); `batch`: entries per
    batch; not `ordered`: placed in the order stored, as daemons did before issue 20."""
    import random

    from aggregator.config import load_config
    from aggregator.core import make_aggregator
    from aggregator.scheduler import Daemon

    with make_aggregator(load_config(config)) as agg:
        daemon = Daemon(agg, rng=random.Random(1))
        if batch is not None:
            agg.placer.batch = batch
        agg.placer.ordered = ordered
        feeds = list(agg.config.feeds)
        stored = sum(agg.poll_feed(f, place=False).new for f in feeds[:: -1 if reverse else 1])
        # Every feed polled, none due again: the pass is over, and the daemon places.
        assert not agg.pass_pending()
        assert daemon.place_job() == stored
    return Store(store).groups()


class Store:
    """Reads what the pollers stored, from PostgreSQL or an SQLite file."""

    def __init__(self, store: str) -> None:
        self.store = store
        self.postgres = store.startswith("postgresql://")

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        if self.postgres:
            with psycopg.connect(self.store, autocommit=True) as db:
                return db.execute(sql.encode()).fetchall()
        if not Path(self.store).exists():
            return []
        with sqlite3.connect(f"file:{self.store}?mode=ro", uri=True, timeout=30) as db:
            return db.execute(sql).fetchall()

    def progress(self) -> tuple[int, int, int]:
        """Feeds polled successfully, entries stored, entries not placed yet."""
        try:
            feeds = self.rows("SELECT count(*) FROM feeds WHERE last_success IS NOT NULL")
            entries = self.rows("SELECT count(*), count(*) - count(article_id) FROM entries")
        except (psycopg.Error, sqlite3.Error):
            return 0, 0, 0  # not made yet
        if not feeds or not entries:
            return 0, 0, 0  # no SQLite file yet
        return int(feeds[0][0]), int(entries[0][0]), int(entries[0][1])

    def groups(self) -> tuple[set[Group], set[Group]]:
        """The articles and the stories, each as the set of its entries."""
        articles: dict[int, set[tuple[int, str]]] = defaultdict(set)
        stories: dict[int, set[tuple[int, str]]] = defaultdict(set)
        for url, guid, article, story in self.rows(
            "SELECT feed_url, guid, article_id, story_id FROM entries"
        ):
            key = (int(url.rsplit("/", 1)[1].split(".")[0]), guid)
            articles[article].add(key)
            stories[story].add(key)
        return {frozenset(g) for g in articles.values()}, {frozenset(g) for g in stories.values()}

    def leased_by(self, pid: int) -> dict[str, float]:
        """The feeds a poller (by its process id) holds a lease of: URL -> its end (epoch)."""
        column = "extract(epoch FROM lease_until)" if self.postgres else "lease_until"
        return {
            url: float(until)
            for url, until in self.rows(
                f"SELECT url, {column} FROM feeds WHERE lease_owner LIKE '%:{pid}:%'"
            )
        }


def start_pollers(configs: Sequence[Path], *, log_folder: Path) -> list[subprocess.Popen[bytes]]:
    """`aggregator run` for each config, in its folder, at once."""
    processes = []
    for n, config in enumerate(configs):
        log = (log_folder / f"poller{n}.log").open("wb")
        processes.append(
            subprocess.Popen(
                [sys.executable, "-m", "aggregator", "--config", str(config), "run"],
                cwd=config.parent,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        )
        log.close()
    return processes


def wait_for_pass(
    store: Store,
    feeds: int,
    entries: int,
    processes: Sequence[subprocess.Popen[bytes]],
    timeout: float,
) -> float:
    """Wait until every feed was polled and every entry stored and placed; the time.time()
    it was seen.

    Raises:
        RuntimeError: not within `timeout`, or every poller exited.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if store.progress() == (feeds, entries, 0):
            return time.time()
        if all(p.poll() is not None for p in processes):
            raise RuntimeError("every poller exited")
        time.sleep(0.2)
    raise RuntimeError(f"no whole pass within {timeout:.0f}s: {store.progress()}")


def stop(processes: Sequence[subprocess.Popen[bytes]]) -> list[int]:
    """SIGTERM each poller still running; their exit codes."""
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    return [process.wait(timeout=60) for process in processes]


def fetches(farm: Farm, since: float) -> dict[str, list[float]]:
    """Each feed path's requests since `since` (time.time()), in order."""
    found: dict[str, list[float]] = defaultdict(list)
    for came, path, _status in list(farm.log):
        if came >= since:
            found[path].append(came)
    return {path: sorted(times) for path, times in found.items()}


def refetched(times: dict[str, list[float]], interval: float) -> dict[str, list[float]]:
    """The feeds fetched twice within `interval` seconds, and their request times."""
    return {
        path: t
        for path, t in times.items()
        if any(later - earlier < interval for earlier, later in zip(t, t[1:], strict=False))
    }


def counted(times: dict[str, list[float]]) -> Counter[int]:
    """How many feeds were fetched how many times."""
    return Counter(len(t) for t in times.values())
