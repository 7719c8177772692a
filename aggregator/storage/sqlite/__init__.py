"""The SQLite implementation of `Storage`, one module per domain; the only package that
imports sqlite3.

  _base.py        the connection: opening, checks, transactions, SQLite's errors as ours
  _feeds.py       feeds and their polls
  _entries.py     entries: a poll's entries written, entries read back
  _deliveries.py  email deliveries and daily digest runs
  _pollers.py     the pollers sharing the store (their heartbeats) and their leases
  _alerts.py      watches' alerts and the dedup batches evaluated for them
  _dedup.py       deduplication's persistence and its caches
  _search.py      full-text search, a story's entries, the counts /metrics shows
  codec.py        times, word vectors and JSON parameters as stored
"""

from __future__ import annotations

from pathlib import Path

from aggregator.storage.base import Storage
from aggregator.storage.encoding import content_hash
from aggregator.storage.sqlite._alerts import AlertsMixin
from aggregator.storage.sqlite._base import storage_error, unwritable_reason
from aggregator.storage.sqlite._dedup import DedupMixin
from aggregator.storage.sqlite._deliveries import DeliveriesMixin
from aggregator.storage.sqlite._entries import EntriesMixin
from aggregator.storage.sqlite._feeds import FeedsMixin
from aggregator.storage.sqlite._pollers import PollersMixin
from aggregator.storage.sqlite._search import SearchMixin
from aggregator.storage.sqlite.codec import from_db_time, to_db_time

__all__ = [
    "SqliteStorage",
    "content_hash",
    "from_db_time",
    "open_storage",
    "storage_error",
    "to_db_time",
    "unwritable_reason",
]


class SqliteStorage(
    FeedsMixin, AlertsMixin, SearchMixin, EntriesMixin, DeliveriesMixin, DedupMixin, PollersMixin
):
    """Feeds, entries and poll records in one SQLite file (WAL mode).

    One connection, shared by threads (the daemon polls from a pool): every transaction and
    every read holds a lock, so two threads' statements never interleave inside one
    transaction.
    """


def open_storage(path: Path) -> SqliteStorage:
    """Open (creating and migrating as needed) the SQLite database at `path`.

    Raises:
        StorageError: it cannot be opened or created.
        SchemaVersionError: it was written by a newer aggregator.
    """
    return SqliteStorage(path)


# mypy checks here that SqliteStorage implements the protocol.
_IMPLEMENTS: type[Storage] = SqliteStorage
