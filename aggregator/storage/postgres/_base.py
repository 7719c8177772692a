"""The PostgreSQL connection: connecting and migrating, transactions and reads under one
lock, writers serialised as SQLite's are, and psycopg's errors translated into ours."""

from __future__ import annotations

import logging
import math
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg.rows import dict_row
from psycopg.types.datetime import TimestamptzLoader

from aggregator.exceptions import DatabasePathError, StorageError
from aggregator.storage.base import LockName
from aggregator.storage.lock import DaemonReport, read_report
from aggregator.storage.postgres.schema import migrate

#: The transaction-scoped advisory lock every write holds: writes are serialised, as
#: SQLite's BEGIN IMMEDIATE does, so each write sees the last one whole (a claim, a batch's
#: `expected_next_id`).
WRITE_LOCK = 0x61676772_00000002
#: The session-level advisory locks `hold` takes, by name: held across a batch's placement
#: (its reads, the decision, `save_outcome`) and a daily digest's making, on a connection
#: of their own, so that a process waiting for one does not hold up its own reads and writes.
HELD_LOCKS: dict[LockName, int] = {
    "placing": 0x61676772_00000003,
    "digest": 0x61676772_00000004,
}

#: After a failed reconnect, how long calls fail at once before the next try (seconds).
RECONNECT_PAUSE = 5.0

Row = tuple[Any, ...]
Connection = psycopg.Connection[Row]
_T = TypeVar("_T")

log = logging.getLogger(__name__)


class _UtcLoader(TimestamptzLoader):
    """timestamptz read as datetimes in `datetime.UTC`, as the SQLite backend returns them
    (psycopg's own carry the session's ZoneInfo)."""

    def load(self, data: Any) -> datetime:
        return super().load(data).astimezone(UTC)


def aware(value: datetime) -> datetime:
    """`value`, refused when naive (psycopg would store it in the session's time zone)."""
    if value.tzinfo is None:
        raise ValueError("naive datetime reached storage")
    return value


def redact(url: str) -> str:
    """The URL as errors show it: without a password (after the user, or in the query,
    where libpq takes one too)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    kept = [(key, value) for key, value in query if key != "password"]
    if parts.password is None and len(kept) == len(query):
        return url
    netloc = parts.netloc
    if parts.password is not None:
        host = parts.hostname or ""
        netloc = f"{parts.username}@{host}" if parts.username else host
        if parts.port:
            netloc += f":{parts.port}"
    if len(kept) != len(query):
        parts = parts._replace(query=urlencode(kept))
    return urlunsplit(parts._replace(netloc=netloc))


class PostgresBase:
    """One connection to one PostgreSQL database, shared by threads (the daemon polls from
    a pool): every transaction and every read holds a lock, so two threads' statements
    never interleave inside one transaction.
    """

    #: Other processes may poll and place alongside (Storage.shared).
    shared = True

    def __init__(
        self, url: str, *, password: str | None = None, lock_file_of: Path | None = None
    ) -> None:
        self.url = url
        #: How errors name the store (no password).
        self.path = redact(url)
        self._lock_file_of = lock_file_of
        self._lock = threading.RLock()
        extra: dict[str, Any] = {} if password is None else {"password": password}
        self._connect_args: dict[str, Any] = dict(
            autocommit=True, options="-c TimeZone=UTC", connect_timeout=30, **extra
        )
        #: `hold`'s connections (opened on first use) and the threads' turns at them.
        self._held: dict[LockName, tuple[threading.Lock, list[Connection]]] = {
            name: (threading.Lock(), []) for name in HELD_LOCKS
        }
        self._closed = False
        self._reconnect_after = 0.0  # monotonic time before which no reconnect is tried
        try:
            self._conn = self._connect()
        except psycopg.Error as e:
            raise self._connect_error(e) from e
        try:
            migrate(self._conn, self.path)
        except BaseException as e:
            self._conn.close()
            if isinstance(e, psycopg.Error):
                raise self._error("cannot open database", e) from e
            raise

    def _connect(self) -> Connection:
        db: Connection = psycopg.connect(self.url, **self._connect_args)
        db.adapters.register_loader("timestamptz", _UtcLoader)
        return db

    @property
    def _db(self) -> Connection:
        """The connection; a new one when the last one was dropped (the server restarted,
        the network cut it), so that a daemon outlives a restart of its server."""
        if self._conn.broken and not self._closed:
            self._conn = self._reconnect()
        return self._conn

    def _reconnect(self) -> Connection:
        """A new connection for one that broke. After a failed try, calls fail at once for
        `RECONNECT_PAUSE` (a server that does not answer costs one `connect_timeout`, not one
        for every call queued behind the handle's lock)."""
        wait = self._reconnect_after - time.monotonic()
        if wait > 0:
            # Rounded up: "in 0s" would read as "now" while calls still fail at once.
            raise StorageError(
                f"not connected to PostgreSQL (the last try failed; "
                f"the next in {math.ceil(wait)}s)",
                path=self.path,
            )
        try:
            db = self._connect()
        except psycopg.Error as e:
            self._reconnect_after = time.monotonic() + RECONNECT_PAUSE
            raise StorageError(
                f"cannot connect to PostgreSQL again: {str(e).strip()}", path=self.path
            ) from e
        log.warning("%s: the connection was lost; connected again", self.path)
        return db

    def _again_if_dropped(
        self, work: Callable[[], _T], connection: Callable[[], Connection | None] | None = None
    ) -> _T:
        """`work()`; once more, on a new connection, when it failed because the connection
        it used (`connection()`, by default the handle's) had been dropped: `work` opens a
        new one for a broken one, as `_db` does. Only for work that changes nothing if it
        fails part way: a read, the start of a transaction, taking a lock. (psycopg finds a
        connection dropped while idle only when it next uses it: without this, the first
        call after a restart would fail.) `connection()` is None when `work` could not open
        one: a server that does not answer, nothing dropped."""
        try:
            return work()
        except psycopg.OperationalError:
            used = connection() if connection else self._conn
            if self._closed or used is None or not used.broken:
                raise
        return work()

    def _connect_error(self, error: psycopg.Error) -> StorageError:
        """A server that answered and refused (no such database or role, a wrong password,
        a URL it cannot parse) is a configuration error; one that did not answer, not."""
        text = str(error)
        if isinstance(error, psycopg.ProgrammingError) or any(
            words in text
            for words in ("does not exist", "authentication failed", "no password supplied")
        ):
            hint = ""
            if "database" in text and "does not exist" in text:
                hint = " (create it: createdb, or CREATE DATABASE as a role that may)"
            return DatabasePathError(f"cannot open database: {text.strip()}{hint}", path=self.path)
        return StorageError(f"cannot connect to PostgreSQL: {text.strip()}", path=self.path)

    def _error(self, doing: str, error: psycopg.Error) -> StorageError:
        """Our error for psycopg's (the server's words, and its SQLSTATE when it gave one)."""
        code = f" [{error.sqlstate}]" if error.sqlstate else ""
        return StorageError(f"{doing}: {str(error).strip()}{code}", path=self.path)

    def daemon_report(self) -> DaemonReport | None:
        """What the daemon on this config reports (its lock file, beside the SQLite path
        the config names: one daemon per config folder until pollers share a database)."""
        return read_report(self._lock_file_of) if self._lock_file_of is not None else None

    def close(self) -> None:
        # Under the lock: a transaction in flight in another thread finishes first.
        with self._lock:
            self._closed = True
            self._conn.close()
        for _turn, held in self._held.values():
            for connection in held:
                connection.close()

    @contextmanager
    def hold(self, name: LockName) -> Iterator[None]:
        """Hold the advisory lock `name` (HELD_LOCKS) for the block, across processes: on a
        connection of its own, which a process that dies closes, letting the lock go."""
        turn, held = self._held[name]

        def take() -> None:
            # Its connection idles between uses (the digest's for a day): a restart or an
            # idle cut meanwhile is found only now.
            if not held or held[0].broken:
                held.clear()  # a failed connect leaves none (the server is away)
                held.append(self._connect())
            held[0].execute("SELECT pg_advisory_lock(%s)", (HELD_LOCKS[name],))

        with turn:
            try:
                self._again_if_dropped(take, lambda: held[0] if held else None)
            except psycopg.Error as e:
                for connection in held:
                    connection.close()
                held.clear()  # a dropped connection: a new one next time
                raise self._error(f"cannot take the {name} lock", e) from e
            try:
                yield
            finally:
                try:
                    held[0].execute("SELECT pg_advisory_unlock(%s)", (HELD_LOCKS[name],))
                except psycopg.Error:
                    held[0].close()  # closing the session lets the lock go
                    held.clear()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _transaction(
        self, *, serialised: bool = True, counted: bool = True
    ) -> Iterator[Connection]:
        """One atomic write: all of it is committed, or none of it. `serialised`: under
        the write lock, and counted by `change_stamp` unless not `counted` (one that
        writes nothing: `write_barrier`); a lease is neither (pollers lease side by side,
        and a lease changes nothing a page shows)."""
        with self._lock:
            try:
                db, transaction = self._again_if_dropped(lambda: self._begin_write(serialised))
                try:
                    yield db
                    if serialised and counted:
                        db.execute("UPDATE changes SET n = n + 1")  # see change_stamp
                except BaseException:
                    if not transaction.__exit__(*sys.exc_info()):
                        raise
                else:
                    transaction.__exit__(None, None, None)
            except psycopg.Error as e:
                raise self._error("database write failed", e) from e

    def _begin_write(
        self, serialised: bool
    ) -> tuple[Connection, AbstractContextManager[psycopg.Transaction]]:
        """A transaction begun, holding the write lock (`WRITE_LOCK`) when `serialised`."""
        db = self._db
        transaction = db.transaction()
        transaction.__enter__()
        try:
            if serialised:
                db.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
        except BaseException:
            with suppress(psycopg.Error):  # a dropped connection cannot roll back
                transaction.__exit__(*sys.exc_info())
            raise
        return db, transaction

    @contextmanager
    def _snapshot(self) -> Iterator[psycopg.Cursor[Row]]:
        """Several reads that see one state of the database."""
        with self._lock:
            try:
                db = self._again_if_dropped(self._begin_snapshot)
                try:
                    yield db.cursor()
                finally:
                    db.execute("ROLLBACK")
            except psycopg.Error as e:
                raise self._error("database read failed", e) from e

    def _begin_snapshot(self) -> Connection:
        db = self._db
        db.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        return db

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """One read, rows as dicts by column name."""
        with self._lock:
            try:
                return self._again_if_dropped(lambda: self._dict_rows(sql, params))
            except psycopg.Error as e:
                raise self._error("database read failed", e) from e

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """One read, rows as tuples."""
        with self._lock:
            try:
                return self._again_if_dropped(lambda: self._db.execute(sql, params).fetchall())
            except psycopg.Error as e:
                raise self._error("database read failed", e) from e

    def _dict_rows(self, sql: str, params: Sequence[Any]) -> list[dict[str, Any]]:
        with self._db.cursor(row_factory=dict_row) as cursor:
            return cursor.execute(sql, params).fetchall()
