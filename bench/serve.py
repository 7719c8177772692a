"""`aggregator serve` at scale: search latency and the Now page over a large database, and
what the full-text index costs a storing pass.

    python bench/serve.py                        # 100,000 entries, 10,000 for the cost
    python bench/serve.py --entries 20000 --runs 10 --cost-entries 5000 --cost-runs 1
    python bench/serve.py --cost-runs 0 --keep /tmp/serve-bench   # the database kept

A database of `--entries` entries (200 feeds; a third each Simplified Chinese, Traditional
Chinese and English; published over the last 30 days) is stored with `save_poll`, as polls
store them. Texts are words drawn by their frequency (Chinese: jieba's dictionary, 60,000
words; English: wordfreq's 30,000 commonest), ~300 words each, and each query's words are
put into 3% of the texts of their language: a query matches ~1,000 entries of 100,000, as
a news search might; `the` and `的` (in nearly every text) show the worst case. Stories
are assigned by SQL (five entries each): what is measured is reading, not deduplication
(bench/cluster_scale.py measures that). Then a real server (uvicorn, on
127.0.0.1) is asked, over HTTP, each query's /search page `--runs` times and the Now page
(`/`, the last 24 hours, ~1/30 of the entries) as often (the server makes Now when it
starts, keeps a page while the database is unchanged, and after a change answers with it
while the new one is made), then once after another handle stores an entry;
median and p95 are printed, with `Aggregator.search` alone (storage, headlines, snippets)
and the Now page made without the server (what each change of the database costs): cold
(before the server starts: nothing kept yet), after
another handle stored an entry in the window (a poll: its stories are filed into the
sections kept, docs/topics.md), the same with the sections clustered again (as every 10
minutes), and with the window's stories unchanged (a poll that found nothing new).

The cost: `--cost-entries` entries stored into a new database (50 feeds), queued for the
search index as polls queue them and not (`queue_for_search` made a no-op), alternately,
`--cost-runs` times each: seconds of the storing pass, of indexing what it queued
(`index_pending`, as a search or the server's background does), and the database's size.
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import opencc  # noqa: E402

from aggregator.config import load_config  # noqa: E402
from aggregator.core import Aggregator, Filters, make_aggregator  # noqa: E402
from aggregator.dedup import topics  # noqa: E402
from aggregator.storage import open_storage  # noqa: E402
from aggregator.storage.sqlite import _entries  # noqa: E402
from aggregator.types import EntryData, Feed  # noqa: E402
from aggregator.web.server import serve_in_thread  # noqa: E402

QUERIES = (
    "summit",
    "nvidia chips",
    "energy policy",
    "人工智能",
    "峰会",
    "巴黎 峰會",
    "人工智慧",
    "the",
    "的",
)
#: Words put into 3% of the texts of their language each.
TOPICAL = {
    "en": ("summit", "nvidia", "chips", "energy", "policy"),
    "zh": ("人工智能", "峰会", "巴黎"),
}


def vocabulary(language: str) -> tuple[list[str], list[float]]:
    """Words and their cumulative weights, by frequency."""
    if language == "en":
        from wordfreq import top_n_list, word_frequency

        words = top_n_list("en", 30_000)
        weights = [word_frequency(w, "en") for w in words]
    else:
        import jieba

        rows = []
        with open(Path(jieba.__file__).with_name("dict.txt"), encoding="utf-8") as lines:
            for line in lines:
                word, count, *_ = line.split()
                rows.append((int(count), word))
        rows.sort(reverse=True)
        words = [w for _, w in rows[:60_000]]
        weights = [float(c) for c, _ in rows[:60_000]]
    return words, list(itertools.accumulate(weights))


def entries(
    count: int, feeds: int, now: datetime, seed: int = 1
) -> Iterator[tuple[int, EntryData]]:
    """(feed index, entry) pairs, deterministic from `seed`."""
    rng = random.Random(seed)
    vocabularies = {language: vocabulary(language) for language in ("en", "zh")}
    to_tw = opencc.OpenCC("s2t")
    for n in range(count):
        feed = n % feeds
        language = ("zh-CN", "zh-TW", "en")[feed % 3]
        key = language[:2]
        words, weights = vocabularies[key]
        drawn = rng.choices(words, cum_weights=weights, k=rng.randint(200, 400))
        for word in TOPICAL[key]:
            if rng.random() < 0.03:
                drawn.insert(rng.randrange(len(drawn)), word)
        glue, stop = (" ", ". ") if key == "en" else ("", "。")
        text = stop.join(glue.join(drawn[i : i + 14]) for i in range(0, len(drawn), 14)) + stop
        title = glue.join(drawn[:8])
        if language == "zh-TW":
            text, title = to_tw.convert(text), to_tw.convert(title)
        yield (
            feed,
            EntryData(
                guid=f"e{n}",
                title=title,
                link=f"https://bench.example/{feed}/{n}",
                published=now - timedelta(seconds=rng.uniform(0, 30 * 86400)),
                summary=text[:120],
                text=text,
                language=language,
            ),
        )


def store(path: Path, count: int, feeds: int, now: datetime) -> float:
    """Store `count` entries into the database at `path`; the seconds `save_poll` took."""
    by_feed: dict[int, list[EntryData]] = {}
    for feed, entry in entries(count, feeds, now):
        by_feed.setdefault(feed, []).append(entry)
    storage = open_storage(path)
    listed = [Feed(url=f"https://bench.example/{i}", name=f"Feed {i}") for i in range(feeds)]
    storage.sync_feeds(listed, now)
    started = time.perf_counter()
    for feed in listed:
        index = int(feed.url.rsplit("/", 1)[1])
        storage.save_poll(feed, by_feed.get(index, []), now=now, seconds=0.1)
    seconds = time.perf_counter() - started
    storage.close()
    return seconds


def stories_by_sql(path: Path) -> None:
    import sqlite3

    with sqlite3.connect(path) as db:
        db.execute("UPDATE entries SET article_id = id, story_id = (id + 4) / 5")


@contextmanager
def monkeypatched(owner: object, name: str, value: object) -> Iterator[None]:
    saved = getattr(owner, name)
    setattr(owner, name, value)
    try:
        yield
    finally:
        setattr(owner, name, saved)


def without_index() -> AbstractContextManager[None]:
    return monkeypatched(_entries, "queue_for_search", lambda db, entries: None)


def catch_up(path: Path) -> float:
    """Seconds to index every entry the storing passes queued (`index_pending`)."""
    with open_storage(path) as storage:
        started = time.perf_counter()
        storage.index_pending()
        return time.perf_counter() - started


class Client:
    """GET over one kept-alive connection (http.client)."""

    def __init__(self, base: str) -> None:
        self.connection = http.client.HTTPConnection(base.removeprefix("http://"), timeout=60)

    def get(self, path: str) -> bytes:
        try:
            self.connection.request("GET", path)
            response = self.connection.getresponse()
        except (http.client.RemoteDisconnected, ConnectionError):  # idle past keep-alive
            self.connection.close()
            self.connection.request("GET", path)
            response = self.connection.getresponse()
        body = response.read()
        assert response.status == 200, (path, response.status)
        return body

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.connection.close()


def window(agg: Aggregator) -> tuple[datetime, datetime]:
    """Now's window: the last 24 hours."""
    until = agg.clock()
    return until - timedelta(hours=24), until


def make_now(agg: Aggregator) -> str:
    """The Now page made from the database, as a request finding none kept makes it."""
    from aggregator.digest import pages

    since, until = window(agg)
    digest, choices = agg.stories(since, until, Filters())
    return pages.render_now(digest, choices, Filters(), since=None, now=until)


def poll(db: Path, now: datetime, n: int) -> None:
    """A poll by another process that stores one new entry, published now (in Now's window)."""
    with open_storage(db) as other:
        feed = Feed(url="https://bench.example/0", name="Feed 0")
        fresh = EntryData(
            guid=f"fresh-{n}", title=f"Fresh {n}", link=None, published=now, text="fresh news"
        )
        other.save_poll(feed, [fresh], now=now, seconds=0.1)


def timed(call: Callable[[], object], runs: int) -> tuple[float, float]:
    """Median and p95 of `runs` calls, in milliseconds (one warm-up call first)."""
    call()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
    return statistics.median(times), p95


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--cost-entries", type=int, default=10_000)
    parser.add_argument("--cost-runs", type=int, default=3)
    parser.add_argument(
        "--keep",
        type=Path,
        help="a folder to keep the large database in, and to take it from when it is there "
        "(its entries were published over the 30 days before it was made)",
    )
    args = parser.parse_args()
    now = datetime.now(UTC)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for run in range(args.cost_runs):
            for indexed in (True, False):
                path = folder / f"cost-{run}-{indexed}.db"
                if indexed:
                    seconds = store(path, args.cost_entries, 50, now)
                    indexing = f", then indexing them {catch_up(path):6.2f} s"
                else:
                    with without_index():
                        seconds = store(path, args.cost_entries, 50, now)
                    indexing = ""
                size = sum(p.stat().st_size for p in folder.glob(f"{path.name}*")) / 2**20
                label = "queued for the index" if indexed else "not queued"
                print(
                    f"storing {args.cost_entries:,} entries {label:20}: {seconds:6.2f} s"
                    f"{indexing}, database {size:6.1f} MiB"
                )
        if args.keep is not None:
            args.keep.mkdir(parents=True, exist_ok=True)
            folder = args.keep
        db = folder / "bench.db"
        if db.exists():
            print(f"the database kept in {folder}")
        else:
            started = time.perf_counter()
            stored = store(db, args.entries, 200, now)
            stories_by_sql(db)
            indexed = catch_up(db)
            size = sum(p.stat().st_size for p in folder.glob("bench.db*")) / 2**20
            print(
                f"{args.entries:,} entries stored in {stored:.1f} s "
                f"({time.perf_counter() - started:.1f} s with generating them), indexed for "
                f"search in {indexed:.1f} s, {size:.0f} MiB"
            )
        (folder / "feeds.toml").write_text(
            '[storage]\npath = "bench.db"\n\n[[topics]]\nname = "AI"\n'
            'keywords = ["AI", "人工智能", "summit"]\n',
            encoding="utf-8",
        )
        with make_aggregator(load_config(folder / "feeds.toml"), read_only=True) as agg:
            started = time.perf_counter()
            make_now(agg)  # cold: no text, word or teaser kept yet
            cold = (time.perf_counter() - started) * 1000
            served = serve_in_thread(agg, "127.0.0.1", 0)
            base = f"http://127.0.0.1:{served.port}"
            try:
                # http.client: httpx's client added ~40 ms to every request on 127.0.0.1
                # (its writes meet delayed ACKs); urllib and browsers do not.
                with Client(base) as http:
                    for query in QUERIES:
                        total = agg.search(query).results.total
                        page = timed(lambda q=query: http.get(f"/search?q={quote(q)}"), args.runs)
                        alone = timed(lambda q=query: agg.search(q), args.runs)
                        print(
                            f"search {query!r:16} {total:6,} stories: /search median "
                            f"{page[0]:6.1f} ms, p95 {page[1]:6.1f} ms; Aggregator.search "
                            f"median {alone[0]:6.1f} ms, p95 {alone[1]:6.1f} ms"
                        )
                    started = time.perf_counter()
                    body = http.get("/")
                    first = (time.perf_counter() - started) * 1000
                    shown = body.decode().count('<article class="story"')
                    stories = sum(len(t.stories) for t in agg.stories(*window(agg))[0].topics)
                    now_page = timed(lambda: http.get("/"), args.runs)
                    same = timed(lambda: make_now(agg), max(3, args.runs // 5))
                    polled = itertools.count()

                    def after_poll() -> None:
                        poll(db, now, next(polled))
                        make_now(agg)

                    # The timing includes the poll's storing: it is printed apart.
                    remade = timed(after_poll, max(3, args.runs // 5))

                    def clustered_again() -> None:
                        poll(db, now, next(polled))
                        with monkeypatched(topics, "REGROUP_AFTER", 0.0):
                            make_now(agg)

                    reclustered = timed(clustered_again, max(3, args.runs // 5))
                    storing = timed(lambda: poll(db, now, next(polled)), max(3, args.runs // 5))
                    started = time.perf_counter()
                    http.get("/")
                    changed = (time.perf_counter() - started) * 1000
                    print(
                        f"Now (/, last 24 h: {stories:,} stories, {shown:,} shown, "
                        f"{len(body):,} bytes): made cold {cold:.0f} ms; first request "
                        f"{first:.0f} ms (made ahead when serving started); again (kept) "
                        f"median {now_page[0]:.1f} ms, p95 {now_page[1]:.1f} ms; made again "
                        f"(stories and page) after a poll stored an entry in the window: median "
                        f"{remade[0] - storing[0]:.0f} ms, p95 {remade[1] - storing[0]:.0f} ms "
                        f"(the poll's {storing[0]:.0f} ms taken off), its sections clustered "
                        f"again (every {topics.REGROUP_AFTER / 60:.0f} minutes at most): median "
                        f"{reclustered[0] - storing[0]:.0f} ms, p95 "
                        f"{reclustered[1] - storing[0]:.0f} ms; with the window's stories "
                        f"unchanged: median {same[0]:.0f} ms, p95 {same[1]:.0f} ms; the first "
                        f"request after a poll {changed:.1f} ms (the last page, while the new "
                        "one is made)"
                    )
            finally:
                served.stop()


if __name__ == "__main__":
    main()
