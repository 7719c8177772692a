"""One daemon per database: an exclusive lock on `<database>.lock`, held while it runs.

The lock file also carries the daemon's report to other commands: its pid, and the
storage error its writes meet (a full disk), which `status` shows. A full disk can't take
that report in the database, so the file keeps a fixed size and is rewritten in place.
"""

from __future__ import annotations

import errno
import fcntl
import os
from datetime import datetime
from pathlib import Path
from typing import NamedTuple, Self

from aggregator.exceptions import DaemonRunningError, DatabasePathError, StorageError

#: The lock file's size: written whole when the lock is taken, then rewritten in place, so
#: that a report on a full disk needs no new block.
RECORD_SIZE = 4096
_STORAGE_ERROR = "storage-error"
#: Why a lock file cannot be made that lies in its path (a read-only file system, a folder
#: this user may not write): exit 2, as a database that cannot be opened there is for
#: `poll`. The others (a full disk) are the moment's: exit 1.
_UNUSABLE_PATH = frozenset(
    {errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOENT, errno.ENOTDIR, errno.EISDIR}
    | {errno.EEXIST}  # a file where its folder should be
)


class DaemonReport(NamedTuple):
    """What the running daemon says about itself in its lock file."""

    pid: int | None
    storage_error: str | None  # its writes' last error, while they fail
    since: datetime | None  # when they started failing


def lock_path(database: Path) -> Path:
    """The lock file that guards `database`: the same folder, `.lock` appended.

    Symlinks are resolved first: two configs naming one database by different paths (one
    through a symlink to the file or a folder) must meet at one lock, or each runs a daemon.
    """
    real = database.resolve()
    return real.with_name(real.name + ".lock")


class DatabaseLock:
    """An exclusive flock(2) on the database's lock file.

    The kernel releases a flock when its process dies, however it dies (kill -9 included),
    so a crashed daemon never leaves a stale lock behind; the file itself stays, holding
    the pid of the last holder for the message a refused second daemon prints.
    """

    def __init__(self, database: Path) -> None:
        self.database = Path(database)
        self.path = lock_path(self.database)
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock, or refuse at once if another process holds it.

        Raises:
            DaemonRunningError: another process (another `aggregator run`) holds it.
            DatabasePathError: the lock file cannot be created where it must be (a
                read-only file system, a folder this user may not write).
            StorageError: the lock file cannot be created or written now (a full disk).
        """
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            error = DatabasePathError if e.errno in _UNUSABLE_PATH else StorageError
            raise error(
                f"cannot create lock file {self.path}: {e.strerror or e} (its folder must "
                "be writable)"
            ) from e
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as e:
            holder = _read_pid(fd)
            os.close(fd)
            who = f" (pid {holder})" if holder else ""
            raise DaemonRunningError(
                f"another `aggregator run`{who} is already running on this database; "
                "stop it first (one daemon per database)",
                path=str(self.database),
            ) from e
        except OSError as e:
            os.close(fd)
            raise StorageError(f"cannot lock {self.path}: {e}") from e
        # Only the holder writes: a refused process must not clobber the holder's pid.
        self._fd = fd
        try:
            self._write(None)
            os.ftruncate(fd, RECORD_SIZE)  # a lock file of earlier versions was shorter
        except OSError as e:
            self.release()
            raise StorageError(
                f"cannot write lock file {self.path}: {e}", path=str(self.database)
            ) from e

    def note_storage_error(self, error: str | None, since: datetime | None = None) -> None:
        """Report that the daemon's writes fail (`status` shows it), or with None, no longer.

        Never raises: the report is a courtesy, the daemon runs on without it.
        """
        try:
            self._write(error, since)
        except OSError:
            pass

    def _write(self, error: str | None, since: datetime | None = None) -> None:
        if self._fd is None:
            return
        text = f"{os.getpid()}\n"
        if error is not None:
            stamp = since.isoformat(timespec="seconds") if since else "-"
            text += f"{_STORAGE_ERROR} {stamp} {' '.join(error.split())}\n"
        data = text.encode("utf-8", "replace")[: RECORD_SIZE - 1]
        os.pwrite(self._fd, data.ljust(RECORD_SIZE, b" "), 0)

    def release(self) -> None:
        """Let go of the lock (closing the descriptor releases the flock)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> Self:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def read_report(database: Path) -> DaemonReport | None:
    """The running daemon's report on `database`, or None when no daemon holds it.

    Takes no lock and writes nothing: a shared lock is tried only to learn whether the
    exclusive one is held (a record left by a daemon that stopped says nothing).
    """
    try:
        fd = os.open(lock_path(Path(database)), os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            pass  # held: a daemon runs
        except OSError:
            return None
        else:
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        return _parse(os.pread(fd, RECORD_SIZE, 0))
    except OSError:
        return None
    finally:
        os.close(fd)


def _parse(data: bytes) -> DaemonReport:
    lines = data.decode("utf-8", "replace").rstrip(" ").splitlines()
    pid = int(lines[0]) if lines and lines[0].strip().isdigit() else None
    for line in lines[1:]:
        if line.startswith(_STORAGE_ERROR + " "):
            _, stamp, error = (line.split(" ", 2) + ["", ""])[:3]
            try:
                since = datetime.fromisoformat(stamp)
            except ValueError:
                since = None
            return DaemonReport(pid, error.strip(), since)
    return DaemonReport(pid, None, None)


def _read_pid(fd: int) -> int | None:
    try:
        return _parse(os.pread(fd, RECORD_SIZE, 0)).pid
    except OSError:
        return None
