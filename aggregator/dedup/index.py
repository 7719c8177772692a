"""The lookup-key index of copy candidates, held in memory.

Every placed entry has ~45 lookup keys (its link, guid, title and the LSH bands of its two
signatures, `features.entry_keys`). Stored in an SQLite B-tree, those random keys made each
commit rewrite about one page per key, and storing them cost more than all the rest of
deduplication; they are derived data, so they are now computed from the stored features
(`Storage.dedup_features`) and kept here: sorted numpy arrays (16 bytes a key, ~0.7 KiB
an entry) plus a few sorted runs of the latest additions, merged in as they grow.

An entry added again (edited since) supersedes its earlier keys. They are not searched out
at once (they only propose a candidate that the copy test rejects) but dropped whenever
levels are merged, and all of them as soon as they would make up a third of the index: a
feed that rewrites its entries on every poll must not grow the index without bound.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from itertools import chain
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

#: Keys the sorted runs added since the last merge may hold before they are merged into the
#: main arrays (at least; or a quarter of the main arrays, so that merges grow further apart
#: as the index grows: each key is copied O(1) times on average).
MERGE_AT = 1 << 18
#: Runs kept apart at most (each costs a binary search per lookup); more are merged together.
MAX_RUNS = 16

#: A kept index's header (`KeyIndex.to_bytes`): magic, format version, keys, entry slots,
#: generation, live keys.
_KEPT = struct.Struct("<4sIqqqq")
_MAGIC = b"AGKI"
_VERSION = 1

_Array = npt.NDArray[np.int64]


class _Level(NamedTuple):
    """Sorted keys and their entries, added up to generation `last` (one `add` each)."""

    keys: _Array
    ids: _Array
    #: An entry's keys here are live unless it was added again after this generation: a
    #: level holds each entry's keys of one generation only (merges keep the latest).
    last: int


class KeyHits(NamedTuple):
    """Stored entries sharing lookup keys with a batch: pair n is entry `entry_ids[n]` under
    key `keys[n]` (as arrays: a dense batch has hundreds of thousands)."""

    entry_ids: _Array
    keys: _Array

    @classmethod
    def of(cls, entries: Iterable[tuple[int, Iterable[int]]]) -> KeyHits:
        """The pairs of (entry id, its keys) each."""
        ids: list[int] = []
        keys: list[int] = []
        for entry_id, its in entries:
            before = len(keys)
            keys.extend(its)
            ids.extend([entry_id] * (len(keys) - before))
        return cls(np.array(ids, dtype=np.int64), np.array(keys, dtype=np.int64))

    def without(self, entry_ids: Iterable[int]) -> KeyHits:
        """These pairs but those of `entry_ids`."""
        drop = np.fromiter(entry_ids, dtype=np.int64)
        keep = ~np.isin(self.entry_ids, drop)
        return KeyHits(self.entry_ids[keep], self.keys[keep])

    @classmethod
    def empty(cls) -> KeyHits:
        """No pairs."""
        return cls(np.empty(0, np.int64), np.empty(0, np.int64))

    def entries(self) -> list[int]:
        """The entries' ids, each once, in order."""
        ids: list[int] = distinct(np.sort(self.entry_ids)).tolist()
        return ids

    def by_entry(self) -> dict[int, set[int]]:
        """Entry id -> the keys it shares."""
        out: dict[int, set[int]] = {}
        for entry_id, key in zip(self.entry_ids.tolist(), self.keys.tolist(), strict=True):
            out.setdefault(entry_id, set()).add(key)
        return out


def _empty() -> _Level:
    return _Level(np.empty(0, np.int64), np.empty(0, np.int64), 0)


class KeyIndex:
    """Lookup key -> the entries that have it: a sorted main level and a few sorted runs."""

    def __init__(self) -> None:
        self._runs: list[_Level] = []  # oldest first
        self._main = _empty()
        #: The storage sequence number the index is complete up to (see `Storage`).
        self.seq = -1  # nothing loaded yet: rows migrated from before numbering have seq 0
        self._generation = 0  # of the latest `add`
        # By entry id (SQLite rowids: dense, so arrays rather than a dictionary, 8 bytes an
        # entry): the generation of its latest keys (0: none), and how many it has.
        self._latest = np.zeros(0, np.int32)
        self._count = np.zeros(0, np.int32)
        self._live = 0  # keys not superseded: the sum of `_count`

    def __len__(self) -> int:
        return len(self._main.keys) + sum(len(run.keys) for run in self._runs)

    def add(self, entries: Sequence[tuple[int, Sequence[int]]]) -> None:
        """Add entries' keys: (entry id, its keys) each; an entry's earlier keys lapse."""
        latest = dict(entries)  # an entry given twice: its last keys
        if not latest:
            return
        entry_ids = np.fromiter(latest, dtype=np.int64, count=len(latest))
        counts = np.fromiter(map(len, latest.values()), dtype=np.int64, count=len(latest))
        keys = np.fromiter(
            chain.from_iterable(latest.values()), dtype=np.int64, count=int(counts.sum())
        )
        self.add_arrays(entry_ids, counts, keys)

    def add_arrays(self, entry_ids: _Array, counts: _Array, keys: _Array) -> None:
        """`add`, given as arrays: the entries' ids (each once), how many keys each has,
        and their keys, each entry's together in that order (`features.index_keys`).

        Raises:
            ValueError: the counts do not add up to the keys, or an id is given twice.
        """
        if len(counts) != len(entry_ids) or int(counts.sum()) != len(keys):
            raise ValueError("each entry's count of keys must add up to the keys given")
        if not len(entry_ids):
            return
        if len(distinct(np.sort(entry_ids))) != len(entry_ids):
            raise ValueError("an entry given twice (`add` keeps its last keys)")
        self._generation += 1
        if int(entry_ids.max()) >= len(self._latest):
            size = max(int(entry_ids.max()) + 1, 2 * len(self._latest))
            self._latest = _grown(self._latest, size)
            self._count = _grown(self._count, size)
        self._live += int(counts.sum()) - int(self._count[entry_ids].sum())
        self._latest[entry_ids] = self._generation
        self._count[entry_ids] = counts
        if len(keys):
            order = stable_argsort(keys)
            ids = np.repeat(entry_ids, counts)
            self._runs.append(_Level(keys[order], ids[order], self._generation))
        in_runs = len(self) - len(self._main.keys)
        # Superseded keys at a third of the index: the full merge drops them all, and costs
        # no more per key than they took to add (each merge at least halves what is stale).
        stale = len(self) - self._live
        if in_runs >= max(MERGE_AT, len(self._main.keys) // 4) or 2 * stale > self._live:
            self._main = self._merge([self._main, *self._runs])
            self._runs = []
        elif len(self._runs) > MAX_RUNS:
            self._runs = [self._merge(self._runs)]

    def to_bytes(self) -> bytearray:
        """The index as kept (`Storage.save_key_index`): its levels merged into one without
        the superseded keys, with each entry's generation and count of keys, little-endian
        whatever the machine, written straight into one buffer (one copy of the keys in
        memory, not three). `from_bytes` reads it back."""
        level = self._main
        if self._runs or self._live != len(self):
            level = self._merge([self._main, *self._runs])
        size, slots = len(level.keys), len(self._latest)
        if size != self._live:  # (only an add cut short leaves that: `Placer` drops it)
            raise ValueError("an index whose live keys are miscounted is not kept")
        out = bytearray(_kept_length(size, slots))
        _KEPT.pack_into(out, 0, _MAGIC, _VERSION, size, slots, self._generation, self._live)
        at = _KEPT.size
        for array, dtype in (
            (level.keys, "<i8"),
            (level.ids, "<i8"),
            (self._latest, "<i4"),
            (self._count, "<i4"),
        ):
            np.frombuffer(out, dtype, len(array), at)[:] = array
            at += len(array) * np.dtype(dtype).itemsize
        return out

    @classmethod
    def from_bytes(cls, data: bytes | bytearray) -> KeyIndex:
        """An index as `to_bytes` kept it (its `seq` is the caller's to set).

        Raises:
            ValueError: `data` is not such an index (another format, cut short, or
                inconsistent): the caller builds the index afresh.
        """
        if len(data) < _KEPT.size:
            raise ValueError("too short for a kept key index")
        magic, version, size, slots, generation, live = _KEPT.unpack_from(data)
        if magic != _MAGIC or version != _VERSION:
            raise ValueError("not a kept key index of this version")
        if size < 0 or slots < 0 or len(data) != _kept_length(size, slots):
            raise ValueError("a kept key index of the wrong length")
        at = _KEPT.size
        # The keys and ids are read in place, read-only (merges make new arrays); the
        # entries' generations and counts, which `add` updates, are copied.
        view = memoryview(data).toreadonly()
        keys = np.frombuffer(view, "<i8", size, at).astype(np.int64, copy=False)
        ids = np.frombuffer(view, "<i8", size, at + 8 * size).astype(np.int64, copy=False)
        latest = np.frombuffer(data, "<i4", slots, at + 16 * size).astype(np.int32)
        count = np.frombuffer(data, "<i4", slots, at + 16 * size + 4 * slots).astype(np.int32)
        if (
            live != size
            or int(count.sum()) != live
            or (size and (int(ids.min()) < 0 or int(ids.max()) >= slots))
            or bool(np.any(keys[1:] < keys[:-1]))
            or (slots and int(latest.max()) > generation)
        ):
            raise ValueError("an inconsistent kept key index")
        index = cls()
        index._main = _Level(keys, ids, generation)
        index._generation = generation
        index._latest, index._count, index._live = latest, count, live
        return index

    def find(self, keys: Iterable[int] | _Array) -> KeyHits:
        """The entries sharing one of `keys` (any iterable, or an int64 array): the (entry,
        key) pairs, by level and key (an entry added again may have a pair in two levels)."""
        # Most keys match nothing: only the hits' ends are searched for.
        given = keys if isinstance(keys, np.ndarray) else np.fromiter(keys, dtype=np.int64)
        wanted = distinct(np.sort(given))
        if not len(wanted):
            return KeyHits.empty()
        found_ids, found_keys = [], []
        for level_keys, level_ids, _ in (self._main, *self._runs):
            if not len(level_keys):
                continue
            lo = np.searchsorted(level_keys, wanted, side="left")
            hit = np.flatnonzero(level_keys[np.minimum(lo, len(level_keys) - 1)] == wanted)
            hi = np.searchsorted(level_keys, wanted[hit], side="right")
            at = ranges(lo[hit], hi)
            found_ids.append(level_ids[at])
            found_keys.append(level_keys[at])
        if not found_ids:
            return KeyHits.empty()
        return KeyHits(np.concatenate(found_ids), np.concatenate(found_keys))

    def _merge(self, levels: Sequence[_Level]) -> _Level:
        """One level of `levels`' keys, without those superseded by a later generation;
        of equal keys, those of the earlier level first."""
        if self._live == len(self):  # nothing superseded anywhere: no level to filter
            kept = [(level.keys, level.ids) for level in levels]
        else:
            kept = [
                (level.keys[live], level.ids[live])
                for level in levels
                for live in [self._latest[level.ids] <= level.last]
            ]
        last = max(level.last for level in levels)
        kept = [level for level in kept if len(level[0])] or kept[:1]
        if len(kept) == 1:  # one level holds them all (a store's first load): as it is
            return _Level(*kept[0], last)
        first, rest = kept[0], kept[1:]
        if rest and len(first[0]) > sum(len(k) for k, _ in rest):
            # A large level and smaller ones: those sorted together, then set into it at
            # the places a binary search finds (~2x faster than sorting both again).
            keys, ids = _sorted(rest)
            return _Level(*_merged(first, (keys, ids)), last)
        return _Level(*_sorted(kept), last)


def _sorted(levels: Sequence[tuple[_Array, _Array]]) -> tuple[_Array, _Array]:
    """The levels' keys (and ids) in one sorted array, equal keys in the levels' order."""
    keys = np.concatenate([k for k, _ in levels])
    ids = np.concatenate([i for _, i in levels])
    order = np.argsort(keys, kind="stable")  # timsort: a merge of the sorted runs
    return keys[order], ids[order]


def _merged(big: tuple[_Array, _Array], small: tuple[_Array, _Array]) -> tuple[_Array, _Array]:
    """Two sorted levels as one, `small`'s keys after `big`'s equal ones."""
    at = np.searchsorted(big[0], small[0], side="right") + np.arange(len(small[0]))
    size = len(big[0]) + len(small[0])
    keys, ids = np.empty(size, np.int64), np.empty(size, np.int64)
    keys[at], ids[at] = small
    rest = np.ones(size, dtype=bool)
    rest[at] = False
    keys[rest], ids[rest] = big
    return keys, ids


def _kept_length(size: int, slots: int) -> int:
    """The bytes of a kept index of `size` keys and `slots` entries: the header, each key
    and its entry's id (8 bytes each), each entry's generation and count (4 bytes each)."""
    return _KEPT.size + 16 * size + 8 * slots


def stable_argsort(keys: _Array) -> _Array:
    """``np.argsort(keys, kind="stable")``, the same positions, faster on unordered keys
    (~4x on a batch's 45k, ~2x on a store's millions): numpy's unstable sort (SIMD where the
    CPU has it), then the positions within each run of equal keys sorted back into the
    order given, as one sort of (run, position) numbers. (On runs already sorted, as
    `_sorted` merges, the stable sort is the faster: it merges them.)"""
    if len(keys) >= 1 << 32:  # (run × n + position would overflow an int64)
        return np.argsort(keys, kind="stable")
    order = np.argsort(keys)
    ordered = keys[order]
    same = ordered[1:] == ordered[:-1]
    if same.any():
        tied = np.zeros(len(keys), dtype=bool)
        tied[1:] = same
        tied[:-1] |= same
        at = np.flatnonzero(tied)
        # Each tied place's run (counted from its first place), times the positions'
        # range, plus its position: sorted, runs stay where they are, positions ascend.
        starts = np.ones(len(at), dtype=np.int64)
        starts[1:] = ~same[at[1:] - 1]
        combined = np.cumsum(starts) * len(keys) + order[at]
        combined.sort()
        order[at] = combined % len(keys)
    return order


def distinct(ordered: _Array) -> _Array:
    """A sorted array without its repeats. By hand: np.unique (hash-based since numpy 2.3)
    took 10-14x the sort it needs anyway (45k keys)."""
    if not len(ordered):
        return ordered
    return ordered[np.concatenate(([True], ordered[1:] != ordered[:-1]))]


def ranges(begin: _Array, end: _Array) -> _Array:
    """The positions begin[n] .. end[n] - 1 of every n, one after another."""
    counts = end - begin
    total = int(counts.sum())
    if not total:
        return np.zeros(0, dtype=np.int64)
    starts = np.repeat(begin - np.cumsum(counts) + counts, counts)
    return starts + np.arange(total)


def _grown(array: npt.NDArray[np.int32], size: int) -> npt.NDArray[np.int32]:
    grown = np.zeros(size, array.dtype)
    grown[: len(array)] = array
    return grown
