"""Full-text search over entries in PostgreSQL (the entries_fts table, tsvector and GIN),
grouped by story, and what the web pages and metrics read besides: a story's entries, the
store's counts, each feed's recent errors, and the stamp caches are keyed by."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg

from aggregator.storage import fulltext
from aggregator.storage.base import RECENT_ERRORS, SearchHit, SearchResults, Tallies
from aggregator.storage.fulltext import Query, QueryError, marked, parse_query
from aggregator.storage.postgres._entries import EntriesMixin
from aggregator.storage.postgres._fulltext import tsquery
from aggregator.storage.totals import READ_ENTRY_TOTALS, READ_POLL_TOTALS, poll_totals
from aggregator.types import Entry

#: ts_rank's weights of {D, C, B, A}: a title's word (A) counts 4 times a body's (D), as
#: SQLite's bm25 weights them.
_WEIGHTS = "{0.25, 0.25, 0.25, 1.0}"

# A hit's group: its story, or the entry alone while it is not placed (negative: no clash);
# each group's best entry (then the lowest id) and its matching entries' count n; groups
# by best × (1 + ln n), as storage/fulltext.py says (ts_rank is positive, better higher:
# so is the product), then by group as SQLite. Both windows share one sort (DISTINCT ON
# and a count over the group sorted twice: ~20% slower at 2,000 matches).
_PAGE = f"""
WITH h AS (
    SELECT s.id, ts_rank('{_WEIGHTS}', s.words, q.q) AS rank
    FROM entries_fts s, (SELECT %s::tsquery AS q) q WHERE s.words @@ q.q
), g AS (
    SELECT coalesce(e.story_id, -e.id) AS grp, h.rank, e.id, row_number() OVER w AS nth,
        count(*) OVER (PARTITION BY coalesce(e.story_id, -e.id)) AS n
    FROM h JOIN entries e ON e.id = h.id
    WINDOW w AS (PARTITION BY coalesce(e.story_id, -e.id) ORDER BY h.rank DESC, e.id)
)
SELECT grp, rank::float8 * (1 + ln(n::float8)) AS ranked, id, count(*) OVER () FROM g
WHERE nth = 1 ORDER BY ranked DESC, grp LIMIT %s OFFSET %s
"""
_TOTAL = """
SELECT count(DISTINCT coalesce(e.story_id, -e.id))
FROM entries_fts s JOIN entries e ON e.id = s.id WHERE s.words @@ %s::tsquery
"""
# Whether a query matches over RANKED_MATCHES entries.
_MATCHES = (
    "SELECT count(*) FROM (SELECT 1 FROM entries_fts s WHERE s.words @@ %s::tsquery LIMIT %s) c"
)
# A common query's entries, newest stored first (as SQLite: by id), then their groups.
_NEWEST = "SELECT s.id FROM entries_fts s WHERE s.words @@ %s::tsquery ORDER BY s.id DESC LIMIT %s"
_GROUPS = (
    "SELECT coalesce(e.story_id, -e.id), e.id FROM entries e WHERE e.id = ANY(%s) "
    "ORDER BY e.id DESC"
)


class SearchMixin(EntriesMixin):
    """Search, a story's entries, recent errors, the change stamp and the counts /metrics
    shows."""

    def search(self, query: str, page: int = 1, per_page: int = 20) -> SearchResults:
        """Stories whose entries match `query`, best first (see Storage.search)."""
        page, per_page = max(page, 1), max(per_page, 1)
        try:
            parsed = parse_query(query)
            match = tsquery(query.strip())
        except QueryError as e:
            return SearchResults(query, page, per_page, 0, [], str(e))
        if match is None:  # no word to look for (FTS5 finds nothing either)
            return SearchResults(query, page, per_page, 0, [])

        def read() -> tuple[list[tuple[int, int]], int, bool, bool]:
            db = self._db
            with db.transaction():
                # The planner prices a scan of the table (its tsvectors are TOASTed, out of
                # it) below the index for a word in most rows, and then reads every row's
                # tsvector: 650 ms for a word in 57,000 of 100,000, 6 ms by the index
                # (docs/postgres.md).
                db.execute("SET LOCAL enable_seqscan = off")
                return self._search_rows(db, match, page, per_page)

        with self._lock:
            try:
                rows, total, exact, newest = self._again_if_dropped(read)
            except psycopg.errors.SyntaxError as e:  # a tsquery built wrong: say so, not raise
                detail = str(e).strip()
                return SearchResults(query, page, per_page, 0, [], f"the query failed: {detail}")
            except psycopg.Error as e:
                raise self._error("database read failed", e) from e
        entries = {e.id: e for e in self.entries_by_ids([id_ for _, id_ in rows])}
        hits = [_hit(group, entries[id_], parsed) for group, id_ in rows if id_ in entries]
        return SearchResults(query, page, per_page, int(total), hits, None, exact, newest)

    @staticmethod
    def _search_rows(
        db: psycopg.Connection[tuple[Any, ...]], match: str, page: int, per_page: int
    ) -> tuple[list[tuple[int, int]], int, bool, bool]:
        """The page's (group, entry id) rows, the total, whether it is exact, whether the
        groups are newest first (see Storage.search)."""
        # Not prepared: a generic plan, blind to the query's words, scans every row.
        ranked_at_most = fulltext.RANKED_MATCHES
        params = (match, ranked_at_most + 1)
        (matches,) = _one(db.execute(_MATCHES, params, prepare=False).fetchone())
        if matches > ranked_at_most:

            def newest(limit: int) -> list[tuple[int, int]]:
                # By the index's bitmap, then the top ids: walking the primary key backwards
                # read each row's tsvector (376 ms for 8,000 of `the`, 30 ms so).
                db.execute("SET LOCAL enable_indexscan = off")
                ids = [i for (i,) in db.execute(_NEWEST, (match, limit), prepare=False)]
                db.execute("SET LOCAL enable_indexscan = on")
                return [(g, i) for g, i in db.execute(_GROUPS, (ids,), prepare=False)]

            rows, total, exact = fulltext.newest_page(newest, page, per_page)
            return rows, total, exact, True
        ranked = db.execute(_PAGE, (match, per_page, (page - 1) * per_page), prepare=False)
        found = ranked.fetchall()
        if found:
            return [(group, id_) for group, _, id_, _ in found], found[0][3], True, False
        return [], _one(db.execute(_TOTAL, (match,), prepare=False).fetchone())[0], True, False

    def story_entries(self, story_id: int) -> list[Entry]:
        """The entries filed under the story, oldest first."""
        return self._select_entries("story_id = %s", (story_id,))

    def recent_errors(self, per_feed: int = RECENT_ERRORS) -> dict[str, list[tuple[datetime, str]]]:
        """Each feed's most recent failed polls, newest first (by polls_failed)."""
        rows = self._rows(
            "SELECT feed_url, started_at, error FROM (SELECT feed_url, started_at, error, "
            "row_number() OVER (PARTITION BY feed_url ORDER BY started_at DESC, id DESC) AS n "
            "FROM polls WHERE error IS NOT NULL) p WHERE n <= %s "
            'ORDER BY feed_url COLLATE "C", n',
            (per_feed,),
        )
        errors: dict[str, list[tuple[datetime, str]]] = {}
        for url, started, error in rows:
            errors.setdefault(url, []).append((started, error))
        return errors

    def index_pending(self, limit: int | None = None) -> int:
        """Nothing to catch up: PostgreSQL's entries are indexed as they are stored (their
        tsvector written in the storing transaction; postgres/_fulltext.py)."""
        return 0

    def change_stamp(self) -> str:
        """The count of write transactions committed (the `changes` row every write adds
        one to, in its own transaction: a stamp never runs ahead of what a read sees)."""
        return str(self._rows("SELECT n FROM changes")[0][0])

    def tallies(self) -> Tallies:
        """The store's counts, read in one consistent state (see Storage.tallies)."""
        with self._snapshot() as db:
            row = db.execute(READ_ENTRY_TOTALS).fetchone()
            assert row is not None
            entries, articles, stories = row
            polls = poll_totals(db.execute(READ_POLL_TOTALS))
            # Each feed's last poll, by polls_by_feed (not a pass over every poll).
            last = dict(
                db.execute(
                    "SELECT p.status, count(*) FROM feeds f CROSS JOIN LATERAL "
                    "(SELECT status FROM polls WHERE feed_url = f.url "
                    "ORDER BY started_at DESC, id DESC LIMIT 1) p GROUP BY p.status"
                )
            )
            emails = dict(
                db.execute("SELECT status, count(*) FROM email_deliveries GROUP BY status")
            )
            made = db.execute("SELECT max(made_at) FROM digest_runs").fetchone()
        assert made is not None
        return Tallies(
            entries=int(entries),
            articles=int(articles),
            stories=int(stories),
            polls=polls.polls,
            last_polls={str(k): int(v) for k, v in last.items()},
            emails={str(k): int(v) for k, v in emails.items()},
            last_digest=made[0],
            poll_seconds=polls.within,
            poll_seconds_sum=polls.seconds,
        )


def _one(row: tuple[int, ...] | None) -> tuple[int, ...]:
    assert row is not None  # an aggregate's row
    return row


def _hit(group: int, entry: Entry, query: Query) -> SearchHit:
    return SearchHit(group if group > 0 else None, entry, *marked(entry, query))
