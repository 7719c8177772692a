"""PostgreSQL storage beyond the protocol's contract (tests/test_storage_contract.py): its
schema against SQLite's, versions and migrations, connecting, and its errors."""

from __future__ import annotations

import random
import sqlite3
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from aggregator.exceptions import DatabasePathError, SchemaVersionError, StorageError
from aggregator.storage import EntryRange, PollerRecord, PollerState, open_storage
from aggregator.storage.postgres import _base, open_postgres, schema
from aggregator.storage.schema import DERIVED_TABLES, MIGRATIONS, SCHEMA_VERSION, TABLES
from tests.pgserver import PASSWORD, PASSWORD_USER, PgServer
from tests.test_storage_contract import (
    FEED,
    T0,
    assert_counted_on,
    assert_counts_kept,
    assert_pruned_in_batches,
    entry,
    placed_across_feeds,
    poll_rows,
)


def _sqlite_schema(path: Path) -> dict[str, set[str]]:
    with sqlite3.connect(path) as raw:
        tables = [
            r[0]
            for r in raw.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
        ]
        found = {t: {r[1] for r in raw.execute(f"PRAGMA table_info({t})")} for t in tables}
        found["(indexes)"] = {
            r[0]
            for r in raw.execute(
                "SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
            )
        }
    return found


def _postgres_schema(url: str) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    with psycopg.connect(url) as raw:
        for table, column in raw.execute(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_schema = 'public' AND table_name <> 'schema_version'"
        ):
            found.setdefault(table, set()).add(column)
        # Those made by CREATE INDEX (not those behind a primary key or UNIQUE).
        found["(indexes)"] = {
            r[0]
            for r in raw.execute(
                "SELECT indexname FROM pg_indexes WHERE schemaname = 'public' "
                "AND indexname NOT LIKE '%%_pkey' AND indexname NOT LIKE '%%_key'"
            )
        }
    return found


def _version(url: str) -> int:
    with psycopg.connect(url) as raw:
        row = raw.execute("SELECT version FROM schema_version").fetchone()
    assert row is not None
    return int(row[0])


#: Where the schemas differ by design, at SCHEMA_VERSION: full-text search is FTS5's
#: virtual table (its columns; rowid is the entry's id) and its shadow tables in SQLite, a
#: table of tsvectors (the entry's id, its words) with a GIN index in PostgreSQL; and
#: SQLite queues stored entries for its index (`fts_pending`, indexed before a search),
#: PostgreSQL's `changes` counts writes for `change_stamp` (SQLite's data_version).
SQLITE_ONLY = {
    "entries_fts": {"title", "body"},
    "entries_fts_data": {"id", "block"},
    "entries_fts_idx": {"segid", "term", "pgno"},
    "entries_fts_content": {"id", "c0", "c1"},
    "entries_fts_docsize": {"id", "sz"},
    "entries_fts_config": {"k", "v"},
    "fts_pending": {"entry_id", "content_hash"},  # PostgreSQL indexes as it stores
}
POSTGRES_ONLY = {
    "entries_fts": {"id", "words"},
    "changes": {"n"},
}
POSTGRES_ONLY_INDEXES = {"entries_fts_words"}


def test_both_backends_reach_the_same_version_with_the_same_tables(
    pg_url: str, tmp_path: Path
) -> None:
    assert len(schema.MIGRATIONS) == len(MIGRATIONS) == SCHEMA_VERSION
    open_storage(tmp_path / "a.db").close()
    open_postgres(pg_url).close()
    assert _version(pg_url) == SCHEMA_VERSION
    sqlite_tables, postgres_tables = _sqlite_schema(tmp_path / "a.db"), _postgres_schema(pg_url)
    assert "entries" in sqlite_tables and "story_aliases" in sqlite_tables
    for table, columns in SQLITE_ONLY.items():
        assert sqlite_tables.pop(table) == columns
    for table, columns in POSTGRES_ONLY.items():
        assert postgres_tables.pop(table) == columns
    sqlite_indexes, postgres_indexes = (
        sqlite_tables.pop("(indexes)"),
        postgres_tables.pop("(indexes)"),
    )
    assert postgres_indexes == sqlite_indexes | POSTGRES_ONLY_INDEXES
    assert postgres_tables == sqlite_tables
    # Every other table is one a copy carries across (`storage migrate`), or derived data
    # each database makes from its own rows.
    assert set(sqlite_tables) == set(TABLES) | set(DERIVED_TABLES)
    assert not set(TABLES) & set(DERIVED_TABLES)


def _database_before(url: str, migration: str) -> psycopg.Connection[tuple[Any, ...]]:
    """A connection (autocommit) to the database at `url` made as it was before `migration`."""
    raw = psycopg.connect(url, autocommit=True)
    before = schema.MIGRATIONS.index(migration)
    raw.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    raw.execute("INSERT INTO schema_version VALUES (%s)", (before,))
    for script in schema.MIGRATIONS[:before]:
        raw.execute(script.encode())
    return raw


def test_a_newer_database_is_refused(pg_url: str) -> None:
    open_postgres(pg_url).close()
    with psycopg.connect(pg_url) as raw:
        raw.execute("UPDATE schema_version SET version = %s", (SCHEMA_VERSION + 1,))
    with pytest.raises(SchemaVersionError, match="newer") as caught:
        open_postgres(pg_url)
    assert caught.value.exit_code == 2


@pytest.mark.parametrize(
    ("tables", "words"),
    [
        # Another application's schema_version: not "newer than this aggregator knows".
        ("schema_version (version INTEGER); INSERT INTO schema_version VALUES (40)", "(40)"),
        ("schema_version (version INTEGER); INSERT INTO schema_version VALUES (3)", "(3)"),
        ("schema_version (v TEXT)", "no version column"),
        ("feeds (id INTEGER, title TEXT)", "feeds"),  # not "relation already exists"
        ("changes (at TIMESTAMPTZ)", "changes"),  # one of ours outside TABLES too
    ],
)
def test_a_database_holding_another_applications_tables_is_refused_saying_so(
    pg_url: str, tables: str, words: str
) -> None:
    with psycopg.connect(pg_url, autocommit=True) as raw:
        raw.execute(f"CREATE TABLE {tables}".encode())
        raw.execute("CREATE TABLE invoices (id INTEGER)")
    with pytest.raises(DatabasePathError, match="another application's tables") as caught:
        open_postgres(pg_url)
    assert words in str(caught.value) and caught.value.exit_code == 2
    with psycopg.connect(pg_url) as raw:  # nothing of ours was left behind
        assert raw.execute("SELECT to_regclass('entries')").fetchone() == (None,)


def test_an_old_database_is_upgraded_keeping_its_rows(pg_url: str) -> None:
    """The migration that moves stories' index words into their rows, as SQLite's test
    (tests/test_storage.py) checks it there."""
    with _database_before(pg_url, schema._STORY_TERMS_IN_STORIES) as raw:
        for story in (1, 2, 3):
            raw.execute(
                "INSERT INTO stories VALUES (%s, %s, %s, 1, %s)", (story, T0, T0, b"\0\0\0\0")
            )
        for term, story in [("nvidia", 1), ("chips", 1), ("流感", 2), ("Zeta", 2)]:
            raw.execute("INSERT INTO story_terms VALUES (%s, %s)", (term, story))
    db = open_postgres(pg_url)
    window = (T0 - timedelta(days=1), T0 + timedelta(days=1))
    assert [s.id for s in db.stories_near(["nvidia"], *window)] == [1]
    assert [s.id for s in db.stories_near(["流感"], *window, ids=[3])] == [2, 3]
    db.close()
    assert _version(pg_url) == SCHEMA_VERSION
    with psycopg.connect(pg_url) as raw:
        rows = raw.execute("SELECT id, terms FROM stories ORDER BY id").fetchall()
    # In code point order, as SQLite's: "Zeta" before "流感", "chips" before "nvidia".
    assert rows == [(1, "chips\x1fnvidia"), (2, "Zeta\x1f流感"), (3, None)]


def test_a_database_from_before_the_pollers_lists_them_once_opened(pg_url: str) -> None:
    """As SQLite's (tests/test_storage.py): the pollers' table is added to a database with
    feeds and leases, and a poller recorded then is listed with the feeds it holds."""
    until = T0 + timedelta(minutes=5)
    with _database_before(pg_url, schema._POLLERS) as raw:
        raw.execute(
            "INSERT INTO feeds (url, name, added_at, lease_owner, lease_until, lease_host) "
            "VALUES (%s, 'F', %s, 'h:1:a', %s, 'example.org')",
            (FEED.url, T0, until),
        )
    with open_postgres(pg_url) as db:
        assert db.pollers(T0) == []
        record = PollerRecord("h:1:a", "h", 1, T0, T0, None, timedelta(seconds=30))
        db.record_poller(record, forget_before=T0 - timedelta(days=7))
        assert db.pollers(T0) == [PollerState(record, 1)]
        assert db.pollers(until) == [PollerState(record, 0)]  # its lease has ended
    assert _version(pg_url) == SCHEMA_VERSION


def test_a_database_from_before_the_poll_totals_counts_on_from_its_polls(pg_url: str) -> None:
    """As SQLite's (tests/test_storage.py): the running poll totals start at what the polls
    table holds, so /metrics shows the counters it showed before, and goes on."""
    rows = poll_rows(300)
    _polls_before_their_totals(pg_url, rows)
    with open_postgres(pg_url) as db:
        assert_counted_on(db, rows)
    assert _version(pg_url) == SCHEMA_VERSION


def test_a_database_from_before_pruning_sheds_its_history_a_batch_a_poll(pg_url: str) -> None:
    rows = poll_rows(1000)
    _polls_before_their_totals(pg_url, rows)
    with open_postgres(pg_url) as db:
        db.sync_feeds([FEED], T0)
        assert_pruned_in_batches(db, rows)


def _polls_before_their_totals(url: str, rows: list[tuple[str, datetime, float, str, Any]]) -> None:
    """A database from before the running poll totals, holding these `poll_rows`."""
    with _database_before(url, schema._POLL_TOTALS) as raw:
        raw.cursor().executemany(
            "INSERT INTO polls (feed_url, started_at, seconds, status, new, updated, error) "
            "VALUES (%s, %s, %s, %s, 0, 0, %s)",
            rows,
        )


def test_a_database_from_before_the_kept_counts_counts_on_from_its_entries(pg_url: str) -> None:
    """As SQLite's (tests/test_storage.py): the kept counts of entries (each feed's),
    articles and stories start at what the database holds."""
    with open_postgres(pg_url) as db:
        ids = placed_across_feeds(db)
    with psycopg.connect(pg_url, autocommit=True) as raw:
        raw.execute("DROP INDEX entries_by_first_seen")  # the migration after it
        raw.execute("ALTER TABLE feeds DROP COLUMN entry_count")
        raw.execute("DELETE FROM dedup_meta WHERE key IN ('articles', 'stories')")
        before = schema.MIGRATIONS.index(schema._ENTRY_COUNTS)
        raw.execute("UPDATE schema_version SET version = %s", (before,))
    with open_postgres(pg_url) as db:
        assert_counts_kept(db, ids)


def test_a_database_from_before_the_first_seen_index_reads_late_arrivals_by_it(
    pg_url: str,
) -> None:
    """As SQLite's (tests/test_storage.py): the index is added to a database that holds
    entries, and the daily digest's read of its late arrivals (`entries_in`) goes by it
    rather than through every entry published before the window."""
    with _database_before(pg_url, schema._ENTRIES_BY_FIRST_SEEN) as raw:
        raw.execute("INSERT INTO feeds (url, name, added_at) VALUES (%s, 'F', %s)", (FEED.url, T0))
        raw.execute(
            "INSERT INTO entries (feed_url, guid, title, published, dated, first_seen, "
            "updated_at, summary, text, content_hash) "
            "SELECT %s, 'g' || n, 't', %s, true, %s, %s, '', '', 'h' "
            "FROM generate_series(1, 5000) AS n",
            (FEED.url, T0, T0, T0),
        )
    made = T0 + timedelta(days=1)
    with open_postgres(pg_url) as db:
        db.save_poll(FEED, [entry("late", published=T0)], now=made, seconds=0)
        late = EntryRange(T0, made, seen_since=made)
        assert [e.guid for e in db.entries_in([late])] == ["late"]
    assert _version(pg_url) == SCHEMA_VERSION
    with psycopg.connect(pg_url, autocommit=True) as raw:
        raw.execute("ANALYZE entries")
        plan = " ".join(
            str(row[0])
            for row in raw.execute(
                "EXPLAIN SELECT * FROM entries "
                "WHERE published >= %s AND published < %s AND first_seen >= %s",
                (T0, made, made),
            )
        )
    assert "entries_by_first_seen" in plan, plan


def test_handles_opening_a_new_database_at_once_migrate_it_once(pg_url: str) -> None:
    errors: list[BaseException] = []

    def open_one() -> None:
        try:
            open_postgres(pg_url).close()
        except BaseException as e:  # reported by the test thread
            errors.append(e)

    threads = [threading.Thread(target=open_one) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert _version(pg_url) == SCHEMA_VERSION
    with psycopg.connect(pg_url) as raw:
        assert raw.execute("SELECT count(*) FROM schema_version").fetchone() == (1,)
        keys = [r[0] for r in raw.execute("SELECT key FROM dedup_meta ORDER BY key")]
        assert keys == ["alert_seq", "articles", "docs", "next_id", "seq", "stories"]  # once


def test_the_search_migration_indexes_the_entries_stored_before_it(pg_url: str) -> None:
    """As SQLite's (tests/test_storage.py): a database from before full-text search finds
    its old entries once opened, in either Chinese script; new writes count for the stamp."""
    with _database_before(pg_url, schema._ENTRIES_FTS) as raw:
        raw.execute("INSERT INTO feeds (url, name, added_at) VALUES ('f', 'F', %s)", (T0,))
        for guid, title, text in [
            ("1", "人工智慧行動峰會", "在巴黎開幕"),
            ("2", "Chips", "Export rules"),
        ]:
            raw.execute(
                "INSERT INTO entries (feed_url, guid, title, published, dated, first_seen, "
                "updated_at, summary, text, content_hash) "
                "VALUES ('f', %s, %s, %s, true, %s, %s, '', %s, 'h')",
                (guid, title, T0, T0, T0, text),
            )
    with open_postgres(pg_url) as db:
        assert [h.entry.guid for h in db.search("峰会 巴黎").hits] == ["1"]
        assert [h.entry.guid for h in db.search("export").hits] == ["2"]
        stamp = db.change_stamp()
        db.record_digest(T0.date(), now=T0)
        assert db.change_stamp() != stamp
    assert _version(pg_url) == SCHEMA_VERSION


def test_a_text_past_tsvectors_limits_is_stored_and_searched(pg_url: str) -> None:
    """A tsvector holds at most ~1 MB: the words of a text of ~1.3 MB of distinct words
    past it are not indexed (docs/postgres.md), but the poll is stored and the rest found."""
    words = [f"w{n:07d}" for n in range(160_000)]
    with open_postgres(pg_url) as db:
        db.sync_feeds([FEED], T0)
        saved = db.save_poll(FEED, [entry("1", "Huge", " ".join(words))], now=T0, seconds=0)
        assert saved.new == 1
        assert db.search(words[0]).total == 1 and db.search("huge").total == 1
        assert db.search(words[-1]).total == 0


def test_near_is_refused_with_a_message(pg_url: str) -> None:
    """FTS5's NEAR has no tsquery counterpart (its distance is exact, `<N>`): refused, not
    read as something else (SQLite runs it)."""
    with open_postgres(pg_url) as db:
        db.sync_feeds([FEED], T0)
        db.save_poll(FEED, [entry("1", "Chips", "export rules for chips")], now=T0, seconds=0)
        results = db.search("NEAR(export chips, 5)")
        assert (results.total, results.hits) == (0, [])
        assert results.message is not None and "NEAR" in results.message


def test_any_query_of_fts5s_pieces_is_answered_as_sqlite_answers_it(
    pg_url: str, tmp_path: Path
) -> None:
    """Queries made at random of FTS5's syntax and words: PostgreSQL never raises, and
    where both backends run a query (no message) they find the same stories. (`^`, which
    PostgreSQL ignores, and NUL, which ends FTS5's query early, are left out.)"""
    pieces = ['"', "(", ")", "*", ":", "+", " ", "AND", "OR", "NOT", "NEAR", "NEAR("]
    pieces += ["chips", "峰会", "巴黎", "title", "body", "x", "-", "'", "\\", "é", ","] * 3
    rng = random.Random(20)
    queries = ["(" * 400 + "x" + ")" * 100, "x " * 250] + [
        "".join(rng.choice(pieces) + rng.choice(("", " ")) for _ in range(rng.randint(1, 12)))
        for _ in range(500)
    ]
    text = "Export rules for chips: café, e-mail, example.com. 巴黎峰会"
    answered = 0
    with open_storage(tmp_path / "a.db") as sqlite, open_postgres(pg_url) as postgres:
        for db in (sqlite, postgres):
            db.sync_feeds([FEED], T0)
            db.save_poll(FEED, [entry("1", "Chips and rules", text)], now=T0, seconds=0)
        for query in queries:
            found = sqlite.search(query), postgres.search(query)
            if found[0].message is None and found[1].message is None:
                assert found[1].total == found[0].total, query
                answered += 1
    assert answered > 100


def test_a_password_is_used_and_never_shown(pg_server: PgServer) -> None:
    url = pg_server.database(owner=PASSWORD_USER)
    with open_postgres(url, password=PASSWORD) as db:
        db.sync_feeds([FEED], T0)
        assert db.save_poll(FEED, [entry("1")], now=T0, seconds=0).new == 1
    with_password = url.replace(f"{PASSWORD_USER}@", f"{PASSWORD_USER}:{PASSWORD}@")
    with open_postgres(with_password) as db:
        assert db.entry_count() == 1
    with pytest.raises(DatabasePathError, match="password authentication failed") as caught:
        open_postgres(with_password.replace(PASSWORD, "wrong-one"))
    assert "wrong-one" not in str(caught.value) and caught.value.exit_code == 2
    assert caught.value.path == url  # the URL without its password
    # libpq takes it in the query too: never shown either (it was, whole).
    with pytest.raises(DatabasePathError, match="password authentication failed") as caught:
        open_postgres(f"{url}?sslmode=disable&password=wrong-one")
    assert "wrong-one" not in str(caught.value) and caught.value.path == f"{url}?sslmode=disable"


def test_a_database_that_does_not_exist_is_a_configuration_error(pg_server: PgServer) -> None:
    with pytest.raises(DatabasePathError, match="does not exist") as caught:
        open_postgres(pg_server.url("no_such_database"))
    assert caught.value.exit_code == 2


def test_a_role_that_only_reads_opens_a_made_database_and_reads(
    pg_server: PgServer, pg_url: str
) -> None:
    """A read-only role (`status`, `serve` for a team) opens a database whose tables are
    made and reads it; its writes are refused as storage errors, not its opening."""
    open_postgres(pg_url).close()  # made by its owner
    database = pg_url.rsplit("/", 1)[1]
    role = f"reader_{database}"
    pg_server.sql(f"CREATE ROLE {role} LOGIN PASSWORD '{PASSWORD}'")
    pg_server.sql(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}", database)
    pg_server.sql("REVOKE CREATE ON SCHEMA public FROM PUBLIC", database)
    db = open_postgres(pg_server.url(database, role), password=PASSWORD)
    assert db.feed_states() == [] and db.entry_count() == 0
    with pytest.raises(StorageError, match="permission denied"):
        db.sync_feeds([FEED], T0)
    db.close()


def test_a_server_that_does_not_answer_is_an_operational_error() -> None:
    with socket_port() as port:
        with pytest.raises(StorageError, match="cannot connect") as caught:
            open_postgres(f"postgresql://postgres@127.0.0.1:{port}/x")
    assert not isinstance(caught.value, DatabasePathError) and caught.value.exit_code == 1


def test_a_write_the_server_refuses_is_our_error_and_leaves_nothing(pg_url: str) -> None:
    db = open_postgres(pg_url)
    db.sync_feeds([FEED], T0)
    with pytest.raises(StorageError, match="NUL|0x00"):  # text PostgreSQL cannot hold
        db.save_poll(FEED, [entry("1"), entry("2", text="a\x00b")], now=T0, seconds=0)
    assert db.entry_count() == 0 and db.feed_state(FEED.url).last_attempt is None  # type: ignore[union-attr]
    db.save_poll(FEED, [entry("1")], now=T0, seconds=0)  # the handle still works
    assert db.entry_count() == 1
    db.close()


class socket_port:
    """A loopback port nothing listens on, while held (bound, not listening)."""

    def __enter__(self) -> int:
        import socket

        self._socket = socket.socket()
        self._socket.bind(("127.0.0.1", 0))
        port: int = self._socket.getsockname()[1]
        return port

    def __exit__(self, *exc: object) -> None:
        self._socket.close()


def _drop_connections(url: str) -> int:
    """End every other session on the database, as a server restart does."""
    with psycopg.connect(url, autocommit=True) as admin:
        rows = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()
    return len(rows)


def test_a_handle_whose_connection_was_dropped_connects_again(pg_url: str) -> None:
    """A daemon outlives a restart of its server: the first read, write or snapshot after
    the connection was dropped runs on a new one."""
    db = open_postgres(pg_url)
    db.sync_feeds([FEED], T0)
    assert _drop_connections(pg_url) == 1
    assert [s.url for s in db.feed_states()] == [FEED.url]  # a read
    assert _drop_connections(pg_url) == 1
    db.save_poll(FEED, [entry("1"), entry("2")], now=T0, seconds=0)  # a write
    assert _drop_connections(pg_url) == 1
    features, _ = db.dedup_features()  # reads in one snapshot
    assert len(features) == 0 and db.entry_count() == 2
    assert _drop_connections(pg_url) == 1
    leased = db.lease_feeds(  # a lease (a transaction of its own, not under the write lock)
        {FEED.url: "example.org"}, owner="me:1:x", now=T0, until=T0 + timedelta(minutes=5),
        due_only=False,
    )  # fmt: skip
    assert leased.granted == [FEED.url]
    assert _drop_connections(pg_url) == 1
    assert db.search("example").total >= 0  # a search (a read transaction of its own)
    db.close()
    with pytest.raises(StorageError):  # closed by us: not opened again
        db.entry_count()


def test_a_write_cut_off_part_way_is_not_done_again(pg_url: str) -> None:
    """A connection dropped inside a write's transaction: the write fails whole (its
    caller decides), and the handle works afterwards."""
    db = open_postgres(pg_url)
    db.sync_feeds([FEED], T0)
    with pytest.raises(StorageError), db._transaction() as tx:
        tx.execute("DELETE FROM feeds")
        _drop_connections(pg_url)
        tx.execute("SELECT 1")
    assert [s.url for s in db.feed_states()] == [FEED.url]  # the delete was rolled back
    db.close()


def test_a_lock_connection_dropped_while_idle_is_opened_again(pg_url: str) -> None:
    """`hold`'s connections idle between uses (the digest's for a day): a restart meanwhile
    must not cost the next digest or placement (the first try failed)."""
    db = open_postgres(pg_url)
    with db.hold("digest"), db.hold("placing"):
        pass
    assert _drop_connections(pg_url) == 3  # the handle's and its two lock connections
    with db.hold("digest"), db.hold("placing"):
        other = open_postgres(pg_url)
        with pytest.raises(StorageError, match="lock"), other._transaction() as tx:
            # Held indeed: another session cannot take it.
            tx.execute("SET LOCAL lock_timeout = '200ms'")
            tx.execute("SELECT pg_advisory_lock(%s)", (_base.HELD_LOCKS["digest"],))
        other.close()
    db.close()


def test_a_lock_taken_first_while_the_server_is_away_is_our_error(pg_url: str) -> None:
    """The server gone before a lock's connection was ever opened (a poll's first placing,
    a daemon's first digest): a storage error naming the lock, not an IndexError; the
    lock is taken once the server answers again."""
    db = open_postgres(pg_url)
    with socket_port() as port:
        db.url = f"postgresql://postgres@127.0.0.1:{port}/x"  # where nothing answers
        for name in ("placing", "digest"):
            with pytest.raises(StorageError, match=f"cannot take the {name} lock"):
                with db.hold(name):
                    pass
    db.url = pg_url  # the server is back
    with db.hold("digest"), db.hold("placing"):
        pass
    db.close()


def test_after_a_failed_reconnect_calls_fail_at_once_for_a_pause(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server that does not answer costs one connect_timeout, not one per queued call."""
    db = open_postgres(pg_url)
    tries: list[float] = []

    def refuse() -> _base.Connection:
        tries.append(time.monotonic())
        raise psycopg.OperationalError("connection timeout expired")

    monkeypatch.setattr(db, "_connect", refuse)
    _drop_connections(pg_url)
    with pytest.raises(StorageError, match="cannot connect to PostgreSQL again"):
        db.entry_count()
    for _ in range(3):
        with pytest.raises(StorageError, match="not connected to PostgreSQL"):
            db.entry_count()
    assert len(tries) == 1  # one try; the others failed at once
    monkeypatch.undo()  # the server answers again
    db._reconnect_after = 0.0  # and the pause is over
    assert db.entry_count() == 0  # connected again
    db.close()


def test_the_pause_left_is_never_said_as_0s(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A sub-second wait before the next try is said rounded up: "in 0s" would read as
    "now" while calls still fail at once."""
    db = open_postgres(pg_url)

    def refuse() -> _base.Connection:
        raise psycopg.OperationalError("connection timeout expired")

    monkeypatch.setattr(db, "_connect", refuse)
    _drop_connections(pg_url)
    with pytest.raises(StorageError, match="cannot connect to PostgreSQL again"):
        db.entry_count()
    db._reconnect_after = time.monotonic() + 0.4  # most of the pause gone
    with pytest.raises(StorageError, match=r"the next in 1s\)"):
        db.entry_count()
    db._reconnect_after = time.monotonic() + 4.2
    with pytest.raises(StorageError, match=r"the next in 5s\)"):
        db.entry_count()
    monkeypatch.undo()
    db._reconnect_after = 0.0
    db.close()
