"""Several `aggregator run` processes sharing one PostgreSQL: throughput and correctness.

    python bench/pollers.py                                # 1,000 feeds x 20 entries; 1, 2, 4
    python bench/pollers.py --feeds 1000 --entries 20 --pollers 1 2 4 --kill

Starts a throw-away PostgreSQL (tests/pgserver.py, fsync and synchronous commit on) and the
feed farm (tests/feedfarm.py; `--copies` of the feeds carry another feed's articles, so
deduplication has copies to find), then for each count in `--pollers` runs that many
`aggregator run` processes, each in a folder of its own as on a host of its own
(tests/pollerfarm.py), against a new database until every feed was polled and every entry
stored and placed. Each feed has a fixed interval longer than the run, so each must be
fetched exactly once: the farm's request log says whether one was fetched twice. Prints,
for each count, the wall time from start to the last entry placed, entries/s and feeds/s,
the fetches per feed, and whether the articles and stories are those of the reference: one
`aggregator run` into SQLite over the same entries (a single-process run; a daemon places a
pass in the placing order once it is over, docs/daemon.md), which also gives the
SQLite/PostgreSQL ratio for one process; and how near one `aggregator poll`'s are to it (a
poll places its batches as the feeds answer).
`--kill`: two pollers, the first killed (SIGKILL) mid-pass once it holds leases; the other
must take its feeds over once the lease ends, nothing lost or stored twice.
"""

from __future__ import annotations

import argparse
import os
import resource
import signal
import sys
import tempfile
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent)]

from tests.feedfarm import Farm  # noqa: E402
from tests.pgserver import PgServer  # noqa: E402
from tests.pollerfarm import (  # noqa: E402
    Group,
    Settings,
    Store,
    counted,
    fetches,
    refetched,
    start_pollers,
    stop,
    wait_for_pass,
    write_config,
)


def pair_count(groups: set[Group]) -> int:
    """How many two entries share a group."""
    return sum(len(g) * (len(g) - 1) // 2 for g in groups)


def agreement(found: set[Group], reference: set[Group]) -> str:
    """Whether the groups are the reference's; if not, how near: of the pairs of entries
    put together, the share the reference also puts together (P) and the reverse (R)."""
    if not reference:
        return f"{len(found)} (not compared)"
    if found == reference:
        return "identical"
    where = {entry: n for n, group in enumerate(reference) for entry in group}
    both = 0
    for group in found:
        shared = Counter(where[entry] for entry in group)
        both += sum(k * (k - 1) // 2 for k in shared.values())
    return (
        f"{len(found)} vs {len(reference)}; pairs P {both / max(1, pair_count(found)):.3f} "
        f"R {both / max(1, pair_count(reference)):.3f}"
    )


def children_cpu() -> float:
    """CPU seconds of this process's children waited for (the pollers, once stopped)."""
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def server_cpu(server: PgServer | None) -> float:
    """CPU seconds of the PostgreSQL server: its postmaster and the backends it reaped."""
    if server is None:
        return 0.0
    pid = (server.data / "postmaster.pid").read_text().split()[0]
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(v) for v in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def reference(farm: Farm, folder: Path, settings: Settings) -> tuple[set[Group], set[Group]]:
    """The articles and stories one `aggregator poll` into SQLite makes of the farm."""
    from aggregator.config import load_config
    from aggregator.core import make_aggregator

    config = write_config(folder / "reference", farm, str(folder / "reference.db"), settings)
    with make_aggregator(load_config(config)) as agg:
        agg.poll()
    return Store(str(folder / "reference.db")).groups()


def run(
    label: str,
    stores: list[str],
    farm: Farm,
    folder: Path,
    settings: Settings,
    expected: int,
    want: tuple[set[Group], set[Group]],
    *,
    kill: bool = False,
    server: PgServer | None = None,
) -> tuple[set[Group], set[Group]]:
    """Run one poller per store given (all the same store but for SQLite's one) to a pass;
    returns the articles and stories they made."""
    store = Store(stores[0])
    configs = [
        write_config(folder / f"{label}-host{n}", farm, url, settings)
        for n, url in enumerate(stores)
    ]
    cpu, server_began = children_cpu(), server_cpu(server)
    began = time.time()
    processes = start_pollers(configs, log_folder=folder)
    held: dict[str, float] = {}
    try:
        if kill:
            while not held:
                if store.progress()[0] >= len(farm.feeds) // 4:
                    held = store.leased_by(processes[0].pid)
                time.sleep(0.05)
            processes[0].send_signal(signal.SIGKILL)
            killed = time.time()
            processes[0].wait(10)
            # Read again once it is dead: it may have leased more since the first read.
            held = store.leased_by(processes[0].pid) or held
            print(
                f"  killed poller 0 (pid {processes[0].pid}) {killed - began:.1f} s in, "
                f"holding {len(held)} leases, {store.progress()[0]} feeds polled",
                flush=True,
            )
        done = wait_for_pass(store, len(farm.feeds), expected, processes, timeout=1800)
    finally:
        codes = stop(processes)
    cpu, server_used = children_cpu() - cpu, server_cpu(server) - server_began
    wall = done - began
    times = fetches(farm, began)
    twice = refetched(times, 3600)
    articles, stories = store.groups()
    print(
        f"{label}: {expected} entries, {len(farm.feeds)} feeds in {wall:.1f} s: "
        f"{expected / wall:.0f} entries/s, {len(farm.feeds) / wall:.1f} feeds/s; exit codes "
        f"{codes}; fetches per feed {dict(counted(times))}; "
        f"articles {agreement(articles, want[0])}; stories {agreement(stories, want[1])}; "
        f"CPU: pollers {cpu:.0f} s, server {server_used:.0f} s (to their stop, "
        f"{time.time() - began:.0f} s)",
        flush=True,
    )
    if kill:
        paths = {url.removeprefix(farm.base_url): until for url, until in held.items()}
        late = all(t[1] >= paths[p] - 0.05 for p, t in twice.items() if p in paths)
        print(
            f"  fetched twice: {len(twice)}, all among the dead poller's leases: "
            f"{set(twice) <= set(paths)}, after their lease ended: {late}",
            flush=True,
        )
    elif twice:
        print(f"  FETCHED TWICE: {sorted(twice)[:10]}", flush=True)
    return articles, stories


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--feeds", type=int, default=1000)
    parser.add_argument("--entries", type=int, default=20, help="per feed")
    parser.add_argument("--copies", type=float, default=0.2, help="share of copying feeds")
    parser.add_argument("--pollers", type=int, nargs="*", default=[1, 2, 4])
    parser.add_argument("--concurrency", type=int, default=16, help="[poll] of each poller")
    parser.add_argument("--per-host", type=int, default=64, help="[poll] per_host, all pollers")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per farm request")
    parser.add_argument(
        "--sqlite", action="store_true", help="(always done now, as the reference; kept)"
    )
    parser.add_argument("--kill", action="store_true", help="also kill -9 one of two pollers")
    parser.add_argument(
        "--no-reference",
        action="store_true",
        help="no reference (one `aggregator run` into SQLite) and no `poll`: compare nothing",
    )
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # stop the server and farm too
    settings = Settings(
        interval="2h",
        concurrency=args.concurrency,
        per_host=args.per_host,
        deadline="20s",
        lease="40s",
    )
    farm = Farm(
        feeds=args.feeds, entries=args.entries, copies=args.copies, latency=args.latency
    ).start()
    server = PgServer(durable=True)
    folder = Path(tempfile.mkdtemp(prefix="aggregator-pollers-"))
    print(
        f"{args.feeds} feeds x {args.entries} entries ({len(farm.copy_of)} feeds copying "
        f"another), PostgreSQL {server.bin.parent.name}, {os.cpu_count()} cores, load "
        f"{os.getloadavg()[0]:.1f}; logs in {folder}",
        flush=True,
    )
    try:
        expected = args.feeds * args.entries
        want: tuple[set[Group], set[Group]] = (set(), set())
        if not args.no_reference:
            sqlite = [str(folder / "sqlite.db")]
            want = run("reference: sqlite x1", sqlite, farm, folder, settings, expected, want)
            polled = reference(farm, folder, settings)
            print(
                f"`aggregator poll` into SQLite: articles {agreement(polled[0], want[0])}; "
                f"stories {agreement(polled[1], want[1])}",
                flush=True,
            )
        for n in args.pollers:
            url = server.database()
            run(f"postgres x{n}", [url] * n, farm, folder, settings, expected, want, server=server)
        if args.kill:
            url = server.database()
            kill_settings = replace(settings, deadline="5s", lease="10s")
            label = "postgres x2, one killed"
            run(
                label,
                [url] * 2,
                farm,
                folder,
                kill_settings,
                expected,
                want,
                kill=True,
                server=server,
            )
    finally:
        farm.stop()
        server.stop()


if __name__ == "__main__":
    main()
