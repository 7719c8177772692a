"""Polling speed, side by side: ours, `reader` (best `workers`), and a naive feedparser loop.

All three poll the same local feed farm (bench/feedfarm.py, a separate process on
127.0.0.1) in one run. Each contender runs in its own fresh process, so wall time,
CPU time (user + system, all threads) and peak memory (max RSS) are its own.

    python bench/poll.py --feeds 1000 --entries 50 --latency 0.05
    python bench/poll.py --feeds 200 --entries 50 --latency 0.05 --workers 8,16,32

Prints a table and the ratios ours/reader. Needs `pip install -e '.[bench]'`.
"""

from __future__ import annotations

# Only what the contenders' processes use: the harness's own modules are imported by the
# parent (`main`, `_child`), so that each contender's whole process counts only its own.
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


# --- contenders (each run as `python bench/poll.py --as NAME ...` in a fresh process) -------


def _as_ours(config: Path) -> None:
    """One pass in this process: `Aggregator.poll` timed alone (as reader's `update_feeds`),
    without the interpreter's start, the imports, the config and the database's opening.
    The HTTP client is made before the timer, as `make_reader` imports requests before
    reader's (ours is made on first use: importing httpx and its TLS context, ~0.3-0.5 s)."""
    from aggregator.config import load_config
    from aggregator.core import make_aggregator
    from aggregator.parallel import batch_gc, ending

    batch_gc()  # as `aggregator poll` sets it
    with make_aggregator(load_config(config)) as agg:
        late = agg.fetcher.watch_loop()  # made on first use: before the timer
        t0, c0 = time.perf_counter(), time.process_time()
        results = agg.poll()
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        delays = {**_spread("stored", agg.stored_after), **_spread("late", late())}
    print(json.dumps({"wall_in": wall, "cpu_in": cpu, "feeds": len(results), **delays}))
    ending()  # as `aggregator poll` ends


def _spread(name: str, seconds: list[float]) -> dict[str, float]:
    """Median, 95th percentile and largest of `seconds`, in milliseconds."""
    if not seconds:
        return {}
    ordered = sorted(seconds)
    pick = [ordered[len(ordered) // 2], ordered[int(len(ordered) * 0.95)], ordered[-1]]
    return {f"{name}_{k}": 1000 * v for k, v in zip(("p50", "p95", "max"), pick, strict=True)}


def _as_reader(urls_file: Path, db: Path, workers: int) -> None:
    """One pass of reader's in this process (fresh, as ours): `update_feeds` timed alone;
    the parent times the whole process."""
    from reader import make_reader  # imported here: only this child process needs it

    new = not db.exists()
    reader = make_reader(str(db))
    if new:  # the feeds are added once, as ours are written in feeds.toml once
        for url in urls_file.read_text().split():
            reader.add_feed(url, exist_ok=True)
    before = reader.get_entry_counts().total or 0
    t0, c0 = time.perf_counter(), time.process_time()
    reader.update_feeds(workers=workers, scheduled=False)  # every feed, like `poll`
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    entries = (reader.get_entry_counts().total or 0) - before
    reader.close()
    print(json.dumps({"wall_in": wall, "cpu_in": cpu, "entries": entries}))


def _as_naive(urls_file: Path) -> None:
    import feedparser

    t0, c0 = time.perf_counter(), time.process_time()
    entries = 0
    for url in urls_file.read_text().split():
        entries += len(feedparser.parse(url).entries)
    print(
        json.dumps(
            {
                "wall_in": time.perf_counter() - t0,
                "cpu_in": time.process_time() - c0,
                "entries": entries,
            }
        )
    )


def _child(args: list[str]) -> dict[str, float]:
    import subprocess

    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, __file__, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    _, status, usage = os.wait4(proc.pid, 0)
    out = proc.stdout.read() if proc.stdout else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"child failed: {args}\n{proc.stderr.read() if proc.stderr else ''}")
    data: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    data.update(
        wall=time.perf_counter() - started,
        cpu=usage.ru_utime + usage.ru_stime,
        rss_mb=usage.ru_maxrss / 1024,
    )
    return data


def _row(name: str, m: dict[str, float]) -> str:
    rate = m["entries"] / m["wall"] if m["wall"] and m["entries"] else 0.0
    inside = f"{m['wall_in']:8.2f}" if "wall_in" in m else f"{'':8}"
    return (
        f"| {name:<34} | {m['wall']:8.2f} | {inside} | {m['cpu']:8.2f} | {m['rss_mb']:8.0f} | "
        f"{int(m['entries']):8d} | {rate:9.0f} |"
    )


def _compile_package() -> None:
    """Compile the package's modules to bytecode (`__pycache__`), as installing a package
    does and as the first run of an editable install does, so that each of our processes
    loads them as reader's load theirs. Where ``PYTHONDONTWRITEBYTECODE`` is set (these
    machines set it), no run writes them, and each of our processes (the command, its
    placing process, its feature worker) would compile every module it imports from
    source (0.02-0.05 s more each, measured), while reader's were compiled by pip."""
    import compileall  # (here: the contenders' processes import only what they run)

    compileall.compile_dir(ROOT / "aggregator", quiet=1)
    if os.environ.get("PYTHONDONTWRITEBYTECODE"):
        print("compiled the package's bytecode (PYTHONDONTWRITEBYTECODE is set)", file=sys.stderr)


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--as":
        if sys.argv[2] == "ours":
            _as_ours(Path(sys.argv[3]))
        elif sys.argv[2] == "reader":
            _as_reader(Path(sys.argv[3]), Path(sys.argv[4]), int(sys.argv[5]))
        else:
            _as_naive(Path(sys.argv[3]))
        return
    import argparse
    import shutil
    import sqlite3
    import subprocess
    import tempfile

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--feeds", type=int, default=200)
    parser.add_argument("--entries", type=int, default=50)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--broken", type=float, default=0.0)
    parser.add_argument("--workers", default="8,16,32", help="reader workers settings to try")
    parser.add_argument("--skip-naive", action="store_true")
    parser.add_argument(
        "--headlines",
        type=Path,
        help="serve this CSV's real headlines instead of generated text (e.g. "
        "../shared/data/uci-news-dev/headlines.csv: bench/feedfarm.py --headlines)",
    )
    parser.add_argument(
        "--no-compile",
        action="store_true",
        help="do not compile the package's bytecode first (see `_compile_package`)",
    )
    args = parser.parse_args()
    if not args.no_compile:
        _compile_package()

    tmp = Path(tempfile.mkdtemp(prefix="bench-poll-"))
    config = tmp / "ours" / "feeds.toml"
    farm = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "bench" / "feedfarm.py"),
            "--feeds",
            str(args.feeds),
            "--entries",
            str(args.entries),
            "--latency",
            str(args.latency),
            "--broken",
            str(args.broken),
            "--duration",
            "3600",
            "--write-config",
            str(config),
            *(["--headlines", str(args.headlines)] if args.headlines else []),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert farm.stdout is not None
        print(farm.stdout.readline().strip(), file=sys.stderr)
        urls = [
            line.split('"')[1] for line in config.read_text().splitlines() if line.startswith("url")
        ]
        urls_file = tmp / "urls.txt"
        urls_file.write_text("\n".join(urls))
        rows: list[tuple[str, dict[str, float]]] = []

        print("ours ...", file=sys.stderr)
        ours = [_child(["--as", "ours", str(config)]) for _ in range(2)]
        with sqlite3.connect(config.parent / "farm.db") as db:
            ours[0]["entries"] = db.execute("SELECT count(*) FROM entries").fetchone()[0]
        ours[1]["entries"] = 0
        rows += [("ours: Aggregator.poll, 1st pass", ours[0]), ("ours: 2nd pass (304)", ours[1])]

        best: list[dict[str, float]] | None = None
        best_workers = 0
        for workers in [int(w) for w in args.workers.split(",")]:
            print(f"reader workers={workers} ...", file=sys.stderr)
            db_path = tmp / f"reader-{workers}.sqlite"
            reader_args = ["--as", "reader", str(urls_file), str(db_path), str(workers)]
            passes = [_child(reader_args) for _ in range(2)]
            print(
                f"  1st pass {passes[0]['wall_in']:.2f}s, 2nd {passes[1]['wall_in']:.2f}s",
                file=sys.stderr,
            )
            if best is None or passes[0]["wall_in"] < best[0]["wall_in"]:
                best, best_workers = passes, workers
        assert best is not None
        rows += [
            (f"reader update_feeds({best_workers}), 1st", best[0]),
            (f"reader update_feeds({best_workers}), 2nd", best[1]),
        ]
        if not args.skip_naive:
            print("naive feedparser loop ...", file=sys.stderr)
            naive = _child(["--as", "naive", str(urls_file)])
            rows.append(("feedparser.parse(url) loop", naive))
    finally:
        farm.terminate()
        farm.wait()
    print(
        f"\n{args.feeds} feeds x {args.entries} entries, {args.latency * 1000:.0f} ms latency, "
        f"{os.cpu_count()} cores\n"
    )
    print(
        f"| {'contender':<34} | {'wall s':>8} | {'poll s':>8} | {'CPU s':>8} | {'peak MB':>8} | "
        f"{'entries':>8} | {'entries/s':>9} |"
    )
    print(f"|{'-' * 36}|{'-' * 10}|{'-' * 10}|{'-' * 10}|{'-' * 10}|{'-' * 10}|{'-' * 11}|")
    for name, m in rows:
        print(_row(name, m))
    print(
        "\nwall s: the whole process (interpreter, imports, config, database, the pass); "
        "poll s: the pass alone (Aggregator.poll, reader's update_feeds)."
    )
    for label, m in (("1st", ours[0]), ("304", ours[1])):
        if "late_p50" in m:
            stored = (
                f"response -> entries stored median {m['stored_p50']:.0f} ms, "
                f"p95 {m['stored_p95']:.0f}, max {m['stored_max']:.0f}; "
                if "stored_p50" in m
                else ""
            )
            print(
                f"ours, {label} pass: {stored}the fetcher's event loop woke late by median "
                f"{m['late_p50']:.1f} ms, p95 {m['late_p95']:.1f}, max {m['late_max']:.0f}"
            )
    for what, key in (("whole process", "wall"), ("pass alone", "wall_in")):
        print(
            f"{what}: first pass reader/ours {best[0][key] / ours[0][key]:.2f}x (target >= 1.5x); "
            f"304 pass reader/ours {best[1][key] / ours[1][key]:.2f}x (target >= 1x); "
            f"our 1st/2nd {ours[0][key] / ours[1][key]:.1f}x (target >= 10x)"
        )
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
