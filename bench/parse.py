"""Our ingest path against the parser alone, on the same XML bytes.

Raw `feedparser.parse` on bytes in memory, versus our whole ingest path on the same
documents: parse (fast reader or feedparser) + normalise + store in SQLite + dedup
(whatever `aggregator poll` does after a fetch). The documents come from the feed farm
(bench/feedfarm.py), written as files and polled as local sources, so no network time
is counted.

    python bench/parse.py --feeds 200 --entries 50
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aggregator.config import load_config  # noqa: E402
from aggregator.core import make_aggregator  # noqa: E402
from bench.feedfarm import Farm  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--feeds", type=int, default=200)
    parser.add_argument("--entries", type=int, default=50)
    args = parser.parse_args()

    farm = Farm(feeds=args.feeds, entries=args.entries, seed=1)
    farm.server.server_close()  # only the generated documents are needed
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


if __name__ == "__main__":
    main()
