"""The Storage protocol's contract (storage/base.py), run against every implementation.

The tests reach storage only through the protocol's methods. `BACKENDS` lists the
implementations: each entry makes an opener for a fresh, empty store, and every call of
that opener opens another handle on the same store (as a second process would). A new
backend (PostgreSQL) adds itself there.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from aggregator.exceptions import StorageError
from aggregator.storage import (
    POLL_SECONDS_BUCKETS,
    DigestRun,
    DueAlert,
    EntryRange,
    FeedUpdate,
    PollerRecord,
    PollerState,
    Storage,
    fulltext,
    open_storage,
)
from aggregator.storage.base import RECENT_ERRORS
from aggregator.storage.postgres import open_postgres
from aggregator.storage.totals import KEEP_POLLS
from aggregator.types import (
    AlertStatus,
    ArticleJoin,
    EntryData,
    Features,
    Feed,
    Outcome,
    Placement,
    StoryState,
)

Opener = Callable[[], Storage]

FEED = Feed(url="https://example.org/feed.xml", name="Example")
OTHER = Feed(url="https://other.example/rss", name="Other")
T0 = datetime(2025, 2, 10, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)
MINUTE = timedelta(minutes=1)
SECOND = timedelta(seconds=1)


def _sqlite(request: pytest.FixtureRequest) -> Opener:
    path: Path = request.getfixturevalue("tmp_path") / "contract.db"
    return lambda: open_storage(path)


def _postgres(request: pytest.FixtureRequest) -> Opener:
    url: str = request.getfixturevalue("pg_url")  # a new database on the test server
    return lambda: open_postgres(url)


#: Implementation name -> a function of the test's request (for the fixtures it needs)
#: that makes the opener of a new, empty store.
BACKENDS: dict[str, Callable[[pytest.FixtureRequest], Opener]] = {
    "sqlite": _sqlite,
    "postgres": _postgres,
}


@pytest.fixture(params=sorted(BACKENDS))
def open_store(request: pytest.FixtureRequest) -> Iterator[Opener]:
    """Opens handles on one new store of each implementation; closes them after the test."""
    make = BACKENDS[request.param](request)
    opened: list[Storage] = []

    def opener() -> Storage:
        handle = make()
        opened.append(handle)
        return handle

    yield opener
    for handle in opened:
        handle.close()


@pytest.fixture
def db(open_store: Opener) -> Storage:
    return open_store()


def entry(
    guid: str, title: str = "Title", text: str = "Body", published: datetime | None = T0
) -> EntryData:
    return EntryData(
        guid=guid,
        title=title,
        link=f"https://example.org/{guid}",
        published=published,
        text=text,
        summary=text[:20],
    )


# --- feeds and polls -------------------------------------------------------------------


def test_configured_feeds_get_rows_that_keep_their_state(db: Storage) -> None:
    assert db.feed_states() == [] and db.feed_state(FEED.url) is None
    db.sync_feeds([OTHER, FEED], T0)
    assert [s.name for s in db.feed_states()] == ["Example", "Other"]  # by name
    state = db.feed_state(FEED.url)
    assert state is not None and state.last_attempt is None and state.entry_count == 0
    assert not state.disabled and state.consecutive_failures == 0
    db.record_failure(FEED, "HTTP 500", now=T0, seconds=0.1)
    db.sync_feeds([Feed(url=FEED.url, name="Renamed")], T0 + DAY)  # OTHER no longer listed
    states = {s.url: s for s in db.feed_states()}
    assert set(states) == {FEED.url, OTHER.url}  # a row of a feed not listed stays
    assert states[FEED.url].name == "Renamed" and states[FEED.url].consecutive_failures == 1


def test_repoll_adds_nothing_and_edit_updates_in_place(db: Storage) -> None:
    db.sync_feeds([FEED], T0)
    first = db.save_poll(FEED, [entry("1"), entry("2")], now=T0, seconds=0.1)
    assert (first.new, first.updated) == (2, 0)
    again = db.save_poll(FEED, [entry("1"), entry("2")], now=T0 + timedelta(hours=1), seconds=0.1)
    assert (again.new, again.updated) == (0, 0)
    edited = db.save_poll(
        FEED,
        [entry("1", title="Title, corrected"), entry("2")],
        now=T0 + timedelta(hours=2),
        seconds=0.1,
    )
    assert (edited.new, edited.updated) == (0, 1)
    assert edited.updated_ids == [first.new_ids[0]] and edited.new_ids == []
    rows = db.entries_between(T0 - timedelta(days=1), T0 + timedelta(days=1))
    assert [(r.guid, r.title) for r in rows] == [("1", "Title, corrected"), ("2", "Title")]
    assert rows[0].id == first.new_ids[0]
    assert rows[0].first_seen == T0  # an edit keeps the first-seen time
    assert rows[0].updated_at == T0 + timedelta(hours=2)
    assert db.feed_state(FEED.url).entry_count == 2  # type: ignore[union-attr]


def test_a_guid_listed_twice_in_one_poll_is_stored_once_as_first_listed(db: Storage) -> None:
    db.sync_feeds([FEED], T0)
    saved = db.save_poll(
        FEED, [entry("1", title="first"), entry("1", title="second")], now=T0, seconds=0
    )
    assert saved.new == 1
    (row,) = db.entries_by_ids(saved.new_ids)
    assert row.title == "first" and row.feed_url == FEED.url and row.feed_name == "Example"


def test_undated_entry_takes_first_seen_time_and_keeps_it(db: Storage) -> None:
    db.sync_feeds([FEED], T0)
    db.save_poll(FEED, [entry("u", published=None)], now=T0, seconds=0)
    db.save_poll(
        FEED, [entry("u", published=None, text="edited")], now=T0 + timedelta(days=2), seconds=0
    )
    (row,) = db.entries_between(T0 - timedelta(days=9), T0 + timedelta(days=9))
    assert row.published == T0 and not row.dated and row.text == "edited"


def test_an_entry_stamp_changes_with_what_deduplication_reads(db: Storage) -> None:
    db.sync_feeds([FEED, OTHER], T0)
    first = db.save_poll(FEED, [entry("1"), entry("2", published=None)], now=T0, seconds=0)
    other = db.save_poll(OTHER, [entry("1")], now=T0, seconds=0)
    ids = first.new_ids + other.new_ids
    entries, stamps = db.stamped_entries(ids + [10_000])  # an id that is not there: left out
    assert [e.id for e in entries] == [e.id for e in db.entries_by_ids(ids)]
    assert stamps == db.entry_stamps(ids) and set(stamps) == set(ids)
    assert len(set(stamps.values())) == 3  # the same guid and text in two feeds: two stamps
    db.save_poll(FEED, [entry("1"), entry("2", published=None)], now=T0 + DAY, seconds=0)
    assert db.entry_stamps(ids) == stamps  # polled again unchanged
    db.save_poll(FEED, [entry("1", text="edited")], now=T0 + DAY, seconds=0)
    edited = db.entry_stamps(ids)
    assert edited[ids[0]] != stamps[ids[0]]
    assert {i: s for i, s in edited.items() if i != ids[0]} == {
        i: s for i, s in stamps.items() if i != ids[0]
    }
    db.sync_feeds([Feed(url=OTHER.url, name="Renamed")], T0 + DAY)  # what a headline reads
    renamed = db.entry_stamps(ids)
    assert renamed[ids[2]] != stamps[ids[2]]
    db.rename_feed(OTHER.url, "https://moved.example/rss")  # the same name, a new URL
    assert db.entry_stamps(ids)[ids[2]] != renamed[ids[2]]
    assert db.entry_stamps([]) == {} and db.stamped_entries([]) == ([], {})


def test_failed_write_leaves_nothing_half_done(open_store: Opener) -> None:
    db = open_store()
    db.sync_feeds([FEED], T0)
    db.save_poll(FEED, [entry("1")], now=T0, seconds=0)
    bad = EntryData(guid="2", title="x", link=None, published=datetime(2025, 1, 1))  # naive
    with pytest.raises(ValueError):
        db.save_poll(FEED, [entry("3"), bad], now=T0, seconds=0)
    rows = db.entries_between(T0 - timedelta(days=400), T0 + timedelta(days=1))
    assert [r.guid for r in rows] == ["1"]
    db.close()
    # and the committed entry survives a reopen
    assert open_store().entry_count() == 1


def test_failures_are_recorded_and_reset_on_success(db: Storage) -> None:
    db.sync_feeds([FEED], T0)
    db.record_failure(FEED, "HTTP 500", now=T0, seconds=0.2)
    db.record_failure(FEED, "HTTP 502", now=T0, seconds=0.2)
    state = db.feed_state(FEED.url)
    assert state is not None and state.consecutive_failures == 2 and state.last_error == "HTTP 502"
    assert state.last_success is None and state.last_attempt == T0
    db.save_poll(FEED, [entry("1")], now=T0 + timedelta(minutes=5), seconds=0.1)
    state = db.feed_state(FEED.url)
    assert state is not None and state.consecutive_failures == 0 and state.last_error is None
    assert state.last_success == T0 + timedelta(minutes=5)


def test_what_a_poll_learnt_about_its_feed_is_recorded(db: Storage) -> None:
    db.sync_feeds([FEED], T0)
    full = FeedUpdate(
        http_status=200,
        etag='"v1"',
        last_modified="Mon, 10 Feb 2025 12:00:00 GMT",
        content_hash="abc",
        redirected_url="https://example.org/new.xml",
        next_poll=T0 + timedelta(hours=1),
        retry_after=T0 + timedelta(minutes=30),
    )
    db.save_poll(FEED, [entry("1")], now=T0, seconds=0, title="The Example", update=full)
    state = db.feed_state(FEED.url)
    assert state is not None
    assert (state.title, state.etag, state.last_modified, state.content_hash) == (
        "The Example",
        '"v1"',
        "Mon, 10 Feb 2025 12:00:00 GMT",
        "abc",
    )
    assert state.last_status == 200 and state.redirected_url == "https://example.org/new.xml"
    assert state.next_poll == T0 + timedelta(hours=1)
    assert state.retry_after == T0 + timedelta(minutes=30)
    # A 304 keeps the validators it does not repeat, and touches no entry.
    later = T0 + timedelta(hours=1)
    db.record_not_modified(
        FEED, now=later, seconds=0, update=FeedUpdate(http_status=304, next_poll=later + DAY)
    )
    state = db.feed_state(FEED.url)
    assert state is not None and (state.etag, state.content_hash) == ('"v1"', "abc")
    assert state.last_modified == "Mon, 10 Feb 2025 12:00:00 GMT"
    assert state.last_status == 304 and state.next_poll == later + DAY
    assert state.retry_after is None and state.last_success == later
    assert state.redirected_url == "https://example.org/new.xml" and state.title == "The Example"
    assert [e.updated_at for e in db.entries_between(T0 - DAY, T0 + DAY)] == [T0]
    # A full answer without validators replaces them: the old ETag must not be sent again.
    db.save_poll(FEED, [entry("1")], now=later, seconds=0, update=FeedUpdate(http_status=200))
    state = db.feed_state(FEED.url)
    assert state is not None and (state.etag, state.last_modified, state.content_hash) == (
        None,
        None,
        None,
    )
    assert state.title == "The Example"  # no title given: kept


def test_a_gone_feed_is_disabled_until_enabled(db: Storage) -> None:
    db.sync_feeds([FEED], T0)
    assert db.enable_feed(FEED.url) is False
    gone = FeedUpdate(http_status=410, disabled_reason="HTTP 410 Gone", next_poll=T0 + DAY)
    db.record_failure(FEED, "HTTP 410 Gone", now=T0, seconds=0, update=gone)
    state = db.feed_state(FEED.url)
    assert state is not None and state.disabled and state.disabled_reason == "HTTP 410 Gone"
    assert state.last_status == 410 and state.consecutive_failures == 1
    assert db.enable_feed(FEED.url) is True
    state = db.feed_state(FEED.url)
    assert state is not None and not state.disabled and state.consecutive_failures == 0
    assert state.next_poll is None and state.retry_after is None


def test_a_renamed_feed_keeps_its_entries_and_history(db: Storage) -> None:
    new_url = "https://example.org/moved.xml"
    db.sync_feeds([FEED, OTHER], T0)
    saved = db.save_poll(FEED, [entry("1")], now=T0, seconds=0)
    db.set_redirected_url(FEED.url, new_url)
    assert db.feed_state(FEED.url).redirected_url == new_url  # type: ignore[union-attr]
    db.set_redirected_url(FEED.url, None)
    assert db.feed_state(FEED.url).redirected_url is None  # type: ignore[union-attr]
    db.set_redirected_url(FEED.url, new_url)
    db.rename_feed(FEED.url, FEED.url)  # the same URL: nothing happens
    db.rename_feed(FEED.url, new_url)
    assert db.feed_state(FEED.url) is None
    moved = db.feed_state(new_url)
    assert moved is not None and moved.entry_count == 1 and moved.redirected_url is None
    assert moved.last_success == T0 and moved.name == "Example"
    (row,) = db.entries_by_ids(saved.new_ids)
    assert row.feed_url == new_url
    with pytest.raises(StorageError):
        db.rename_feed(new_url, OTHER.url)  # taken: nothing changes
    assert db.feed_state(new_url) is not None and db.feed_state(OTHER.url) is not None
    assert db.entries_by_ids(saved.new_ids)[0].feed_url == new_url


def test_a_due_feed_is_leased_to_one_poller_until_its_poll_is_recorded(
    open_store: Opener,
) -> None:
    a, b = open_store(), open_store()  # two pollers' handles
    a.sync_feeds([FEED, OTHER], T0)
    hosts = {FEED.url: "example.org", OTHER.url: "other.example", "https://unknown/": "unknown"}
    until = T0 + timedelta(minutes=5)
    got = a.lease_feeds(hosts, owner="a", now=T0, until=until)
    assert got.granted == [FEED.url, OTHER.url] and got.refused == {"https://unknown/": None}
    # Another poller is refused until the lease ends; the owner may renew it.
    other = b.lease_feeds({FEED.url: "example.org"}, owner="b", now=T0, until=until)
    assert other.granted == [] and other.refused == {FEED.url: until}
    assert a.lease_feeds({FEED.url: "example.org"}, owner="a", now=T0, until=until).granted
    # The poll's record ends the lease; the feed is then not due before its next poll.
    next_poll = T0 + timedelta(hours=1)
    a.record_not_modified(FEED, now=T0, seconds=0.1, update=FeedUpdate(next_poll=next_poll))
    refused = b.lease_feeds({FEED.url: "example.org"}, owner="b", now=T0, until=until)
    assert refused.refused == {FEED.url: next_poll}
    forced = b.lease_feeds(
        {FEED.url: "example.org"}, owner="b", now=T0, until=until, due_only=False
    )
    assert forced.granted == [FEED.url]
    # A lease not ended by a record (its poller died) lapses at its end.
    late = a.lease_feeds({OTHER.url: "other.example"}, owner="b", now=until, until=until + DAY)
    assert late.granted == [OTHER.url]
    # Failures and successful polls end leases too.
    b.record_failure(OTHER, "HTTP 500", now=until, seconds=0.1)
    b.save_poll(FEED, [entry("1")], now=until, seconds=0.1, update=FeedUpdate(next_poll=until))
    assert a.lease_feeds(hosts, owner="a", now=until, until=until + DAY).granted == [
        FEED.url,
        OTHER.url,
    ]
    assert b.lease_feeds(hosts, owner="b", now=until, until=until + DAY).granted == []


def test_a_poll_pulled_forward_is_leased_to_the_first_poller_only(open_store: Opener) -> None:
    """A feed not due, last attempted before `polled_before` (the end of a daily digest's
    window: a poll pulled forward for it), is leased all the same; once one poller has
    polled it, the others are refused until its next poll, and while one holds it, until
    its lease ends."""
    a, b = open_store(), open_store()  # two pollers' handles
    a.sync_feeds([FEED, OTHER], T0)
    midnight = T0 + 4 * timedelta(hours=1)  # polled at T0, next poll a day later
    later = FeedUpdate(next_poll=T0 + DAY)
    a.record_not_modified(FEED, now=T0, seconds=0.1, update=later)
    a.record_not_modified(OTHER, now=T0, seconds=0.1, update=later)
    now = midnight + 7 * timedelta(hours=1)
    until = now + timedelta(minutes=5)
    host = {FEED.url: "example.org"}
    assert b.lease_feeds(host, owner="b", now=now, until=until).refused == {FEED.url: T0 + DAY}
    got = a.lease_feeds(host, owner="a", now=now, until=until, polled_before=midnight)
    assert got.granted == [FEED.url]
    # Held: the other poller pulling it forward too is refused until the lease ends.
    held = b.lease_feeds(host, owner="b", now=now, until=until, polled_before=midnight)
    assert held.granted == [] and held.refused == {FEED.url: until}
    # Polled (after midnight): no one polls it again before its next poll.
    a.record_not_modified(FEED, now=now, seconds=0.1, update=FeedUpdate(next_poll=now + DAY))
    seen = b.lease_feeds(host, owner="b", now=now, until=until, polled_before=midnight)
    assert seen.granted == [] and seen.refused == {FEED.url: now + DAY}
    # A feed polled after `polled_before` (the window's end) is not pulled forward.
    other = {OTHER.url: "other.example"}
    early = b.lease_feeds(other, owner="b", now=now, until=until, polled_before=T0)
    assert early.refused == {OTHER.url: T0 + DAY}


def test_released_leases_are_the_owners_only(open_store: Opener) -> None:
    a, b = open_store(), open_store()  # two pollers' handles
    a.sync_feeds([FEED, OTHER], T0)
    until = T0 + timedelta(minutes=5)
    a.lease_feeds({FEED.url: "example.org"}, owner="a", now=T0, until=until, due_only=False)
    b.lease_feeds({OTHER.url: "other.example"}, owner="b", now=T0, until=until, due_only=False)
    a.release_leases([FEED.url, OTHER.url, "https://unknown/"], owner="a")
    hosts = {FEED.url: "example.org", OTHER.url: "other.example"}
    got = b.lease_feeds(hosts, owner="c", now=T0, until=until, due_only=False)
    assert got.granted == [FEED.url] and got.refused == {OTHER.url: until}  # b's is kept


def test_a_pass_goes_on_while_a_lease_is_held_or_a_feed_is_due(open_store: Opener) -> None:
    a, b = open_store(), open_store()  # two pollers' handles
    a.sync_feeds([FEED, OTHER], T0)
    urls = [FEED.url, OTHER.url]
    assert a.pass_pending(urls, T0)  # never polled
    assert not a.pass_pending([], T0)  # nothing leased, no feed of its own
    later = T0 + timedelta(hours=1)
    for feed in (FEED, OTHER):
        a.record_not_modified(feed, now=T0, seconds=0.1, update=FeedUpdate(next_poll=later))
    assert not a.pass_pending(urls, T0) and not b.pass_pending(urls, T0)
    assert a.pass_pending(urls, later)  # due
    # Another poller's lease of a feed, even one these feeds do not list.
    until = T0 + timedelta(minutes=5)
    assert b.lease_feeds({OTHER.url: "other.example"}, owner="b", now=T0, until=until,
                         due_only=False).granted == [OTHER.url]  # fmt: skip
    assert a.pass_pending([FEED.url], T0) and a.pass_pending([], T0)
    assert not a.pass_pending([FEED.url], until)  # the lease ended unrecorded (its poller died)
    b.record_not_modified(OTHER, now=T0, seconds=0.1, update=FeedUpdate(next_poll=later))
    assert not a.pass_pending(urls, T0)
    # A disabled feed is not polled: it keeps no pass going.
    a.record_failure(FEED, "HTTP 410", now=T0, seconds=0.1,
                     update=FeedUpdate(disabled_reason="gone (HTTP 410)"))  # fmt: skip
    assert not a.pass_pending(urls, later - timedelta(seconds=1))
    assert a.pass_pending(urls, later)  # OTHER is due; FEED, disabled, would not be
    assert not a.pass_pending([FEED.url], later)


def test_the_placing_order_is_by_time_then_feed_and_guid_not_by_storing(
    open_store: Opener,
) -> None:
    a, b = open_store(), open_store()
    a.sync_feeds([FEED, OTHER], T0)
    later = T0 + timedelta(minutes=1)
    # OTHER's entries stored first, then FEED's: ids follow the storing, the order does not.
    other = a.save_poll(OTHER, [entry("b"), entry("a", published=later)], now=T0, seconds=0)
    mine = b.save_poll(FEED, [entry("z"), entry("é"), entry("y", published=later)], now=T0,
                       seconds=0)  # fmt: skip
    by_guid = dict(zip(["b", "a"], other.new_ids, strict=True))
    by_guid |= dict(zip(["z", "é", "y"], mine.new_ids, strict=True))
    assert FEED.url < OTHER.url
    want = [by_guid[g] for g in ["z", "é", "b", "y", "a"]]  # "z" < "é" by code point
    ids = list(by_guid.values()) + [10**9]  # an unknown id is left out
    assert a.placing_order(reversed(ids)) == want == b.placing_order(ids)
    assert a.placing_order([]) == []


def test_a_poll_recorded_late_ends_only_its_own_poller_s_lease(open_store: Opener) -> None:
    """A poller whose lease ran out, and was taken by another, records its poll: the other's
    lease stays (a third is refused until it ends); the other's own record ends it. A
    record naming no poller ends whoever's lease it is."""
    a, b = open_store(), open_store()
    a.sync_feeds([FEED, OTHER], T0)
    hosts = {FEED.url: "example.org"}
    assert a.lease_feeds(hosts, owner="a", now=T0, until=T0 + timedelta(minutes=5)).granted
    later, until = T0 + timedelta(minutes=6), T0 + timedelta(minutes=11)
    assert b.lease_feeds(hosts, owner="b", now=later, until=until).granted
    a.record_not_modified(FEED, now=later, seconds=0.1, update=FeedUpdate(lease_owner="a"))
    third = a.lease_feeds(hosts, owner="c", now=later, until=until, due_only=False)
    assert third.refused == {FEED.url: until}
    b.save_poll(FEED, [entry("1")], now=later, seconds=0.1, update=FeedUpdate(lease_owner="b"))
    assert a.lease_feeds(hosts, owner="c", now=later, until=until, due_only=False).granted
    # Failures, and records naming no poller.
    other = {OTHER.url: "other.example"}
    assert b.lease_feeds(other, owner="b", now=later, until=until).granted
    a.record_failure(OTHER, "HTTP 500", now=later, seconds=0.1, update=FeedUpdate(lease_owner="a"))
    assert a.lease_feeds(other, owner="c", now=later, until=until, due_only=False).refused
    a.record_failure(OTHER, "HTTP 500", now=later, seconds=0.1)
    assert a.lease_feeds(other, owner="c", now=later, until=until, due_only=False).granted


HEARTBEAT = timedelta(seconds=30)


def test_pollers_are_listed_with_the_feeds_they_hold_leases_on(open_store: Opener) -> None:
    """Each poller's row, as it wrote it last (start, heartbeat, error, stop), read by
    another handle with the feeds leased to it whose lease has not ended; leases of an
    owner without a row (`aggregator poll`) are nobody's here."""
    a, b = open_store(), open_store()  # two pollers' handles
    a.sync_feeds([FEED, OTHER, Feed(url="https://third.example/", name="Third")], T0)
    until = T0 + timedelta(minutes=5)
    first = PollerRecord("h1:10:a", "h1", 10, T0, T0, None, HEARTBEAT)
    second = PollerRecord("h2:20:b", "h2", 20, T0 - DAY, T0, None, timedelta(seconds=2.5))
    forget = T0 - 7 * DAY
    a.record_poller(first, forget_before=forget)
    b.record_poller(second, forget_before=forget)
    assert a.lease_feeds({FEED.url: "example.org"}, owner="h1:10:a", now=T0, until=until).granted
    assert b.lease_feeds({OTHER.url: "other.example"}, owner="h2:20:b", now=T0, until=until)
    assert a.lease_feeds(
        {"https://third.example/": "third.example"}, owner="poll", now=T0, until=until
    )
    # By start: the second poller started a day earlier.
    assert a.pollers(T0) == [PollerState(second, 1), PollerState(first, 1)]
    listed = b.pollers(T0)[1].poller
    assert listed.started.utcoffset() == timedelta(0) and listed.every == HEARTBEAT
    # A heartbeat replaces the row (with the error its writes meet); a poll's record ends
    # its poller's lease; an ended lease counts for nobody.
    beat = first._replace(
        seen=T0 + HEARTBEAT, storage_error="disk full", failing_since=T0 + timedelta(seconds=5)
    )
    a.record_poller(beat, forget_before=forget)
    a.record_not_modified(FEED, now=T0, seconds=0.1, update=FeedUpdate(lease_owner="h1:10:a"))
    assert b.pollers(T0 + HEARTBEAT) == [PollerState(second, 1), PollerState(beat, 0)]
    assert [p.leases for p in b.pollers(until)] == [0, 0]
    # A clean stop.
    stopped = beat._replace(seen=until, stopped=until, storage_error=None, failing_since=None)
    a.record_poller(stopped, forget_before=forget)
    assert b.pollers(until) == [PollerState(second, 0), PollerState(stopped, 0)]


def test_pollers_gone_for_long_are_forgotten_by_a_heartbeat(open_store: Opener) -> None:
    db = open_store()
    old = PollerRecord("old:1:a", "old", 1, T0, T0, T0, HEARTBEAT)  # stopped at T0
    dead = PollerRecord("dead:2:b", "dead", 2, T0, T0 + DAY, None, HEARTBEAT)  # silent since
    alive = PollerRecord("alive:3:c", "alive", 3, T0, T0, None, HEARTBEAT)
    for record in (old, dead, alive):
        db.record_poller(record, forget_before=T0 - DAY)
    assert len(db.pollers(T0)) == 3
    # Seen before `forget_before`: forgotten, but the poller writing (its row is replaced).
    db.record_poller(alive, forget_before=T0 + timedelta(hours=1))
    assert [p.poller for p in db.pollers(T0)] == [alive, dead]  # by start, then owner
    later = alive._replace(seen=T0 + 9 * DAY)
    db.record_poller(later, forget_before=T0 + 2 * DAY)
    assert [p.poller for p in db.pollers(T0)] == [later]


def test_a_poller_with_a_naive_time_is_refused(db: Storage) -> None:
    naive = datetime(2025, 2, 10, 12, 0)
    with pytest.raises(ValueError):
        db.record_poller(
            PollerRecord("h:1:a", "h", 1, T0, naive, None, HEARTBEAT), forget_before=T0
        )
    with pytest.raises(ValueError):
        db.pollers(naive)
    assert db.pollers(T0) == []


def test_a_heartbeat_moves_no_change_stamp_of_a_shared_store(open_store: Opener) -> None:
    """Pages are kept by the stamp (`serve`): on a shared store, a heartbeat every 30 s
    from every poller would remake them for nothing. (SQLite's stamp counts every commit.)"""
    a, b = open_store(), open_store()
    stamp = b.change_stamp()
    a.record_poller(PollerRecord("h:1:a", "h", 1, T0, T0, None, HEARTBEAT), forget_before=T0)
    assert (b.change_stamp() == stamp) == a.shared


def test_per_host_counts_every_pollers_leases_of_a_host(open_store: Opener) -> None:
    a, b = open_store(), open_store()
    feeds = [Feed(url=f"https://example.org/{n}.xml", name=f"F{n}") for n in range(5)]
    a.sync_feeds([*feeds, OTHER], T0)
    until = T0 + timedelta(minutes=5)
    first = a.lease_feeds(
        {feeds[0].url: "example.org", feeds[1].url: "example.org", OTHER.url: "other.example"},
        owner="a",
        now=T0,
        until=until,
        per_host=2,
    )
    assert first.granted == [feeds[0].url, feeds[1].url, OTHER.url]
    # The host has its two in flight: b waits (soon), though its feeds are free.
    full = b.lease_feeds(
        {f.url: "example.org" for f in feeds[2:]}, owner="b", now=T0, until=until, per_host=2
    )
    assert full.granted == [] and full.refused == {f.url: None for f in feeds[2:]}
    a.save_poll(feeds[0], [], now=T0, seconds=0.1)  # one slot free again
    one = b.lease_feeds(
        {f.url: "example.org" for f in feeds[2:]}, owner="b", now=T0, until=until, per_host=2
    )
    assert one.granted == [feeds[2].url] and set(one.refused) == {feeds[3].url, feeds[4].url}
    # a renewing its own lease takes no second slot; after the leases lapse all is free.
    renewed = a.lease_feeds(
        {feeds[1].url: "example.org"}, owner="a", now=T0, until=until, per_host=2
    )
    assert renewed.granted == [feeds[1].url]
    lapsed = b.lease_feeds(
        {f.url: "example.org" for f in feeds[3:]},
        owner="b",
        now=until,
        until=until + DAY,
        per_host=2,
    )
    assert lapsed.granted == [feeds[3].url, feeds[4].url]


def test_two_pollers_leasing_at_once_never_share_a_feed(open_store: Opener) -> None:
    feeds = [Feed(url=f"https://example.org/{n}.xml", name=f"F{n}") for n in range(60)]
    handles = [open_store() for _ in range(3)]
    handles[0].sync_feeds(feeds, T0)
    got: dict[str, list[str]] = {}
    start = threading.Barrier(len(handles))

    def lease(n: int) -> None:
        start.wait()
        mine: list[str] = []
        for feed in feeds:
            leases = handles[n].lease_feeds(
                {feed.url: "example.org"}, owner=str(n), now=T0, until=T0 + DAY, per_host=100
            )
            mine.extend(leases.granted)
        got[str(n)] = mine

    threads = [threading.Thread(target=lease, args=(n,)) for n in range(len(handles))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    leased = [url for mine in got.values() for url in mine]
    assert sorted(leased) == sorted(f.url for f in feeds)  # each once, none lost


def test_a_store_wide_lock_is_held_by_one_handle_at_a_time(open_store: Opener) -> None:
    a, b = open_store(), open_store()
    inside: list[str] = []
    if not a.shared:  # one daemon per store: nothing to wait for
        with a.hold("placing"), b.hold("placing"):
            inside.append("both")
        assert inside == ["both"]
        return
    entered = threading.Event()

    def second() -> None:
        with b.hold("placing"):
            inside.append("b")
        entered.set()

    with a.hold("placing"):
        with b.hold("digest"):  # another lock: not held up
            inside.append("digest")
        thread = threading.Thread(target=second)
        thread.start()
        assert not entered.wait(0.5)  # b waits while a holds it
        inside.append("a")
        b.feed_states()  # b's own reads are not held up by its waiting thread
    thread.join(10)
    assert inside == ["digest", "a", "b"]


def test_the_write_barrier_reads_its_clock_once_a_poll_in_progress_has_committed(
    open_store: Opener,
) -> None:
    """A poll's entries are first seen at the time `seen` gives once the write lock is
    held (not at `now`); another handle's `write_barrier` taken meanwhile waits for that
    poll's commit, so every entry first seen before the time it returns is stored."""
    poller, digest = open_store(), open_store()
    poller.sync_feeds([FEED], T0)
    stamped, go = threading.Event(), threading.Event()

    def seen() -> datetime:  # read under the poll's write lock
        stamped.set()
        assert go.wait(10)
        return T0 + MINUTE

    poll = threading.Thread(
        target=lambda: poller.save_poll(FEED, [entry("e")], now=T0, seconds=0, seen=seen)
    )
    poll.start()
    assert stamped.wait(10)
    found: list[tuple[datetime, list[datetime]]] = []
    asking = threading.Event()

    def barrier() -> None:
        asking.set()
        made = digest.write_barrier(lambda: T0 + 2 * MINUTE)
        whole = EntryRange(T0 - DAY, T0 + DAY, seen_before=made)
        found.append((made, [e.first_seen for e in digest.entries_in([whole])]))

    waiting = threading.Thread(target=barrier)
    waiting.start()
    assert asking.wait(10)
    waiting.join(0.5)
    assert waiting.is_alive()  # held while the poll writes
    go.set()
    poll.join(10)
    waiting.join(10)
    assert found == [(T0 + 2 * MINUTE, [T0 + MINUTE])]
    stamp = digest.change_stamp()
    assert digest.write_barrier(lambda: T0) == T0  # no writer: at once
    assert digest.entry_count() == 1  # nothing written,
    assert digest.change_stamp() == stamp  # nor counted as a change


def test_new_feeds_are_those_whose_first_entries_came_in_the_window(db: Storage) -> None:
    never = Feed(url="https://never.example/rss", name="Never")
    db.sync_feeds([FEED, OTHER, never], T0 - DAY)
    db.save_poll(FEED, [entry("e")], now=T0 + timedelta(hours=2), seconds=0)
    db.save_poll(OTHER, [entry("o")], now=T0 + timedelta(hours=1), seconds=0)
    db.save_poll(OTHER, [entry("p")], now=T0 + 2 * DAY, seconds=0)  # not its first
    assert db.feeds_added_between(T0, T0 + DAY) == ["Other", "Example"]  # in the order they came
    assert db.feeds_added_between(T0 + timedelta(hours=2), T0 + 3 * DAY) == ["Example"]
    assert db.feeds_added_between(T0 + DAY, T0 + 3 * DAY) == []
    assert db.feed_urls_added_between(T0, T0 + DAY) == {FEED.url, OTHER.url}
    assert db.feed_urls_added_between(T0 + timedelta(hours=2), T0 + 3 * DAY) == {FEED.url}
    assert db.feed_urls_added_between(T0 + DAY, T0 + 3 * DAY) == frozenset()


def test_recent_published_is_newest_first_for_that_feed(db: Storage) -> None:
    db.sync_feeds([FEED, OTHER], T0)
    entries = [entry(f"g{n}", published=T0 + timedelta(hours=n)) for n in range(12)]
    db.save_poll(FEED, entries, now=T0, seconds=0)
    db.save_poll(OTHER, [entry("x", published=T0 + DAY)], now=T0, seconds=0)
    assert db.recent_published(FEED.url, 3) == [T0 + timedelta(hours=h) for h in (11, 10, 9)]
    assert len(db.recent_published(FEED.url)) == 10
    assert db.recent_published("https://unknown.example/") == []


# --- entries ---------------------------------------------------------------------------


def test_entries_come_oldest_first_with_their_feeds_names(db: Storage) -> None:
    db.sync_feeds([FEED, OTHER], T0)
    late = T0 + timedelta(hours=1)
    ids = db.save_poll(FEED, [entry("a", published=late), entry("b")], now=T0, seconds=0)
    more = db.save_poll(OTHER, [entry("c"), entry("d", published=late)], now=T0, seconds=0)
    a, b = ids.new_ids
    c, d = more.new_ids
    expected = [(b, "Example"), (c, "Other"), (a, "Example"), (d, "Other")]
    assert [(e.id, e.feed_name) for e in db.entries_by_ids([d, c, b, a])] == expected
    window = db.entries_between(T0, late + timedelta(seconds=1))
    assert [(e.id, e.feed_name) for e in window] == expected
    assert [e.id for e in db.entries_by_ids([c, 999])] == [c]
    assert db.entries_by_ids([]) == []


def test_a_window_is_half_open_and_counts_are_kept(db: Storage) -> None:
    assert db.first_published() is None and db.entry_count() == 0
    db.sync_feeds([FEED], T0)
    db.save_poll(
        FEED, [entry("a", published=T0), entry("b", published=T0 + DAY)], now=T0, seconds=0
    )
    assert [e.guid for e in db.entries_between(T0, T0 + DAY)] == ["a"]
    assert [e.guid for e in db.entries_between(T0 + DAY, T0 + 2 * DAY)] == ["b"]
    assert db.first_published() == T0 and db.entry_count() == 2
    (row,) = db.entries_between(T0, T0 + DAY)
    assert row.article_id is None and row.story_id is None and row.dated
    assert (row.link, row.summary, row.text) == ("https://example.org/a", "Body", "Body")


def test_late_entries_are_those_published_before_and_first_seen_since(db: Storage) -> None:
    """What a daily digest adds to its window (docs/digests.md): entries published before
    it, first stored at or after the previous daily digest was made; oldest first."""
    db.sync_feeds([FEED, OTHER], T0)
    start, made = T0 + DAY, T0 + DAY + timedelta(hours=7)  # a window's start; a digest made
    db.save_poll(FEED, [entry("in time", published=T0 + timedelta(hours=1))], now=T0, seconds=0)
    db.save_poll(
        FEED,
        [entry("late", published=T0 + timedelta(hours=3)), entry("edge", published=start)],
        now=made,  # first seen the moment the digest was made: late
        seconds=0,
    )
    db.save_poll(
        OTHER,
        [entry("later", published=T0 + timedelta(hours=2)), entry("its day", published=made)],
        now=made + timedelta(hours=1),
        seconds=0,
    )
    # An edit of one stored in time keeps its first-seen time: not late.
    edited = entry("in time", title="Edited", published=T0 + timedelta(hours=1))
    db.save_poll(FEED, [edited], now=made + timedelta(hours=2), seconds=0)
    late = db.entries_in([EntryRange(T0, start, seen_since=made)])
    assert [(e.guid, e.feed_name) for e in late] == [("later", "Other"), ("late", "Example")]
    assert [e.first_seen for e in late] == [made + timedelta(hours=1), made]
    assert db.entries_in([EntryRange(T0, start, seen_since=made + SECOND)]) == late[:1]
    assert db.entries_in([EntryRange(T0 - DAY, T0, seen_since=T0)]) == []


def test_entries_in_ranges_are_read_once_oldest_first(db: Storage) -> None:
    """A daily digest's read (docs/digests.md): entries published in a range and first
    stored in another, either bound open; over several ranges, each entry once."""
    db.sync_feeds([FEED, OTHER], T0)
    made = T0 + DAY  # a digest made
    db.save_poll(
        FEED, [entry("before", published=T0 - DAY), entry("in", published=T0)], now=T0, seconds=0
    )
    db.save_poll(FEED, [entry("at", published=T0 + SECOND)], now=made, seconds=0)
    db.save_poll(OTHER, [entry("after", published=T0 - SECOND)], now=made + SECOND, seconds=0)
    db.save_poll(OTHER, [entry("next", published=made)], now=made + DAY, seconds=0)

    def read(*ranges: EntryRange) -> list[tuple[str, str]]:
        return [(e.guid, e.feed_name) for e in db.entries_in(ranges)]

    assert read(EntryRange(T0 - SECOND, made)) == [
        ("after", "Other"),
        ("in", "Example"),
        ("at", "Example"),
    ]
    assert read(EntryRange(T0 - DAY, made, seen_before=made)) == [
        ("before", "Example"),
        ("in", "Example"),
    ]
    assert read(EntryRange(T0 - DAY, made + DAY, seen_since=made)) == [
        ("after", "Other"),
        ("at", "Example"),
        ("next", "Other"),
    ]
    seen_then = EntryRange(T0 - DAY, made + DAY, seen_since=made, seen_before=made + SECOND)
    assert read(seen_then) == [("at", "Example")]
    overlapping = (EntryRange(T0, made + DAY, seen_before=made + DAY), seen_then)
    assert read(*overlapping) == [("in", "Example"), ("at", "Example")]
    assert read(EntryRange(T0, T0)) == [] and read() == []


def test_articles_stored_before_a_time_and_dated_before_another(db: Storage) -> None:
    """Which articles hold an entry first stored before a time and dated before another:
    a daily digest's late arrival in one is a copy stored again (docs/digests.md)."""
    db.sync_feeds([FEED, OTHER], T0)
    old = db.save_poll(FEED, [entry("old", published=T0 - DAY)], now=T0, seconds=0).new_ids
    new = db.save_poll(OTHER, [entry("new", published=T0 - DAY)], now=T0 + DAY, seconds=0)
    recent = db.save_poll(FEED, [entry("recent", published=T0)], now=T0, seconds=0).new_ids
    ids = [*old, *new.new_ids, *recent]
    for entry_id, (article, story) in zip(ids, [(1, 1), (2, 1), (3, 2)], strict=True):
        _, next_id = db.vocabulary([])
        placed = Outcome([Placement(entry_id, article, story, (1,), None)], [], {}, 0, 4)
        assert db.save_outcome([features(entry_id, "k")], placed, expected_next_id=next_id)

    def stored(placed: list[tuple[int, int]], before: datetime, dated: datetime) -> set[int]:
        return db.articles_stored(placed, stored_before=before, dated_before=dated)

    every = [(1, 1), (1, 2), (2, 3)]
    assert stored(every, T0 + SECOND, T0 + DAY) == {1, 3}  # article 2's only entry: later
    assert stored(every, T0 + DAY + SECOND, T0 + DAY) == {1, 2, 3}
    assert stored(every, T0 + SECOND, T0) == {1}  # article 3's entry is dated T0
    assert stored([(1, 2)], T0 + DAY + SECOND, T0 + DAY) == {2}
    assert stored([(2, 1)], T0 + DAY, T0 + DAY) == set()  # article 1 is story 1's
    assert stored([], T0 + DAY, T0 + DAY) == set()


def test_the_digest_made_before_a_day_is_the_latest_earlier_days(db: Storage) -> None:
    assert db.digest_made_before(date(2025, 2, 12)) is None  # none made yet: the first
    db.record_digest(date(2025, 2, 9), now=T0)
    db.record_digest(date(2025, 2, 10), now=T0 + DAY)
    db.record_digest(date(2025, 2, 12), now=T0 + 3 * DAY)  # the 11th's was never made
    assert db.digest_made_before(date(2025, 2, 12)) == DigestRun(date(2025, 2, 10), T0 + DAY)
    assert db.digest_made_before(date(2025, 2, 13)) == DigestRun(date(2025, 2, 12), T0 + 3 * DAY)
    assert db.digest_made_before(date(2025, 2, 10)) == DigestRun(date(2025, 2, 9), T0)
    assert db.digest_made_before(date(2025, 2, 9)) is None


# --- email deliveries and daily digest runs ------------------------------------------------

STALE = timedelta(minutes=15)


def test_a_delivery_is_claimed_once_retried_when_due_and_sent_once(db: Storage) -> None:
    claim = {"now": T0, "force": False, "stale_after": STALE}
    assert db.claim_email("2025-02-10", "a@example.org", **claim) == 0  # type: ignore[arg-type]
    # Claimed and not yet recorded: another process is refused until the claim is stale.
    assert db.claim_email("2025-02-10", "a@example.org", **claim) is None  # type: ignore[arg-type]
    assert (
        db.claim_email(
            "2025-02-10", "a@example.org", now=T0 + STALE, force=False, stale_after=STALE
        )
        == 0
    )
    retry = T0 + timedelta(hours=1)
    db.record_email(
        "2025-02-10",
        "a@example.org",
        now=T0,
        ok=False,
        attempts=2,
        error="refused",
        next_attempt=retry,
    )
    (failed,) = db.email_deliveries()
    assert (failed.status, failed.attempts, failed.error, failed.next_attempt) == (
        "failed",
        2,
        "refused",
        retry,
    )
    assert failed.sent_at is None and failed.first_attempt == T0
    assert db.email_retries_due(retry - timedelta(seconds=1)) == []
    assert db.email_retries_due(retry) == [failed]
    assert (
        db.claim_email("2025-02-10", "a@example.org", now=retry, force=False, stale_after=STALE)
        == 2
    )
    db.record_email(
        "2025-02-10", "a@example.org", now=retry, ok=True, attempts=1, message_id="<m1>"
    )
    (sent,) = db.email_deliveries()
    assert (sent.status, sent.attempts, sent.sent_at, sent.error, sent.message_id) == (
        "sent",
        3,
        retry,
        None,
        "<m1>",
    )
    assert sent.next_attempt is None and sent.last_attempt == retry
    assert db.email_retries_due(retry + DAY) == []
    later = retry + DAY
    assert (
        db.claim_email("2025-02-10", "a@example.org", now=later, force=False, stale_after=STALE)
        is None
    )
    assert (
        db.claim_email("2025-02-10", "a@example.org", now=later, force=True, stale_after=STALE) == 3
    )


def test_deliveries_are_listed_newest_attempt_first_and_retried_oldest_digest_first(
    db: Storage,
) -> None:
    minute = timedelta(minutes=1)
    attempts = [
        ("2025-02-12", "a@x", T0, None),
        ("2025-02-10", "b@x", T0 + minute, T0 + DAY),
        ("2025-02-11", "c@x", T0 + minute, T0 + DAY),
        ("2025-02-10", "a@x", T0 + minute, T0 + 2 * DAY),
    ]
    for digest, to, now, retry in attempts:
        assert db.claim_email(digest, to, now=now, force=False, stale_after=STALE) == 0
        db.record_email(digest, to, now=now, ok=False, attempts=1, error="x", next_attempt=retry)
    listed = [(d.digest, d.recipient) for d in db.email_deliveries()]
    expected = [("2025-02-11", "c@x"), ("2025-02-10", "a@x"), ("2025-02-10", "b@x")]
    assert listed == [*expected, ("2025-02-12", "a@x")]
    assert [(d.digest, d.recipient) for d in db.email_deliveries(limit=2)] == expected[:2]
    due = [(d.digest, d.recipient) for d in db.email_retries_due(T0 + 3 * DAY)]
    assert due == [("2025-02-10", "a@x"), ("2025-02-10", "b@x"), ("2025-02-11", "c@x")]
    assert [d.recipient for d in db.email_retries_due(T0 + DAY)] == ["b@x", "c@x"]


def test_a_daily_digest_is_recorded_as_made(db: Storage) -> None:
    day = date(2025, 2, 10)
    assert db.digest_made(day) is None
    db.record_digest(day, now=T0)
    assert db.digest_made(day) == T0 and db.digest_made(date(2025, 2, 11)) is None
    db.record_digest(day, now=T0 + DAY)
    assert db.digest_made(day) == T0 + DAY


# --- deduplication -------------------------------------------------------------------------


def features(entry_id: int, title_key: str, published: datetime = T0) -> Features:
    return Features(
        entry_id=entry_id,
        feed_url=FEED.url,
        published=published,
        url=f"https://example.org/{entry_id}",
        guid=str(entry_id),
        title_key=title_key,
        size=10,
        signature=b"\x01" * 8,
        lead_size=5,
        lead=b"\x02" * 4,
    )


def story(id_: int, centroid: dict[str, float], size: int = 1, when: datetime = T0) -> StoryState:
    return StoryState(id=id_, first=when, last=when, size=size, centroid=centroid)


def place(storage: Storage, entry_id: int, title_key: str, story: int) -> None:
    """Record one entry's features and placement, as `Aggregator.assign` would."""
    _, next_id = storage.vocabulary([])
    placed = Placement(entry_id, story, story, (1, 2), {"chips": 1.0})
    outcome = Outcome([placed], [], {}, 0, max(next_id, story + 1))
    assert (
        storage.save_outcome([features(entry_id, title_key)], outcome, expected_next_id=next_id)
        is not None
    )


def test_a_kept_key_index_is_replaced_only_by_a_later_one(db: Storage) -> None:
    """The copy of a lookup-key index a store keeps: read back under its settings only,
    replaced by a copy of a later batch or of other settings, not by an earlier one."""
    assert db.kept_key_index("keys 1") is None
    db.save_key_index(3, "keys 1", b"three" * 1000)
    assert db.kept_key_index("keys 1") == (3, b"three" * 1000)
    assert db.kept_key_index("keys 2") is None
    db.save_key_index(2, "keys 1", b"two")  # another process's, older: not kept
    db.save_key_index(3, "keys 1", b"three again")
    assert db.kept_key_index("keys 1") == (3, b"three" * 1000)
    db.save_key_index(5, "keys 1", bytearray(b"five"))  # as `KeyIndex.to_bytes` gives it
    assert db.kept_key_index("keys 1") == (5, b"five")
    db.save_key_index(1, "keys 2", b"other settings")
    assert db.kept_key_index("keys 1") is None
    assert db.kept_key_index("keys 2") == (1, b"other settings")


def test_a_kept_key_index_of_several_parts_reads_back_whole(
    open_store: Opener, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A copy larger than a value may be (`encoding.KEPT_INDEX_PART`, ~1 GB in either
    backend) is kept in parts and read back whole, in order; a copy kept after it in fewer
    parts leaves none of the earlier one's behind, and one not kept (not later) leaves the
    kept one's parts as they were."""
    from aggregator.storage import encoding

    monkeypatch.setattr(encoding, "KEPT_INDEX_PART", 1000)
    db = open_store()
    big = bytes(range(256)) * 18  # 4,608 bytes: five parts
    db.save_key_index(3, "keys 1", bytearray(big))
    assert db.kept_key_index("keys 1") == (3, big)
    db.save_key_index(2, "keys 1", b"x" * 2500)  # older: not kept, nor its parts
    assert db.kept_key_index("keys 1") == (3, big)
    assert open_store().kept_key_index("keys 1") == (3, big)  # another handle reads it too
    db.save_key_index(4, "keys 1", b"y" * 1500)  # two parts: the earlier three others gone
    assert db.kept_key_index("keys 1") == (4, b"y" * 1500)
    db.save_key_index(5, "keys 1", b"z" * 1000)  # exactly one part
    assert db.kept_key_index("keys 1") == (5, b"z" * 1000)
    db.save_key_index(6, "keys 2", b"")  # other settings, no bytes
    assert db.kept_key_index("keys 1") is None
    assert db.kept_key_index("keys 2") == (6, b"")


def test_a_placed_batch_reads_back_through_every_dedup_read(db: Storage) -> None:
    db.sync_feeds([FEED], T0)
    one, two, three = db.save_poll(
        FEED, [entry("1"), entry("2"), entry("3")], now=T0, seconds=0
    ).new_ids
    assert sorted(db.unassigned_ids()) == [one, two, three]
    assert sorted(db.unassigned_ids(among=[three, one, 999])) == [one, three]
    assert db.unassigned_ids(among=[]) == []
    vocabulary, next_id = db.vocabulary(["nvidia"])
    assert (vocabulary.df, vocabulary.docs, next_id) == ({}, 0, 1)
    assert db.dedup_features() == ([], 0)
    found = [features(one, "nvidia chips"), features(two, "export rules")]
    outcome = Outcome(
        placements=[
            Placement(one, 1, 1, (11, 12), {"nvidia": 0.5, "chips": 0.25}),
            Placement(two, 2, 2, (21,), {"export": 1.0}),
        ],
        stories=[
            story(1, {"nvidia": 0.5, "chips": 0.25}),
            story(2, {"export": 1.0}, when=T0 + DAY),
        ],
        df_delta={"nvidia": 1, "chips": 1, "export": 1},
        docs_delta=2,
        next_id=3,
        story_terms={1: ["nvidia", "chips"], 2: ["export"]},
    )
    assert db.save_outcome(found, outcome, expected_next_id=1) == 1
    assert db.unassigned_ids() == [three]
    assert db.unassigned_ids(among=[one, two, three]) == [three]
    placed = {e.id: (e.article_id, e.story_id) for e in db.entries_by_ids([one, two, three])}
    assert placed == {one: (1, 1), two: (2, 2), three: (None, None)}
    assert db.dedup_features() == (found, 1)  # stored without terms, by entry id
    assert db.dedup_features(after=1) == ([], 1)
    assert db.previous_placements([one, two, three]) == {
        one: (1, {"nvidia": 0.5, "chips": 0.25}),
        two: (2, {"export": 1.0}),
    }
    known = db.known_copies([two, one, three])  # three: not placed
    assert [(k.features, k.article_id, k.story_id) for k in known] == [
        (found[0], 1, 1),  # by entry id
        (found[1], 2, 2),
    ]
    assert db.known_copies([]) == []
    vocabulary, next_id = db.vocabulary(["nvidia", "export", "unknown"])
    assert (vocabulary.df, vocabulary.docs, next_id) == ({"nvidia": 1, "export": 1}, 2, 3)
    window = (T0 - DAY, T0 + 2 * DAY)
    assert db.stories_near({"nvidia"}, *window) == [story(1, {"nvidia": 0.5, "chips": 0.25})]
    assert [s.id for s in db.stories_near(["chips", "export"], *window)] == [1, 2]
    assert [s.id for s in db.stories_near(["export"], T0 - DAY, T0)] == []  # story 2 is later
    assert [s.id for s in db.stories_near(["x"], T0 - 9 * DAY, T0 - 8 * DAY, ids=[2])] == [2]
    assert (db.story_id(1), db.story_id(2), db.story_id(99)) == (1, 2, None)


def assert_counted(db: Storage, ids: Sequence[int]) -> None:
    """The store's counts of entries, articles and stories (kept as batches are recorded,
    not counted at each read) are those of its entries, `ids`."""
    rows = db.entries_by_ids(ids)
    assert len(rows) == len(ids)
    articles = {e.article_id for e in rows} - {None}
    stories = {e.story_id for e in rows} - {None}
    assert db.tallies()[:3] == (len(rows), len(articles), len(stories))


def placed_across_feeds(db: Storage) -> list[int]:
    """Entries of FEED and OTHER, some placed (three articles, two stories), one not yet;
    their ids."""
    db.sync_feeds([FEED, OTHER], T0)
    ids = db.save_poll(FEED, [entry("1"), entry("2"), entry("3")], now=T0, seconds=0).new_ids
    ids += db.save_poll(OTHER, [entry("1"), entry("4")], now=T0, seconds=0).new_ids
    for entry_id, (article, story) in zip(ids, [(1, 1), (1, 1), (2, 1), (3, 2)], strict=False):
        _, next_id = db.vocabulary([])
        placed = Outcome([Placement(entry_id, article, story, (1,), None)], [], {}, 0, 4)
        assert db.save_outcome([features(entry_id, "k")], placed, expected_next_id=next_id)
    assert_counted(db, ids)
    return ids


def assert_counts_kept(db: Storage, ids: Sequence[int]) -> None:
    """`db`, once migrated holding `placed_across_feeds`' entries from before the kept
    counts: its counts and each feed's are those of its entries, and go on from there."""
    assert_counted(db, ids)
    assert [s.entry_count for s in db.feed_states()] == [3, 2]
    ids = [*ids, *db.save_poll(OTHER, [entry("5")], now=T0 + DAY, seconds=0).new_ids]
    assert_counted(db, ids)
    assert [s.entry_count for s in db.feed_states()] == [3, 3]


def test_merged_stories_move_their_entries_and_keep_their_ids_as_aliases(db: Storage) -> None:
    db.sync_feeds([FEED], T0)
    saved = db.save_poll(FEED, [entry("1"), entry("2"), entry("3")], now=T0, seconds=0)
    one, two, three = saved.new_ids
    first = Outcome(
        placements=[
            Placement(one, 1, 1, (1,), {"a": 1.0}),
            Placement(two, 2, 2, (2,), {"b": 1.0}),
            Placement(three, 3, 3, (3,), {"c": 1.0}),
        ],
        stories=[story(1, {"a": 1.0}), story(2, {"b": 1.0}), story(3, {"c": 1.0})],
        df_delta={"a": 1, "b": 1, "c": 1},
        docs_delta=3,
        next_id=4,
        story_terms={1: ["a"], 2: ["b"], 3: ["c"]},
    )
    found = [features(one, "a"), features(two, "b"), features(three, "c")]
    assert_counted(db, saved.new_ids)  # not placed yet
    assert db.save_outcome(found, first, expected_next_id=1) == 1
    assert_counted(db, saved.new_ids)
    into_two = Outcome(
        placements=[Placement(three, 3, 2, (3,), None)],
        stories=[story(2, {"b": 0.5, "c": 0.5}, size=2), story(3, {"c": 1.0})],
        df_delta={},
        docs_delta=0,
        next_id=4,
        merged={3: 2},
        story_terms={2: ["b", "c"], 3: ["c"]},
    )
    assert db.save_outcome([features(three, "c")], into_two, expected_next_id=4) == 2
    assert db.story_id(3) == 2
    assert_counted(db, saved.new_ids)
    into_one = Outcome(
        placements=[Placement(two, 2, 1, (2,), None)],
        stories=[story(1, {"a": 0.5, "b": 0.5}, size=3), story(2, {"b": 1.0})],
        df_delta={"b": -5},  # counts never go below 0
        docs_delta=-5,
        next_id=4,
        merged={2: 1},
        story_terms={1: ["a", "b"], 2: ["b"]},
    )
    assert db.save_outcome([features(two, "b")], into_one, expected_next_id=4) == 3
    assert_counted(db, saved.new_ids)
    placed = [(e.id, e.story_id) for e in db.entries_by_ids([one, two, three])]
    assert placed == [(one, 1), (two, 1), (three, 1)]  # the entry merged before moves too
    assert (db.story_id(1), db.story_id(2), db.story_id(3)) == (1, 1, 1)  # chains kept flat
    window = (T0 - DAY, T0 + DAY)
    whole = story(1, {"a": 0.5, "b": 0.5}, size=3)
    assert db.stories_near(["b", "c"], *window, ids=[2, 3]) == [whole]
    vocabulary, _ = db.vocabulary(["a", "b"])
    assert (vocabulary.df, vocabulary.docs) == ({"a": 1, "b": 0}, 0)
    assert db.previous_placements([two, three]) == {two: (1, None), three: (1, None)}
    assert db.dedup_features(after=2) == ([features(two, "b")], 3)


def test_joined_articles_move_to_the_surviving_article_and_its_story(db: Storage) -> None:
    """An entry copying two stored articles joins them (`Outcome.joined_articles`): every
    entry of the absorbed article takes the surviving article and its story, without the
    vector its old story still counts; another article of that story stays."""
    db.sync_feeds([FEED], T0)
    saved = db.save_poll(FEED, [entry(str(n)) for n in range(1, 5)], now=T0, seconds=0)
    one, two, three, four = saved.new_ids
    first = Outcome(
        placements=[
            Placement(one, 1, 2, (1,), {"a": 1.0}),
            Placement(two, 3, 4, (2,), {"a": 1.0}),
            Placement(four, 5, 4, (4,), {"b": 1.0}),
        ],
        stories=[story(2, {"a": 1.0}), story(4, {"a": 1.0, "b": 1.0}, size=2)],
        df_delta={"a": 2, "b": 1},
        docs_delta=3,
        next_id=6,
        story_terms={2: ["a"], 4: ["a", "b"]},
    )
    found = [features(one, "a"), features(two, "a"), features(four, "b")]
    assert db.save_outcome(found, first, expected_next_id=1) == 1
    assert_counted(db, saved.new_ids)
    bridged = Outcome(
        placements=[Placement(three, 1, 2, (3,), None)],
        stories=[],
        df_delta={"a": 1},
        docs_delta=1,
        next_id=6,
        joined_articles=[ArticleJoin(article=3, story=4, into=1, into_story=2)],
    )
    assert db.save_outcome([features(three, "a")], bridged, expected_next_id=6) == 2
    assert_counted(db, saved.new_ids)
    placed = {e.id: (e.article_id, e.story_id) for e in db.entries_by_ids(saved.new_ids)}
    assert placed == {one: (1, 2), two: (1, 2), three: (1, 2), four: (5, 4)}
    assert db.previous_placements([two, four]) == {two: (2, None), four: (4, {"b": 1.0})}
    assert (db.story_id(2), db.story_id(4)) == (2, 4)
    assert [db.article_count(s) for s in (2, 4, 99)] == [1, 1, 0]
    # Not counting a batch being placed again (its stored rows are what it replaces).
    assert db.article_count(2, excluding=[one, two, three]) == 0
    assert db.article_count(4, excluding=[one, two]) == 1


def test_a_batch_decided_on_stale_ids_is_refused_whole(open_store: Opener) -> None:
    a, b = open_store(), open_store()
    a.sync_feeds([FEED], T0)
    one, two = a.save_poll(FEED, [entry("1"), entry("2")], now=T0, seconds=0).new_ids
    _, next_id = a.vocabulary([])
    place(b, two, "other writer", 1)  # allocates ids meanwhile
    outcome = Outcome(
        [Placement(one, 1, 1, (1,), {"a": 1.0})],
        [story(1, {"a": 1.0})],
        {"a": 1},
        1,
        2,
        story_terms={1: ["a"]},
    )
    assert a.save_outcome([features(one, "a")], outcome, expected_next_id=next_id) is None
    assert a.unassigned_ids() == [one]
    assert a.vocabulary(["a"])[0].df == {}
    assert [f.entry_id for f in a.dedup_features()[0]] == [two]


def test_known_copies_follow_entries_recorded_again_by_another_writer(open_store: Opener) -> None:
    """An entry recorded again since (by another handle) is read afresh, and its placement
    always is."""
    a, b = open_store(), open_store()
    a.sync_feeds([FEED], T0)
    first = a.save_poll(FEED, [entry("1"), entry("2")], now=T0, seconds=0)
    one, two = first.new_ids
    place(a, one, "nvidia chips", 1)
    place(a, two, "export rules", 2)
    known = a.known_copies([one, two])
    assert [(k.features.title_key, k.story_id) for k in known] == [
        ("nvidia chips", 1),
        ("export rules", 2),
    ]
    place(b, one, "nvidia chips, corrected", 3)
    again = a.known_copies([one, two])
    assert [(k.features.title_key, k.story_id) for k in again] == [
        ("nvidia chips, corrected", 3),
        ("export rules", 2),
    ]
    assert a.known_copies([two]) == [again[1]]


def test_word_counts_follow_another_writers_batches(open_store: Opener) -> None:
    a, b = open_store(), open_store()
    a.sync_feeds([FEED], T0)
    one, two = a.save_poll(FEED, [entry("1"), entry("2")], now=T0, seconds=0).new_ids
    assert a.vocabulary(["chips"])[0].df == {}
    _, next_id = b.vocabulary([])
    outcome = Outcome(
        [Placement(one, 1, 1, (1,), {"chips": 1.0})],
        [story(1, {"chips": 1.0})],
        {"chips": 2},
        1,
        2,
        story_terms={1: ["chips"]},
    )
    assert b.save_outcome([features(one, "c")], outcome, expected_next_id=next_id) == 1
    vocabulary, next_id = a.vocabulary(["chips"])
    assert (vocabulary.df, vocabulary.docs, next_id) == ({"chips": 2}, 1, 2)
    more = Outcome(
        [Placement(two, 2, 1, (2,), None)],
        [story(1, {"chips": 1.0}, size=2)],
        {"chips": 1},
        1,
        3,
        story_terms={1: ["chips"]},
    )
    assert a.save_outcome([features(two, "c")], more, expected_next_id=2) == 2
    assert b.vocabulary(["chips"])[0] == a.vocabulary(["chips"])[0]
    assert a.vocabulary(["chips"])[0].df == {"chips": 3}


# --- lifecycle -------------------------------------------------------------------------------


def test_no_daemon_report_without_a_daemon(db: Storage) -> None:
    assert db.daemon_report() is None


def test_a_store_used_as_a_context_manager_keeps_what_it_wrote(open_store: Opener) -> None:
    with open_store() as db:
        db.sync_feeds([FEED], T0)
        db.save_poll(FEED, [entry("1")], now=T0, seconds=0)
    assert open_store().entry_count() == 1


def test_names_are_ordered_by_code_point_whatever_the_locale(db: Storage) -> None:
    names = ["beta", "Beta", "alpha", "Ärger", "中文", "_x", "10", "9"]
    db.sync_feeds([Feed(url=f"https://n.example/{i}", name=n) for i, n in enumerate(names)], T0)
    assert [s.name for s in db.feed_states()] == sorted(names)


def test_threads_sharing_one_handle_each_store_their_polls_whole(db: Storage) -> None:
    feeds = [Feed(url=f"https://t.example/{n}", name=f"T{n}") for n in range(6)]
    db.sync_feeds(feeds, T0)
    failures: list[BaseException] = []

    def poll(feed: Feed) -> None:
        try:
            for round_ in range(5):
                batch = [entry(f"{feed.name}-{round_}-{k}") for k in range(10)]
                saved = db.save_poll(feed, batch, now=T0, seconds=0)
                assert saved.new == 10
                db.entries_by_ids(saved.new_ids)  # reads interleave with other threads' writes
        except BaseException as e:  # the test thread reports it
            failures.append(e)

    threads = [threading.Thread(target=poll, args=(feed,)) for feed in feeds]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert failures == []
    rows = db.entries_between(T0 - DAY, T0 + DAY)
    assert len(rows) == len({r.id for r in rows}) == 6 * 5 * 10
    assert {s.url: s.entry_count for s in db.feed_states()} == {f.url: 50 for f in feeds}


# --- watches' alerts -------------------------------------------------------------------


def due(story_id: int, channel: str = "webhook", level: int = 0, sources: int = 2) -> DueAlert:
    return DueAlert(
        story_id,
        "summit",
        channel,
        "new" if level == 0 else "grew",
        level,
        sources,
        f'{{"story": {story_id}, "level": {level}}}',
    )


def placed_in_two_stories(db: Storage) -> tuple[int, int]:
    """Two entries placed in stories 1 and 2 (dedup batch 1); their ids."""
    db.sync_feeds([FEED], T0)
    one, two = db.save_poll(FEED, [entry("1"), entry("2")], now=T0, seconds=0).new_ids
    place(db, one, "a", 1)
    place(db, two, "b", 2)
    return one, two


def test_stories_changed_since_the_batches_evaluated_and_their_entries(db: Storage) -> None:
    assert db.stories_changed() == ([], 0)
    one, two = placed_in_two_stories(db)
    assert db.stories_changed() == ([1, 2], 2)
    assert db.stories_changed(after=1) == ([2], 2)
    assert [e.id for e in db.entries_of_stories([2])] == [two]
    assert [(e.id, e.feed_name) for e in db.entries_of_stories([1, 2, 99])] == [
        (one, "Example"),
        (two, "Example"),
    ]
    assert db.entries_of_stories([]) == []
    assert db.record_alerts([], now=T0, seq=2) == []  # evaluated up to batch 2
    assert db.stories_changed() == ([], 2)
    db.record_alerts([], now=T0, seq=1)  # never moved back
    assert db.stories_changed() == ([], 2)


def test_an_alert_is_recorded_once_per_story_watch_channel_and_level(db: Storage) -> None:
    placed_in_two_stories(db)
    first = db.record_alerts([due(1), due(1, "email"), due(2)], now=T0, seq=2)
    assert len(first) == 3
    again = db.record_alerts([due(1), due(1, level=1, sources=4)], now=T0 + DAY, seq=2)
    assert len(again) == 1  # the "new" one was recorded already
    assert db.alerted([1, 2]) == {
        (1, "summit", "webhook"): (2, 1),
        (1, "summit", "email"): (2, 0),
        (2, "summit", "webhook"): (2, 0),
    }
    listed = db.alerts_since()
    assert [(a.story_id, a.channel, a.reason, a.level, a.sources) for a in listed] == [
        (1, "webhook", "grew", 1, 4),  # newest first
        (2, "webhook", "new", 0, 2),
        (1, "email", "new", 0, 2),
        (1, "webhook", "new", 0, 2),
    ]
    assert all(a.status == AlertStatus.DUE and a.attempts == 0 for a in listed)
    assert listed[-1].payload == '{"story": 1, "level": 0}'
    assert [a.level for a in db.alerts_since(T0 + DAY)] == [1]
    # The ids returned are the rows added, in the order given; one given twice is one row.
    assert [a.id for a in listed] == sorted(again + first, reverse=True)
    twice = db.record_alerts([due(2, "email"), due(2, "email")], now=T0 + DAY, seq=2)
    assert [(a.id, a.story_id, a.channel) for a in db.alerts_since(T0 + DAY)][0] == (
        *twice,
        2,
        "email",
    )


def test_an_alert_of_a_merged_story_counts_as_its_survivors(db: Storage) -> None:
    one, two = placed_in_two_stories(db)
    assert len(db.record_alerts([due(2)], now=T0, seq=2)) == 1
    merge = Outcome(
        placements=[Placement(two, 2, 1, (2,), None)],
        stories=[story(1, {"a": 0.5, "b": 0.5}, size=2), story(2, {"b": 1.0})],
        df_delta={},
        docs_delta=0,
        next_id=3,
        merged={2: 1},
        story_terms={1: ["a", "b"], 2: ["b"]},
    )
    _, next_id = db.vocabulary([])
    assert db.save_outcome([features(two, "b")], merge, expected_next_id=next_id) == 3
    assert db.stories_changed() == ([1], 3)
    assert db.alerted([1]) == {(1, "summit", "webhook"): (2, 0)}
    assert db.record_alerts([due(1)], now=T0, seq=3) == []  # story 2's "new" is story 1's
    (alert,) = db.alerts_since()
    assert alert.story_id == 1


def test_an_alert_is_claimed_once_retried_when_due_and_sent_once(open_store: Opener) -> None:
    db, other = open_store(), open_store()
    placed_in_two_stories(db)
    (alert_id,) = db.record_alerts([due(1)], now=T0, seq=2)
    assert [a.id for a in db.alerts_due(T0)] == [alert_id]
    stale = timedelta(minutes=15)
    assert db.claim_alert(alert_id, now=T0, owner=100, stale_after=stale) == 0
    assert other.claim_alert(alert_id, now=T0, owner=200, stale_after=stale) is None
    (claimed,) = other.alerts_due(T0)  # listed: the caller tells a live claim from a dead one
    assert (claimed.status, claimed.claimed_by) == (AlertStatus.SENDING, 100)
    # Process 100 died: its claim is taken over at once; or after `stale` by anyone.
    assert other.claim_alert(alert_id, now=T0, owner=200, stale_after=stale, dead=[100]) == 0
    later = T0 + stale
    assert db.claim_alert(alert_id, now=later, owner=100, stale_after=stale) == 0
    retry = later + timedelta(minutes=5)
    db.record_alert_attempt(alert_id, now=later, ok=False, error="HTTP 500", next_attempt=retry)
    (failed,) = db.alerts_since()
    assert (failed.status, failed.attempts, failed.error) == (AlertStatus.FAILED, 1, "HTTP 500")
    assert failed.next_attempt == retry
    assert db.alerts_due(later) == []
    # Listed as due from an older state (another thread read it before it failed): its
    # backoff still holds.
    assert other.claim_alert(alert_id, now=later, owner=200, stale_after=stale) is None
    assert [a.id for a in db.alerts_due(retry)] == [alert_id]
    assert db.claim_alert(alert_id, now=retry, owner=100, stale_after=stale) == 1
    db.record_alert_attempt(alert_id, now=retry, ok=True, receipt="HTTP 200")
    (sent,) = other.alerts_since()
    assert (sent.status, sent.attempts, sent.error, sent.receipt, sent.sent_at) == (
        AlertStatus.SENT,
        2,
        None,
        "HTTP 200",
        retry,
    )
    assert other.claim_alert(alert_id, now=retry + DAY, owner=200, stale_after=stale) is None
    assert db.alerts_due(retry + DAY) == []
    assert db.alerts_sent() == {"summit": 1}


def test_an_alert_refused_for_good_is_not_retried(db: Storage) -> None:
    placed_in_two_stories(db)
    (alert_id,) = db.record_alerts([due(1)], now=T0, seq=2)
    assert db.claim_alert(alert_id, now=T0, owner=1, stale_after=DAY) == 0
    db.record_alert_attempt(alert_id, now=T0, ok=False, error="HTTP 404", next_attempt=None)
    (failed,) = db.alerts_since()
    assert (failed.status, failed.next_attempt) == (AlertStatus.FAILED, None)
    assert db.alerts_due(T0 + 365 * DAY) == []
    assert db.claim_alert(alert_id, now=T0 + DAY, owner=2, stale_after=DAY) is None
    assert db.alerts_sent() == {}


# --- search and reading ----------------------------------------------------------------


def marked(pieces: Sequence[tuple[str, bool]]) -> str:
    """A title or snippet as text, its hits in [brackets]."""
    return "".join(f"[{text}]" if hit else text for text, hit in pieces)


def test_search_finds_words_in_either_chinese_script_and_english(db: Storage) -> None:
    db.sync_feeds([FEED], T0)
    db.save_poll(
        FEED,
        [
            entry("tw", "人工智慧行動峰會在巴黎開幕", "法國總統馬克龍出席峰會。軟體與晶片"),
            entry("cn", "深度求索发布新模型", "这家中国公司的推理模型震惊了硅谷。"),
            entry("en", "Leaders meet in Paris", "The AI Action Summit opened on Monday."),
        ],
        now=T0,
        seconds=0,
    )
    found = db.search("人工智能")  # Simplified (and tw2sp's phrase: 人工智慧 -> 人工智能)
    assert (found.total, found.message) == (1, None)
    hit = found.hits[0]
    assert hit.entry.guid == "tw" and hit.story_id is None  # not placed: a result of its own
    assert marked(hit.title) == "[人工智慧]行動峰會在巴黎開幕"  # shown as written
    assert [h.entry.guid for h in db.search("峰会").hits] == ["tw"]  # two characters
    assert [h.entry.guid for h in db.search("模型").hits] == ["cn"]
    assert [h.entry.guid for h in db.search("模型 震驚").hits] == ["cn"]  # Traditional query
    assert [h.entry.guid for h in db.search("summit").hits] == ["en"]
    assert marked(db.search("SUMMIT").hits[0].snippet) == "The AI Action [Summit] opened on Monday."
    assert db.search("sum").total == 0  # whole words ...
    assert [h.entry.guid for h in db.search("sum*").hits] == ["en"]  # ... or prefixes asked for
    assert {h.entry.guid for h in db.search("峰会 OR summit").hits} == {"tw", "en"}
    assert db.search("峰会 summit").total == 0  # plain words: all of them
    assert db.search("nothing-like-this").hits == []


def test_search_ranks_by_story_with_bm25_and_pages(db: Storage) -> None:
    db.sync_feeds([FEED], T0)
    one, two, three, four = db.save_poll(
        FEED,
        [
            entry("1", "Chips and more chips", "chips chips chips"),
            entry("2", "Export rules", "New rules on chips."),
            entry("3", "Chips again", "A copy about chips."),
            entry("4", "Weather", "Sunny."),
        ],
        now=T0,
        seconds=0,
    ).new_ids
    outcome = Outcome(
        placements=[
            Placement(one, 1, 1, (1,), {"a": 1.0}),
            Placement(two, 2, 2, (2,), {"b": 1.0}),
            Placement(three, 3, 1, (3,), None),
        ],
        stories=[story(1, {"a": 1.0}, size=2), story(2, {"b": 1.0})],
        df_delta={},
        docs_delta=0,
        next_id=4,
        story_terms={1: ["a"], 2: ["b"]},
    )
    found = [features(one, "a"), features(two, "b"), features(three, "a")]
    assert db.save_outcome(found, outcome, expected_next_id=1) == 1
    results = db.search("chips")
    assert results.total == 2  # entries 1 and 3 are one story
    assert [(h.story_id, h.entry.id) for h in results.hits] == [(1, one), (2, two)]  # by bm25
    page_two = db.search("chips", page=2, per_page=1)
    assert (page_two.total, [h.story_id for h in page_two.hits]) == (2, [2])
    assert db.search("chips", page=3, per_page=1)[3:5] == (2, [])  # past the end: none, total
    assert [e.id for e in db.story_entries(1)] == [one, three]
    assert db.story_entries(99) == []


LAUNCH = [
    f"Titanfall launches on Xbox One as {who} queue outside the shops at midnight"
    for who in ("fans", "gamers", "players", "crowds", "buyers", "teens", "students", "parents")
]


def placed_stories(db: Storage, titles: dict[int, list[str]]) -> dict[int, list[int]]:
    """Store `titles` (each story id's entries' titles) in one poll and place each story's
    entries in it, one article each; each story's entry ids."""
    db.sync_feeds([FEED], T0)
    guids = [(story_id, n) for story_id, listed in titles.items() for n in range(len(listed))]
    ids = db.save_poll(
        FEED,
        [entry(f"{s}-{n}", titles[s][n], text="") for s, n in guids],
        now=T0,
        seconds=0,
    ).new_ids
    outcome = Outcome(
        placements=[Placement(i, i, s, (i,), None) for i, (s, _) in zip(ids, guids, strict=True)],
        stories=[story(s, {"a": 1.0}, size=len(t)) for s, t in titles.items()],
        df_delta={},
        docs_delta=0,
        next_id=max(ids) + 1,
        story_terms={s: ["a"] for s in titles},
    )
    found = [features(i, f"k{i}") for i in ids]
    assert db.save_outcome(found, outcome, expected_next_id=1) == 1
    return {s: [i for i, (g, _) in zip(ids, guids, strict=True) if g == s] for s in titles}


def test_a_story_many_entries_match_ranks_above_one_short_title(db: Storage) -> None:
    """The story most reports tell comes first: its entries each hold the word once in a
    long title, where a story of one holds it in a short one (which the best entry's
    score alone put first: bm25 favours short texts, and ts_rank ties them)."""
    ids = placed_stories(db, {1: ["Titanfall Review"], 2: LAUNCH})
    results = db.search("titanfall")
    assert results.total == 2
    assert [h.story_id for h in results.hits] == [2, 1]
    assert results.hits[0].entry.id in ids[2]  # a matching entry of the story shown
    assert [h.story_id for h in db.search("titanfall", page=2, per_page=1).hits] == [1]


def test_a_story_holding_every_word_ranks_above_one_holding_some(db: Storage) -> None:
    """A precise query puts the story matching all its words first: only the entries
    holding every word count, however many hold one."""
    launch = [*LAUNCH, "Titanfall launch review: Xbox One's shooter is worth the midnight queue"]
    ids = placed_stories(db, {1: ["Titanfall Review"], 2: launch})
    assert [h.story_id for h in db.search("titanfall review").hits] == [1, 2]
    assert [h.entry.id for h in db.search("review").hits] == [ids[1][0], ids[2][-1]]
    assert [h.story_id for h in db.search("titanfall").hits] == [2, 1]


def test_a_guid_reused_for_another_item_keeps_both(db: Storage) -> None:
    """A feed that numbers its items by position gives a stored item's guid to a new one:
    another link, another date and a title sharing little with the stored one's make it a
    new entry (under its link), not an edit that would lose the first; polled again, it
    is the same entry. An edit keeps its id, its link and headline rewritten included, as
    long as its date stays."""
    from dataclasses import replace

    db.sync_feeds([FEED], T0)
    ferry = replace(entry("1", "Ferry sinks off Naxos, all rescued"), link="https://x.org/ferry")
    first = db.save_poll(FEED, [ferry], now=T0, seconds=0)
    kenya = replace(
        entry("1", "Kenya parliament approves tax law", published=T0 + timedelta(hours=1)),
        link="https://x.org/kenya",
    )
    later = db.save_poll(FEED, [kenya], now=T0 + timedelta(hours=1), seconds=0)
    assert (later.new, later.updated) == (1, 0)
    again = db.save_poll(FEED, [kenya], now=T0 + timedelta(hours=2), seconds=0)
    assert (again.new, again.updated) == (0, 0)
    rewritten = replace(ferry, link="https://x.org/ferry-naxos", title="200 saved as ship sinks")
    kept = db.save_poll(FEED, [rewritten, kenya], now=T0 + timedelta(hours=3), seconds=0)
    assert (kept.new, kept.updated) == (0, 1)  # the stored ferry's guid and date: an edit
    rows = db.entries_between(T0 - timedelta(days=1), T0 + timedelta(days=1))
    assert sorted((r.guid, r.title) for r in rows) == [
        ("1", "200 saved as ship sinks"),
        ("https://x.org/kenya", "Kenya parliament approves tax law"),
    ]
    assert first.new_ids == [r.id for r in rows if r.guid == "1"]


def test_items_numbered_by_position_or_given_new_guids_are_stored_once(db: Storage) -> None:
    """A feed numbering its items by position shifts them as a new one comes first, and
    another gives an item a new guid on every request: each item is one entry, found by
    its link and title when its guid is new or another item's."""
    from dataclasses import replace

    titles = {
        "ferry": "Ferry sinks off Naxos",
        "kenya": "Kenya parliament approves tax law",
        "storm": "Storm floods Valencia streets",
    }

    def item(guid: str, name: str, hour: int) -> EntryData:
        made = entry(guid, titles[name], published=T0 + timedelta(hours=hour))
        return replace(made, link=f"https://x.org/{name}")

    db.sync_feeds([FEED], T0)
    first = db.save_poll(FEED, [item("1", "ferry", 1), item("2", "kenya", 0)], now=T0, seconds=0)
    assert (first.new, first.updated) == (2, 0)
    shifted = [item("1", "storm", 2), item("2", "ferry", 1), item("3", "kenya", 0)]
    second = db.save_poll(FEED, shifted, now=T0 + timedelta(hours=2), seconds=0)
    assert (second.new, second.updated) == (1, 0)
    for n in range(3):  # the same three items under new guids each time
        renamed = [replace(e, guid=f"{e.guid}-{n}") for e in shifted]
        again = db.save_poll(FEED, renamed, now=T0 + timedelta(hours=3 + n), seconds=0)
        assert (again.new, again.updated) == (0, 0)
    rows = db.entries_between(T0 - timedelta(days=1), T0 + timedelta(days=1))
    assert sorted(r.title for r in rows) == sorted(titles.values())


def test_a_notice_without_link_or_date_repeated_under_a_new_guid_is_a_new_entry(
    db: Storage,
) -> None:
    """A status feed gives each incident its guid, no link and no date; next week's notice
    says what last week's said. It is news of its own: stored, not taken for the old one
    (a rule matching link-less items by content once lost it: nothing stored, no digest)."""
    from dataclasses import replace

    def notice(guid: str) -> EntryData:
        made = entry(guid, "Scheduled maintenance tonight", "From 22:00 to 23:00 UTC.", None)
        return replace(made, link=None)

    db.sync_feeds([FEED], T0)
    first = db.save_poll(FEED, [notice("incident-1")], now=T0, seconds=0)
    assert (first.new, first.updated) == (1, 0)
    later = db.save_poll(FEED, [notice("incident-2")], now=T0 + timedelta(days=7), seconds=0)
    assert (later.new, later.updated) == (1, 0)
    assert db.feed_state(FEED.url).entry_count == 2  # type: ignore[union-attr]


def test_a_live_blogs_updates_under_one_link_and_title_stay_apart(db: Storage) -> None:
    """A live blog lists each update under its own guid with the page's link and title:
    updates of other texts are entries of their own, poll after poll (only the very same
    item under another guid is the stored one)."""
    from dataclasses import replace

    def update(n: int) -> EntryData:
        made = entry(f"u{n}", "Election night live", text=f"Update {n}: results from state {n}")
        return replace(made, link="https://x.org/live")

    db.sync_feeds([FEED], T0)
    first = db.save_poll(FEED, [update(1), update(2)], now=T0, seconds=0)
    later = db.save_poll(FEED, [update(3), update(1), update(2)], now=T0 + DAY, seconds=0)
    assert (first.new, later.new, later.updated) == (2, 1, 0)
    rows = db.entries_between(T0 - DAY, T0 + DAY)
    assert sorted(r.text for r in rows) == [
        f"Update {n}: results from state {n}" for n in (1, 2, 3)
    ]


def test_an_edited_entry_is_found_by_its_new_words_only(db: Storage) -> None:
    db.sync_feeds([FEED], T0)
    db.save_poll(FEED, [entry("1", "Old headline", "before")], now=T0, seconds=0)
    db.save_poll(FEED, [entry("1", "New headline", "after")], now=T0 + DAY, seconds=0)
    assert db.search("old").total == 0 and db.search("before").total == 0
    assert [h.entry.title for h in db.search("after").hits] == ["New headline"]


@pytest.mark.parametrize(
    ("query", "found"),
    [
        ('"export rules"', {"1"}),  # a phrase
        ('"rules export"', set()),  # ... not across the title and the body
        ("rules + for + chips", {"1"}),  # a phrase too
        ("chips + rules", set()),
        ("chi*", {"1"}),
        ("峰会*", {"3"}),
        ("人工智能 OR export", {"1", "3"}),
        ("chips NOT rules", set()),
        ("峰会 NOT 巴黎", set()),
        ("export NOT 巴黎 OR 巴黎", {"1", "3"}),  # NOT binds tighter than OR
        ("(巴黎 OR export) AND chips", {"1"}),
        ("title:chips", {"1"}),
        ("title:export", set()),
        ("body:export", {"1"}),
        ("title:(chips OR 巴黎)", {"1"}),
        ("title:峰会", {"3"}),  # a Chinese word after a column filter, in either script
        ("title:峰會", {"3"}),
        ("title:巴黎", set()),
        ("body:巴黎", {"3"}),
        ("body:峰會 OR title:chips", {"1"}),
        ("cafe", {"1"}),  # Latin diacritics removed, as unicode61 removes them
        ("café", {"1"}),
        ("mail", {"1"}),  # e-mail, example.com: words of letters and digits
        ("example", {"1"}),
        ('"" chips', {"1"}),  # an empty phrase is ignored ...
        ("'; --", set()),  # ... and a query of none finds nothing
        ("chips\x00", {"1"}),  # a control character is a space (SQLite's query ended at NUL)
        ('"export rules\x00" OR 巴黎', {"1", "3"}),
        ("chi\x00ps", set()),
    ],
)
def test_search_reads_fts5s_syntax(db: Storage, query: str, found: set[str]) -> None:
    db.sync_feeds([FEED], T0)
    texts = [
        ("Chips and rules", "Export rules for chips: café, e-mail, example.com"),
        ("AND OR NOT", "x" * 100),
        ("人工智慧行動峰會", "在巴黎開幕"),
    ]
    db.save_poll(FEED, [entry(str(n), *t) for n, t in enumerate(texts, 1)], now=T0, seconds=0)
    results = db.search(query)
    assert ({h.entry.guid for h in results.hits}, results.total, results.message) == (
        found,
        len(found),
        None,
    )


def test_a_column_filter_marks_the_word_not_the_column(db: Storage) -> None:
    db.sync_feeds([FEED], T0)
    db.save_poll(FEED, [entry("1", "人工智慧行動峰會 title", "峰會在巴黎開幕")], now=T0, seconds=0)
    (hit,) = db.search("title:峰会").hits
    assert marked(hit.title) == "人工智慧行動[峰會] title"
    assert marked(hit.snippet) == "[峰會]在巴黎開幕"


def test_a_query_matching_too_many_entries_lists_stories_newest_first(
    db: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Over RANKED_MATCHES matching entries: newest first (by their newest matching entry),
    not ranked; over COUNT_CAP stories: that many counted, and said to be more."""
    monkeypatch.setattr(fulltext, "RANKED_MATCHES", 4)
    monkeypatch.setattr(fulltext, "COUNT_CAP", 3)
    db.sync_feeds([FEED], T0)
    texts = [f"common word {'rare ' * n}" for n in range(1, 7)] + ["nothing here"]
    ids = db.save_poll(
        FEED, [entry(str(n), f"Title {n}", t) for n, t in enumerate(texts)], now=T0, seconds=0
    ).new_ids
    ranked = db.search("rare")  # 6 matches: newest first
    assert (ranked.total, ranked.exact, ranked.newest) == (3, False, True)
    assert [h.entry.id for h in ranked.hits] == ids[5::-1]
    page = db.search("rare", page=2, per_page=4)
    assert [h.entry.id for h in page.hits] == ids[1::-1]
    assert db.search("rare", page=3, per_page=4).hits == []
    few = db.search("rare NOT common")  # none
    assert (few.total, few.exact, few.newest, few.hits) == (0, True, False, [])
    some = db.search('"rare rare rare rare"')  # 3 matches: ranked, counted exactly
    assert (some.total, some.exact, some.newest) == (3, True, False)
    assert {h.entry.id for h in some.hits} == set(ids[3:6])


@pytest.mark.parametrize(
    "query",
    ['"', "AND OR (", "NOT", "a:b", "(((", "*", "NEAR(", "x" * 10_000, "  ", "\x00", "'; --"],
)
def test_any_query_is_safe_and_a_malformed_one_says_why(db: Storage, query: str) -> None:
    db.sync_feeds([FEED], T0)
    db.save_poll(FEED, [entry("1", "AND OR NOT", "x" * 100)], now=T0, seconds=0)
    results = db.search(query)
    assert results.hits == [] or all(h.entry.guid == "1" for h in results.hits)
    if query in ('"', "AND OR (", "NOT", "a:b", "(((", "NEAR(", "x" * 10_000, "  "):
        assert (results.total, results.hits) == (0, []) and results.message


def test_tallies_count_what_the_store_holds(db: Storage) -> None:
    db.sync_feeds([FEED, OTHER], T0)
    assert db.tallies() == (0, 0, 0, {}, {}, {}, None, (0,) * 9, 0.0)
    db.save_poll(FEED, [entry("1"), entry("2")], now=T0, seconds=0.5)
    db.record_failure(FEED, "boom", now=T0 + DAY, seconds=1.0)
    db.record_not_modified(OTHER, now=T0, seconds=0.1, update=FeedUpdate(http_status=304))
    db.record_digest(date(2025, 2, 10), now=T0 + DAY)
    tallies = db.tallies()
    assert tallies[:3] == (2, 0, 0)  # not placed yet
    assert tallies.polls == {"ok": 1, "error": 1, "not_modified": 1}
    assert tallies.last_polls == {"error": 1, "not_modified": 1}
    assert tallies.last_digest == T0 + DAY
    assert tallies.poll_seconds == (1, 1, 2, 3, 3, 3, 3, 3, 3)  # at most 0.1 s, 0.25 s ...
    assert tallies.poll_seconds_sum == 1.6


#: Durations of the polls below: on a bucket's bound, just past it, past the last one.
SECONDS = (0.0, 0.1, 0.1000001, 0.25, 0.3, 1.0, 2.5, 7.0, 30.0, 60.0, 60.5, 3600.0)


def record_polls(db: Storage, count: int, start: datetime = T0) -> list[tuple[str, float]]:
    """`count` polls of FEED and OTHER, one a minute from `start`, of every status and of
    durations on and past the histogram's bounds; their (status, seconds)."""
    recorded = []
    for n in range(count):
        feed, seconds, now = (FEED, OTHER)[n % 2], SECONDS[n % len(SECONDS)], start + n * MINUTE
        kind = n // 2 % 4
        if kind == 0:
            db.save_poll(feed, [entry(f"{n}")], now=now, seconds=seconds)
        elif kind == 1:
            db.record_not_modified(feed, now=now, seconds=seconds, update=FeedUpdate(304))
        elif kind == 2:
            db.record_failure(feed, f"HTTP 500 ({n})", now=now, seconds=seconds)
        else:  # a feed gone is enabled again by hand before its next poll
            gone = FeedUpdate(410, disabled_reason="gone (HTTP 410)")
            db.record_failure(feed, "HTTP 410", now=now, seconds=seconds, update=gone)
            db.enable_feed(feed.url)
        recorded.append((("ok", "not_modified", "error", "gone")[kind], seconds))
    return recorded


def counted(recorded: Sequence[tuple[str, float]]) -> tuple[dict[str, int], tuple[int, ...]]:
    """What a count of every poll finds: polls by status, and within each bucket's bound."""
    by_status: dict[str, int] = {}
    for status, _ in recorded:
        by_status[status] = by_status.get(status, 0) + 1
    within = tuple(sum(1 for _, s in recorded if s <= b) for b in POLL_SECONDS_BUCKETS)
    return by_status, within


def poll_rows(count: int) -> list[tuple[str, datetime, float, str, str | None]]:
    """Polls (feed, started, seconds, status, error) as a database's polls table holds them
    (a database from before the running totals: tests/test_storage*.py)."""
    rows = []
    for n in range(count):
        status = ("ok", "not_modified", "error", "gone")[n // 2 % 4]
        error = "HTTP 500" if status == "error" else "HTTP 410" if status == "gone" else None
        rows.append(((FEED, OTHER)[n % 2].url, T0 + n * MINUTE, SECONDS[n % 12], status, error))
    return rows


def assert_counted_on(db: Storage, rows: Sequence[tuple[str, datetime, float, str, Any]]) -> None:
    """`db`'s poll counts, once migrated holding these `poll_rows` from before the running
    totals: what counting them finds (what /metrics showed before), and on from there."""
    recorded = [(status, seconds) for _, _, seconds, status, _ in rows]
    tallies = db.tallies()
    assert (tallies.polls, tallies.poll_seconds) == counted(recorded)
    assert tallies.poll_seconds_sum == pytest.approx(sum(s for _, s in recorded))
    db.record_failure(FEED, "HTTP 500", now=T0 + DAY, seconds=75.0)
    recorded.append(("error", 75.0))
    assert (db.tallies().polls, db.tallies().poll_seconds) == counted(recorded)


def test_the_poll_counts_are_every_poll_recorded(db: Storage) -> None:
    """/metrics' poll counters and duration histogram, kept as each poll is recorded: the
    same as counting every poll, whatever it ended with and however long it took."""
    db.sync_feeds([FEED, OTHER], T0)
    recorded = record_polls(db, 96)
    tallies = db.tallies()
    assert (tallies.polls, tallies.poll_seconds) == counted(recorded)
    assert tallies.poll_seconds_sum == pytest.approx(sum(s for _, s in recorded))
    assert tallies.last_polls == {"gone": 2}  # each feed's last: "gone" (then enabled)


def polls_kept(db: Storage) -> int:
    """The poll records a store holds (both backends count their tables for `storage
    migrate`; no method of the protocol reads the history whole)."""
    counts: dict[str, int] = db.table_counts()  # type: ignore[attr-defined]
    return counts["polls"]


def test_a_feeds_polls_prune_its_history_but_what_is_read_of_it(db: Storage) -> None:
    """Past a feed's newest KEEP_POLLS polls, its records are deleted as it is polled, but
    its newest RECENT_ERRORS failed ones, however old: the counters, each feed's last poll,
    its recent errors and its health (its row) read as before, from a bounded history."""
    db.sync_feeds([FEED, OTHER], T0)
    recorded = []
    for n in range(3):  # OTHER fails, then is not polled again: left alone
        db.record_failure(OTHER, f"timeout {n}", now=T0 + n * MINUTE, seconds=30.0)
        recorded.append(("error", 30.0))
    for n in range(RECENT_ERRORS + 2):  # FEED fails long ago ...
        db.record_failure(FEED, f"HTTP 500 ({n})", now=T0 + n * MINUTE, seconds=1.5)
        recorded.append(("error", 1.5))
    errors = db.recent_errors()
    assert [e for _, e in errors[FEED.url]] == [f"HTTP 500 ({n})" for n in range(6, 1, -1)]
    later = T0 + DAY
    for n in range(KEEP_POLLS + 150):  # ... then answers for long
        update = FeedUpdate(304, next_poll=later + (n + 1) * MINUTE)
        db.record_not_modified(FEED, now=later + n * MINUTE, seconds=0.2, update=update)
        recorded.append(("not_modified", 0.2))
    assert polls_kept(db) == 3 + KEEP_POLLS + RECENT_ERRORS
    assert db.recent_errors() == errors
    tallies = db.tallies()
    assert (tallies.polls, tallies.poll_seconds) == counted(recorded)
    assert tallies.poll_seconds_sum == pytest.approx(sum(s for _, s in recorded))
    assert tallies.last_polls == {"error": 1, "not_modified": 1}
    feed, other = db.feed_state(FEED.url), db.feed_state(OTHER.url)
    assert feed is not None and other is not None
    assert (feed.consecutive_failures, feed.last_error, feed.last_attempt) == (
        0,
        None,
        later + 249 * MINUTE,
    )
    assert feed.next_poll == later + 250 * MINUTE
    assert (other.consecutive_failures, other.last_error) == (3, "timeout 2")


def assert_pruned_in_batches(
    db: Storage, rows: Sequence[tuple[str, datetime, float, str, Any]]
) -> None:
    """`db`, migrated holding these 1,000 `poll_rows` of FEED and OTHER (500 each) from
    before pruning: each poll of FEED deletes at most PRUNE_BATCH of its older records,
    until it keeps its newest KEEP_POLLS; the counters count every poll all along."""
    assert len(rows) == 1000 and polls_kept(db) == 1000
    polls = db.tallies().polls
    for n, kept in enumerate([801, 602, KEEP_POLLS + 500, KEEP_POLLS + 500]):
        now = T0 + DAY + n * MINUTE
        db.record_not_modified(FEED, now=now, seconds=0.2, update=FeedUpdate(304))
        assert polls_kept(db) == kept
        polls["not_modified"] += 1
        assert db.tallies().polls == polls


def test_pollers_recording_at_once_lose_no_poll_from_the_counts(open_store: Opener) -> None:
    """Several pollers (handles, as processes would be) recording polls at the same moment,
    of the same status and duration (one counter row): every one is counted."""
    handles = [open_store() for _ in range(4)]
    handles[0].sync_feeds([FEED, OTHER], T0)
    start = threading.Barrier(len(handles))
    errors: list[BaseException] = []

    def poll(handle: Storage, k: int) -> None:
        try:
            start.wait(timeout=30)
            for n in range(25):
                feed, now = (FEED, OTHER)[n % 2], T0 + n * MINUTE + k * SECOND
                handle.record_not_modified(feed, now=now, seconds=0.2, update=FeedUpdate(304))
                handle.record_failure(feed, "HTTP 500", now=now, seconds=0.2)
        except BaseException as e:  # reported by the test thread
            errors.append(e)

    threads = [threading.Thread(target=poll, args=(h, k)) for k, h in enumerate(handles)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    tallies = handles[0].tallies()
    assert tallies.polls == {"not_modified": 100, "error": 100}
    assert tallies.poll_seconds == (0, 200, *[200] * 7)
    assert tallies.poll_seconds_sum == pytest.approx(200 * 0.2)


def test_the_change_stamp_moves_with_every_write_from_any_handle(open_store: Opener) -> None:
    a, b = open_store(), open_store()
    a.sync_feeds([FEED], T0)
    stamp = a.change_stamp()
    assert a.change_stamp() == stamp and a.search("x").total == 0  # reads change nothing
    assert a.change_stamp() == stamp
    a.save_poll(FEED, [entry("1")], now=T0, seconds=0)
    assert a.change_stamp() != stamp
    stamp = a.change_stamp()
    b.save_poll(FEED, [entry("1", "Edited")], now=T0 + DAY, seconds=0)  # another handle
    assert a.change_stamp() != stamp
    stamp = a.change_stamp()
    place(b, 1, "edited", 1)
    assert a.change_stamp() != stamp


def test_a_word_deep_in_a_long_text_is_found(db: Storage) -> None:
    db.sync_feeds([FEED], T0)
    long = "filler words here. " * 20_000 + "needle at the end"
    db.save_poll(FEED, [entry("1", "Long", long)], now=T0, seconds=0)
    found = db.search("needle")
    assert found.total == 1
    snippet = "".join(text for text, _ in found.hits[0].snippet)
    assert snippet.startswith("filler words") and len(snippet) < 300


def test_recent_errors_are_each_feeds_last_failures_newest_first(db: Storage) -> None:
    db.sync_feeds([FEED, OTHER], T0)
    assert db.recent_errors() == {}
    for n in range(4):
        db.record_failure(FEED, f"boom {n}", now=T0 + n * DAY, seconds=1.0)
    db.save_poll(FEED, [entry("1")], now=T0 + 5 * DAY, seconds=0)  # a success: not listed
    db.record_failure(OTHER, "gone away", now=T0, seconds=1.0)
    errors = db.recent_errors(per_feed=3)
    assert errors == {
        FEED.url: [(T0 + n * DAY, f"boom {n}") for n in (3, 2, 1)],
        OTHER.url: [(T0, "gone away")],
    }
