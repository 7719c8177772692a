"""Time and peak memory of deduplication at 10k, 50k and 100k entries.

    python bench/cluster_scale.py                  # 10k, 50k, 100k, each in a fresh process
    python bench/cluster_scale.py --sizes 20000    # other sizes
    python bench/cluster_scale.py --per-day 3000   # denser news: 3,000 entries a day
    python bench/cluster_scale.py --workers 0      # no feature worker processes
    python bench/cluster_scale.py --poll-size 10000  # placed 10,000 at a time (a backlog)
    python bench/cluster_scale.py --pipelined      # as a first poll places: on both cores
    python bench/cluster_scale.py --as-poll        # as `aggregator poll` lays it out
    python bench/cluster_scale.py --signatures     # only the MinHash step vs datasketch
    python bench/cluster_scale.py --pipelined --sizes 100000 --repeat 5  # best and median

Generates a synthetic corpus, half Chinese and half English: news about invented events
(each event has its own names, so its articles form a story), published over time at
`--per-day` entries a day and polled in that order, with a known share of copies
(`COPY_SHARE`: republications with a new title, a credit line and a passage cut, and
Traditional-script conversions). It is stored the way polls store entries
(`save_poll`, one feed of `FEED_SIZE` entries at a time) and each poll's entries are placed
by the real incremental path (`Aggregator.group_stored`), into a temporary SQLite file.

`--pipelined` stores and places as `aggregator poll` does when its feeds bring more than a
batch (`ASSIGN_BATCH`): each full batch of new entries is set on the feature workers as
soon as it is stored (`Placer.stored`), and this process places the batch before it
(`Placer.place_ready`) while they compute it, one batch ahead, as if the polls arrived as
fast as placing takes them. Without it, each poll is placed before the next is stored,
its features computed by this process (a daemon's steady state: one poll at a time).

`--as-poll` lays the work out as `aggregator poll` does: this process stores, and hands
each full batch to the placing process (`aggregator.placing`), which places them with its
own feature worker while this process goes on storing; the time ends when the last entry
is placed. The placing goes on while this process stores, so every poll is generated
before the first is stored (outside the timing, which no longer leaves the workers time
that is not counted; the peak memory then holds the whole corpus). The CPU printed for
the workers is the placing process's and its worker's.

Prints, per size: seconds to store, seconds to place (dedup), entries/s, the CPU seconds
of storing and placing in this process and of the feature workers (start-up included):
steadier than the wall time on a machine whose speed drifts; peak resident memory of the
process (and of its feature workers), and the share of the known copies found in the same
article.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from itertools import islice
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import opencc  # noqa: E402

from aggregator.config import Config  # noqa: E402
from aggregator.core import make_aggregator  # noqa: E402
from aggregator.parallel import batch_gc  # noqa: E402
from aggregator.storage import open_storage  # noqa: E402
from aggregator.types import DedupSettings, EntryData, Feed  # noqa: E402

COPY_SHARE = 0.2
PER_DAY = 1000
FEED_SIZE = 1000
EVENT_SIZE = 5  # articles per event, on average
START = datetime(2025, 1, 1, tzinfo=UTC)
SYLLABLES = "ka lo mer tin sa ve ro bel un dor fi gra pel tos ar mi den qua zu ly".split()
COMMON_EN = (
    "the government said on market company people year new report officials city workers "
    "percent million plan week talks leaders minister prices growth police court vote "
    "after before during while which would could their there about from with into over"
).split()


class Corpus:
    """A deterministic synthetic news corpus; copies are recorded as (original, copy)."""

    def __init__(self, seed: int = 1, per_day: int = PER_DAY) -> None:
        self.rng = random.Random(seed)
        self.per_day = per_day
        self.zh_words = self._zh_vocabulary()
        self.s2t = opencc.OpenCC("s2t")
        #: The event of each entry yielded, by position: the true stories.
        self.events: list[int] = []

    def _zh_vocabulary(self) -> list[str]:
        import jieba

        lines = (Path(jieba.__file__).parent / "dict.txt").read_text(encoding="utf-8")
        words = [line.split(" ", 1)[0] for line in lines.splitlines()[:200000]]
        return [w for w in words if 2 <= len(w) <= 4][::7]

    def _en_word(self) -> str:
        if self.rng.random() < 0.5:
            return self.rng.choice(COMMON_EN)
        return "".join(self.rng.choices(SYLLABLES, k=self.rng.randint(2, 3)))

    def _sentence(self, zh: bool, names: list[str]) -> str:
        n = self.rng.randint(8, 16)
        words = [self.rng.choice(self.zh_words) if zh else self._en_word() for _ in range(n)]
        for name in self.rng.sample(names, 2):
            words.insert(self.rng.randrange(len(words)), name)
        if zh:
            return "".join(words) + "。"
        return " ".join(words).capitalize() + "."

    def entries(self, count: int) -> tuple[list[EntryData], list[tuple[int, int]]]:
        """`count` entries, and the (original, copy) pairs among them by position."""
        copies: list[tuple[int, int]] = []
        return list(self.stream(count, copies)), copies

    def stream(self, count: int, copies: list[tuple[int, int]]) -> Iterator[EntryData]:
        """The entries one by one (the corpus need not be held in memory); copies recorded."""
        n = event = 0
        while n < count:
            event += 1
            zh = self.rng.random() < 0.5
            names = [
                (
                    "".join(self.rng.choices(self.zh_words, k=1)) + self.rng.choice("斯克特尔")
                    if zh
                    else "".join(self.rng.choices(SYLLABLES, k=3)).capitalize()
                )
                for _ in range(4)
            ]
            # Events follow each other in time, `per_day` entries a day (news arrives over
            # time: a database of 100k entries holds 100 days of a heavy reader's feeds).
            day = START + timedelta(days=n / self.per_day, minutes=self.rng.randrange(24 * 60))
            for _ in range(self.rng.randint(1, EVENT_SIZE * 2 - 1)):
                if n >= count:
                    break
                sentences = [self._sentence(zh, names) for _ in range(self.rng.randint(3, 25))]
                paragraphs = [
                    "".join(sentences[i : i + 3]) if zh else " ".join(sentences[i : i + 3])
                    for i in range(0, len(sentences), 3)
                ]
                title = self._sentence(zh, names)[: 24 if zh else 90]
                published = day + timedelta(minutes=self.rng.randrange(36 * 60))
                original = n
                self.events.append(event)
                yield self._entry(n, title, "\n".join(paragraphs), published)
                n += 1
                if self.rng.random() < COPY_SHARE / (1 - COPY_SHARE) and n < count:
                    if zh and self.rng.random() < 0.5:
                        text = self.s2t.convert("\n".join(paragraphs))
                        new_title = self.s2t.convert(title)
                    else:
                        cut = self.rng.randrange(len(paragraphs))
                        kept = paragraphs[:cut] + paragraphs[cut + 1 :] or paragraphs
                        credit = "来源：某某网" if zh else "This article first appeared on Example."
                        text = "\n".join([*kept, credit])
                        new_title = self._sentence(zh, names)[: 24 if zh else 90]
                    copies.append((original, n))
                    self.events.append(event)
                    yield self._entry(n, new_title, text, published + timedelta(hours=2))
                    n += 1

    @staticmethod
    def _entry(n: int, title: str, text: str, published: datetime) -> EntryData:
        return EntryData(
            guid=f"g{n}",
            title=title,
            link=f"https://site{n % 50}.example/news/{n}",
            published=published,
            summary=text[:120],
            text=text,
        )


def run(
    size: int,
    per_day: int = PER_DAY,
    workers: int | None = None,
    poll_size: int = FEED_SIZE,
    pipelined: bool = False,
    as_poll: bool = False,
) -> None:
    # This process places as `aggregator poll` and its placing process do: with their
    # garbage collector's thresholds.
    batch_gc()
    copies: list[tuple[int, int]] = []
    corpus = Corpus(per_day=per_day)
    stream = corpus.stream(size, copies)
    # As a poll lays it out, the placing goes on while this process stores: every poll is
    # generated first, outside the timing (see the module's docstring).
    generated = list(stream) if as_poll else []
    with tempfile.TemporaryDirectory() as tmp:
        config = Config(
            path=Path(tmp) / "feeds.toml",
            storage_path=Path(tmp) / "scale.db",
            dedup=DedupSettings(workers=workers),
        )
        # Handed a storage, the aggregator places in this process; as a poll, it opens the
        # configured database and starts a placing process.
        storage = None if as_poll else open_storage(config.storage_path)
        store_s = place_s = cpu_s = 0.0
        with make_aggregator(config, storage=storage) as aggregator:
            storage = aggregator.storage
            placer = aggregator.placer
            if as_poll:
                placer.expect(size)  # as `poll` does before its first fetch
            for start in range(0, size, poll_size):
                # One poll: `poll_size` entries, stored one FEED_SIZE feed at a time.
                polled = (  # generated outside the timing
                    generated[start : start + poll_size]
                    if as_poll
                    else list(islice(stream, poll_size))
                )
                started, cpu = time.perf_counter(), time.process_time()
                for first in range(0, len(polled), FEED_SIZE):
                    n = (start + first) // FEED_SIZE
                    feed = Feed(url=f"https://feed{n}.example/rss", name=str(n))
                    storage.sync_feeds([feed], START)
                    saved = storage.save_poll(
                        feed, polled[first : first + FEED_SIZE], now=START, seconds=0
                    )
                    if pipelined or as_poll:
                        placer.stored(saved.new_ids, saved.updated_ids)
                stored = time.perf_counter()
                if as_poll:
                    if start + poll_size >= size:
                        aggregator.group_stored()  # the placing process's batches, the rest
                elif not pipelined:
                    aggregator.group_stored()
                else:
                    last = start + poll_size >= size
                    if last:
                        placer.start_last([])  # the rest short of a batch
                    # The newest batch stays with the workers, but after the last poll. A
                    # batch that could not be placed (a storage error, logged) is left to
                    # `group_stored`.
                    while placer.early_batches() > (0 if last else 1):
                        if not placer.place_ready(oldest=True):
                            break
                    if last:
                        aggregator.group_stored()  # what no batch held
                placed = time.perf_counter()
                cpu_s += time.process_time() - cpu
                store_s += stored - started
                place_s += placed - stored
            stages = dict(getattr(aggregator, "stage_seconds", {}))  # older commits: none
        # Only the ids, read directly: loading every entry would dwarf the peak being measured.
        with sqlite3.connect(config.storage_path) as db:
            where = {
                guid: (article, story)
                for guid, article, story in db.execute(
                    "SELECT guid, article_id, story_id FROM entries"
                )
            }
        found = sum(where[f"g{a}"][0] == where[f"g{b}"][0] for a, b in copies)
        articles = len({article for article, _ in where.values()})
        precision, recall = _pairwise(
            [(corpus.events[n], where[f"g{n}"][1]) for n in range(len(corpus.events))]
        )
        stories = len({story for _, story in where.values()})
    # The feature workers (ended with the aggregator) count too: their peak is added to
    # this process's, an upper bound of what both held at once.
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    workers = children.ru_maxrss / 1024
    print(
        f"{size:>7} entries: store {store_s:6.1f} s, dedup {place_s:6.1f} s, "
        f"total {store_s + place_s:6.1f} s ({size / (store_s + place_s):6.0f} entries/s), "
        f"CPU {cpu_s:6.1f} s + workers {children.ru_utime + children.ru_stime:5.1f} s, "
        f"peak RSS {peak:6.0f} MiB + workers {workers:4.0f} MiB; "
        f"{len(copies)} known copies, {found} found "
        f"({found / max(len(copies), 1):.1%}); {articles} articles, {stories} stories "
        f"(pairwise against the events: precision {precision:.3f}, recall {recall:.3f})",
        flush=True,
    )
    print(
        "    CPU by stage: "
        + ", ".join(f"{name} {seconds:.2f} s" for name, seconds in sorted(stages.items())),
        flush=True,
    )


def _pairwise(labels: list[tuple[int, int]]) -> tuple[float, float]:
    """Pairwise precision and recall of the stories found (second of each pair) against the
    true ones (first): the share of pairs put in one story that belong together, and of
    pairs that belong together put in one story."""

    def pairs(counts: Counter[Any]) -> int:
        return sum(n * (n - 1) // 2 for n in counts.values())

    both = pairs(Counter(labels))
    found = pairs(Counter(story for _, story in labels))
    true = pairs(Counter(event for event, _ in labels))
    return both / max(found, 1), both / max(true, 1)


def signatures(count: int = 2000) -> None:
    """The MinHash step alone: ours against datasketch's default hashing (128 perm)."""
    from datasketch import MinHash

    from aggregator.dedup import minhash
    from aggregator.dedup.text import comparison_text

    entries, _ = Corpus().entries(count)
    texts = [comparison_text(e.text) for e in entries]
    started = time.perf_counter()
    for text in texts:
        minhash.signature(minhash.shingles(minhash.tokens(text)))
    ours = count / (time.perf_counter() - started)
    started = time.perf_counter()
    for text in texts[:300]:
        m = MinHash(num_perm=128)
        m.update_batch([text[i : i + 3].encode("utf-8") for i in range(len(text) - 2)])
    theirs = 300 / (time.perf_counter() - started)
    chars = sum(map(len, texts)) / count
    print(
        f"signatures (mean {chars:.0f} chars): ours {ours:,.0f} docs/s, "
        f"datasketch MinHash default {theirs:,.0f} docs/s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[10_000, 50_000, 100_000])
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    parser.add_argument(
        "--per-day",
        type=int,
        default=PER_DAY,
        help="entries published per day (default %(default)s); the corpus spans size/per-day days",
    )
    parser.add_argument(
        "--workers",
        type=int,
        help="feature worker processes ([dedup] workers; default: one per core but one)",
    )
    parser.add_argument(
        "--poll-size",
        type=int,
        default=FEED_SIZE,
        help="entries stored before each placing pass (default %(default)s, one feed; "
        "a first poll of many feeds or a backlog brings more)",
    )
    parser.add_argument(
        "--pipelined",
        action="store_true",
        help="place as a first poll does: the next batch's features on the workers meanwhile",
    )
    parser.add_argument(
        "--as-poll",
        action="store_true",
        help="as `aggregator poll` lays it out: storing here, placing in a placing process",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="runs of each size (each a fresh process); with more than one, the best and "
        "median total and CPU, and the load average before each run, are printed after them",
    )
    parser.add_argument("--signatures", action="store_true")
    args = parser.parse_args()
    if args.signatures:
        signatures()
        return
    if (args.pipelined or args.as_poll) and args.workers == 0:
        parser.error("--pipelined and --as-poll need feature workers")
    if args.pipelined and args.as_poll:
        parser.error("--pipelined or --as-poll: one layout")
    if args.one:
        run(args.one, args.per_day, args.workers, args.poll_size, args.pipelined, args.as_poll)
        return
    options = ["--per-day", str(args.per_day), "--poll-size", str(args.poll_size)]
    if args.workers is not None:
        options += ["--workers", str(args.workers)]
    if args.pipelined:
        options.append("--pipelined")
    if args.as_poll:
        options.append("--as-poll")
    for size in args.sizes:  # a fresh process each, so that peak memory is per size
        runs: list[tuple[float, float, float]] = []  # total s, CPU s, load average before
        for _ in range(max(args.repeat, 1)):
            load = os.getloadavg()[0]
            out = subprocess.run(
                [sys.executable, __file__, "--one", str(size), *options],
                check=True,
                stdout=subprocess.PIPE,  # (its warnings and errors go to stderr as they come)
                text=True,
            ).stdout
            print(out, end="", flush=True)
            found = re.search(r"total\s+([0-9.]+) s.*?CPU\s+([0-9.]+) s", out)
            if found:
                runs.append((float(found[1]), float(found[2]), load))
        if len(runs) > 1:
            # The shared machine's speed drifts between runs (docs/speed.md): the best run
            # is the least disturbed one, the median the typical one. Each run does the same
            # work, so the spread of this process's CPU seconds is the machine's.
            totals, cpus = sorted(r[0] for r in runs), sorted(r[1] for r in runs)
            print(
                f"{size:>7} entries, {len(runs)} runs: total best {totals[0]:.1f} s, median "
                f"{statistics.median(totals):.1f} s ("
                + ", ".join(f"{r[0]:.1f}" for r in runs)
                + f"); CPU best {cpus[0]:.1f} s, median {statistics.median(cpus):.1f} s; "
                "load average before each " + ", ".join(f"{r[2]:.1f}" for r in runs),
                flush=True,
            )


if __name__ == "__main__":
    main()
