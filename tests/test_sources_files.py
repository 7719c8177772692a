"""Tests for sources/files.py: reading the seed article formats and feed files from disk."""

from __future__ import annotations

import os
import shutil
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from aggregator.config import load_config
from aggregator.core import make_aggregator
from aggregator.exceptions import ParseError
from aggregator.sources.files import read_source
from aggregator.types import EntryData
from tests.conftest import FrozenClock, write_config

SEEDS = Path(__file__).parent.parent / "seeds"
DATA = Path(__file__).parent / "data"
SHANGHAI = ZoneInfo("Asia/Shanghai")
DW_LINK = (
    "https://www.dw.com/zh/%E4%BA%BA%E5%B7%A5%E6%99%BA%E8%83%BD%E5%B3%B0%E4%BC%9A%E2%80%94"
    "%E2%80%94%E6%AC%A7%E6%B4%B2%E8%BF%98%E6%9C%89%E7%AB%9E%E4%BA%89%E5%8A%9B%E5%90%97%EF%BC%9F"
    "/a-71563901"
)


@pytest.fixture(scope="module")
def seeds() -> dict[str, EntryData]:
    feed = read_source(SEEDS, default_tz=SHANGHAI)
    assert feed.warnings == []
    assert len(feed.entries) == 4
    names = sorted(p.name for p in SEEDS.iterdir())
    return {name[:3]: entry for name, entry in zip(names, feed.entries, strict=True)}


def assert_clean(text: str) -> None:
    for markup in ("http", "<", "![", "](", "**", "\n\n\n"):
        assert markup not in text
    assert text == text.strip()


def test_front_matter_article(seeds: dict[str, EntryData]) -> None:
    entry = seeds["000"]
    assert entry.title == "刚刚，巴黎AI峰会开幕，百国探讨AI未来，DeepSeek成焦点"
    assert entry.link == "https://new.qq.com/rain/a/20250210A08ACT00"
    assert entry.guid == entry.link
    assert entry.published == datetime(2025, 2, 10, 21, 0, 1, tzinfo=SHANGHAI)
    assert entry.published.utcoffset() is not None
    assert entry.language == "zh-CN"
    assert entry.summary.startswith("智东西（公众号：zhidxcom）编译")
    assert "法国总统埃马纽埃尔·马克龙（Emmanuel Macron）推特截图" in entry.text
    assert "有趣的是，2月9日马克龙还点赞了关于自己的恶搞视频，并配文“玩得好”。" in entry.text
    assert entry.text.endswith("当下，让AI更加安全、可用已经成为全球AI产业人士的共同话题。")
    assert_clean(entry.text)


def test_front_matter_article_with_images_and_emphasis(seeds: dict[str, EntryData]) -> None:
    entry = seeds["002"]
    assert entry.title == (
        "中方派出高级别代表团，DeepSeek让同行看到新希望，巴黎AI峰会热议“中国成功”"
    )
    assert entry.link == "https://new.qq.com/rain/a/20250212A0199J00"
    assert entry.published == datetime(2025, 2, 12, 7, 2, 11, tzinfo=SHANGHAI)
    assert entry.language == "zh-CN"
    assert "\n\n“全球AI领导地位仍有待争夺”\n\n" in entry.text
    assert "图源：法媒" in entry.text
    assert entry.text.endswith("环球时报特约记者 李达飞 于文】")
    assert_clean(entry.text)


def test_plain_markdown_article(seeds: dict[str, EntryData]) -> None:
    entry = seeds["001"]
    assert entry.title == "DeepSeek開源惠及全球 外交部：共享智能紅利"
    assert entry.link is None
    assert entry.guid == "file:001_69820a1e6622a8b1.txt"
    assert entry.published is None
    assert entry.language == "zh-Hant"
    assert entry.author == "郭瀚林"
    assert entry.text.startswith("2月10日，人工智能（AI）行動峰會在法國巴黎開幕")
    assert "\n\n外界紛紛點讚 DeepSeek\n\n" in entry.text  # other headings stay, as paragraphs
    assert "中方積極推動AI普惠發展" in entry.text
    assert entry.title not in entry.text
    assert "#" not in entry.text
    assert entry.summary.endswith("。") and len(entry.summary) <= 200
    assert_clean(entry.text)


def test_feed_export_article(seeds: dict[str, EntryData]) -> None:
    entry = seeds["004"]
    assert entry.title == "人工智能峰会——欧洲还有竞争力吗？"
    assert entry.link == DW_LINK
    assert entry.guid == DW_LINK
    assert entry.published == datetime.fromtimestamp(1739200625000 / 1000, UTC)
    assert entry.author == "Dirk Kaufmann"
    assert entry.language == "zh-Hans"
    assert entry.text.startswith("（德国之声中文网）“人工智能行动峰会”于2月10日-11日在巴黎举行。")
    assert "目前，主导人工智能领域的首先是美国企业，中国则紧随跟上。" in entry.text
    assert "Dirk Kaufmann" not in entry.text
    assert "巴黎大皇宫去年底的一次数字艺术展" not in entry.text  # the image's caption
    assert "版权声明" not in entry.text and "©" not in entry.text
    assert entry.summary.startswith("（德国之声中文网）") and len(entry.summary) <= 200
    assert_clean(entry.text)


def test_rereading_gives_the_same_guids(seeds: dict[str, EntryData]) -> None:
    again = read_source(SEEDS, default_tz=SHANGHAI)
    assert [e.guid for e in again.entries] == [seeds[k].guid for k in sorted(seeds)]


def test_single_file_source() -> None:
    feed = read_source(SEEDS / "001_69820a1e6622a8b1.txt")
    assert [e.title for e in feed.entries] == ["DeepSeek開源惠及全球 外交部：共享智能紅利"]
    assert feed.warnings == []


def test_naive_date_without_default_tz_is_utc() -> None:
    feed = read_source(SEEDS / "000_cbd8da1c2018c6a5.txt")
    assert feed.entries[0].published == datetime(2025, 2, 10, 21, 0, 1, tzinfo=UTC)


def test_folder_with_bad_files_warns_and_reads_the_rest(tmp_path: Path) -> None:
    shutil.copy(SEEDS / "004_1420cef449377af1.txt", tmp_path / "b_article.txt")
    shutil.copy(DATA / "src_rss_zh.xml", tmp_path / "c_feed.xml")
    (tmp_path / ".hidden.txt").write_text("# Hidden\n\nnot read\n", encoding="utf-8")
    (tmp_path / "a_garbage.bin").write_bytes(bytes(range(256)) * 4)
    (tmp_path / "d_empty.txt").write_bytes(b"")
    (tmp_path / "e_latin1.txt").write_bytes("# Café\n\ncrème brûlée".encode("latin-1"))
    (tmp_path / "f_broken.md").write_text("---\ntitle: [unclosed\n---\nbody\n", encoding="utf-8")
    (tmp_path / "g_bad.xml").write_text("<?xml version='1.0'?><html><body>x</body></html>")
    (tmp_path / "subfolder").mkdir()

    feed = read_source(tmp_path, default_tz=SHANGHAI, default_language="en")

    assert feed.title == tmp_path.name
    assert [e.title for e in feed.entries] == [
        "人工智能峰会——欧洲还有竞争力吗？",
        "巴黎人工智能行动峰会开幕",
        "没有 guid 的条目",
        "Café",  # not UTF-8: its encoding is detected, with a warning (issue 16)
    ]
    warned = sorted(w.split(":")[0] for w in feed.warnings)
    assert warned == ["a_garbage.bin", "d_empty.txt", "e_latin1.txt", "f_broken.md", "g_bad.xml"]
    assert not any("hidden" in w for w in feed.warnings)
    assert any("empty" in w for w in feed.warnings)
    assert any("HTML" in w for w in feed.warnings)


def test_language_falls_back_to_default(tmp_path: Path) -> None:
    (tmp_path / "n.md").write_text("# 2025\n\n12345 678\n", encoding="utf-8")
    entry = read_source(tmp_path / "n.md", default_language="fr").entries[0]
    assert entry.title == "2025"
    assert entry.language == "fr"


def test_markdown_formats(tmp_path: Path) -> None:
    source = tmp_path / "post.md"
    source.write_text(
        "---\ntitle: Hello\ndate: 2025-02-10T08:00:00Z\nauthor: [Ann, Bob]\nlang: en-us\n---\n"
        "## Intro\n\nSome *emphasis*, **strong**, `code` and a [link](https://e.com/a_(b)).\n"
        "A soft-wrapped line &amp; more.\n\n"
        "- item one\n- item two\n\n> quoted <b>bold</b>\n\n---\n\n![img](https://e.com/i.png)\n\n"
        "[site](https://e.com/post)\n",
        encoding="utf-8",
    )
    entry = read_source(source).entries[0]
    assert entry.title == "Hello"
    assert entry.author == "Ann"
    assert entry.language == "en-US"
    assert entry.link == "https://e.com/post"
    assert entry.published == datetime(2025, 2, 10, 8, tzinfo=UTC)
    assert entry.text == (
        "Intro\n\nSome emphasis, strong, code and a link. A soft-wrapped line & more.\n\n"
        "item one\n\nitem two\n\nquoted bold"
    )


def test_single_bad_file_raises(tmp_path: Path) -> None:
    bad = tmp_path / "garbage.txt"
    bad.write_bytes(b"\x00\x01\x02\xff\xfe")
    with pytest.raises(ParseError) as info:
        read_source(bad)
    assert info.value.url == str(bad)
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    with pytest.raises(ParseError, match="empty"):
        read_source(empty)


def test_missing_path_raises(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(ParseError, match="no such file or folder") as info:
        read_source(missing)
    assert info.value.url == str(missing)


def rss_file(site: str, guid: str) -> str:
    return (
        f"<rss version='2.0'><channel><title>{site}</title><item><title>{site} item</title>"
        f"<link>https://{site}.example/1</link><guid isPermaLink='false'>{guid}</guid>"
        f"<description>What {site} reported.</description></item></channel></rss>"
    )


def test_files_of_a_folder_sharing_a_guid_are_all_stored(
    tmp_path: Path, clock: FrozenClock
) -> None:
    """Each feed file numbers its items from 1, and two saved articles link to one page:
    every item and article is stored, none overwritten by another file's, and polling the
    folder again finds the same entries."""
    news = tmp_path / "news"
    news.mkdir()
    (news / "a.xml").write_text(rss_file("alpha", "1"), encoding="utf-8")
    (news / "b.xml").write_text(rss_file("beta", "1"), encoding="utf-8")
    (news / "c.json").write_text(
        '{"version": "https://jsonfeed.org/version/1.1", "title": "J", "items": [{"id": "1", '
        '"url": "https://gamma.example/1", "title": "gamma item", "content_text": "x"}]}',
        encoding="utf-8",
    )
    for name, title in (("d.md", "Saved in English"), ("e.md", "Saved in French")):
        (news / name).write_text(
            f"---\ntitle: {title}\n---\n\n{title}, the text.\n\n[site](https://e.com/page)\n",
            encoding="utf-8",
        )
    agg = make_aggregator(
        load_config(write_config(tmp_path, '[[feeds]]\nurl = "news"\n')), clock=clock
    )
    try:
        feed = agg.config.feeds[0]
        assert agg.poll_feed(feed).new == 5
        with sqlite3.connect(agg.storage.path) as db:
            titles = sorted(t for (t,) in db.execute("SELECT title FROM entries"))
        assert titles == [
            "Saved in English",
            "Saved in French",
            "alpha item",
            "beta item",
            "gamma item",
        ]
        (news / "a.xml").touch()  # polled again: the same entries, none new, none lost
        again = agg.poll_feed(feed, force=True)
        assert (again.status, again.new) == ("ok", 0), again
        with sqlite3.connect(agg.storage.path) as db:
            assert db.execute("SELECT count(*) FROM entries").fetchone() == (5,)
    finally:
        agg.close()


def test_editor_backups_and_system_files_are_not_articles(tmp_path: Path) -> None:
    """An editor's backup and autosave files, a download in progress and the files an
    OS leaves in a folder are not articles: the folder reads as the one article, with no
    copy of it under another name and no warning."""
    article = "---\ntitle: The summit opens\n---\n\nLeaders met in Paris.\n"
    (tmp_path / "summit.md").write_text(article, encoding="utf-8")
    (tmp_path / "summit.md~").write_text(article.replace("opens", "open"), encoding="utf-8")
    (tmp_path / "#summit.md#").write_text(article + "More.\n", encoding="utf-8")
    (tmp_path / "summit.md.swp").write_bytes(b"b0VIM 9.0\x00\x00\x00")
    (tmp_path / "feed.xml.part").write_text("<rss version='2.0'><channel><ti", encoding="utf-8")
    (tmp_path / "notes.tmp").write_text("# Scratch\n\nnot an article\n", encoding="utf-8")
    (tmp_path / "desktop.ini").write_text("[.ShellClassInfo]\nIconResource=x\n", encoding="utf-8")
    (tmp_path / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0" + bytes(64))

    feed = read_source(tmp_path)

    assert [e.title for e in feed.entries] == ["The summit opens"]
    assert feed.warnings == []


def test_a_pipe_or_a_file_past_the_limit_is_not_read(tmp_path: Path) -> None:
    # A named pipe in the folder (or a symlink to /dev/zero) hung `aggregator poll` and
    # a daemon's worker for good; a 300 MB file was read whole into memory at each poll,
    # though an HTTP body stops at [poll] max_body.
    shutil.copy(SEEDS / "004_1420cef449377af1.txt", tmp_path / "a_article.txt")
    os.mkfifo(tmp_path / "b_pipe.xml")
    (tmp_path / "c_huge.md").write_text("# Huge\n\n" + "words " * 20_000, encoding="utf-8")
    (tmp_path / "d_zero.xml").symlink_to("/dev/zero")
    feed = read_source(tmp_path, max_bytes=100_000)
    assert [e.title for e in feed.entries] == ["人工智能峰会——欧洲还有竞争力吗？"]
    assert sorted(feed.warnings) == [
        "b_pipe.xml: not a regular file (a pipe, socket or device): not read",
        "c_huge.md: larger than the 100000-byte limit ([poll] max_body): not read",
        "d_zero.xml: not a regular file (a pipe, socket or device): not read",
    ]
    with pytest.raises(ParseError, match="not a regular file"):
        read_source(tmp_path / "b_pipe.xml")
    assert read_source(tmp_path / "c_huge.md").entries[0].title == "Huge"  # no limit given
