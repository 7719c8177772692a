"""The cost of watches: a poll pass bringing 10,000 entries, with 100 watches and without.

    python bench/watches.py                       # 200 feeds x 50 entries, 100 watches, 3 rounds
    python bench/watches.py --watches 300 --rounds 5
    python bench/watches.py --hot 0               # no watch on the farm's own words

Serves the feed farm (tests/feedfarm.py: Chinese in both scripts and English) on 127.0.0.1
and polls it into a fresh SQLite file with `Aggregator.poll` (fetch, parse, store, place,
then the watches), alternately without watches and with them, back to back. The watches
look for invented names (most match nothing, as most watches match most news) and, a
tenth of them, for words the farm's texts are full of (人工智能, 峰会, DeepSeek, summit), with
`all`, `none`, `feeds` and `topics` among them. Alerts are delivered by a function that
only counts them (the receiver's time is not ours).

Prints per round the pass's wall and CPU time (this process's and its feature workers')
and, for the passes with watches, the evaluation's own wall and CPU time (reading the
changed stories, matching, deciding and recording the alerts due), then the medians: the
pass without watches, with them, their difference (noisy on a shared machine), the
evaluation, its share of the pass's wall time and its CPU's share of the pass's CPU (the
steadier of the two when other work shares the cores).
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aggregator.config import Config, load_config  # noqa: E402
from aggregator.core import make_aggregator  # noqa: E402
from aggregator.types import AlertPayload  # noqa: E402
from aggregator.watcher import Watcher  # noqa: E402
from tests.feedfarm import Farm  # noqa: E402

HOT = [
    "人工智能",
    "峰会",
    "DeepSeek",
    "summit",
    "巴黎",
    "开源",
    "energy",
    "芯片",
    "欧洲",
    "investment",
]
NAMES = "ka lo mer tin sa ve ro bel un dor fi gra pel tos ar mi den qua zu ly".split()
ZH = (
    "台风 地震 选举 降息 关税 罢工 洪水 疫苗 奥运 登月 "
    "油价 汇率 房价 医保 高铁 熊猫 冰川 沙尘 暴雨 干旱"
).split()


def watches_toml(count: int, hot: int = 10) -> str:
    """`count` watches: one in `hot` (0: none) on a word the farm is full of, the rest on
    invented names and Chinese words the farm never uses."""
    tables = ['[[topics]]\nname = "AI"\nkeywords = ["AI", "人工智能"]\n']
    for n in range(count):
        if hot and n % hot == 0:
            word = HOT[(n // hot) % len(HOT)]
            extra = ['none = ["体育"]'] if n % 20 == 0 else ['topics = ["AI"]']
            keywords = [word]
        else:
            name = NAMES[n % len(NAMES)] + NAMES[(n * 7) % len(NAMES)] + str(n)
            keywords = [name.capitalize(), ZH[n % len(ZH)] + ZH[(n * 3) % len(ZH)]]
            extra = [f'all = ["{ZH[(n + 1) % len(ZH)]}"]'] if n % 3 == 0 else []
            if n % 7 == 0:
                extra.append('feeds = ["farm 1", "farm 2"]')
        quoted = ", ".join(f'"{k}"' for k in keywords)
        tables.append(
            f'[[watches]]\nname = "w{n}"\nkeywords = [{quoted}]\n'
            + "".join(f"{line}\n" for line in extra)
            + 'notify = ["command"]\n'
        )
    tables.append('[notify.command]\nargv = ["true"]\n')
    return "\n".join(tables)


def one_pass(farm: Farm, watches: int, hot: int) -> tuple[float, float, float, float, int]:
    """A first poll of the farm into a new database: (pass seconds, pass CPU seconds: this
    process's and its feature workers', evaluation seconds, evaluation CPU seconds, alerts
    recorded)."""
    sent = 0

    def deliver(
        channel: str, payload: AlertPayload, config: Config, *, env: Mapping[str, str]
    ) -> str | None:
        nonlocal sent
        sent += 1
        return None

    spent = cpu = 0.0
    recorded = 0
    evaluate = Watcher.evaluate

    def timed(self: Watcher) -> object:
        nonlocal spent, cpu, recorded
        started, started_cpu = time.perf_counter(), time.thread_time()
        try:
            result = evaluate(self)
            recorded += len(result.recorded)
            return result
        finally:
            spent += time.perf_counter() - started
            cpu += time.thread_time() - started_cpu

    with tempfile.TemporaryDirectory() as folder:
        path = farm.write_config(
            Path(folder) / "feeds.toml", extra=watches_toml(watches, hot) if watches else ""
        )
        config = load_config(path)
        Watcher.evaluate = timed  # type: ignore[method-assign]
        try:
            workers = resource.getrusage(resource.RUSAGE_CHILDREN)
            with make_aggregator(config, deliver=deliver, env={}) as agg:
                agg.fetcher  # noqa: B018  (started before timing, as bench/poll.py does)
                started, started_cpu = time.perf_counter(), time.process_time()
                agg.poll()
                elapsed = time.perf_counter() - started
                pass_cpu = time.process_time() - started_cpu
                agg.wait_alerts(60)
            # The feature workers' CPU, theirs once the closed pool has reaped them.
            done = resource.getrusage(resource.RUSAGE_CHILDREN)
            pass_cpu += done.ru_utime + done.ru_stime - workers.ru_utime - workers.ru_stime
        finally:
            Watcher.evaluate = evaluate  # type: ignore[method-assign]
    return elapsed, pass_cpu, spent, cpu, recorded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--feeds", type=int, default=200)
    parser.add_argument("--entries", type=int, default=50)
    parser.add_argument("--watches", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--hot", type=int, default=10, help="one watch in HOT matches most stories (0: none)"
    )
    args = parser.parse_args()
    farm = Farm(feeds=args.feeds, entries=args.entries).start()
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    hot = f"1 in {args.hot}" if args.hot else "none"
    print(
        f"{args.feeds * args.entries:,} entries, {args.watches} watches ({hot} on the farm's "
        f"own words), commit {commit}"
    )
    print(
        f"{'round':>5}  {'watches':>7}  {'pass s':>7}  {'pass CPU s':>10}  {'evaluate s':>10}  "
        f"{'CPU s':>6}  alerts"
    )
    without, with_, without_cpu, evaluations, cpus = [], [], [], [], []
    try:
        for n in range(args.rounds):
            for count in (0, args.watches):
                elapsed, pass_cpu, spent, cpu, recorded = one_pass(farm, count, args.hot)
                (with_ if count else without).append(elapsed)
                if count:
                    evaluations.append(spent)
                    cpus.append(cpu)
                else:
                    without_cpu.append(pass_cpu)
                print(
                    f"{n + 1:>5}  {count:>7}  {elapsed:>7.2f}  {pass_cpu:>10.2f}  {spent:>10.3f}  "
                    f"{cpu:>6.3f}  {recorded}"
                )
    finally:
        farm.stop()
    base, watched, base_cpu, evaluation, cpu = (
        statistics.median(v) for v in (without, with_, without_cpu, evaluations, cpus)
    )
    print()
    print(
        "| pass without watches (CPU) | with | difference | evaluation (CPU) | share of the "
        "pass | share of its CPU |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    print(
        f"| {base:.2f} s ({base_cpu:.2f} s) | {watched:.2f} s | {watched - base:+.2f} s | "
        f"{evaluation:.3f} s ({cpu:.3f} s) | {100 * evaluation / base:.1f}% (difference: "
        f"{100 * (watched - base) / base:+.1f}%) | {100 * cpu / base_cpu:.1f}% |"
    )


if __name__ == "__main__":
    main()
