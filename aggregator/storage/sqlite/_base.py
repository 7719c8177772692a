"""The SQLite connection: opening and checking the file, transactions and reads under one
lock, and SQLite's errors translated into ours."""

from __future__ import annotations

import contextlib
import logging
import math
import os
import shutil
import sqlite3
import threading
import time
from collections.abc import Generator, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Self

from aggregator.exceptions import CorruptDatabaseError, DatabasePathError, StorageError
from aggregator.storage.lock import DaemonReport, read_report
from aggregator.storage.schema import TABLES, migrate

#: Databases up to this size are checked (PRAGMA quick_check) each time they are opened:
#: it reads every page, ~0.1 s at 60 MB. A larger one is found damaged by the first
#: statement that meets the damage ("malformed").
QUICK_CHECK_MAX = 64 << 20
#: Seconds a statement waits for another connection's write lock before "database is
#: locked".
BUSY_TIMEOUT = 30.0
#: Seconds at most between a commit and the copying of the WAL into the database file by the
#: checkpointer thread (`_Checkpointer`); the commits within are copied together.
CHECKPOINT_EVERY = 0.5
#: WAL pages past which a committing connection copies the WAL itself (SQLite's automatic
#: checkpoint; its default is 1,000): 64 MiB, reached when the checkpointer falls behind,
#: or when commits arriving all along never let the WAL start afresh (`_Checkpointer`).
CHECKPOINT_BACKSTOP = 16384
#: Seconds without a commit after which the checkpointer thread ends, emptying the WAL file
#: (the next commit starts another). Below the daemon's heartbeat (30 s): between polls the
#: WAL file is empty.
CHECKPOINT_IDLE = 10.0
#: Bytes the WAL file is cut back to when SQLite starts the WAL afresh (after a burst of
#: commits that grew it; ~what SQLite's own checkpoints every 1,000 pages leave).
WAL_FILE_LIMIT = 4 << 20
#: SQLite's result codes for a path that names no usable database: a configuration error.
_UNUSABLE = {"SQLITE_NOTADB", "SQLITE_CANTOPEN", "SQLITE_READONLY", "SQLITE_PERM"}

log = logging.getLogger("aggregator")


def _math_functions(db: sqlite3.Connection) -> None:
    """Give `db` SQL's ln() when SQLite was built without its math functions (before
    3.35, or without SQLITE_ENABLE_MATH_FUNCTIONS): search ranks stories by it
    (storage/fulltext.py)."""
    try:
        db.execute("SELECT ln(2)")
    except sqlite3.OperationalError:
        db.create_function("ln", 1, _ln, deterministic=True)


def _ln(x: float | None) -> float | None:
    """SQLite's ln(): NULL for NULL and for what has no logarithm."""
    return math.log(x) if x is not None and x > 0 else None


class SqliteBase:
    """One SQLite file (WAL mode) and one connection, shared by threads (the daemon polls
    from a pool): every transaction and every read holds a lock, so two threads'
    statements never interleave inside one transaction.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise DatabasePathError(
                f"cannot create database folder: {e}", path=str(self.path)
            ) from e
        try:
            self._busy_ms = int(BUSY_TIMEOUT * 1000)
            self._db = sqlite3.connect(
                self.path, isolation_level=None, timeout=BUSY_TIMEOUT, check_same_thread=False
            )
        except sqlite3.Error as e:
            raise self._error("cannot open database", e) from e
        try:
            self._db.row_factory = sqlite3.Row
            _math_functions(self._db)
            # One connection shared by threads (the daemon's workers): one statement or
            # transaction at a time.
            self._lock = threading.RLock()
            # One catch-up of the search index at a time (_search.index_pending).
            self._indexing = threading.Lock()
            self._wal()
            self._db.execute("PRAGMA synchronous = NORMAL")
            self._db.execute("PRAGMA foreign_keys = ON")
            # 64 MiB of page cache (default 2 MiB): deduplication reads and writes word
            # counts and story indexes spread over the file.
            self._db.execute("PRAGMA cache_size = -65536")
            self._check()
            migrate(self._db, str(self.path))
            self._db.execute(f"PRAGMA wal_autocheckpoint = {CHECKPOINT_BACKSTOP}")
            self._db.execute(f"PRAGMA journal_size_limit = {WAL_FILE_LIMIT}")
            self._checkpointer = _Checkpointer(self.path, CHECKPOINT_EVERY, CHECKPOINT_IDLE)
        except BaseException as e:
            self._db.close()
            if isinstance(e, sqlite3.Error):
                raise self._error("cannot open database", e) from e
            raise

    def _wal(self) -> None:
        """Switch to WAL mode. SQLite does not wait for the busy timeout there: two
        processes creating one database at once, the second is refused at once ("database
        is locked"); it tries again until the timeout."""
        deadline = time.monotonic() + BUSY_TIMEOUT
        while True:
            try:
                self._db.execute("PRAGMA journal_mode = WAL")
                return
            except sqlite3.OperationalError as e:
                if "locked" not in str(e) or time.monotonic() > deadline:
                    raise
            time.sleep(0.01)

    def _check(self) -> None:
        """Refuse a damaged database now, rather than part-way through a poll or a digest.

        Raises:
            CorruptDatabaseError: PRAGMA quick_check found damage.
        """
        try:
            size = self.path.stat().st_size
        except OSError:
            return
        if size > QUICK_CHECK_MAX:
            return
        problems = [row[0] for row in self._db.execute("PRAGMA quick_check(5)").fetchall()]
        if problems != ["ok"]:
            raise CorruptDatabaseError(
                _damaged("; ".join(problems), self.path), path=str(self.path)
            )

    def _error(self, doing: str, error: sqlite3.Error) -> StorageError:
        """Our error for SQLite's: damage, a path that names no database, or the rest
        (a full disk, an I/O error: operational)."""
        return storage_error(doing, error, self.path)

    def daemon_report(self) -> DaemonReport | None:
        """What the daemon running on this database reports (None: no daemon runs)."""
        return read_report(self.path)

    def close(self) -> None:
        self._checkpointer.close()
        # Under the lock: a transaction in flight in another thread finishes first.
        with self._lock:
            self._db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _transaction(self, *, wait: bool = True) -> Iterator[sqlite3.Connection]:
        """One atomic write: all of it is committed, or none of it. `wait=False`: refused at
        once ("database is locked") while another connection writes, rather than waiting
        for it up to BUSY_TIMEOUT with this handle's lock held (its other threads wait too).
        """
        with self._lock:
            try:
                if wait:
                    self._db.execute("BEGIN IMMEDIATE")
                else:
                    self._db.execute("PRAGMA busy_timeout = 0")
                    try:
                        self._db.execute("BEGIN IMMEDIATE")
                    finally:
                        self._db.execute(f"PRAGMA busy_timeout = {self._busy_ms}")
                try:
                    yield self._db
                    self._db.execute("COMMIT")
                except BaseException:
                    self._rollback()
                    raise
            except sqlite3.Error as e:
                raise self._error("database write failed", e) from e
        self._checkpointer.nudge()

    def _rollback(self) -> None:
        # A failed COMMIT (a full disk) leaves the transaction open, and SQLite rolls some
        # failures back by itself: without this check the next BEGIN would fail forever,
        # and the ROLLBACK's own error would hide the one that matters.
        if self._db.in_transaction:
            try:
                self._db.execute("ROLLBACK")
            except sqlite3.Error:
                pass

    @contextmanager
    def _snapshot(self) -> Iterator[sqlite3.Cursor]:
        """Several reads that see one state of the database (rows as plain tuples)."""
        with self._lock:
            try:
                self._db.execute("BEGIN")
                try:
                    cursor = self._db.cursor()
                    cursor.row_factory = None
                    yield cursor
                finally:
                    # A read that failed on memory or the disk may have ended the
                    # transaction itself: committing would then hide what went wrong.
                    if self._db.in_transaction:
                        self._db.execute("COMMIT")
            except sqlite3.Error as e:
                raise self._error("database read failed", e) from e

    def table_rows(self, table: str) -> tuple[list[str], Generator[tuple[Any, ...], None, None]]:
        """A table's columns and its rows as stored, read in one snapshot as they are
        iterated (for `aggregator storage migrate`; `table` is one of schema.TABLES); close
        the rows before the database if they were not read to their end.

        Raises:
            StorageError: the table cannot be read.
        """
        if table not in TABLES:
            raise ValueError(f"not a table of the schema: {table}")
        columns = [r[1] for r in self._query(f"PRAGMA table_info({table})")]

        def rows() -> Generator[tuple[Any, ...], None, None]:
            with self._snapshot() as db:
                yield from db.execute(f"SELECT {', '.join(columns)} FROM {table}")

        return columns, rows()

    def table_counts(self) -> dict[str, int]:
        """How many rows each table of schema.TABLES holds, read in one snapshot."""
        with self._snapshot() as db:
            return {t: db.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        return self._read(sql, params, sqlite3.Row)

    def _read(self, sql: str, params: Sequence[Any], row_factory: Any) -> list[Any]:
        with self._lock:
            try:
                cursor = self._db.cursor()
                cursor.row_factory = row_factory
                return cursor.execute(sql, params).fetchall()
            except sqlite3.Error as e:
                raise self._error("database read failed", e) from e


class _Checkpointer:
    """Copies the WAL into the database file in a thread of its own.

    SQLite's automatic checkpoint runs in the connection whose commit takes the WAL past
    its limit: that commit copies the pages and waits for the disk (two fsyncs), every
    1,000 pages by default (~2 s of the 100k bench's placing thread: docs/speed.md). Here a
    thread with its own connection copies what was committed, at most `every` seconds
    after a commit (``PRAGMA wal_checkpoint(PASSIVE)``: it waits for no reader or writer),
    while the writers go on. SQLite starts the WAL afresh only when a write begins after a
    checkpoint copied all of it, which commits arriving all along may never allow: the
    writers' automatic checkpoint stays, at `CHECKPOINT_BACKSTOP` pages, and then finds
    little left to copy.

    The thread starts with a commit and ends after `idle` seconds without one, emptying
    the WAL file (``TRUNCATE``) if nobody else is using it then (a process that only reads
    starts none; a storage dropped without being closed keeps none); one that cannot open
    the database waits `idle` seconds before the next commit tries again.
    """

    def __init__(self, path: Path, every: float, idle: float) -> None:
        self._path = path.absolute()  # (the working directory may change meanwhile)
        self._every = every
        self._idle = idle
        self._wake = threading.Event()  # something was committed since the last copy
        self._closed = threading.Event()
        self._start = threading.Lock()
        self._thread: threading.Thread | None = None

    def nudge(self) -> None:
        """Something was committed: copy it within `every` seconds."""
        self._wake.set()  # before looking for the thread: one ending looks at it (`_ended`)
        if self._thread is None:
            with self._start:
                if self._thread is None and not self._closed.is_set():
                    self._thread = threading.Thread(
                        target=self._run, name="aggregator-checkpoint", daemon=True
                    )
                    self._thread.start()

    def _run(self) -> None:
        try:
            # Read-write, never created: a database moved or deleted meanwhile is not
            # replaced by an empty one.
            db = sqlite3.connect(f"{self._path.as_uri()}?mode=rw", uri=True, timeout=0.1)
        except sqlite3.Error as e:  # the writers' automatic checkpoint copies it meanwhile
            log.debug("checkpointer for %s: cannot open the database: %s", self._path, e)
            self._closed.wait(self._idle)
            self._ended(force=True)
            return
        try:
            while True:
                if not self._wake.wait(self._idle):
                    # Idle: the rest copied and the WAL file emptied, unless a reader or
                    # writer is at it (the connection waits for them 0.1 s at most).
                    with contextlib.suppress(sqlite3.Error):
                        db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
                    if self._ended():
                        return
                    continue  # a commit came meanwhile
                # The commits of the next `every` seconds are copied with this one.
                if self._closed.wait(self._every):
                    return
                self._wake.clear()  # (before copying: a commit meanwhile comes again)
                try:
                    db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.Error as e:  # (a full disk): the next commit tries again
                    log.debug("checkpointer for %s: %s", self._path, e)
        finally:
            db.close()

    def _ended(self, *, force: bool = False) -> bool:
        """Whether the thread ends, idle (no commit came meanwhile) or `force`d."""
        with self._start:
            if self._wake.is_set() and not force and not self._closed.is_set():
                return False
            self._thread = None
            return True

    def close(self) -> None:
        """Stop the thread (its last commits are copied when the database is closed)."""
        self._closed.set()
        self._wake.set()
        with self._start:
            thread = self._thread
        if thread is not None:
            thread.join(timeout=BUSY_TIMEOUT)
            if thread.is_alive():
                log.warning("the checkpointer of %s did not stop within %.0f s", self._path,
                            BUSY_TIMEOUT)  # fmt: skip


_RECOVER = (
    "the database is damaged ({problem}); stop `aggregator run`, then recover what it "
    'holds: sqlite3 {path} ".recover" | sqlite3 {fixed} and point [storage] path at {fixed} '
    "(see README, Recovering a damaged database)"
)


def _damaged(problem: str, path: Path) -> str:
    fixed = path.with_name(f"{path.stem}-recovered{path.suffix or '.db'}")
    return _RECOVER.format(problem=problem, path=path, fixed=fixed)


def storage_error(doing: str, error: sqlite3.Error, path: Path) -> StorageError:
    """Translate an SQLite error: damage, a path that names no database, or the rest."""
    name = getattr(error, "sqlite_errorname", "") or ""
    if name.startswith("SQLITE_CORRUPT") or "malformed" in str(error):
        return CorruptDatabaseError(f"{doing}: {_damaged(str(error), path)}", path=str(path))
    base = "_".join(name.split("_")[:2])  # SQLITE_CANTOPEN_ISDIR: SQLITE_CANTOPEN
    if base in _UNUSABLE:
        reason = unwritable_reason(path) if base != "SQLITE_NOTADB" else None
        # SQLite's "unable to open database file" does not say why; this is the likeliest.
        because = f": {reason}" if reason else ""
        return DatabasePathError(f"{doing}: {error}{because}", path=str(path))
    if base in ("SQLITE_FULL", "SQLITE_IOERR"):
        try:
            free = shutil.disk_usage(path.parent).free
        except OSError:
            pass
        else:  # the likeliest cause, which SQLite's words don't say
            return StorageError(
                f"{doing}: {error} ({free / 2**20:,.1f} MiB free on its disk)", path=str(path)
            )
    return StorageError(f"{doing}: {error}", path=str(path))


def unwritable_reason(path: Path) -> str | None:
    """Why SQLite cannot write the database at `path`, when its folder or file says so.

    SQLite writes the database and, in WAL mode, its -wal and -shm files beside it (a
    reader too), so the folder must be writable as well as the file.

    Returns:
        E.g. "/mnt/ro is on a read-only file system", or None when nothing is found.
    """
    folder = path.parent
    try:
        if os.statvfs(folder).f_flag & os.ST_RDONLY:
            return f"{folder} is on a read-only file system"
    except OSError:
        return None
    if path.exists() and not os.access(path, os.R_OK | os.W_OK):
        return f"the file {path} is not writable by this user"
    if not os.access(folder, os.W_OK | os.X_OK):
        return (
            f"the folder {folder} is not writable by this user (SQLite writes "
            f"{path.name}-wal and {path.name}-shm beside the database)"
        )
    return None
