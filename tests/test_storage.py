"""SQLite storage: idempotent re-poll, edit in place, transactions, schema versions, the
reads deduplication repeats."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from aggregator.exceptions import SchemaVersionError, StorageError
from aggregator.storage import SqliteStorage, open_storage, schema
from aggregator.storage.schema import SCHEMA_VERSION
from aggregator.storage.sqlite import content_hash
from aggregator.types import EntryData, Features, Feed, Outcome, Placement

FEED = Feed(url="https://example.org/feed.xml", name="Example")
T0 = datetime(2025, 2, 10, 12, 0, tzinfo=UTC)


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


def test_repoll_adds_nothing_and_edit_updates_in_place(tmp_path: Path) -> None:
    with open_storage(tmp_path / "a.db") as db:
        db.sync_feeds([FEED], T0)
        first = db.save_poll(FEED, [entry("1"), entry("2")], now=T0, seconds=0.1)
        assert (first.new, first.updated) == (2, 0)
        again = db.save_poll(
            FEED, [entry("1"), entry("2")], now=T0 + timedelta(hours=1), seconds=0.1
        )
        assert (again.new, again.updated) == (0, 0)
        edited = db.save_poll(
            FEED,
            [entry("1", title="Title, corrected"), entry("2")],
            now=T0 + timedelta(hours=2),
            seconds=0.1,
        )
        assert (edited.new, edited.updated) == (0, 1)
        rows = db.entries_between(T0 - timedelta(days=1), T0 + timedelta(days=1))
        assert [(r.guid, r.title) for r in rows] == [("1", "Title, corrected"), ("2", "Title")]
        assert rows[0].id == first.new_ids[0]
        assert rows[0].first_seen == T0  # an edit keeps the first-seen time
        assert rows[0].updated_at == T0 + timedelta(hours=2)
        assert db.feed_state(FEED.url).entry_count == 2  # type: ignore[union-attr]


def test_undated_entry_takes_first_seen_time_and_keeps_it(tmp_path: Path) -> None:
    with open_storage(tmp_path / "a.db") as db:
        db.sync_feeds([FEED], T0)
        db.save_poll(FEED, [entry("u", published=None)], now=T0, seconds=0)
        db.save_poll(
            FEED, [entry("u", published=None, text="edited")], now=T0 + timedelta(days=2), seconds=0
        )
        (row,) = db.entries_between(T0 - timedelta(days=9), T0 + timedelta(days=9))
        assert row.published == T0 and not row.dated and row.text == "edited"


def test_failed_write_leaves_nothing_half_done(tmp_path: Path) -> None:
    with open_storage(tmp_path / "a.db") as db:
        db.sync_feeds([FEED], T0)
        db.save_poll(FEED, [entry("1")], now=T0, seconds=0)
        bad = EntryData(
            guid="2", title="x", link=None, published=datetime(2025, 1, 1)
        )  # naive: refused
        with pytest.raises(ValueError):
            db.save_poll(FEED, [entry("3"), bad], now=T0, seconds=0)
        rows = db.entries_between(T0 - timedelta(days=400), T0 + timedelta(days=1))
        assert [r.guid for r in rows] == ["1"]
    # and the committed entry survives a reopen
    with open_storage(tmp_path / "a.db") as db:
        assert db.entry_count() == 1


def test_failures_are_recorded_and_reset_on_success(tmp_path: Path) -> None:
    with open_storage(tmp_path / "a.db") as db:
        db.sync_feeds([FEED], T0)
        db.record_failure(FEED, "HTTP 500", now=T0, seconds=0.2)
        db.record_failure(FEED, "HTTP 502", now=T0, seconds=0.2)
        state = db.feed_state(FEED.url)
        assert (
            state is not None and state.consecutive_failures == 2 and state.last_error == "HTTP 502"
        )
        assert state.last_success is None
        db.save_poll(FEED, [entry("1")], now=T0 + timedelta(minutes=5), seconds=0.1)
        state = db.feed_state(FEED.url)
        assert state is not None and state.consecutive_failures == 0 and state.last_error is None
        assert state.last_success == T0 + timedelta(minutes=5)


def test_schema_version_recorded_and_newer_refused(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    open_storage(path).close()
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        raw.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(SchemaVersionError, match="newer"):
        open_storage(path)


def test_story_terms_migrate_into_story_rows(tmp_path: Path) -> None:
    """The migration that moves stories' index words into their rows keeps every word, and
    `stories_near` finds stories through them as before (the window, then `ids`)."""
    path = tmp_path / "a.db"
    with sqlite3.connect(path, isolation_level=None) as raw:
        before = schema.MIGRATIONS.index(schema._STORY_TERMS_IN_STORIES)
        for number, script in enumerate(schema.MIGRATIONS[:before]):
            raw.executescript(f"BEGIN;\n{script};\nPRAGMA user_version = {number + 1};\nCOMMIT;")
        days = {i: "2025-02-10T00:00:00.000000+00:00" for i in (1, 2, 3, 4)}
        days[5] = "2025-01-01T00:00:00.000000+00:00"
        raw.executemany(
            "INSERT INTO stories VALUES (?, ?, ?, 1, ?)",
            [(i, day, day, "{}") for i, day in days.items()],
        )
        rows = [("chips", 1), ("nvidia", 1), ("nvidia", 2), ("流感", 3), ("chips", 3)]
        rows.append(("nvidia", 5))  # story 5 is out of the window; story 4 has no words
        raw.executemany("INSERT INTO story_terms (term, story_id) VALUES (?, ?)", rows)
    storage = open_storage(path)
    window = (T0 - timedelta(days=1), T0 + timedelta(days=1))
    assert [s.id for s in storage.stories_near(["nvidia"], *window)] == [1, 2]
    assert [s.id for s in storage.stories_near(["流感", "x"], *window, ids=[5, 4])] == [3, 4, 5]
    assert storage.stories_near(["x"], *window) == []
    storage.close()
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        stored = raw.execute("SELECT id, terms FROM stories ORDER BY id").fetchall()
        assert stored == [
            (1, "chips\x1fnvidia"),
            (2, "nvidia"),
            (3, "chips\x1f流感"),
            (4, None),
            (5, "nvidia"),
        ]
        tables = {r[0] for r in raw.execute("SELECT name FROM sqlite_master")}
        assert "story_terms" not in tables and "story_terms_by_story" not in tables


def test_unopenable_database_is_a_storage_error(tmp_path: Path) -> None:
    path = tmp_path / "not-a-db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StorageError):
        open_storage(path)


def _steps_to_read_new_features(path: Path, placed: int) -> int:
    """SQLite VM steps (in thousands) `dedup_features` takes to find one new row among
    `placed` rows recorded earlier."""
    storage = open_storage(path)
    feed = Feed(url="https://a.example/rss", name="a")
    storage.sync_feeds([feed], T0)
    entries = [
        EntryData(guid=f"g{i}", title=f"t{i}", link=None, published=T0) for i in range(placed + 1)
    ]
    storage.save_poll(feed, entries, now=T0, seconds=0)
    db = sqlite3.connect(path)
    with db:
        db.executemany(
            "INSERT INTO dedup_entries (entry_id, feed_url, published, guid, size, signature, "
            "lead_size, seq) VALUES (?, 'a', ?, ?, 100, zeroblob(512), 40, ?)",
            [(i + 1, T0.isoformat(), f"g{i}", 1 if i < placed else 2) for i in range(placed + 1)],
        )
    db.close()
    steps = 0

    def count() -> int:
        nonlocal steps
        steps += 1
        return 0

    storage._db.set_progress_handler(count, 1000)
    found, _ = storage.dedup_features(after=1)
    storage._db.set_progress_handler(None, 0)
    storage.close()
    assert [f.guid for f in found] == [f"g{placed}"]
    return steps


def test_reading_newly_recorded_features_costs_the_same_however_many_are_stored(
    tmp_path: Path,
) -> None:
    """Each batch asks for what other processes recorded since; that must not read the
    whole table (it did: ordering by the primary key made SQLite scan every row)."""
    small = _steps_to_read_new_features(tmp_path / "small.db", 100)
    large = _steps_to_read_new_features(tmp_path / "large.db", 20_000)
    assert large <= small + 2


def test_content_hash_matches_fingerprints_stored_by_earlier_versions() -> None:
    """A changed fingerprint would make the next poll update every stored entry."""
    full = EntryData(
        guid="g",
        title="Nvidia 出口",
        link="https://example.org/1",
        published=datetime(2025, 2, 10, 12, 0, tzinfo=timezone(timedelta(hours=8))),
        author="A. Writer",
        summary="Short",
        text="Body\nsecond paragraph",
        language="en",
    )
    bare = EntryData(guid="g", title="t", link=None, published=None)
    assert content_hash(full) == "3e98e30a07738ad2b74455e9c6154a7dbe21f884023bf03a9394df75527dfa58"
    assert content_hash(bare) == "6572f1f8fe149d2d3743a1b6b8e0085e5e04fae8beceadbcb14008ea7cf3cfec"


def _place(storage: SqliteStorage, entry_id: int, title_key: str, story: int) -> None:
    """Record one entry's features and placement, as `Aggregator.assign` would."""
    _, next_id = storage.vocabulary([])
    found = Features(
        entry_id=entry_id,
        feed_url=FEED.url,
        published=T0,
        url=None,
        guid=str(entry_id),
        title_key=title_key,
        size=10,
        signature=b"\x00" * 8,
        lead_size=5,
        lead=None,
    )
    placed = Placement(entry_id, story, story, (1, 2), {"chips": 1.0})
    outcome = Outcome([placed], [], {}, 0, max(next_id, story + 1))
    assert storage.save_outcome([found], outcome, expected_next_id=next_id) is not None


def test_known_copies_follow_entries_recorded_again_by_another_writer(tmp_path: Path) -> None:
    """`known_copies` keeps the features it read; an entry recorded again since (its row
    under a new batch number) is read afresh, and its placement always is."""
    a, b = open_storage(tmp_path / "k.db"), open_storage(tmp_path / "k.db")
    a.sync_feeds([FEED], T0)
    first = a.save_poll(FEED, [entry("1"), entry("2")], now=T0, seconds=0)
    one, two = first.new_ids
    _place(a, one, "nvidia chips", 1)
    _place(a, two, "export rules", 2)
    known = a.known_copies({one: [1], two: [2]})
    assert [(k.features.title_key, k.story_id, k.keys) for k in known] == [
        ("nvidia chips", 1, frozenset([1])),
        ("export rules", 2, frozenset([2])),
    ]
    _place(b, one, "nvidia chips, corrected", 3)
    again = a.known_copies({one: [1, 2], two: [2]})
    assert [(k.features.title_key, k.story_id, k.keys) for k in again] == [
        ("nvidia chips, corrected", 3, frozenset([1, 2])),
        ("export rules", 2, frozenset([2])),
    ]
    assert again[1].features is known[1].features  # unchanged: not made again
    assert a.known_copies({two: [2]}) == [again[1]]
    a.close()
    b.close()


def test_entries_come_oldest_first_with_their_feeds_names(tmp_path: Path) -> None:
    other = Feed(url="https://other.example/rss", name="Other")
    with open_storage(tmp_path / "e.db") as db:
        db.sync_feeds([FEED, other], T0)
        late = T0 + timedelta(hours=1)
        ids = db.save_poll(FEED, [entry("a", published=late), entry("b")], now=T0, seconds=0)
        more = db.save_poll(other, [entry("c"), entry("d", published=late)], now=T0, seconds=0)
        a, b = ids.new_ids
        c, d = more.new_ids
        expected = [(b, "Example"), (c, "Other"), (a, "Example"), (d, "Other")]
        assert [(e.id, e.feed_name) for e in db.entries_by_ids([d, c, b, a])] == expected
        window = db.entries_between(T0, late + timedelta(seconds=1))
        assert [(e.id, e.feed_name) for e in window] == expected
        assert [e.id for e in db.entries_by_ids([c, 999])] == [c]


def test_a_feeds_recent_entries_come_from_an_index(tmp_path: Path) -> None:
    """`recent_published` (read on every poll of a feed, a 304's too) reads the feed's
    newest entries from an index, not by sorting all its rows; a database made before the
    index gets it on open."""
    path = tmp_path / "a.db"
    storage = open_storage(path)
    feed = Feed(url="https://feed.example/rss", name="feed")
    storage.sync_feeds([feed], T0)
    entries = [
        EntryData(guid=f"g{n}", title=f"t{n}", link=None, published=T0 + timedelta(hours=n))
        for n in range(30)
    ]
    storage.save_poll(feed, entries, now=T0, seconds=0)
    assert storage.recent_published(feed.url, 3) == [T0 + timedelta(hours=h) for h in (29, 28, 27)]
    storage.close()
    query = "SELECT published FROM entries WHERE feed_url = ? ORDER BY published DESC LIMIT ?"
    with sqlite3.connect(path) as raw:
        plan = " ".join(str(row) for row in raw.execute(f"EXPLAIN QUERY PLAN {query}", ("x", 3)))
        assert "entries_by_feed_published" in plan and "TEMP B-TREE" not in plan
        raw.execute("DROP INDEX entries_by_feed_published")  # as before the migration
        raw.execute(f"PRAGMA user_version = {SCHEMA_VERSION - 1}")
    open_storage(path).close()
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        indexes = {row[1] for row in raw.execute("PRAGMA index_list(entries)")}
        assert "entries_by_feed_published" in indexes
