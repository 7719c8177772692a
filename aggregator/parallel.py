"""Entries' dedup features computed on the machine's other cores.

Features (normalised text, OpenCC, shingles, MinHash signatures, words: `dedup.features.
features_many`) are the one step of deduplication that needs nothing but the entry itself,
and the costliest per entry; everything after it depends on the previous entries' places.
So while this process decides one batch, the next one (cut into pieces) is computed by
worker processes; when this process gets to it, it computes from the other end whatever
no worker has started yet. The results are the same wherever a piece was computed
(features are pure functions of the entry and the settings), and arrive in order.

Workers are started on first use (``spawn``: nothing of this process's threads or open
database is inherited), only for batches worth it, and end after `IDLE_SECONDS` without a
batch, with the pool (`close`), at once when this process leaves without waiting for them
(`abandon`) or, if this process is killed, within a second: each watches its parent.
"""

from __future__ import annotations

import atexit
import gc
import itertools
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

from aggregator import wordtables
from aggregator.exceptions import StorageError
from aggregator.types import DedupSettings, Entry, EntryReader, Features

if TYPE_CHECKING:  # multiprocessing is imported when the first workers start
    from concurrent.futures import Future, ProcessPoolExecutor

log = logging.getLogger(__name__)
_T = TypeVar("_T")

#: Batches smaller than this are computed here: a worker costs ~0.3 s of CPU to start (it
#: imports numpy and the dedup stack; the first Chinese text ~0.2 s more, ~0.7 s when the
#: word tables are not kept yet: `tablecache`) and ~80-220 MiB.
MIN_PARALLEL = 400
#: How often a wait for a worker's piece checks that its pool still delivers (`_await`).
AWAIT_CHECK_SECONDS = 1.0
#: Entries per piece: small enough that the last pieces balance the processes' shares.
PIECE = 64
#: Worker processes at most, whatever the number of cores.
MAX_WORKERS = 4
#: Seconds `FeaturePool.abandon` waits for each thread holding the pool's queues to end
#: (they end at once, their workers killed: this bounds a pool that no longer answers).
ABANDON_SECONDS = 1.0
#: Seconds without a batch after which the workers end (a daemon's polls are mostly
#: small: its workers should not hold their memory between first polls and backlogs).
IDLE_SECONDS = 300.0

#: The cyclic garbage collector's thresholds in the processes that compute features or place
#: entries in batches (`batch_gc`): a young collection every 50,000 container allocations
#: net of frees (CPython 3.11's default: 700), a middle one every 20 young ones (default
#: 10), a full one every 100 middle ones (default 10; and, as by default, only once a
#: quarter of the heap is new since the last).
GC_THRESHOLDS = (50_000, 20, 100)
#: Numbers this process's worker pools (their names: `aggregator.wordtables`).
_POOLS = itertools.count(1)

Keyed = tuple[list[Features], list[tuple[int, ...]]]
#: `Keyed`, and the stamps of the entries they were computed from (by entry id).
Stamped = tuple[list[Features], list[tuple[int, ...]], dict[int, str]]


def default_workers() -> int:
    """One worker per core beside this process's, at most `MAX_WORKERS`."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(0, min(cores - 1, MAX_WORKERS))


def keyed_features(entries: Sequence[Entry], settings: DedupSettings) -> Keyed:
    """Features of the entries and their lookup keys (what a piece computes)."""
    # Imported here: an Aggregator that places nothing never loads the dedup stack.
    from aggregator.dedup.features import entry_keys_many, features_many

    found = features_many(entries, settings)
    return found, entry_keys_many(found, settings)


def read_features(read: EntryReader, ids: Sequence[int], settings: DedupSettings) -> Stamped:
    """`keyed_features` of the stored entries `ids` (those that exist), read by `read`, and
    their stamps: a worker reads what it computes instead of being sent it."""
    entries, stamps = read(ids)
    return (*keyed_features(entries, settings), stamps)


def _read_in_worker(
    read: EntryReader, ids: Sequence[int], settings: DedupSettings
) -> Stamped | str:
    """`read_features` in a worker: a store it cannot read is told (what went wrong), not
    raised. The process that set the piece then computes it, reading it itself (which
    raises what is wrong with the store, if anything still is), and keeps its workers: a
    worker that cannot read is not a dead one."""
    try:
        return read_features(read, ids, settings)
    except (StorageError, OSError, MemoryError) as e:  # (SQLite's out of memory: MemoryError)
        return str(e) or type(e).__name__


def _stamped(entries: Sequence[Entry], settings: DedupSettings) -> Stamped:
    """`keyed_features`, with no stamps (a piece that was handed its entries)."""
    return (*keyed_features(entries, settings), {})


def warm_up(settings: DedupSettings) -> None:
    """Load what computing features of any text needs (the dedup stack, the English word
    tables), as the first batch would: in a process started ahead of it. What only
    Chinese text needs (rjieba, jieba's IDF table, CC-CEDICT, an OpenCC converter: ~0.2 s
    once the tables are kept, `tablecache`) is loaded by the first Chinese text: a stream
    without any never loads it."""
    from datetime import UTC, datetime

    at = datetime(2025, 2, 10, tzinfo=UTC)
    sample = Entry(
        id=0,
        feed_url="",
        feed_name="",
        guid="",
        title="AI summit opens in Paris",
        link=None,
        published=at,
        dated=True,
        first_seen=at,
        updated_at=at,
        author=None,
        summary="",
        text="Leaders met in Paris on Monday for the AI Action Summit.",
        language=None,
    )
    keyed_features([sample], settings)


class FeatureJob:
    """The features of one batch, under way: `result` gathers them (computing what no
    worker has started), `cancel` gives up on them.

    Given its entries, the workers are sent them; given only their ids and a `reader`
    (`Storage.entry_reader`), the workers read them from the store themselves and
    `entries` is None: `stamps` then tells what the features were computed from, for the
    caller to check against the store (`Storage.entry_stamps`) instead of reading the
    entries again.
    """

    def __init__(
        self,
        pool: FeaturePool,
        entries: Sequence[Entry] | None,
        settings: DedupSettings,
        keyed: Keyed | None = None,
        *,
        ids: Sequence[int] = (),
        reader: tuple[EntryReader, EntryReader] | None = None,
    ) -> None:
        self.entries = entries
        self.settings = settings
        #: The stamps of the entries read (by id), once `result` has gathered them: only
        #: for a job given ids and a reader.
        self.stamps: dict[int, str] | None = None
        self._pool = pool
        self._keyed = keyed  # computed already (`FeaturePool.computed`)
        self._futures: list[Future[Stamped | str]] = []
        self._executor: ProcessPoolExecutor | None = None
        # What the job computes: the entries, or the ids of those the workers read.
        whole: Sequence[Entry] | Sequence[int] = ids if entries is None else entries
        self._whole = whole
        self._pieces = [whole[i : i + PIECE] for i in range(0, len(whole), PIECE)]
        # A piece computed here: from the entries, or read by this process's own reader.
        self._here: Callable[[Sequence[Any]], Stamped]
        if entries is None:
            assert reader is not None, "a job given no entries reads them"
            remote, local = reader
            self._here = lambda piece: read_features(local, piece, settings)
            task: tuple[Callable[..., Stamped | str], tuple[Any, ...]] = (
                _read_in_worker,
                (remote,),
            )
        else:
            self._here = lambda piece: _stamped(piece, settings)
            task = (_stamped, ())
        if keyed is None and pool.workers > 0 and len(whole) >= MIN_PARALLEL:
            function, before = task
            self._executor, self._futures = pool.submit(self._pieces, settings, function, *before)

    def done(self) -> bool:
        """Whether the workers have computed every piece (`result` would not compute)."""
        return all(future.done() for future in self._futures)

    def result(self) -> Keyed:
        """`keyed_features` of the entries, oldest first (then by id), as storage returns
        them; for a job that read them, `stamps` too."""
        try:
            return self._gather()
        finally:
            self._done()

    def _gather(self) -> Keyed:
        if self._keyed is not None:
            return self._keyed
        if not self._futures:  # all of it here, at once (its signatures in one pass)
            results: list[Stamped | None] = [self._here(self._whole)]
        else:
            results = [None] * len(self._pieces)
            told = False  # that a worker could not read (said once a batch)
            # From the end: the workers take pieces from the start. A piece a worker holds
            # already cannot be cancelled; from there on, the workers' results are awaited.
            for i in reversed(range(len(self._pieces))):
                if not self._futures[i].cancel():
                    break
                results[i] = self._here(self._pieces[i])
            for i, piece in enumerate(self._pieces):
                if results[i] is None:
                    assert self._executor is not None  # it holds the futures
                    try:
                        got = _await(self._futures[i], self._executor)
                    except Exception as e:  # a worker died: compute the piece here instead
                        self._pool.broken(e, self._executor)
                        got = self._here(piece)
                    if isinstance(got, str):  # it could not read the piece's entries
                        if not told:
                            log.warning("a feature worker could not read entries: %s", got)
                            told = True
                        got = self._here(piece)
                    results[i] = got
        found: list[Features] = []
        keys: list[tuple[int, ...]] = []
        stamps: dict[int, str] = {}
        for result in results:
            assert result is not None
            found.extend(result[0])
            keys.extend(result[1])
            stamps.update(result[2])
        if self.entries is None:
            self.stamps = stamps
            # Each piece read is in storage's order, the pieces in the order of their ids.
            ranked = sorted(
                range(len(found)), key=lambda n: (found[n].published, found[n].entry_id)
            )
            found, keys = [found[n] for n in ranked], [keys[n] for n in ranked]
        return found, keys

    def cancel(self) -> None:
        """Give up on the pieces no worker has started."""
        for future in self._futures:
            future.cancel()
        self._done()

    def _done(self) -> None:
        if self._futures:
            self._futures = []
            self._pool.finished()


class FeaturePool:
    """Computes `keyed_features` of large batches on `workers` other processes too."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._pool: ProcessPoolExecutor | None = None
        #: The name its workers' word tables go by (`aggregator.wordtables`).
        self._pool_name = ""
        self._lock = threading.Lock()
        self._jobs = 0  # jobs with pieces submitted, not yet gathered or cancelled
        self._idle: threading.Timer | None = None

    def __call__(self, entries: Sequence[Entry], settings: DedupSettings) -> Keyed:
        """`keyed_features(entries, settings)`, computed here and now.

        A batch needed at once is not shared with the workers: measured on 1,000-entry
        batches, what the second core saved (~20% of the features) was lost again to
        sending the pieces and their results between processes and to starting a worker.
        """
        return keyed_features(entries, settings)

    def computed(self, entries: Sequence[Entry], settings: DedupSettings) -> FeatureJob:
        """A job done already: the batch's features computed here and now (before waiting
        for the placing lock, which another process may hold)."""
        return FeatureJob(self, entries, settings, self(entries, settings))

    def start(self, entries: Sequence[Entry], settings: DedupSettings) -> FeatureJob:
        """Set the workers on a batch needed later (if it is large enough) and return at
        once: this process decides an earlier batch meanwhile."""
        return FeatureJob(self, entries, settings)

    def start_reading(
        self,
        ids: Sequence[int],
        settings: DedupSettings,
        remote: EntryReader,
        local: EntryReader,
    ) -> FeatureJob:
        """`start`, for stored entries the workers read themselves (`remote`, a reader
        another process can use; `local`, this process's, for the pieces it computes)."""
        return FeatureJob(self, None, settings, ids=ids, reader=(remote, local))

    def submit(
        self,
        pieces: Sequence[Sequence[Any]],
        settings: DedupSettings,
        task: Callable[..., Stamped | str],
        *before: Any,
    ) -> tuple[ProcessPoolExecutor | None, list[Future[Stamped | str]]]:
        """Each piece's `task(*before, piece, settings)` as a worker's task (none if the
        pool broke), and the pool they went to."""
        pool = self._start()
        try:
            futures = [pool.submit(task, *before, piece, settings) for piece in pieces]
        except RuntimeError as e:  # the pool broke (a worker was killed) or is shut down
            self.broken(e, pool)
            self.finished()
            return None, []
        return pool, futures

    def warm(self, settings: DedupSettings) -> None:
        """Start the workers now and have them load what they need (`warm_up`), for a
        batch expected soon."""
        if self.workers <= 0:
            return
        pool = self._start()
        try:
            pool.submit(warm_up, settings)
        except RuntimeError as e:  # the pool broke or is shut down
            self.broken(e, pool)
        self.finished()

    def finished(self) -> None:
        """A job was gathered or cancelled: with none left, the idle countdown starts."""
        with self._lock:
            self._jobs -= 1
            if self._jobs == 0 and self._pool is not None:
                self._idle = threading.Timer(IDLE_SECONDS, self._expire, (self._pool,))
                self._idle.daemon = True
                self._idle.start()

    def _stop_idle(self) -> None:
        """Cancel the idle countdown, if one runs (with `_lock` held)."""
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None

    def _expire(self, pool: ProcessPoolExecutor) -> None:
        with self._lock:
            if self._jobs or self._pool is not pool:
                return  # in use again, or replaced
            self._pool, name = None, self._pool_name
        pool.shutdown(wait=True)
        wordtables.forget(name)

    def _start(self) -> ProcessPoolExecutor:
        with self._lock:
            self._jobs += 1
            self._stop_idle()
            if self._pool is None:
                import multiprocessing
                from concurrent.futures import ProcessPoolExecutor

                self._pool_name = f"{os.getpid()}.{next(_POOLS)}"
                self._pool = ProcessPoolExecutor(
                    self.workers,
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=worker_started,
                    initargs=(os.getpid(), self._pool_name),
                )
            return self._pool

    def broken(self, error: BaseException, pool: ProcessPoolExecutor) -> None:
        """Drop `pool`, whose worker died, unless dropped already (each of its pending
        pieces fails alike); the next batch starts a new one."""
        with self._lock:
            if pool is not self._pool:
                return
            self._pool, name = None, self._pool_name
        log.warning("a feature worker failed (%s); computing in this process", _reason(error))
        _abandon(pool)
        wordtables.forget(name)

    def close(self) -> None:
        """Stop the workers (they finish the piece they hold)."""
        with self._lock:
            pool, self._pool, name = self._pool, None, self._pool_name
            self._stop_idle()
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
            wordtables.forget(name)

    def abandon(self) -> None:
        """Stop the workers at once, their pieces given up, for a process about to leave
        without waiting for its work in flight (`os._exit`: the daemon's stop after its
        grace). Features are pure: nothing is lost, the entries stay stored unplaced.

        Leaving at once skips multiprocessing's finalizers, which release the pool's queues
        (their semaphores): its resource tracker then warns of leaked semaphores. So the
        pool is ended here, and the threads that hold its queues (its manager thread, the
        call queue's feeder) given `ABANDON_SECONDS` each to end, dropping them.
        """
        with self._lock:
            pool, self._pool, name = self._pool, None, self._pool_name
            self._stop_idle()
            self.workers = 0  # a batch still being placed meanwhile starts no other pool
        if pool is None:
            return
        holders = [
            getattr(pool, "_executor_manager_thread", None),
            getattr(getattr(pool, "_call_queue", None), "_thread", None),
        ]
        _abandon(pool)
        for thread in holders:
            if thread is not None:
                thread.join(ABANDON_SECONDS)
        wordtables.forget(name)


def _reason(error: BaseException) -> str:
    """The error, with the last line of what caused it in the pool, if anything did: a
    pool's own message says only that a process ended, also when reading a result failed
    (the cause is then the traceback of the reading, as text)."""
    cause = str(error.__cause__ or "").strip().strip("'").strip()
    return f"{error} {cause.splitlines()[-1]}" if cause else str(error)


def _abandon(pool: ProcessPoolExecutor) -> None:
    """Shut a broken pool down without ever waiting on it.

    If its manager thread ended early (`_await`), nothing stops its other workers or
    drains its call queue: at exit, multiprocessing would join that queue's feeder thread
    (blocked writing to a dead worker's pipe) and the workers (waiting for work), for ever.
    """
    queue = getattr(pool, "_call_queue", None)
    if queue is not None:
        queue.cancel_join_thread()
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        process.terminate()
    pool.shutdown(wait=False, cancel_futures=True)


def _await(future: Future[_T], pool: ProcessPoolExecutor) -> _T:
    """`future.result()`, or an error if the pool can no longer deliver it.

    On Python 3.11 a worker killed while pieces were cancelled can end the pool's manager
    thread with InvalidStateError (CPython gh-107219, fixed in 3.12): the pool then never
    sets its futures, and a plain `result()` waits forever.
    """
    from concurrent.futures import TimeoutError as Pending
    from concurrent.futures.process import BrokenProcessPool

    while True:
        try:
            return future.result(timeout=AWAIT_CHECK_SECONDS)
        except Pending:
            manager = getattr(pool, "_executor_manager_thread", None)
            if manager is None or manager.is_alive():
                continue
            if not future.done():
                raise BrokenProcessPool("the feature pool's manager thread ended") from None


def batch_gc() -> tuple[int, int, int]:
    """Set the garbage collector for batches (`GC_THRESHOLDS`); returns the thresholds it
    replaced. The placing process and the feature workers set it as they start, `poll`
    while it runs (`batched_gc`).

    A batch allocates containers by the hundred thousand (word lists, vectors, rows) and
    frees nearly all of them soon after, none of them in a cycle: at the defaults the
    collector walked them every 700 allocations and the whole heap (the stories, the word
    tables, the caches) every ~70,000 (docs/speed.md, Seventeenth session). Garbage in a
    cycle (rare here) is collected later: at the next young collection, or if it outlived
    one, at the next middle or full one. The daemon's and the web server's own processes
    keep the defaults (the server's `gc.freeze` was measured with them).
    """
    previous = gc.get_threshold()
    gc.set_threshold(*GC_THRESHOLDS)
    return previous


@contextmanager
def batched_gc() -> Iterator[None]:
    """`batch_gc` while the block runs, the thresholds before it restored after."""
    previous = batch_gc()
    try:
        yield
    finally:
        gc.set_threshold(*previous)


def worker_started(parent: int, pool: str) -> None:
    """In a feature worker of the pool named `pool`: `child_started`, and its pieces' word
    table kept across them (`aggregator.wordtables`)."""
    child_started(parent)
    wordtables.serve(pool)


def child_started(parent: int) -> None:
    """In a process we start (a feature worker, the placing process): `batch_gc`,
    `watch_parent`, and its heap left to the exit (`ending`)."""
    batch_gc()
    watch_parent(parent)
    atexit.register(ending)


def ending() -> None:
    """The process is ending: leave its heap to the exit (`gc.freeze`).

    At exit the interpreter runs one last full collection over every object left: the
    imports', and a poll's stories, word tables and rows. The parent waits for its placing
    process to end, and that for its feature worker: freezing saves ~60 ms of that wait
    after a first poll of 300 feeds, and ~40 ms of a 304 pass in the command's own process
    (docs/speed.md, twentieth session). Frozen objects are left out of that collection, so
    nothing in a reference cycle is finalized at exit any more, and every SQLite
    connection is in one (its statement cache): connections and files are closed by the
    code that opened them (`Aggregator.close`, also when making one failed) or by `atexit`
    (logging's flush; `SqliteReader`'s connections), which still runs first.
    """
    gc.freeze()


def watch_parent(parent: int) -> None:
    """In a worker: exit once the process that started it is gone (killed, say).

    A worker waits on a queue whose writing end it holds itself, so it would never see
    its parent go; a thread checking the parent once a second ends it instead.
    """

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="watch-parent", daemon=True).start()
