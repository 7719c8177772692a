"""Story P/R/F1 of labelled real headlines served as feeds and read through the CLI.

    python bench/served_headlines.py                         # uci-news-dev, dense
    python bench/served_headlines.py --days 30 --episodes 4  # a sparse draw (see below)
    python bench/served_headlines.py --days 150 --episodes 24 --draws 3  # five months

The way a labelled stream is read by a new user (and issue 14's held-out stream was):
the rows (`../shared/data/uci-news-dev/headlines.csv`, UCI News Aggregator data set by F.
Gasparetti, CC BY 4.0; or `sparse_draw`s of them, `bench/real_headlines.py`) are served by
the feed farm (`tests/feedfarm.py`, 127.0.0.1) as `--feeds` RSS feeds (row n in feed
n mod feeds, title and date only); one `aggregator poll` reads them all (the first poll:
every headline new, placed in batches as stored), and `aggregator digest --format json`
over the whole span is scored against the rows' story labels: pairwise precision,
recall and F1, the stories and sections, and any headline missing or listed twice.
`bench/real_headlines.py` scores the same rows placed hour by hour in one process.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.real_headlines import UCI_DEV, Row, load, score, sparse_draw  # noqa: E402
from tests.feedfarm import Farm  # noqa: E402


def served(rows: list[Row], feeds: int) -> dict[str, Any]:
    """Serve `rows` as `feeds` feeds, poll them once through the CLI and score the digest."""
    rows = sorted(rows, key=lambda r: r["published"])
    farm = Farm(feeds=feeds, headlines=[(r["title"], r["published"]) for r in rows]).start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            config = farm.write_config(
                Path(tmp) / "feeds.toml", extra="[poll]\nconcurrency = 32\nper_host = 32\n"
            )
            cli = [sys.executable, "-m", "aggregator", "--config", str(config)]
            first = rows[0]["published"].date() - timedelta(days=1)
            last = rows[-1]["published"].date() + timedelta(days=1)
            for args in (
                ["poll"],
                ["digest", "--since", str(first), "--until", str(last)]
                + ["--format", "json", "--output", "-"],
            ):
                done = subprocess.run(cli + args, capture_output=True, text=True, cwd=tmp)
                if done.returncode != 0:
                    raise SystemExit(f"{' '.join(args)} failed:\n{done.stderr[-3000:]}")
    finally:
        farm.stop()
    digest = json.loads(done.stdout)
    # A copy's link is https://news.example/{feed}/{n}: the feed's n-th row, row feed + n * feeds.
    topics = [
        [
            [
                str(int(feed) + int(n) * feeds)
                for article in story["articles"]
                for feed, n in (copy["link"].rsplit("/", 2)[1:] for copy in article["copies"])
            ]
            for story in topic["stories"]
        ]
        for topic in digest["topics"]
    ]
    return score(rows, topics)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--csv", type=Path, default=UCI_DEV)
    parser.add_argument("--feeds", type=int, default=300)
    parser.add_argument("--days", type=int, default=0, help="sparse draws over this many days")
    parser.add_argument("--episodes", type=int, default=4, help="a sparse draw's episodes")
    parser.add_argument("--draws", type=int, default=1, help="sparse draws (seeds 0..N-1)")
    args = parser.parse_args()
    rows = load(args.csv)
    draws = (
        [sparse_draw(rows, seed, args.days, args.episodes) for seed in range(args.draws)]
        if args.days
        else [rows]
    )
    for n, sample in enumerate(draws):
        result = served(sample, args.feeds)
        name = f"sparse #{n} ({args.days} days, {args.episodes} episodes)" if args.days else "dense"
        print(
            f"{name}: {len(sample)} headlines, "
            + "  ".join(
                f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in result.items()
            )
        )


if __name__ == "__main__":
    main()
