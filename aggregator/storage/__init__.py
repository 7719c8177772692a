"""Storage: the protocol the rest of the code relies on (base.py), its records, and its
SQLite implementation (sqlite/)."""

from aggregator.storage.base import (
    POLL_SECONDS_BUCKETS,
    AlertRecord,
    DigestRun,
    DueAlert,
    EmailDelivery,
    EntryRange,
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
    "DigestRun",
    "DueAlert",
    "POLL_SECONDS_BUCKETS",
    "EmailDelivery",
    "EntryRange",
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
