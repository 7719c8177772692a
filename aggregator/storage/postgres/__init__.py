"""The PostgreSQL implementation of `Storage` (psycopg 3), one module per domain as in
storage/sqlite/; the only package that imports psycopg.

  _base.py        the connection: connecting, migrating, transactions, psycopg's errors as ours
  _feeds.py       feeds and their polls
  _entries.py     entries: a poll's entries written, entries read back
  _deliveries.py  email deliveries and daily digest runs
  _pollers.py     the pollers sharing the store (their heartbeats) and their leases
  _alerts.py      watches' alerts and the dedup batches evaluated
  _search.py      full-text search, a story's entries, recent errors, counts, change stamp
  _fulltext.py    an entry as a tsvector, a reader's query as a tsquery (FTS5's rules)
  _dedup.py       deduplication's persistence
  _copy.py        filling a new database from another store (`aggregator storage migrate`)
  schema.py       storage/schema.py's migrations translated, one for one
"""

from __future__ import annotations

from pathlib import Path

from aggregator.storage.base import Storage
from aggregator.storage.postgres._alerts import AlertsMixin
from aggregator.storage.postgres._base import redact
from aggregator.storage.postgres._copy import CopyMixin
from aggregator.storage.postgres._dedup import DedupMixin
from aggregator.storage.postgres._deliveries import DeliveriesMixin
from aggregator.storage.postgres._entries import EntriesMixin
from aggregator.storage.postgres._feeds import FeedsMixin
from aggregator.storage.postgres._pollers import PollersMixin
from aggregator.storage.postgres._search import SearchMixin

__all__ = ["PostgresStorage", "open_postgres", "redact"]


class PostgresStorage(
    FeedsMixin,
    AlertsMixin,
    SearchMixin,
    EntriesMixin,
    DeliveriesMixin,
    DedupMixin,
    PollersMixin,
    CopyMixin,
):
    """Feeds, entries and poll records in one PostgreSQL database.

    One connection, shared by threads: every transaction and every read holds a lock, so
    two threads' statements never interleave inside one transaction; writes also hold a
    database-wide advisory lock, so writers in other processes are serialised as SQLite's.
    """


def open_postgres(
    url: str, *, password: str | None = None, lock_file_of: Path | None = None
) -> PostgresStorage:
    """Connect to the PostgreSQL database at `url` (postgresql://user@host:port/dbname),
    creating its tables or upgrading them as needed.

    Args:
        url: The database's URL (a password in it is used, but never shown).
        password: The password, when not in the URL (`[storage] password_env`).
        lock_file_of: The path whose daemon lock file `daemon_report` reads.

    Raises:
        DatabasePathError: the server refused: no such database or role, a wrong password.
        StorageError: the server cannot be reached, or the tables cannot be made.
        SchemaVersionError: the database was written by a newer aggregator.
    """
    return PostgresStorage(url, password=password, lock_file_of=lock_file_of)


# mypy checks here that PostgresStorage implements the protocol.
_IMPLEMENTS: type[Storage] = PostgresStorage
