"""Tests for aggregator/atomic.py: the one atomic write (digest files, feeds.toml)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from aggregator.atomic import replace_file


def test_replace_file_writes_the_text_as_given(tmp_path: Path) -> None:
    path = tmp_path / "feeds.toml"
    path.write_text("old\n")
    replace_file(path, "\ufeffa = 1\r\nb = '中文'\n")
    assert path.read_bytes() == "\ufeffa = 1\r\nb = '中文'\n".encode()
    assert [p.name for p in tmp_path.iterdir()] == ["feeds.toml"]  # no temporary file left


def test_replace_file_mode(tmp_path: Path) -> None:
    reference = tmp_path / "reference"
    reference.write_text("x")  # what the umask gives a new file, as config files got before
    replace_file(tmp_path / "config", "x")
    assert stat.S_IMODE((tmp_path / "config").stat().st_mode) == stat.S_IMODE(
        reference.stat().st_mode
    )
    replace_file(tmp_path / "digest.html", "x", mode=0o644)
    assert stat.S_IMODE((tmp_path / "digest.html").stat().st_mode) == 0o644


def test_replace_file_failing_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        replace_file(tmp_path / "missing" / "f.txt", "x")
    folder = tmp_path / "a-folder"
    folder.mkdir()
    (folder / "inside").write_text("kept")
    with pytest.raises(OSError):
        replace_file(folder, "x")  # a rename cannot replace a folder
    assert (folder / "inside").read_text() == "kept"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-folder"]
