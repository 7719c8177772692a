"""SQLite storage beyond the protocol's contract (tests/test_storage_contract.py): schema
versions and migrations, indexes, SQLite's errors, fingerprints, its caches."""

from __future__ import annotations

import math
import re
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, TypeVar

import pytest

from aggregator.config import load_config
from aggregator.core import Aggregator, make_aggregator
from aggregator.exceptions import SchemaVersionError, StorageError
from aggregator.storage import (
    POLL_SECONDS_BUCKETS,
    EntryRange,
    FeedUpdate,
    PollerRecord,
    PollerState,
    open_storage,
    schema,
)
from aggregator.storage.schema import MIGRATIONS, SCHEMA_VERSION
from aggregator.storage.sqlite import SqliteStorage, _base, content_hash, to_db_time
from aggregator.storage.totals import poll_bucket
from aggregator.types import EntryData, Feed
from tests.conftest import ROOT, run_python, wait_until, write_config
from tests.test_storage_contract import (
    FEED,
    LAUNCH,
    OTHER,
    T0,
    assert_counted_on,
    assert_counts_kept,
    assert_pruned_in_batches,
    entry,
    place,
    placed_across_feeds,
    placed_stories,
    poll_rows,
)

_T = TypeVar("_T")


def test_schema_version_recorded_and_newer_refused(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    open_storage(path).close()
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        raw.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(SchemaVersionError, match="newer"):
        open_storage(path)


class _Late:
    """A connection whose first version read is answered, then `meanwhile` runs (another
    process, say) before this one goes on with what it read."""

    def __init__(self, path: Path, meanwhile: Callable[[], None]) -> None:
        self.db = sqlite3.connect(path, isolation_level=None)
        self.meanwhile: Callable[[], None] | None = meanwhile

    def execute(self, sql: str, *args: object) -> sqlite3.Cursor:
        cursor = self.db.execute(sql, *args)
        if sql == "PRAGMA user_version" and self.meanwhile is not None:
            meanwhile, self.meanwhile = self.meanwhile, None
            rows = cursor.fetchall()
            meanwhile()
            cursor = self.db.execute("SELECT ?", rows[0])  # what was read before
        return cursor

    def executescript(self, script: str) -> sqlite3.Cursor:
        return self.db.executescript(script)

    @property
    def in_transaction(self) -> bool:
        return self.db.in_transaction


def made_before(path: Path, migration: str) -> None:
    """A database as the migrations before `migration` made it."""
    with sqlite3.connect(path, isolation_level=None) as raw:
        for number, script in enumerate(MIGRATIONS[: MIGRATIONS.index(migration)]):
            raw.executescript(f"BEGIN;\n{script};\nPRAGMA user_version = {number + 1};\nCOMMIT;")
    raw.close()


def _one_step_old(path: Path) -> None:
    """A database one migration behind this version."""
    made_before(path, MIGRATIONS[-1])


def _names(db: sqlite3.Connection) -> list[str]:
    return [n for (n,) in db.execute("SELECT name FROM sqlite_master ORDER BY name")]


def test_two_processes_opening_an_old_database_at_once_migrate_it_once(tmp_path: Path) -> None:
    """A process that read the old version just before another migrated the database
    reads it again under the write lock and makes no step twice (before, the second
    failed opening: "index entries_placement already exists", when that was the last step)."""
    path = tmp_path / "a.db"
    _one_step_old(path)
    late = _Late(path, lambda: open_storage(path).close())  # the other, all the way
    schema.migrate(late, str(path))  # type: ignore[arg-type]
    assert late.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    open_storage(tmp_path / "new.db").close()
    with sqlite3.connect(tmp_path / "new.db") as new:
        assert _names(late.db) == _names(new)  # every table and index, once
    new.close()
    late.db.close()


def test_a_key_index_kept_before_it_was_kept_in_parts_reads_as_it_was(tmp_path: Path) -> None:
    """A copy kept in one row before the parts' migration (schema 18) is read back whole
    after it: its only part."""
    path = tmp_path / "a.db"
    made_before(path, schema._KEPT_INDEX_PARTS)
    with sqlite3.connect(path, isolation_level=None) as raw:
        raw.execute("INSERT INTO dedup_index VALUES (1, 7, 'keys 1', ?)", (b"kept" * 100,))
    raw.close()
    with open_storage(path) as storage:
        assert storage.kept_key_index("keys 1") == (7, b"kept" * 100)
        storage.save_key_index(8, "keys 1", b"new")
        assert storage.kept_key_index("keys 1") == (8, b"new")


def test_a_database_a_newer_aggregator_migrates_meanwhile_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    _one_step_old(path)

    def newer() -> None:
        with sqlite3.connect(path, isolation_level=None) as raw:
            raw.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
        raw.close()

    late = _Late(path, newer)
    with pytest.raises(SchemaVersionError, match="newer"):
        schema.migrate(late, str(path))  # type: ignore[arg-type]
    assert not late.db.in_transaction
    late.db.close()


def test_a_migration_is_cut_into_statements_where_sqlite_would() -> None:
    script = "CREATE TABLE t (x);  CREATE TABLE u (y);;\n-- a comment; not a cut\nSELECT 1"
    assert schema._statements(script) == [
        "CREATE TABLE t (x);",
        "CREATE TABLE u (y);",
        "-- a comment; not a cut\nSELECT 1",
    ]
    trigger = "CREATE TRIGGER d AFTER DELETE ON t BEGIN\n DELETE FROM u; DELETE FROM u;\nEND;"
    assert schema._statements(trigger + "\nSELECT ';';") == [trigger, "SELECT ';';"]


def test_two_processes_creating_one_database_at_once_both_open_it(tmp_path: Path) -> None:
    """SQLite does not wait for a busy lock when switching a new database to WAL: the
    second of two processes creating it at once was refused ("database is locked"; 89 of
    100 tries, measured by review). Ten tries, two processes each, started together."""
    code = (
        "import sys, time\n"
        "from aggregator.storage import open_storage\n"
        "while time.time() < float(sys.argv[2]): pass\n"
        "open_storage(sys.argv[1]).close()\n"
    )
    for n in range(10):
        path = tmp_path / f"new{n}.db"
        start = time.time() + 0.5
        processes = [
            subprocess.Popen(
                [sys.executable, "-c", code, str(path), str(start)], stderr=subprocess.PIPE
            )
            for _ in range(2)
        ]
        for process in processes:
            _, error = process.communicate(timeout=60)
            assert process.returncode == 0, error.decode()


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


def _batches(path: Path, placed: int) -> SqliteStorage:
    """A database of `placed` + 1 entries, each with recorded features and placed in a story
    of its own: the first `placed` in dedup batch 1, the last in batch 2."""
    storage = open_storage(path)
    assert isinstance(storage, SqliteStorage)
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
        db.execute("UPDATE entries SET article_id = id, story_id = id")
        db.execute("INSERT OR REPLACE INTO dedup_meta (key, value) VALUES ('seq', 2)")
    db.close()
    return storage


def _steps(storage: SqliteStorage, read: Callable[[], _T], every: int = 1000) -> tuple[int, _T]:
    """SQLite VM steps (in `every`s) `read` takes, and what it returned."""
    steps = 0

    def count() -> int:
        nonlocal steps
        steps += 1
        return 0

    storage._db.set_progress_handler(count, every)
    try:
        found = read()  # before `steps` is read
        return steps, found
    finally:
        storage._db.set_progress_handler(None, 0)


def _steps_to_read_new_features(path: Path, placed: int) -> int:
    """Steps `dedup_features` takes to find one new row among `placed` recorded earlier."""
    storage = _batches(path, placed)
    steps, (found, _) = _steps(storage, lambda: storage.dedup_features(after=1))
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


def test_every_rows_features_are_read_in_entry_order_numbered_or_not(tmp_path: Path) -> None:
    """An index's first load (`after` below every batch number) reads every row, those of
    a database migrated from before batches were numbered (seq 0) too, by entry id, as the
    later reads order theirs."""
    storage = _batches(tmp_path / "t.db", 6)
    db = sqlite3.connect(tmp_path / "t.db")
    with db:
        db.execute("UPDATE dedup_entries SET seq = 0 WHERE entry_id IN (2, 5)")
    db.close()
    found, seq = storage.dedup_features(after=-1)
    assert [f.entry_id for f in found] == list(range(1, 8)) and seq == 2
    later, _ = storage.dedup_features(after=0)
    assert [f.entry_id for f in later] == [1, 3, 4, 6, 7]
    storage.close()


def _steps_to_find_changed_stories(path: Path, placed: int) -> int:
    """Steps `stories_changed` takes to find the one story the last batch changed among
    `placed` entries placed in stories earlier."""
    storage = _batches(path, placed)
    steps, changed = _steps(storage, lambda: storage.stories_changed(after=1))
    storage.close()
    assert changed == ([placed + 1], 2)
    return steps


def test_finding_the_stories_a_batch_changed_costs_the_same_however_many_are_placed(
    tmp_path: Path,
) -> None:
    """Every poll pass asks which stories changed since the watches were evaluated; that
    must not read every placed entry (it did: SQLite, without statistics, walked the
    entries by story instead of the batches by number)."""
    small = _steps_to_find_changed_stories(tmp_path / "small.db", 100)
    large = _steps_to_find_changed_stories(tmp_path / "large.db", 20_000)
    assert large <= small + 2


def _steps_to_read_late_entries(path: Path, before: int) -> int:
    """Steps `entries_in` takes to find the one entry stored since a daily digest was
    made among `before` entries stored earlier, all published before the window."""
    storage = open_storage(path)
    assert isinstance(storage, SqliteStorage)
    feed = Feed(url="https://a.example/rss", name="a")
    storage.sync_feeds([feed], T0)
    old = [EntryData(guid=f"g{i}", title=f"t{i}", link=None, published=T0) for i in range(before)]
    storage.save_poll(feed, old, now=T0, seconds=0)
    made = T0 + timedelta(days=1)
    late = EntryData(guid="late", title="late", link=None, published=T0 + timedelta(hours=1))
    storage.save_poll(feed, [late], now=made + timedelta(hours=1), seconds=0)
    late = EntryRange(T0, made, seen_since=made)
    steps, found = _steps(storage, lambda: storage.entries_in([late]))
    storage.close()
    assert [e.guid for e in found] == ["late"]
    return steps


def test_the_late_arrivals_cost_the_same_however_many_entries_came_before(
    tmp_path: Path,
) -> None:
    """Each daily digest reads the entries stored since the previous one was made and
    published before its window: by first-seen time, not by walking every entry published
    before the window (the whole store, every day)."""
    small = _steps_to_read_late_entries(tmp_path / "small.db", 100)
    large = _steps_to_read_late_entries(tmp_path / "large.db", 20_000)
    assert large <= small + 2


def undo_first_seen_index(raw: sqlite3.Connection) -> None:
    """Make a database as it was before the index of entries by first-seen time."""
    raw.execute("DROP INDEX entries_by_first_seen")


def test_a_database_from_before_the_first_seen_index_has_it_once_opened(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    with open_storage(path) as storage:
        storage.sync_feeds([FEED], T0)
        stored = EntryData(guid="g", title="t", link=None, published=T0)
        storage.save_poll(FEED, [stored], now=T0 + timedelta(days=1), seconds=0)
    with sqlite3.connect(path) as raw:
        undo_first_seen_index(raw)
        raw.execute(f"PRAGMA user_version = {MIGRATIONS.index(schema._ENTRIES_BY_FIRST_SEEN)}")
    raw.close()
    with open_storage(path) as storage:
        since_made = EntryRange(T0, T0 + timedelta(hours=1), seen_since=T0 + timedelta(days=1))
        late = storage.entries_in([since_made])
        assert [e.guid for e in late] == ["g"]
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        indexes = {row[1] for row in raw.execute("PRAGMA index_list(entries)")}
        assert "entries_by_first_seen" in indexes
    raw.close()


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


def test_known_copies_hand_back_unchanged_features_as_they_were(tmp_path: Path) -> None:
    """SQLite's cache (docs/storage.md, Caches): an entry whose row keeps its batch number
    comes back as the same `Features`, not made again; one recorded again is read afresh
    (the contract: tests/test_storage_contract.py)."""
    a, b = open_storage(tmp_path / "k.db"), open_storage(tmp_path / "k.db")
    a.sync_feeds([FEED], T0)
    one, two = a.save_poll(FEED, [entry("1"), entry("2")], now=T0, seconds=0).new_ids
    place(a, one, "nvidia chips", 1)
    place(a, two, "export rules", 2)
    known = a.known_copies([one, two])
    place(b, one, "nvidia chips, corrected", 3)
    again = a.known_copies([one, two])
    assert again[0].features.title_key == "nvidia chips, corrected"
    assert again[1].features is known[1].features  # unchanged: not made again
    assert again[1] is known[1]  # nor its placement: the very same Known
    # Another writer's batch joins articles: it moves entries without recording their
    # features again (the same batch number), and the placement is read afresh.
    with sqlite3.connect(tmp_path / "k.db") as raw:
        raw.execute("UPDATE entries SET article_id = 7, story_id = 9 WHERE id = ?", (two,))
    moved = a.known_copies([two])
    assert (moved[0].article_id, moved[0].story_id) == (7, 9)
    assert moved[0].features is known[1].features
    a.close()
    b.close()


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
        undo_pollers(raw)  # and those after it
        undo_leases(raw)
        undo_alerts(raw)
        undo_search(raw)
        raw.execute(f"PRAGMA user_version = {MIGRATIONS.index(schema._ENTRIES_BY_FEED)}")
    open_storage(path).close()
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        indexes = {row[1] for row in raw.execute("PRAGMA index_list(entries)")}
        assert "entries_by_feed_published" in indexes


def undo_alerts(raw: sqlite3.Connection) -> None:
    """Make a database as it was before the alerts migration."""
    raw.execute("DROP TABLE alerts")
    raw.execute("DELETE FROM dedup_meta WHERE key = 'alert_seq'")


def undo_leases(raw: sqlite3.Connection) -> None:
    """Make a database as it was before the feed leases' migration."""
    raw.execute("DROP INDEX feeds_leased")
    for column in ("lease_owner", "lease_until", "lease_host"):
        raw.execute(f"ALTER TABLE feeds DROP COLUMN {column}")


def undo_pollers(raw: sqlite3.Connection) -> None:
    """Make a database as it was before the pollers' migration (and the indexes by story and
    article, of placements, the kept key index's tables, the poll totals, the index of
    failed polls and the kept counts, after it)."""
    undo_entry_counts(raw)
    raw.execute("DROP INDEX polls_failed")
    raw.execute("DROP TABLE poll_totals")
    raw.execute("CREATE INDEX entries_by_story ON entries (story_id)")
    raw.execute("DROP INDEX entries_by_story_article")
    raw.execute("DROP INDEX entries_placement")
    raw.execute("DROP TABLE dedup_index")
    raw.execute("DROP TABLE dedup_index_parts")
    raw.execute("DROP TABLE pollers")


def test_a_database_from_before_the_pollers_lists_them_once_opened(tmp_path: Path) -> None:
    """The pollers' migration adds their table to a database that has feeds and leases:
    a poller recorded then is listed with the feeds it holds."""
    path = tmp_path / "a.db"
    feed = Feed(url="https://feed.example/rss", name="feed")
    with open_storage(path) as storage:
        storage.sync_feeds([feed], T0)
        lease = storage.lease_feeds(
            {feed.url: "feed.example"}, owner="h:1:a", now=T0, until=T0 + timedelta(minutes=5)
        )
        assert lease.granted == [feed.url]
    with sqlite3.connect(path) as raw:
        undo_pollers(raw)
        raw.execute(f"PRAGMA user_version = {MIGRATIONS.index(schema._POLLERS)}")
    with open_storage(path) as reopened:
        assert reopened.pollers(T0) == []
        record = PollerRecord("h:1:a", "h", 1, T0, T0, None, timedelta(seconds=30))
        reopened.record_poller(record, forget_before=T0 - timedelta(days=7))
        assert reopened.pollers(T0) == [PollerState(record, 1)]
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def polls_before_their_totals(
    path: Path, rows: list[tuple[str, datetime, float, str, Any]]
) -> None:
    """A database from before the running poll totals, holding these `poll_rows`."""
    made_before(path, schema._POLL_TOTALS)
    with sqlite3.connect(path) as raw:
        raw.executemany(
            "INSERT INTO polls (feed_url, started_at, seconds, status, new, updated, error) "
            "VALUES (?, ?, ?, ?, 0, 0, ?)",
            [(url, to_db_time(when), *rest) for url, when, *rest in rows],
        )
    raw.close()


def test_a_database_from_before_the_poll_totals_counts_on_from_its_polls(tmp_path: Path) -> None:
    """The running poll totals start at what the polls table holds: /metrics shows the
    counters it showed before the migration (by counting every poll), and goes on."""
    path = tmp_path / "a.db"
    rows = poll_rows(300)
    polls_before_their_totals(path, rows)
    with open_storage(path) as storage:
        assert_counted_on(storage, rows)
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_a_database_from_before_pruning_sheds_its_history_a_batch_a_poll(
    tmp_path: Path,
) -> None:
    path = tmp_path / "a.db"
    rows = poll_rows(1000)
    polls_before_their_totals(path, rows)
    with open_storage(path) as storage:
        storage.sync_feeds([FEED], T0)
        assert_pruned_in_batches(storage, rows)


def test_a_database_from_before_the_kept_counts_counts_on_from_its_entries(
    tmp_path: Path,
) -> None:
    """Each feed's entries and the store's articles and stories, kept as they change, start
    at what the database holds: /metrics and status show what they counted before."""
    path = tmp_path / "a.db"
    with open_storage(path) as storage:
        ids = placed_across_feeds(storage)
    with sqlite3.connect(path) as raw:
        undo_entry_counts(raw)
        raw.execute(f"PRAGMA user_version = {MIGRATIONS.index(schema._ENTRY_COUNTS)}")
    raw.close()
    with open_storage(path) as storage:
        assert_counts_kept(storage, ids)


def undo_entry_counts(raw: sqlite3.Connection) -> None:
    """Make a database as it was before the kept counts of entries, articles and stories
    (and the index by first-seen time, after it)."""
    undo_first_seen_index(raw)
    raw.execute("ALTER TABLE feeds DROP COLUMN entry_count")
    raw.execute("DELETE FROM dedup_meta WHERE key IN ('articles', 'stories')")


def test_the_counts_metrics_reads_cost_the_same_however_much_is_stored(tmp_path: Path) -> None:
    """`tallies` (read at every /metrics scrape and /healthz) and `feed_states` (status, and
    /metrics too) read kept counts, not every entry and poll: the same SQLite steps for a
    few as for thousands."""

    def steps(read: Callable[[], object]) -> int:
        return _steps(storage, read, every=1)[0]

    with open_storage(tmp_path / "a.db") as storage:
        storage.sync_feeds([FEED, OTHER], T0)
        for feed in (FEED, OTHER):
            storage.save_poll(feed, [entry("0")], now=T0, seconds=0.3)
        few = steps(storage.tallies), steps(storage.feed_states)
        for n in range(1, 150):
            now = T0 + n * timedelta(minutes=1)
            for feed in (FEED, OTHER):
                batch = [entry(f"{n}.{k}") for k in range(20)]
                storage.save_poll(feed, batch, now=now, seconds=0.3)
        assert storage.tallies().entries == 2 * (1 + 149 * 20)
        assert (steps(storage.tallies), steps(storage.feed_states)) == few


def test_the_poll_buckets_migrated_are_those_counted() -> None:
    """The migration's buckets, written out in SQL, are base.POLL_SECONDS_BUCKETS."""
    bounds = [float(b) for b in re.findall(r"THEN ([0-9.]+)", schema.POLL_BUCKET)]
    assert tuple(bounds) == POLL_SECONDS_BUCKETS
    assert all(poll_bucket(b) == b for b in bounds) and poll_bucket(60.01) == math.inf


def undo_search(raw: sqlite3.Connection) -> None:
    """Make a database as it was before the full-text search migration."""
    raw.execute("DROP TABLE entries_fts")
    raw.execute("DROP TRIGGER entries_fts_delete")
    raw.execute("DROP TABLE fts_pending")


def test_a_database_from_before_alerts_raises_none_for_the_stories_it_holds(
    tmp_path: Path,
) -> None:
    """The alerts migration marks the dedup batches already recorded as evaluated: the
    history of an existing database raises no alert (docs/watches.md)."""
    path = tmp_path / "a.db"
    storage = open_storage(path)
    feed = Feed(url="https://feed.example/rss", name="feed")
    storage.sync_feeds([feed], T0)
    storage.save_poll(
        feed, [EntryData(guid="g", title="t", link=None, published=T0)], now=T0, seconds=0
    )
    storage.close()
    with sqlite3.connect(path) as raw:
        undo_pollers(raw)  # the migrations after it
        undo_leases(raw)
        undo_search(raw)
        undo_alerts(raw)
        raw.execute("UPDATE dedup_meta SET value = 7 WHERE key = 'seq'")
        raw.execute(f"PRAGMA user_version = {MIGRATIONS.index(schema._ALERTS)}")
    with open_storage(path) as reopened:
        assert reopened.stories_changed() == ([], 7)
        assert reopened.alerts_since() == []


def test_the_search_migration_indexes_the_entries_stored_before_it(tmp_path: Path) -> None:
    """A database from before full-text search finds its old entries once opened (the
    migration indexes them), in either Chinese script."""
    path = tmp_path / "a.db"
    with sqlite3.connect(path, isolation_level=None) as raw:
        before = schema.MIGRATIONS.index(schema._ENTRIES_FTS)
        for number, script in enumerate(schema.MIGRATIONS[:before]):
            raw.executescript(f"BEGIN;\n{script};\nPRAGMA user_version = {number + 1};\nCOMMIT;")
        stamp = "2025-02-10T00:00:00.000000+00:00"
        raw.execute("INSERT INTO feeds (url, name, added_at) VALUES ('f', 'F', ?)", (stamp,))
        raw.executemany(
            "INSERT INTO entries (feed_url, guid, title, published, dated, first_seen, "
            "updated_at, summary, text, content_hash) VALUES ('f', ?, ?, ?, 1, ?, ?, ?, ?, 'h')",
            [
                (guid, title, stamp, stamp, stamp, "", text)
                for guid, title, text in [
                    ("1", "人工智慧行動峰會", "在巴黎開幕"),
                    ("2", "Chips", "Export rules for chips"),
                ]
            ],
        )
    with open_storage(path) as storage:
        assert [h.entry.guid for h in storage.search("峰会 巴黎").hits] == ["1"]
        assert [h.entry.guid for h in storage.search("export").hits] == ["2"]
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_storing_queues_entries_for_the_index_and_search_catches_up(tmp_path: Path) -> None:
    """A poll only queues its entries for search (indexing costs ~1 ms an entry); the index
    catches up before a search, in batches, and an edit queues its entry again."""
    path = tmp_path / "a.db"

    def counts() -> tuple[int, int]:
        with sqlite3.connect(path) as raw:
            indexed = raw.execute("SELECT count(*) FROM entries_fts").fetchone()[0]
            pending = raw.execute("SELECT count(*) FROM fts_pending").fetchone()[0]
        return indexed, pending

    with open_storage(path) as storage:
        storage.sync_feeds([FEED], T0)
        words = ["summit", "chips", "energy", "峰會", "tariffs"]
        stored = [
            EntryData(guid=f"g{n}", title=f"news about {w}", link=None, published=T0, text=w)
            for n, w in enumerate(words)
        ]
        storage.save_poll(FEED, stored, now=T0, seconds=0)
        assert counts() == (0, 5)
        assert storage.index_pending(limit=2) == 2
        assert counts() == (2, 3)
        assert [h.entry.guid for h in storage.search("峰会").hits] == ["g3"]  # caught up
        assert counts() == (5, 0)
        assert storage.index_pending() == 0
        edited = replace(stored[1], title="news about wafers", text="wafers")
        storage.save_poll(FEED, [edited], now=T0 + timedelta(hours=1), seconds=0)
        assert counts() == (5, 1)
        assert [h.entry.guid for h in storage.search("wafers").hits] == ["g1"]
        assert storage.search("chips").hits == []
        assert counts() == (5, 0)


def test_search_ranks_stories_where_sqlite_has_no_math_functions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A SQLite built without its math functions (before 3.35, or without
    SQLITE_ENABLE_MATH_FUNCTIONS) has no ln(), which ranking stories needs: the handle
    gives its connection one, and the stories are ranked as with SQLite's."""
    registered: list[str] = []

    class WithoutMath(sqlite3.Connection):
        def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
            if sql == "SELECT ln(2)" and not registered:
                raise sqlite3.OperationalError("no such function: ln")
            return super().execute(sql, *args)

        def create_function(self, name: str, *args: Any, **kwargs: Any) -> None:
            registered.append(name)
            super().create_function(name, *args, **kwargs)

    connect = sqlite3.connect
    monkeypatch.setattr(sqlite3, "connect", lambda *a, **k: connect(*a, factory=WithoutMath, **k))
    with open_storage(tmp_path / "a.db") as storage:
        assert registered == ["ln"]
        placed_stories(storage, {1: ["Titanfall Review"], 2: LAUNCH})
        assert [h.story_id for h in storage.search("titanfall").hits] == [2, 1]
    assert _base._ln(1.0) == 0.0 and _base._ln(0.0) is None and _base._ln(None) is None


def test_a_catch_up_meeting_another_writer_gives_up_at_once_and_blocks_no_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Another connection (another process) holds the write lock: the index's catch-up
    does not wait out the busy timeout holding this handle's lock, which every other thread
    of the handle (the server's requests, the daemon's polls) would wait on too; it gives up
    at once and the search answers from the index as it stands."""
    monkeypatch.setattr("aggregator.storage.sqlite._base.BUSY_TIMEOUT", 4.0)
    path = tmp_path / "a.db"
    with open_storage(path) as storage:
        storage.sync_feeds([FEED], T0)
        storage.save_poll(FEED, [entry("old", "Summit opens")], now=T0, seconds=0)
        assert storage.index_pending() == 1
        storage.save_poll(FEED, [entry("new", "Summit closes")], now=T0, seconds=0)
        other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        other.execute("BEGIN IMMEDIATE")  # the other handle's write, held
        try:
            searching = threading.Event()
            found: list[list[str]] = []

            def search() -> None:
                searching.set()
                found.append([h.entry.guid for h in storage.search("summit").hits])

            started = time.monotonic()
            thread = threading.Thread(target=search)
            thread.start()
            searching.wait(5)
            assert storage.entry_count() == 2  # another thread of the handle: not held up
            read = time.monotonic() - started
            thread.join(10)
            searched = time.monotonic() - started
            assert found == [["old"]]  # the index as it stands
            assert searched < 2.0 and read < 2.0, (searched, read)  # not the 4 s timeout
            # Expected, and passing: not a warning each time (serve retries every 5 s).
            assert "could not catch up" not in caplog.text
            assert storage.index_pending() == 0  # nothing indexed, nothing raised
        finally:
            other.rollback()
            other.close()
        assert storage.index_pending() == 1  # the writer gone: caught up
        assert sorted(h.entry.guid for h in storage.search("summit").hits) == ["new", "old"]


def test_a_search_whose_index_cannot_catch_up_searches_it_as_it_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A database the process cannot write (another writer holding it, a read-only file):
    the search answers from the index as it stands rather than failing."""
    with open_storage(tmp_path / "a.db") as storage:
        storage.sync_feeds([FEED], T0)
        storage.save_poll(FEED, [entry("old", "Summit opens")], now=T0, seconds=0)
        assert storage.index_pending() == 1
        storage.save_poll(FEED, [entry("new", "Summit closes")], now=T0, seconds=0)

        def refused(limit: int | None = None) -> int:
            raise StorageError("database write failed: database is locked")

        monkeypatch.setattr(storage, "index_pending", refused)
        found = storage.search("summit")
        assert [h.entry.guid for h in found.hits] == ["old"]
        assert found.message is None


def _in_database_file(path: Path, copy: Path) -> list[str] | None:
    """The feeds the database file itself holds, without its WAL (a copy read alone); None
    when the copy caught a checkpoint writing the file."""
    copy.write_bytes(path.read_bytes())
    raw = sqlite3.connect(copy)
    try:
        return [row[0] for row in raw.execute("SELECT url FROM feeds")]
    except sqlite3.OperationalError as e:  # the schema itself still in the WAL
        assert "no such table" in str(e)
        return []
    except sqlite3.DatabaseError:  # copied halfway through a checkpoint's writes
        return None
    finally:
        raw.close()


def _guids(storage: SqliteStorage) -> list[str]:
    """The guids of the entries stored around T0."""
    stored = storage.entries_between(T0 - timedelta(days=1), T0 + timedelta(days=1))
    return sorted(e.guid for e in stored)


def test_commits_reach_the_database_file_from_a_thread_of_their_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The WAL is copied into the database file by the checkpointer thread shortly after
    a commit, not by a commit that takes the WAL past SQLite's limit (which would wait for
    the disk in the committing thread): a small write is in the file well before that."""
    # The committing thread leaves it in the WAL (a thread slow to copy: nothing copied yet).
    monkeypatch.setattr(_base, "CHECKPOINT_EVERY", 60.0)
    slow = tmp_path / "slow.db"
    with open_storage(slow) as storage:
        storage.sync_feeds([FEED], T0)
        assert _in_database_file(slow, tmp_path / "copy0.db") == []  # in the WAL only
        thread = storage._checkpointer._thread
        assert thread is not None and thread.is_alive()
        limit = storage._db.execute("PRAGMA wal_autocheckpoint").fetchone()[0]
        assert limit == _base.CHECKPOINT_BACKSTOP  # the committing thread's, should it lag
    assert not thread.is_alive()  # closed with the storage

    # The thread copies it within the interval.
    monkeypatch.setattr(_base, "CHECKPOINT_EVERY", 0.05)
    path = tmp_path / "a.db"
    with open_storage(path) as storage:
        assert storage._checkpointer._thread is None  # opened, read: no thread yet
        storage.feed_states()
        assert storage._checkpointer._thread is None
        storage.sync_feeds([FEED], T0)
        wait_until(
            lambda: _in_database_file(path, tmp_path / "copy1.db") == [FEED.url],
            10,
            "the commit to reach the database file",
        )
    with open_storage(path) as again:
        assert [f.url for f in again.feed_states()] == [FEED.url]


def test_an_idle_checkpointer_empties_the_wal_and_ends_until_the_next_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Writes stopped, the thread copies the rest, empties the WAL file (a daemon between
    polls keeps no WAL of the last burst's size) and ends; the next commit starts one."""
    monkeypatch.setattr(_base, "CHECKPOINT_EVERY", 0.02)
    monkeypatch.setattr(_base, "CHECKPOINT_IDLE", 0.3)
    path = tmp_path / "a.db"
    wal = tmp_path / "a.db-wal"
    with open_storage(path) as storage:
        checkpointer = storage._checkpointer
        storage.sync_feeds([FEED], T0)
        storage.save_poll(FEED, [entry("g1", "Summit opens")], now=T0, seconds=0)
        wait_until(lambda: checkpointer._thread is None, 10, "the idle thread to end")
        assert wal.stat().st_size == 0  # emptied (a PASSIVE copy leaves the file's size)
        assert _in_database_file(path, tmp_path / "copy.db") == [FEED.url]
        storage.save_poll(FEED, [entry("g2", "Summit closes")], now=T0, seconds=0)
        second = checkpointer._thread
        assert second is not None and second.is_alive()
        assert _guids(storage) == ["g1", "g2"]
    assert not second.is_alive()


def test_a_checkpointer_that_cannot_open_the_database_loses_no_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The checkpointer failing leaves the writers' own checkpoint: every write is kept,
    and a commit after its pause tries again."""
    real = sqlite3.connect
    tries: list[float] = []

    def refused(path: object, *args: object, **kwargs: object) -> sqlite3.Connection:
        if threading.current_thread().name == "aggregator-checkpoint":
            tries.append(time.monotonic())
            raise sqlite3.OperationalError("unable to open database file")
        return real(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(_base, "CHECKPOINT_EVERY", 0.01)
    monkeypatch.setattr(_base, "CHECKPOINT_IDLE", 0.2)
    monkeypatch.setattr(_base.sqlite3, "connect", refused)
    path = tmp_path / "a.db"
    with open_storage(path) as storage:
        storage.sync_feeds([FEED], T0)
        storage.save_poll(FEED, [entry("g1", "Summit opens")], now=T0, seconds=0)
        checkpointer = storage._checkpointer
        wait_until(lambda: checkpointer._thread is None, 10, "the failed checkpointer to end")
        before = len(tries)
        storage.save_poll(FEED, [entry("g2", "Summit closes")], now=T0, seconds=0)
        wait_until(lambda: len(tries) == before + 1, 10, "the next commit's try")
        # A failed thread pauses before it ends: commits meanwhile start no other.
        assert all(b - a >= 0.19 for a, b in zip(tries, tries[1:], strict=False))
    monkeypatch.undo()
    with open_storage(path) as again:
        assert _guids(again) == ["g1", "g2"]


def test_a_wal_grown_by_a_burst_is_cut_back_when_it_starts_afresh(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A burst of writes grows the WAL file; once copied, the next commit starts the WAL
    afresh and the file is cut back to `WAL_FILE_LIMIT` (a daemon that never idles keeps
    no WAL of its first poll's size)."""
    monkeypatch.setattr(_base, "CHECKPOINT_EVERY", 0.02)
    monkeypatch.setattr(_base, "CHECKPOINT_IDLE", 60.0)  # not emptied for being idle
    wal = tmp_path / "a.db-wal"
    with open_storage(tmp_path / "a.db") as storage:
        storage.sync_feeds([FEED], T0)
        text = "Summit news " * 2000  # ~24 KB an entry: 8 MB in one poll
        burst = [entry(f"g{n}", f"Summit {n}", text=f"{n} {text}") for n in range(330)]
        storage.save_poll(FEED, burst, now=T0, seconds=0)
        assert wal.stat().st_size > 2 * _base.WAL_FILE_LIMIT
        time.sleep(0.3)  # copied meanwhile (PASSIVE leaves the file's size)

        def committed_then_cut() -> bool:
            storage.record_not_modified(FEED, now=T0, seconds=0, update=FeedUpdate(304))
            return wal.stat().st_size <= _base.WAL_FILE_LIMIT

        wait_until(committed_then_cut, 10, "the WAL file to be cut back")
        assert len(_guids(storage)) == 330


def test_a_processs_readers_are_closed_at_its_exit(tmp_path: Path) -> None:
    """A feature worker's `SqliteReader` connection is kept for the process's life and
    closed at its exit, where the last collection no longer closes it (`parallel.ending`):
    the database is left without its WAL and shared-memory files."""
    script = (
        "import os, sys\n"
        "from pathlib import Path\n"
        "from aggregator.parallel import child_started\n"
        "from aggregator.storage.sqlite import SqliteStorage\n"
        "from tests.test_storage_contract import FEED, T0, entry\n"
        "child_started(os.getppid())\n"
        "storage = SqliteStorage(Path(sys.argv[1]))\n"
        "storage.sync_feeds([FEED], T0)\n"
        "saved = storage.save_poll(FEED, [entry('1')], now=T0, seconds=0)\n"
        "found, _ = storage.entry_reader()(saved.new_ids)\n"
        "assert [e.guid for e in found] == ['1'], found\n"
        "storage.close()\n"
    )
    run_python(script, str(tmp_path / "x.db"), cwd=ROOT)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.db"]


def test_an_aggregator_that_fails_to_start_closes_its_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`make_aggregator` writing the feeds' rows fails: the aggregator it made is closed,
    its database with it (nothing left to the exit: `parallel.ending`)."""
    sync = Aggregator.sync_feeds

    def fails(self: Aggregator) -> None:
        sync(self)  # the database opened and written to...
        raise StorageError("cannot write the feeds' rows")  # ...and then a failure

    config = load_config(write_config(tmp_path, ""))
    monkeypatch.setattr(Aggregator, "sync_feeds", fails)
    storage = open_storage(config.storage_path)
    with pytest.raises(StorageError, match="feeds' rows"):
        make_aggregator(config, storage=storage)
    with pytest.raises(StorageError):
        storage.entry_count()  # closed
