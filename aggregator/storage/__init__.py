"""Storage: the protocol the rest of the code relies on (base.py), its records, and its
SQLite implementation (sqlite/)."""

from aggregator.storage.base import (
    AlertRecord,
    DueAlert,
    EmailDelivery,
    FeedState,
    FeedUpdate,
    SaveResult,
    Storage,
)
from aggregator.storage.sqlite import SqliteStorage, open_storage

__all__ = [
    "AlertRecord",
    "DueAlert",
    "EmailDelivery",
    "FeedState",
    "FeedUpdate",
    "SaveResult",
    "SqliteStorage",
    "Storage",
    "open_storage",
]
