"""Issue 16, sources: shared guids, wrong charsets, local feed files of every format.

Real polls: a real HTTP server on 127.0.0.1, real files, a real SQLite file.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from aggregator.config import load_config
from aggregator.core import Aggregator, make_aggregator
from aggregator.exceptions import HtmlPageError
from aggregator.sources.files import read_source
from aggregator.sources.parse import parse_feed
from tests.conftest import FrozenClock, write_config
from tests.feedserver import FeedServer, static

Make = Callable[[dict[str, str]], Aggregator]


@pytest.fixture
def make(tmp_path: Path, clock: FrozenClock) -> Iterator[Make]:
    """An Aggregator over a temp feeds.toml naming the given feeds (name -> URL or path)."""
    made: list[Aggregator] = []

    def build(feeds: dict[str, str]) -> Aggregator:
        tables = "".join(
            f'[[feeds]]\nurl = "{url}"\nname = "{name}"\ninterval = "1m"\n'
            for name, url in feeds.items()
        )
        path = write_config(tmp_path, tables, "\n[poll]\ntimeout = 2\ndeadline = 5\n")
        agg = make_aggregator(load_config(path), clock=clock, rand=lambda: 0.0)
        made.append(agg)
        return agg

    yield build
    for agg in made:
        agg.close()


def stored(agg: Aggregator) -> list[tuple[str, str, str | None]]:
    with sqlite3.connect(agg.storage.path) as db:
        return db.execute("SELECT guid, title, link FROM entries ORDER BY id").fetchall()


# --- Defect 2: items sharing a guid ------------------------------------------------------


def same_guid_rss(count: int, build: str = "") -> bytes:
    items = "".join(
        f"<item><title>Story {i}</title><link>https://news.example/{i}.html</link>"
        f'<guid isPermaLink="false">same-guid</guid>'
        f"<pubDate>Wed, 12 Feb 2025 1{i % 10}:00:00 +0000</pubDate>"
        f"<description>Body of story {i}.</description></item>"
        for i in range(count)
    )
    return (
        "<?xml version='1.0' encoding='utf-8'?><rss version='2.0'><channel><title>CMS</title>"
        f"<link>https://news.example/</link>{build}{items}</channel></rss>"
    ).encode()


def test_items_sharing_a_guid_are_kept_apart_and_not_duplicated_on_the_next_poll(
    feed_server: FeedServer, make: Make, caplog: pytest.LogCaptureFixture
) -> None:
    feed_server.routes["/f"] = static(same_guid_rss(10))
    agg = make({"CMS": feed_server.url("/f")})
    feed = agg.config.feeds[0]

    with caplog.at_level(logging.WARNING):
        first = agg.poll_feed(feed)

    assert (first.status, first.new) == ("ok", 10), first
    rows = stored(agg)
    assert sorted(title for _, title, _ in rows) == sorted(f"Story {i}" for i in range(10))
    assert len({guid for guid, _, _ in rows}) == 10
    assert "share" in (first.error or "") and "same-guid" in (first.error or "")
    warned = [r for r in caplog.records if r.levelno == logging.WARNING and "share" in r.message]
    assert len(warned) == 1  # one warning for the feed, not one per item

    # Other bytes (so the poll parses again), the same items: nothing new, nothing lost.
    feed_server.routes["/f"] = static(
        same_guid_rss(10, "<lastBuildDate>Wed, 12 Feb 2025 12:00:00 +0000</lastBuildDate>")
    )
    second = agg.poll_feed(feed)
    assert (second.status, second.new) == ("ok", 0), second
    assert len(stored(agg)) == 10


def test_shared_guid_and_link_fall_back_to_title_and_date() -> None:
    items = "".join(
        f"<item><title>Title {i}</title><link>https://news.example/index.html</link>"
        f"<guid>g</guid><pubDate>Wed, 12 Feb 2025 1{i}:00:00 +0000</pubDate></item>"
        for i in range(3)
    )
    doc = f"<rss version='2.0'><channel><title>t</title>{items}</channel></rss>".encode()
    feed = parse_feed(doc, "u")
    guids = [e.guid for e in feed.entries]
    assert len(set(guids)) == 3 and all(g.startswith("sha1:") for g in guids)
    assert guids == [e.guid for e in parse_feed(doc, "u").entries]  # stable
    assert len(feed.warnings) == 1


def test_an_item_repeated_with_its_guid_stays_one_entry() -> None:
    item = "<item><title>Same</title><link>https://news.example/1</link><guid>g</guid></item>"
    doc = f"<rss version='2.0'><channel><title>t</title>{item * 3}</channel></rss>".encode()
    feed = parse_feed(doc, "u")
    assert {e.guid for e in feed.entries} == {"g"} and feed.warnings == []


# --- Defect 3: wrong charsets -------------------------------------------------------------

ZH_TITLE = "国标编码的标题"
ZH_BODY = "这家公司以较低的成本训练了大模型，引起全球关注。开源模型惠及全球开发者。"


def zh_rss(declared: str = "utf-8") -> str:
    return (
        f'<?xml version="1.0" encoding="{declared}"?><rss version="2.0"><channel>'
        "<title>新华网科技</title><link>https://gb.example.cn/</link>"
        f"<item><title>{ZH_TITLE}</title><link>https://gb.example.cn/a/1.html</link>"
        f"<description>{ZH_BODY}</description></item>"
        "<item><title>中国人工智能企业发布开源模型</title><link>https://gb.example.cn/a/2.html</link>"
        f"<description>{ZH_BODY}</description></item>"
        "</channel></rss>"
    )


@pytest.mark.parametrize(
    "content_type", ["application/rss+xml", "text/xml; charset=utf-8", "application/xml"]
)
def test_gb2312_document_declaring_utf8_is_read_as_chinese(
    feed_server: FeedServer, make: Make, content_type: str
) -> None:
    feed_server.routes["/gb"] = static(zh_rss().encode("gb2312"), content_type=content_type)
    agg = make({"GB": feed_server.url("/gb")})
    result = agg.poll_feed(agg.config.feeds[0])
    assert (result.status, result.new) == ("ok", 2), result
    titles = [title for _, title, _ in stored(agg)]
    assert titles == [ZH_TITLE, "中国人工智能企业发布开源模型"]
    assert "charset" in (result.error or "")  # recorded on the feed
    with sqlite3.connect(agg.storage.path) as db:
        (recorded,) = db.execute("SELECT error FROM polls").fetchone()
    assert "charset" in recorded  # the poll's record keeps the warning
    assert parse_feed(zh_rss().encode("gb2312"), "u").title == "新华网科技"


def test_utf8_with_a_stray_latin1_byte_keeps_its_chinese(
    feed_server: FeedServer, make: Make
) -> None:
    body = zh_rss().encode("utf-8").replace("引起".encode(), b"\xe9", 1)  # one Latin-1 "é"
    feed_server.routes["/f"] = static(body, content_type="application/rss+xml; charset=utf-8")
    agg = make({"F": feed_server.url("/f")})
    result = agg.poll_feed(agg.config.feeds[0])
    assert (result.status, result.new) == ("ok", 2), result
    titles = [title for _, title, _ in stored(agg)]
    assert titles == [ZH_TITLE, "中国人工智能企业发布开源模型"]
    with sqlite3.connect(agg.storage.path) as db:
        texts = [t for (t,) in db.execute("SELECT text FROM entries ORDER BY id")]
    assert texts[0] == ZH_BODY.replace("引起", "\ufffd")  # only the stray byte is lost
    assert "ä¸" not in "".join(texts)
    assert "charset" in (result.error or "") and "replaced" in (result.error or "")


def test_decoding_honours_a_bom_over_the_declaration() -> None:
    doc = zh_rss(declared="gb2312").encode("utf-16-le")
    feed = parse_feed(b"\xff\xfe" + doc, "u", content_type="application/rss+xml")
    assert [e.title for e in feed.entries][0] == ZH_TITLE and feed.warnings == []


def test_local_files_in_other_encodings_are_detected(tmp_path: Path) -> None:
    (tmp_path / "a_gb.xml").write_bytes(zh_rss().encode("gb2312"))
    (tmp_path / "b_gbk.md").write_bytes(f"# {ZH_TITLE}\n\n{ZH_BODY}\n".encode("gbk"))
    (tmp_path / "c_latin1.txt").write_bytes("# Café\n\ncrème brûlée".encode("latin-1"))

    feed = read_source(tmp_path)

    titles = [e.title for e in feed.entries]
    assert titles == [ZH_TITLE, "中国人工智能企业发布开源模型", ZH_TITLE, "Café"]
    assert feed.entries[2].text == ZH_BODY and feed.entries[3].text == "crème brûlée"
    warned = sorted(w.split(":")[0] for w in feed.warnings)
    assert warned == ["a_gb.xml", "b_gbk.md", "c_latin1.txt"]
    assert all("charset" in w for w in feed.warnings)


# --- Defect 7: local JSON Feed files ------------------------------------------------------

JSON_FEED = {
    "version": "https://jsonfeed.org/version/1.1",
    "title": "JSON news",
    "home_page_url": "https://json.example/",
    "items": [
        {
            "id": "1",
            "url": "https://json.example/1",
            "title": "Summit opens",
            "content_html": "<p>The summit <b>opened</b>.</p>",
            "date_published": "2025-02-10T10:00:00+01:00",
        },
        {
            "id": "2",
            "url": "https://json.example/2",
            "title": "峰会闭幕",
            "content_text": "峰会今天闭幕。",
        },
    ],
}


def entry_view(agg: Aggregator) -> list[tuple[str, str, str | None]]:
    return [(guid, title, link) for guid, title, link in stored(agg)]


@pytest.mark.parametrize(
    "name, body",
    [
        ("feed.json", json.dumps(JSON_FEED, ensure_ascii=False)),
        # no version and a name that says nothing: its shape and .json still make it a feed
        ("feed.json", json.dumps({**JSON_FEED, "version": ""}, ensure_ascii=False)),
        ("feed.txt", json.dumps(JSON_FEED, indent=2, ensure_ascii=False)),
    ],
)
def test_local_json_feed_reads_as_over_http(
    feed_server: FeedServer, make: Make, tmp_path: Path, name: str, body: str
) -> None:
    (tmp_path / "src").mkdir()
    path = tmp_path / "src" / name
    path.write_text(body, encoding="utf-8")
    feed_server.routes["/feed.json"] = static(body, content_type="application/feed+json")
    agg = make({"HTTP": feed_server.url("/feed.json"), "File": str(path)})
    http_feed, file_feed = agg.config.feeds

    assert agg.poll_feed(http_feed).new == 2
    over_http = entry_view(agg)
    result = agg.poll_feed(file_feed)
    assert (result.status, result.new) == ("ok", 2), result
    assert entry_view(agg)[2:] == over_http
    assert [e.title for e in read_source(path).entries] == ["Summit opens", "峰会闭幕"]
    assert read_source(path.parent).entries == read_source(path).entries


RSS = (
    "<?xml version='1.0' encoding='utf-8'?>\n<!-- exported -->\n<rss version='2.0'><channel>"
    "<title>R</title><item><title>Rss item</title><link>https://r.example/1</link></item>"
    "</channel></rss>"
)
ATOM = (
    "<feed xmlns='http://www.w3.org/2005/Atom'><title>A</title><id>urn:a</id>"
    "<updated>2025-02-10T10:00:00Z</updated><entry><title>Atom item</title><id>urn:a:1</id>"
    "<link href='https://a.example/1'/><updated>2025-02-10T10:00:00Z</updated></entry></feed>"
)
RDF = (
    "<?xml version='1.0'?><rdf:RDF xmlns:rdf='http://www.w3.org/1999/02/22-rdf-syntax-ns#' "
    "xmlns='http://purl.org/rss/1.0/'><channel rdf:about='https://d.example/'><title>D</title>"
    "<link>https://d.example/</link></channel><item rdf:about='https://d.example/1'>"
    "<title>Rdf item</title><link>https://d.example/1</link></item></rdf:RDF>"
)


@pytest.mark.parametrize(
    "name, body, title",
    [
        ("rss.xml", RSS, "Rss item"),
        ("rss-comment-first.rss", "<!-- a comment first -->\n" + RSS.split("\n", 1)[1], "Rss item"),
        ("atom.atom", ATOM, "Atom item"),
        ("rdf.rdf", RDF, "Rdf item"),
        ("utf16.xml", "\ufeff" + RSS.replace("utf-8", "utf-16"), "Rss item"),
    ],
)
def test_local_xml_feeds_of_every_format(tmp_path: Path, name: str, body: str, title: str) -> None:
    path = tmp_path / name
    encoding = "utf-16" if "utf-16" in body else "utf-8"
    path.write_bytes(body.lstrip("\ufeff").encode(encoding))
    assert [e.title for e in read_source(path).entries] == [title]
    assert [e.title for e in parse_feed(path.read_bytes(), "u").entries] == [title]


# --- Friction: a count's noun agrees with it ("1 guid", not "1 guid(s)") ---------------------


def test_parse_warnings_count_in_singular_and_plural() -> None:
    def warnings_of(doc: str, content_type: str = "application/rss+xml") -> str:
        return " | ".join(parse_feed(doc.encode(), "u", content_type=content_type).warnings)

    def rss(items: str) -> str:
        return f"<rss version='2.0'><channel><title>t</title>{items}</channel></rss>"

    shared = "".join(
        f"<item><title>T{i}</title><link>https://news.example/{i}</link><guid>g</guid></item>"
        for i in range(2)
    )
    assert "2 entries share 1 guid (e.g. 'g')" in warnings_of(rss(shared))
    both = shared + shared.replace("<guid>g<", "<guid>h<").replace("/news", "/other")
    assert "4 entries share 2 guids" in warnings_of(rss(both))

    json_feed = {"version": "https://jsonfeed.org/version/1.1", "title": "J", "items": []}
    json_feed["items"] = [{"id": "1", "title": "One", "url": "https://j.example/1"}, {"id": "2"}]
    assert "skipped 1 JSON Feed item with nothing in them" in warnings_of(
        json.dumps(json_feed), "application/feed+json"
    )

    malformed = rss("<item><title>Kept</title><link>https://news.example/k</link></item><item>")
    assert "malformed feed, kept 1 recovered entry:" in warnings_of(malformed)

    stray = zh_rss().encode().replace("引起".encode(), b"\xe9", 1)  # one Latin-1 "é"
    feed = parse_feed(stray, "u", content_type="text/xml; charset=utf-8")
    assert "1 undecodable byte sequence replaced" in " ".join(feed.warnings)

    page = "<html><head><link rel='alternate' type='application/rss+xml' href='/rss.xml'>"
    with pytest.raises(HtmlPageError, match=r"the page links to 1 feed: https://s.example/rss"):
        parse_feed(f"{page}</head><body>hi</body></html>".encode(), "https://s.example/")
