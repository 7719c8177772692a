"""Filling a new PostgreSQL database with another store's rows (`aggregator storage
migrate`), in one transaction, and the counts that verify it."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from typing import Any

import psycopg

from aggregator.exceptions import StorageError
from aggregator.storage.encoding import dump_vector, load_vector
from aggregator.storage.postgres._base import Connection, PostgresBase, Row
from aggregator.storage.postgres._fulltext import index_all
from aggregator.storage.schema import TABLES

#: Word vectors: SQLite's earliest rows hold them as JSON text, bytea wants the binary form.
_VECTORS = {"vector", "centroid"}
#: A guid past this many UTF-8 bytes is kept as its SHA-1 (`sources.entries.MAX_GUID_BYTES`,
#: the same rule): PostgreSQL's index of (feed, guid) holds rows of at most 2,704 bytes.
MAX_GUID_BYTES = 1_500
#: Tables whose ids come from an identity column: continued after the copied ids.
_IDENTITIES = ("entries", "polls", "alerts")


class CopyMixin(PostgresBase):
    """`copy_in` and `table_counts`."""

    def table_counts(self) -> dict[str, int]:
        """How many rows each table of schema.TABLES holds, read in one snapshot."""
        with self._snapshot() as db:
            return _counts(db)

    def copy_in(self, tables: Iterable[tuple[str, list[str], Iterable[tuple[Any, ...]]]]) -> None:
        """Fill this database, which must hold nothing yet, with `tables` (name, columns,
        rows as another backend stores them: times as ISO text, flags as 0/1), in one
        transaction: all of it or nothing.

        Raises:
            StorageError: the database already holds feeds, entries or anything else a
                command writes (nothing is copied), or the copy failed.
        """
        with self._transaction() as db:
            held = {
                table: count
                for table, count in _counts(db).items()
                if count and table != "dedup_meta"
            }
            if held:
                listed = ", ".join(f"{table}: {count}" for table, count in held.items())
                raise StorageError(
                    f"the target database is not empty ({listed}); copy into a new one",
                    path=self.path,
                )
            db.execute("DELETE FROM dedup_meta")  # the new database's counters: replaced
            for table, columns, rows in tables:
                if table not in TABLES:
                    raise ValueError(f"not a table of the schema: {table}")
                names = ", ".join(columns)
                with db.cursor().copy(f"COPY {table} ({names}) FROM STDIN") as copy:
                    for row in _converted(table, columns, rows):
                        copy.write_row(row)
            index_all(db)  # the search index is made from the entries, not copied
            for table in _IDENTITIES:
                db.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                    f"coalesce(max(id), 0) + 1, false) FROM {table}"
                )


def _counts(db: Connection | psycopg.Cursor[Row]) -> dict[str, int]:
    counts = {}
    for table in TABLES:
        row = db.execute(f"SELECT count(*) FROM {table}").fetchone()
        counts[table] = int(row[0]) if row else 0
    return counts


def _converted(
    table: str, columns: list[str], rows: Iterable[tuple[Any, ...]]
) -> Iterator[tuple[Any, ...]]:
    vectors = [i for i, c in enumerate(columns) if c in _VECTORS]
    guid = columns.index("guid") if table == "entries" else None
    for row in rows:
        if any(isinstance(v, str) and "\x00" in v for v in row):
            # PostgreSQL's text holds no NUL, which SQLite kept from polls before
            # `sources.entries.storable` took it out of what is stored: dropped, as now.
            row = tuple(v.replace("\x00", "") if isinstance(v, str) else v for v in row)
        if guid is not None and len(row[guid].encode("utf-8")) > MAX_GUID_BYTES:
            # Past what PostgreSQL indexes, which SQLite kept from polls before
            # `sources.entries.bounded` hashed such guids: hashed as it hashes them now.
            values = list(row)
            values[guid] = "sha1:" + hashlib.sha1(row[guid].encode("utf-8")).hexdigest()
            row = tuple(values)
        if vectors and any(isinstance(row[i], str) for i in vectors):
            values = list(row)
            for i in vectors:
                if isinstance(values[i], str):
                    values[i] = dump_vector(load_vector(values[i]))
            row = tuple(values)
        yield row
