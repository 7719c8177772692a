"""The command channel with real programs (sys.executable scripts): stdin, exit codes, timeout."""

from __future__ import annotations

import json
import os
import signal
import stat
import sys
import time
from pathlib import Path

import pytest

from aggregator.config import CommandConfig, Config, NotifyConfig
from aggregator.exceptions import AlertError
from aggregator.notify import deliver
from aggregator.notify.shape import json_body
from tests.alerts import payload
from tests.conftest import wait_until


def config_for(*argv: str, timeout: float = 10.0) -> Config:
    return Config(
        path=Path("feeds.toml"),
        storage_path=Path("aggregator.db"),
        notify=NotifyConfig(command=CommandConfig(tuple(argv), timeout=timeout)),
    )


def python(code: str, *args: str, timeout: float = 10.0) -> Config:
    return config_for(sys.executable, "-c", code, *args, timeout=timeout)


def dead(pid: int) -> bool:
    """Whether the process is gone (or a zombie nobody reaped yet)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")


def test_the_payload_json_arrives_on_stdin(tmp_path: Path) -> None:
    out = tmp_path / "alert.json"
    code = "import sys, pathlib; pathlib.Path(sys.argv[1]).write_bytes(sys.stdin.buffer.read())"
    alert = payload()
    assert deliver("command", alert, python(code, str(out)), env={}) == "exit 0"
    assert out.read_bytes() == json_body(alert)
    assert json.loads(out.read_text(encoding="utf-8")) == alert


def test_a_non_zero_exit_is_retryable_with_its_stderr() -> None:
    code = (
        "import sys; sys.stdin.read(); print('cannot reach the pager', file=sys.stderr);sys.exit(3)"
    )
    with pytest.raises(AlertError) as caught:
        deliver("command", payload(), python(code), env={})
    assert caught.value.retryable is True
    message = str(caught.value)
    assert message.startswith(f"command {sys.executable!r}: exit 3")
    assert message.endswith("; stderr: cannot reach the pager")


def test_only_the_end_of_a_long_stderr_is_kept() -> None:
    code = "import sys; sys.stderr.write('x' * 1_000_000 + ' THE END'); sys.exit(1)"
    with pytest.raises(AlertError) as caught:
        deliver("command", payload(), python(code), env={})
    said = str(caught.value).split("; stderr: ", 1)[1]
    assert said.startswith("…x") and said.endswith("x THE END")
    assert len(said) == 501


def test_a_command_that_ignores_its_input_and_floods_its_output_is_fine() -> None:
    # 300 KB of payload (more than a pipe holds) that it never reads; 20 MB it writes.
    big = payload(headline="峰" * 100_000)
    code = "import sys; sys.stdout.write('y' * 20_000_000)"
    assert deliver("command", big, python(code), env={}) == "exit 0"


def test_a_sleeping_command_and_its_children_are_killed_at_the_timeout(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    code = (
        "import subprocess, sys, time, pathlib;"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']);"
        "pathlib.Path(sys.argv[1]).write_text(str(child.pid));"
        "time.sleep(60)"
    )
    began = time.monotonic()
    with pytest.raises(AlertError, match="killed after 1s") as caught:
        deliver("command", payload(), python(code, str(pid_file), timeout=1), env={})
    elapsed = time.monotonic() - began
    assert caught.value.retryable is True
    assert 0.9 < elapsed < 6, elapsed
    child = int(pid_file.read_text())
    wait_until(lambda: dead(child), 5, "the command's child killed with it")


def test_exit_0_does_not_wait_for_a_child_left_holding_the_output(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    code = (
        "import subprocess, sys, pathlib;"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']);"
        "pathlib.Path(sys.argv[1]).write_text(str(child.pid))"
    )
    began = time.monotonic()
    try:
        assert deliver("command", payload(), python(code, str(pid_file)), env={}) == "exit 0"
        assert time.monotonic() - began < 5
    finally:
        os.kill(int(pid_file.read_text()), signal.SIGKILL)


def test_a_command_killed_by_a_signal_is_retryable() -> None:
    code = "import os, signal; os.kill(os.getpid(), signal.SIGTERM)"
    with pytest.raises(AlertError, match="killed by signal 15") as caught:
        deliver("command", payload(), python(code), env={})
    assert caught.value.retryable is True


def test_a_command_that_cannot_start_is_final(tmp_path: Path) -> None:
    script = tmp_path / "on-alert"
    script.write_text("#!/bin/sh\nexit 0\n")
    script.chmod(stat.S_IRUSR | stat.S_IWUSR)  # not executable
    for argv, match in (
        ((str(tmp_path / "missing"),), "cannot start it: No such file"),
        ((str(script),), "cannot start it: Permission denied"),
        ((), "argv is empty"),
    ):
        with pytest.raises(AlertError, match=match) as caught:
            deliver("command", payload(), config_for(*argv), env={})
        assert caught.value.retryable is False


def test_no_shell_interprets_the_arguments(tmp_path: Path) -> None:
    out = tmp_path / "argv.json"
    code = (
        "import sys, json, pathlib; pathlib.Path(sys.argv[1]).write_text(json.dumps(sys.argv[2:]))"
    )
    deliver("command", payload(), python(code, str(out), "$HOME", "a; rm -rf /", "*"), env={})
    assert json.loads(out.read_text()) == ["$HOME", "a; rm -rf /", "*"]
