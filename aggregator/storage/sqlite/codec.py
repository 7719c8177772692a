"""How values are stored in SQLite: times as fixed-width UTC text, word vectors as binary,
statements' JSON parameters."""

from __future__ import annotations

import json
import struct
import sys
from array import array
from collections.abc import Mapping
from datetime import UTC, datetime

import orjson


def to_db_time(value: datetime) -> str:
    """UTC, fixed width, so that text order is time order."""
    if value.tzinfo is None:
        raise ValueError("naive datetime reached storage")
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def from_db_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def db_time(value: str) -> datetime:
    """A stored time that cannot be NULL."""
    parsed = from_db_time(value)
    assert parsed is not None
    return parsed


def json_param(value: object, *, sort_keys: bool = False) -> str:
    """A statement's JSON parameter (read by json_each, never stored), encoded by orjson.

    Text, not orjson's bytes: SQLite takes a BLOB for JSON only from 3.45 on.
    """
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS if sort_keys else 0).decode()


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
