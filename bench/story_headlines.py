"""How well a story's headline names it: each rule for choosing the lead article, scored on
labelled real headlines read through a real poll.

    python bench/story_headlines.py                 # uci-news-dev, dense, 100 feeds
    python bench/story_headlines.py --feeds 300

The rows (`../shared/data/uci-news-dev/headlines.csv`, UCI News Aggregator data set by F.
Gasparetti, CC BY 4.0) are served by the feed farm (`tests/feedfarm.py`, 127.0.0.1) as RSS
feeds (row n in feed n mod feeds, title and date only) and polled once, as a first poll
places them. Then the stored entries are grouped as a digest groups them
(`dedup.group.group_stories`), once per rule: the earliest article (`earliest`), and
`lead_article` with `LENGTH_DAMPING` at each value given. For each story of
`REPRESENTATIVE_ARTICLES` or more articles it prints the share whose lead belongs to the
story's most common label (the event most of its headlines report; labels are noisy), the
median and mean length of the headlines in characters, and how many are a title its feed
cut short ("...").
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from collections import Counter
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aggregator.config import load_config  # noqa: E402
from aggregator.core import make_aggregator  # noqa: E402
from aggregator.dedup import group  # noqa: E402
from aggregator.types import Entry, Story  # noqa: E402
from bench.real_headlines import UCI_DEV, load  # noqa: E402
from tests.feedfarm import Farm  # noqa: E402

DAY = timedelta(days=1)


def scored(stories: Sequence[Story], label: dict[str, str]) -> dict[str, float]:
    """The stories' headlines against the rows' labels (see the module docstring)."""
    agree, lengths, cut = 0, [], 0
    large = [s for s in stories if len(s.articles) >= group.REPRESENTATIVE_ARTICLES]
    for story in large:
        labels = Counter(label[c.link or ""] for a in story.articles for c in a.copies)
        lead = story.articles[0]
        agree += label[lead.link or ""] == labels.most_common(1)[0][0]
        lengths.append(len(story.headline))
        cut += story.headline.rstrip().endswith(group._CUT)
    return {
        "stories": len(large),
        "agree": agree / max(len(large), 1),
        "median chars": statistics.median(lengths) if lengths else 0,
        "mean chars": statistics.mean(lengths) if lengths else 0,
        "cut": cut,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--csv", type=Path, default=UCI_DEV)
    parser.add_argument("--feeds", type=int, default=100)
    parser.add_argument("--damping", type=float, nargs="*", default=[0.0, 0.25, 0.5, 1.0])
    args = parser.parse_args()
    rows = sorted(load(args.csv), key=lambda r: r["published"])
    farm = Farm(feeds=args.feeds, headlines=[(r["title"], r["published"]) for r in rows]).start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            config = load_config(farm.write_config(Path(tmp) / "feeds.toml"))
            with make_aggregator(config) as agg:
                agg.poll()
                first, last = rows[0]["published"], rows[-1]["published"]
                entries: list[Entry] = agg.storage.entries_between(first, last + DAY)
    finally:
        farm.stop()
    # A copy's link is https://news.example/{feed}/{n}: the feed's n-th row, row feed + n * feeds.
    label = {}
    for entry in entries:
        feed, n = (entry.link or "").rsplit("/", 2)[1:]
        label[entry.link or ""] = rows[int(feed) + int(n) * args.feeds]["story"]
    rules: list[tuple[str, int, float]] = [("earliest", 10**9, group.LENGTH_DAMPING)]
    least = group.REPRESENTATIVE_ARTICLES
    rules += [(f"lead_article, damping {d}", least, d) for d in args.damping]
    kept = group.REPRESENTATIVE_ARTICLES, group.LENGTH_DAMPING
    print(f"{len(entries)} entries of {len(rows)} rows, {args.feeds} feeds")
    print(f"{'rule':32} {'stories':>7} {'agree':>6} {'median':>6} {'mean':>6} {'cut':>4}")
    for name, representative, damping in rules:
        group.REPRESENTATIVE_ARTICLES, group.LENGTH_DAMPING = representative, damping
        stories = group.group_stories(entries)
        group.REPRESENTATIVE_ARTICLES = kept[0]  # `scored` counts the same stories for each
        s = scored(stories, label)
        print(
            f"{name:32} {s['stories']:7} {s['agree']:6.3f} {s['median chars']:6.0f} "
            f"{s['mean chars']:6.0f} {s['cut']:4}"
        )
    group.REPRESENTATIVE_ARTICLES, group.LENGTH_DAMPING = kept


if __name__ == "__main__":
    main()
