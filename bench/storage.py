"""Seconds spent in SQLite storage during a first poll and its deduplication.

    python bench/storage.py                    # both parts below
    python bench/storage.py --part farm        # one of them
    python bench/storage.py --tree DIR         # the aggregator package of another tree

`farm`: the first poll of the feed farm (tests/feedfarm.py: `--feeds` x `--entries`,
parsed before the timing, no HTTP): `save_poll` once a feed (each its own transaction),
then the entries placed in articles and stories (`group_stored`, no feature workers),
then every feed stored again unchanged (a re-poll). `scale`: `bench/cluster_scale.py`'s
corpus of `--size` entries through the same incremental path. Each storage call is timed
where it is called, wall (and CPU) seconds; `sqlite` is their sum, `total` the wall time of
the part.

Back to back against another commit: export it (`git archive C | tar -x -C DIR`) and
alternate runs with and without `--tree DIR`.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
CALLS = (
    "save_poll",
    "entries_by_ids",
    "previous_placements",
    "known_copies",
    "vocabulary",
    "stories_near",
    "save_outcome",
    "dedup_features",
    "unassigned_ids",
)
#: Seconds in each storage call: wall time, and this process's CPU time (steadier on a
#: shared machine; SQLite's work is in-process, waiting for the disk is not counted).
spent: dict[str, float] = defaultdict(float)
spent_cpu: dict[str, float] = defaultdict(float)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--feeds", type=int, default=300)
    parser.add_argument("--entries", type=int, default=50)
    parser.add_argument("--size", type=int, default=10000, help="entries of `scale`")
    parser.add_argument("--tree", type=Path, help="import aggregator from this tree")
    parser.add_argument("--part", choices=["farm", "scale", "all"], default="all")
    args = parser.parse_args()
    # The tree measured, imported before bench.cluster_scale puts this one on the path.
    sys.path[:0] = [str(args.tree or HERE.parent), str(HERE.parent)]
    import aggregator.storage.sqlite

    print(f"aggregator from {Path(aggregator.__file__).parent.parent}", flush=True)
    _time_calls(aggregator.storage.sqlite.SqliteStorage)
    if args.part in ("farm", "all"):
        farm(args.feeds, args.entries)
    if args.part in ("scale", "all"):
        scale(args.size)


def _time_calls(cls: type) -> None:
    def timed(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            started, cpu = time.perf_counter(), time.process_time()
            try:
                return function(*args, **kwargs)
            finally:
                spent[name] += time.perf_counter() - started
                spent_cpu[name] += time.process_time() - cpu

        return wrapper

    for name in CALLS:
        setattr(cls, name, timed(name, getattr(cls, name)))


def _report(title: str, started: float) -> None:
    total = time.perf_counter() - started
    parts = ", ".join(
        f"{name} {seconds:.3f} ({spent_cpu[name]:.3f})" for name, seconds in spent.items()
    )
    print(
        f"{title}: total {total:.2f} s, sqlite {sum(spent.values()):.3f} s "
        f"(CPU {sum(spent_cpu.values()):.3f} s): {parts}",
        flush=True,
    )
    spent.clear()
    spent_cpu.clear()


def farm(feeds: int, per_feed: int) -> None:
    from aggregator.config import Config
    from aggregator.core import make_aggregator
    from aggregator.sources.parse import parse_feed
    from aggregator.storage import open_storage
    from aggregator.types import DedupSettings, Feed

    try:
        from tests.feedfarm import Farm
    except ImportError:  # a --tree from before the farm moved under tests/
        from bench.feedfarm import Farm  # type: ignore[no-redef]

    generated = Farm(feeds=feeds, entries=per_feed)
    generated.server.server_close()  # its bytes only
    polled = []
    for n, item in enumerate(generated.feeds):
        url = f"https://feed{n}.example/rss"
        parsed = parse_feed(generated.bodies[item.path], url)
        polled.append((Feed(url=url, name=str(n)), parsed.entries))
    now = generated.modified
    with tempfile.TemporaryDirectory() as tmp:
        config = Config(
            path=Path(tmp) / "feeds.toml",
            storage_path=Path(tmp) / "farm.db",
            dedup=DedupSettings(workers=0),
        )
        storage = open_storage(config.storage_path)
        storage.sync_feeds([feed for feed, _ in polled], now)
        with make_aggregator(config, storage=storage) as aggregator:
            started = time.perf_counter()
            for feed, entries in polled:
                storage.save_poll(feed, entries, now=now, seconds=0)
            _report(f"farm {feeds} x {per_feed}, first poll stored", started)
            started = time.perf_counter()
            aggregator.group_stored()
            _report("farm, placed", started)
            started = time.perf_counter()
            for feed, entries in polled:
                storage.save_poll(feed, entries, now=now, seconds=0)
            _report("farm, stored again unchanged", started)


def scale(size: int) -> None:
    from bench import cluster_scale

    started = time.perf_counter()
    cluster_scale.run(size, workers=0)
    _report(f"scale {size}", started)


if __name__ == "__main__":
    main()
