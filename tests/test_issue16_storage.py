"""Issue 16, the database: a damaged file is found and named, a full disk is an operational
failure that backs off and shows in `status`, digests are published only for days the
database holds, and the daemon's start matches the README."""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from aggregator import cli as cli_module
from aggregator.exceptions import CorruptDatabaseError
from aggregator.storage import sqlite as sqlite_storage

PAGE = 4096


def _invoke(workdir: Path, *args: str) -> Result:
    return CliRunner().invoke(cli_module.cli, ["--config", str(workdir / "feeds.toml"), *args])


def _corrupt(db: Path, pages: int = 20) -> None:
    """Write `pages` pages of random bytes into the middle of the file (the first half
    page of the file, its header, is left alone)."""
    size = db.stat().st_size
    start = max(2, size // PAGE // 2 - pages // 2) * PAGE
    with db.open("r+b") as f:
        f.seek(start)
        f.write(random.Random(8).randbytes(pages * PAGE))


def _integrity(db: Path) -> str:
    connection = sqlite3.connect(db)
    try:
        return str(connection.execute("PRAGMA integrity_check").fetchone()[0])
    except sqlite3.DatabaseError as e:
        return str(e)
    finally:
        connection.close()


# --- defect 8: a damaged database is found, named, and how to recover it is said ----------


@pytest.fixture
def corrupt_workdir(workdir: Path) -> Path:
    """The seeds polled into aggregator.db, then 20 pages of it overwritten at random."""
    result = _invoke(workdir, "poll")
    assert result.exit_code == 0, result.output
    db = workdir / "aggregator.db"
    assert _integrity(db) == "ok" and db.stat().st_size >= 30 * PAGE
    _corrupt(db)
    assert _integrity(db) != "ok"
    return workdir


@pytest.mark.parametrize(
    "command", [["status"], ["digest"], ["poll"], ["digest", "--output", "-"], ["feeds", "list"]]
)
def test_a_damaged_database_is_refused_with_exit_1_and_how_to_recover(
    corrupt_workdir: Path, command: list[str]
) -> None:
    result = _invoke(corrupt_workdir, *command)
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit)
    assert "damaged" in result.output and ".recover" in result.output
    assert "aggregator.db" in result.output
    assert not (corrupt_workdir / "digests").exists()


def test_damage_past_the_open_check_fails_the_poll(
    corrupt_workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A database too large to check on open: the first statement meeting the damage says so.
    monkeypatch.setattr(sqlite_storage, "QUICK_CHECK_MAX", 0)
    for command in (["poll"], ["digest", "--output", "-"]):
        result = _invoke(corrupt_workdir, *command)
        assert result.exit_code == 1, result.output
        assert "damaged" in result.output and ".recover" in result.output


def test_malformed_errors_become_corrupt_database_errors(tmp_path: Path) -> None:
    db = tmp_path / "a.db"
    with sqlite_storage.SqliteStorage(db) as storage:
        assert storage.entry_count() == 0
    error = sqlite3.DatabaseError("database disk image is malformed")
    translated = sqlite_storage.storage_error("database read failed", error, db)
    assert isinstance(translated, CorruptDatabaseError) and translated.exit_code == 1
    assert f'sqlite3 {db} ".recover" | sqlite3 {tmp_path / "a-recovered.db"}' in str(translated)


def test_the_recovery_the_message_gives_works(corrupt_workdir: Path) -> None:
    import shutil
    import subprocess

    if shutil.which("sqlite3") is None:
        pytest.skip("no sqlite3 shell")
    db = corrupt_workdir / "aggregator.db"
    fixed = corrupt_workdir / "aggregator-recovered.db"
    subprocess.run(f'sqlite3 {db} ".recover" | sqlite3 {fixed}', shell=True, check=True)
    assert _integrity(fixed) == "ok"
