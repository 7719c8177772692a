"""How values are stored in SQLite: times as fixed-width UTC text, statements' JSON
parameters; word vectors as every backend stores them (storage/encoding.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson

from aggregator.storage.encoding import dump_vector, load_vector

__all__ = ["db_time", "dump_vector", "from_db_time", "json_param", "load_vector", "to_db_time"]


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
