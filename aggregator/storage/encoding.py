"""What every backend stores alike: whether an item is the stored entry of its guid, an
entry's content fingerprint and word vectors' binary form (the same bytes in SQLite and
PostgreSQL, so a copied database compares), and which entries a range of times holds."""

from __future__ import annotations

import hashlib
import json
import struct
import sys
from array import array
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any, Generic, TypeVar

from aggregator.storage.base import EntryRange
from aggregator.types import EntryData

#: Titles sharing less than this share of the shorter one's character pairs tell of
#: other things (edited headlines of one story keep most of them; a rewrite of breaking
#: news may not, which is why the dates must differ too).
_REISSUED_TITLES = 0.5


def reissued(stored: tuple[str, str | None, datetime | None], entry: EntryData) -> bool:
    """Whether `entry` is another item than the stored entry of its guid (`stored`: its
    title, link and the date its feed gave), rather than an edit of it: a feed that
    numbers its items by position, or a CMS that reuses ids, gives a guid seen in an
    earlier poll to a new item. Taken as another item when both links are known and
    differ, both dates are known and differ (an edit keeps its publication date), and the
    titles share less than half of the shorter one's character pairs; an edit otherwise,
    as before (the stored entry is updated in place)."""
    title, link, published = stored
    if not link or not entry.link or link.strip() == entry.link.strip():
        return False
    if published is None or entry.published is None or published == entry.published:
        return False
    before, after = _pairs(title), _pairs(entry.title)
    if not before or not after:
        return False
    return len(before & after) < _REISSUED_TITLES * min(len(before), len(after))


def _pairs(title: str) -> set[str]:
    """A title's character pairs, case and spacing aside (any script: no words needed)."""
    text = " ".join(title.casefold().split())
    return {text[i : i + 2] for i in range(len(text) - 1)}


#: A stored entry as a backend's `store_entries` reads it: its id and content fingerprint
#: first, then what the backend needs to update it.
Stored = TypeVar("Stored", bound=tuple[Any, ...])


class FeedItems(Generic[Stored]):
    """A feed's stored entries, as a poll matches its items to them (both backends'
    `store_entries`): by guid; an item whose guid is new, or whose guid a stored entry of
    another item has (`reissued`), by its content, the very item stored under another
    guid (a feed that changes an item's guid on every poll, or numbers its items by
    position; an item with a link: without one, its guid alone tells it from another of
    the same text); a reissued item found by neither, under its link. Items of one link
    and title with other texts (a live blog's updates) stay entries of their own.

    `known`: the feed's stored entries by guid (id and content fingerprint first, as
    `Stored`); `row` reads one stored entry's title, link and the date its feed gave (None:
    undated) by its id, for an item whose content changed under its guid.
    """

    def __init__(
        self,
        known: Mapping[str, Stored],
        row: Callable[[int], tuple[str, str | None, datetime | None]],
    ) -> None:
        self._known = known
        self._row = row
        self._by_content: dict[str, str] | None = None

    def changed(
        self, entries: Iterable[EntryData]
    ) -> Iterator[tuple[EntryData, str, Stored | None]]:
        """The items to store: each new or changed one under the guid it is stored under,
        with its content fingerprint and the stored entry it updates (None: a new one).
        A guid listed twice is taken once, the first (so is an item matched to another's)."""
        seen: set[str] = set()
        known = self._known
        for entry in entries:
            if entry.guid in seen:  # a feed listing one guid twice: the first wins
                continue
            seen.add(entry.guid)
            fingerprint = content_hash(entry)
            old = known.get(entry.guid)
            if old is None or old[1] != fingerprint:
                guid = self._guid_for(entry, fingerprint, old)
                if guid != entry.guid:
                    if guid in seen:
                        continue
                    seen.add(guid)
                    entry, old = replace(entry, guid=guid), known.get(guid)
            if old is None or old[1] != fingerprint:
                yield entry, fingerprint, old

    def _guid_for(self, entry: EntryData, fingerprint: str, old: Stored | None) -> str:
        """The guid `entry` (of content `fingerprint`; `old`: the stored entry of its guid,
        with other content) is stored under: its own, or that of the entry it is, or its
        link."""
        if old is not None and not reissued(self._row(old[0]), entry):
            return entry.guid  # an edit
        if entry.link:
            if self._by_content is None:
                self._by_content = {}
                for guid, held in self._known.items():
                    self._by_content.setdefault(held[1], guid)
            same = self._by_content.get(fingerprint)
            if same is not None:
                return same
        if old is not None:  # another item, never stored: under its link (found again)
            assert entry.link  # (`reissued` requires one)
            return entry.link.strip()
        return entry.guid


def content_hash(entry: EntryData) -> str:
    """A fingerprint of what a reader sees; an edit changes it, a re-poll does not."""
    # Each part and a NUL after it, encoded and hashed in one call (the same bytes as an
    # update a part: stored fingerprints still match).
    parts = (
        entry.title,
        entry.link or "",
        entry.published.isoformat() if entry.published else "",
        entry.author or "",
        entry.summary,
        entry.text,
        entry.language or "",
        "",
    )
    return hashlib.sha256("\x00".join(parts).encode("utf-8", "surrogatepass")).hexdigest()


#: An entry's id, then what its stamp is made of (`Storage.entry_stamps`): both backends
#: select it so, adding the ids they want (`WHERE e.id ...`).
STAMP_SELECT = (
    "SELECT e.id, e.content_hash, e.feed_url, f.name, e.published, e.dated "
    "FROM entries e JOIN feeds f ON f.url = e.feed_url"
)


def range_where(part: EntryRange, mark: str) -> tuple[str, list[datetime]]:
    """The WHERE clause of the entries in `part`, with `mark` the backend's placeholder,
    and the times its placeholders stand for, in order (for the backend to convert)."""
    where = [f"published >= {mark}", f"published < {mark}"]
    times = [part.published_since, part.published_before]
    for bound, value in ((">=", part.seen_since), ("<", part.seen_before)):
        if value is not None:
            where.append(f"first_seen {bound} {mark}")
            times.append(value)
    return " AND ".join(where), times


def stamps(rows: Iterable[Sequence[Any]]) -> dict[int, str]:
    """Each row's stamp (rows of `STAMP_SELECT`), by entry id. Compared only with stamps
    the same backend made (how a time reads differs between them)."""
    return {row[0]: "\x00".join(map(str, row[1:])) for row in rows}


def dump_vector(vector: Mapping[str, float] | None) -> bytes | None:
    """A word vector as stored: its size, float32 weights, then the words (UTF-8, \\x1f-separated).

    JSON was the first format (still read): encoding floats as text cost ~80 us a vector.
    A finite weight beyond float32's range (~3.4e38) raises OverflowError; TF-IDF weights
    and centroids (at most a story's size) never come near it.
    """
    if vector is None:
        return None
    # One struct.pack ("<": little-endian whatever the machine) instead of an array, its
    # byte swap and two concatenations: faster (docs/speed.md, Storage).
    size = len(vector)
    words = "\x1f".join(vector).encode("utf-8", "surrogatepass")
    return struct.pack(f"<I{size}f", size, *vector.values()) + words


def load_vector(value: bytes | str | None) -> dict[str, float] | None:
    """A stored word vector (`dump_vector`'s format, or the JSON text of earlier versions)."""
    if value is None:
        return None
    if isinstance(value, str):
        loaded: dict[str, float] = json.loads(value)
        return loaded
    size = int.from_bytes(value[:4], "little")
    if not size:
        return {}
    weights = array("f")
    weights.frombytes(value[4 : 4 + 4 * size])
    if sys.byteorder != "little":
        weights.byteswap()
    words = value[4 + 4 * size :].decode("utf-8", "surrogatepass").split("\x1f")
    return dict(zip(words, weights.tolist(), strict=True))


#: The bytes of a kept key index one row holds (`dedup_index`, then `dedup_index_parts`):
#: either backend holds ~1 GB at most in one value (a store of ~1.4 million entries' index),
#: and PostgreSQL sends a value read as text (hex) at twice its size, past 1 GB not at all.
KEPT_INDEX_PART = 1 << 28


def index_parts(data: bytes | bytearray) -> list[memoryview]:
    """A kept key index cut into the rows that hold it (`KEPT_INDEX_PART` bytes each, the
    last one shorter; one row, empty, for no bytes), as views: no copy of the bytes."""
    view = memoryview(data)
    size = KEPT_INDEX_PART
    return [view[at : at + size] for at in range(0, max(len(view), 1), size)]
