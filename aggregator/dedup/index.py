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

#: Keys the dictionary of recent additions holds before they are merged into the arrays
#: (at least; or a quarter of the arrays, so that merges grow further apart).
MERGE_AT = 1 << 18


class KeyIndex:
    """Lookup key -> the entries that have it."""

    def __init__(self) -> None:
        self._keys: npt.NDArray[np.int64] = np.empty(0, dtype=np.int64)
        self._ids: npt.NDArray[np.int64] = np.empty(0, dtype=np.int64)
        self._recent: dict[int, list[int]] = {}
        self._recent_size = 0
        #: The storage sequence number the index is complete up to (see `Storage`).
        self.seq = 0

    def __len__(self) -> int:
        return len(self._keys) + self._recent_size

    def add(self, entry_id: int, keys: Iterable[int]) -> None:
        for key in keys:
            self._recent.setdefault(key, []).append(entry_id)
            self._recent_size += 1
        if self._recent_size >= max(MERGE_AT, len(self._keys) // 4):
            self._merge()

    def add_many(self, entries: Sequence[tuple[int, Sequence[int]]]) -> None:
        """Add many entries' keys at once (loading from storage)."""
        ids = np.fromiter((e for e, keys in entries for _ in keys), dtype=np.int64)
        keys = np.fromiter((k for _, keys in entries for k in keys), dtype=np.int64)
        self._merge(keys, ids)

    def _merge(
        self,
        keys: npt.NDArray[np.int64] | None = None,
        ids: npt.NDArray[np.int64] | None = None,
    ) -> None:
        parts_k, parts_i = [self._keys], [self._ids]
        if self._recent:
            parts_k.append(
                np.fromiter((k for k, e in self._recent.items() for _ in e), dtype=np.int64)
            )
            parts_i.append(np.fromiter((i for e in self._recent.values() for i in e), np.int64))
        if keys is not None and ids is not None:
            parts_k.append(keys)
            parts_i.append(ids)
        all_keys, all_ids = np.concatenate(parts_k), np.concatenate(parts_i)
        order = np.argsort(all_keys, kind="stable")  # a merge of sorted runs
        self._keys, self._ids = all_keys[order], all_ids[order]
        self._recent, self._recent_size = {}, 0

    def find(self, keys: Iterable[int]) -> dict[int, set[int]]:
        """The entries sharing one of `keys`, each with the keys it shares."""
        wanted = np.unique(np.fromiter(keys, dtype=np.int64))
        found: dict[int, set[int]] = {}
        if len(self._keys) and len(wanted):
            lo = np.searchsorted(self._keys, wanted, side="left")
            hi = np.searchsorted(self._keys, wanted, side="right")
            hit = np.flatnonzero(hi > lo)
            for key, start, stop in zip(
                wanted[hit].tolist(), lo[hit].tolist(), hi[hit].tolist(), strict=True
            ):
                for entry_id in self._ids[start:stop].tolist():
                    found.setdefault(entry_id, set()).add(key)
        if self._recent:
            for key in wanted.tolist():
                for entry_id in self._recent.get(key, ()):
                    found.setdefault(entry_id, set()).add(key)
        return found
