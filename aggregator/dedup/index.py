"""The lookup-key index of copy candidates, held in memory.

Every placed entry has ~45 lookup keys (its link, guid, title and the LSH bands of its two
signatures, `assign.entry_keys`). Stored in an SQLite B-tree, those random keys made each
commit rewrite about one page per key, and storing them cost more than all the rest of
deduplication; they are derived data, so they are now computed from the stored features
(`Storage.dedup_features`) and kept here: sorted numpy arrays (16 bytes a key, ~0.7 KiB
an entry) plus a small dictionary of the latest additions, merged in when it grows.

Stale keys (an entry edited since) only propose a candidate that the copy test rejects.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import numpy.typing as npt

#: Keys the sorted runs added since the last merge may hold before they are merged into the
#: main arrays (at least; or a quarter of the main arrays, so that merges grow further apart
#: as the index grows: each key is copied O(1) times on average).
MERGE_AT = 1 << 18
#: Runs kept apart at most (each costs a binary search per lookup); more are merged together.
MAX_RUNS = 16

_Array = npt.NDArray[np.int64]


class KeyIndex:
    """Lookup key -> the entries that have it: a sorted main level and a few sorted runs."""

    def __init__(self) -> None:
        self._runs: list[tuple[_Array, _Array]] = []  # (keys, entry ids), sorted by key
        self._main: tuple[_Array, _Array] = (np.empty(0, np.int64), np.empty(0, np.int64))
        #: The storage sequence number the index is complete up to (see `Storage`).
        self.seq = -1  # nothing loaded yet: rows migrated from before numbering have seq 0

    def __len__(self) -> int:
        return len(self._main[0]) + sum(len(keys) for keys, _ in self._runs)

    def add(self, entries: Sequence[tuple[int, Sequence[int]]]) -> None:
        """Add entries' keys: (entry id, its keys) each."""
        ids = np.fromiter((e for e, keys in entries for _ in keys), dtype=np.int64)
        keys = np.fromiter((k for _, keys in entries for k in keys), dtype=np.int64)
        if not len(keys):
            return
        order = np.argsort(keys, kind="stable")
        self._runs.append((keys[order], ids[order]))
        in_runs = len(self) - len(self._main[0])
        if in_runs >= max(MERGE_AT, len(self._main[0]) // 4):
            self._main = _merge([self._main, *self._runs])
            self._runs = []
        elif len(self._runs) > MAX_RUNS:
            self._runs = [_merge(self._runs)]

    def find(self, keys: Iterable[int]) -> dict[int, set[int]]:
        """The entries sharing one of `keys`, each with the keys it shares."""
        wanted = np.unique(np.fromiter(keys, dtype=np.int64))
        found: dict[int, set[int]] = {}
        if not len(wanted):
            return found
        for level_keys, level_ids in (self._main, *self._runs):
            lo = np.searchsorted(level_keys, wanted, side="left")
            hi = np.searchsorted(level_keys, wanted, side="right")
            hit = np.flatnonzero(hi > lo)
            for key, start, stop in zip(
                wanted[hit].tolist(), lo[hit].tolist(), hi[hit].tolist(), strict=True
            ):
                for entry_id in level_ids[start:stop].tolist():
                    found.setdefault(entry_id, set()).add(key)
        return found


def _merge(levels: Sequence[tuple[_Array, _Array]]) -> tuple[_Array, _Array]:
    keys = np.concatenate([k for k, _ in levels])
    ids = np.concatenate([i for _, i in levels])
    order = np.argsort(keys, kind="stable")  # timsort: a merge of the sorted runs
    return keys[order], ids[order]
