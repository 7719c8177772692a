"""Bad config and CLI input: a clear message, exit code 2, nothing written."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from aggregator import clock
from aggregator.storage.schema import SCHEMA_VERSION
from tests.conftest import RunCli

BAD_CONFIGS = {
    "unknown key": ('[[feeds]]\nurl = "https://e.org/f"\nnmae = "x"\n', "did you mean 'name'"),
    "wrong type": ('[[feeds]]\nurl = "https://e.org/f"\ninterval = true\n', "not a duration"),
    "wrong type for a table": ('storage = "x.db"\n', "must be a table"),
    "bad url": ('[[feeds]]\nurl = "http://"\n', "not an http(s) URL"),
    "javascript url": ('[[feeds]]\nurl = "javascript://alert(1)"\n', "not an http(s) URL"),
    # Polled, it failed with "unexpected error: ExceptionGroup: unhandled errors in a ...".
    "feed port out of range": ('[[feeds]]\nurl = "http://e.org:99999/f"\n', "not an http(s) URL"),
    "not toml": ('[[feeds]\nurl = "x"\n', "not valid TOML"),
    "bad timezone": ('[digest]\ntimezone = "Europe/Atlantis"\n', "unknown timezone"),
    "keywords not a list": ('[[topics]]\nname = "t"\nkeywords = 3\n', "list of non-empty strings"),
    "bad port": ("[digest.email]\nport = 70000\n", "port number"),
    "not utf-8": (b'[storage]\npath = "\xff\xfe.db"\n', "cannot read"),
}


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
@pytest.mark.parametrize("command", [["poll"], ["digest"], ["feeds", "list"]])
def test_bad_config_is_exit_2_with_a_message_and_nothing_written(
    tmp_path: Path, run_cli: RunCli, case: str, command: list[str]
) -> None:
    content, words = BAD_CONFIGS[case]
    path = tmp_path / "feeds.toml"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    before = path.read_bytes()
    result = run_cli(*command, cwd=tmp_path)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert words in result.stderr and "feeds.toml" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["feeds.toml"]
    assert path.read_bytes() == before


def test_config_that_is_a_folder(tmp_path: Path, run_cli: RunCli) -> None:
    (tmp_path / "feeds.toml").mkdir()
    result = run_cli("poll", cwd=tmp_path)
    assert result.returncode == 2 and "is a directory" in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_config(tmp_path: Path, run_cli: RunCli) -> None:
    result = run_cli("--config", str(tmp_path / "nope.toml"), "poll", cwd=tmp_path)
    assert result.returncode == 2 and "not found" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_database_from_a_newer_schema_is_refused_untouched(workdir: Path, run_cli: RunCli) -> None:
    assert run_cli("poll", cwd=workdir).returncode == 0
    db_path = workdir / "aggregator.db"
    with sqlite3.connect(db_path) as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 7}")
    db.close()
    before = db_path.read_bytes()
    for command in (["poll"], ["digest", "--format", "json", "--output", "-"]):
        result = run_cli(*command, cwd=workdir)
        assert result.returncode == 2, result.stderr
        assert "newer than this aggregator knows" in result.stderr
        assert "Traceback" not in result.stderr
    assert db_path.read_bytes() == before


def test_database_in_an_unwritable_place(workdir: Path, run_cli: RunCli) -> None:
    # The database's folder would have to be created where a file stands: cannot be created.
    (workdir / "blocked").write_text("a file, not a folder", encoding="utf-8")
    config = workdir / "feeds.toml"
    config.write_text(
        config.read_text(encoding="utf-8").replace(
            'path = "aggregator.db"', 'path = "blocked/a.db"'
        ),
        encoding="utf-8",
    )
    result = run_cli("poll", cwd=workdir)
    assert result.returncode == 2 and "blocked/a.db" in result.stderr
    assert "Traceback" not in result.stderr
    assert (workdir / "blocked").read_text(encoding="utf-8") == "a file, not a folder"


def test_a_database_that_is_not_sqlite(workdir: Path, run_cli: RunCli) -> None:
    (workdir / "aggregator.db").write_bytes(b"not a database at all" * 50)
    result = run_cli("poll", cwd=workdir)
    assert result.returncode == 2 and "aggregator.db" in result.stderr
    assert (workdir / "aggregator.db").read_bytes() == b"not a database at all" * 50


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["digest", "--date", "2025-13-01"], "--date must be a date"),
        (["digest", "--since", "yesterday"], "--since must be a date"),
        (["digest", "--until", "2025-02-10"], "--until needs --since"),
        (["digest", "--date", "2025-02-10", "--since", "2025-02-09"], "either --date"),
        (["digest", "--format", "pdf"], "Invalid value for '--format'"),
        (
            ["feeds", "add", "https://e.org/f", "--interval", "often", "--no-check"],
            "not a duration",
        ),
        (["feeds", "add", "ftp://e.org/f", "--no-check"], "a file:// URL or a local path"),
        # A traceback; "network error: Request URL is missing an 'http://' ..."; the last
        # two written to feeds.toml with --no-check, a file every command then refused.
        (["feeds", "add", "http://[::1/f"], "http://[::1/f: not a valid http(s) URL"),
        (["feeds", "add", "http:///f"], "http:///f: not a valid http(s) URL"),
        (["feeds", "add", "http://e.org:99999/f", "--no-check"], "not a valid http(s) URL"),
        (["feeds", "add", "http://[::1/f", "--no-check"], "not a valid http(s) URL"),
        # Fetched first, then refused as "feeds.toml [feeds[N].name]", a file left as it was.
        (["feeds", "add", "https://e.org/f", "--name", "  "], "[--name]: --name must not be"),
        # Accepted before: its newline broke `feeds list` and `feeds export`'s OPML.
        (
            ["feeds", "add", "https://e.org/f", "--name", "BBC\nNews", "--no-check"],
            "--name must not hold control characters ('\\n')",
        ),
        (["feeds", "add", "no/such/folder"], "no such file or folder"),
        (["feeds", "remove", "nobody"], "no feed with url or name"),
    ],
)
def test_bad_cli_input_is_exit_2_and_writes_nothing(
    workdir: Path, run_cli: RunCli, args: list[str], words: str
) -> None:
    before = (workdir / "feeds.toml").read_bytes()
    result = run_cli(*args, cwd=workdir)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert words in result.stderr
    assert "Traceback" not in result.stderr
    assert (workdir / "feeds.toml").read_bytes() == before
    assert not (workdir / "digests").exists()


def test_a_range_starting_after_today_names_the_option_given(
    workdir: Path, run_cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`digest --since` a day to come, without --until: the error named an --until the
    user never gave ("--until 2025-06-15 is before --since 2025-06-20")."""
    monkeypatch.setattr(clock, "now", lambda: datetime(2025, 6, 15, 12, 0, tzinfo=UTC))
    result = run_cli("digest", "--since", "2025-06-20", cwd=workdir)
    assert result.returncode == 2
    assert "--since 2025-06-20 is after today (2025-06-15, Asia/Shanghai)" in result.stderr
    assert "--until 2025-06-15" not in result.stderr
    assert not (workdir / "digests").exists()
    result = run_cli("digest", "--since", "2025-06-20", "--until", "2025-06-18", cwd=workdir)
    assert result.returncode == 2
    assert "--until 2025-06-18 is before --since 2025-06-20" in result.stderr
    # A range of days to come, given whole, is made (empty: nothing is dated then yet).
    result = run_cli("digest", "--since", "2025-06-20", "--until", "2025-06-21", cwd=workdir)
    assert result.returncode == 0, result.stderr
