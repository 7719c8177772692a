"""The running totals /metrics reads instead of counting whole tables, and the poll history
kept beside them: the rules and the SQL both backends share, pure (docs/daemon.md, What
/metrics reads)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import NamedTuple

from aggregator.storage.base import POLL_SECONDS_BUCKETS, RECENT_ERRORS
from aggregator.types import Outcome

#: Each feed's newest polls kept: the history a person reads in the table (a feed polled
#: every minute keeps its last 100 minutes, one polled hourly four days). Nothing reads
#: more: `tallies` reads each feed's last poll, `recent_errors` its newest RECENT_ERRORS
#: failed ones (kept too, however old), `status` and the polling rules the feed's row.
KEEP_POLLS = 100
#: At most this many of a feed's older poll records deleted by one poll's record: a
#: database from before pruning sheds its history over the feeds' next polls, each
#: holding the write lock a few milliseconds more, not all at once.
PRUNE_BATCH = 200
#: A feed's polls past its newest KEEP_POLLS deleted (at most PRUNE_BATCH of them), but its
#: newest RECENT_ERRORS failed ones: in the record's transaction, with the backend's
#: placeholders (`prune_parameters`). Both by polls_by_feed and polls_failed.
PRUNE_POLLS = (
    "DELETE FROM polls WHERE id IN (SELECT id FROM polls WHERE feed_url = {0} "
    "ORDER BY started_at DESC, id DESC LIMIT {0} OFFSET {0}) "
    "AND id NOT IN (SELECT id FROM polls WHERE feed_url = {0} AND error IS NOT NULL "
    "ORDER BY started_at DESC, id DESC LIMIT {0})"
)

#: A poll's count in `poll_totals`, in its record's transaction: one row per status and
#: duration bucket (`poll_bucket`), with the backend's placeholders (status, bucket,
#: seconds). Rows of their own, not the polls': pruning the history (below) leaves them.
COUNT_POLL = (
    "INSERT INTO poll_totals (status, le, polls, seconds) VALUES ({0}, {0}, 1, {0}) "
    "ON CONFLICT (status, le) DO UPDATE SET polls = poll_totals.polls + 1, "
    "seconds = poll_totals.seconds + excluded.seconds"
)
READ_POLL_TOTALS = "SELECT status, le, polls, seconds FROM poll_totals"


def prune_parameters(url: str) -> tuple[str, int, int, str, int]:
    """PRUNE_POLLS' parameters for the feed at `url`."""
    return (url, PRUNE_BATCH, KEEP_POLLS, url, RECENT_ERRORS)


def poll_bucket(seconds: float) -> float:
    """The bucket a poll that took `seconds` is counted in: the least bound of
    POLL_SECONDS_BUCKETS it is within, else infinity."""
    for bound in POLL_SECONDS_BUCKETS:
        if seconds <= bound:
            return bound
    return math.inf


class PollTotals(NamedTuple):
    """Every poll recorded, as `Tallies` reports them."""

    polls: dict[str, int]  # by status
    within: tuple[int, ...]  # at most each bound of POLL_SECONDS_BUCKETS (cumulative)
    seconds: float  # all polls' seconds


def poll_totals(rows: Iterable[tuple[str, float, int, float]]) -> PollTotals:
    """The totals of `poll_totals`' rows (status, bucket, polls, seconds)."""
    polls: dict[str, int] = {}
    within = [0] * len(POLL_SECONDS_BUCKETS)
    spent = []
    for status, bucket, count, seconds in rows:
        polls[str(status)] = polls.get(str(status), 0) + int(count)
        for i, bound in enumerate(POLL_SECONDS_BUCKETS):
            if bucket <= bound:
                within[i] += int(count)
        spent.append(float(seconds))
    return PollTotals(polls, tuple(within), math.fsum(spent))


#: The store's entries, articles and stories: each feed's `entry_count` (added to by the
#: poll that stores its new entries; entries are never deleted) summed, and the counts of
#: distinct articles and stories `save_outcome` keeps in dedup_meta (`touched_stories`).
READ_ENTRY_TOTALS = (
    "SELECT (SELECT coalesce(sum(entry_count), 0) FROM feeds), "
    "(SELECT value FROM dedup_meta WHERE key = 'articles'), "
    "(SELECT value FROM dedup_meta WHERE key = 'stories')"
)
#: The articles or stories a recorded batch adds (`touched_stories`), with the backend's
#: placeholders (how many, 'articles' or 'stories').
ADD_PLACED = "UPDATE dedup_meta SET value = value + {0} WHERE key = {0}"


def touched_stories(outcome: Outcome, previous: Iterable[int]) -> list[int]:
    """The stories whose entries recording `outcome` changes, given `previous`, the stories
    its placed entries were in before: merged and surviving stories, the placements' old
    and new, the joined articles' and those they joined. No entry of another story changes,
    so the distinct stories and articles among these stories' entries, counted before the
    batch and after it, differ by what the store's counts do; for the articles, because an
    article's entries are in one story (`dedup.assign` keeps them so, and moves a joined
    article by its story)."""
    stories = set(previous)
    for gone, into in outcome.merged.items():
        stories.update((gone, into))
    stories.update(p.story_id for p in outcome.placements)
    for join in outcome.joined_articles:
        stories.update((join.story, join.into_story))
    return sorted(stories)
