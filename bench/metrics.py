"""What a /metrics scrape reads from a long-running daemon's store, and what a poll's record
costs beside it (docs/daemon.md, What /metrics reads).

    python bench/metrics.py                          # SQLite and PostgreSQL, 1,000,000 of each
    python bench/metrics.py --backend sqlite --polls 200000 --entries 200000

A store as an aggregator from before the running totals left it (schema 19: no poll
totals, no kept counts), filled by SQL: `--feeds` feeds, `--polls` poll records (a tenth
failed) and `--entries` entries placed in articles of 3 and stories of 17. It is then
opened (its migrations timed), and the reads of a scrape are timed, `--repeat` times each:
`tallies` and `feed_states` (/metrics reads both; `status` the second, the feeds page it
and `recent_errors`). Then every feed is polled `--rounds` times (a 304's record: its
cost, and the history it prunes: 200 records a poll, so five rounds of 1,000 polls a feed
end pruned), the store settled (PostgreSQL: VACUUM, as autovacuum would after so many
deletes), every feed polled once more and the reads timed again. Into a new SQLite file (WAL,
synchronous NORMAL) and a new database on a PostgreSQL server of its own
(tests/pgserver.py, fsync and synchronous commit on). Run with an older tree's package
first on PYTHONPATH to measure what it did (its schema is the one filled, nothing
migrates).
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.append(str(Path(__file__).resolve().parent.parent))  # an older tree's may come first

from aggregator.storage import FeedUpdate, Storage, open_storage, schema  # noqa: E402
from aggregator.storage.sqlite import to_db_time  # noqa: E402
from aggregator.types import Feed  # noqa: E402

T0 = datetime(2026, 1, 1, tzinfo=UTC)
#: The schema the store is filled at: the last before the running totals.
FILLED_AT = (
    schema.MIGRATIONS.index(schema._POLL_TOTALS)
    if hasattr(schema, "_POLL_TOTALS")
    else schema.SCHEMA_VERSION
)


def url_of(n: str) -> str:
    """A feed's URL in SQL, of its number `n` (an SQL expression)."""
    return f"'https://h' || ({n} % 50) || '.example/' || {n} || '.xml'"


def fill_sql(
    feeds: int,
    polls: int,
    entries: int,
    series: Callable[[int], str],
    stamp: str,
    true: str,
    started: str,
) -> list[str]:
    """The statements that fill the store; `series(n)`: rows i = 1..n, the backend's way;
    `stamp`: a time as the backend takes it; `true`, its truth; `started`: the i-th poll's
    start, a second after the one before, from 20 days before T0."""
    feed = url_of(f"(i % {feeds})")
    return [
        f"INSERT INTO feeds (url, name, added_at) SELECT {url_of('(i - 1)')}, 'F' || i, "
        f"'{stamp}' FROM {series(feeds)}",
        "INSERT INTO entries (feed_url, guid, title, link, published, dated, first_seen, "
        "updated_at, summary, text, content_hash, article_id, story_id) "
        f"SELECT {feed}, 'g' || i, 'Title ' || i, 'https://x.example/' || i, '{stamp}', "
        f"{true}, '{stamp}', '{stamp}', 'summary ' || i, 'text of entry ' || i, 'h' || i, "
        f"i - i % 3, i - i % 17 FROM {series(entries)}",
        "INSERT INTO polls (feed_url, started_at, seconds, status, new, updated, error, "
        f"http_status) SELECT {feed}, {started}, (i % 3000) / 1000.0, "
        "CASE WHEN i % 10 = 0 THEN 'error' WHEN i % 3 = 0 THEN 'ok' ELSE 'not_modified' END, "
        "0, 0, CASE WHEN i % 10 = 0 THEN 'HTTP 500' END, 200 "
        f"FROM {series(polls)}",
    ]


def sqlite_store(folder: Path, feeds: int, polls: int, entries: int) -> Path:
    path = folder / "metrics.db"
    with sqlite3.connect(path, isolation_level=None) as raw:
        for number, script in enumerate(schema.MIGRATIONS[:FILLED_AT]):
            raw.executescript(f"BEGIN;\n{script};\nPRAGMA user_version = {number + 1};\nCOMMIT;")
        raw.execute("PRAGMA journal_mode = WAL")
        raw.execute("BEGIN")
        for statement in fill_sql(
            feeds,
            polls,
            entries,
            lambda n: (
                f"(WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s "
                f"WHERE i < {n}) SELECT i FROM s)"
            ),
            to_db_time(T0),
            "1",
            "strftime('%Y-%m-%dT%H:%M:%S', '2025-12-12', '+' || i || ' seconds') "
            "|| '.000000+00:00'",
        ):
            raw.execute(statement)
        raw.execute("COMMIT")
    raw.close()
    return path


def postgres_store(url: str, feeds: int, polls: int, entries: int) -> None:
    import psycopg

    from aggregator.storage.postgres import schema as pg_schema

    with psycopg.connect(url, autocommit=True) as raw:
        raw.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        raw.execute("INSERT INTO schema_version VALUES (%s)", (FILLED_AT,))
        for script in pg_schema.MIGRATIONS[:FILLED_AT]:
            raw.execute(script.encode())
        with raw.transaction():
            for statement in fill_sql(
                feeds,
                polls,
                entries,
                lambda n: f"generate_series(1, {n}) AS s(i)",
                T0.isoformat(),
                "true",
                "timestamptz '2025-12-12T00:00:00+00:00' + i * interval '1 second'",
            ):
                raw.execute(statement.encode())
        raw.execute("VACUUM ANALYZE")


def timed(read: Callable[[], Any], repeat: int) -> str:
    seconds = []
    for _ in range(repeat):
        started = time.perf_counter()
        read()
        seconds.append(time.perf_counter() - started)
    p95 = sorted(seconds)[int(len(seconds) * 0.95)]
    return f"median {statistics.median(seconds) * 1000:7.1f} ms, p95 {p95 * 1000:7.1f} ms"


def table_count(db: Storage, table: str) -> int:
    counts: dict[str, int] = db.table_counts()  # type: ignore[attr-defined]
    return counts[table]


def measure(
    name: str,
    open_store: Callable[[], Storage],
    args: argparse.Namespace,
    settle: Callable[[], None] = lambda: None,
) -> None:
    started = time.perf_counter()
    db = open_store()
    opened = time.perf_counter() - started
    print(f"{name}: opened (migrated from schema {FILLED_AT}) in {opened:.1f} s")
    try:
        reads(name, db, args.repeat)
        tallies = db.tallies()
        print(f"{name}: {tallies[:3]} entries, articles, stories; polls {tallies.polls}")
        feeds = [Feed(url=s.url, name=s.name) for s in db.feed_states()]
        for round_ in range(args.rounds + 1):
            if round_ == args.rounds:
                started = time.perf_counter()
                settle()
                print(f"{name}: settled in {time.perf_counter() - started:.1f} s")
            records = []
            for n, feed in enumerate(feeds):
                now = T0 + timedelta(days=1, minutes=round_, seconds=n / 100)
                started = time.perf_counter()
                db.record_not_modified(feed, now=now, seconds=0.2, update=FeedUpdate(304))
                records.append(time.perf_counter() - started)
            p95 = sorted(records)[int(len(records) * 0.95)]
            print(
                f"{name}: round {round_ + 1} of {len(feeds)} polls recorded: a record "
                f"median {statistics.median(records) * 1000:.2f} ms, p95 {p95 * 1000:.2f} ms; "
                f"{table_count(db, 'polls')} poll records left",
                flush=True,
            )
        reads(name, db, args.repeat)
        print(f"{name}: polls {db.tallies().polls}")
    finally:
        db.close()


def vacuum(url: str) -> None:
    """What autovacuum does by itself after so many deletes, at once."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as raw:
        raw.execute("VACUUM ANALYZE polls")


def reads(name: str, db: Storage, repeat: int) -> None:
    print(f"{name}:   tallies        {timed(db.tallies, repeat)}", flush=True)
    print(f"{name}:   feed_states    {timed(db.feed_states, repeat)}", flush=True)
    print(f"{name}:   recent_errors  {timed(db.recent_errors, max(3, repeat // 5))}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--feeds", type=int, default=1000)
    parser.add_argument("--polls", type=int, default=1_000_000)
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=20, help="times each read is timed")
    parser.add_argument("--rounds", type=int, default=5, help="polls of every feed after")
    args = parser.parse_args()
    shape = f"{args.feeds} feeds, {args.polls} polls, {args.entries} entries"
    if args.backend in ("sqlite", "both"):
        with tempfile.TemporaryDirectory() as folder:
            started = time.perf_counter()
            path = sqlite_store(Path(folder), args.feeds, args.polls, args.entries)
            print(f"SQLite: {shape} filled in {time.perf_counter() - started:.1f} s")
            measure("SQLite", lambda: open_storage(path), args)
    if args.backend in ("postgres", "both"):
        from aggregator.storage.postgres import open_postgres
        from tests.pgserver import PgServer

        server = PgServer(durable=True)
        try:
            url = server.database()
            started = time.perf_counter()
            postgres_store(url, args.feeds, args.polls, args.entries)
            print(f"PostgreSQL: {shape} filled in {time.perf_counter() - started:.1f} s")
            measure("PostgreSQL", lambda: open_postgres(url), args, lambda: vacuum(url))
        finally:
            server.stop()


if __name__ == "__main__":
    main()
