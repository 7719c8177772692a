"""Serve the feed farm (tests/feedfarm.py) on 127.0.0.1 until `--duration` ends (or Ctrl-C).

    python bench/feedfarm.py --feeds 200 --entries 50 --latency 0.05 --broken 0.05 \
        --duration 600 --write-config /tmp/farm/feeds.toml

prints the base URL and serves until the duration ends.

    python bench/feedfarm.py --feeds 300 --headlines ../shared/data/uci-news-dev/headlines.csv

serves real headlines instead (title only, with their publication times; the CSV's
`title` and `timestamp_ms` columns), row n in feed n mod 300: a dense real stream.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.feedfarm import Farm, load_headlines  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--feeds", type=int, default=200)
    parser.add_argument("--entries", type=int, default=50)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--broken", type=float, default=0.0, help="share of broken feeds, 0..1")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to each request")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument(
        "--duration", type=float, default=600.0, help="stop after this many seconds"
    )
    parser.add_argument("--concurrency", type=int, default=32, help="[poll] limits written")
    parser.add_argument("--write-config", type=Path, help="also write a feeds.toml for the farm")
    parser.add_argument(
        "--headlines", type=Path, help="serve this CSV's real headlines (see above) instead"
    )
    args = parser.parse_args()
    farm = Farm(
        feeds=args.feeds,
        entries=args.entries,
        seed=args.seed,
        broken=args.broken,
        latency=args.latency,
        port=args.port,
        headlines=load_headlines(args.headlines) if args.headlines else None,
    ).start()
    if args.write_config:
        # One host serves the whole farm: lift the per-host politeness limit (default 2),
        # as reader (which has none) is not held to it either.
        farm.write_config(
            args.write_config,
            extra=f"[poll]\nconcurrency = {args.concurrency}\nper_host = {args.concurrency}\n",
        )
    per_feed = len(farm.headlines) / len(farm.feeds) if farm.headlines else args.entries
    print(
        f"feed farm: {len(farm.feeds)} feeds x {per_feed:.0f} entries at "
        f"{farm.base_url}/feed/N.xml ({sum(f.broken is not None for f in farm.feeds)} broken); "
        f"stopping in {args.duration:.0f}s",
        flush=True,
    )
    try:
        time.sleep(args.duration)
    except KeyboardInterrupt:
        pass
    farm.stop()
    print(f"served {farm.requests} requests ({farm.not_modified} not modified)")


if __name__ == "__main__":
    main()
