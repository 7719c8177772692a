"""How well search ranks a query's stories: rules for ranking stories by their matching
entries, judged on labelled real headlines read through a real poll.

    python bench/search_ranking.py                  # SQLite (bm25)
    python bench/search_ranking.py --postgres       # and PostgreSQL (ts_rank), same stories
    python bench/search_ranking.py --keep /tmp/rank # the polled database kept, reused after

The rows (`../shared/data/uci-news-dev/headlines.csv`: 6,290 English headlines of 87
labelled stories, 10-12 March 2014; UCI News Aggregator data set by F. Gasparetti,
https://doi.org/10.24432/C5F61C, CC BY 4.0) are served by the feed farm
(`tests/feedfarm.py`, 127.0.0.1) as `--feeds` RSS feeds (row n in feed n mod feeds, title
and date only) and polled once, which stores and places them in stories. With
`--postgres` the same entries are stored in a PostgreSQL database of a server of its own
(tests/pgserver.py) and given the same stories.

The queries are made from the labels alone, before any ranking is read: for each label,
its words (as the index splits them; no stop word, no number) scored by specificity, the
share of the label's titles holding the word times the share of the titles holding it
that carry the label; its 1-word queries are its `--per-label` best words, and each has
a 2-word query adding the best word found with it in one of the label's titles (no pair
twice). Each query's matching entries are scored
by the backend's own rank (SQLite: `-bm25(entries_fts, 4, 1)`, PostgreSQL: `ts_rank` with
the same weights; both larger-is-better here) and grouped by story (an entry alone while
not placed), and each rule orders the groups (ties by group id, as storage does).

A returned story is judged by the labels of its matching entries: its gain is the share
of them carrying the query's label, and it is relevant when over half do. Per rule: MRR
(the first relevant story's reciprocal rank), P@1 (the first is relevant), nDCG@10 (by
the gains; the ideal is the returned stories' gains sorted) and reports@1 (the share of
the label's headlines the first story holds: "the story most reports tell"), and how many
queries' first story became relevant or stopped being against the best entry's rule. The
`--show` query's first stories are printed by the best entry and by best × (1 + ln n).
Last, the rule storage runs is found: the rules whose first 10 stories are
`Storage.search`'s first page, story for story, in the most queries.
"""

from __future__ import annotations

import argparse
import math
import sqlite3
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any, NamedTuple

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aggregator.config import load_config  # noqa: E402
from aggregator.core import make_aggregator  # noqa: E402
from aggregator.dedup.terms import STOP_WORDS  # noqa: E402
from aggregator.storage import Storage, open_storage  # noqa: E402
from aggregator.storage.fulltext import parse_query  # noqa: E402
from aggregator.storage.postgres._fulltext import tsquery, words  # noqa: E402
from aggregator.storage.sqlite._search import _WEIGHTS  # noqa: E402
from aggregator.types import Entry, EntryData, Feed  # noqa: E402
from bench.real_headlines import UCI_DEV, Row, load  # noqa: E402
from tests.feedfarm import Farm  # noqa: E402

DAY = timedelta(days=1)
CUTOFF = 10

#: A query's matching entries' scores (larger is better), by group -> the group's key
#: (larger first).
Rule = Callable[[Sequence[float]], float]


def _top(k: int) -> Rule:
    return lambda s: sum(sorted(s, reverse=True)[:k])


def _plus_log(weight: float) -> Rule:
    # best + λ·ln n with λ a share of the group's best: scale-free (bm25's and ts_rank's
    # magnitudes differ) and the same order as best × (1 + λ·ln n).
    return lambda s: max(s) * (1 + weight * math.log(len(s)))


RULES: dict[str, Rule] = {
    "best entry": max,
    "best × (1 + ln n)": _plus_log(1.0),
    "best × (1 + 0.5·ln n)": _plus_log(0.5),
    "best × (1 + 2·ln n)": _plus_log(2.0),
    "best × √n": lambda s: max(s) * math.sqrt(len(s)),
    "sum of top 3": _top(3),
    "sum of top 10": _top(10),
    "sum of all": sum,
    "n, then best": lambda s: len(s) + max(s) / (1 + max(s)),  # best in [0, 1): n first
}


class Query(NamedTuple):
    text: str
    label: str
    words: int


def specific_words(rows: Sequence[Row]) -> dict[str, list[str]]:
    """Each label's words, most specific first (see the module docstring)."""
    titles: dict[str, list[set[str]]] = defaultdict(list)
    holding: Counter[str] = Counter()
    for row in rows:
        found = {w for w in words(row["title"]) if w not in STOP_WORDS and not w.isdigit()}
        titles[row["story"]].append(found)
        holding.update(found)
    ranked = {}
    for label, sets in titles.items():
        inside = Counter(w for s in sets for w in s)
        score = {w: (n / len(sets)) * (n / holding[w]) for w, n in inside.items()}
        ranked[label] = sorted(score, key=lambda w: (-score[w], w))
    return ranked


def queries(rows: Sequence[Row], per_label: int) -> list[Query]:
    """Each label's 1-word queries (its `per_label` most specific words) and 2-word
    queries (each of those with the most specific word found with it in a title of the
    label)."""
    made = []
    titles: dict[str, list[set[str]]] = defaultdict(list)
    for row in rows:
        titles[row["story"]].append(set(words(row["title"])))
    for label, ranked in sorted(specific_words(rows).items()):
        pairs: set[frozenset[str]] = set()
        for first in ranked[:per_label]:
            made.append(Query(first, label, 1))
            second = next(
                (
                    w
                    for w in ranked
                    if w != first
                    and frozenset((first, w)) not in pairs
                    and any(first in s and w in s for s in titles[label])
                ),
                None,
            )
            if second is not None:
                pairs.add(frozenset((first, second)))
                made.append(Query(f"{first} {second}", label, 2))
    return made


class Scored(NamedTuple):
    """A query's matching entries: (group, score), and the group's labels as matched."""

    scores: dict[int, list[float]]
    labels: dict[int, Counter[str]]


def ranked(scored: Scored, rule: Rule) -> list[int]:
    """The groups in the rule's order, ties by group id (as storage breaks them)."""
    keys = {g: rule(s) for g, s in scored.scores.items()}
    return sorted(keys, key=lambda g: (-keys[g], g))


def judged(order: list[int], scored: Scored, label: str, held: Counter[int]) -> dict[str, float]:
    """MRR, P@1, nDCG@10 and reports@1 of one ranking (see the module docstring).

    `held`: how many of the label's headlines each group holds (all its entries)."""
    gains = [scored.labels[g][label] / sum(scored.labels[g].values()) for g in order]
    first = next((n for n, gain in enumerate(gains, 1) if gain > 0.5), None)
    dcg = sum(gain / math.log2(n + 1) for n, gain in enumerate(gains[:CUTOFF], 1))
    ideal = sorted(gains, reverse=True)[:CUTOFF]
    idcg = sum(gain / math.log2(n + 1) for n, gain in enumerate(ideal, 1))
    return {
        "MRR": 1 / first if first else 0.0,
        "P@1": float(first == 1),
        "nDCG@10": dcg / idcg if idcg else 0.0,
        "reports@1": held[order[0]] / sum(held.values()) if order else 0.0,
    }


@contextmanager
def polled(rows: list[Row], feeds: int, keep: Path | None) -> Iterator[Path]:
    """The SQLite database the rows were polled into (kept in `keep`, reused if there)."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = keep or Path(tmp)
        path = folder / "farm.db"
        if path.exists():
            yield path
            return
        farm = Farm(feeds=feeds, headlines=[(r["title"], r["published"]) for r in rows])
        farm.start()
        try:
            config = load_config(farm.write_config(folder / "feeds.toml"))
            started = time.perf_counter()
            with make_aggregator(config) as agg:
                agg.poll()
            print(f"polled {feeds} feeds in {time.perf_counter() - started:.0f} s", flush=True)
        finally:
            farm.stop()
        yield path


def sqlite_scores(path: Path) -> Callable[[str], dict[int, float]]:
    db = sqlite3.connect(path)

    title, body = _WEIGHTS  # storage's
    sql = (
        f"SELECT rowid, -bm25(entries_fts, {title}, {body}) FROM entries_fts "
        "WHERE entries_fts MATCH ?"
    )

    def scores(query: str) -> dict[int, float]:
        return dict(db.execute(sql, (parse_query(query).match,)).fetchall())

    return scores


def postgres_store(entries: list[Entry]) -> tuple[Any, Storage, Callable[[str], dict[int, float]]]:
    """A PostgreSQL server and store holding `entries` in the same stories, and its scores
    by the SQLite entries' ids."""
    import psycopg

    from aggregator.storage.postgres import open_postgres
    from aggregator.storage.postgres._search import _WEIGHTS as PG_WEIGHTS
    from tests.pgserver import PgServer

    server = PgServer()
    url = server.database()
    store = open_postgres(url)
    by_feed: dict[str, list[Entry]] = defaultdict(list)
    for e in entries:
        by_feed[e.feed_url].append(e)
    feeds = [Feed(url=u, name=es[0].feed_name) for u, es in sorted(by_feed.items())]
    now = max(e.first_seen for e in entries)
    store.sync_feeds(feeds, now)
    for feed in feeds:
        data = [
            EntryData(guid=e.guid, title=e.title, link=e.link, published=e.published, text=e.text,
                      summary=e.summary)
            for e in by_feed[feed.url]
        ]  # fmt: skip
        store.save_poll(feed, data, now=now, seconds=0)
    db = psycopg.connect(url, autocommit=True)
    ids = {(u, g): i for i, u, g in db.execute("SELECT id, feed_url, guid FROM entries")}
    ours = {ids[(e.feed_url, e.guid)]: e for e in entries}
    with db.transaction():
        db.cursor().executemany(
            "UPDATE entries SET story_id = %s, article_id = %s WHERE id = %s",
            [(e.story_id, e.article_id, i) for i, e in ours.items()],
        )
    sql = (
        f"SELECT id, ts_rank('{PG_WEIGHTS}', words, %s::tsquery) FROM entries_fts "
        "WHERE words @@ %s::tsquery"
    )

    def scores(query: str) -> dict[int, float]:
        match = tsquery(query)
        return {ours[i].id: r for i, r in db.execute(sql, (match, match))}

    return server, store, scores


def evaluate(
    name: str,
    qs: list[Query],
    scores: Callable[[str], dict[int, float]],
    entries: dict[int, Entry],
    label: dict[int, str],
    store: Storage,
    show: str,
) -> None:
    held: dict[str, Counter[int]] = defaultdict(Counter)
    for e in entries.values():
        held[label[e.id]][e.story_id or -e.id] += 1
    table: dict[str, dict[int, list[dict[str, float]]]] = defaultdict(lambda: defaultdict(list))
    agree: Counter[str] = Counter()
    compared = 0
    for q in qs:
        found = scores(q.text)
        scored = Scored(defaultdict(list), defaultdict(Counter))
        for id_, score in found.items():
            group = entries[id_].story_id or -id_
            scored.scores[group].append(score)
            scored.labels[group][label[id_]] += 1
        if not found:
            continue
        page = store.search(q.text, per_page=CUTOFF)
        storage_order = [h.story_id or -h.entry.id for h in page.hits]
        compared += 1
        for rule_name, rule in RULES.items():
            order = ranked(scored, rule)
            table[rule_name][q.words].append(judged(order, scored, q.label, held[q.label]))
            agree[rule_name] += storage_order == order[:CUTOFF]
        if q.text == show:
            for rule_name in ("best entry", "best × (1 + ln n)"):
                top = ranked(scored, RULES[rule_name])[:3]
                print(f"  {name}, `{show}` by {rule_name}: " + "; ".join(
                    f"story {g} ({len(scored.scores[g])} matching, "
                    f"{held[q.label][g]} of the label's {sum(held[q.label].values())})"
                    for g in top
                ))  # fmt: skip
    kinds = {1: "1-word", 2: "2-word"}
    counts = {k: len(table["best entry"][k]) for k in kinds}
    head = (
        " | ".join(f"{kinds[k]} ({counts[k]}) MRR, P@1, nDCG@10, reports@1" for k in kinds)
        + f" | all ({sum(counts.values())}) MRR, P@1, nDCG@10 | P@1 won, lost"
    )
    print(f"\n{name}: rule | {head}")
    for rule_name, by_kind in table.items():
        cells = []
        for k in kinds:
            rows = by_kind[k]
            means = [
                sum(r[m] for r in rows) / len(rows) for m in ("MRR", "P@1", "nDCG@10", "reports@1")
            ]
            cells.append(" · ".join(f"{v:.3f}" for v in means))
        both = by_kind[1] + by_kind[2]
        cells.append(" · ".join(
            f"{sum(r[m] for r in both) / len(both):.3f}" for m in ("MRR", "P@1", "nDCG@10")
        ))  # fmt: skip
        # Queries whose first story became relevant / stopped being, against the best entry.
        current = table["best entry"][1] + table["best entry"][2]
        won = sum(r["P@1"] > c["P@1"] for r, c in zip(both, current, strict=True))
        lost = sum(r["P@1"] < c["P@1"] for r, c in zip(both, current, strict=True))
        cells.append(f"+{won} −{lost}")
        print(f"| {rule_name} | " + " | ".join(cells) + " |")
    most = max(agree.values(), default=0)
    alike = ", ".join(r for r, n in agree.items() if n == most)
    print(f"{name}: Storage.search's first page is that of {alike} in {most} of {compared} queries")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--csv", type=Path, default=UCI_DEV)
    parser.add_argument("--feeds", type=int, default=60)
    parser.add_argument("--postgres", action="store_true")
    parser.add_argument("--per-label", type=int, default=3, help="1-word queries a label")
    parser.add_argument("--keep", type=Path, default=None)
    parser.add_argument("--show", default="titanfall", help="a query whose first stories are shown")
    args = parser.parse_args()
    rows = sorted(load(args.csv), key=lambda r: r["published"])
    qs = queries(rows, args.per_label)
    with polled(rows, args.feeds, args.keep) as path:
        store = open_storage(path)
        store.index_pending()
        first, last = rows[0]["published"], rows[-1]["published"]
        stored = store.entries_between(first - DAY, last + DAY)
        # A copy's link is https://news.example/{feed}/{n}: the feed's n-th row.
        label = {}
        for e in stored:
            feed, n = (e.link or "").rsplit("/", 2)[1:]
            label[e.id] = rows[int(feed) + int(n) * args.feeds]["story"]
        entries = {e.id: e for e in stored}
        stories = len({e.story_id for e in stored})
        print(f"{len(stored)} entries of {len(rows)} rows in {stories} stories; {len(qs)} queries")
        evaluate("SQLite", qs, sqlite_scores(path), entries, label, store, args.show)
        if args.postgres:
            server, pg, scores = postgres_store(stored)
            try:
                evaluate("PostgreSQL", qs, scores, entries, label, pg, args.show)
            finally:
                pg.close()
                server.stop()
        store.close()


if __name__ == "__main__":
    main()
