"""Issue 16, the digest's and status's friction: an empty digest is not mailed unless asked,
the window's end is shown inclusively, summaries start at the news rather than a byline,
the status table fits 80 columns and names its timezone, and a database on a read-only
mount says why it cannot be opened (defect 14)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from aggregator import cli as cli_module
from tests.conftest import write_config


def _invoke(workdir: Path, *args: str) -> Result:
    return CliRunner().invoke(cli_module.cli, ["--config", str(workdir / "feeds.toml"), *args])


# --- defect 14: a database on a read-only mount --------------------------------------------


@pytest.fixture
def read_only_folder(tmp_path: Path) -> Iterator[Path]:
    """A folder on a read-only file system (a tmpfs remounted ro), holding a database."""
    folder = tmp_path / "ro"
    folder.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a read-only file system needs root")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(folder)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr!r}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=False)


def test_a_database_on_a_read_only_mount_says_why(read_only_folder: Path, tmp_path: Path) -> None:
    db = read_only_folder / "news.db"
    feeds = '[[feeds]]\nname = "Seeds"\nurl = "seeds/"\n'
    write_config(tmp_path, feeds)
    config = tmp_path / "feeds.toml"
    config.write_text(config.read_text().replace('"test.db"', f'"{db}"'), encoding="utf-8")
    assert _invoke(tmp_path, "status").exit_code == 0  # creates the database
    assert db.exists()
    subprocess.run(["mount", "-o", "remount,ro", str(read_only_folder)], check=True)

    for args in (("status",), ("poll",)):
        result = _invoke(tmp_path, *args)
        assert result.exit_code != 0, result.output
        assert "unable to open database file" in result.output
        assert f"{read_only_folder} is on a read-only file system" in result.output

    config.write_text(config.read_text().replace("news.db", "new.db"), encoding="utf-8")
    result = _invoke(tmp_path, "status")
    assert f"{read_only_folder} is on a read-only file system" in result.output
