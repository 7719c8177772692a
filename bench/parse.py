"""Our ingest path against the parser alone, on the same XML bytes.

Raw `feedparser.parse` on bytes in memory, versus our whole ingest path on the same
documents: parse (fast reader or feedparser) + normalise + store in SQLite + dedup
(whatever `aggregator poll` does after a fetch). The documents come from the feed farm
(tests/feedfarm.py), written as files and polled as local sources, so no network time
is counted.

    python bench/parse.py --feeds 200 --entries 50

With --against REV it times `parse_feed` alone instead: this tree's `aggregator` and the
one at git revision REV (exported, each run in a process of its own after one warm-up
document), runs interleaved, on the farm's documents as the farm serves them
(Content-Type included); it says whether both gave the same entries.

    python bench/parse.py --feeds 300 --entries 50 --against HEAD~2
"""

from __future__ import annotations

import argparse
import io
import os
import pickle
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aggregator.config import load_config  # noqa: E402
from aggregator.core import make_aggregator  # noqa: E402
from tests.feedfarm import Farm  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--feeds", type=int, default=200)
    parser.add_argument("--entries", type=int, default=50)
    parser.add_argument("--against", metavar="REV", help="time parse_feed: this tree vs REV")
    parser.add_argument("--runs", type=int, default=5, help="with --against: runs of each")
    args = parser.parse_args()

    farm = Farm(feeds=args.feeds, entries=args.entries, seed=1)
    farm.server.server_close()  # only the generated documents are needed
    if args.against:
        compare_parse_feed(farm, args.against, args.runs)
        return
    bodies = [farm.bodies[f.path] for f in farm.feeds]
    megabytes = sum(len(b) for b in bodies) / 1e6
    entries = args.feeds * args.entries

    import feedparser

    rows = []
    for label, options in (
        ("feedparser.parse (defaults)", {}),
        ("feedparser.parse (no sanitise/resolve)",
         {"sanitize_html": False, "resolve_relative_uris": False}),
    ):  # fmt: skip
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            started = time.process_time()
            parsed = sum(len(feedparser.parse(io.BytesIO(b), **options).entries) for b in bodies)
            rows.append((label, time.process_time() - started, parsed))

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        feeds = []
        for feed, body in zip(farm.feeds, bodies, strict=True):
            path = folder / "feeds" / f"{feed.index}.xml"
            path.parent.mkdir(exist_ok=True)
            path.write_bytes(body)
            feeds.append(f'[[feeds]]\nurl = "feeds/{feed.index}.xml"\nname = "farm {feed.index}"\n')
        (folder / "feeds.toml").write_text('[storage]\npath = "a.db"\n\n' + "\n".join(feeds))
        with make_aggregator(load_config(folder / "feeds.toml")) as agg:
            started = time.process_time()
            results = agg.poll()
            seconds = time.process_time() - started
        stored = sum(r.new for r in results)
        rows.append(("aggregator ingest (parse+store+dedup)", seconds, stored))

    print(
        f"\n{args.feeds} documents, {entries} entries, {megabytes:.1f} MB of XML, "
        f"{os.cpu_count()} cores (CPU seconds of this process)\n"
    )
    print(f"| {'path':<40} | {'CPU s':>7} | {'entries':>7} | {'entries/s':>9} | {'MB/s':>6} |")
    print(f"|{'-' * 42}|{'-' * 9}|{'-' * 9}|{'-' * 11}|{'-' * 8}|")
    for label, cpu, count in rows:
        print(
            f"| {label:<40} | {cpu:7.2f} | {count:7d} | {count / cpu:9.0f} | "
            f"{megabytes / cpu:6.2f} |"
        )
    ours = rows[-1][2] / rows[-1][1]
    raw = rows[0][2] / rows[0][1]
    print(f"\nour ingest / raw feedparser: {ours / raw:.2f}x (target >= 0.5x)")


# Run in a process whose PYTHONPATH is one tree: times parse_feed over the documents on stdin.
_TIME_PARSE = """
import gc, pickle, sys, time
from aggregator.sources.parse import parse_feed
documents = pickle.load(sys.stdin.buffer)
parse_feed(*documents[0][:2], content_type=documents[0][2])  # lazy imports and caches
gc.collect()
started = time.process_time()
results = [parse_feed(d, u, content_type=c) for d, u, c in documents]
seconds = time.process_time() - started
pickle.dump((seconds, sum(len(r.entries) for r in results), repr(results)), sys.stdout.buffer)
"""


def compare_parse_feed(farm: Farm, revision: str, runs: int) -> None:
    """parse_feed of this tree and of `revision` on the farm's documents, back to back."""
    documents = []
    for feed in farm.feeds:
        kind = "application/rss+xml" if feed.fmt == "rss" else "application/atom+xml"
        documents.append((farm.bodies[feed.path], farm.url(feed), f"{kind}; charset=utf-8"))
    with tempfile.TemporaryDirectory() as tmp:
        archive = subprocess.run(
            ["git", "archive", revision, "aggregator"], cwd=ROOT, check=True, capture_output=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
        trees = {revision: tmp, "this tree": str(ROOT)}
        cpu: dict[str, list[float]] = {name: [] for name in trees}
        results: dict[str, str] = {}
        counts: dict[str, int] = {}
        for _ in range(runs):
            for name, tree in trees.items():
                done = subprocess.run(
                    [sys.executable, "-c", _TIME_PARSE],
                    input=pickle.dumps(documents),
                    env={**os.environ, "PYTHONPATH": tree},
                    check=True,
                    capture_output=True,
                )
                seconds, counts[name], results[name] = pickle.loads(done.stdout)
                cpu[name].append(seconds)
    entries = counts[revision]
    megabytes = sum(len(d) for d, _, _ in documents) / 1e6
    print(
        f"\nparse_feed: {len(documents)} documents, {entries} entries, {megabytes:.1f} MB; "
        f"{runs} runs each, interleaved (CPU seconds in each run's process)\n"
    )
    print(f"| {'tree':<12} | {'best s':>6} | {'median s':>8} | {'µs/entry':>8} |")
    print(f"|{'-' * 14}|{'-' * 8}|{'-' * 10}|{'-' * 10}|")
    for name, seconds in cpu.items():
        best, median = min(seconds), sorted(seconds)[len(seconds) // 2]
        print(f"| {name:<12} | {best:6.2f} | {median:8.2f} | {best / entries * 1e6:8.0f} |")
    same = results[revision] == results["this tree"]
    print(f"\n{min(cpu[revision]) / min(cpu['this tree']):.2f}x less CPU; same entries: {same}")


if __name__ == "__main__":
    main()
