"""A large poll's placing done on another core, by a child process, while this one fetches.

In one process a first poll's grouping (placing each batch in articles and stories) shares
the interpreter lock with fetching, parsing and storing, and took ~60% of it: the poll
waited for one core while the other computed features and idled. The child opens the
same database and keeps its own `Placer` (key index, story memo, its own feature worker);
this process hands it each full batch of new entries as soon as it is stored, the child
places them in the order received, and `flush` hands it the pass's edited entries and
waits for it to place them, every batch and what else is unplaced. The batches and their
order are those this process would place, so the articles and stories are the same.

Nothing is lost when the child fails (killed, its database refuses, a bug): what it did
not record stays unplaced in storage, this process places it as before, and the next
batch starts another child. A damaged database (`CorruptDatabaseError`) is raised here
too, as every command must say so. The child is started (``spawn``) on the first full
batch, ends after `IDLE_SECONDS` without one, with `close`, or within a second of this
process being killed.
"""

from __future__ import annotations

import atexit
import logging
import os
import signal
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aggregator.exceptions import CorruptDatabaseError

if TYPE_CHECKING:
    from multiprocessing.connection import Connection
    from multiprocessing.process import BaseProcess

    from aggregator.config import Config

log = logging.getLogger("aggregator")

#: Seconds without a batch after which the child ends (as the feature workers do).
IDLE_SECONDS = 300.0
#: How often a wait for the child checks that it is still alive.
ALIVE_CHECK_SECONDS = 1.0
#: Seconds `close` waits for the child to end before killing it.
STOP_SECONDS = 10.0


@dataclass
class Flushed:
    """What the child did since the last flush: entries placed, CPU seconds by stage, and
    whether it did the flush (placed the edited entries handed with it)."""

    placed: int = 0
    stage_seconds: dict[str, float] = field(default_factory=dict)
    done: bool = False


def _settings(config: Config) -> tuple[object, ...]:
    """What of the config the child uses: a reload that changes none of it keeps it."""
    return (
        config.dedup,
        config.storage_path,
        config.storage_url,
        config.storage_password_env,
    )


class PlacingProcess:
    """The child that places a poll's full batches (see the module's docstring)."""

    def __init__(self, workers: int) -> None:
        #: Feature workers of the child's own (it computes the next batch's features while
        #: placing one, as this process's `Placer` would).
        self.workers = workers
        self._lock = threading.Lock()
        self._child: BaseProcess | None = None
        self._conn: Connection | None = None
        self._settings: tuple[object, ...] = ()
        self._batch = 0
        self._sent = 0  # batches sent since the last flush
        self._idle: threading.Timer | None = None
        self._exit_hooked = False

    @property
    def pid(self) -> int | None:
        """The child's process id, while one runs."""
        with self._lock:
            return self._child.pid if self._child is not None else None

    def send(self, ids: Sequence[int], config: Config, batch: int) -> bool:
        """Hand the child one batch to place (starting it if none runs, or restarting it
        if the config was reloaded); False if it cannot take it (this process places it).
        """
        with self._lock:
            if not self._post_locked(("batch", list(ids)), config, batch):
                return False
            self._sent += 1
            return True

    def warm(self, config: Config, batch: int) -> None:
        """Start the child ahead of a pass expected to hand it batches, and have it (and its
        feature workers) load what placing needs while this process starts fetching: the
        first batch then waits for none of it (~0.3 s of CPU each, on a core otherwise idle;
        the first Chinese text loads ~0.2 s more: `parallel.warm_up`).
        """
        with self._lock:
            self._post_locked(("warm",), config, batch)

    def flush(self, edited: Sequence[int] = (), last: Sequence[int] = ()) -> Flushed:
        """Wait until the child has placed every batch sent, the `edited` entries (placed
        before, changed since) and what else it finds unplaced (`last`: the pass's new
        entries short of a batch, which it places after the batches sent).

        Returns:
            What it did (nothing if no batch was sent since the last flush, or if it
            failed: its entries stay unplaced, and a warning says why).

        Raises:
            CorruptDatabaseError: the child found the database damaged.
        """
        with self._lock:
            try:
                return self._flush_locked(edited, last)
            finally:
                # The countdown starts after the last batch (`send` and `warm` stop it): one
                # started ahead of a pass that then filled no batch ends too.
                if self._child is not None and self._idle is None:
                    self._idle = threading.Timer(IDLE_SECONDS, self._expire, (self._child,))
                    self._idle.daemon = True
                    self._idle.start()

    def close(self) -> None:
        """Stop the child (it finishes the batch it holds)."""
        with self._lock:
            self._stop_idle()
            self._stop_locked()

    # --- with _lock held --------------------------------------------------------------------

    def _post_locked(self, message: tuple[object, ...], config: Config, batch: int) -> bool:
        """Send the child `message`, starting it if none runs (or restarting it if a reload
        changed what it uses); False if it died or could not start (a warning says why)."""
        self._stop_idle()
        if self._child is not None and (
            _settings(config) != self._settings or batch != self._batch
        ):
            # What it holds, under the settings it was sent with.
            self._flush_locked([])
            self._stop_locked()
        try:
            if self._child is None:
                self._start_locked(config, batch)
            assert self._conn is not None
            self._conn.send(message)
        except (OSError, ValueError) as e:  # it died or could not start
            self._gone_locked(f"the placing process cannot be reached ({e})")
            return False
        return True

    def _flush_locked(self, edited: Sequence[int], last: Sequence[int] = ()) -> Flushed:
        if self._child is None or self._conn is None or not self._sent:
            return Flushed()
        self._sent = 0
        try:
            self._conn.send(("flush", list(edited), list(last)))
            reply = self._await_locked()
        except (OSError, EOFError, ValueError) as e:
            self._gone_locked(f"the placing process ended ({e or 'killed'})")
            return Flushed()
        self._log(reply)
        if reply[0] == "flushed":
            return Flushed(reply[1], reply[2], done=True)
        self._failed_locked(reply)
        return Flushed()

    def _gone_locked(self, why: str) -> None:
        """The child cannot be reached: drop it, saying why (its own report of a failure,
        if it sent one before it ended).

        Raises:
            CorruptDatabaseError: its report says the database is damaged.
        """
        reply = None
        try:
            if self._conn is not None and self._conn.poll(0):
                reply = self._conn.recv()
        except (OSError, EOFError):
            pass
        if reply is not None and reply[0] == "failed":
            self._log(reply)
            self._failed_locked(reply)
        else:
            self._abandon_locked(why)

    def _failed_locked(self, reply: tuple[Any, ...]) -> None:
        """Drop the child, which reported a failure (`reply`).

        Raises:
            CorruptDatabaseError: the failure is a damaged database.
        """
        _, corrupt, message, path, _ = reply
        self._abandon_locked(f"the placing process failed ({message})")
        if corrupt:
            raise CorruptDatabaseError(message, path=path)

    @staticmethod
    def _log(reply: tuple[Any, ...]) -> None:
        """Log here what the child logged (the last value of each of its replies)."""
        for level, message in reply[-1]:
            log.log(level, "%s", message)

    def _await_locked(self) -> tuple[Any, ...]:
        assert self._conn is not None and self._child is not None
        while not self._conn.poll(ALIVE_CHECK_SECONDS):
            if not self._child.is_alive():
                raise EOFError(f"exit code {self._child.exitcode}")
        reply: tuple[Any, ...] = self._conn.recv()  # (kind, *values, log records)
        return reply

    def _start_locked(self, config: Config, batch: int) -> None:
        import multiprocessing

        context = multiprocessing.get_context("spawn")
        parent, child = context.Pipe()
        process = context.Process(
            target=_serve,
            args=(child, config, self.workers, batch, os.getpid()),
            name="aggregator-placer",
            daemon=False,  # a daemonic process may not start the feature workers it needs
        )
        process.start()
        if not self._exit_hooked:  # before multiprocessing's own, which would wait for it
            atexit.register(self.close)
            self._exit_hooked = True
        child.close()
        self._child, self._conn, self._batch = process, parent, batch
        self._settings = _settings(config)

    def _stop_locked(self) -> None:
        child, conn = self._child, self._conn
        self._child = self._conn = None
        self._sent = 0
        if child is None or conn is None:
            return
        try:
            conn.send(("stop",))
        except (OSError, ValueError):
            pass
        child.join(STOP_SECONDS)
        if child.is_alive():
            child.kill()
            child.join()
        conn.close()

    def _abandon_locked(self, why: str) -> None:
        log.warning("%s; placing in this process", why)
        child, conn = self._child, self._conn
        self._child = self._conn = None
        self._sent = 0
        if child is not None and child.is_alive():
            child.kill()
            child.join()
        if conn is not None:
            conn.close()

    def _stop_idle(self) -> None:
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None

    def _expire(self, child: BaseProcess) -> None:
        with self._lock:
            if self._child is child and not self._sent:
                self._idle = None
                self._stop_locked()


class _Collect(logging.Handler):
    """In the child: keeps its log records, sent to the parent with the next reply."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[tuple[int, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append((record.levelno, record.getMessage()))

    def take(self) -> list[tuple[int, str]]:
        records, self.records = self.records, []
        return records


def _serve(conn: Connection, config: Config, workers: int, batch: int, parent: int) -> None:
    """The child: place the batches received, in order, until told to stop."""
    from aggregator import clock
    from aggregator.core import open_configured
    from aggregator.parallel import FeaturePool, child_started, warm_up
    from aggregator.parts import Shared
    from aggregator.placer import Placer

    child_started(parent)
    # Ctrl-C reaches the whole process group: the parent stops this one (or kills it).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    collect = _Collect()
    logger = logging.getLogger("aggregator")
    logger.addHandler(collect)
    logger.setLevel(logging.INFO)
    shared = Shared(config, clock.now, lambda: open_configured(config))
    placer = Placer(shared, FeaturePool(workers), batch=batch)
    placed = 0
    flush = False
    try:
        while True:
            # Every batch waiting is taken first, its features set on the worker at once;
            # then the oldest is placed, this process computing what the worker has not
            # started of it: the worker is never idle while batches wait, nor is this one.
            while conn.poll(0 if flush or placer.early_batches() else None):
                message = conn.recv()
                if message[0] == "batch":
                    placer.stored(message[1], [])
                elif message[0] == "warm":
                    placer.features.warm(config.dedup)
                    warm_up(config.dedup)
                elif message[0] == "flush":
                    placer.stored([], message[1])
                    placer.start_last(message[2])
                    flush = True
                else:
                    return
            if placer.early_batches():
                placed += placer.place_ready(oldest=True)
            elif flush:
                placed += placer.group_stored()
                conn.send(("flushed", placed, placer.stage_seconds, collect.take()))
                placed, placer.stage_seconds, flush = 0, {}, False
    except (EOFError, OSError):
        pass  # the parent is gone
    except Exception as e:  # reported, and the parent places what is left
        path = e.path if isinstance(e, CorruptDatabaseError) else None
        message_text = str(e.message) if isinstance(e, CorruptDatabaseError) else repr(e)
        try:
            conn.send(
                ("failed", isinstance(e, CorruptDatabaseError), message_text, path, collect.take())
            )
        except (OSError, ValueError):
            pass
    finally:
        placer.close()
        shared.close()
