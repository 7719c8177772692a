"""Features computed by worker processes (aggregator/parallel.py): same results, no orphans."""

from __future__ import annotations

import concurrent.futures
import logging
import multiprocessing
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import closing
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from functools import partial
from html import escape
from pathlib import Path
from typing import Any

import opencc
import pytest

from aggregator import parallel, placer, placing
from aggregator.config import Config, load_config
from aggregator.core import Aggregator, make_aggregator
from aggregator.exceptions import ConfigError, DatabasePathError, StorageError
from aggregator.parallel import FeatureJob, FeaturePool, keyed_features
from aggregator.placer import Placer
from aggregator.sources.files import read_source
from aggregator.storage.sqlite import _entries as sqlite_entries
from aggregator.storage.sqlite._entries import SqliteReader
from aggregator.types import DedupSettings, Entry, EntryData, Feed, PollResult
from tests.builders import stored_entry
from tests.conftest import SEEDS, FrozenClock

T0 = datetime(2025, 2, 10, 12, tzinfo=UTC)


def variants(count: int) -> list[EntryData]:
    """`count` entries from the seeds' texts: cut, converted to Traditional, retitled."""
    seeds = [e for e in read_source(SEEDS).entries if e.text]
    s2t = opencc.OpenCC("s2t")
    out = []
    for n in range(count):
        seed = seeds[n % len(seeds)]
        paragraphs = seed.text.split("\n")
        kept = paragraphs[n % 3 :] or paragraphs
        text = "\n".join(kept) + f"\nEnglish line {n} about the summit in Paris."
        if n % 4 == 1:
            text = s2t.convert(text)
        out.append(
            EntryData(
                guid=f"g{n}",
                title=f"{seed.title} {n}",
                link=f"https://site{n % 7}.example/news/{n // 3}?utm_source=x",
                published=T0 + timedelta(minutes=n),
                summary=text[:80],
                text=text,
            )
        )
    return out


def stored(data: list[EntryData]) -> list[Entry]:
    return [
        stored_entry(
            i + 1,
            e.title,
            published=e.published or T0,
            guid=e.guid,
            link=e.link,
            summary=e.summary,
            text=e.text,
            first_seen=T0,
        )
        for i, e in enumerate(data)
    ]


@pytest.mark.slow
def test_workers_compute_what_this_process_computes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parallel, "MIN_PARALLEL", 10)
    monkeypatch.setattr(parallel, "PIECE", 7)  # many pieces: some taken by the worker
    entries = stored(variants(120))
    settings = DedupSettings()
    pool = FeaturePool(1)
    try:
        found, keys = pool.start(entries, settings).result()
        assert multiprocessing.active_children(), "the batch did not start a worker"
    finally:
        pool.close()
    assert not multiprocessing.active_children()
    expected_found, expected_keys = keyed_features(entries, settings)
    assert found == expected_found
    assert keys == expected_keys
    assert [f.entry_id for f in found] == [e.id for e in entries]


def test_features_travel_as_their_values() -> None:
    """What a worker sends back for each entry: its features' values in field order, not
    a dictionary of field names each (the placing process reads ~2,000 a batch)."""
    import pickle

    found, _ = keyed_features(stored(variants(3)), DedupSettings())
    sent = pickle.dumps(found)
    assert pickle.loads(sent) == found
    assert [type(f) for f in pickle.loads(sent)] == [type(f) for f in found]
    assert b"title_key" not in sent and b"signature" not in sent


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_a_workers_pieces_share_one_table_of_words(
    monkeypatch: pytest.MonkeyPatch, workers: int
) -> None:
    """Every piece a worker computes, over several batches, reads back with one table (this
    process's copy of the worker's: `aggregator.wordtables`) holding each word once; the
    features are those computed here, a batch of them lays out as their counts do (several
    workers' tables and this process's pieces meeting in it), and the copies go with the
    pool."""
    from aggregator import wordtables
    from aggregator.dedup.vectors import BatchTerms, weigh
    from aggregator.types import Pending, Vocabulary

    monkeypatch.setattr(parallel, "MIN_PARALLEL", 10)
    monkeypatch.setattr(parallel, "PIECE", 7)
    entries = stored(variants(120))
    settings = DedupSettings()
    pool = FeaturePool(workers)
    try:
        jobs = [pool.start(entries[n : n + 40], settings) for n in (0, 40, 80)]
        found = [f for job in jobs for f in job.result()[0]]
        copies = [c for t, c in wordtables._copies.items() if t[0] == pool._pool_name]
        assert 1 <= len(copies) <= workers
        for copy in copies:
            mine = [f for f in found if f.terms.table is copy]  # type: ignore[attr-defined]
            assert len(copy) == len(set(copy)) == len({w for f in mine for w in f.terms})
        from_workers = [f for f in found if any(f.terms.table is c for c in copies)]  # type: ignore[attr-defined]
        assert len(from_workers) > 40, "the workers computed no more than one batch's pieces"
        name = pool._pool_name
    finally:
        pool.close()
    assert not any(t[0] == name for t in wordtables._copies)
    expected, _ = keyed_features(entries, settings)
    assert found == expected
    assert [dict(f.terms) for f in found] == [dict(f.terms) for f in expected]
    batch = [Pending(f) for f in found]
    as_dicts = [Pending(replace(f, terms=dict(f.terms))) for f in found]
    got, want = BatchTerms.of(batch), BatchTerms.of(as_dicts)
    assert got.df_delta == want.df_delta and sorted(got.words) == sorted(want.words)
    vocabulary = Vocabulary({"paris": 30, "summit": 20, "峰会": 9}, 400)
    assert weigh(batch, vocabulary, got) == weigh(as_dicts, vocabulary, want)


def test_a_word_table_read_short_breaks_the_pool_and_loses_nothing(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A piece whose new words do not follow this process's copy of the worker's table (a
    piece sent and never read) is refused: the pool counts as broken, this process computes
    the pieces, and the next batch starts a new pool whose tables read back whole."""
    from aggregator import wordtables

    monkeypatch.setattr(parallel, "MIN_PARALLEL", 10)
    monkeypatch.setattr(parallel, "PIECE", 5)
    entries = stored(variants(60))
    settings = DedupSettings()
    expected = keyed_features(entries, settings)
    received = wordtables.received
    lost = []

    def short(token: wordtables.Token, start: int, words: list[str]) -> list[str]:
        if start and not lost:  # the second piece: as if the first had been lost
            lost.append(token)
            return received(token, start + 1, words)
        return received(token, start, words)

    monkeypatch.setattr(wordtables, "received", short)  # (unpickling looks it up by name)
    pool = FeaturePool(1)
    try:
        with caplog.at_level(logging.WARNING, logger="aggregator.parallel"):
            assert pool.start(entries, settings).result() == expected  # computed here instead
            assert lost and "a feature worker failed" in caplog.text
            assert "word table" in caplog.text
            assert not any(t[0] == lost[0][0] for t in wordtables._copies)  # dropped
            assert pool.start(entries, settings).result() == expected  # a new pool's
            assert caplog.text.count("a feature worker failed") == 1
        # The new pool's worker computed pieces, read back with its table.
        assert pool._pool_name != lost[0][0]
        assert any(t[0] == pool._pool_name for t in wordtables._copies)
    finally:
        pool.close()


def _thresholds(piece: Sequence[int], settings: DedupSettings) -> tuple[int, ...]:
    """A worker's task: its garbage collector's thresholds."""
    import gc

    return gc.get_threshold()


def test_batch_processes_collect_garbage_in_batches(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A feature worker runs with `parallel.GC_THRESHOLDS`, and so does `aggregator poll`
    while it polls (the thresholds before it restored after); the placing process starts
    as a worker does (`parallel.child_started`)."""
    import gc

    from tests.conftest import cli, write_config

    saved = gc.get_threshold()
    pool = FeaturePool(1)
    try:
        _, futures = pool.submit([[1]], DedupSettings(), _thresholds)
        assert futures[0].result(timeout=60) == parallel.GC_THRESHOLDS
    finally:
        pool.finished()
        pool.close()
    seen: list[tuple[int, ...]] = []
    poll = Aggregator.poll

    def watched(self: Aggregator, **kwargs: Any) -> list[PollResult]:
        seen.append(gc.get_threshold())
        return poll(self, **kwargs)

    monkeypatch.setattr(Aggregator, "poll", watched)
    write_config(tmp_path, "")
    gc.set_threshold(700, 10, 10)
    try:
        result = cli("poll", cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert seen == [parallel.GC_THRESHOLDS]
        assert gc.get_threshold() == (700, 10, 10)
    finally:
        gc.set_threshold(*saved)


def test_a_started_child_leaves_its_heap_to_the_exit(tmp_path: Path) -> None:
    """A process we start (`child_started`: a feature worker, the placing process) freezes
    its objects as it exits, so that the exit's last collection does not walk them: the
    parent waits for that exit (`parallel.ending`)."""
    from tests.conftest import run_python

    counted = tmp_path / "frozen"
    script = (
        "import atexit, gc, os, sys\n"
        "from aggregator.parallel import child_started\n"
        # Registered first, so run last: after what child_started registered.
        "atexit.register(lambda: open(sys.argv[1], 'w').write(str(gc.get_freeze_count())))\n"
        "child_started(os.getppid())\n"
        # More than the imports hold (~13,500): frozen at the exit, not when started.
        "heap = [[n] for n in range(100_000)]\n"
    )
    run_python(script, str(counted))
    assert int(counted.read_text()) > 100_000


def test_small_batches_start_no_worker() -> None:
    pool = FeaturePool(2)
    try:
        found, _ = pool.start(stored(variants(parallel.MIN_PARALLEL - 1)), DedupSettings()).result()
        assert len(found) == parallel.MIN_PARALLEL - 1
        assert not multiprocessing.active_children()
    finally:
        pool.close()


@pytest.mark.slow
# Python 3.11's pool may then end its manager thread with InvalidStateError (CPython
# gh-107219, fixed in 3.12), which pytest reports as an unhandled thread exception; what
# the test asserts (the same features, the warning, a new worker, no hang) still holds.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_killed_worker_costs_nothing_but_time(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(parallel, "MIN_PARALLEL", 10)
    monkeypatch.setattr(parallel, "PIECE", 5)
    entries = stored(variants(60))
    settings = DedupSettings()
    expected = keyed_features(entries, settings)
    pool = FeaturePool(1)
    try:
        assert pool.start(entries, settings).result() == expected
        (worker,) = multiprocessing.active_children()
        worker.kill()
        worker.join()
        with caplog.at_level(logging.WARNING, logger="aggregator.parallel"):
            assert pool.start(entries, settings).result() == expected  # computed here instead
            assert "a feature worker failed" in caplog.text
        assert pool.start(entries, settings).result() == expected  # and a new worker is started
        assert multiprocessing.active_children()
    finally:
        pool.close()


@pytest.mark.slow
def test_idle_workers_end_and_come_back(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parallel, "MIN_PARALLEL", 10)
    monkeypatch.setattr(parallel, "IDLE_SECONDS", 0.5)
    entries = stored(variants(40))
    expected = keyed_features(entries, DedupSettings())
    pool = FeaturePool(1)
    try:
        for _ in range(2):
            assert pool.start(entries, DedupSettings()).result() == expected
            assert multiprocessing.active_children()
            deadline = time.monotonic() + 10
            while multiprocessing.active_children() and time.monotonic() < deadline:
                time.sleep(0.1)
            assert not multiprocessing.active_children(), "an idle worker stayed"
    finally:
        pool.close()


CHILD = """
import multiprocessing, sys, time
sys.path.insert(0, sys.argv[1])
from aggregator import parallel
from aggregator.types import DedupSettings
from tests.test_parallel import stored, variants
parallel.MIN_PARALLEL = 10
pool = parallel.FeaturePool(1)
pool.start(stored(variants(40)), DedupSettings()).result()
print(*[p.pid for p in multiprocessing.active_children()], flush=True)
time.sleep(60)
"""


# A process leaving at once (`os._exit`, as the daemon after its stop's grace) with
# pieces in flight, its pool abandoned first (or not: argv[2]).
LEAVING = """
import multiprocessing, os, sys, time
sys.path.insert(0, sys.argv[1])
from aggregator import parallel
from aggregator.types import DedupSettings
from tests.test_parallel import stored, variants
parallel.MIN_PARALLEL = 10
pool = parallel.FeaturePool(2)
job = pool.start(stored(variants(400)), DedupSettings())
time.sleep(float(sys.argv[3]))
if sys.argv[2] == "abandon":
    pool.abandon()
    print(pool.workers, len(multiprocessing.active_children()), flush=True)
os._exit(0)
"""


@pytest.mark.slow
@pytest.mark.parametrize("after", [0.0, 1.0])
def test_a_pool_abandoned_before_os_exit_leaks_no_semaphore(tmp_path: Path, after: float) -> None:
    """Leaving at once skips multiprocessing's finalizers: without `abandon` its resource
    tracker warns of the pool's queues' semaphores as leaked; with it, none is left, and
    the workers are gone already. Pieces in flight or not yet started (`after` seconds)."""
    root = str(Path(__file__).resolve().parent.parent)

    def leave(how: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", LEAVING, root, how, str(after)],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            timeout=120,
        )

    assert "leaked semaphore" in leave("exit").stderr  # what abandon is for
    abandoned = leave("abandon")
    assert abandoned.returncode == 0
    assert abandoned.stdout.split() == ["0", "0"]  # no worker left, none to start
    assert "leaked" not in abandoned.stderr, abandoned.stderr


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/stat")
    return not (status.exists() and status.read_text().split(") ", 1)[1].startswith("Z"))


@pytest.mark.slow
def test_workers_end_when_their_process_is_killed(tmp_path: Path) -> None:
    root = str(Path(__file__).resolve().parent.parent)
    with subprocess.Popen(
        [sys.executable, "-c", CHILD, root],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,  # the killed process's semaphores are reported leaked
        text=True,
        cwd=tmp_path,
    ) as child:
        workers: list[int] = []
        try:
            assert child.stdout is not None
            workers = [int(pid) for pid in child.stdout.readline().split()]
            assert workers and all(map(_alive, workers))
            child.send_signal(signal.SIGKILL)
            child.wait()
            deadline = time.monotonic() + 5  # a worker checks its parent once a second
            while any(map(_alive, workers)) and time.monotonic() < deadline:
                time.sleep(0.1)
            assert not any(map(_alive, workers)), "a worker outlived its killed parent"
        finally:
            child.kill()
            for pid in filter(_alive, workers):  # orphans of a failed test
                os.kill(pid, signal.SIGKILL)


FEED_URL = "https://feed.example/rss"


def _config(folder: Path, workers: int) -> Config:
    folder.mkdir()
    (folder / "feeds.toml").write_text(
        f'[[feeds]]\nurl = "{FEED_URL}"\n[dedup]\nworkers = {workers}\n'
    )
    return load_config(folder / "feeds.toml")


def _placements(folder: Path, data: list[EntryData], workers: int) -> list[tuple[str, ...]]:
    config = _config(folder, workers)
    with make_aggregator(config, clock=FrozenClock(T0)) as aggregator:
        feed = Feed(url=FEED_URL, name="feed")
        aggregator.storage.save_poll(feed, data, now=T0, seconds=0)
        aggregator.group_stored()
        assert len(multiprocessing.active_children()) == workers
        entries = _everything(aggregator)
    return sorted((e.guid, str(e.article_id), str(e.story_id)) for e in entries)


@pytest.mark.slow
def test_the_same_placements_with_and_without_workers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real path (store, then group) decides alike whichever processes computed, also
    when the workers compute a batch ahead of the one being decided."""
    monkeypatch.setattr(parallel, "MIN_PARALLEL", 10)
    monkeypatch.setattr(placer, "ASSIGN_BATCH", 40)  # four batches, each one computed ahead
    data = variants(150)
    alone = _placements(tmp_path / "0", data, 0)
    assert _placements(tmp_path / "1", data, 1) == alone
    articles = {article for _, article, _ in alone}
    assert 1 < len(articles) < len(data)  # copies were found, and not everything is one

    # Entries edited after their features were started are computed again.
    def outdated(self: Placer, chunk: list[int], settings: DedupSettings) -> FeatureJob:
        entries = self.storage.entries_by_ids(chunk)
        return self.features.start([replace(e, text=e.text[::-1]) for e in entries], settings)

    monkeypatch.setattr(Placer, "_start_features", outdated)
    assert _placements(tmp_path / "edited", data, 1) == alone


@pytest.mark.slow
def test_workers_read_the_entries_they_compute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A job given stored entries' ids has the workers read them (their own connection):
    the features are those of the entries as stored, in storage's order, with the stamps
    of what was read."""
    monkeypatch.setattr(parallel, "MIN_PARALLEL", 10)
    monkeypatch.setattr(parallel, "PIECE", 7)
    config = _config(tmp_path / "store", workers=1)
    data = variants(60)
    data[20] = replace(data[20], published=T0 - timedelta(days=1))  # not in id order
    settings = DedupSettings()
    with make_aggregator(config, clock=FrozenClock(T0)) as aggregator:
        storage = aggregator.storage
        ids = storage.save_poll(Feed(url=FEED_URL, name="feed"), data, now=T0, seconds=0).new_ids
        reader = storage.entry_reader()
        assert reader is not None
        pool = FeaturePool(1)
        try:
            job = pool.start_reading(ids + [99_999], settings, reader, storage.stamped_entries)
            assert job.entries is None
            found, keys = job.result()
            assert multiprocessing.active_children(), "the batch did not start a worker"
        finally:
            pool.close()
        entries = storage.entries_by_ids(ids)
        assert entries[0].id == ids[20]
        assert (found, keys) == keyed_features(entries, settings)
        assert job.stamps == storage.entry_stamps(ids)
        aggregator.group_stored()
        assert storage.entry_stamps(ids) == job.stamps  # being placed changes no stamp


class Unreadable:
    """A reader whose store cannot be read (as a worker's would fail)."""

    def __call__(self, ids: Sequence[int]) -> tuple[list[Entry], dict[int, str]]:
        raise StorageError("cannot read entries: disk I/O error")


@pytest.mark.slow
def test_a_worker_that_cannot_read_leaves_the_piece_to_this_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(parallel, "MIN_PARALLEL", 10)
    monkeypatch.setattr(parallel, "PIECE", 7)
    config = _config(tmp_path / "store", workers=1)
    settings = DedupSettings()
    with make_aggregator(config, clock=FrozenClock(T0)) as aggregator:
        storage = aggregator.storage
        feed = Feed(url=FEED_URL, name="feed")
        ids = storage.save_poll(feed, variants(40), now=T0, seconds=0).new_ids
        expected = keyed_features(storage.entries_by_ids(ids), settings)
        pool = FeaturePool(1)
        try:
            with caplog.at_level(logging.WARNING, logger="aggregator.parallel"):
                job = pool.start_reading(ids, settings, Unreadable(), storage.stamped_entries)
                assert job.result() == expected and job.stamps == storage.entry_stamps(ids)
            assert caplog.text.count("a feature worker could not read entries") == 1
            assert "disk I/O error" in caplog.text
            assert "a feature worker failed" not in caplog.text
            (worker,) = multiprocessing.active_children()
            # The pool is kept: the next job goes to the same worker.
            reader = storage.entry_reader()
            assert reader is not None
            job = pool.start_reading(ids, settings, reader, storage.stamped_entries)
            assert job.result() == expected
            assert multiprocessing.active_children() == [worker]
        finally:
            pool.close()


@pytest.mark.slow
def test_a_worker_whose_file_is_no_database_leaves_the_piece_to_this_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A real reader failing in the worker (its path names a file that is no database):
    the pieces are computed here, from this process's own reads."""
    monkeypatch.setattr(parallel, "MIN_PARALLEL", 10)
    monkeypatch.setattr(parallel, "PIECE", 7)
    config = _config(tmp_path / "store", workers=1)
    settings = DedupSettings()
    not_a_database = tmp_path / "notes.db"
    not_a_database.write_text("not a database\n" * 100, encoding="utf-8")
    with make_aggregator(config, clock=FrozenClock(T0)) as aggregator:
        storage = aggregator.storage
        feed = Feed(url=FEED_URL, name="feed")
        ids = storage.save_poll(feed, variants(30), now=T0, seconds=0).new_ids
        pool = FeaturePool(1)
        try:
            with caplog.at_level(logging.WARNING, logger="aggregator.parallel"):
                reader = SqliteReader(not_a_database)
                job = pool.start_reading(ids, settings, reader, storage.stamped_entries)
                assert job.result() == keyed_features(storage.entries_by_ids(ids), settings)
            assert "a feature worker could not read entries" in caplog.text
            assert "not a database" in caplog.text and "a feature worker failed" not in caplog.text
        finally:
            pool.close()
    assert not_a_database.read_text(encoding="utf-8").startswith("not a database")


def test_a_reader_never_creates_or_writes_a_database(tmp_path: Path) -> None:
    missing = tmp_path / "missing.db"
    with pytest.raises(DatabasePathError):
        SqliteReader(missing)([1])
    assert not missing.exists()
    config = _config(tmp_path / "store", workers=0)
    with make_aggregator(config, clock=FrozenClock(T0)) as aggregator:
        feed = Feed(url=FEED_URL, name="feed")
        ids = aggregator.storage.save_poll(feed, variants(3), now=T0, seconds=0).new_ids
        reader = aggregator.storage.entry_reader()
        assert isinstance(reader, SqliteReader)
        entries, stamps = reader(ids)
        assert entries == aggregator.storage.entries_by_ids(ids)
        assert stamps == aggregator.storage.entry_stamps(ids)
        connection = sqlite_entries._READERS.pop(reader.path)
        try:
            with pytest.raises(sqlite3.OperationalError, match="readonly"):
                connection.execute("DELETE FROM entries")
        finally:
            connection.close()


@pytest.mark.slow
def test_entries_edited_after_the_workers_read_them_are_computed_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(parallel, "MIN_PARALLEL", 10)
    monkeypatch.setattr(placer, "ASSIGN_BATCH", 40)
    data = variants(150)
    edited = data[:40] + [replace(e, text=e.text[::-1]) for e in data[40:]]
    expected = _placements(tmp_path / "edited before", edited, 0)
    assert expected != _placements(tmp_path / "as it was", data, 0)  # the edit tells
    start_job = Placer._start_job

    # Each batch after the first is read by the worker, then edited in storage: the
    # stamps differ, and the batch is read and computed again.
    def read_then_edited(self: Placer, chunk: list[int], settings: DedupSettings) -> FeatureJob:
        job = start_job(self, chunk, settings)
        assert job.entries is None  # the worker reads them
        deadline = time.monotonic() + 30
        while not job.done() and time.monotonic() < deadline:
            time.sleep(0.01)
        mine = {e.guid for e in self.storage.entries_by_ids(chunk)}
        feed = Feed(url=FEED_URL, name="feed")
        changed = [e for e in edited[40:] if e.guid in mine]
        self.storage.save_poll(feed, changed, now=T0, seconds=0)
        return job

    monkeypatch.setattr(Placer, "_start_features", read_then_edited)
    assert _placements(tmp_path / "edited after", data, 1) == expected


def test_workers_setting_is_validated(tmp_path: Path) -> None:
    path = tmp_path / "feeds.toml"
    path.write_text("[dedup]\nworkers = 3\n", encoding="utf-8")
    assert load_config(path).dedup.workers == 3
    path.write_text("", encoding="utf-8")
    assert load_config(path).dedup.workers is None  # one per core but one
    for value in ("-1", "1.5", '"2"', "true"):
        path.write_text(f"[dedup]\nworkers = {value}\n", encoding="utf-8")
        with pytest.raises(ConfigError, match=r"dedup\.workers.*whole number of processes"):
            load_config(path)


def test_a_batch_needed_now_is_computed_here() -> None:
    pool = FeaturePool(2)
    try:
        entries = stored(variants(parallel.MIN_PARALLEL + 10))
        assert pool(entries, DedupSettings()) == keyed_features(entries, DedupSettings())
        assert not multiprocessing.active_children()
    finally:
        pool.close()


def _rss(entries: list[EntryData]) -> str:
    items = "".join(
        f"<item><title>{escape(e.title)}</title><link>{escape(e.link or '')}</link>"
        f"<guid>{escape(e.guid)}</guid><pubDate>Mon, 10 Feb 2025 12:00:00 GMT</pubDate>"
        f"<description>{escape(e.text)}</description></item>"
        for e in entries
    )
    return (
        f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>{items}</channel></rss>'
    )


def _four_feeds(folder: Path, data: list[EntryData], workers: int, storage: str = "") -> Config:
    """The config of four local RSS files holding `data` (`storage`: a [storage] table)."""
    folder.mkdir()
    feeds = ""
    for n in range(4):
        (folder / f"{n}.xml").write_text(_rss(data[n::4]), encoding="utf-8")
        feeds += f'[[feeds]]\nurl = "{folder / f"{n}.xml"}"\nname = "f{n}"\n'
    (folder / "feeds.toml").write_text(f"{storage}{feeds}[dedup]\nworkers = {workers}\n")
    return load_config(folder / "feeds.toml")


def _polled(
    folder: Path,
    data: list[EntryData],
    workers: int,
    *,
    placing: bool = False,
    on_result: Callable[[Aggregator, PollResult], None] | None = None,
    storage: str = "",
) -> list[tuple[str, ...]]:
    """Placements after a real poll of four local RSS files holding `data` (`placing`:
    full batches placed by the placing process, else in this process)."""
    config = _four_feeds(folder, data, workers, storage)
    with make_aggregator(config, clock=FrozenClock(T0)) as agg:
        assert (agg.placer.placing is not None) == (workers > 0)
        if not placing:
            agg.placer.placing = None
        agg.poll(on_result=None if on_result is None else partial(on_result, agg))
        if not storage:  # each entry's words counted once: none placed twice
            assert _counted(config) == len(data)
        entries = _everything(agg)
    return sorted((e.guid, str(e.article_id), str(e.story_id)) for e in entries)


@pytest.mark.slow
def test_features_of_a_poll_start_as_its_entries_are_stored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While a poll is still reading feeds, each full batch of new entries is set on the
    feature workers (`_start_early`), and grouping uses those jobs: the same placements
    as computing every feature in this process."""
    monkeypatch.setattr(parallel, "MIN_PARALLEL", 10)
    monkeypatch.setattr(placer, "ASSIGN_BATCH", 40)
    used: list[bool] = []
    early_job = Placer._early_job

    def counting(self: Placer, chunk: list[int], settings: DedupSettings) -> FeatureJob | None:
        job = early_job(self, chunk, settings)
        used.append(job is not None)
        return job

    monkeypatch.setattr(Placer, "_early_job", counting)
    data = variants(160)
    alone = _polled(tmp_path / "0", data, 0)
    assert used and not any(used)  # without workers nothing is started early
    used.clear()
    assert _polled(tmp_path / "1", data, 1) == alone
    assert used.count(True) >= 3  # batches whose features were under way before grouping
    assert 1 < len({article for _, article, _ in alone}) < len(data)


@pytest.mark.slow
def test_a_poll_places_batches_whose_features_are_ready_as_it_goes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Batches whose features the workers finished are placed while the poll still reads
    feeds (`Placer.place_ready`), in the order grouping at the end would place them: the
    same placements as computing and placing everything after the poll."""
    monkeypatch.setattr(parallel, "MIN_PARALLEL", 10)
    monkeypatch.setattr(placer, "ASSIGN_BATCH", 20)
    # Each batch's features finish before the next feed is read: deterministic, where the
    # real workers would finish whenever they do.
    done = FeatureJob.done

    def finished(job: FeatureJob) -> bool:
        concurrent.futures.wait(job._futures)
        return done(job)

    monkeypatch.setattr(FeatureJob, "done", finished)
    placed: list[int] = []
    place_ready = Placer.place_ready

    def counting(self: Placer) -> int:
        placed.append(place_ready(self))
        return placed[-1]

    monkeypatch.setattr(Placer, "place_ready", counting)
    data = variants(160)
    alone = _polled(tmp_path / "0", data, 0)
    assert not any(placed)  # without workers nothing is started early, nor placed early
    placed.clear()
    assert _polled(tmp_path / "1", data, 1) == alone
    assert sum(placed) >= 3 * 20  # batches placed before the poll ended


def test_a_pool_whose_manager_thread_died_does_not_hang_a_wait(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On Python 3.11 a killed worker can end the pool's manager thread without failing its
    futures (CPython gh-107219): waiting on one must end in an error (the piece is then
    computed here), not hang."""
    from concurrent.futures import Future, ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool
    from types import SimpleNamespace
    from typing import cast

    monkeypatch.setattr(parallel, "AWAIT_CHECK_SECONDS", 0.05)
    ended = threading.Thread(target=lambda: None)
    ended.start()
    ended.join()
    never: Future[parallel.Keyed] = Future()
    dead = cast(ProcessPoolExecutor, SimpleNamespace(_executor_manager_thread=ended))
    started = time.monotonic()
    with pytest.raises(BrokenProcessPool):
        parallel._await(never, dead)
    assert time.monotonic() - started < 5

    # A live pool's piece that takes longer than a check is waited for.
    running = threading.Event()
    alive = threading.Thread(target=running.wait)
    alive.start()
    later: Future[parallel.Keyed] = Future()
    threading.Timer(0.3, later.set_result, (([], []),)).start()
    try:
        live = cast(ProcessPoolExecutor, SimpleNamespace(_executor_manager_thread=alive))
        assert parallel._await(later, live) == ([], [])
    finally:
        running.set()
        alive.join()


@pytest.mark.slow
def test_a_poll_hands_full_batches_to_the_placing_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With feature workers, each full batch a poll stores is placed by the placing process
    (aggregator/placing.py) while this one reads the next feeds; it places the same batches
    in the same order, so the articles and stories are those of placing everything here."""
    monkeypatch.setattr(placer, "ASSIGN_BATCH", 40)  # the child is told the batch size
    flushed: list[int] = []
    flush = Placer._flush_placing

    def counting(self: Placer, edited: list[int]) -> tuple[int, list[int]]:
        placed, left = flush(self, edited)
        flushed.append(placed)
        return placed, left

    monkeypatch.setattr(Placer, "_flush_placing", counting)
    pids: set[int | None] = set()

    def seen(agg: Aggregator, _: PollResult) -> None:
        assert agg.placer.placing is not None
        pids.add(agg.placer.placing.pid)

    data = variants(200)
    alone = _polled(tmp_path / "0", data, 0)
    flushed.clear()
    assert _polled(tmp_path / "child", data, 1, placing=True, on_result=seen) == alone
    assert flushed == [200]  # every entry placed by the child (the last 40 at the flush)
    assert len(pids - {None}) == 1  # one child, started on the first full batch
    assert not multiprocessing.active_children()  # it ended with the aggregator
    assert 1 < len({article for _, article, _ in alone}) < len(data)


@pytest.mark.slow
def test_a_killed_placing_process_loses_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The placing process killed mid-poll: what it recorded stays, this process places the
    rest (from the batch it was killed in), every entry once, as if placed here alone."""
    monkeypatch.setattr(placer, "ASSIGN_BATCH", 40)
    results = 0

    def kill_after_two_feeds(agg: Aggregator, _: PollResult) -> None:
        nonlocal results
        results += 1
        if results == 2:  # two feeds stored (100 entries): at least two batches handed over
            assert agg.placer.placing is not None
            pid = agg.placer.placing.pid
            assert pid is not None
            os.kill(pid, signal.SIGKILL)

    data = variants(200)
    alone = _polled(tmp_path / "0", data, 0)
    with caplog.at_level(logging.WARNING, logger="aggregator"):
        killed = _polled(tmp_path / "killed", data, 1, placing=True, on_result=kill_after_two_feeds)
    # The killed batch's ids were taken and rolled back: the same groups, other ids.
    assert _groups(killed) == _groups(alone)
    assert sorted(guid for guid, _, _ in killed) == sorted(e.guid for e in data)
    assert any("placing process" in r.getMessage() for r in caplog.records)
    assert not multiprocessing.active_children()


@pytest.mark.slow
def test_the_placing_process_places_in_postgresql_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pg_url: str
) -> None:
    """The placing process opens the configured PostgreSQL database (a store shared by
    pollers: it takes the placing lock, as this process would): the same articles and
    stories as placing everything here in SQLite."""
    monkeypatch.setattr(placer, "ASSIGN_BATCH", 40)
    pids: set[int | None] = set()

    def seen(agg: Aggregator, _: PollResult) -> None:
        assert agg.placer.placing is not None and agg.storage.shared
        pids.add(agg.placer.placing.pid)

    data = variants(160)
    alone = _polled(tmp_path / "0", data, 0)
    storage = f'[storage]\nurl = "{pg_url}"\n\n'
    shared = _polled(tmp_path / "pg", data, 1, placing=True, on_result=seen, storage=storage)
    assert len(pids - {None}) == 1
    assert _groups(shared) == _groups(alone)


@pytest.mark.slow
def test_the_placing_process_ends_when_idle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The placing process ends after IDLE_SECONDS without a batch (a pass that hands it
    none starts no countdown of its own), and the next large poll starts another."""
    monkeypatch.setattr(placer, "ASSIGN_BATCH", 40)
    monkeypatch.setattr(placing, "IDLE_SECONDS", 1.0)
    config = _four_feeds(tmp_path / "f", variants(160), 1)
    with make_aggregator(config, clock=FrozenClock(T0)) as agg:
        process = agg.placer.placing
        assert process is not None
        agg.poll()
        first = process.pid
        assert first is not None and _alive(first)
        threads = threading.active_count()
        for _ in range(5):
            agg.group_stored()  # nothing handed over: nothing to wait for, no new countdown
        assert threading.active_count() == threads
        deadline = time.monotonic() + 10
        while _alive(first) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(first) and process.pid is None
        for n in range(4):  # new entries in every feed: another large poll
            path = tmp_path / "f" / f"{n}.xml"
            path.write_text(_rss(variants(320)[160 + n :: 4]), encoding="utf-8")
        agg.poll(force=True)
        assert process.pid not in (None, first)
        stored = _everything(agg)
        assert len(stored) == 320 and all(e.story_id is not None for e in stored)


@pytest.mark.slow
def test_the_daemons_threads_and_the_placing_process_place_each_entry_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`poll_feed` from the daemon's worker threads: a thread's flush has the placing
    process place every unplaced entry, other threads' too, whose ids those threads then
    hand over in later batches: those are not placed again (their words were counted
    twice: 1,000 and 919 documents for 800 entries, before)."""
    monkeypatch.setattr(placer, "ASSIGN_BATCH", 40)
    folder = tmp_path / "f"
    folder.mkdir()
    data = variants(800)
    feeds = ""
    for n in range(40):
        (folder / f"{n}.xml").write_text(_rss(data[n::40]), encoding="utf-8")
        feeds += f'[[feeds]]\nurl = "{folder / f"{n}.xml"}"\nname = "f{n}"\n'
    (folder / "feeds.toml").write_text(f"{feeds}[dedup]\nworkers = 1\n")
    config = load_config(folder / "feeds.toml")
    with make_aggregator(config, clock=FrozenClock(T0)) as agg:
        # The eight threads' first polls all store before any places: else a thread
        # that polled alone placed its 20 entries here (no full batch to hand over), and
        # the placing process was never started (1 run in 4, before).
        first = threading.Barrier(8, timeout=30)
        calls = iter(range(len(config.feeds)))
        group_stored = agg.placer.group_stored

        def stored_together() -> int:
            if next(calls) < 8:
                first.wait()
            return group_stored()

        monkeypatch.setattr(agg.placer, "group_stored", stored_together)
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            results = list(pool.map(agg.poll_feed, config.feeds))
        assert agg.placer.placing is not None and agg.placer.placing.pid is not None
        entries = _everything(agg)
    assert sum(r.new for r in results) == len(entries) == len(data)
    assert all(e.article_id is not None and e.story_id is not None for e in entries)
    assert _counted(config) == len(data)


@pytest.mark.slow
def test_the_placing_process_shares_large_batches_with_its_worker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Batches as large as the feature workers take (`MIN_PARALLEL`): the child sets its
    own worker on each batch as it arrives and computes what the worker has not started of
    the one it places; the same articles and stories as placing everything here."""
    monkeypatch.setattr(placer, "ASSIGN_BATCH", parallel.MIN_PARALLEL)
    data = variants(parallel.MIN_PARALLEL * 3 + 50)
    alone = _polled(tmp_path / "0", data, 0)
    assert _polled(tmp_path / "child", data, 1, placing=True) == alone


@pytest.mark.slow
def test_a_pass_s_last_batch_short_of_a_full_one_goes_to_the_worker_with_the_flush(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pass's new entries short of a full batch go with the flush (`start_last`): the
    placing process sets its worker on them while it places the batches before them, and
    places them last, as `group_stored` would: the same placements as placing everything
    here (500 of 800 there). Not while older unplaced entries wait: `group_stored` places
    those with them, in one order by id."""
    monkeypatch.setattr(placer, "ASSIGN_BATCH", 800)
    data = variants(2100)
    alone = _polled(tmp_path / "0", data, 0)
    assert _polled(tmp_path / "child", data, 1, placing=True) == alone
    # The step itself, in this process: the short batch set on the worker, then placed.
    config = _four_feeds(tmp_path / "here", data[:500], 1)
    with make_aggregator(config, clock=FrozenClock(T0)) as agg:
        agg.placer.placing = None
        for feed in config.feeds:
            agg.poll_feed(feed, place=False)
        waiting = agg.storage.unassigned_ids()
        assert len(waiting) == 500 and agg.placer.early_batches() == 0  # no full batch
        agg.placer.start_last(waiting)
        assert agg.placer.early_batches() == 1
        (job,) = agg.placer._early.values()
        assert job._futures  # on the worker (the structure is private to FeatureJob)
        assert agg.placer.place_ready(oldest=True) == 500
        assert agg.storage.unassigned_ids() == [] and agg.placer.early_batches() == 0
    # Older entries a failure left unplaced (stored, not among the pass's new ones).
    config = _four_feeds(tmp_path / "older", data[:500], 1)
    with make_aggregator(config, clock=FrozenClock(T0)) as agg:
        agg.placer.placing = None
        agg.poll_feed(config.feeds[0], place=False)
        agg.placer._fresh.clear()
        for feed in config.feeds[1:]:
            agg.poll_feed(feed, place=False)
        agg.placer.start_last(list(agg.placer._fresh))
        assert agg.placer.early_batches() == 0  # left to group_stored, with the older ones
        assert agg.placer.group_stored() == 500


@pytest.mark.slow
def test_the_placing_process_places_a_pass_s_edited_entries_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pass that hands batches over and edits entries placed before: the edited ones go
    with the flush, so the child places the pass alone (this process builds no key index
    of its own), the same articles and stories as placing it here."""
    monkeypatch.setattr(placer, "ASSIGN_BATCH", 40)
    first, more = variants(320)[:160], variants(320)[160:]
    edited = [replace(e, text=e.text + " An update.") for e in first[:20]]

    def two_passes(folder: Path, workers: int) -> tuple[list[tuple[str, ...]], int, bool]:
        config = _four_feeds(folder, first, workers)
        with make_aggregator(config, clock=FrozenClock(T0)) as agg:
            agg.poll()
            for n in range(4):
                data = (edited + first[20:] + more)[n::4]
                (folder / f"{n}.xml").write_text(_rss(data), encoding="utf-8")
            agg.poll(force=True)
            indexed = agg.placer._index is not None
            entries = _everything(agg)
        placements = sorted((e.guid, str(e.article_id), str(e.story_id)) for e in entries)
        return placements, _counted(config), indexed

    alone = two_passes(tmp_path / "0", 0)
    assert alone[0] and alone[2]
    child = two_passes(tmp_path / "child", 1)
    assert _groups(child[0]) == _groups(alone[0]) and child[1] == alone[1]
    assert not child[2]  # every placement was the child's


@pytest.mark.slow
def test_a_large_first_pass_starts_the_placing_process_ahead(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Feeds never polled bring their backlogs (~20 entries each, `FIRST_POLL_ENTRIES`):
    when that fills a batch, the placing process starts (and loads its tables) before the
    first feed is stored; a pass of feeds polled before does not start it."""
    monkeypatch.setattr(placer, "ASSIGN_BATCH", 60)  # 4 first polls expect 80 entries
    warmed: list[int] = []
    warm = placing.PlacingProcess.warm

    def counting(self: placing.PlacingProcess, config: Config, batch: int) -> None:
        warmed.append(batch)
        warm(self, config, batch)

    monkeypatch.setattr(placing.PlacingProcess, "warm", counting)
    pids: list[int | None] = []

    def seen(agg: Aggregator, _: PollResult) -> None:
        assert agg.placer.placing is not None
        pids.append(agg.placer.placing.pid)

    config = _four_feeds(tmp_path / "f", variants(100), 1)  # 25 a feed: under a batch
    with make_aggregator(config, clock=FrozenClock(T0)) as agg:
        agg.poll(on_result=partial(seen, agg))
        assert warmed == [60] and pids[0] is not None  # running before any batch was full
        agg.poll(force=True)
        assert warmed == [60]
        entries = _everything(agg)
    assert len(entries) == 100 and all(e.story_id is not None for e in entries)


@pytest.mark.slow
def test_a_placing_process_started_ahead_for_nothing_ends_when_idle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A first pass expected to fill a batch that did not (its feeds brought less): the
    process started ahead ends after IDLE_SECONDS all the same, and the pass is placed."""
    monkeypatch.setattr(placer, "ASSIGN_BATCH", 80)  # 4 first polls expect 80 entries
    monkeypatch.setattr(placing, "IDLE_SECONDS", 1.0)
    config = _four_feeds(tmp_path / "f", variants(60), 1)  # they bring 60
    with make_aggregator(config, clock=FrozenClock(T0)) as agg:
        process = agg.placer.placing
        assert process is not None
        agg.poll()
        pid = process.pid
        assert pid is not None
        deadline = time.monotonic() + 10
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(pid) and process.pid is None
        entries = _everything(agg)
    assert len(entries) == 60 and all(e.story_id is not None for e in entries)


def _everything(agg: Aggregator) -> list[Entry]:
    """Every entry the tests here store (all published around T0)."""
    return agg.storage.entries_between(T0 - timedelta(days=1), T0 + timedelta(1))


def _counted(config: Config) -> int:
    """How many entries' words the SQLite database counts (`docs`: one per placement)."""
    with closing(sqlite3.connect(config.storage_path)) as db:
        (docs,) = db.execute("SELECT value FROM dedup_meta WHERE key = 'docs'").fetchone()
    return int(docs)


def _groups(placements: list[tuple[str, ...]]) -> tuple[set[frozenset[str]], ...]:
    """The entries (guids) of each article and of each story, whatever their ids."""
    out = []
    for column in (1, 2):
        groups: dict[str, set[str]] = {}
        for row in placements:
            groups.setdefault(row[column], set()).add(row[0])
        out.append({frozenset(g) for g in groups.values()})
    return tuple(out)
