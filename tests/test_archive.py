"""The digest archive: daily files, index.html and the Atom feed.xml (read with feedparser)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from datetime import UTC, date, datetime
from pathlib import Path

import feedparser
import pytest

from aggregator.digest.archive import ArchivedDigest, Headline, parse_name, scan_archive
from aggregator.digest.render import render_feed, render_index
from aggregator.digest.write import write_archive
from tests.conftest import RunCli
from tests.test_render import parse

NOW = datetime(2025, 2, 12, 0, 0, tzinfo=UTC)


def digest_json(generated: str, headlines: list[tuple[str, str | None]]) -> str:
    stories = [
        {
            "headline": title,
            "articles": [
                {
                    "title": title,
                    "link": link,
                    "published": generated,
                    "language": "zh",
                    "copies": [
                        {
                            "feed": f"Feed {i % 2}",
                            "title": title,
                            "link": link,
                            "published": generated,
                        }
                    ],
                }
            ],
        }
        for i, (title, link) in enumerate(headlines)
    ]
    data = {
        "since": generated,
        "until": generated,
        "generated_at": generated,
        "topics": [{"name": "T", "stories": stories}] if stories else [],
    }
    return json.dumps(data, ensure_ascii=False)


def fill(folder: Path) -> None:
    folder.mkdir(exist_ok=True)
    for day, headlines in [
        ("2025-02-10", [("巴黎AI峰会开幕", "https://a.example/1"), ("<b>Bold</b>", None)]),
        ("2025-02-11", []),
        ("2025-02-12", [("Evil\x0bcontrol & <script>", "javascript:alert(1)")]),
    ]:
        for ext in ("html", "txt"):
            (folder / f"{day}.{ext}").write_text("x", encoding="utf-8")
        stamp = f"{day}T07:00:00+08:00"
        (folder / f"{day}.json").write_text(digest_json(stamp, headlines), encoding="utf-8")
    (folder / "2025-02-01_2025-02-12.html").write_text("range", encoding="utf-8")
    (folder / "notes.html").write_text("not a digest", encoding="utf-8")
    (folder / "2025-02-30.html").write_text("impossible date", encoding="utf-8")


def test_parse_name() -> None:
    assert parse_name("2025-02-10") == (date(2025, 2, 10), date(2025, 2, 10))
    assert parse_name("2025-02-10_2025-02-12") == (date(2025, 2, 10), date(2025, 2, 12))
    assert parse_name("2025-02-12_2025-02-10") is None
    assert parse_name("2025-02-30") is None
    assert parse_name("index") is None


def test_scan_lists_digests_newest_first_with_details(tmp_path: Path) -> None:
    fill(tmp_path)
    items = scan_archive(tmp_path)
    assert [i.name for i in items] == [
        "2025-02-12",
        "2025-02-01_2025-02-12",
        "2025-02-11",
        "2025-02-10",
    ]
    first = items[-1]
    assert first.extensions == ("html", "txt", "json")
    assert first.story_count == 2 and first.entry_count == 2 and first.source_count == 2
    assert first.headlines[0] == Headline("巴黎AI峰会开幕", "https://a.example/1")
    assert first.generated_at == datetime.fromisoformat("2025-02-10T07:00:00+08:00")
    assert items[1].extensions == ("html",) and items[1].story_count is None


def test_a_damaged_json_file_costs_only_its_details(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fill(tmp_path)
    (tmp_path / "2025-02-10.json").write_text('{"topics": [', encoding="utf-8")
    items = {i.name: i for i in scan_archive(tmp_path)}
    assert items["2025-02-10"].story_count is None
    assert items["2025-02-12"].story_count == 1
    assert "2025-02-10.json: not a readable digest" in caplog.text


def test_scan_of_a_missing_folder_is_empty(tmp_path: Path) -> None:
    assert scan_archive(tmp_path / "nope") == []


def test_feed_parses_and_lists_every_digest(tmp_path: Path) -> None:
    fill(tmp_path)
    index, feed_path = write_archive(tmp_path, now=NOW, timezone="Asia/Shanghai")
    text = feed_path.read_text(encoding="utf-8")
    ET.fromstring(text.encode())  # well-formed XML despite the control character
    parsed = feedparser.parse(text)
    assert not parsed.bozo, parsed.get("bozo_exception")
    assert parsed.version == "atom10"
    links = [e.link for e in parsed.entries]
    assert links == [
        "2025-02-12.html",
        "2025-02-01_2025-02-12.html",
        "2025-02-11.html",
        "2025-02-10.html",
    ]
    titles = [e.title for e in parsed.entries]
    assert titles[0] == "Digest 2025-02-12 · 1 story"
    assert titles[1] == "Digest 2025-02-01 – 2025-02-12"
    assert titles[3] == "Digest 2025-02-10 · 2 stories"
    assert len({e.id for e in parsed.entries}) == 4
    content = parsed.entries[3].content[0].value
    assert "巴黎AI峰会开幕" in content and 'href="https://a.example/1"' in content
    assert "javascript:" not in text and "<script>" not in text
    assert parsed.feed.updated == "2025-02-12T07:00:00+08:00"
    assert index.name == "index.html"


def test_feed_ids_are_stable_and_base_url_makes_links_absolute(tmp_path: Path) -> None:
    fill(tmp_path)
    _, feed_path = write_archive(tmp_path, now=NOW, timezone="UTC")
    ids = [e.id for e in feedparser.parse(feed_path.read_text(encoding="utf-8")).entries]
    _, feed_path = write_archive(tmp_path, now=NOW.replace(year=2026), timezone="UTC")
    again = [e.id for e in feedparser.parse(feed_path.read_text(encoding="utf-8")).entries]
    assert ids == again
    _, feed_path = write_archive(
        tmp_path, now=NOW, timezone="UTC", base_url="https://me.example/digests/"
    )
    parsed = feedparser.parse(feed_path.read_text(encoding="utf-8"))
    assert parsed.entries[0].link == "https://me.example/digests/2025-02-12.html"


def test_index_links_every_digest_newest_first(tmp_path: Path) -> None:
    fill(tmp_path)
    index, _ = write_archive(tmp_path, now=NOW, timezone="Asia/Shanghai")
    html = index.read_text(encoding="utf-8")
    page = parse(html)
    digests = list(dict.fromkeys(h for h in page.hrefs if h.endswith(".html")))
    assert digests == [
        "2025-02-12.html",
        "2025-02-01_2025-02-12.html",
        "2025-02-11.html",
        "2025-02-10.html",
    ]
    assert "2025-02-10.json" in page.hrefs and "2025-02-10.txt" in page.hrefs
    assert "feed.xml" in page.hrefs
    assert "&lt;b&gt;Bold&lt;/b&gt;" in html and "javascript:" not in html
    assert "nothing new" in html  # 2025-02-11 had no stories
    assert "script" not in page.tags


def test_render_of_an_empty_archive() -> None:
    html = render_index([], generated_at=NOW, timezone="UTC")
    assert "No digests yet." in html
    feed = feedparser.parse(render_feed([], feed_id="urn:x", updated=NOW, timezone="UTC"))
    assert not feed.bozo and feed.entries == []
    item = ArchivedDigest("2025-02-10", date(2025, 2, 10), date(2025, 2, 10), ("txt",))
    feed = feedparser.parse(render_feed([item], feed_id="urn:x", updated=NOW, timezone="UTC"))
    assert [link.href for link in feed.entries[0].links] == ["2025-02-10.txt"]


def test_cli_digest_writes_every_format_and_the_archive(workdir: Path, run_cli: RunCli) -> None:
    assert run_cli("poll", cwd=workdir).returncode == 0
    for day in ("2025-02-10", "2025-02-12"):
        made = run_cli("digest", "--date", day, cwd=workdir)
        assert made.returncode == 0, made.stderr
        assert made.stdout.strip() == str(workdir / "digests" / f"{day}.html")
    folder = workdir / "digests"
    names = sorted(p.name for p in folder.iterdir())
    assert names == [
        "2025-02-10.html",
        "2025-02-10.json",
        "2025-02-10.txt",
        "2025-02-12.html",
        "2025-02-12.json",
        "2025-02-12.txt",
        "feed.xml",
        "index.html",
    ]
    parsed = feedparser.parse((folder / "feed.xml").read_text(encoding="utf-8"))
    assert not parsed.bozo
    assert [e.link for e in parsed.entries] == ["2025-02-12.html", "2025-02-10.html"]
    assert "刚刚，巴黎AI峰会开幕" in parsed.entries[1].content[0].value
    page = parse((folder / "index.html").read_text(encoding="utf-8"))
    assert {"2025-02-10.html", "2025-02-12.html"} <= set(page.hrefs)
    day_page = parse((folder / "2025-02-10.html").read_text(encoding="utf-8"))
    assert {"index.html", "feed.xml"} <= set(day_page.hrefs)
    assert json.loads((folder / "2025-02-10.json").read_text(encoding="utf-8"))["topics"]


def test_base_url_config(tmp_path: Path) -> None:
    from aggregator.config import config_from_dict
    from aggregator.exceptions import ConfigError

    path = tmp_path / "feeds.toml"
    config = config_from_dict({"digest": {"base_url": "https://me.example/d"}}, path)
    assert config.digest.base_url == "https://me.example/d/"
    with pytest.raises(ConfigError, match="base_url"):
        config_from_dict({"digest": {"base_url": "javascript:alert(1)"}}, path)
