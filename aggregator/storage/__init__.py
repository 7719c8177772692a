"""Storage: the protocol the rest of the code relies on, and its SQLite implementation."""

from aggregator.storage.sqlite import (
    EmailDelivery,
    FeedState,
    FeedUpdate,
    SaveResult,
    SqliteStorage,
    open_storage,
)

__all__ = [
    "EmailDelivery",
    "FeedState",
    "FeedUpdate",
    "SaveResult",
    "SqliteStorage",
    "open_storage",
]
