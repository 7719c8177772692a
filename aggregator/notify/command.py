"""The command channel: the user's program, run once per alert with the alert's JSON on stdin.

No shell: argv as configured. The program runs in a session of its own, so that at the
timeout the whole process group (its children too) is killed. Its output is read as it
comes and only the last OUTPUT_KEEP bytes of each stream are kept, however much it writes.
"""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import time

from aggregator.config import CommandConfig
from aggregator.exceptions import AlertError
from aggregator.notify.shape import json_body
from aggregator.types import AlertPayload

#: Bytes of each of stdout and stderr kept (the end: what a failing program said last).
OUTPUT_KEEP = 4096
#: Characters of stderr an error message quotes.
STDERR_QUOTED = 500
#: After the program exits, how long its output may still take to close (a child it left
#: behind may hold it open): then it is abandoned.
DRAIN_GRACE = 0.5


def run_command(payload: AlertPayload, config: CommandConfig) -> str:
    """Run [notify.command] once with the alert's JSON (the webhook `json` body) on stdin.

    Args:
        payload: The alert.
        config: The argv and the timeout in seconds.

    Returns:
        "exit 0".

    Raises:
        AlertError: retryable when it exited non-zero, was killed by a signal or ran past
            the timeout (killed then); final when it cannot be started (not found, not
            executable, empty argv).
    """
    argv = list(config.argv)
    where = f"command {argv[0]!r}" if argv else "command"
    if not argv:
        raise AlertError(f"{where}: [notify.command] argv is empty", retryable=False)
    try:
        process = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,  # its own process group, killed whole at the timeout
            close_fds=True,
        )
    except OSError as e:  # not found, not executable, not a program
        raise AlertError(f"{where}: cannot start it: {e.strerror or e}", retryable=False) from e
    stderr, timed_out = _exchange(process, json_body(payload), time.monotonic() + config.timeout)
    if timed_out:
        _kill_group(process)
        raise AlertError(
            f"{where}: killed after {config.timeout:g}s (its timeout)" + _quoted(stderr),
            retryable=True,
        )
    code = process.returncode
    if code == 0:
        return "exit 0"
    how = f"killed by signal {-code}" if code < 0 else f"exit {code}"
    raise AlertError(f"{where}: {how}" + _quoted(stderr), retryable=True)


def _exchange(process: subprocess.Popen[bytes], data: bytes, deadline: float) -> tuple[bytes, bool]:
    """Write `data` to the program's stdin while reading its output, until it exits and
    its output closes (or DRAIN_GRACE after it exited), or the deadline passes.

    Returns:
        The end of its stderr, and whether the deadline passed first.
    """
    assert process.stdin and process.stdout and process.stderr
    stdin, stdout, stderr = process.stdin, process.stdout, process.stderr
    kept = {stdout.fileno(): b"", stderr.fileno(): b""}
    reading = set(kept)
    pending = memoryview(data)
    exited_at: float | None = None
    with selectors.DefaultSelector() as selector:
        selector.register(stdout, selectors.EVENT_READ)
        selector.register(stderr, selectors.EVENT_READ)
        os.set_blocking(stdin.fileno(), False)
        selector.register(stdin, selectors.EVENT_WRITE)
        try:
            while reading:
                now = time.monotonic()
                if now >= deadline:
                    return kept[stderr.fileno()], True
                if process.poll() is not None:
                    exited_at = exited_at or now
                    if now - exited_at > DRAIN_GRACE:
                        break  # a child it left behind holds the output open: leave it be
                for key, _ in selector.select(min(deadline - now, 0.1)):
                    if key.fileobj is stdin:
                        try:
                            pending = pending[os.write(key.fd, pending) :]
                        except BrokenPipeError:
                            pending = pending[:0]  # it stopped reading: its business
                        if not pending:
                            selector.unregister(stdin)
                            stdin.close()  # end of input
                        continue
                    chunk = os.read(key.fd, 65536)
                    if chunk:
                        kept[key.fd] = (kept[key.fd] + chunk)[-OUTPUT_KEEP:]
                    else:
                        selector.unregister(key.fileobj)
                        reading.discard(key.fd)
            end = kept[stderr.fileno()]
        finally:
            for stream in (stdin, stdout, stderr):
                stream.close()
    try:
        process.wait(max(deadline - time.monotonic(), 0))
    except subprocess.TimeoutExpired:
        return end, True
    return end, False


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass  # the group is gone already
    process.wait()


def _quoted(stderr: bytes) -> str:
    said = " ".join(stderr.decode("utf-8", "replace").split())
    if not said:
        return ""
    return f"; stderr: {'…' if len(said) > STDERR_QUOTED else ''}{said[-STDERR_QUOTED:]}"
