"""OPML import and export: names, URLs and folders round-trip; feeds.toml keeps its comments."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from aggregator.config import load_config
from aggregator.exceptions import ParseError
from aggregator.sources.opml import OpmlFeed, parse_opml, render_opml
from aggregator.types import Feed
from tests.conftest import RunCli, write_config

OPML = """<?xml version="1.0" encoding="UTF-8"?>
<opml version="1.0">
  <head><title>My subscriptions</title></head>
  <body>
    <outline text="News" title="News">
      <outline type="rss" text="BBC World" title="BBC World"
        xmlUrl="https://feeds.bbci.co.uk/news/world/rss.xml" htmlUrl="https://www.bbc.co.uk/news"/>
      <outline text="中文">
        <outline type="rss" text="德国之声" xmlUrl="https://rss.dw.com/rdf/rss-chi-all"/>
      </outline>
    </outline>
    <outline type="rss" text="No folder &amp; co" xmlUrl="https://example.org/feed?a=1&amp;b=2"
      category="/Tech/AI,Blogs"/>
    <outline type="rss" text="Local" xmlUrl="file:///etc/passwd"/>
    <outline type="rss" text="Twice" xmlUrl="https://feeds.bbci.co.uk/news/world/rss.xml"/>
    <outline text="Empty folder"/>
  </body>
</opml>
"""


def test_parse_opml_folders_become_tags() -> None:
    assert parse_opml(OPML.encode(), "subs.opml") == [
        OpmlFeed("https://feeds.bbci.co.uk/news/world/rss.xml", "BBC World", ("News",)),
        OpmlFeed("https://rss.dw.com/rdf/rss-chi-all", "德国之声", ("News", "中文")),
        OpmlFeed("https://example.org/feed?a=1&b=2", "No folder & co", ("Tech/AI", "Blogs")),
        OpmlFeed("file:///etc/passwd", "Local", ()),
    ]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"not xml", "not valid XML"),
        (b"<rss/>", "not an OPML document"),
        (b"<opml/>", "without a <body>"),
        (b'<!DOCTYPE x [<!ENTITY a "aaaa">]><opml><body/></opml>', "entity"),
    ],
)
def test_bad_opml(data: bytes, message: str) -> None:
    with pytest.raises(ParseError, match=message):
        parse_opml(data, "x.opml")


@pytest.mark.parametrize("encoding", ["gbk", "big5", "shift_jis", "euc-kr"])
def test_opml_in_a_multi_byte_encoding_is_read(encoding: str) -> None:
    # expat reads none of these: `feeds import` ended in "ValueError: multi-byte encodings
    # are not supported", a traceback, for a list exported by a Chinese or Japanese reader.
    name = {"gbk": "新闻", "big5": "新聞", "shift_jis": "ニュース", "euc-kr": "뉴스"}[encoding]
    document = (
        f'<?xml version="1.0" encoding="{encoding}"?>\n<opml version="1.0"><body>'
        f'<outline text="{name}"><outline text="{name}" xmlUrl="https://e.org/f"/></outline>'
        "</body></opml>"
    )
    assert parse_opml(document.encode(encoding), "subs.opml") == [
        OpmlFeed("https://e.org/f", name, (name,))
    ]


def test_opml_declaring_an_unknown_encoding_is_read_as_feeds_are() -> None:
    # A LookupError traceback before; feeds with a label nobody knows are read as UTF-8.
    data = '<?xml version="1.0" encoding="x-no-such"?><opml><body><outline text="新闻" \
xmlUrl="https://e.org/f"/></body></opml>'.encode()
    assert parse_opml(data, "x.opml") == [OpmlFeed("https://e.org/f", "新闻", ())]


def test_render_then_parse_round_trips() -> None:
    feeds = [
        Feed("https://a.example/rss", "A & B <news>", tags=("News", "World")),
        Feed("https://b.example/atom", "B", tags=("News",)),
        Feed("https://c.example/feed.json", "C"),
        Feed("https://d.example/rss", "D", tags=("News", "World")),
    ]
    text = render_opml(feeds, title="t", created=datetime(2025, 2, 12, tzinfo=UTC))
    assert text.count('text="World"') == 1  # one folder for both feeds in it
    back = parse_opml(text.encode(), "x")
    assert [(f.url, f.name, f.tags) for f in back] == [
        ("https://a.example/rss", "A & B <news>", ("News", "World")),
        ("https://d.example/rss", "D", ("News", "World")),
        ("https://b.example/atom", "B", ("News",)),
        ("https://c.example/feed.json", "C", ()),
    ]


def test_cli_import_export_round_trip(tmp_path: Path, run_cli: RunCli) -> None:
    config = write_config(
        tmp_path,
        '# my feeds\n[[feeds]]\nurl = "https://example.org/feed?a=1&b=2"  # already here\n'
        'name = "BBC World"\n',
    )
    (tmp_path / "subs.opml").write_text(OPML, encoding="utf-8")
    imported = run_cli("feeds", "import", "subs.opml", cwd=tmp_path)
    assert imported.returncode == 0, imported.stderr
    assert "skipped https://example.org/feed?a=1&b=2: already configured" in imported.stderr
    assert "skipped file:///etc/passwd: not an http(s) URL" in imported.stderr
    assert "2 feeds added, 2 skipped" in imported.stderr
    text = config.read_text(encoding="utf-8")
    assert "# my feeds" in text and "# already here" in text
    feeds = {f.url: f for f in load_config(config).feeds}
    bbc = feeds["https://feeds.bbci.co.uk/news/world/rss.xml"]
    assert bbc.name == "BBC World (2)" and bbc.tags == ("News",)  # the name was taken
    assert feeds["https://rss.dw.com/rdf/rss-chi-all"].tags == ("News", "中文")
    again = run_cli("feeds", "import", "subs.opml", cwd=tmp_path)
    assert again.returncode == 0 and "0 feeds added" in again.stderr

    exported = run_cli("feeds", "export", cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr
    round_trip = {(f.url, f.name, f.tags) for f in parse_opml(exported.stdout.encode(), "-")}
    assert round_trip == {(f.url, f.name, f.tags) for f in feeds.values()}

    (tmp_path / "other").mkdir()
    write_config(tmp_path / "other", "")
    (tmp_path / "other" / "out.opml").write_text(exported.stdout, encoding="utf-8")
    assert run_cli("feeds", "import", "out.opml", cwd=tmp_path / "other").returncode == 0
    copied = {(f.url, f.name, f.tags) for f in load_config(tmp_path / "other" / "feeds.toml").feeds}
    assert copied == round_trip


def test_cli_import_errors(tmp_path: Path, run_cli: RunCli) -> None:
    write_config(tmp_path, "")
    (tmp_path / "bad.opml").write_text("<html/>", encoding="utf-8")
    bad = run_cli("feeds", "import", "bad.opml", cwd=tmp_path)
    assert bad.returncode == 1 and "not an OPML document" in bad.stderr
    missing = run_cli("feeds", "import", "nope.opml", cwd=tmp_path)
    assert missing.returncode == 2 and "nope.opml" in missing.stderr


def test_export_leaves_out_local_sources(workdir: Path, run_cli: RunCli) -> None:
    exported = run_cli("feeds", "export", cwd=workdir)
    assert exported.returncode == 0
    assert parse_opml(exported.stdout.encode(), "-") == []
    assert "left out the local source Seeds" in exported.stderr


def test_a_name_holding_a_line_break_is_made_one_line_or_refused(
    tmp_path: Path, run_cli: RunCli
) -> None:
    """A feed's name holding a newline or a tab broke `feeds list`'s lines and made `feeds
    export` write OPML that `feeds import` refused. An imported title is made one line; a
    name written so in feeds.toml is an error naming its key."""
    config = write_config(tmp_path, "")
    (tmp_path / "subs.opml").write_text(
        '<opml version="2.0"><body><outline type="rss" title="BBC&#10;World&#9;News"'
        ' xmlUrl="https://e.org/bbc"/></body></opml>',
        encoding="utf-8",
    )
    assert run_cli("feeds", "import", "subs.opml", cwd=tmp_path).returncode == 0
    assert [f.name for f in load_config(config).feeds] == ["BBC World News"]
    listed = run_cli("feeds", "list", cwd=tmp_path)
    assert listed.stdout.count("\n") == 1 and "BBC World News" in listed.stdout
    exported = run_cli("feeds", "export", cwd=tmp_path)
    assert [f.name for f in parse_opml(exported.stdout.encode(), "-")] == ["BBC World News"]
    write_config(tmp_path, '[[feeds]]\nurl = "https://e.org/f"\nname = "BBC\\nWorld"\n')
    refused = run_cli("feeds", "list", cwd=tmp_path)
    assert refused.returncode == 2
    assert "feeds[0].name" in refused.stderr and "control characters ('\\n')" in refused.stderr
