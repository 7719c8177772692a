"""Pairwise precision, recall and F1 of copies (articles) and stories on the fixture corpus.

    python bench/cluster_quality.py                 # the configured defaults
    python bench/cluster_quality.py --opencc t2s    # compare OpenCC configurations
    python bench/cluster_quality.py --story-threshold 0.2 --copy-threshold 0.6
    python bench/cluster_quality.py --headlines      # also the title-only headline set
    python bench/cluster_quality.py --all            # one table: every labelled set

Runs the real pipeline in-process: the seeds and tests/fixtures feeds are polled into a
temporary SQLite file (the edited entry first in its old version, then corrected), then the
JSON digest is compared with tests/fixtures/labels.toml. A pair of entries is a true
positive for "copies" when both the digest and the labels put them in one article, and for
"stories" when both put them in one story.

`--headlines` also scores stories on `bench/data/headlines.json`: 188 title-only headlines
of 50 events (two thirds English, one third Chinese; 40 events covered by 3-6 publishers
in their own words, 10 single ones; distractors sharing names and words: three Nvidia
stories in one week, two earthquakes, three central banks' rate decisions, two Manchester
City defeats...; a third with the publisher's name appended). It was written for this
bench as a development set (plausible headlines of November 2024, some details invented),
not taken from feeds: a stand-in for held-out news, not a substitute. Each headline is
one poll of its publisher's feed, in publication order.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aggregator.config import Config, load_config  # noqa: E402
from aggregator.core import Window, make_aggregator  # noqa: E402
from aggregator.dedup import text as dedup_text  # noqa: E402
from aggregator.digest.render import render  # noqa: E402
from aggregator.types import DedupSettings, EntryData, Feed, Format  # noqa: E402
from tests.fixtures.corpus import (  # noqa: E402
    Grouping,
    digest_json,
    grouping_from_digest,
    load_labels,
    make_workdir,
    pairwise,
    use_edited,
)


def run_corpus(folder: Path, **overrides: float) -> Grouping:
    """Poll the corpus into `folder` and return the grouping its digest shows."""
    make_workdir(folder, edited="edited_before")
    config = load_config(folder / "feeds.toml")
    if overrides:
        config = replace(config, dedup=replace(config.dedup, **overrides))
    with make_aggregator(config) as aggregator:
        aggregator.poll()
        use_edited(folder)
        aggregator.poll()
        window = Window(date(2025, 2, 9), date.today() + timedelta(days=1))
        digest = aggregator.make_digest(window)
    return grouping_from_digest(digest_json(render(digest, Format.JSON)))


HEADLINES = Path(__file__).resolve().parent / "data" / "headlines.json"


def run_headlines(folder: Path, **overrides: float) -> tuple[float, float, float, int, int]:
    """Story precision, recall and F1 on the headline set, and the stories found and true."""
    rows = sorted(json.loads(HEADLINES.read_text(encoding="utf-8")), key=lambda r: r["published"])
    config = Config(
        path=folder / "feeds.toml",
        storage_path=folder / "headlines.db",
        dedup=DedupSettings(**overrides),
    )
    now = datetime(2024, 11, 1, tzinfo=UTC)
    with make_aggregator(config) as aggregator:
        for n, row in enumerate(rows):
            site = "".join(c for c in row["publisher"].lower() if c.isalnum())
            feed = Feed(url=f"https://{site}.example/rss", name=row["publisher"])
            entry = EntryData(
                guid=str(n),
                title=row["title"],
                link=f"https://{site}.example/news/{n}",
                published=datetime.fromisoformat(row["published"].replace("Z", "+00:00")),
            )
            aggregator.storage.sync_feeds([feed], now)
            aggregator.storage.save_poll(feed, [entry], now=now, seconds=0)
            aggregator.group_stored()
        stored = aggregator.storage.entries_between(now, now + timedelta(days=60))
    found: dict[int | None, set[str]] = {}
    for placed in stored:
        found.setdefault(placed.story_id, set()).add(placed.guid)
    true: dict[str, set[str]] = {}
    for n, row in enumerate(rows):
        true.setdefault(row["event"], set()).add(str(n))
    precision, recall, f1 = pairwise(map(frozenset, found.values()), map(frozenset, true.values()))
    return precision, recall, f1, len(found), len(true)


#: Five-month sparse draws `all_sets` scores (each ~2,900 headlines, ~10 s).
LONG_DRAWS = 3


def all_sets(draws: int) -> None:
    """One table of story P/R/F1 on every labelled set (and copies on the fixture corpus).

    The sets: the fixture corpus; `bench/data/headlines.json`; `bench/data/bilingual.json`
    (all pairs, and the pairs of one English and one Chinese report: `bench/bilingual.py`);
    the real headlines of ``../shared/data/uci-news-dev`` as one dense stream and as
    `draws` sparse draws (mean; `bench/real_headlines.py`), and `LONG_DRAWS` five-month
    ones; the sparse ones also read by one first poll (`one pass`). Sections and their
    purity against the data's four categories are printed for the real headlines.
    """
    from bench import real_headlines

    try:
        from bench import bilingual
    except ImportError:  # the bilingual set is not in this checkout
        bilingual = None  # type: ignore[assignment]

    table: list[tuple[str, int, float, float, float, str]] = []
    labels = load_labels()
    with tempfile.TemporaryDirectory() as tmp:
        found = run_corpus(Path(tmp))
    entries = len(labels.entries)
    table.append(
        ("fixture corpus: copies", entries, *pairwise(found.articles, labels.articles), "")
    )
    right = sum(found.topics.get(s) == t for s, t in labels.topics.items())
    topics = f"topics {right}/{len(labels.topics)}"
    table.append(
        ("fixture corpus: stories", entries, *pairwise(found.stories, labels.stories), topics)
    )
    with tempfile.TemporaryDirectory() as tmp:
        p, r, f1, stories, events = run_headlines(Path(tmp))
    table.append(("headlines.json", 188, p, r, f1, f"{stories} stories of {events}"))
    if bilingual is not None and bilingual.BILINGUAL.exists():
        rows = bilingual.load()
        with tempfile.TemporaryDirectory() as tmp:
            scored = bilingual.score(rows, bilingual.poll(rows, Path(tmp)))
        table.append(("bilingual.json: all pairs", len(rows), *scored["all"], ""))
        table.append(("bilingual.json: en-zh pairs", len(rows), *scored["cross"], ""))
    if real_headlines.UCI_DEV.exists():
        rows = real_headlines.load(real_headlines.UCI_DEV)
        samples = [("uci-news-dev: dense", [rows])]
        draws_made = [real_headlines.sparse_draw(rows, seed) for seed in range(draws)]
        samples.append((f"uci-news-dev: sparse ({draws} draws, mean)", draws_made))
        samples.append((f"uci-news-dev: sparse, one pass ({draws} draws)", draws_made))
        # Five months of ~20 headlines a day: the held-out stream's shape, read hour by
        # hour and by one first poll (`real_headlines.run`'s one_pass).
        long = [real_headlines.sparse_draw(rows, seed, 150, 24) for seed in range(LONG_DRAWS)]
        samples.append((f"uci-news-dev: 5 months ({LONG_DRAWS} draws)", long))
        samples.append((f"uci-news-dev: 5 months, one pass ({LONG_DRAWS} draws)", long))
        for name, streams in samples:
            results = []
            for stream in streams:
                with tempfile.TemporaryDirectory() as tmp:
                    results.append(
                        real_headlines.run(
                            stream, Path(tmp), DedupSettings(), one_pass="one pass" in name
                        )
                    )
            mean = {k: sum(r[k] for r in results) / len(results) for k in results[0]}
            size = round(sum(len(s) for s in streams) / len(streams))
            note = f"sections {mean['sections']:.0f}, purity {mean['purity']:.3f}"
            table.append((name, size, mean["P"], mean["R"], mean["F1"], note))
    print("| set | entries | precision | recall | F1 | |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, size, p, r, f1, note in table:
        print(f"| {name} | {size} | {p:.3f} | {r:.3f} | {f1:.3f} | {note} |")


def script_table() -> None:
    """Shingle Jaccard of each seed with its OpenCC conversions, per normalising config."""
    import numpy as np
    import opencc

    from aggregator.dedup import minhash
    from aggregator.sources.files import read_source
    from tests.fixtures.corpus import SEEDS

    def shingles(text: str, config: str) -> np.ndarray:  # type: ignore[type-arg]
        return minhash.shingles(minhash.tokens(dedup_text.comparison_text(text, config)))

    seeds = [opencc.OpenCC("t2s").convert(e.text) for e in read_source(SEEDS).entries]
    print("shingle Jaccard, seed vs its conversion (min/mean over the seeds):")
    for config in ("t2s", "tw2sp", "hk2s"):
        cells = []
        for forward in ("s2t", "s2twp", "s2hk"):
            values = []
            for text in seeds:
                a = shingles(text, config)
                b = shingles(opencc.OpenCC(forward).convert(text), config)
                values.append(len(np.intersect1d(a, b)) / len(np.union1d(a, b)))
            cells.append(f"{forward} {min(values):.3f}/{sum(values) / len(values):.3f}")
        same = dedup_text.normalise("人工智慧", config) == dedup_text.normalise("人工智能", config)
        print(f"  {config:6} " + "  ".join(cells) + f"  人工智慧=人工智能: {same}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--opencc", default=dedup_text.OPENCC_CONFIG)
    parser.add_argument("--copy-threshold", type=float)
    parser.add_argument("--story-threshold", type=float)
    parser.add_argument("--lead-threshold", type=float)
    parser.add_argument("--containment-threshold", type=float)
    parser.add_argument("-v", "--verbose", action="store_true", help="list the differences")
    parser.add_argument(
        "--headlines", action="store_true", help="also score stories on the headline set"
    )
    parser.add_argument(
        "--all", action="store_true", help="one table of every labelled set, then exit"
    )
    parser.add_argument("--draws", type=int, default=10, help="sparse draws for --all")
    args = parser.parse_args()
    if args.all:
        all_sets(args.draws)
        return
    dedup_text.OPENCC_CONFIG = args.opencc
    overrides = {
        key: value
        for key, value in vars(args).items()
        if key.endswith("threshold") and value is not None
    }
    labels = load_labels()
    with tempfile.TemporaryDirectory() as tmp:
        found = run_corpus(Path(tmp), **overrides)
    missing = labels.entries ^ found.entries
    print(
        f"corpus: {len(labels.entries)} entries, {len(labels.articles)} articles, "
        f"{len(labels.stories)} stories; opencc={args.opencc} {overrides or ''}"
    )
    if missing:
        print(f"entries not matching the labels: {sorted(missing)}")
    for name, got, want in (
        ("copies", found.articles, labels.articles),
        ("stories", found.stories, labels.stories),
    ):
        p, r, f1 = pairwise(got, want)
        print(f"{name:8} precision {p:.3f}  recall {r:.3f}  F1 {f1:.3f}")
        if args.verbose:
            for group in sorted(got - want, key=sorted):
                print(f"  found, not labelled: {sorted(group)}")
            for group in sorted(want - got, key=sorted):
                print(f"  labelled, not found: {sorted(group)}")
    right = sum(found.topics.get(s) == t for s, t in labels.topics.items())
    print(f"topics   {right}/{len(labels.topics)} stories under their labelled topic")
    if args.headlines:
        with tempfile.TemporaryDirectory() as tmp:
            p, r, f1, stories, events = run_headlines(Path(tmp), **overrides)
        print(
            f"headlines ({HEADLINES.name}: {events} events) stories precision {p:.3f}  "
            f"recall {r:.3f}  F1 {f1:.3f}; {stories} stories found"
        )
    script_table()
    if args.verbose:
        for story, topic in labels.topics.items():
            if found.topics.get(story) != topic:
                print(f"  {sorted(story)[0]}...: {found.topics.get(story)} != {topic}")


if __name__ == "__main__":
    main()
