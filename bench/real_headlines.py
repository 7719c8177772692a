"""Story precision, recall and F1 on real, labelled headlines (title only), through the pipeline.

    python bench/real_headlines.py                       # ../shared/data/uci-news-dev, dense
    python bench/real_headlines.py --sparse 20           # 20 sparse draws of it (see below)
    python bench/real_headlines.py --csv PATH            # any CSV with the same columns
    python bench/real_headlines.py --sparse 2 --days 150 --episodes 24 --one-pass
                                        # five months of ~20 a day, read by one first poll

The data: `../shared/data/uci-news-dev/headlines.csv` (6,290 real English headlines of 87
stories, 10-12 March 2014, from the UCI News Aggregator data set by F. Gasparetti,
https://doi.org/10.24432/C5F61C, CC BY 4.0; see its README). Each publisher is a feed; the
headlines are stored in one poll pass per hour of their timestamps (each publisher's
headlines of that hour in one poll), then placed, as `aggregator poll` does.

`--sparse N` scores N draws of a sparse stream from the same rows (`sparse_draw`): each
story told in 4 episodes at random times over 30 days, each episode one to a few of its
headlines and labelled a story of its own (~510 headlines a draw, ~17 a day), the shape of
months of a general reader's stream. The sections of the digest of the whole stream and
their purity against the data's four categories (b, t, e, m) are printed too. `--days`
and `--episodes` shape the draws (150 and 24: ~2,900 headlines over five months, the shape
of the held-out stream issue 14 describes); `--one-pass` stores the whole stream before
placing any of it, as the first `aggregator poll` of feeds holding it does (`run`).
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aggregator.config import Config  # noqa: E402
from aggregator.core import Window, make_aggregator  # noqa: E402
from aggregator.digest.render import render  # noqa: E402
from aggregator.types import DedupSettings, EntryData, Feed, Format  # noqa: E402
from tests.fixtures.corpus import pairwise  # noqa: E402

UCI_DEV = Path(__file__).resolve().parents[2] / "shared" / "data" / "uci-news-dev" / "headlines.csv"

Row = dict[str, Any]


def load(path: Path) -> list[Row]:
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        row["published"] = datetime.fromtimestamp(int(row["timestamp_ms"]) / 1000, UTC)
    return rows


def sparse_draw(rows: list[Row], seed: int, days: int = 30, episodes: int = 4) -> list[Row]:
    """A sparse stream from dense rows: each story told in a few episodes over `days`.

    A long-running subject comes back: an aggregator files each return as a new story
    (the data's labels do: one subject, many story ids over months). So each story is
    split into `episodes` stories at random times over `days`, each keeping one to a few
    of its headlines (more for bigger stories), its headlines' times kept relative to
    each other, kept as they are. ~23 headlines a day for the 87 stories of the dev set.
    """
    rng = random.Random(seed)
    by_story: dict[str, list[Row]] = {}
    for row in rows:
        by_story.setdefault(row["story"], []).append(row)
    mean = len(rows) / len(by_story)
    out = []
    for story in sorted(by_story):
        members = rng.sample(by_story[story], len(by_story[story]))
        start = min(r["published"] for r in members)
        for episode in range(episodes):
            keep = 1 + _poisson(rng, 0.5 * len(by_story[story]) / mean)
            taken, members = members[:keep], members[keep:]
            shift = timedelta(seconds=rng.uniform(0, days * 86400))
            for row in taken:
                published = start + shift + (row["published"] - start)
                out.append({**row, "published": published, "story": f"{story}:{episode}"})
    return out


def _poisson(rng: random.Random, lam: float) -> int:
    n, p, limit = 0, 1.0, 2.718281828459045 ** (-lam)
    while True:
        p *= rng.random()
        if p <= limit:
            return n
        n += 1


def run(
    rows: list[Row], folder: Path, settings: DedupSettings, *, one_pass: bool = False
) -> dict[str, Any]:
    """Poll the rows hour by hour and score the JSON digest of the whole stream.

    `one_pass`: as the first poll of feeds each serving its whole history (the way a
    labelled stream served as feeds is first read through the CLI): every publisher's
    headlines stored as one poll, publisher after publisher, then placed together (in
    batches of `placer.ASSIGN_BATCH`, 2,000, in the order stored).
    """
    rows = sorted(rows, key=lambda r: r["published"])
    config = Config(path=folder / "feeds.toml", storage_path=folder / "h.db", dedup=settings)
    hours: dict[datetime, list[tuple[int, Row]]] = {}
    for n, row in enumerate(rows):
        hour = row["published"].replace(minute=0, second=0, microsecond=0)
        if one_pass:  # one "hour", after the last headline
            hour = rows[-1]["published"].replace(minute=0, second=0, microsecond=0)
        hours.setdefault(hour, []).append((n, row))
    feeds: dict[str, Feed] = {}
    started = time.perf_counter()
    placing = 0.0
    with make_aggregator(config) as aggregator:
        storage = aggregator.storage
        for hour, members in sorted(hours.items()):
            now = hour + timedelta(hours=1)
            by_feed: dict[str, list[EntryData]] = {}
            for n, row in members:
                site = row["host"] or row["publisher"]
                if site not in feeds:
                    feeds[site] = Feed(url=f"https://{site}/rss", name=row["publisher"])
                    storage.sync_feeds(list(feeds.values()), now)
                by_feed.setdefault(site, []).append(
                    EntryData(
                        guid=str(n),
                        title=row["title"],
                        link=f"https://{site}/news/{n}",
                        published=row["published"],
                    )
                )
            for site, entries in sorted(by_feed.items()) if one_pass else by_feed.items():
                storage.save_poll(feeds[site], entries, now=now, seconds=0)
            t0 = time.perf_counter()
            aggregator.group_stored()
            placing += time.perf_counter() - t0
        first = min(r["published"] for r in rows).date() - timedelta(days=1)
        last = max(r["published"] for r in rows).date() + timedelta(days=1)
        digest = aggregator.make_digest(Window(first, last))
    data = json.loads(render(digest, Format.JSON))
    elapsed = time.perf_counter() - started
    topics = [
        [
            [copy["link"].rsplit("/", 1)[1] for a in story["articles"] for copy in a["copies"]]
            for story in topic["stories"]
        ]
        for topic in data["topics"]
    ]
    return {**score(rows, topics), "seconds": elapsed, "placing": placing}


def score(rows: list[Row], topics: list[list[list[str]]]) -> dict[str, Any]:
    """A digest's grouping of `rows` against their labels: `topics` holds its sections,
    each its stories, each the row numbers (as str) of its copies."""
    found = [frozenset(story) for topic in topics for story in topic]
    seen = Counter(n for topic in topics for story in topic for n in story)
    true: dict[str, set[str]] = {}
    for n, row in enumerate(rows):
        true.setdefault(row["story"], set()).add(str(n))
    p, r, f1 = pairwise(found, map(frozenset, true.values()))
    label = {str(n): row["story"] for n, row in enumerate(rows)}
    wrong = same_subject = 0
    for group in found:
        members = sorted(group)
        for i, a in enumerate(members):
            for b in members[i + 1 :]:
                if label[a] != label[b]:
                    wrong += 1
                    same_subject += label[a].split(":")[0] == label[b].split(":")[0]
    category = {str(n): row["category"] for n, row in enumerate(rows)}
    sections = [[n for story in topic for n in story] for topic in topics]
    majority = sum(
        Counter(category[g] for g in names).most_common(1)[0][1] for names in sections if names
    )
    return {
        "P": p,
        "R": r,
        "F1": f1,
        "stories": len(found),
        "true": len(true),
        "missing": len(rows) - len(seen),
        "twice": sum(1 for n in seen.values() if n > 1),
        "sections": len(sections),
        "purity": majority / len(rows),
        "wrong pairs": wrong,
        "same subject": same_subject,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--csv", type=Path, default=UCI_DEV)
    parser.add_argument("--sparse", type=int, default=0, help="score N sparse draws instead")
    parser.add_argument("--days", type=int, default=30, help="a sparse draw's days")
    parser.add_argument("--episodes", type=int, default=4, help="a sparse draw's episodes")
    parser.add_argument(
        "--one-pass", action="store_true", help="stored and placed as one first poll (see run)"
    )
    parser.add_argument("--story-threshold", type=float)
    parser.add_argument("--story-window", type=float, help="hours")
    parser.add_argument("--headline-threshold", type=float)
    args = parser.parse_args()
    overrides: dict[str, Any] = {}
    if args.story_threshold is not None:
        overrides["story_threshold"] = args.story_threshold
    if args.headline_threshold is not None:
        overrides["headline_threshold"] = args.headline_threshold
    if args.story_window is not None:
        overrides["headline_window"] = timedelta(hours=args.story_window)
    settings = DedupSettings(**overrides)
    rows = load(args.csv)
    draws = (
        [sparse_draw(rows, seed, args.days, args.episodes) for seed in range(args.sparse)]
        if args.sparse
        else [rows]
    )
    results = []
    for n, sample in enumerate(draws):
        with tempfile.TemporaryDirectory() as tmp:
            result = run(sample, Path(tmp), settings, one_pass=args.one_pass)
        results.append(result)
        print(
            f"{'dense' if not args.sparse else f'sparse #{n}'}: {len(sample)} headlines, "
            + "  ".join(
                f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in result.items()
            )
        )
    if len(results) > 1:
        mean = {
            k: sum(r[k] for r in results) / len(results)
            for k in ("P", "R", "F1", "sections", "purity")
        }
        print("mean: " + "  ".join(f"{k} {v:.3f}" for k, v in mean.items()))


if __name__ == "__main__":
    main()
