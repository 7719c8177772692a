"""Full-text search over entries (the entries_fts table), grouped by story, and what the
web pages and metrics read besides: a story's entries, the store's counts."""

from __future__ import annotations

import logging
import sqlite3
from datetime import datetime

from aggregator.exceptions import StorageError
from aggregator.storage import fulltext
from aggregator.storage.base import RECENT_ERRORS, SearchHit, SearchResults, Tallies
from aggregator.storage.fulltext import (
    Query,
    QueryError,
    body_text,
    index_text,
    marked,
    parse_query,
    unreadable,
)
from aggregator.storage.sqlite._entries import EntriesMixin
from aggregator.storage.sqlite.codec import db_time, from_db_time
from aggregator.storage.totals import READ_ENTRY_TOTALS, READ_POLL_TOTALS, poll_totals
from aggregator.types import Entry

log = logging.getLogger("aggregator")

#: Entries `index_pending` indexes per transaction (~1 s of work: writers wait no longer).
INDEX_BATCH = 1000
#: FTS5's messages for a query it cannot parse (the rest of SQLite's errors are ours to raise).
_QUERY_ERRORS = ("fts5:", "no such column", "unknown special query", "unterminated string")
#: bm25's weights of the title and the body: a word in the title counts this much more.
_WEIGHTS = (4.0, 1.0)

# A hit's group: its story, or the entry alone while it is not placed (negative: no clash).
# SQLite's bare columns take the values of the row where min() found its minimum. Groups by
# best × (1 + ln n), n their matches, as storage/fulltext.py says (bm25 is negative, better
# lower: so is the product); ln() is SQLite's, or _base.py's where SQLite has none.
# (bm25 works only in the full-text query itself: MATERIALIZED keeps it from being flattened.)
_PAGE = f"""
WITH h AS MATERIALIZED (
    SELECT rowid AS id, bm25(entries_fts, {_WEIGHTS[0]}, {_WEIGHTS[1]}) AS rank
    FROM entries_fts WHERE entries_fts MATCH ?
)
SELECT grp, best * (1 + ln(n)) AS ranked, id, count(*) OVER () FROM (
    SELECT coalesce(e.story_id, -e.id) AS grp, min(h.rank) AS best, e.id AS id, count(*) AS n
    FROM h JOIN entries e ON e.id = h.id
    GROUP BY grp
)
ORDER BY ranked, grp LIMIT ? OFFSET ?
"""
_TOTAL = """
SELECT count(DISTINCT coalesce(e.story_id, -e.id))
FROM entries_fts JOIN entries e ON e.id = entries_fts.rowid WHERE entries_fts MATCH ?
"""
# Whether a query matches over RANKED_MATCHES entries: FTS5 counts them from its index alone,
# without ranking them (~3 ms for 56,000).
_MATCHES = "SELECT count(*) FROM (SELECT 1 FROM entries_fts WHERE entries_fts MATCH ? LIMIT ?)"
# A common query's entries, newest stored first: FTS5 walks its index in rowid order and
# stops at the limit.
_NEWEST = """
SELECT coalesce(e.story_id, -e.id), e.id
FROM entries_fts JOIN entries e ON e.id = entries_fts.rowid
WHERE entries_fts MATCH ? ORDER BY entries_fts.rowid DESC LIMIT ?
"""


class SearchMixin(EntriesMixin):
    """Search, a story's entries and the counts /metrics shows."""

    def search(self, query: str, page: int = 1, per_page: int = 20) -> SearchResults:
        """Stories whose entries match `query`, best first (see Storage.search)."""
        page, per_page = max(page, 1), max(per_page, 1)
        try:
            parsed = parse_query(query)
        except QueryError as e:
            return SearchResults(query, page, per_page, 0, [], str(e))
        try:
            self.index_pending()
        except StorageError as e:  # read-only file, or a writer holding it: search as it is
            log.warning("search: the index could not catch up (%s); searching it as it is", e)
        exact, newest = True, False
        try:
            with self._lock:
                cursor = self._db.cursor()
                cursor.row_factory = None
                ranked_at_most = fulltext.RANKED_MATCHES
                params = (parsed.match, ranked_at_most + 1)
                (matches,) = cursor.execute(_MATCHES, params).fetchone()
                if matches <= ranked_at_most:
                    ranked = cursor.execute(
                        _PAGE, (parsed.match, per_page, (page - 1) * per_page)
                    ).fetchall()
                    rows = [(group, id_) for group, _, id_, _ in ranked]
                    total = (
                        ranked[0][3]
                        if ranked
                        else cursor.execute(_TOTAL, (parsed.match,)).fetchone()[0]
                    )
                else:
                    newest = True
                    rows, total, exact = fulltext.newest_page(
                        lambda limit: cursor.execute(_NEWEST, (parsed.match, limit)).fetchall(),
                        page,
                        per_page,
                    )
        except sqlite3.OperationalError as e:
            if str(e).startswith(_QUERY_ERRORS):
                return SearchResults(query, page, per_page, 0, [], _syntax_message(e))
            raise self._error("database read failed", e) from e
        except sqlite3.Error as e:
            raise self._error("database read failed", e) from e
        entries = {e.id: e for e in self.entries_by_ids([id_ for _, id_ in rows])}
        hits = [_hit(group, entries[id_], parsed) for group, id_ in rows if id_ in entries]
        return SearchResults(query, page, per_page, int(total), hits, None, exact, newest)

    def index_pending(self, limit: int | None = None) -> int:
        """Index the entries stored or edited since the index last caught up (at most
        `limit`), a batch per transaction; how many were indexed (see Storage)."""
        with self._indexing:  # another thread's catch-up is finished first, not repeated
            return self._index_pending(limit)

    def _index_pending(self, limit: int | None) -> int:
        done = 0
        while limit is None or done < limit:
            size = INDEX_BATCH if limit is None else min(INDEX_BATCH, limit - done)
            # Read and normalise outside the write (the normalising is most of the cost);
            # a row queued again meanwhile (an edit: another hash) stays queued.
            rows = self._read(
                "SELECT p.entry_id, p.content_hash, e.title, e.summary, e.text "
                "FROM fts_pending p JOIN entries e ON e.id = p.entry_id "
                "WHERE e.content_hash = p.content_hash ORDER BY p.entry_id LIMIT ?",
                (size,),
                None,
            )
            if not rows:
                break
            texts = [
                (id_, index_text(title), index_text(body_text(summary, text)))
                for id_, _, title, summary, text in rows
            ]
            # Another process writing: give up now, the rest left for the next catch-up (the
            # search reads the index as it is), rather than hold this handle's threads for
            # the busy timeout.
            try:
                with self._transaction(wait=False) as db:
                    db.executemany(
                        "INSERT OR REPLACE INTO entries_fts (rowid, title, body) VALUES (?, ?, ?)",
                        texts,
                    )
                    db.executemany(
                        "DELETE FROM fts_pending WHERE entry_id = ? AND content_hash = ?",
                        [(id_, hash_) for id_, hash_, *_ in rows],
                    )
            except StorageError as e:
                cause = e.__cause__
                if getattr(cause, "sqlite_errorname", None) != "SQLITE_BUSY":
                    raise
                log.debug("search index: another connection is writing; caught up later")
                break
            done += len(rows)
        return done

    def story_entries(self, story_id: int) -> list[Entry]:
        """The entries filed under the story, oldest first."""
        return self._select_entries("story_id = ?", (story_id,))

    def recent_errors(self, per_feed: int = RECENT_ERRORS) -> dict[str, list[tuple[datetime, str]]]:
        """Each feed's most recent failed polls, newest first (by polls_failed)."""
        rows = self._read(
            "SELECT feed_url, started_at, error FROM (SELECT feed_url, started_at, error, "
            "row_number() OVER (PARTITION BY feed_url ORDER BY started_at DESC, id DESC) AS n "
            "FROM polls WHERE error IS NOT NULL) WHERE n <= ? ORDER BY feed_url, n",
            (per_feed,),
            None,
        )
        errors: dict[str, list[tuple[datetime, str]]] = {}
        for url, started, error in rows:
            errors.setdefault(url, []).append((db_time(started), error))
        return errors

    def change_stamp(self) -> str:
        """Other connections' commits (data_version) and this one's changed rows."""
        with self._lock:
            try:
                (version,) = self._db.execute("PRAGMA data_version").fetchone()
            except sqlite3.Error as e:
                raise self._error("database read failed", e) from e
            return f"{version}:{self._db.total_changes}"

    def tallies(self) -> Tallies:
        """The store's counts, read in one consistent state (see Storage.tallies)."""
        with self._snapshot() as db:
            entries, articles, stories = db.execute(READ_ENTRY_TOTALS).fetchone()
            polls = poll_totals(db.execute(READ_POLL_TOTALS))
            # Each feed's last poll (polls_by_feed: the newest row per feed).
            last = dict(
                db.execute(
                    "SELECT status, count(*) FROM (SELECT p.status FROM feeds f "
                    "JOIN polls p ON p.id = (SELECT id FROM polls WHERE feed_url = f.url "
                    "ORDER BY started_at DESC, id DESC LIMIT 1)) GROUP BY status"
                )
            )
            emails = dict(
                db.execute("SELECT status, count(*) FROM email_deliveries GROUP BY status")
            )
            (made,) = db.execute("SELECT max(made_at) FROM digest_runs").fetchone()
        return Tallies(
            entries=int(entries),
            articles=int(articles),
            stories=int(stories),
            polls=polls.polls,
            last_polls=last,
            emails=emails,
            last_digest=from_db_time(made),
            poll_seconds=polls.within,
            poll_seconds_sum=polls.seconds,
        )


def _hit(group: int, entry: Entry, query: Query) -> SearchHit:
    return SearchHit(group if group > 0 else None, entry, *marked(entry, query))


def _syntax_message(error: sqlite3.Error) -> str:
    return unreadable(str(error).removeprefix("fts5: "))
