"""Storage: the protocol the rest of the code relies on (base.py), its records, and its
SQLite implementation (sqlite/)."""

from aggregator.storage.base import (
    POLL_SECONDS_BUCKETS,
    AlertRecord,
    DueAlert,
    EmailDelivery,
    FeedState,
    FeedUpdate,
    Leases,
    LockName,
    PollerRecord,
    PollerState,
    SaveResult,
    SearchHit,
    SearchResults,
    Storage,
    Tallies,
)
from aggregator.storage.sqlite import SqliteStorage, open_storage

__all__ = [
    "AlertRecord",
    "DueAlert",
    "POLL_SECONDS_BUCKETS",
    "EmailDelivery",
    "FeedState",
    "FeedUpdate",
    "Leases",
    "LockName",
    "PollerRecord",
    "PollerState",
    "SaveResult",
    "SearchHit",
    "SearchResults",
    "SqliteStorage",
    "Storage",
    "Tallies",
    "open_storage",
]
