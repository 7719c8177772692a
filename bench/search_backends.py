"""Full-text search on SQLite (FTS5) against PostgreSQL (tsvector, GIN): storing and searching
the same entries.

    python bench/search_backends.py                          # 20,000 entries
    python bench/search_backends.py --entries 5000 --runs 5

bench/serve.py's entries (a third each Simplified, Traditional and English, ~300 words;
each topical word in 3% of its language's texts), stored with `save_poll` (50 feeds, one
poll each) into a new SQLite file and a new PostgreSQL database on a server of its own
(tests/pgserver.py, fsync and synchronous commit on), both indexing them for search; then
stories assigned by SQL (five entries each) and bench/serve.py's queries run `--runs` times
on each (`Storage.search`, the first page of 20 stories: storage's part of a /search
request). Prints the storing pass's seconds and each query's stories, median and p95 (ms),
and whether both found the same number of stories.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from tempfile import TemporaryDirectory

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent)]

from aggregator.storage import Storage, open_storage  # noqa: E402
from aggregator.storage.postgres import open_postgres  # noqa: E402
from aggregator.types import EntryData, Feed  # noqa: E402
from bench.serve import QUERIES, entries, timed  # noqa: E402
from tests.pgserver import PgServer  # noqa: E402

FEEDS = 50


def store(storage: Storage, polls: dict[int, list[EntryData]], now: datetime) -> float:
    """Store each feed's entries in one poll; the seconds `save_poll` took."""
    listed = [Feed(url=f"https://bench.example/{i}", name=f"Feed {i}") for i in range(FEEDS)]
    storage.sync_feeds(listed, now)
    started = time.perf_counter()
    for n, feed in enumerate(listed):
        storage.save_poll(feed, polls.get(n, []), now=now, seconds=0.1)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    now = datetime.now(UTC)
    polls: dict[int, list[EntryData]] = {}
    for feed, entry in entries(args.entries, FEEDS, now):
        polls.setdefault(feed, []).append(entry)
    server = PgServer(durable=True)
    try:
        with TemporaryDirectory() as tmp:
            url = server.database()
            stores: dict[str, Storage] = {
                "sqlite": open_storage(Path(tmp) / "bench.db"),
                "postgres": open_postgres(url),
            }
            for name, storage in stores.items():
                seconds = store(storage, polls, now)
                print(f"{name:>8}: {args.entries:,} entries stored in {seconds:6.1f} s", flush=True)
            import sqlite3

            with sqlite3.connect(Path(tmp) / "bench.db") as db:
                db.execute("UPDATE entries SET article_id = id, story_id = (id + 4) / 5")
            server.sql(
                "UPDATE entries SET article_id = id, story_id = (id + 4) / 5", url.rsplit("/", 1)[1]
            )
            for query in QUERIES:
                found = {name: s.search(query).total for name, s in stores.items()}
                line = [f"{query!r:14} {found['sqlite']:6,} stories"]
                for name, storage in stores.items():
                    median, p95 = timed(lambda s=storage, q=query: s.search(q), args.runs)
                    line.append(f"{name} median {median:7.1f} ms, p95 {p95:7.1f} ms")
                same = (
                    ""
                    if found["sqlite"] == found["postgres"]
                    else f" (PostgreSQL: {found['postgres']:,})"
                )
                print("; ".join(line) + same, flush=True)
            for storage in stores.values():
                storage.close()
    finally:
        server.stop()


if __name__ == "__main__":
    main()
