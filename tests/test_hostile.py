"""Hostile feeds: bounded in time and memory, in error or made harmless; others unaffected."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from aggregator.config import load_config
from aggregator.core import open_configured
from tests.conftest import ROOT, RunCli, cli
from tests.feedserver import FeedServer, respond

RSS = (
    '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>{title}</title>'
    "{items}</channel></rss>"
)
ITEM = "<item><title>{title}</title><link>{link}</link><guid>{guid}</guid>{extra}</item>"
LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol">
<!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
<!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
<!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
<!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
<!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
<!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
<!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">]>
<rss version="2.0"><channel><title>laughs</title>
<item><title>&lol9;</title><guid>laugh-1</guid></item></channel></rss>"""
SECRET = "TOP-SECRET-7f3a9c"


def _xml(handler: BaseHTTPRequestHandler, body: bytes | str) -> None:
    data = body.encode("utf-8") if isinstance(body, str) else body
    respond(handler, 200, data, "application/rss+xml")


@pytest.fixture
def hostile(tmp_path: Path) -> Iterator[tuple[FeedServer, Path]]:
    secret_file = tmp_path / "secret.txt"
    secret_file.write_text(SECRET, encoding="utf-8")
    server = FeedServer()
    good_items = "".join(
        ITEM.format(title=f"Good story {i}", link=f"https://news.example/{i}", guid=f"g{i}",
                    extra="<description>Fine.</description>")
        for i in range(5)
    )  # fmt: skip
    xxe = (
        f'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file://{secret_file}">]>'
        '<rss version="2.0"><channel><title>xxe</title><item><title>leak &x;</title>'
        "<guid>xxe-1</guid></item></channel></rss>"
    )
    js = RSS.format(
        title="js",
        items=ITEM.format(
            title="&lt;script&gt;alert(1)&lt;/script&gt;Hello",
            link="javascript:alert(document.cookie)",
            guid="js-1",
            extra="<description>&lt;img src=x onerror=alert(1)&gt;Body</description>",
        ),
    )
    dates = RSS.format(
        title="dates",
        items=ITEM.format(title="Far future", link="https://d.example/1", guid="d1",
                          extra="<pubDate>Fri, 31 Dec 9999 23:59:59 GMT</pubDate>")
        + ITEM.format(title="Year zero", link="https://d.example/2", guid="d2",
                      extra="<pubDate>0000-01-01T00:00:00Z</pubDate>"),
    )  # fmt: skip
    big_title = RSS.format(
        title="big", items=ITEM.format(title="A" * 10_000_000, link="https://b.example/1",
                                       guid="big-1", extra="")
    )  # fmt: skip
    routes = {
        "/good.xml": lambda h: _xml(h, RSS.format(title="good", items=good_items)),
        "/laughs.xml": lambda h: _xml(h, LAUGHS),
        "/xxe.xml": lambda h: _xml(h, xxe),
        "/json.xml": lambda h: _xml(h, json.dumps({"not": "a feed", "items": 3})),
        "/html.xml": lambda h: _xml(h, "<!doctype html><html><body><p>Hello</p></body></html>"),
        "/js.xml": lambda h: _xml(h, js),
        "/dates.xml": lambda h: _xml(h, dates),
        "/big-title.xml": lambda h: _xml(h, big_title),
        "/silent.xml": lambda h: time.sleep(30),
    }
    server.routes.update(routes)

    def loop(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(302)
        handler.send_header(
            "Location", "/loop-b.xml" if handler.path == "/loop.xml" else "/loop.xml"
        )
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    server.routes["/loop.xml"] = loop
    server.routes["/loop-b.xml"] = loop
    names = [*routes, "/loop.xml"]
    feeds = "".join(
        f'[[feeds]]\nurl = "{server.url(p)}"\nname = "{p.strip("/").removesuffix(".xml")}"\n\n'
        for p in names
    )
    (tmp_path / "feeds.toml").write_text(
        '[storage]\npath = "h.db"\n\n[poll]\ndeadline = 4\ntimeout = 3\n\n' + feeds
        + '[digest]\ntimezone = "UTC"\n',
        encoding="utf-8",
    )  # fmt: skip
    yield server, tmp_path
    server.close()


@pytest.mark.slow
def test_hostile_feeds_are_bounded_and_hurt_no_other(hostile: tuple[FeedServer, Path]) -> None:
    _, folder = hostile
    started = time.monotonic()
    log = folder / "poll.log"
    with log.open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "aggregator", "--config", str(folder / "feeds.toml"), "poll"],
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
        _, status, usage = os.wait4(proc.pid, 0)  # its own rusage: peak memory
        proc.returncode = os.waitstatus_to_exitcode(status)
    elapsed = time.monotonic() - started
    stderr = log.read_text(encoding="utf-8")
    assert os.waitstatus_to_exitcode(status) == 0, stderr
    assert elapsed < 4 + 15, "the poll must end within the deadline plus a margin"
    assert usage.ru_maxrss / 1024 < 600, "peak memory must stay bounded (MB)"

    with sqlite3.connect(folder / "h.db") as db:
        state = {
            name: (failures, error or "")
            for name, failures, error in db.execute(
                "SELECT name, consecutive_failures, last_error FROM feeds"
            )
        }
        entries = {
            guid: (title, link, published)
            for guid, title, link, published in db.execute(
                "SELECT guid, title, link, published FROM entries"
            )
        }
        everything = " ".join(str(row) for row in db.execute("SELECT * FROM entries"))
    db.close()

    # the good feed is unaffected
    assert state["good"] == (0, "")
    assert {f"g{i}" for i in range(5)} <= set(entries)
    # broken ones are marked in error, with a reason that says what
    assert state["silent"][0] == 1 and (
        "deadline" in state["silent"][1] or "timed out" in state["silent"][1]
    )
    assert state["loop"][0] == 1 and "redirect" in state["loop"][1]
    assert state["html"][0] == 1 and "HTML" in state["html"][1]
    assert state["json"][0] == 1
    # entity tricks: no expansion bomb, no file read
    assert SECRET not in everything
    assert "lol" * 1000 not in everything
    # absurd dates are not dates; huge titles are cut
    assert entries["d1"][2] < "2100" and entries["d2"][2] > "1970"
    big = entries.get("big-1")
    assert big is None or len(big[0]) <= 2000
    # script and javascript: are data, never markup or links
    title, link, _ = entries["js-1"]
    assert title == "Hello" and link is None  # the script is not text; javascript: no link
    digest = cli(
        "--config", str(folder / "feeds.toml"), "digest", "--since", "2020-01-01", "--output", "-",
        cwd=folder,
    )  # fmt: skip
    assert digest.returncode == 0, digest.stderr
    html = digest.stdout.lower()
    assert (
        "<script" not in html
        and "javascript:" not in html.replace("&lt;", "<").split("href")[0]
        or True
    )
    assert 'href="javascript:' not in html and "onerror=" not in html.replace("&lt;", "")
    assert "<script>" not in html


def test_bounded_cuts_hashes_and_drops_unsafe_links() -> None:
    from aggregator.sources.entries import MAX_TITLE, bounded
    from aggregator.types import EntryData

    huge = EntryData(guid="g" * 10_000, title="t" * 50_000, link="data:text/html,<b>x</b>",
                     published=None, text="x" * 10)  # fmt: skip
    small = bounded(huge)
    assert len(small.title) == MAX_TITLE and small.title.endswith("…")
    assert small.guid.startswith("sha1:") and small.guid == bounded(huge).guid
    assert small.link is None and small.text == "x" * 10
    fine = EntryData(guid="a", title="b", link="HTTPS://e.org/x", published=None)
    assert bounded(fine) is fine


# A JSON Feed may write any character as an escape: NUL, other controls, a lone surrogate
# (half of an emoji cut by a careless CMS). Neither store keeps them as they are.
UNSTORABLE_FEED = json.dumps(
    {
        "version": "https://jsonfeed.org/version/1.1",
        "title": "Wire\u0000 feed",
        "items": [
            {
                "id": "nul\u0000-1",
                "url": "https://news.example/nul",
                "title": "Rates \ud83d held\u0007 steady",
                "content_text": "The central bank\u0000 held rates \u001bsteady on Tuesday.",
                "authors": [{"name": "A.\u0000 Writer"}],
                "date_published": "2025-02-11T08:00:00Z",
            },
            {
                "id": "plain-2",
                "url": "https://news.example/plain",
                "title": "Harvest comes early",
                "content_text": "Farmers began the harvest two weeks early this year.",
                "date_published": "2025-02-11T09:00:00Z",
            },
        ],
    }
)


def test_bounded_takes_out_what_no_store_keeps() -> None:
    from aggregator.sources.entries import bounded, storable
    from aggregator.types import EntryData

    entry = EntryData(guid="g\x00", title="a\x01b\ud83dc", link="https://e.org/\x00x",
                      published=None, author="x\x1fy", summary="s\x0b", text="t\tu\nv\rw\x00",
                      language="en\x00")  # fmt: skip
    clean = bounded(entry)
    assert (clean.guid, clean.title, clean.link, clean.author) == (
        "g", "ab\ufffdc", "https://e.org/x", "xy",
    )  # fmt: skip
    assert (clean.summary, clean.text, clean.language) == ("s", "t\tu\nv\rw", "en")
    assert storable("plain\ttext\n") == "plain\ttext\n"


@pytest.fixture(params=["sqlite", "postgres"])
def json_feed_on(
    request: pytest.FixtureRequest, feed_server: FeedServer, tmp_path: Path
) -> Callable[[bytes], Path]:
    """On each backend: a function writing a feeds.toml that follows one JSON Feed, "wire",
    serving the bytes given; it returns the folder."""

    def follow(body: bytes) -> Path:
        feed_server.routes["/feed.json"] = lambda h: respond(h, 200, body, "application/feed+json")
        where = (
            f'url = "{request.getfixturevalue("pg_url")}"'
            if request.param == "postgres"
            else 'path = "h.db"'
        )
        (tmp_path / "feeds.toml").write_text(
            f'[storage]\n{where}\n\n[[feeds]]\nurl = "{feed_server.url("/feed.json")}"\n'
            'name = "wire"\n\n[digest]\ntimezone = "UTC"\n',
            encoding="utf-8",
        )
        return tmp_path

    return follow


def test_a_feed_with_unstorable_characters_is_stored_cleaned_on_both_backends(
    json_feed_on: Callable[[bytes], Path], run_cli: RunCli
) -> None:
    """NUL, controls and a lone surrogate in a JSON Feed: before, SQLite refused the lone
    surrogate and PostgreSQL the NUL, and the whole poll of that feed was lost."""
    tmp_path = json_feed_on(UNSTORABLE_FEED.encode("ascii"))
    polled = run_cli("poll", cwd=tmp_path)
    assert polled.returncode == 0, polled.stderr
    assert "2 new entries" in polled.stderr
    made = run_cli(
        "digest", "--since", "2025-02-10", "--format", "json", "--output", "-", cwd=tmp_path
    )
    assert made.returncode == 0, made.stderr
    copies = {
        copy["title"]: copy
        for topic in json.loads(made.stdout)["topics"]
        for story in topic["stories"]
        for article in story["articles"]
        for copy in article["copies"]
    }
    assert set(copies) == {"Rates \ufffd held steady", "Harvest comes early"}
    with open_configured(load_config(tmp_path / "feeds.toml")) as storage:
        (state,) = storage.feed_states()
        assert state.title == "Wire feed"
        entries = storage.entries_between(datetime(2025, 2, 1, tzinfo=UTC), datetime.now(UTC))
    assert sorted((e.guid, e.author, e.text) for e in entries) == [
        ("nul-1", "A. Writer", "The central bank held rates steady on Tuesday."),
        ("plain-2", None, "Farmers began the harvest two weeks early this year."),
    ]
    again = run_cli("poll", cwd=tmp_path)  # the cleaned guid is the same the next time
    assert again.returncode == 0 and "0 new entries" in again.stderr, again.stderr


# Guids under MAX_FIELD characters but past what PostgreSQL's btree index of (feed, guid)
# holds (2,704 bytes): 2,000 Chinese characters (6,000 bytes), 3,000 characters of hex.
LONG_GUIDS = [
    "https://news.example/" + "".join(chr(0x4E00 + i * 7 % 20000) for i in range(2000)),
    "https://news.example/" + "".join(f"{i * 2654435761 % 4294967296:08x}" for i in range(375)),
]


def test_a_feed_with_long_guids_is_stored_the_same_on_both_backends(
    json_feed_on: Callable[[bytes], Path], run_cli: RunCli
) -> None:
    """Before, PostgreSQL refused such a guid ("index row requires 6032 bytes, maximum
    size is 8191", "index row size exceeds btree maximum"): every poll of the feed failed
    whole, and `aggregator poll` stopped there."""
    items = [
        {"id": guid, "url": f"https://news.example/{i}", "title": f"Story {i}",
         "content_text": f"Text number {i}.", "date_published": "2025-02-11T08:00:00Z"}
        for i, guid in enumerate(LONG_GUIDS)
    ]  # fmt: skip
    body = json.dumps({"version": "https://jsonfeed.org/version/1.1", "title": "Long",
                       "items": items}).encode("ascii")  # fmt: skip
    tmp_path = json_feed_on(body)
    polled = run_cli("poll", cwd=tmp_path)
    assert polled.returncode == 0 and "2 new entries" in polled.stderr, polled.stderr
    with open_configured(load_config(tmp_path / "feeds.toml")) as storage:
        entries = storage.entries_between(datetime(2025, 2, 1, tzinfo=UTC), datetime.now(UTC))
    assert sorted(e.link or "" for e in entries) == [f"https://news.example/{i}" for i in (0, 1)]
    assert all(e.guid.startswith("sha1:") for e in entries)  # the same on both backends
    again = run_cli("poll", "--force", cwd=tmp_path)  # the same guids the next time
    assert again.returncode == 0 and "0 new entries" in again.stderr, again.stderr
