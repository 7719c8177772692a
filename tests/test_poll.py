"""core.poll / poll_feed against real HTTP servers on 127.0.0.1, a real SQLite file."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

import aggregator.poller
import aggregator.sources.parse
from aggregator.config import load_config
from aggregator.core import Aggregator, make_aggregator
from aggregator.exceptions import HtmlPageError
from aggregator.types import Feed
from tests.conftest import FrozenClock, write_config
from tests.feedserver import FeedServer, respond, static

DATA = Path(__file__).parent / "data"
ITEM = (
    "<item><title>{title}</title><link>http://127.0.0.1/{guid}</link><guid>{guid}</guid>"
    "<pubDate>{date}</pubDate><description>{title} body</description></item>"
)


def rss(*items: tuple[str, str], ttl: int | None = None, dates: list[str] | None = None) -> bytes:
    body = "".join(
        ITEM.format(
            guid=g, title=t, date=(dates[i] if dates else "Wed, 12 Feb 2025 10:00:00 +0000")
        )
        for i, (g, t) in enumerate(items)
    )
    ttl_tag = f"<ttl>{ttl}</ttl>" if ttl else ""
    return (
        f"<?xml version='1.0' encoding='utf-8'?><rss version='2.0'><channel><title>Local</title>"
        f"<link>http://127.0.0.1/</link>{ttl_tag}{body}</channel></rss>"
    ).encode()


AggFactory = Callable[..., Aggregator]


@pytest.fixture
def make(tmp_path: Path, clock: FrozenClock) -> Iterator[AggFactory]:
    """Build an Aggregator on a temp feeds.toml: make({name: (url, extra keys)}, poll=...)."""
    made: list[Aggregator] = []

    def build(feeds: dict[str, str], poll: str = "", interval: str | None = "1m") -> Aggregator:
        tables = "".join(
            f'[[feeds]]\nurl = "{url}"\nname = "{name}"\n'
            + (f'interval = "{interval}"\n' if interval else "")
            for name, url in feeds.items()
        )
        path = write_config(tmp_path, tables, f"\n[poll]\ntimeout = 2\ndeadline = 3\n{poll}")
        agg = make_aggregator(load_config(path), clock=clock, rand=lambda: 0.0)
        made.append(agg)
        return agg

    yield build
    for agg in made:
        agg.close()


def entries(agg: Aggregator) -> list[tuple[str, str, str]]:
    with sqlite3.connect(agg.storage.path) as db:
        return db.execute("SELECT guid, title, updated_at FROM entries ORDER BY guid").fetchall()


def polls(agg: Aggregator) -> list[tuple[str, int | None]]:
    with sqlite3.connect(agg.storage.path) as db:
        return db.execute("SELECT status, http_status FROM polls ORDER BY id").fetchall()


def only(agg: Aggregator) -> Feed:
    return agg.config.feeds[0]


@pytest.mark.parametrize("validator", ["etag", "last_modified"])
def test_304_costs_no_parse_and_no_entry_writes(
    feed_server: FeedServer, make: AggFactory, clock: FrozenClock, validator: str
) -> None:
    body = rss(("a", "Alpha"), ("b", "Beta"))
    header = {
        "etag": ("ETag", '"v1"'),
        "last_modified": ("Last-Modified", "Wed, 12 Feb 2025 10:00:00 GMT"),
    }
    name, value = header[validator]
    sent = "If-None-Match" if validator == "etag" else "If-Modified-Since"

    def handle(h: BaseHTTPRequestHandler) -> None:
        if h.headers.get(sent) == value:
            respond(h, 304)
        else:
            respond(h, 200, body, headers={name: value})

    feed_server.routes["/f"] = handle
    agg = make({"F": feed_server.url("/f")})
    first = agg.poll_feed(only(agg))
    assert (first.status, first.new, first.http_status) == ("ok", 2, 200)
    before = entries(agg)
    clock.advance(minutes=5)
    second = agg.poll_feed(only(agg))
    assert (second.status, second.new, second.updated, second.http_status) == (
        "not_modified", 0, 0, 304,
    )  # fmt: skip
    assert entries(agg) == before
    assert polls(agg) == [("ok", 200), ("not_modified", 304)]
    state = agg.storage.feed_state(only(agg).url)
    assert state is not None and getattr(state, validator) == value
    assert state.last_success == clock() and state.next_poll == clock() + timedelta(minutes=1)


def test_same_bytes_are_not_parsed_again(feed_server: FeedServer, make: AggFactory) -> None:
    feed_server.routes["/f"] = static(rss(("a", "Alpha")))
    agg = make({"F": feed_server.url("/f")})
    assert agg.poll_feed(only(agg)).status == "ok"
    assert agg.poll_feed(only(agg)).status == "not_modified"
    feed_server.routes["/f"] = static(rss(("a", "Alpha"), ("b", "Beta")))
    third = agg.poll_feed(only(agg))
    assert (third.status, third.new) == ("ok", 1)
    assert [s for s, _ in polls(agg)] == ["ok", "not_modified", "ok"]


def test_301_is_recorded_and_later_polls_go_to_the_new_url(
    feed_server: FeedServer, make: AggFactory
) -> None:
    feed_server.routes["/old"] = static(b"", status=301, headers={"Location": "/new"})
    feed_server.routes["/new"] = static(rss(("a", "Alpha")))
    agg = make({"F": feed_server.url("/old")})
    assert agg.poll_feed(only(agg)).new == 1
    state = agg.storage.feed_state(only(agg).url)
    assert state is not None and state.redirected_url == feed_server.url("/new")
    assert agg.status()[0].redirected_url == feed_server.url("/new")
    feed_server.routes["/new"] = static(rss(("a", "Alpha"), ("b", "Beta")))
    assert agg.poll_feed(only(agg)).new == 1
    assert [s.path for s in feed_server.seen] == ["/old", "/new", "/new"]
    assert {guid for guid, _, _ in entries(agg)} == {"a", "b"}  # still under the configured feed


def test_302_is_followed_without_recording(feed_server: FeedServer, make: AggFactory) -> None:
    feed_server.routes["/old"] = static(b"", status=302, headers={"Location": "/new"})
    feed_server.routes["/new"] = static(rss(("a", "Alpha")))
    agg = make({"F": feed_server.url("/old")})
    agg.poll_feed(only(agg))
    agg.poll_feed(only(agg))
    state = agg.storage.feed_state(only(agg).url)
    assert state is not None and state.redirected_url is None
    assert [s.path for s in feed_server.seen] == ["/old", "/new", "/old", "/new"]


def test_410_disables_until_enabled(feed_server: FeedServer, make: AggFactory) -> None:
    feed_server.routes["/f"] = static(b"gone", status=410, content_type="text/plain")
    agg = make({"F": feed_server.url("/f")})
    result = agg.poll_feed(only(agg))
    assert result.status == "gone" and result.next_poll is None and "410" in (result.error or "")
    health = agg.status()[0]
    assert health.disabled and "410" in (health.disabled_reason or "") and health.next_poll is None
    assert not health.failing  # disabled on purpose: not a monitoring alarm
    skipped = agg.poll()
    assert [r.status for r in skipped] == ["skipped"] and "disabled" in (skipped[0].error or "")
    assert len(feed_server.seen) == 1
    assert agg.poll(force=True)[0].status == "gone" and len(feed_server.seen) == 2
    feed_server.routes["/f"] = static(rss(("a", "Alpha")))
    agg.enable("F")
    assert not agg.status()[0].disabled
    assert agg.poll()[0].status == "ok"


def test_429_retry_after_delays_the_next_poll(
    feed_server: FeedServer, make: AggFactory, clock: FrozenClock
) -> None:
    feed_server.routes["/f"] = static(b"", status=429, headers={"Retry-After": "3600"})
    agg = make({"F": feed_server.url("/f")})
    result = agg.poll_feed(only(agg))
    assert result.status == "error" and result.next_poll == clock() + timedelta(hours=1)
    state = agg.storage.feed_state(only(agg).url)
    assert state is not None and state.retry_after == clock() + timedelta(hours=1)
    clock.advance(minutes=30)
    assert agg.poll()[0].status == "skipped" and len(feed_server.seen) == 1
    assert agg.poll(force=True)[0].status == "error" and len(feed_server.seen) == 2
    # An HTTP-date works as well; once it has passed, a plain poll fetches again.
    feed_server.routes["/f"] = static(rss(("a", "Alpha")))
    clock.advance(hours=2)
    assert agg.poll()[0].status == "ok"


def test_503_retry_after_http_date(
    feed_server: FeedServer, make: AggFactory, clock: FrozenClock
) -> None:
    feed_server.routes["/f"] = static(
        b"", status=503, headers={"Retry-After": "Wed, 12 Feb 2025 14:00:00 GMT"}
    )
    agg = make({"F": feed_server.url("/f")})
    assert agg.poll_feed(only(agg)).next_poll == clock() + timedelta(hours=2)


def test_500_backs_off_and_recovers(
    feed_server: FeedServer, make: AggFactory, clock: FrozenClock
) -> None:
    feed_server.routes["/f"] = static(b"oops", status=500, content_type="text/plain")
    agg = make({"F": feed_server.url("/f")})
    waits = []
    for _ in range(4):
        result = agg.poll_feed(only(agg))
        assert result.status == "error" and result.next_poll is not None
        waits.append(result.next_poll - clock())
        clock.advance(hours=1)
    assert waits == [timedelta(minutes=m) for m in (1, 2, 4, 8)]  # rand() is 0: no jitter
    health = agg.status()[0]
    assert (
        health.consecutive_failures == 4 and health.failing and "500" in (health.last_error or "")
    )
    assert agg.poll()[0].status == "error"  # backoff is a schedule: `poll` still fetches
    feed_server.routes["/f"] = static(rss(("a", "Alpha")))
    result = agg.poll_feed(only(agg))
    assert result.status == "ok" and result.next_poll == clock() + timedelta(minutes=1)
    health = agg.status()[0]
    assert health.consecutive_failures == 0 and health.last_error is None and not health.failing


def test_network_error_is_recorded(make: AggFactory) -> None:
    agg = make({"F": "http://127.0.0.1:9/feed"})
    result = agg.poll_feed(only(agg))
    assert result.status == "error" and "network error" in (result.error or "")


def test_malformed_xml_keeps_recovered_entries_with_a_warning(
    feed_server: FeedServer, make: AggFactory
) -> None:
    feed_server.routes["/f"] = static((DATA / "src_malformed.xml").read_bytes())
    agg = make({"F": feed_server.url("/f")})
    result = agg.poll_feed(only(agg))
    assert result.status == "ok" and result.new >= 1 and "malformed" in (result.error or "")
    assert "First entry survives" in [title for _, title, _ in entries(agg)]
    with sqlite3.connect(agg.storage.path) as db:
        assert "malformed" in db.execute("SELECT error FROM polls").fetchone()[0]


def test_html_page_is_an_error_naming_the_feeds_it_links_to(
    feed_server: FeedServer, make: AggFactory
) -> None:
    page = (
        "<html><head><title>Blog</title>"
        '<link rel="alternate" type="application/rss+xml" href="/rss.xml">'
        '<link rel="alternate" type="application/feed+json" href="/feed.json">'
        "</head><body>hi</body></html>"
    )
    feed_server.routes["/"] = static(page, content_type="text/html; charset=utf-8")
    agg = make({"F": feed_server.url("/")})
    result = agg.poll_feed(only(agg))
    assert result.status == "error" and "HTML page, not a feed" in (result.error or "")
    assert feed_server.url("/rss.xml") in (result.error or "")
    with pytest.raises(HtmlPageError) as info:
        agg.read(only(agg))
    assert info.value.feed_links == (feed_server.url("/rss.xml"), feed_server.url("/feed.json"))


@pytest.mark.parametrize(
    "content_type",
    ["text/xml; charset=utf-8", "text/xml; charset=x-no-such-charset", "application/rss+xml"],
)
def test_non_utf8_feed_with_right_wrong_or_unknown_charset(
    feed_server: FeedServer, make: AggFactory, content_type: str
) -> None:
    feed_server.routes["/gb"] = static(
        (DATA / "src_gb2312.xml").read_bytes(), content_type=content_type
    )
    agg = make({"F": feed_server.url("/gb")})
    result = agg.poll_feed(only(agg))
    assert result.status == "ok" and result.new == 1, result
    assert entries(agg)[0][1] == "中国人工智能企业发布开源模型"


def test_undecodable_bytes_do_not_crash(feed_server: FeedServer, make: AggFactory) -> None:
    body = rss(("a", "Alpha")).replace(b"Alpha", b"Al\xff\xfepha")
    feed_server.routes["/f"] = static(body, content_type="text/xml; charset=utf-8")
    agg = make({"F": feed_server.url("/f")})
    result = agg.poll_feed(only(agg))
    assert result.status in ("ok", "error")  # recorded either way, never raised
    assert agg.status()[0].last_attempt is not None


JSON_FEED = {
    "version": "https://jsonfeed.org/version/1.1",
    "title": "JSON news",
    "home_page_url": "https://json.example/",
    "language": "en",
    "items": [
        {
            "id": "1",
            "url": "https://json.example/1",
            "title": "Summit opens",
            "content_html": "<p>The summit <b>opened</b>.</p>",
            "date_published": "2025-02-10T10:00:00+01:00",
            "authors": [{"name": "Ann"}],
        },
        {
            "id": 2,
            "content_text": "A note without a title.",
            "date_modified": "2025-02-11T08:00:00Z",
        },
    ],
}


@pytest.mark.parametrize(
    "content_type", ["application/feed+json", "application/json", "text/plain"]
)
def test_json_feed_is_recognised_by_type_or_shape(
    feed_server: FeedServer, make: AggFactory, content_type: str
) -> None:
    feed_server.routes["/feed.json"] = static(json.dumps(JSON_FEED), content_type=content_type)
    agg = make({"F": feed_server.url("/feed.json")})
    assert agg.poll_feed(only(agg)).new == 2
    with sqlite3.connect(agg.storage.path) as db:
        rows = db.execute(
            "SELECT guid, title, link, published, author, text, language FROM entries ORDER BY guid"
        ).fetchall()
    assert rows[0] == (
        "1", "Summit opens", "https://json.example/1", "2025-02-10T09:00:00.000000+00:00", "Ann",
        "The summit opened.", "en",
    )  # fmt: skip
    assert rows[1][0] == "2" and rows[1][1] == "A note without a title."
    assert rows[1][3] == "2025-02-11T08:00:00.000000+00:00"


@pytest.mark.parametrize("content_type", ["application/json", "application/feed+json"])
def test_an_xml_feed_labelled_json_is_read_as_xml(
    feed_server: FeedServer, make: AggFactory, content_type: str
) -> None:
    # A server that labels its RSS application/json failed every poll with "not valid
    # JSON: Expecting value: line 1 column 1", though the body plainly starts with "<?xml".
    body = (
        '\ufeff<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>T'
        "</title><item><title>Summit opens</title><guid>1</guid></item></channel></rss>"
    )
    feed_server.routes["/feed"] = static(body, content_type=content_type)
    agg = make({"F": feed_server.url("/feed")})
    result = agg.poll_feed(only(agg))
    assert (result.status, result.new, result.error) == ("ok", 1, None)
    with sqlite3.connect(agg.storage.path) as db:
        assert db.execute("SELECT guid, title FROM entries").fetchall() == [("1", "Summit opens")]


def test_adaptive_interval_ttl_and_max_age(
    feed_server: FeedServer, make: AggFactory, clock: FrozenClock
) -> None:
    # Ten entries two hours apart, the last one at "now": about two hours between polls.
    dates = [
        (clock() - timedelta(hours=2 * i)).strftime("%a, %d %b %Y %H:%M:%S +0000")
        for i in range(10)
    ]
    body = rss(*[(str(i), f"Entry {i}") for i in range(10)], dates=dates)
    feed_server.routes["/f"] = static(body)
    agg = make({"F": feed_server.url("/f")}, interval=None)
    result = agg.poll_feed(only(agg))
    assert result.next_poll == clock() + timedelta(hours=2 * 9) / 10
    feed_server.routes["/f"] = static(
        body.replace(b"<title>Local</title>", b"<title>L</title><ttl>240</ttl>")
    )
    assert agg.poll_feed(only(agg)).next_poll == clock() + timedelta(hours=4)
    feed_server.routes["/f"] = static(body + b" ", headers={"Cache-Control": "max-age=36000"})
    assert agg.poll_feed(only(agg)).next_poll == clock() + timedelta(hours=10)


def test_fixed_interval_below_the_minimum_is_honoured(
    feed_server: FeedServer, make: AggFactory, clock: FrozenClock
) -> None:
    feed_server.routes["/f"] = static(rss(("a", "A")), headers={"Cache-Control": "max-age=3600"})
    agg = make({"F": feed_server.url("/f")}, interval="10s")
    assert agg.poll_feed(only(agg)).next_poll == clock() + timedelta(seconds=10)


def test_poll_runs_feeds_concurrently_and_one_bad_feed_hurts_no_other(
    feed_server: FeedServer, make: AggFactory
) -> None:
    feed_server.routes["/good"] = static(rss(("a", "Alpha")))
    feed_server.routes["/bad"] = static(b"", status=500)
    feed_server.routes["/page"] = static("<html><body>x</body></html>", content_type="text/html")
    agg = make(
        {
            "Good": feed_server.url("/good"),
            "Bad": feed_server.url("/bad"),
            "Page": feed_server.url("/page"),
            "Local": str(DATA / "src_atom.xml"),
        }
    )
    results = {r.feed_name: r for r in agg.poll()}
    assert {n: r.status for n, r in results.items()} == {
        "Good": "ok", "Bad": "error", "Page": "error", "Local": "ok",
    }  # fmt: skip
    assert results["Good"].new == 1 and results["Local"].new >= 1


def test_a_parser_crash_on_one_feed_is_recorded_and_the_others_are_polled(
    feed_server: FeedServer, make: AggFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = aggregator.sources.parse.parse_feed

    def flaky(data: bytes, url: str, **kwargs: object) -> object:
        if url.endswith("/crash"):
            raise RecursionError("maximum recursion depth exceeded")  # a bug, not bad input
        return real(data, url, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(aggregator.sources.parse, "parse_feed", flaky)  # core imports it per call
    feed_server.routes["/crash"] = static(rss(("a", "Alpha")))
    feed_server.routes["/fine"] = static(rss(("b", "Beta")))
    agg = make({"Crash": feed_server.url("/crash"), "Fine": feed_server.url("/fine")})
    results = {r.feed_name: r for r in agg.poll()}
    assert results["Fine"].status == "ok" and results["Fine"].new == 1
    assert results["Crash"].status == "error"
    assert "unexpected error while parsing: RecursionError" in (results["Crash"].error or "")
    assert agg.status()[0].consecutive_failures == 1


def test_same_bytes_are_parsed_again_after_the_feed_settings_change(
    feed_server: FeedServer, make: AggFactory
) -> None:
    feed_server.routes["/f"] = static(rss(("a", "Alpha")))
    agg = make({"F": feed_server.url("/f")})
    assert agg.poll_feed(only(agg)).status == "ok"
    assert agg.poll_feed(only(agg)).status == "not_modified"
    edited = dataclasses.replace(only(agg), timezone="Asia/Shanghai")
    assert agg.poll_feed(edited).status == "ok"


def test_local_source_without_interval_is_read_at_the_default_interval(
    make: AggFactory, clock: FrozenClock
) -> None:
    agg = make({"Local": str(DATA / "src_atom.xml")}, interval=None)
    result = agg.poll_feed(only(agg))
    assert result.status == "ok" and result.next_poll == clock() + timedelta(minutes=30)


def test_retry_after_and_backoff_apply_to_that_feed_not_its_host(
    feed_server: FeedServer, make: AggFactory
) -> None:
    feed_server.routes["/busy"] = static(b"", status=429, headers={"Retry-After": "600"})
    feed_server.routes["/fine"] = static(rss(("a", "Alpha")))
    agg = make({"Busy": feed_server.url("/busy"), "Fine": feed_server.url("/fine")})
    first = {r.feed_name: r.status for r in agg.poll()}
    assert first == {"Busy": "error", "Fine": "ok"}
    second = {r.feed_name: r.status for r in agg.poll()}
    assert second == {"Busy": "skipped", "Fine": "not_modified"}
    assert [s.path for s in feed_server.seen].count("/fine") == 2
    assert [s.path for s in feed_server.seen].count("/busy") == 1


def test_two_feeds_on_one_url_both_get_their_result(
    feed_server: FeedServer, make: AggFactory
) -> None:
    feed_server.routes["/a"] = static(b"", status=301, headers={"Location": "/b"})
    feed_server.routes["/b"] = static(rss(("x", "X")))
    agg = make({"A": feed_server.url("/a"), "B": feed_server.url("/b")})
    assert sorted(r.feed_name for r in agg.poll()) == ["A", "B"]
    again = agg.poll()  # now both fetch /b
    assert sorted((r.feed_name, r.status) for r in again) == [
        ("A", "not_modified"),
        ("B", "not_modified"),
    ]


def test_update_urls_leaves_a_feed_that_moved_onto_another_alone(
    feed_server: FeedServer, make: AggFactory
) -> None:
    feed_server.routes["/a"] = static(b"", status=301, headers={"Location": "/b"})
    feed_server.routes["/b"] = static(rss(("x", "X")))
    feed_server.routes["/c"] = static(b"", status=308, headers={"Location": "/d"})
    feed_server.routes["/d"] = static(rss(("y", "Y")))
    agg = make({n: feed_server.url(f"/{n.lower()}") for n in ("A", "B", "C")})
    agg.poll()
    assert [(f.name, new) for f, new in agg.moved_feeds()] == [
        ("A", feed_server.url("/b")),
        ("C", feed_server.url("/d")),
    ]
    assert [(f.name, new) for f, new in agg.update_urls()] == [("C", feed_server.url("/d"))]
    urls = [f.url for f in load_config(agg.config.path).feeds]
    assert urls == [feed_server.url("/a"), feed_server.url("/b"), feed_server.url("/d")]
    assert agg.storage.feed_state(feed_server.url("/d")) is not None


def test_a_pass_measures_the_wait_from_answer_to_stored_and_the_loop_lateness(
    feed_server: FeedServer, make: AggFactory
) -> None:
    # bench/poll.py prints these (issue 15: parsing and placing must not stall the fetches).
    slow_parse = 0.2

    def handle(h: BaseHTTPRequestHandler) -> None:
        if h.path.endswith("304"):
            respond(h, 304)
        else:
            respond(h, 200, rss(("a", "Alpha " + h.path)))

    for path in ("/a", "/b", "/c", "/d304"):
        feed_server.routes[path] = handle
    agg = make({p.strip("/"): feed_server.url(p) for p in ("/a", "/b", "/c", "/d304")})
    parse = aggregator.poller.parse_response

    def slow(feed: Feed, response: Any) -> Any:
        time.sleep(slow_parse)  # a long parse: the answers behind it wait
        return parse(feed, response)

    stop = agg.fetcher.watch_loop(every=0.002)
    original, aggregator.poller.parse_response = parse, slow
    try:
        agg.poll()
    finally:
        aggregator.poller.parse_response = original
    late = stop()
    stored = sorted(agg.stored_after)
    assert len(stored) == 3  # the three 200s; a 304 stores no entries
    # Answers arrive together: each waits for the parses before it, then its own.
    assert stored[0] >= slow_parse and stored[-1] >= 2 * slow_parse
    assert late and min(late) >= -0.001 and len(late) > 50  # the loop kept waking meanwhile
    agg.poll()
    assert len(agg.stored_after) == 0  # every answer 304 or the same bytes: nothing stored
