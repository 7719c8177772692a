"""Late arrivals: an entry dated on a day whose daily digest was made before it was stored
(a publisher that backdates, a feed down or polled late) is in the next daily digest made
after it was stored, marked as late (a week back at most), and in no other
(docs/digests.md, What a digest shows). Real feeds (local
RSS files), a real SQLite store, the daemon's daily job (`make_due_digest`) on a frozen
clock."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape
from zoneinfo import ZoneInfo

import pytest

from aggregator.config import load_config
from aggregator.core import Aggregator, make_aggregator
from aggregator.publisher import LATE_DAYS, DailyRead, daily_read, with_day_since
from aggregator.scheduler import make_due_digest
from aggregator.storage import DigestRun, EntryRange, Storage, open_storage
from aggregator.types import Entry, Feed
from tests.conftest import FrozenClock, cli
from tests.smtpserver import Server

FEEDS = {"wire.xml": "Wire", "late.xml": "Late Post"}
SUMMIT = (
    "Leaders from nearly one hundred countries gathered in Paris on Monday for the AI Action "
    "Summit, where the host called for common rules on the safety of large models, and "
    "delegations argued over how open the next generation of systems should be. The summit "
    "closes on Tuesday with a declaration that several governments have said they will not sign."
)


def at(day: int, hour: int) -> datetime:
    return datetime(2025, 2, day, hour, tzinfo=UTC)


class Newsroom:
    """Two local feeds whose items a test publishes, an aggregator polling them on a frozen
    clock, and the daily digests the daemon's job makes (digest timezone UTC, at 07:00)."""

    def __init__(
        self,
        folder: Path,
        clock: FrozenClock,
        *,
        smtp_port: int | None = None,
        sleep: Callable[[float], None] | None = None,
        storage: Storage | None = None,
    ) -> None:
        self.folder = folder
        self.clock = clock
        self.items: dict[str, list[str]] = {name: [] for name in FEEDS}
        feeds = "".join(f'[[feeds]]\nurl = "{u}"\nname = "{n}"\n\n' for u, n in FEEDS.items())
        email = (
            f'\n[digest.email]\nto = ["reader@example.org"]\nfrom = "digest@example.org"\n'
            f'host = "127.0.0.1"\nport = {smtp_port}\nsecurity = "none"\n'
            if smtp_port is not None
            else ""
        )
        (folder / "feeds.toml").write_text(
            f'[storage]\npath = "test.db"\n\n{feeds}[digest]\ntimezone = "UTC"\ntime = "07:00"\n'
            + email,
            encoding="utf-8",
        )
        for name in FEEDS:
            self._write(name)
        config = load_config(folder / "feeds.toml")
        self.agg: Aggregator = make_aggregator(config, clock=clock, sleep=sleep, storage=storage)

    def publish(self, feed: str, title: str, published: datetime, text: str = "") -> None:
        """Add an item dated `published` to the feed's file (seen at the next poll)."""
        slug = f"{feed}/{len(self.items[feed])}"
        self.items[feed].append(
            f"<item><title>{escape(title)}</title><link>https://news.example/{slug}</link>"
            f"<guid>{slug}</guid><pubDate>{published:%a, %d %b %Y %H:%M:%S} GMT</pubDate>"
            f"<description>{escape(text or title)}</description></item>"
        )
        self._write(feed)

    def _write(self, feed: str) -> None:
        (self.folder / feed).write_text(
            '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
            f"<title>{FEEDS[feed]}</title><link>https://news.example/</link>"
            f"{''.join(self.items[feed])}</channel></rss>",
            encoding="utf-8",
        )

    def poll_at(self, when: datetime) -> None:
        self.clock.current = when
        self.agg.poll()

    def daily_at(self, when: datetime) -> date | None:
        """The daemon's daily job at `when`: the day it made the digest of, if any."""
        self.clock.current = when
        return make_due_digest(self.agg)

    def ninth_digested(self) -> None:
        """The 9th's news polled, and the 9th's daily digest made on the 10th at 07:00."""
        self.publish("wire.xml", "Morning briefing", at(9, 9))
        self.poll_at(at(9, 10))
        assert self.daily_at(at(10, 7)) == date(2025, 2, 9)

    def tenth_with_a_late_arrival(self) -> None:
        """The 10th's news polled at 09:00, with an item of the 9th's evening."""
        self.publish("late.xml", "Evening statement", at(9, 21))  # backdated
        self.publish("wire.xml", "Tuesday news", at(10, 8))
        self.poll_at(at(10, 9))

    def digest(self, day: date) -> dict[str, Any]:
        path = self.folder / "digests" / f"{day}.json"
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        return data

    def close(self) -> None:
        self.agg.close()


def copies(digest: dict[str, Any]) -> dict[str, list[tuple[str, bool]]]:
    """The digest's copies by title: (feed, late) each."""
    found: dict[str, list[tuple[str, bool]]] = {}
    for topic in digest["topics"]:
        for story in topic["stories"]:
            for article in story["articles"]:
                for copy in article["copies"]:
                    found.setdefault(copy["title"], []).append((copy["feed"], copy["late"]))
    return found


def test_an_entry_stored_after_its_days_digest_is_in_the_next_one_and_no_other(
    tmp_path: Path, clock: FrozenClock
) -> None:
    """The bug: dated the evening of the 9th, put in its feed the next morning after the
    9th's digest was made, it was in no daily digest (the 10th's window is by date)."""
    room = Newsroom(tmp_path, clock)
    room.ninth_digested()
    room.publish("late.xml", "Evening statement", at(9, 21))  # backdated
    room.poll_at(at(10, 9))
    assert room.daily_at(at(11, 7)) == date(2025, 2, 10)
    assert room.daily_at(at(12, 7)) == date(2025, 2, 11)
    room.close()
    ninth, tenth, eleventh = (room.digest(date(2025, 2, day)) for day in (9, 10, 11))
    assert copies(ninth) == {"Morning briefing": [("Wire", False)]}
    assert ninth["late_since"] is None  # the store's first daily digest: nothing missed
    assert copies(tenth) == {"Evening statement": [("Late Post", True)]}
    assert tenth["late_since"] == "2025-02-10T07:00:00+00:00"  # when the 9th's was made
    assert copies(eleventh) == {}
    assert eleventh["late_since"] == "2025-02-11T07:00:00+00:00"
    html = (tmp_path / "digests" / "2025-02-10.html").read_text(encoding="utf-8")
    assert "2025-02-09 21:00 +00:00 · arrived late</time>" in html
    assert "1 story · 1 article · 1 source" in html
    text = (tmp_path / "digests" / "2025-02-10.txt").read_text(encoding="utf-8")
    assert "(2025-02-09 21:00 +00:00 · arrived late)" in text


def test_an_entry_stored_before_the_previous_digest_was_made_is_not_repeated(
    tmp_path: Path, clock: FrozenClock
) -> None:
    room = Newsroom(tmp_path, clock)
    room.publish("wire.xml", "Morning briefing", at(9, 9))
    room.poll_at(at(9, 10))
    room.publish("late.xml", "Night report", at(9, 22))
    room.poll_at(at(10, 6))  # late, but before the 9th's digest was made: in it
    assert room.daily_at(at(10, 7)) == date(2025, 2, 9)
    room.publish("wire.xml", "Tuesday news", at(10, 8))
    room.poll_at(at(10, 9))
    assert room.daily_at(at(11, 7)) == date(2025, 2, 10)
    room.close()
    assert copies(room.digest(date(2025, 2, 9))) == {
        "Morning briefing": [("Wire", False)],
        "Night report": [("Late Post", False)],
    }
    assert copies(room.digest(date(2025, 2, 10))) == {"Tuesday news": [("Wire", False)]}


def test_a_late_report_joins_its_story_in_the_window(tmp_path: Path, clock: FrozenClock) -> None:
    """Grouped with the window's entries: a late copy of a report the window has is one
    more source of that story, not a story of its own."""
    room = Newsroom(tmp_path, clock)
    room.ninth_digested()
    room.publish("wire.xml", "AI summit opens in Paris", at(10, 10), SUMMIT)
    room.poll_at(at(10, 11))
    room.publish("late.xml", "AI summit opens in Paris", at(9, 23), SUMMIT)
    room.poll_at(at(10, 12))
    assert room.daily_at(at(11, 7)) == date(2025, 2, 10)
    room.close()
    tenth = room.digest(date(2025, 2, 10))
    (topic,) = tenth["topics"]
    (story,) = topic["stories"]
    feeds = {copy["feed"]: copy["late"] for a in story["articles"] for copy in a["copies"]}
    assert feeds == {"Wire": False, "Late Post": True}
    html = (tmp_path / "digests" / "2025-02-10.html").read_text(encoding="utf-8")
    assert "1 story · 1 article · 2 sources" in html and "arrived late" in html


def test_a_digest_asked_for_by_its_date_is_its_daily_digest_with_the_days_news_since(
    tmp_path: Path, clock: FrozenClock
) -> None:
    """`aggregator digest --date D` after D's daily digest was made shows that digest, late
    arrivals and all (they are in no other), with D's entries stored since; rewriting D's
    files in the digest folder keeps them. A range (`--since D --until D`) is the window
    alone, and a day whose daily digest was not made is its window."""
    room = Newsroom(tmp_path, clock)
    room.ninth_digested()
    room.tenth_with_a_late_arrival()
    assert room.daily_at(at(11, 7)) == date(2025, 2, 10)
    room.publish("wire.xml", "Tuesday night", at(10, 23))  # the 10th's, stored after its digest
    room.publish("wire.xml", "Wednesday news", at(11, 8))
    room.poll_at(at(11, 9))
    room.close()
    assert copies(room.digest(date(2025, 2, 10))) == {
        "Evening statement": [("Late Post", True)],
        "Tuesday news": [("Wire", False)],
    }
    clock.current = at(11, 10)  # (the CLI's clock is the machine's: a later day's)
    asked = cli("digest", "--date", "2025-02-10", "--format", "json", "--output", "-", cwd=tmp_path)
    assert asked.returncode == 0, asked.stderr
    data = json.loads(asked.stdout)
    assert copies(data) == {
        "Evening statement": [("Late Post", True)],
        "Tuesday news": [("Wire", False)],
        "Tuesday night": [("Wire", False)],
    }
    assert data["late_since"] == "2025-02-10T07:00:00+00:00"  # when the 9th's was made
    rewritten = cli("digest", "--date", "2025-02-10", cwd=tmp_path)
    assert rewritten.returncode == 0, rewritten.stderr
    assert "3 entries (1 late) ->" in rewritten.stdout + rewritten.stderr
    assert set(copies(room.digest(date(2025, 2, 10)))) == {
        "Evening statement",
        "Tuesday news",
        "Tuesday night",
    }
    html = (tmp_path / "digests" / "2025-02-10.html").read_text(encoding="utf-8")
    assert "2025-02-09 21:00 +00:00 · arrived late</time>" in html
    window = cli(
        "digest", "--since", "2025-02-10", "--until", "2025-02-10", "--format", "json",
        "--output", "-", cwd=tmp_path,
    )  # fmt: skip
    assert window.returncode == 0, window.stderr
    data = json.loads(window.stdout)
    assert set(copies(data)) == {"Tuesday news", "Tuesday night"}
    assert data["late_since"] is None
    undigested = cli(
        "digest", "--date", "2025-02-11", "--format", "json", "--output", "-", cwd=tmp_path
    )
    assert undigested.returncode == 0, undigested.stderr
    assert copies(json.loads(undigested.stdout)) == {"Wednesday news": [("Wire", False)]}


def test_the_first_daily_digest_has_no_late_arrivals(tmp_path: Path, clock: FrozenClock) -> None:
    """No daily digest was made before: none missed what came in, however old its date."""
    room = Newsroom(tmp_path, clock)
    room.publish("late.xml", "Old analysis", at(8, 12))
    room.publish("wire.xml", "Tuesday news", at(10, 8))
    room.poll_at(at(10, 9))
    assert room.daily_at(at(11, 7)) == date(2025, 2, 10)
    room.close()
    tenth = room.digest(date(2025, 2, 10))
    assert copies(tenth) == {"Tuesday news": [("Wire", False)]}
    assert tenth["late_since"] is None


def test_what_is_stored_while_the_daily_digest_is_made_is_in_the_next_one(
    tmp_path: Path, clock: FrozenClock, smtp: Server
) -> None:
    """A daily digest counts as made when it read its entries: what the polls store while
    it is written and mailed (a send refused for now is tried again seconds later) is in
    the next one. (It counted as made once mailed: such an entry was in neither.)"""
    waits: list[float] = []

    def wait(seconds: float) -> None:  # the daemon's polls go on meanwhile
        waits.append(seconds)
        room.publish("late.xml", "Stored meanwhile", at(9, 23))
        room.poll_at(clock() + timedelta(seconds=1))
        clock.advance(seconds=seconds - 1)

    room = Newsroom(tmp_path, clock, smtp_port=smtp.port, sleep=wait)
    room.publish("wire.xml", "Morning briefing", at(9, 9))
    room.poll_at(at(9, 10))
    smtp.inbox.replies = ["451 4.3.0 Try again later"]
    assert room.daily_at(at(10, 7)) == date(2025, 2, 9)
    assert waits == [2.0] and len(smtp.inbox.received) == 1
    assert room.agg.digest_made(date(2025, 2, 9)) == at(10, 7)  # not 07:00:02, once mailed
    assert room.daily_at(at(11, 7)) == date(2025, 2, 10)
    room.close()
    assert copies(room.digest(date(2025, 2, 9))) == {"Morning briefing": [("Wire", False)]}
    assert copies(room.digest(date(2025, 2, 10))) == {"Stored meanwhile": [("Late Post", True)]}


def test_a_daily_digests_email_sent_again_later_keeps_its_late_arrivals(
    tmp_path: Path, clock: FrozenClock, smtp: Server
) -> None:
    """A daily digest's email the server refused for now is made again when retried: as
    the daily digest, late arrivals and all (they are in no other digest), not as a
    digest of its day alone."""
    room = Newsroom(tmp_path, clock, smtp_port=smtp.port, sleep=lambda seconds: None)
    room.ninth_digested()
    room.tenth_with_a_late_arrival()
    smtp.inbox.replies = ["451 4.3.0 Try again later"] * 3  # each attempt made at once
    assert room.daily_at(at(11, 7)) == date(2025, 2, 10)
    assert len(smtp.inbox.received) == 1  # the 9th's
    clock.advance(hours=1)
    (retried,) = room.agg.retry_emails()
    room.close()
    assert retried.status == "sent"
    message = smtp.inbox.messages()[-1]
    text = message.get_body(("plain",))
    assert text is not None
    body = text.get_content()
    assert "Tuesday news" in body
    assert "Evening statement" in body and "arrived late" in body


def test_a_feeds_backlog_is_not_late_news(tmp_path: Path, clock: FrozenClock) -> None:
    """A new feed first polled with months of old items: only those of the previous
    digest's day are late arrivals, not its backlog."""
    room = Newsroom(tmp_path, clock)
    room.ninth_digested()
    room.publish("wire.xml", "Tuesday news", at(10, 8))
    for month_day in (1, 15, 31):
        room.publish("late.xml", f"Old post {month_day}", datetime(2025, 1, month_day, tzinfo=UTC))
    room.publish("late.xml", "Yesterday's post", at(9, 20))
    room.publish("late.xml", "Post of the 8th", at(8, 20))
    room.poll_at(at(10, 12))
    assert room.daily_at(at(11, 7)) == date(2025, 2, 10)
    room.close()
    assert copies(room.digest(date(2025, 2, 10))) == {
        "Tuesday news": [("Wire", False)],
        "Yesterday's post": [("Late Post", True)],
    }


def test_a_feed_down_for_days_brings_its_news_late_not_lost(
    tmp_path: Path, clock: FrozenClock
) -> None:
    """A feed known before, whose items of the 9th reach us only on the 12th (it was down,
    or it dates its items days back): they are in the next daily digest made, arrived
    late, though the 10th's digest came between (a week back at most)."""
    room = Newsroom(tmp_path, clock)
    room.ninth_digested()
    room.publish("late.xml", "Tuesday on the other wire", at(10, 8))
    room.poll_at(at(10, 9))
    assert room.daily_at(at(11, 7)) == date(2025, 2, 10)
    room.publish("wire.xml", "Sunday night on the wire", at(9, 22))
    room.publish("wire.xml", "Wednesday on the wire", at(11, 12))
    room.poll_at(at(12, 6))
    assert room.daily_at(at(12, 7)) == date(2025, 2, 11)
    room.close()
    assert copies(room.digest(date(2025, 2, 11))) == {
        "Sunday night on the wire": [("Wire", True)],
        "Wednesday on the wire": [("Wire", False)],
    }
    assert "arrived late" in (tmp_path / "digests" / "2025-02-11.txt").read_text("utf-8")


def test_an_item_stored_again_under_a_new_guid_and_link_is_not_late_news(
    tmp_path: Path, clock: FrozenClock
) -> None:
    """A known feed gives an item of the 9th, shown in the 9th's digest, again under a new
    guid and link (http to https, a link's tracking parameters): a copy of what an earlier
    digest showed, not a late arrival; its genuinely late news is."""
    room = Newsroom(tmp_path, clock)
    room.publish("wire.xml", "Leaders gather in Paris for the AI Action Summit", at(9, 9), SUMMIT)
    room.poll_at(at(9, 10))
    assert room.daily_at(at(10, 7)) == date(2025, 2, 9)
    room.publish("late.xml", "Tuesday on the other wire", at(10, 8))
    room.poll_at(at(10, 9))
    assert room.daily_at(at(11, 7)) == date(2025, 2, 10)
    room.publish("wire.xml", "Leaders gather in Paris for the AI Action Summit", at(9, 9), SUMMIT)
    room.publish("wire.xml", "Sunday night on the wire", at(9, 22))
    room.publish("wire.xml", "Wednesday on the wire", at(11, 12))
    room.poll_at(at(12, 6))
    assert room.daily_at(at(12, 7)) == date(2025, 2, 11)
    room.close()
    assert (
        len(
            copies(room.digest(date(2025, 2, 9)))[
                "Leaders gather in Paris for the AI Action Summit"
            ]
        )
        == 1
    )
    assert copies(room.digest(date(2025, 2, 11))) == {
        "Sunday night on the wire": [("Wire", True)],
        "Wednesday on the wire": [("Wire", False)],
    }


def test_late_arrivals_go_back_a_week_at_most(tmp_path: Path, clock: FrozenClock) -> None:
    """A daemon started again after weeks: what it missed of the last week (LATE_DAYS)
    is in its first daily digest, not every entry stored since the digest before."""
    room = Newsroom(tmp_path, clock)
    room.ninth_digested()
    room.publish("wire.xml", "Eight days before", at(20, 12))
    room.publish("wire.xml", "Seven days before", at(21, 0))
    room.publish("wire.xml", "The day before", at(27, 12))
    room.publish("wire.xml", "Its own day's", at(28, 12))
    room.poll_at(datetime(2025, 3, 1, 6, tzinfo=UTC))
    assert room.daily_at(datetime(2025, 3, 1, 7, tzinfo=UTC)) == date(2025, 2, 28)
    room.close()
    assert copies(room.digest(date(2025, 2, 28))) == {
        "Seven days before": [("Wire", True)],
        "The day before": [("Wire", True)],
        "Its own day's": [("Wire", False)],
    }


def test_the_daily_read_goes_back_a_week_from_the_previous_digests_making() -> None:
    """`daily_read`, pure: its window and the missed days whole; the days before, in the
    digest timezone (a day of 23 hours too), from when the previous digest was made, a
    week back (LATE_DAYS), a new feed's from that digest's day; all of it stored before
    it is made."""
    paris = ZoneInfo("Europe/Paris")
    made, now = datetime(2025, 3, 29, 6, tzinfo=UTC), datetime(2025, 3, 31, 5, tzinfo=UTC)
    since = datetime(2025, 3, 30, 22, tzinfo=UTC)  # 31 March 00:00 CEST
    until = since + timedelta(days=1)
    week = datetime(2025, 3, 23, 23, tzinfo=UTC)  # 24 March 00:00 CET
    window = EntryRange(since, until, seen_before=now)
    read = daily_read(date(2025, 3, 31), paris, DigestRun(date(2025, 3, 30), made), now)
    late = EntryRange(week, since, made, now)
    thirtieth = datetime(2025, 3, 29, 23, tzinfo=UTC)  # 30 March 00:00 CET
    assert read == DailyRead(since, until, (window, late), made, since, thirtieth)
    missed = thirtieth
    read = daily_read(date(2025, 3, 31), paris, DigestRun(date(2025, 3, 29), made), now)
    late = EntryRange(week, missed, made, now)
    assert read.ranges == (EntryRange(missed, until, seen_before=now), late)
    assert read.missed_since == missed
    assert read.backlog_before == datetime(2025, 3, 28, 23, tzinfo=UTC)
    long_ago = daily_read(date(2025, 3, 31), paris, DigestRun(date(2025, 1, 2), made), now)
    assert LATE_DAYS == 7
    assert long_ago.ranges == (EntryRange(week, until, seen_before=now),)
    first = daily_read(date(2025, 3, 31), paris, None, now)
    assert first == DailyRead(since, until, (window,), None, None)


def test_a_days_digest_asked_for_later_reads_its_own_entries_whenever_stored() -> None:
    """`with_day_since`, pure: the day's own entries with no bound on when they were stored;
    the missed days' and the week's before as the daily read had them."""
    paris = ZoneInfo("Europe/Paris")
    made, now = datetime(2025, 3, 29, 6, tzinfo=UTC), datetime(2025, 3, 31, 5, tzinfo=UTC)
    since = datetime(2025, 3, 30, 22, tzinfo=UTC)  # 31 March 00:00 CEST
    until = since + timedelta(days=1)
    week = datetime(2025, 3, 23, 23, tzinfo=UTC)
    missed = datetime(2025, 3, 29, 23, tzinfo=UTC)  # 30 March, whose digest was not made
    read = daily_read(date(2025, 3, 31), paris, DigestRun(date(2025, 3, 29), made), now)
    assert with_day_since(read) == read._replace(
        ranges=(
            EntryRange(since, until),
            EntryRange(missed, since, seen_before=now),
            EntryRange(week, missed, made, now),
        )
    )
    first = daily_read(date(2025, 3, 31), paris, None, now)
    assert with_day_since(first) == first._replace(ranges=(EntryRange(since, until),))


def test_a_missed_days_entries_are_in_the_next_daily_digest_made(
    tmp_path: Path, clock: FrozenClock
) -> None:
    """The daemon down over the 11th's digest time: only the latest missed digest (the
    11th's) is made. The 10th's entries are in it, those stored before the 9th's digest was
    made too (they were in no digest: before, they were lost), as late arrivals in the
    JSON; "arrived late" is said only of one that came after its own day's digest, the
    9th's evening report stored after the 9th's digest was made."""
    room = Newsroom(tmp_path, clock)
    room.publish("wire.xml", "Morning briefing 9th", at(9, 9))
    room.poll_at(at(9, 10))
    room.publish("wire.xml", "Early news 10th", at(10, 5))
    room.poll_at(at(10, 6))  # before the 9th's digest was made
    assert room.daily_at(at(10, 7)) == date(2025, 2, 9)
    room.publish("wire.xml", "Later news 10th", at(10, 12))
    room.publish("late.xml", "Night report 9th", at(9, 22))
    room.poll_at(at(10, 13))
    room.publish("wire.xml", "News 11th", at(11, 12))  # down from the 10th to the 12th
    room.poll_at(at(12, 8))
    assert room.daily_at(at(12, 8) + timedelta(minutes=1)) == date(2025, 2, 11)
    assert room.daily_at(at(13, 7)) == date(2025, 2, 12)
    room.close()
    assert copies(room.digest(date(2025, 2, 11))) == {
        "Night report 9th": [("Late Post", True)],
        "Early news 10th": [("Wire", True)],
        "Later news 10th": [("Wire", True)],
        "News 11th": [("Wire", False)],
    }
    assert copies(room.digest(date(2025, 2, 12))) == {}
    html = (tmp_path / "digests" / "2025-02-11.html").read_text(encoding="utf-8")
    assert "2025-02-09 22:00 +00:00 · arrived late</time>" in html
    assert "2025-02-10 05:00 +00:00</time>" in html and "2025-02-10 12:00 +00:00</time>" in html
    assert html.count("arrived late") == 1
    text = (tmp_path / "digests" / "2025-02-11.txt").read_text(encoding="utf-8")
    assert "(2025-02-09 22:00 +00:00 · arrived late)" in text
    assert "(2025-02-10 05:00 +00:00)" in text and text.count("arrived late") == 1


def in_the_elevenths_digest_alone(room: Newsroom) -> None:
    """The 10th's and the 11th's daily digests made (at 07:00 the next day): the 10th's
    evening item is in the 11th's, as a late arrival, and not in the 10th's."""
    assert room.daily_at(at(11, 7)) == date(2025, 2, 10)
    in_the_elevenths_alone_once_made(room)


def in_the_elevenths_alone_once_made(room: Newsroom) -> None:
    """`in_the_elevenths_digest_alone`, the 10th's daily digest made already."""
    assert room.daily_at(at(12, 7)) == date(2025, 2, 11)
    room.close()
    assert copies(room.digest(date(2025, 2, 10))) == {}
    assert copies(room.digest(date(2025, 2, 11))) == {
        "Evening item of the 10th": [("Late Post", True)]
    }


def test_an_entry_stored_as_the_digest_is_made_is_in_it_or_the_next_one(
    tmp_path: Path, clock: FrozenClock
) -> None:
    """A poll stamped at the very time the daily digest reads its entries (its
    `generated_at`, recorded as when it was made) is in one of the two daily digests:
    before, it was in both (in its day's window, and first seen at or after the time the
    next one's late arrivals start)."""
    room = Newsroom(tmp_path, clock)
    room.ninth_digested()
    room.publish("late.xml", "Evening item of the 10th", at(10, 23))
    room.poll_at(at(11, 7))
    in_the_elevenths_digest_alone(room)


def test_an_entry_stored_while_the_digest_reads_is_in_the_next_one_alone(
    tmp_path: Path, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A poll beside the daily digest, its time read after the digest's and its entries
    committed before the digest reads them: they are the next digest's (first seen after
    this one was made), not this one's too."""
    storage = open_storage(tmp_path / "test.db")
    room = Newsroom(tmp_path, clock, storage=storage)
    room.ninth_digested()
    read = storage.entries_in

    def polled_first(ranges: Sequence[EntryRange]) -> list[Entry]:
        monkeypatch.setattr(storage, "entries_in", read)
        clock.advance(milliseconds=3)
        room.publish("late.xml", "Evening item of the 10th", at(10, 23))
        room.agg.poll()
        return read(ranges)

    monkeypatch.setattr(storage, "entries_in", polled_first)
    in_the_elevenths_digest_alone(room)


def test_an_entry_polled_before_the_digest_and_stored_after_it_is_in_the_next_one(
    tmp_path: Path, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A poll that read its time before the daily digest was made and stored its entries
    after it (it waited for the store meanwhile): they are first seen when stored, so the
    next digest has them as late arrivals. Before, first seen at the poll's earlier time,
    they were in neither digest (docs/digests.md)."""
    storage = open_storage(tmp_path / "test.db")
    room = Newsroom(tmp_path, clock, storage=storage)
    room.ninth_digested()
    save = storage.save_poll

    def digest_first(feed: Feed, *args: Any, **kwargs: Any) -> Any:
        if feed.name == "Late Post":  # its time read, its entries not stored yet
            assert room.daily_at(at(11, 7)) == date(2025, 2, 10)
        return save(feed, *args, **kwargs)

    monkeypatch.setattr(storage, "save_poll", digest_first)
    room.publish("late.xml", "Evening item of the 10th", at(10, 23))
    room.poll_at(at(11, 7) - timedelta(seconds=1))
    in_the_elevenths_alone_once_made(room)


def test_an_entry_being_stored_as_the_digest_is_made_is_in_it(
    tmp_path: Path, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A poll (`aggregator poll`) holding the store's write lock, its entries first seen
    (under the lock) before the daemon makes the daily digest but not yet committed: the
    digest waits for them and shows them. Before, it read the store without them, and the
    next one, taking only what was first seen since, left them out too."""
    room = Newsroom(tmp_path, clock)
    room.ninth_digested()
    daemon = make_aggregator(load_config(tmp_path / "feeds.toml"), clock=clock)
    storage = room.agg.storage
    save = storage.save_poll
    stamped, go = threading.Event(), threading.Event()

    def slow_write(feed: Feed, *args: Any, seen: Callable[[], datetime], **kwargs: Any) -> Any:
        def seen_then_slow() -> datetime:
            first_seen = seen()
            stamped.set()
            assert go.wait(10)  # the rest of the poll's write takes a while
            return first_seen

        late = feed.name == "Late Post"
        return save(feed, *args, seen=seen_then_slow if late else seen, **kwargs)

    monkeypatch.setattr(storage, "save_poll", slow_write)
    room.publish("late.xml", "Evening item of the 10th", at(10, 23))
    clock.current = at(11, 7) - timedelta(seconds=1)
    poll = threading.Thread(target=room.agg.poll)
    poll.start()
    assert stamped.wait(10)
    made: list[date | None] = []

    def daily() -> None:
        clock.current = at(11, 7)
        made.append(make_due_digest(daemon))

    digest = threading.Thread(target=daily)
    digest.start()
    digest.join(0.5)
    assert digest.is_alive()  # (it waits for the poll's commit: what it shows tells)
    go.set()
    poll.join(10)
    digest.join(10)
    daemon.close()
    assert made == [date(2025, 2, 10)]
    assert room.daily_at(at(12, 7)) == date(2025, 2, 11)
    room.close()
    assert copies(room.digest(date(2025, 2, 10))) == {
        "Evening item of the 10th": [("Late Post", False)]
    }
    assert copies(room.digest(date(2025, 2, 11))) == {}


def test_a_daily_digests_email_sent_again_later_is_the_digest_made_then(
    tmp_path: Path, clock: FrozenClock, smtp: Server
) -> None:
    """Made again to retry its email, the daily digest reads what it read when it was
    made (its recorded time): not what was stored since, the next digest's late arrivals
    (the reader got them twice, and the email no longer matched the files)."""
    room = Newsroom(tmp_path, clock, smtp_port=smtp.port, sleep=lambda seconds: None)
    room.ninth_digested()
    room.tenth_with_a_late_arrival()
    smtp.inbox.replies = ["451 4.3.0 Try again later"] * 3  # each attempt made at once
    assert room.daily_at(at(11, 7)) == date(2025, 2, 10)
    room.publish("late.xml", "Statement of the 10th", at(10, 21))
    room.poll_at(at(11, 7) + timedelta(minutes=3))
    clock.current = at(11, 9)
    (retried,) = room.agg.retry_emails()
    assert retried.status == "sent"
    assert room.daily_at(at(12, 7)) == date(2025, 2, 11)
    room.close()
    message = smtp.inbox.messages()[-2]  # the 10th's, the 11th's after it
    text, html = message.get_body(("plain",)), message.get_body(("html",))
    assert text is not None and html is not None
    body = text.get_content()
    assert "Tuesday news" in body and "Evening statement" in body
    assert "Statement of the 10th" not in body
    assert "2025-02-11 07:00 +00:00</time> (UTC)</footer>" in html.get_content()  # made
    assert set(copies(room.digest(date(2025, 2, 10)))) == {"Evening statement", "Tuesday news"}
    assert copies(room.digest(date(2025, 2, 11))) == {
        "Statement of the 10th": [("Late Post", True)]
    }
