"""The database schema as ordered migrations; the version is kept in PRAGMA user_version."""

from __future__ import annotations

import sqlite3

from aggregator.exceptions import SchemaVersionError

_V1 = """
CREATE TABLE feeds (
    url TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    title TEXT,
    added_at TEXT NOT NULL,
    last_attempt TEXT,
    last_success TEXT,
    last_error TEXT,
    consecutive_failures INTEGER NOT NULL DEFAULT 0,
    next_poll TEXT,
    disabled_reason TEXT,
    redirected_url TEXT,
    etag TEXT,
    last_modified TEXT,
    content_hash TEXT
);
CREATE TABLE entries (
    id INTEGER PRIMARY KEY,
    feed_url TEXT NOT NULL REFERENCES feeds(url) ON DELETE CASCADE,
    guid TEXT NOT NULL,
    title TEXT NOT NULL,
    link TEXT,
    published TEXT NOT NULL,
    dated INTEGER NOT NULL,
    first_seen TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    author TEXT,
    summary TEXT NOT NULL,
    text TEXT NOT NULL,
    language TEXT,
    content_hash TEXT NOT NULL,
    article_id INTEGER,
    story_id INTEGER,
    UNIQUE (feed_url, guid)
);
CREATE INDEX entries_by_published ON entries (published);
CREATE TABLE polls (
    id INTEGER PRIMARY KEY,
    feed_url TEXT NOT NULL,
    started_at TEXT NOT NULL,
    seconds REAL NOT NULL,
    status TEXT NOT NULL,
    new INTEGER NOT NULL,
    updated INTEGER NOT NULL,
    error TEXT
);
CREATE INDEX polls_by_feed ON polls (feed_url, started_at);
"""

# Feed health: until when a server asked us to wait (429/503 Retry-After), and the HTTP
# status of each poll.
_V2_POLL_HEALTH = """
ALTER TABLE feeds ADD COLUMN retry_after TEXT;
ALTER TABLE feeds ADD COLUMN last_status INTEGER;
ALTER TABLE polls ADD COLUMN http_status INTEGER;
"""

# Emailed digests: one row per digest (its window name) and recipient; at most one
# 'sent' each. 'sending' marks a claim in progress; 'failed' rows wait for next_attempt.
_EMAIL_DELIVERIES = """
CREATE TABLE email_deliveries (
    digest TEXT NOT NULL,
    recipient TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('sending', 'sent', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    first_attempt TEXT NOT NULL,
    last_attempt TEXT NOT NULL,
    sent_at TEXT,
    next_attempt TEXT,
    error TEXT,
    message_id TEXT,
    PRIMARY KEY (digest, recipient)
);
CREATE INDEX email_deliveries_due ON email_deliveries (status, next_attempt);
"""

# The daily digests the daemon has made, so that a digest missed while it was down is made
# once on start, and never twice (the key is the digested day, in the digest timezone).
_DIGEST_RUNS = """
CREATE TABLE digest_runs (
    day TEXT PRIMARY KEY,
    made_at TEXT NOT NULL
);
"""

# Deduplication (issue 4): per-entry comparison features, the lookup keys under which
# possible copies are found (links, guids, titles, LSH bands), stories with their centroids
# and an inverted index of their top words, and word document frequencies.
_DEDUP = """
CREATE TABLE dedup_entries (
    entry_id INTEGER PRIMARY KEY REFERENCES entries(id) ON DELETE CASCADE,
    feed_url TEXT NOT NULL,
    published TEXT NOT NULL,
    url TEXT,
    guid TEXT NOT NULL,
    title_key TEXT,
    size INTEGER NOT NULL,
    signature BLOB,
    lead_size INTEGER NOT NULL,
    lead BLOB,
    story_id INTEGER,
    vector TEXT
);
CREATE TABLE dedup_keys (
    key INTEGER NOT NULL,
    entry_id INTEGER NOT NULL REFERENCES entries(id) ON DELETE CASCADE
);
CREATE INDEX dedup_keys_by_key ON dedup_keys (key);
CREATE INDEX dedup_keys_by_entry ON dedup_keys (entry_id);
CREATE TABLE stories (
    id INTEGER PRIMARY KEY,
    first_published TEXT NOT NULL,
    last_published TEXT NOT NULL,
    size INTEGER NOT NULL,
    centroid TEXT NOT NULL
);
CREATE INDEX stories_by_last ON stories (last_published);
CREATE TABLE story_terms (
    term TEXT NOT NULL,
    story_id INTEGER NOT NULL,
    PRIMARY KEY (term, story_id)
) WITHOUT ROWID;
CREATE INDEX story_terms_by_story ON story_terms (story_id);
CREATE TABLE term_counts (term TEXT PRIMARY KEY, df INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE dedup_meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
INSERT INTO dedup_meta VALUES ('docs', 0), ('next_id', 1);
CREATE INDEX entries_unassigned ON entries (id) WHERE article_id IS NULL;
"""

# Stories merged into another move their entries: without these, each merge scanned every
# entry (quadratic over a large first poll).
_STORY_INDEXES = """
CREATE INDEX entries_by_story ON entries (story_id);
CREATE INDEX dedup_entries_by_story ON dedup_entries (story_id);
"""

# Lookup keys leave the database: they are derived from the stored features and kept in
# memory (dedup/index.py). In a B-tree, ~45 random keys per entry made every commit
# rewrite a page per key: the costliest part of deduplication, and superlinear. `seq`
# numbers each recorded batch, so a process's index loads only what others recorded since.
_KEYS_IN_MEMORY = """
DROP TABLE dedup_keys;
ALTER TABLE dedup_entries ADD COLUMN seq INTEGER NOT NULL DEFAULT 0;
CREATE INDEX dedup_entries_by_seq ON dedup_entries (seq);
INSERT INTO dedup_meta VALUES ('seq', 0);
"""

# Stories merged into another are deleted now; earlier versions kept them as empty rows.
_NO_EMPTY_STORIES = """
DELETE FROM stories WHERE size = 0
    AND id NOT IN (SELECT story_id FROM entries WHERE story_id IS NOT NULL);
DELETE FROM story_terms WHERE story_id NOT IN (SELECT id FROM stories);
"""

# A story's index words move into its row (\x1f-separated; NULL: none). Kept in
# story_terms keyed by word, each batch's new stories inserted rows among every word's, so
# each commit rewrote nearly every page of that table (a third of the pages a batch wrote
# at 30k entries, growing with the database); `stories_near` reads the words of the
# stories in its window, so they are best read with the row.
_STORY_TERMS_IN_STORIES = """
ALTER TABLE stories ADD COLUMN terms TEXT;
UPDATE stories SET terms = (
    SELECT group_concat(term, char(31))
    FROM (SELECT term FROM story_terms WHERE story_id = stories.id ORDER BY term)
);
DROP TABLE story_terms;
"""

# A story merged into another, or emptied by an edit that moved its one entry, points to
# the story that holds its entries now: a link to a story by its id (an alert, a page)
# still finds them. Chains are kept flat (an alias names the story its entries went to).
# `short`: every article of the story is short (a headline or a summary), so it is joined
# and merged as a headline is (dedup.stories._evidence); stories of earlier versions: 0.
_STORY_ALIASES = """
CREATE TABLE story_aliases (id INTEGER PRIMARY KEY, story_id INTEGER NOT NULL);
CREATE INDEX story_aliases_by_story ON story_aliases (story_id);
ALTER TABLE stories ADD COLUMN short INTEGER NOT NULL DEFAULT 0;
"""

# A feed's most recent entries (`SqliteStorage.recent_published`, read on every poll of a
# feed without a fixed interval, a 304's too) from an index, not by reading and sorting all
# of its rows (docs/speed.md, First poll against reader).
_ENTRIES_BY_FEED = """
CREATE INDEX entries_by_feed_published ON entries (feed_url, published);
"""

# Watches' alerts (issue 18): one row per story, watch, channel and level (0: the first
# alert, "new"; k: the k-th renotify threshold, "grew"), recorded 'due' before it is sent,
# so that a crash never loses one nor (but for the moment between a receiver taking it and
# the row saying so) sends one twice. `story_id` is the story as recorded: read through
# story_aliases, an alert of a story merged since counts as its survivor's. `alert_seq`:
# the dedup batches (dedup_entries.seq) evaluated already; an existing database starts at
# its current batch, so that the history it holds raises no alert.
_ALERTS = """
CREATE TABLE alerts (
    id INTEGER PRIMARY KEY,
    story_id INTEGER NOT NULL,
    watch TEXT NOT NULL,
    channel TEXT NOT NULL,
    reason TEXT NOT NULL CHECK (reason IN ('new', 'grew')),
    level INTEGER NOT NULL,
    sources INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('due', 'sending', 'sent', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    last_attempt TEXT,
    next_attempt TEXT,
    sent_at TEXT,
    claimed_by INTEGER,
    error TEXT,
    receipt TEXT,
    payload TEXT NOT NULL,
    UNIQUE (story_id, watch, channel, level)
);
CREATE INDEX alerts_pending ON alerts (status, next_attempt);
CREATE INDEX alerts_by_created ON alerts (created_at);
INSERT INTO dedup_meta SELECT 'alert_seq', value FROM dedup_meta WHERE key = 'seq';
"""

# Full-text search (issue 19): entries' titles and texts in their normalised form, indexed by
# FTS5 (storage/fulltext.py says why this form and tokenizer). Entries are not indexed as
# they are stored (~1 ms an entry, which would slow a first poll by half): `store_entries`
# queues new and edited ones in `fts_pending` (with the content they were queued with), and
# the index catches up before each search and in `serve`'s background (`index_pending`).
# Stored entries are queued here, so that opening an old database stays quick.
_ENTRIES_FTS = """
CREATE VIRTUAL TABLE entries_fts USING fts5(title, body, tokenize = 'unicode61');
CREATE TABLE fts_pending (
    entry_id INTEGER PRIMARY KEY,
    content_hash TEXT NOT NULL
);
INSERT INTO fts_pending (entry_id, content_hash) SELECT id, content_hash FROM entries;
CREATE TRIGGER entries_fts_delete AFTER DELETE ON entries BEGIN
    DELETE FROM entries_fts WHERE rowid = old.id;
    DELETE FROM fts_pending WHERE entry_id = old.id;
END;
"""

# Feed leases (issue 20, docs/postgres.md, Several pollers): a poller sharing the store takes
# a due feed until `lease_until` before fetching it, so no other fetches it meanwhile; the
# poll's record ends the lease. `lease_host` counts a host's feeds in flight (`per_host`
# across pollers). SQLite has them too, so the schemas stay one.
_FEED_LEASES = """
ALTER TABLE feeds ADD COLUMN lease_owner TEXT;
ALTER TABLE feeds ADD COLUMN lease_until TEXT;
ALTER TABLE feeds ADD COLUMN lease_host TEXT;
CREATE INDEX feeds_leased ON feeds (lease_host) WHERE lease_owner IS NOT NULL;
"""

# The pollers sharing the store (issue 20, docs/postgres.md, Several pollers): each daemon's
# row, made when it starts, its `seen_at` refreshed every `heartbeat` seconds and its
# `stopped_at` set when it stops cleanly, so that `status` on any host lists every poller,
# those that died (silent) too. `owner` is its feeds' `lease_owner`.
_POLLERS = """
CREATE TABLE pollers (
    owner TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    started_at TEXT NOT NULL,
    seen_at TEXT NOT NULL,
    stopped_at TEXT,
    heartbeat REAL NOT NULL,
    storage_error TEXT,
    failing_since TEXT
);
"""

#: A story's entries by article (joined articles move by story and article; the count of
#: a story's articles reads the index alone); it replaces the index by story.
_ENTRIES_BY_STORY_ARTICLE = """
CREATE INDEX entries_by_story_article ON entries (story_id, article_id);
DROP INDEX entries_by_story;
"""

#: Each entry's article and story by its id, read without its row: an entry's text comes
#: before them in the row, and a long one puts them on overflow pages (SQLite; PostgreSQL
#: keeps the same schema). The copy candidates of a batch are read by it (`known_copies`).
_ENTRIES_PLACEMENT = """
CREATE INDEX entries_placement ON entries (id, article_id, story_id);
"""

#: A copy of a process's lookup-key index (dedup/index.py), complete up to batch `seq` and
#: made under `settings` (what the keys depend on): a process that places loads it and reads
#: only the batches recorded since, instead of computing every stored entry's keys
#: (docs/speed.md, Twenty-first session). Derived data, in the database so that it always
#: goes with the rows it was made from (a restored or copied database brings its own).
_KEPT_KEY_INDEX = """
CREATE TABLE dedup_index (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    seq INTEGER NOT NULL,
    settings TEXT NOT NULL,
    data BLOB NOT NULL
);
"""

#: The parts of a kept key index after its first (`dedup_index`), in order: one value holds
#: ~1 GB at most, a store of ~1.4 million entries' index (`encoding.KEPT_INDEX_PART`).
_KEPT_INDEX_PARTS = """
CREATE TABLE dedup_index_parts (part INTEGER PRIMARY KEY, data BLOB NOT NULL);
"""

#: The duration bucket a poll row counts in (storage/totals.py's `poll_bucket`, in SQL):
#: base.POLL_SECONDS_BUCKETS written out, as the migration below applied them (other
#: bounds would need a migration of their own); `{infinity}` in the backend's words.
POLL_BUCKET = """CASE
        WHEN seconds <= 0.1 THEN 0.1
        WHEN seconds <= 0.25 THEN 0.25
        WHEN seconds <= 0.5 THEN 0.5
        WHEN seconds <= 1.0 THEN 1.0
        WHEN seconds <= 2.5 THEN 2.5
        WHEN seconds <= 5.0 THEN 5.0
        WHEN seconds <= 10.0 THEN 10.0
        WHEN seconds <= 30.0 THEN 30.0
        WHEN seconds <= 60.0 THEN 60.0
        ELSE {infinity}
    END"""

#: Running totals of the polls recorded, by status and by duration (`le`: the least bound
#: of base.POLL_SECONDS_BUCKETS a poll's seconds are within, infinity past the last),
#: counted in each poll's record's transaction (storage/totals.py): /metrics reads these
#: rows, not every poll's, and a poll record deleted leaves them as they are. They start at
#: what the polls table holds, so that /metrics goes on from the same values.
_POLL_TOTALS = f"""
CREATE TABLE poll_totals (
    status TEXT NOT NULL,
    le REAL NOT NULL,
    polls INTEGER NOT NULL,
    seconds REAL NOT NULL,
    PRIMARY KEY (status, le)
) WITHOUT ROWID;
INSERT INTO poll_totals (status, le, polls, seconds)
SELECT status, {POLL_BUCKET.format(infinity="9e999")}, count(*), sum(seconds)
FROM polls GROUP BY 1, 2;
"""

#: Each feed's failed polls, newest last: what `recent_errors` lists, and what a poll's
#: record keeps of them when it prunes the feed's older polls (storage/totals.py), read
#: without the feed's other polls.
_POLLS_FAILED = """
CREATE INDEX polls_failed ON polls (feed_url, started_at) WHERE error IS NOT NULL;
"""

#: The store's entries, articles and stories, kept as they change instead of counted at
#: each read (/metrics, status): each feed's entries (`entry_count`, added to by the poll
#: that stores them) and the distinct articles and stories placed (in dedup_meta, by each
#: recorded batch: storage/totals.py's `touched_stories`). They start at the counts.
_ENTRY_COUNTS = """
ALTER TABLE feeds ADD COLUMN entry_count INTEGER NOT NULL DEFAULT 0;
UPDATE feeds SET entry_count = (SELECT count(*) FROM entries WHERE feed_url = feeds.url);
INSERT INTO dedup_meta SELECT 'articles', count(DISTINCT article_id) FROM entries;
INSERT INTO dedup_meta SELECT 'stories', count(DISTINCT story_id) FROM entries;
"""

#: A daily digest's late arrivals (`entries_in`: published before its window, first seen
#: since the previous daily digest was made) by first-seen time: without it the daily read
#: walked every entry published before the window, the whole store (docs/digests.md). An
#: entry's first-seen time is when it was stored, so new rows go to the index's end.
_ENTRIES_BY_FIRST_SEEN = """
CREATE INDEX entries_by_first_seen ON entries (first_seen);
"""

#: Migration i+1 (an SQL script) brings a database from version i to i+1.
#: Append only; never edit one that has been released. The queries name four indexes
#: (`INDEXED BY`: entries_unassigned, entries_placement, dedup_entries_by_seq,
#: entries_by_first_seen): a migration
#: that drops or renames one fails every placing query, or every poll pass's question of
#: which stories changed, of the code still running on the database.
MIGRATIONS: list[str] = [
    _V1,
    _V2_POLL_HEALTH,
    _EMAIL_DELIVERIES,
    _DIGEST_RUNS,
    _DEDUP,
    _STORY_INDEXES,
    _KEYS_IN_MEMORY,
    _NO_EMPTY_STORIES,
    _STORY_TERMS_IN_STORIES,
    _STORY_ALIASES,
    _ENTRIES_BY_FEED,
    _ALERTS,
    _ENTRIES_FTS,
    _FEED_LEASES,
    _POLLERS,
    _ENTRIES_BY_STORY_ARTICLE,
    _ENTRIES_PLACEMENT,
    _KEPT_KEY_INDEX,
    _KEPT_INDEX_PARTS,
    _POLL_TOTALS,
    _POLLS_FAILED,
    _ENTRY_COUNTS,
    _ENTRIES_BY_FIRST_SEEN,
]
SCHEMA_VERSION = len(MIGRATIONS)
#: Tables of derived data a copy into another backend does not carry: the copy makes its
#: own from the rows it holds (a kept key index copied in its own snapshot could claim
#: batches the copied rows do not hold).
DERIVED_TABLES = ("dedup_index", "dedup_index_parts")
#: The tables a database holds at SCHEMA_VERSION but `DERIVED_TABLES`, in an order their
#: references allow: a copy into another backend (`aggregator storage migrate`) fills them
#: in this order.
TABLES = (
    "feeds",
    "entries",
    "polls",
    "poll_totals",
    "email_deliveries",
    "digest_runs",
    "dedup_entries",
    "stories",
    "story_aliases",
    "term_counts",
    "dedup_meta",
    "alerts",
    "pollers",
)


def migrate(db: sqlite3.Connection, path: str) -> None:
    """Bring the database up to SCHEMA_VERSION, each step in its own transaction.

    Raises:
        SchemaVersionError: the database was made by a newer aggregator.
    """
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise _newer(version, path)
    for number in range(version, SCHEMA_VERSION):
        # One step, one transaction: a crash mid-migration leaves the old version intact.
        # The version is read again once the write lock is held: another process opening
        # the database at the same moment may have made this step meanwhile.
        try:
            db.execute("BEGIN IMMEDIATE")
            now = db.execute("PRAGMA user_version").fetchone()[0]
            if now > SCHEMA_VERSION:  # a newer aggregator migrated it meanwhile
                raise _newer(now, path)
            if now <= number:
                for statement in _statements(MIGRATIONS[number]):
                    db.execute(statement)
                db.execute(f"PRAGMA user_version = {number + 1}")
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise


def _newer(version: int, path: str) -> SchemaVersionError:
    return SchemaVersionError(
        f"database schema version {version} is newer than this aggregator knows "
        f"({SCHEMA_VERSION}); upgrade aggregator",
        path=path,
    )


def _statements(script: str) -> list[str]:
    """A migration's SQL statements, one by one: the script cut at each semicolon that
    ends a complete statement (not one in a string, a comment or a trigger's body)."""
    statements, start = [], 0
    for at, char in enumerate(script):
        if char == ";" and sqlite3.complete_statement(script[start : at + 1]):
            statement = script[start : at + 1].strip()
            if statement.rstrip(";").strip():
                statements.append(statement)
            start = at + 1
    if script[start:].strip():
        statements.append(script[start:].strip())
    return statements
