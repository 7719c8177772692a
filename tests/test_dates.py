"""Tests for aggregator/dates.py: the one reading of dates written by feeds, files and servers."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from aggregator import clock, dates
from aggregator.sources.files import read_source
from aggregator.sources.parse import parse_feed
from tests.conftest import RunCli
from tests.feedserver import FeedServer, static

SHANGHAI = ZoneInfo("Asia/Shanghai")


def test_parse_date_reads_iso_and_rfc_822() -> None:
    assert dates.parse_date("2025-02-10T08:00:00Z") == datetime(2025, 2, 10, 8, tzinfo=UTC)
    assert dates.parse_date("2025-02-10T08:00:00z") == datetime(2025, 2, 10, 8, tzinfo=UTC)
    assert dates.parse_date("2025-02-10T08:00:00") == datetime(2025, 2, 10, 8)  # naive
    plus8 = timezone(timedelta(hours=8))
    assert dates.parse_date("Mon, 10 Feb 2025 16:00:00 +0800") == datetime(
        2025, 2, 10, 16, tzinfo=plus8
    )
    # RFC 822's "-0000" is UTC; email.utils alone gives a naive datetime for it.
    assert dates.parse_date("Mon, 10 Feb 2025 08:00:00 -0000") == datetime(
        2025, 2, 10, 8, tzinfo=UTC
    )
    assert dates.parse_date("") is None
    assert dates.parse_date("next Tuesday") is None


def test_entry_date_localizes_bounds_and_falls_back() -> None:
    assert dates.entry_date("2025-02-10 08:00", SHANGHAI) == datetime(
        2025, 2, 10, 8, tzinfo=SHANGHAI
    )
    assert dates.entry_date("2025-02-10 08:00", None) == datetime(2025, 2, 10, 8, tzinfo=UTC)
    assert dates.entry_date("0001-01-01T00:00:00Z", None) is None
    assert dates.entry_date("9999-12-31T00:00:00Z", None) is None
    assert dates.entry_date("unreadable", None) is None
    # The fallback's struct_time is UTC when the text names a zone, else in default_tz.
    parsed = time.struct_time((2025, 2, 10, 8, 0, 0, 0, 41, 0))
    assert dates.entry_date("10th Feb 2025 08:00", SHANGHAI, lambda: parsed) == datetime(
        2025, 2, 10, 8, tzinfo=SHANGHAI
    )
    assert dates.entry_date("10th Feb 2025 08:00 UTC", SHANGHAI, lambda: parsed) == datetime(
        2025, 2, 10, 8, tzinfo=UTC
    )
    assert dates.entry_date("whatever", None, lambda: None) is None
    # so the fallback was asked
    assert dates.parse_date("10th Feb 2025 08:00 UTC") is None
    assert dates.parse_year_first("10th Feb 2025 08:00 UTC") is None


def test_parse_http_date_is_always_aware() -> None:
    assert dates.parse_http_date("Mon, 10 Feb 2025 08:00:00 GMT") == datetime(
        2025, 2, 10, 8, tzinfo=UTC
    )
    assert dates.parse_http_date("Mon, 10 Feb 2025 08:00:00 -0000") == datetime(
        2025, 2, 10, 8, tzinfo=UTC
    )
    assert dates.parse_http_date("soon") is None


def test_front_matter_dates_are_read_as_feed_dates(tmp_path: Path) -> None:
    """An article file's date goes through the same reading as a feed entry's.

    Before dates.py, files read "-0000" in the default zone and refused a lowercase "z".
    """
    for name, written, expected in (
        ("a.md", "2025-02-10 08:00", datetime(2025, 2, 10, 8, tzinfo=SHANGHAI)),
        ("b.md", '"2025-02-10T08:00:00Z"', datetime(2025, 2, 10, 8, tzinfo=UTC)),
        ("e.md", '"2025-02-10T08:00:00z"', datetime(2025, 2, 10, 8, tzinfo=UTC)),
        ("c.md", "Mon, 10 Feb 2025 08:00:00 -0000", datetime(2025, 2, 10, 8, tzinfo=UTC)),
        ("d.md", "Mon, 10 Feb 2025 08:00:00", datetime(2025, 2, 10, 8, tzinfo=SHANGHAI)),
    ):
        path = tmp_path / name
        path.write_text(f"---\ntitle: T {name}\ndate: {written}\n---\n\nBody of {name}.\n")
        (entry,) = read_source(path, default_tz=SHANGHAI).entries
        assert entry.published == expected, name
        assert entry.published is not None and entry.published.utcoffset() == expected.utcoffset()


def test_front_matter_dates_written_year_first_in_other_forms(tmp_path: Path) -> None:
    """Blogs write "2025/02/10", "2025.2.10" or "2025年2月10日 21:00": such an article was
    refused as a whole ("unreadable date"). They are read in the feed's zone; a date that
    is still unreadable, or implausible, leaves the article undated (dated when first
    seen, as one without a date), with a warning naming it, rather than losing it."""
    for name, written, expected in (
        ("a.md", "2025/02/10", datetime(2025, 2, 10, tzinfo=SHANGHAI)),
        ("b.md", "2025/02/10 21:05", datetime(2025, 2, 10, 21, 5, tzinfo=SHANGHAI)),
        ("c.md", "2025.2.10", datetime(2025, 2, 10, tzinfo=SHANGHAI)),
        ("d.md", "2025年2月10日 21:05:30", datetime(2025, 2, 10, 21, 5, 30, tzinfo=SHANGHAI)),
        ("e.md", "2025년 2월 10일", datetime(2025, 2, 10, tzinfo=SHANGHAI)),
        ("f.md", "2025-2-10 9:30", datetime(2025, 2, 10, 9, 30, tzinfo=SHANGHAI)),
    ):
        path = tmp_path / name
        path.write_text(f"---\ntitle: T {name}\ndate: {written}\n---\n\nBody of {name}.\n")
        feed = read_source(path, default_tz=SHANGHAI)
        assert [e.published for e in feed.entries] == [expected], name
        assert feed.warnings == [], name

    for name, written in (("g.md", "yesterday"), ("h.md", "0001-01-01"), ("i.md", "2025/02/30")):
        path = tmp_path / name
        path.write_text(f"---\ntitle: T {name}\ndate: {written}\n---\n\nBody of {name}.\n")
        feed = read_source(path, default_tz=SHANGHAI)
        assert [(e.title, e.published) for e in feed.entries] == [(f"T {name}", None)], name
        assert len(feed.warnings) == 1 and written in feed.warnings[0], name
        assert "first seen" in feed.warnings[0]


def test_year_first_feed_dates_are_not_misread_as_the_first_of_december(tmp_path: Path) -> None:
    """A Chinese CMS's pubDate "2025/02/10 18:00" or "2025年02月10日 18:00" went to
    feedparser's reading, which gives 2025-12-01 00:00 for both: the item was filed
    ten months off, under another day's digest. Year-first dates are read as written, in
    the feed's zone unless they name one; over HTTP and from a feed file alike."""
    items = "".join(
        f"<item><title>Item {n}</title><link>https://cms.example/{n}</link>"
        f"<pubDate>{written}</pubDate></item>"
        for n, written in enumerate(
            [
                "2025/02/10 18:00",
                "2025年02月10日 18:00",
                "2025.02.10 18:00:30",
                "2025/02/10 10:00 UTC",
                # Each of these went to feedparser too (a review found): 1 December.
                "2025/02/10 18:00:00.123",
                "2025/02/10 6:00 PM",
                "2025/02/10 18:00 GMT+9",
                "2025年02月10日 18时",
                "2025/02/10 18:00 CST",  # a zone it cannot tell: the feed's
            ]
        )
    )
    path = tmp_path / "cms.xml"
    path.write_text(f"<rss version='2.0'><channel><title>CMS</title>{items}</channel></rss>")
    expected = [
        datetime(2025, 2, 10, 18, tzinfo=SHANGHAI),
        datetime(2025, 2, 10, 18, tzinfo=SHANGHAI),
        datetime(2025, 2, 10, 18, 0, 30, tzinfo=SHANGHAI),
        datetime(2025, 2, 10, 10, tzinfo=UTC),
        datetime(2025, 2, 10, 18, tzinfo=SHANGHAI),
        datetime(2025, 2, 10, 18, tzinfo=SHANGHAI),
        datetime(2025, 2, 10, 18, tzinfo=timezone(timedelta(hours=9))),
        datetime(2025, 2, 10, 18, tzinfo=SHANGHAI),
        datetime(2025, 2, 10, 18, tzinfo=SHANGHAI),
    ]
    for feed in (
        read_source(path, default_tz=SHANGHAI),
        parse_feed(path.read_bytes(), "https://cms.example/rss", default_tz=SHANGHAI),
    ):
        assert [e.published for e in feed.entries] == expected
    assert dates.entry_date("2025/02/10 18:00 +0900", SHANGHAI) == datetime(
        2025, 2, 10, 18, tzinfo=timezone(timedelta(hours=9))
    )
    # A time it cannot read leaves the day; no such day is no date, not feedparser's guess.
    december = lambda: time.struct_time((2025, 12, 1, 0, 0, 0, 0, 335, 0))  # noqa: E731
    assert dates.entry_date("2025/02/10 at dusk", SHANGHAI, december) == datetime(
        2025, 2, 10, tzinfo=SHANGHAI
    )
    assert dates.entry_date("2025/02/30 18:00", SHANGHAI, december) is None


def test_rfc_822_dates_with_a_named_zone_are_read_in_that_zone() -> None:
    """email.utils knows only RFC 822's US zones: "CET", "CEST", "JST" and the like were
    read in the feed's timezone, hours off (a JST date in a New York feed, 13 hours)."""
    new_york = ZoneInfo("America/New_York")
    for text, utc in [
        ("Sun, 30 Mar 2025 00:30:00 CET", datetime(2025, 3, 29, 23, 30, tzinfo=UTC)),
        ("Sun, 30 Mar 2025 23:59:00 CEST", datetime(2025, 3, 30, 21, 59, tzinfo=UTC)),
        ("Sun, 30 Mar 2025 09:00:00 JST", datetime(2025, 3, 30, 0, 0, tzinfo=UTC)),
        ("Sun, 30 Mar 2025 09:00:00 jst", datetime(2025, 3, 30, 0, 0, tzinfo=UTC)),
        ("Mon, 06 Oct 2025 10:00:00 AEDT", datetime(2025, 10, 5, 23, 0, tzinfo=UTC)),
        ("Mon, 10 Feb 2025 05:45:00 NPT", datetime(2025, 2, 10, 0, 0, tzinfo=UTC)),
        ("Mon, 10 Feb 2025 05:30:00 NST", datetime(2025, 2, 10, 9, 0, tzinfo=UTC)),
        ("2025/03/30 09:00 JST", datetime(2025, 3, 30, 0, 0, tzinfo=UTC)),
        # RFC 822's own zones, as before.
        ("Sat, 29 Mar 2025 23:30:00 EST", datetime(2025, 3, 30, 4, 30, tzinfo=UTC)),
        ("Sat, 29 Mar 2025 16:00:00 PDT", datetime(2025, 3, 29, 23, 0, tzinfo=UTC)),
    ]:
        assert dates.entry_date(text, new_york) == utc, text
    # A name that is not a zone, or one that names several (IST: India, Ireland, Israel),
    # leaves the feed's timezone to say.
    assert dates.entry_date("Sun, 30 Mar 2025 09:00:00 IST", new_york) == datetime(
        2025, 3, 30, 9, tzinfo=new_york
    )
    assert dates.entry_date("Sun, 30 Mar 2025 09:00:00 XYZ", new_york) == datetime(
        2025, 3, 30, 9, tzinfo=new_york
    )
    # AST is the Atlantic's (-4) and Arabia's (+3): a Gulf newsroom's "AST" is not read as
    # seven hours off.
    riyadh = ZoneInfo("Asia/Riyadh")
    assert dates.entry_date("Sun, 30 Mar 2025 09:00:00 AST", riyadh) == datetime(
        2025, 3, 30, 9, tzinfo=riyadh
    )


def polled(
    folder: Path, run_cli: RunCli, server: FeedServer, item: str, config: str
) -> Callable[[str], list[tuple[str, str, bool]]]:
    """A feed of one RSS `item` on the local server, `config` added to its [[feeds]]
    table, polled by the CLI; gives a day's digest (`digest --date D`, JSON) as the
    title, published time and `dated` of each copy."""
    server.routes["/feed.xml"] = static(
        '<?xml version="1.0"?><rss version="2.0"><channel><title>Feed</title>'
        f"{item}</channel></rss>"
    )
    (folder / "feeds.toml").write_text(
        f'[[feeds]]\nurl = "{server.url("/feed.xml")}"\nname = "Feed"\n{config}\n',
        encoding="utf-8",
    )
    assert run_cli("poll", cwd=folder).returncode == 0

    def copies(day: str) -> list[tuple[str, str, bool]]:
        made = run_cli("digest", "--date", day, "--format", "json", "--output", "-", cwd=folder)
        assert made.returncode == 0, made.stderr
        return [
            (copy["title"], copy["published"], copy["dated"])
            for topic in json.loads(made.stdout)["topics"]
            for story in topic["stories"]
            for article in story["articles"]
            for copy in article["copies"]
        ]

    return copies


def test_a_named_zone_puts_an_entry_in_its_own_day_s_digest(
    tmp_path: Path, run_cli: RunCli, feed_server: FeedServer
) -> None:
    """Through a feed on a local server, `poll` and `digest --date`: an item dated 23:30
    CEST on 30 March 2025 was read as 23:30 in the feed's New York timezone (03:30 UTC on
    the 31st), and landed in the Paris digest of the 31st instead of the 30th."""
    digest = polled(
        tmp_path,
        run_cli,
        feed_server,
        "<item><title>Late night in Paris</title><link>https://cet.example/1</link>"
        "<pubDate>Sun, 30 Mar 2025 23:30:00 CEST</pubDate>"
        "<description>Written at half past eleven, Paris summer time.</description></item>",
        'timezone = "America/New_York"\n\n[digest]\ntimezone = "Europe/Paris"',
    )
    assert digest("2025-03-30") == [("Late night in Paris", "2025-03-30T23:30:00+02:00", True)]
    assert digest("2025-03-31") == []


def test_the_unix_epoch_is_a_placeholder_not_a_date(
    tmp_path: Path, run_cli: RunCli, feed_server: FeedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A CMS that has no date writes time 0: "Thu, 01 Jan 1970 00:00:00 +0000" (or the
    same instant in its own zone). Stored as 1970, such an item was in no digest and on
    no page, ever; now it is undated, dated by when it was first seen, as an item that
    gives no date is."""
    for text in (
        "Thu, 01 Jan 1970 00:00:00 +0000",
        "Thu, 01 Jan 1970 01:00:00 +0100",
        "1970-01-01T00:00:00Z",
        "1970-01-01",
    ):
        assert dates.entry_date(text, None) is None, text
    assert dates.entry_date("1970-01-01T00:00:01Z", None) == datetime(
        1970, 1, 1, 0, 0, 1, tzinfo=UTC
    )

    monkeypatch.setattr(clock, "now", lambda: datetime(2025, 6, 15, 12, 0, tzinfo=UTC))
    digest = polled(
        tmp_path,
        run_cli,
        feed_server,
        "<item><title>A story with no date</title><link>https://zero.example/1</link>"
        "<pubDate>Thu, 01 Jan 1970 00:00:00 +0000</pubDate>"
        "<description>The CMS wrote time zero for its date.</description></item>",
        '\n[digest]\ntimezone = "Asia/Kathmandu"',
    )
    assert digest("2025-06-15") == [("A story with no date", "2025-06-15T17:45:00+05:45", False)]
