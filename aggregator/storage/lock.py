"""One daemon per database: an exclusive lock on `<database>.lock`, held while it runs."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import Self

from aggregator.exceptions import DaemonRunningError, StorageError


def lock_path(database: Path) -> Path:
    """The lock file that guards `database`: the same folder, `.lock` appended."""
    return database.with_name(database.name + ".lock")


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
            StorageError: the lock file cannot be created.
        """
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise StorageError(f"cannot create lock file {self.path}: {e}") from e
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
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

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


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None
