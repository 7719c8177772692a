"""SQLite against PostgreSQL for one process: storing and placing the same entries.

    python bench/backends.py                       # 10,000 entries, a throw-away server
    python bench/backends.py --size 3000 --rounds 3
    python bench/backends.py --url postgresql://me@127.0.0.1:5432/bench   # an empty database

`bench/cluster_scale.py`'s corpus (generated before the timing), stored as cluster_scale
stores it (polls of FEED_SIZE-entry feeds, each `save_poll` its own transaction) and placed
after each poll (`group_stored`, no feature workers), once into a new SQLite file and once
into a new PostgreSQL database: on a server of its own (tests/pgserver.py: Debian's
binaries, with fsync and synchronous commit on, unlike the tests' server; SQLite runs as
configured, WAL with synchronous NORMAL) unless `--url` names an empty database. A small
untimed run first loads what deduplication loads once per process. Prints
wall and CPU seconds of each backend, the articles and stories each made (they must be
the same), and the PostgreSQL/SQLite ratio of the wall time.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from itertools import islice
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=10000, help="entries")
    parser.add_argument("--rounds", type=int, default=1, help="runs of each backend, alternating")
    parser.add_argument("--url", help="an empty PostgreSQL database (default: a server of its own)")
    args = parser.parse_args()
    if args.url and args.rounds > 1:
        parser.error("--url names one empty database: one round")
    from tests.pgserver import PgServer

    server = None if args.url else PgServer(durable=True)
    try:
        run(300, "sqlite", None)  # loads the dictionaries and models once, untimed
        results: dict[str, list[tuple[float, float, int, int]]] = {"sqlite": [], "postgres": []}
        for _ in range(args.rounds):
            for backend, runs in results.items():
                url = args.url or (server.database() if server else None)
                runs.append(run(args.size, backend, url))
                wall, cpu, articles, stories = runs[-1]
                print(
                    f"{backend:>8}: {args.size} entries stored and placed in {wall:6.2f} s "
                    f"(CPU {cpu:6.2f} s): {articles} articles, {stories} stories",
                    flush=True,
                )
        best = {backend: min(r[0] for r in runs) for backend, runs in results.items()}
        same = {(r[2], r[3]) for runs in results.values() for r in runs}
        print(
            f"PostgreSQL/SQLite (best of {args.rounds}): {best['postgres'] / best['sqlite']:.2f}"
            f" ({best['postgres']:.2f} s / {best['sqlite']:.2f} s); "
            f"the same articles and stories: {len(same) == 1}",
            flush=True,
        )
    finally:
        if server is not None:
            server.stop()


def run(size: int, backend: str, url: str | None) -> tuple[float, float, int, int]:
    """Wall and CPU seconds storing and placing `size` entries; articles and stories made."""
    from aggregator.config import Config
    from aggregator.core import make_aggregator
    from aggregator.storage import Storage, open_storage
    from aggregator.storage.postgres import open_postgres
    from aggregator.types import DedupSettings, Feed
    from bench.cluster_scale import FEED_SIZE, START, Corpus

    copies: list[tuple[int, int]] = []
    stream = Corpus().stream(size, copies)
    with tempfile.TemporaryDirectory() as tmp:
        config = Config(
            path=Path(tmp) / "feeds.toml",
            storage_path=Path(tmp) / "bench.db",
            dedup=DedupSettings(workers=0),
        )
        storage: Storage = (
            open_storage(config.storage_path) if backend == "sqlite" else open_postgres(str(url))
        )
        wall = cpu = 0.0
        with make_aggregator(config, storage=storage) as aggregator:
            for start in range(0, size, 1000):
                polled = list(islice(stream, 1000))  # generated outside the timing
                started, cpu_started = time.perf_counter(), time.process_time()
                for first in range(0, len(polled), FEED_SIZE):
                    n = (start + first) // FEED_SIZE
                    feed = Feed(url=f"https://feed{n}.example/rss", name=str(n))
                    storage.sync_feeds([feed], START)
                    storage.save_poll(feed, polled[first : first + FEED_SIZE], now=START, seconds=0)
                aggregator.group_stored()
                wall += time.perf_counter() - started
                cpu += time.process_time() - cpu_started
            entries = storage.entries_between(START.replace(year=2000), START.replace(year=2100))
    return (
        wall,
        cpu,
        len({e.article_id for e in entries}),
        len({e.story_id for e in entries}),
    )


if __name__ == "__main__":
    main()
