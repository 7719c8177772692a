"""Places stored entries in articles and stories: dedup orchestration, with its caches.

The decisions are dedup's (pure); this part reads what they need from storage, keeps
what makes the next batch cheaper (the lookup-key index, the story memo, feature jobs
started early on other cores) and records the outcome.
"""

from __future__ import annotations

import logging
import threading
import time as _time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from itertools import chain
from typing import TYPE_CHECKING

from aggregator.exceptions import CorruptDatabaseError, StorageError
from aggregator.grammar import counted
from aggregator.parallel import FeatureJob, FeaturePool, Keyed
from aggregator.parts import Part, Shared
from aggregator.types import DedupSettings, Entry

if TYPE_CHECKING:
    from aggregator.dedup.index import KeyIndex
    from aggregator.dedup.stories import StoryMemo
    from aggregator.placing import PlacingProcess

log = logging.getLogger("aggregator")

#: Entries placed per dedup transaction: bounds memory on a first poll of a large source.
ASSIGN_BATCH = 2000
#: A process keeps a copy of its lookup-key index in the store (`Placer._keep_index`) once
#: it holds this many keys (~23,000 entries; building it from them takes ~0.4 s) ...
KEEP_INDEX_KEYS = 1 << 20
#: ... and, having loaded a kept copy, once it grew by this share of it (of any size: the
#: store holds it in parts, `storage.encoding.KEPT_INDEX_PART`).
KEEP_INDEX_GROWTH = 0.1


class Placer(Part):
    """Places new and edited entries in articles and stories, in batches."""

    def __init__(
        self,
        shared: Shared,
        features: FeaturePool,
        placing: PlacingProcess | None = None,
        *,
        batch: int | None = None,
    ) -> None:
        super().__init__(shared)
        #: Entries placed per dedup transaction.
        self.batch = ASSIGN_BATCH if batch is None else batch
        #: The child process that places full batches of new entries while this process
        #: goes on fetching (`aggregator.placing`); None: every batch is placed here.
        self.placing = placing
        # Feeds stored from several threads are placed one batch at a time.
        self._assigning = threading.RLock()
        #: Edited entries handed over by `stored` (or left by a failed grouping) to place.
        self._edited: list[int] = []
        #: New entries stored by this pass and not yet set on the feature workers, and the
        #: feature jobs started for them (by their ids): a first poll's features are
        #: computed on the second core while this thread is still fetching and parsing.
        self._fresh: list[int] = []
        self._early: dict[tuple[int, ...], FeatureJob] = {}
        #: Nothing of this pass is placed before its end: the placing process failed in it.
        self._late = False
        self._index: KeyIndex | None = None
        #: What the index's keys were made under (`features.key_settings`).
        self._index_keys: str | None = None
        #: The index was made and not yet brought up to date with storage.
        self._index_fresh = False
        #: The keys of the copy of the index the store keeps (`_keep_index`): the copy this
        #: process loaded or last kept; 0: none yet, and the index was built from every
        #: stored entry (the next process would build it too); None: no copy is due (the
        #: index was built from this process's own batches).
        self._kept_from: int | None = None
        self._story_memo: StoryMemo | None = None
        #: CPU seconds of grouping, by stage (see `_stage`): this process's, and those the
        #: placing process reports.
        self.stage_seconds: dict[str, float] = {}
        #: Computes entries' dedup features, on other cores too for large batches.
        self.features = features
        #: Place in storage's placing order (`Storage.placing_order`: by publication time,
        #: feed and guid), every batch cut from all that is unplaced when `group_stored` is
        #: called, none handed over or started as stored: the daemon's way, which calls it
        #: once the store's pass is over, so that one and several pollers place the same
        #: entries in the same batches (docs/daemon.md). False: in the order stored, full
        #: batches placed as the poll goes on (`poll`).
        self.ordered = False

    def close(self) -> None:
        try:
            self._keep_index()
        finally:
            if self.placing is not None:
                self.placing.close()
            self.features.close()

    def abandon(self) -> None:
        """Stop the feature workers at once (see `FeaturePool.abandon`): this process is
        leaving without waiting for the batch it is placing, which stays unplaced."""
        self.features.abandon()

    def stored(self, new_ids: Sequence[int], updated_ids: Sequence[int]) -> None:
        """Take what a poll stored: edited entries are kept for `group_stored` (new ones are
        found again as unassigned), full batches of new ones handed to the placing process
        or set on the feature workers."""
        with self._assigning:
            self._edited.extend(updated_ids)
            if self._late or self.ordered:
                return  # placed at the pass's end
            if self.placing is not None:
                self._send(new_ids)
            else:
                self._start_early(new_ids)

    def expect(self, entries: int) -> None:
        """A pass about to store about this many new entries: if that fills a batch, the
        placing process is started (and loads what it needs) before the first one."""
        if self.placing is not None and entries >= self.batch:
            self.placing.warm(self.config, self.batch)

    def start_last(self, ids: Sequence[int]) -> None:
        """Set the feature workers on a pass's last batch (fewer entries than a batch,
        `ids` in order), to be placed after the batches before it (`place_ready`), as
        `group_stored` would place it."""
        with self._assigning:
            chunk = sorted(set(self._fresh) | set(ids))
            if self.features.workers <= 0 or not chunk or len(chunk) > self.batch:
                return
            # Edited entries, or unplaced ones a failure left, are placed with these by
            # `group_stored` (in one order by id): then it places these too, as before.
            early = {i for batch in self._early for i in batch}
            if self._edited or set(self.storage.unassigned_ids()) - early - set(chunk):
                return
            self._fresh = []
            self._early[tuple(chunk)] = self._start_job(chunk, self.config.dedup)

    def early_batches(self) -> int:
        """How many batches set on the feature workers wait to be placed (`place_ready`)."""
        return len(self._early)

    def _send(self, new_ids: Sequence[int]) -> None:
        """Hand each full batch of new entries to the placing process as soon as it is
        stored; one it cannot take stays unplaced, for `group_stored`. Called with
        `_assigning` held."""
        assert self.placing is not None
        for chunk in self._full_batches(new_ids):
            if not self.placing.send(chunk, self.config, self.batch):
                # It failed (and said why): what this pass stored is placed here at its
                # end, oldest first (as the batches it lost would have been); the next
                # pass starts another.
                self._fresh.clear()
                self._late = True
                return

    def _full_batches(self, new_ids: Sequence[int]) -> list[list[int]]:
        """The full batches new entries make, with those stored before and not yet in one
        (`_fresh`, which keeps the rest). Called with `_assigning` held."""
        fresh = self._fresh + list(new_ids)
        cut = len(fresh) - len(fresh) % self.batch
        self._fresh = fresh[cut:]
        return [fresh[i : i + self.batch] for i in range(0, cut, self.batch)]

    def place_ready(self, *, oldest: bool = False) -> int:
        """Place, oldest first, the batches of new entries whose features the workers have
        finished (`oldest`: only the oldest batch, whether they finished it or not: this
        process computes what they have not started), while a poll is still reading feeds:
        a large first poll then holds a few
        batches of entries and features, not all it stored (docs/speed.md, Memory). They are
        placed in the order they were stored, as `group_stored` would place them when no
        older entry waits unplaced (one an earlier failure left: `group_stored` places it
        after them). A storage failure is logged and left to `group_stored`.

        Returns:
            How many entries were placed.
        """
        placed = 0
        settings = self.config.dedup
        with self._assigning:
            while self._early:
                chunk, first = next(iter(self._early.items()))
                if placed if oldest else not first.done():
                    break  # the oldest placed, or the next not computed yet
                ids = list(chunk)
                job = self._early_job(ids, settings)
                try:
                    self._place_batch(ids, settings, job)
                except StorageError as e:
                    if isinstance(e, CorruptDatabaseError):
                        raise
                    log.warning("could not group entries into stories yet: %s", e)
                    break
                except BaseException:
                    self._drop_early()
                    raise
                placed += len(ids)
        return placed

    def group_stored(self) -> int:
        """Place what polls stored (new and edited entries) in articles and stories.

        Called once per `poll` pass (and after each `poll_feed`), so that a pass over many
        feeds decides in a few large batches. The placing process, if batches were handed
        to it, places them and every other new entry first. A failure is logged: the
        entries stay stored and unassigned, and the next call places them.

        Returns:
            How many entries were placed (by this process or the placing process).
        """
        with self._assigning:
            edited, self._edited = self._edited, []
            self._late = False
            try:
                placed, edited = self._flush_placing(edited)
                placed += self.assign(edited)
            except StorageError as e:
                self._edited.extend(edited)
                if isinstance(e, CorruptDatabaseError):
                    raise  # not a passing failure: every command must say so
                log.warning("could not group entries into stories: %s", e)
                return 0
        if placed:
            log.debug(
                "grouped %s into articles and stories (CPU: %s)",
                counted(placed, "entry"),
                ", ".join(f"{k} {v:.2f}s" for k, v in sorted(self.stage_seconds.items())),
            )
            # Kept at the pass's end too, not only at close: a daemon stopped without
            # closing (killed, the machine restarted) leaves a recent copy.
            self._keep_index()
        return placed

    def _flush_placing(self, edited: list[int]) -> tuple[int, list[int]]:
        """Wait for the placing process, if batches were handed to it, to place them, the
        `edited` entries and every other new one; its CPU counts in `stage_seconds`.
        Called with `_assigning` held.

        Returns:
            How many entries it placed, and the edited entries left to place here (all of
            them if it placed nothing, or failed; whatever new ones it left, `assign`
            finds unplaced).

        Raises:
            CorruptDatabaseError: it found the database damaged.
        """
        if self.placing is None or self.ordered:
            return 0, edited
        # New entries not handed over (less than a batch): the process places them too,
        # as the pass's last batch; with no edited entry to place beside them, it sets its
        # worker on them at once, while it places the batches before them.
        rest, self._fresh = ([] if edited else sorted(self._fresh)), []
        flushed = self.placing.flush(edited, rest)
        for name, seconds in flushed.stage_seconds.items():
            self.stage_seconds[name] = self.stage_seconds.get(name, 0.0) + seconds
        return flushed.placed, [] if flushed.done else edited

    def assign(self, ids: Sequence[int]) -> int:
        """Place new and edited entries, and any not yet placed, in articles and stories.

        Only these entries are decided; what they are compared with is loaded from storage
        (possible copies by lookup key, stories active around their dates), so the cost
        grows with the poll, not with the database.

        Returns:
            How many entries were placed.

        Raises:
            StorageError: reading or recording failed (nothing of that batch is recorded).
        """
        settings = self.config.dedup
        with self._assigning:
            unplaced = set(ids) | set(self.storage.unassigned_ids())
            wanted = self.storage.placing_order(unplaced) if self.ordered else sorted(unplaced)
            size = self.batch
            chunks = [wanted[i : i + size] for i in range(0, len(wanted), size)]
            # The feature workers compute the next batch while this process decides one
            # (the first one it computes itself, while they start on the second, unless
            # they were set on it as it was stored: `_start_early`).
            ahead = self._early_job(chunks[0], settings) if chunks else None
            for n, chunk in enumerate(chunks):
                job, ahead = ahead, None
                if n + 1 < len(chunks):
                    ahead = self._start_features(chunks[n + 1], settings)
                try:
                    self._place_batch(chunk, settings, job, frozenset(ids))
                except BaseException:
                    for started in (job, ahead):
                        if started is not None:
                            started.cancel()
                    self._drop_early()
                    raise
            self._drop_early()
        return len(wanted)

    def _place_batch(
        self,
        chunk: list[int],
        settings: DedupSettings,
        job: FeatureJob | None,
        edited: frozenset[int] = frozenset(),
    ) -> None:
        """Decide and record one batch (`edited`: entries of it placed before, and edited
        since, to place again).

        Raises:
            StorageError: reading or recording failed, or kept being refused.
        """
        if job is None and self.storage.shared:
            # Daemons sharing the store cut the same batches once a pass is over: those
            # another placed meanwhile are not computed again.
            chunk = self._unplaced(chunk, edited)
            if not chunk:
                return
            # The features (most of a batch's CPU) before waiting for the placing lock,
            # which another poller may hold: pollers compute side by side, decide in turn.
            job = self.features.computed(self.storage.entries_by_ids(chunk), settings)
        # A shared store's pollers decide one batch at a time, each reading what the one
        # before recorded: two copies stored at once make one article. Without the lock (a
        # `poll` beside SQLite's daemon), another process placing entries at the same time
        # makes the save refuse (the ids it allocated moved on); deciding again is cheap.
        with self.storage.hold("placing"):
            for _ in range(5):
                # Another poller, another process, or the placing process (flushed by one
                # of the daemon's threads while this batch waited) may have placed some of
                # these meanwhile (each places every entry it finds unplaced): placed again,
                # their words would be counted twice.
                chunk = self._unplaced(chunk, edited)
                if self._assign_batch(chunk, settings, job):
                    return
                job = None  # the entries are read again
        raise StorageError("entries kept changing while being grouped; try again")

    def _unplaced(self, chunk: list[int], edited: frozenset[int]) -> list[int]:
        """The entries of `chunk` still to place: those storage finds unplaced, and the
        `edited` ones (placed before, to place again)."""
        unplaced = set(self.storage.unassigned_ids(among=chunk))
        return [i for i in chunk if i in unplaced or i in edited]

    def _drop_early(self) -> None:
        """Give up the feature jobs `_start_early` started that no batch used."""
        for unused in self._early.values():
            unused.cancel()
        self._early.clear()
        self._fresh.clear()

    def _start_features(self, chunk: list[int], settings: DedupSettings) -> FeatureJob:
        job = self._early_job(chunk, settings)
        if job is not None:
            return job
        return self._start_job(chunk, settings)

    def _start_job(self, chunk: list[int], settings: DedupSettings) -> FeatureJob:
        """Set the feature workers on stored entries: where the store can be read from
        another process (SQLite), they read the entries themselves, and `_assign_batch`
        checks their stamps rather than reading them again; else they are sent them."""
        reader = self.storage.entry_reader()
        if reader is None:
            return self.features.start(self.storage.entries_by_ids(chunk), settings)
        return self.features.start_reading(chunk, settings, reader, self.storage.stamped_entries)

    def _early_job(self, chunk: list[int], settings: DedupSettings) -> FeatureJob | None:
        """The job `_start_early` started for exactly these entries and settings, if any."""
        job = self._early.pop(tuple(chunk), None)
        if job is not None and job.settings != settings:  # the config was reloaded since
            job.cancel()
            return None
        return job

    def _start_early(self, new_ids: Sequence[int]) -> None:
        """Set the feature workers on each full batch of new entries as soon as it is stored
        (`group_stored` places them in batches of these same ids, and checks that the
        entries did not change meanwhile). Called with `_assigning` held."""
        if self.features.workers <= 0:
            return
        for chunk in self._full_batches(new_ids):
            self._early[tuple(chunk)] = self._start_job(chunk, self.config.dedup)

    def _assign_batch(
        self, chunk: list[int], settings: DedupSettings, job: FeatureJob | None = None
    ) -> bool:
        import numpy as np

        from aggregator.dedup.assign import assign
        from aggregator.dedup.stories import StoryMemo, story_reach
        from aggregator.dedup.vectors import BatchTerms, weigh
        from aggregator.types import Pending

        stage = self._stage
        entries: list[Entry] | None = None
        stamps: dict[int, str] = {}
        with stage("read"):
            if job is not None and job.entries is None:  # its workers read the entries
                stamps = self.storage.entry_stamps(chunk)
            else:
                entries = self.storage.entries_by_ids(chunk)
        if not (stamps or entries):
            if job is not None:
                job.cancel()
            return True
        with stage("features"):
            found, lookup_keys = self._batch_features(chunk, entries, stamps, job, settings)
        if not found:  # (read again, if edited since: gone meanwhile)
            return True
        with stage("vectors"):
            terms = BatchTerms.of([Pending(f) for f in found])
        with stage("read"):
            # The next free id first: a batch another writer records after it makes the save
            # refused, so every read below (the key index's too) is as fresh as the id
            # (SQLite reads each apart).
            vocabulary, next_id = self.storage.vocabulary(terms.words)
        with stage("key index"):
            index = self._key_index(settings)
        with stage("read"):
            previous = self.storage.previous_placements(chunk)
            ids = [f.entry_id for f in found]
            keyed = dict(zip(ids, lookup_keys, strict=True))
            # The batch's keys as arrays, made once: searched for now, added after the save.
            key_counts = np.fromiter(map(len, lookup_keys), np.int64, len(lookup_keys))
            all_keys = np.fromiter(
                chain.from_iterable(lookup_keys), np.int64, int(key_counts.sum())
            )
            shared = index.find(all_keys).without(ids)
            known = self.storage.known_copies(shared.entries())
        batch = [
            Pending(f, *previous.get(f.entry_id, (None, None)), keys=keyed[f.entry_id])
            for f in found
        ]
        with stage("vectors"):
            terms = terms.edited(batch)
            weighed = weigh(batch, vocabulary, terms)
        window = story_reach(settings)
        with stage("read"):
            stories = self.storage.stories_near(
                set(chain.from_iterable(weighed.heads.values())),
                min(f.published for f in found) - window,
                max(f.published for f in found) + window,
                ids={k.story_id for k in known}
                | {s for s, _ in previous.values() if s is not None},
            )
        if self._story_memo is None:
            self._story_memo = StoryMemo()
        try:
            with stage("place"):
                outcome = assign(
                    batch,
                    known,
                    stories,
                    vocabulary,
                    settings,
                    next_id,
                    weighed.vectors,
                    self._story_memo,
                    lambda story: self.storage.article_count(story, excluding=chunk),
                    shared,
                    terms,
                    weighed.heads,
                    (key_counts, all_keys),
                )
        except BaseException:
            self._story_memo = StoryMemo()  # whatever it holds of the batch, start afresh
            raise
        with stage("record"):
            seq = self.storage.save_outcome(found, outcome, expected_next_id=next_id)
        if seq is None:
            return False
        if seq == index.seq + 1:  # nobody else recorded a batch meanwhile: index it now
            with stage("key index"), self._index_kept_whole():
                # (The placements' keys are the batch's: `Pending.keys`, one each.)
                index.add_arrays(np.array(ids, dtype=np.int64), key_counts, all_keys)
            index.seq = seq
        return True

    def _batch_features(
        self,
        chunk: list[int],
        entries: list[Entry] | None,
        stamps: dict[int, str],
        job: FeatureJob | None,
        settings: DedupSettings,
    ) -> Keyed:
        """The features of the batch's entries (those of `chunk` that exist: `entries`, or
        when `job`'s workers read them, those `stamps` holds): the job's, if it computed
        them from the entries as they are now, else computed here."""
        wanted = set(stamps) if entries is None else {e.id for e in entries}
        if job is not None and job.entries is not None:
            if job.entries == entries:
                return job.result()
            if [e for e in job.entries if e.id in wanted] == entries:
                return _only(job.result(), wanted)  # another poller placed some meanwhile
            job.cancel()  # the entries were edited since it started
        elif job is not None:
            found = job.result()
            assert job.stamps is not None  # gathered with the features
            # The same stamps, the same entries: what the workers read is what is stored.
            if all(job.stamps.get(i) == stamp for i, stamp in stamps.items()):
                return _only(found, wanted)
        if entries is None:  # edited since the workers read them, or read by none
            entries = self.storage.entries_by_ids(chunk)
        return self.features(entries, settings)

    @contextmanager
    def _stage(self, name: str) -> Iterator[None]:
        """Count the CPU time of this thread in the block as grouping stage `name`
        (`stage_seconds`: what bench/cluster_scale.py prints)."""
        started = _time.thread_time()
        try:
            yield
        finally:
            self.stage_seconds[name] = (
                self.stage_seconds.get(name, 0.0) + _time.thread_time() - started
            )

    def _key_index(self, settings: DedupSettings) -> KeyIndex:
        """The in-memory lookup-key index, brought up to date with storage.

        Made on first use from the store's kept copy (`Storage.kept_key_index`), else from
        the stored features; then extended with what this and other processes record (the
        batches numbered after its `seq`); made again when the settings that shape the keys
        change.
        """
        from aggregator.dedup.features import index_keys, key_settings

        fingerprint = key_settings(settings)
        if self._index is None or self._index_keys != fingerprint:
            self._index, self._index_keys = self._kept_index(fingerprint), fingerprint
            self._index_fresh = True
        index = self._index
        stored, seq = self.storage.dedup_features(index.seq)
        if stored:
            with self._index_kept_whole():
                index.add_arrays(*index_keys(stored, settings))
        index.seq = seq
        if self._index_fresh and self._kept_from is None and len(index) >= KEEP_INDEX_KEYS:
            self._kept_from = 0  # built from the store: worth keeping
        self._index_fresh = False
        return index

    @contextmanager
    def _index_kept_whole(self) -> Iterator[None]:
        """Adding to the index: one that fails midway (memory) is dropped, made afresh on
        next use, rather than used or kept with half a batch in it."""
        try:
            yield
        except BaseException:
            self._index, self._index_keys = None, None
            raise

    def _kept_index(self, fingerprint: str) -> KeyIndex:
        """The store's kept copy of the index made under `fingerprint`, if it has a readable
        one; else an empty index."""
        from aggregator.dedup.index import KeyIndex

        self._kept_from = None
        try:
            kept = self.storage.kept_key_index(fingerprint)
        except CorruptDatabaseError:
            raise
        except StorageError as e:  # (a copy PostgreSQL cannot send, say): a cache, built again
            log.warning("the kept index of lookup keys cannot be read (%s): built again", e)
            return KeyIndex()
        if kept is None:
            return KeyIndex()
        seq, data = kept
        try:
            index = KeyIndex.from_bytes(data)
        except ValueError as e:
            log.warning("the kept index of lookup keys is unreadable (%s): built again", e)
            return KeyIndex()
        index.seq = seq
        self._kept_from = len(index)
        return index

    def _keep_index(self) -> None:
        """Keep a copy of the index in the store for the next process that places, when
        this one built it from every stored entry (and the next would too), or extended
        the kept copy by `KEEP_INDEX_GROWTH` since.

        Called at the end of a pass that placed entries, and by `close`, which must go on
        closing: a failure is only logged (the next process builds the index again), and a
        batch being placed meanwhile by another thread (a daemon stopped mid-pass) skips it.
        """
        index, fingerprint = self._index, self._index_keys
        if index is None or fingerprint is None or index.seq < 0 or len(index) < KEEP_INDEX_KEYS:
            return  # (a process that placed nothing imports nothing of dedup/ here)
        kept = self._kept_from
        if kept is None or len(index) < kept * (1 + KEEP_INDEX_GROWTH):
            return
        if not self._assigning.acquire(blocking=False):
            return
        try:
            self.storage.save_key_index(index.seq, fingerprint, index.to_bytes())
        except Exception as e:  # (a cache: the close goes on, see above)
            # Info, not a warning: another process writing at that moment is enough.
            log.info("could not keep the index of lookup keys (built again next time): %s", e)
            return
        finally:
            self._assigning.release()
        self._kept_from = len(index)


def _only(keyed: Keyed, wanted: set[int]) -> Keyed:
    """The features (and keys) of the `wanted` entries among `keyed`'s."""
    found, keys = keyed
    if len(found) == len(wanted) and all(f.entry_id in wanted for f in found):
        return keyed
    kept = [(f, k) for f, k in zip(found, keys, strict=True) if f.entry_id in wanted]
    return [f for f, _ in kept], [k for _, k in kept]
