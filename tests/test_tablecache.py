"""The word tables kept on disk between processes (`aggregator.tablecache`)."""

from __future__ import annotations

import marshal
import os
import struct
import zlib
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

from aggregator import tablecache, wordlists
from aggregator.dedup import crosslang, terms


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(tablecache.CACHE_ENV, str(tmp_path / "tables"))
    return tmp_path / "tables"


class Builder:
    """Builds a table from a source file, counting its builds."""

    def __init__(self, source: Path) -> None:
        self.source = source
        self.builds = 0

    def __call__(self) -> dict[str, int]:
        self.builds += 1
        return {word: len(word) for word in self.source.read_text().split()}

    def table(self, version: str = "1") -> dict[str, int]:
        return tablecache.table(
            "words", version, [self.source], self, lambda v: isinstance(v, dict)
        )


@pytest.fixture
def build(tmp_path: Path) -> Builder:
    """A builder of a table from a file of two words."""
    source = tmp_path / "words.txt"
    source.write_text("summit paris")
    return Builder(source)


def test_a_table_is_built_once_and_read_back(folder: Path, build: Builder) -> None:
    build.source.write_text("峰会 summit paris")
    first = build.table()
    assert first == {"峰会": 2, "summit": 6, "paris": 5}
    assert len(list(folder.glob("words-*.marshal"))) == 1
    assert build.table() == first
    assert build.builds == 1


def test_a_changed_source_or_version_builds_it_again(folder: Path, build: Builder) -> None:
    source = build.source
    build.table()
    source.write_text("summit paris macron")  # another size
    assert build.table() == {"summit": 6, "paris": 5, "macron": 6}
    assert build.builds == 2
    stat = source.stat()
    source.write_text("summit paris modi  ")  # the same size, another time
    os.utime(source, ns=(stat.st_atime_ns, stat.st_mtime_ns + 2_000_000_000))  # (FAT: 2 s)
    assert build.table() == {"summit": 6, "paris": 5, "modi": 4}
    assert build.builds == 3
    assert build.table(version="2") == {"summit": 6, "paris": 5, "modi": 4}
    assert build.builds == 4
    assert build.table(version="2") == {"summit": 6, "paris": 5, "modi": 4}
    assert build.builds == 4


def test_a_damaged_or_foreign_file_is_built_again(folder: Path, build: Builder) -> None:
    build.table()
    (kept,) = folder.glob("words-*.marshal")
    data = kept.read_bytes()
    kept.write_bytes(data[:-3])  # cut short: marshal cannot read it
    assert build.table() == {"summit": 6, "paris": 5}
    assert build.builds == 2
    assert kept.read_bytes() == data  # written again, whole
    key = data[: data.index(b"\x00") + 1]
    other = marshal.dumps(["not", "a", "dict"])  # another shape, whole
    kept.write_bytes(key + struct.pack("<QI", len(other), zlib.crc32(other)) + other)
    assert build.table() == {"summit": 6, "paris": 5}
    assert build.builds == 3


def test_a_damaged_file_is_not_given_to_marshal(
    folder: Path, build: Builder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A damaged length inside marshal's data can make it allocate gigabytes before it
    fails: the file's checksum is checked first."""
    build.table()
    (kept,) = folder.glob("words-*.marshal")
    data = bytearray(kept.read_bytes())
    data[-5] ^= 0x40  # one bit of the data, the length unchanged
    kept.write_bytes(bytes(data))
    read: list[object] = []
    monkeypatch.setattr(tablecache.marshal, "loads", lambda d: read.append(d))
    assert build.table() == {"summit": 6, "paris": 5}
    assert (build.builds, read) == (2, [])
    build.table()  # written again, whole: handed to marshal (the stand-in reads nothing)
    assert (build.builds, len(read)) == (3, 1)


def test_no_folder_or_one_not_writable_builds_every_time(
    build: Builder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = build.source
    source.write_text("summit")
    monkeypatch.setenv(tablecache.CACHE_ENV, "off")
    assert build.table() == build.table() == {"summit": 6}
    assert build.builds == 2
    blocked = tmp_path / "file"
    blocked.write_text("a file where the folder would be")
    monkeypatch.setenv(tablecache.CACHE_ENV, str(blocked / "tables"))
    assert build.table() == build.table() == {"summit": 6}
    assert build.builds == 4
    monkeypatch.setenv(tablecache.CACHE_ENV, str(tmp_path / "ok"))
    source.unlink()  # a source gone: no key, built (here: its error) as without a cache
    with pytest.raises(FileNotFoundError):
        build.table()


def test_the_default_folder_follows_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(tablecache.CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert tablecache.cache_dir() == tmp_path / "xdg" / "aggregator"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/cache")  # ignored, as XDG says
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert tablecache.cache_dir() == tmp_path / "home" / ".cache" / "aggregator"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert tablecache.cache_dir() == tmp_path / "home" / ".cache" / "aggregator"
    monkeypatch.setenv("HOME", "~")  # no home to expand to: no folder, not "./~/.cache"
    assert tablecache.cache_dir() is None


def test_each_environment_keeps_its_own_file_and_old_ones_go(
    folder: Path, build: Builder, tmp_path: Path
) -> None:
    """Two environments sharing the folder (another source, another Python) keep a file
    each instead of replacing each other's; a file of another key, or a temporary file a
    killed process left, goes when the table is written and it is `STALE_SECONDS` old."""
    other_source = tmp_path / "other.txt"
    other_source.write_text("macron")
    other = Builder(other_source)
    for _ in range(3):
        assert build.table() == {"summit": 6, "paris": 5}
        assert other.table() == {"macron": 6}
    assert (build.builds, other.builds) == (1, 1)
    files = sorted(folder.glob("words-*.marshal"))
    assert len(files) == 2
    left = folder / ".words-0123456789abcdef.marshal.deadbeef.tmp"
    left.write_bytes(b"half a table")
    old = os.stat(files[0]).st_mtime - tablecache.STALE_SECONDS - 60
    for path in (*files, left):
        os.utime(path, (old, old))
    build.table(version="2")  # written: the two old files go, and the one left half-written
    assert [p.name for p in folder.glob("words-*.marshal")] != [p.name for p in files]
    assert len(list(folder.glob("words-*.marshal"))) == 1
    assert not left.exists()


def test_a_folder_others_may_write_to_is_not_used(
    build: Builder, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    with pytest.MonkeyPatch.context() as patch, caplog.at_level("INFO"):
        patch.setenv(tablecache.CACHE_ENV, str(shared))
        assert build.table() == build.table() == {"summit": 6, "paris": 5}
    assert build.builds == 2
    assert list(shared.iterdir()) == []
    said = [r.getMessage() for r in caplog.records if r.name == "aggregator.tablecache"]
    assert len(said) == 1 and str(shared) in said[0]  # once a process
    shared.chmod(0o770)  # the user's own group may write to it: used
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(tablecache.CACHE_ENV, str(shared))
        assert build.table() == build.table() == {"summit": 6, "paris": 5}
    assert build.builds == 3
    created = tmp_path / "created" / "tables"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(tablecache.CACHE_ENV, str(created))
        build.table()
    assert created.stat().st_mode & 0o777 == 0o700


def test_a_file_read_is_marked_used(folder: Path, build: Builder) -> None:
    build.table()
    (kept,) = folder.glob("words-*.marshal")
    long_ago = kept.stat().st_mtime - 2 * 3600
    os.utime(kept, (long_ago, long_ago))
    build.table()
    assert build.builds == 1 and kept.stat().st_mtime > long_ago + 3600


def test_a_source_replaced_while_it_is_read_keeps_nothing(folder: Path, build: Builder) -> None:
    """The table was built from a file other than the one the key names: not kept."""

    def changing() -> dict[str, int]:
        table = build()
        build.source.write_text("summit paris and more")
        return table

    assert tablecache.table("words", "1", [build.source], changing, lambda v: True)
    assert not folder.exists() or not list(folder.glob("words-*.marshal"))


def test_the_word_tables_read_back_equal_those_read_from_their_files(folder: Path) -> None:
    """jieba's IDF table, the dictionary and the Latin frequencies: kept in a fresh folder
    by a first load, read back by a second, equal to what their builders read from the
    files themselves."""
    loaders = (terms._prior_table, crosslang.dictionary, terms._latin_table)
    for loader in loaders:
        loader.cache_clear()
    try:
        for loader in loaders:
            loader()
        assert sorted(p.name.split("-")[0] for p in folder.iterdir()) == [
            "cc", "jieba", "latin"
        ]  # fmt: skip
        for loader in loaders:
            loader.cache_clear()
        with pytest.MonkeyPatch.context() as patch:  # read back: none built again
            for module, builder in (
                (terms, "_read_prior_table"),
                (crosslang, "_read_dictionary"),
                (terms, "_read_latin_table"),
            ):
                patch.setattr(module, builder, _not_built)
            (table, median), dictionary, latin = (loader() for loader in loaders)
    finally:
        for loader in loaders:
            loader.cache_clear()
    jieba = wordlists.package_folder("jieba")
    assert jieba is not None
    direct = terms._read_prior_table(jieba / "analyse" / "idf.txt")
    assert median == direct.median == pytest.approx(terms.UNKNOWN_IDF)
    assert np.array_equal(table._words, direct._words)
    assert np.array_equal(table._values, direct._values)
    assert table._long == direct._long and len(table._long) > 1000
    assert table.get("峰会", -1.0) == direct.get("峰会", -1.0) > 0
    assert table.characters() == direct.characters()
    path = resources.files(crosslang.DICTIONARY_PACKAGE).joinpath(crosslang.DICTIONARY_FILE)
    assert dictionary == crosslang._read_dictionary(path) and "马克龙" in dictionary
    assert latin == terms._read_latin_table() and "gobierno" in latin


def _not_built(*args: object) -> None:
    raise AssertionError("built again rather than read back")
