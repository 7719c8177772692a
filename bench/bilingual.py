"""Story precision, recall and F1 on English and Chinese reports of the same events.

    python bench/bilingual.py               # terms.CROSS_LANGUAGE off, then on
    python bench/bilingual.py --cross-language on -v   # on only; list the stories found
    python bench/bilingual.py --story-threshold 0.25
    python bench/bilingual.py --others      # also the fixture corpus and the headline set

The data: `bench/data/bilingual.json`, 130 reports of 27 events of December 2024 to April
2025, each event told by 2-4 English and 2-4 Chinese publishers in their own words (a
title and a one-to-three-sentence lead: the summary a feed carries). It was written for
this bench, not taken from feeds: the events are real and described plausibly, some
details (times, figures a wire would round, which publisher said what) are invented. Some
Chinese reports are in Traditional script (中央社: 輝達, 馬克宏, 南韓). Hard distractors share
names and words within days of each other: DeepSeek's R1 and the Nvidia rout it caused;
four OpenAI stories in two weeks (Stargate, Operator, o3-mini, deep research) and Musk's
bid for it; Trump's tariffs and China's retaliation; three Apple stories in a week; the
Myanmar and Tonga earthquakes; three central banks on 18-19 December 2024; Yoon's martial
law and the failed impeachment vote four days later; Tesla's and BYD's 2024 sales.
Fields: ``event`` (the label), ``publisher``, ``lang`` (``en`` or ``zh``), ``title``,
``summary``, ``published``.

Each report is one poll of its publisher's feed, in publication order, through the real
pipeline (`make_aggregator`, a temporary SQLite file, `group_stored` after each poll), as
`bench/cluster_quality.py --headlines` does. Printed: story pairwise precision, recall and
F1 over all pairs, and over the pairs of one English and one Chinese report only ("cross":
precision counts the cross-language pairs put in one story, recall the cross-language
pairs of one event).

`--others` also scores the two other labelled sets, each against its labels as written
and against them with one story across languages: the fixture corpus
(tests/fixtures/labels.toml labels the Paris summit's English and Chinese coverage as two
stories, "paris-summit-en" and "paris-summit-zh") and `bench/data/headlines.json` (seven of
its events have a Chinese twin labelled apart, "fed-cuts-nov" and "fed-cuts-nov-zh").
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Iterable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aggregator.config import Config  # noqa: E402
from aggregator.core import make_aggregator  # noqa: E402
from aggregator.dedup import terms  # noqa: E402
from aggregator.types import DedupSettings, EntryData, Feed  # noqa: E402
from tests.fixtures.corpus import LABELS, pair_scores, pairs, pairwise  # noqa: E402

BILINGUAL = Path(__file__).resolve().parent / "data" / "bilingual.json"

Row = dict[str, Any]


def load(path: Path = BILINGUAL) -> list[Row]:
    """The reports, in publication order (each with its position as ``guid``)."""
    rows: list[Row] = json.loads(path.read_text(encoding="utf-8"))
    rows.sort(key=lambda r: r["published"])
    for n, row in enumerate(rows):
        row["guid"] = str(n)
    return rows


def poll(rows: list[Row], folder: Path, **overrides: float) -> dict[int | None, set[str]]:
    """Poll each report as its publisher's feed; the guids of each story found."""
    config = Config(
        path=folder / "feeds.toml",
        storage_path=folder / "bilingual.db",
        dedup=DedupSettings(**overrides),
    )
    dates = [_date(row) for row in rows]
    now = min(dates)  # the time of every poll: before each report's own date
    with make_aggregator(config) as aggregator:
        for row in rows:
            site = "".join(c for c in row["publisher"].lower() if c.isalnum())
            feed = Feed(url=f"https://{site}.example/rss", name=row["publisher"])
            entry = EntryData(
                guid=row["guid"],
                title=row["title"],
                summary=row["summary"],
                link=f"https://{site}.example/news/{row['guid']}",
                published=_date(row),
            )
            aggregator.storage.sync_feeds([feed], now)
            aggregator.storage.save_poll(feed, [entry], now=now, seconds=0)
            aggregator.group_stored()
        stored = aggregator.storage.entries_between(now, max(dates) + timedelta(days=1))
    found: dict[int | None, set[str]] = {}
    for placed in stored:
        found.setdefault(placed.story_id, set()).add(placed.guid)
    return found


def _date(row: Row) -> datetime:
    return datetime.fromisoformat(row["published"].replace("Z", "+00:00"))


def cross_pairwise(
    found: Iterable[frozenset[str]], expected: Iterable[frozenset[str]], lang: dict[str, str]
) -> tuple[float, float, float]:
    """`pairwise` over the pairs of entries in different languages only."""

    def cross(groups: Iterable[frozenset[str]]) -> set[frozenset[str]]:
        return {p for p in pairs(groups) if len({lang[g] for g in p}) == 2}

    return pair_scores(cross(found), cross(expected))


def score(rows: list[Row], found: dict[int | None, set[str]]) -> dict[str, tuple[float, ...]]:
    """Story P/R/F1 over all pairs ("all") and cross-language pairs ("cross")."""
    got = [frozenset(g) for g in found.values()]
    true: dict[str, set[str]] = {}
    for row in rows:
        true.setdefault(row["event"], set()).add(row["guid"])
    want = [frozenset(g) for g in true.values()]
    lang = {row["guid"]: row["lang"] for row in rows}
    return {"all": pairwise(got, want), "cross": cross_pairwise(got, want, lang)}


def _one_story(label: str) -> str:
    """A label with its language suffix dropped: "fed-cuts-nov-zh" -> "fed-cuts-nov"."""
    return label.removesuffix("-zh").removesuffix("-en")


def others() -> None:
    """Print the fixture corpus's and the headline set's story scores, both labellings."""
    import tomllib

    from bench.cluster_quality import HEADLINES, run_corpus

    with tempfile.TemporaryDirectory() as tmp:
        grouping = run_corpus(Path(tmp))
    labelled: dict[str, dict[str, set[str]]] = {"as labelled": {}, "across languages": {}}
    for story in tomllib.loads(LABELS.read_text(encoding="utf-8"))["stories"]:
        members = {entry for article in story["articles"] for entry in article}
        labelled["as labelled"].setdefault(story["name"], set()).update(members)
        labelled["across languages"].setdefault(_one_story(story["name"]), set()).update(members)
    for name, stories in labelled.items():
        p, r, f1 = pairwise(grouping.stories, map(frozenset, stories.values()))
        print(f"corpus    {name:16} precision {p:.3f}  recall {r:.3f}  F1 {f1:.3f}")
    rows = load(HEADLINES)
    for row in rows:
        row.setdefault("summary", "")
    with tempfile.TemporaryDirectory() as tmp:
        found = poll(rows, Path(tmp))
    got = [frozenset(g) for g in found.values()]
    for name, label in (("as labelled", str), ("across languages", _one_story)):
        true: dict[str, set[str]] = {}
        for row in rows:
            true.setdefault(label(row["event"]), set()).add(row["guid"])
        p, r, f1 = pairwise(got, map(frozenset, true.values()))
        print(f"headlines {name:16} precision {p:.3f}  recall {r:.3f}  F1 {f1:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--story-threshold", type=float)
    parser.add_argument(
        "--cross-language",
        choices=("off", "on", "both"),
        default="both",
        help="terms.CROSS_LANGUAGE for the run (both: off, then on)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="list the stories found")
    parser.add_argument(
        "--others", action="store_true", help="also the fixture corpus and the headline set"
    )
    args = parser.parse_args()
    overrides = {} if args.story_threshold is None else {"story_threshold": args.story_threshold}
    rows = load()
    events = len({row["event"] for row in rows})
    modes = ("off", "on") if args.cross_language == "both" else (args.cross_language,)
    for mode in modes:
        # Read where features are computed: in this process, as polls of fewer than
        # parallel.MIN_PARALLEL entries are (each poll here is one report; the corpus 30).
        terms.CROSS_LANGUAGE = mode == "on"
        with tempfile.TemporaryDirectory() as tmp:
            found = poll(rows, Path(tmp), **overrides)
        print(
            f"cross_language={mode}: bilingual ({BILINGUAL.name}: {len(rows)} reports, "
            f"{events} events) {len(found)} stories found {overrides or ''}"
        )
        for name, (p, r, f1) in score(rows, found).items():
            print(f"stories {name:5} precision {p:.3f}  recall {r:.3f}  F1 {f1:.3f}")
        if args.verbose:
            by_guid = {row["guid"]: row for row in rows}
            for guids in sorted(found.values(), key=lambda g: min(map(int, g))):
                print("--")
                for guid in sorted(guids, key=int):
                    row = by_guid[guid]
                    print(f"  {row['event']:22} {row['lang']} {row['title'][:70]}")
        if args.others:
            others()


if __name__ == "__main__":
    main()
