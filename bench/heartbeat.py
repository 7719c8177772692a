"""What a poller's record costs (docs/postgres.md, Several pollers): a heartbeat's write
(`Storage.record_poller`) and `status`'s read of the pollers with their leases
(`Storage.pollers`), on SQLite and on PostgreSQL.

    python bench/heartbeat.py

1,000 feeds, 4 pollers holding 100 leases each; 300 heartbeats (the 4 pollers in turn),
then 100 reads, into a new SQLite file (WAL, synchronous NORMAL) and a new PostgreSQL
database on a server of its own (tests/pgserver.py, fsync and synchronous commit on).
Prints the median and 95th percentile of each.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent.parent)]

from aggregator.storage import PollerRecord, Storage, open_storage  # noqa: E402
from aggregator.storage.postgres import open_postgres  # noqa: E402
from aggregator.types import Feed  # noqa: E402

FEEDS, POLLERS, LEASED = 1000, 4, 100


def _ms(seconds: list[float]) -> str:
    p95 = sorted(seconds)[int(len(seconds) * 0.95)]
    return f"median {statistics.median(seconds) * 1000:.2f} ms, p95 {p95 * 1000:.2f} ms"


def measure(db: Storage, name: str) -> None:
    feeds = [Feed(url=f"https://h{n % 50}.example/{n}.xml", name=f"F{n}") for n in range(FEEDS)]
    now = datetime.now(UTC)
    db.sync_feeds(feeds, now)
    records = []
    for k in range(POLLERS):
        owner = f"host{k}:{k}:tag"
        mine = feeds[k * LEASED : (k + 1) * LEASED]
        hosts: dict[str, str | None] = {f.url: f.url.split("/")[2] for f in mine}
        db.lease_feeds(hosts, owner=owner, now=now, until=now + timedelta(minutes=5))
        records.append(PollerRecord(owner, f"host{k}", k, now, now, None, timedelta(seconds=30)))
    writes, reads = [], []
    for i in range(300):
        record = records[i % POLLERS]._replace(seen=now + timedelta(seconds=i))
        started = time.perf_counter()
        db.record_poller(record, forget_before=now - timedelta(days=7))
        writes.append(time.perf_counter() - started)
    for _ in range(100):
        started = time.perf_counter()
        listed = db.pollers(now)
        reads.append(time.perf_counter() - started)
    assert [p.leases for p in listed] == [LEASED] * POLLERS
    print(f"{name}: a heartbeat {_ms(writes)}; pollers() {_ms(reads)}")


def main() -> None:
    from tests.pgserver import PgServer

    with tempfile.TemporaryDirectory() as folder, open_storage(Path(folder) / "a.db") as db:
        measure(db, "SQLite")
    server = PgServer(durable=True)
    try:
        with open_postgres(server.database()) as db:
            measure(db, "PostgreSQL")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
