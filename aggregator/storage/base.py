"""The Storage protocol the rest of the code depends on, and the records it returns.

`SqliteStorage` (storage/sqlite/) implements it; a second backend implements the same
methods and passes tests/test_storage_contract.py. Times given to and returned by storage
are timezone-aware (UTC when read back); a naive datetime is refused with ValueError.
Every write is one transaction: all of it is stored, or none of it. Errors are our own
(`StorageError` and its subclasses, exceptions.py), never the database library's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import date, datetime, timedelta
from typing import Literal, NamedTuple, Protocol, Self

from aggregator.storage.fulltext import Marked
from aggregator.storage.lock import DaemonReport
from aggregator.types import (
    AlertStatus,
    DeliveryStatus,
    Entry,
    EntryData,
    EntryReader,
    Features,
    Feed,
    Known,
    Outcome,
    StoryState,
    Vocabulary,
)


class SaveResult(NamedTuple):
    """What saving one poll's entries changed."""

    new: int
    updated: int
    new_ids: list[int]
    updated_ids: list[int]


class EntryRange(NamedTuple):
    """Entries published in [published_since, published_before) and first seen (stored) in
    [seen_since, seen_before), a bound None being open: a part of what a daily digest
    reads (`Storage.entries_in`, docs/digests.md)."""

    published_since: datetime
    published_before: datetime
    seen_since: datetime | None = None
    seen_before: datetime | None = None


class FeedState(NamedTuple):
    """A feed's stored health record, as `status` shows it."""

    url: str
    name: str
    title: str | None
    last_attempt: datetime | None
    last_success: datetime | None
    last_error: str | None
    consecutive_failures: int
    next_poll: datetime | None
    disabled_reason: str | None
    redirected_url: str | None
    etag: str | None
    last_modified: str | None
    content_hash: str | None
    entry_count: int
    retry_after: datetime | None = None
    last_status: int | None = None

    @property
    def disabled(self) -> bool:
        return self.disabled_reason is not None

    @classmethod
    def never_polled(cls, url: str, name: str) -> FeedState:
        """The state of a configured feed the database has no row for (yet)."""
        return cls(url, name, None, None, None, None, 0, None, None, None, None, None, None, 0)


class FeedUpdate(NamedTuple):
    """What one poll learnt about a feed besides its entries (None: nothing to say)."""

    http_status: int | None = None
    etag: str | None = None
    last_modified: str | None = None
    content_hash: str | None = None  # of the body, to skip parsing identical bytes
    redirected_url: str | None = None  # a 301/308 target: used from then on
    next_poll: datetime | None = None
    retry_after: datetime | None = None
    disabled_reason: str | None = None
    #: The poller recording the poll: its lease of the feed ends (a lease another poller
    #: took since this one's ran out is left alone); None: whoever's lease it is.
    lease_owner: str | None = None


class Leases(NamedTuple):
    """What `lease_feeds` took, and what it left and until when."""

    granted: list[str]  # the feed URLs leased, in the order asked
    #: The feeds refused -> when to ask again: the feed's next poll (it is not due), the end
    #: of another poller's lease; None: soon (its host has `per_host` feeds in flight, or
    #: another poller is leasing it this moment).
    refused: dict[str, datetime | None]


class PollerRecord(NamedTuple):
    """What a poller (an `aggregator run` daemon) says of itself in the store, for `status`
    on any host sharing it (docs/postgres.md, Several pollers)."""

    owner: str  # who holds its leases: host:pid:tag (the feeds' lease owner)
    host: str
    pid: int
    started: datetime
    seen: datetime  # its last heartbeat
    stopped: datetime | None  # when it stopped cleanly; None: it has not (running, or dead)
    every: timedelta  # how often it records a heartbeat
    storage_error: str | None = None  # the error its writes meet, while they fail
    failing_since: datetime | None = None


class PollerState(NamedTuple):
    """A recorded poller, and how many feeds it holds leases on."""

    poller: PollerRecord
    leases: int  # the feeds leased to it whose lease had not ended at the time asked


#: The store-wide locks `Storage.hold` takes: placing a batch in articles and stories
#: (read, decide, record), making the daily digest (check, publish, record).
LockName = Literal["placing", "digest"]


class EmailDelivery(NamedTuple):
    """One digest's delivery to one recipient, as `status` shows it."""

    digest: str  # the digest's window name, e.g. 2025-02-10
    recipient: str
    status: DeliveryStatus
    attempts: int
    first_attempt: datetime
    last_attempt: datetime
    sent_at: datetime | None
    next_attempt: datetime | None  # a failed delivery's next retry; None: given up
    error: str | None
    message_id: str | None


class DigestRun(NamedTuple):
    """A day's daily digest, as recorded once made."""

    day: date
    made: datetime  # when it read its entries (its `generated_at`)


class DueAlert(NamedTuple):
    """An alert a watch decided on, for storage to record before it is sent."""

    story_id: int
    watch: str
    channel: str
    reason: str  # "new" | "grew"
    level: int  # 0: the first alert; k: the k-th renotify threshold crossed
    sources: int  # the distinct feeds carrying the story when it was decided
    payload: str  # the alert's JSON (the webhook `json` body), sent as recorded


class AlertRecord(NamedTuple):
    """One recorded alert and its delivery, as `alerts` and `status` show it."""

    id: int
    story_id: int  # the story it is about now (following merges)
    watch: str
    channel: str
    reason: str
    level: int
    sources: int
    status: AlertStatus
    attempts: int
    created_at: datetime
    last_attempt: datetime | None
    next_attempt: datetime | None  # a failed alert's next retry; None: given up
    sent_at: datetime | None
    claimed_by: int | None  # the process id of the last claim
    error: str | None
    receipt: str | None  # what the channel answered (a message id, a status)
    payload: str


class SearchHit(NamedTuple):
    """A story found by a search: its best-ranked matching entry, marked where it matched."""

    story_id: int | None  # None: the entry is not placed in a story yet
    entry: Entry
    title: tuple[Marked, ...]  # the entry's whole title
    snippet: tuple[Marked, ...]  # a part of its text (else summary) around the first hit


class SearchResults(NamedTuple):
    """One page of a search's stories, best first."""

    query: str
    page: int
    per_page: int
    total: int  # stories found, over every page (at least this many when not `exact`)
    hits: list[SearchHit]
    message: str | None = None  # why nothing was searched (a malformed or too long query)
    #: False: `total` is `fulltext.COUNT_CAP` and more stories were found (not counted).
    exact: bool = True
    #: True: the query matched over `fulltext.RANKED_MATCHES` entries, and its stories are
    #: listed newest first (by their newest matching entry) rather than ranked.
    newest: bool = False


class Tallies(NamedTuple):
    """The store's counts at one moment (what /metrics shows)."""

    entries: int
    articles: int
    stories: int
    polls: dict[str, int]  # every recorded poll, by status (PollStatus values)
    last_polls: dict[str, int]  # feeds, by the status of their last poll
    emails: dict[str, int]  # email deliveries, by status (DeliveryStatus values)
    last_digest: datetime | None  # when the last daily digest was made
    #: Polls that took at most each of POLL_SECONDS_BUCKETS seconds (cumulative), and the
    #: seconds of all polls: a histogram of fetch durations.
    poll_seconds: tuple[int, ...] = ()
    poll_seconds_sum: float = 0.0


#: The bounds of the fetch-duration histogram (`Tallies.poll_seconds`), in seconds.
POLL_SECONDS_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
#: Each feed's failed polls the served feeds page lists (`recent_errors`), newest first:
#: a poll's record keeps that many of them whatever their age (storage/totals.py).
RECENT_ERRORS = 5


class Storage(Protocol):
    """Feeds, their polls, entries, email deliveries, daily digest runs and what
    deduplication placed where. Safe to call from several threads at once.

    Unless a method says otherwise it raises `StorageError` (or a subclass:
    `CorruptDatabaseError`, `DatabasePathError`) when the store cannot be read or written,
    and a write that raises has changed nothing.
    """

    #: Whether other processes, on this machine or others, may poll this store's feeds and
    #: place its entries at the same time (a database server): pollers then lease each feed
    #: before fetching it (`lease_feeds`) and place and digest under `hold`'s locks. False
    #: for SQLite (one daemon per file, its lock file; docs/postgres.md, Several pollers).
    shared: bool

    # --- lifecycle -----------------------------------------------------------------------

    def close(self) -> None:
        """Release the store; a transaction in flight in another thread finishes first."""
        ...

    def __enter__(self) -> Self: ...

    def __exit__(self, *exc: object) -> None:
        """Close."""
        ...

    def daemon_report(self) -> DaemonReport | None:
        """What the daemon running on this store reports (None: no daemon runs)."""
        ...

    def hold(self, name: LockName) -> AbstractContextManager[None]:
        """Hold the store-wide lock `name` for the block, waiting for whoever holds it, in
        this process or another (a process that dies lets it go); a thread holding it
        does not hold up other threads' reads and writes. A store that is not `shared`
        takes none: its one daemon decides alone (and the placer's `expected_next_id`
        check keeps a `poll` beside it right)."""
        ...

    # --- feeds and polls -----------------------------------------------------------------

    def lease_feeds(
        self,
        hosts: Mapping[str, str | None],
        *,
        owner: str,
        now: datetime,
        until: datetime,
        due_only: bool = True,
        per_host: int | None = None,
        polled_before: datetime | None = None,
    ) -> Leases:
        """Take the feeds of `hosts` (feed URL -> the host it is fetched from; None: a local
        source) for poller `owner` until `until`, in one transaction, so that no other
        poller sharing the store fetches them meanwhile.

        Refused: a feed leased by another owner until after `now` (this owner's own lease is
        renewed), with `due_only` one whose next poll is after `now` (but for one last
        attempted before `polled_before`, or never: a poll pulled forward for a daily
        digest, which the first poller to lease it makes), one whose host already
        has `per_host` feeds leased at `now` (by any owner, those just granted counted;
        None: no limit), an unknown URL, and one another poller is leasing this moment (its
        row is skipped, not waited for). A poll's record (`save_poll`,
        `record_not_modified`, `record_failure`) ends the feed's lease.
        """
        ...

    def release_leases(self, urls: Iterable[str], *, owner: str) -> None:
        """End `owner`'s leases of the feeds `urls` (another owner's are left alone): a
        poll that stops before recording them gives them back as it exits, instead of
        keeping them from every poller until they end."""
        ...

    def sync_feeds(self, feeds: Iterable[Feed], now: datetime) -> None:
        """Make sure every configured feed has a row, with its current name (a new row is
        added at `now`; an existing one keeps its state). Rows of feeds not listed stay."""
        ...

    def feed_states(self) -> list[FeedState]:
        """Every stored feed's state, configured or not, ordered by name (its entry count
        kept as its polls store entries: no entry is read)."""
        ...

    def pass_pending(self, urls: Iterable[str], now: datetime) -> bool:
        """Whether the store's poll pass is still going on at `now`: any poller holds a
        lease that has not ended, or one of the feeds `urls` is enabled and due (its next
        poll at or before `now`) or was never polled. The daemon places what the polls
        stored once this says no (docs/daemon.md)."""
        ...

    def feed_state(self, url: str) -> FeedState | None:
        """The feed's state; None if it has no row."""
        ...

    def feeds_added_between(self, since: datetime, until: datetime) -> list[str]:
        """Names of the feeds whose first entries were stored in [since, until), in the
        order they came (then by name): a feed is new when it brings its first entries,
        not when a row is made for it."""
        ...

    def feed_urls_added_between(self, since: datetime, until: datetime) -> frozenset[str]:
        """The URLs of the feeds whose first entries were stored in [since, until) (as
        `feeds_added_between`, by URL: two feeds may share a name)."""
        ...

    def recent_published(self, url: str, limit: int = 10) -> list[datetime]:
        """Publication times of the feed's `limit` most recent entries, newest first."""
        ...

    def enable_feed(self, url: str) -> bool:
        """Clear a feed's disabled state, failures, next poll and Retry-After so that it is
        polled again.

        Returns:
            Whether the feed was disabled.
        """
        ...

    def set_redirected_url(self, url: str, redirected_url: str | None) -> None:
        """Record (or with None, forget) the permanent new address of a feed."""
        ...

    def rename_feed(self, old_url: str, new_url: str) -> None:
        """Give a feed a new URL (after a permanent redirect), keeping its entries and poll
        history, and forgetting its redirected URL. The same URL: nothing happens.

        Raises:
            StorageError: the new URL already belongs to another stored feed.
        """
        ...

    # A poll's record (`save_poll`, `record_not_modified`, `record_failure`) is counted in
    # `tallies` for good, and prunes the feed's history in its transaction: past the
    # feed's newest `totals.KEEP_POLLS` polls and its newest RECENT_ERRORS failed ones, at
    # most `totals.PRUNE_BATCH` older records are deleted (what `tallies` and
    # `recent_errors` read stays the same).

    def save_poll(
        self,
        feed: Feed,
        entries: Sequence[EntryData],
        *,
        now: datetime,
        seconds: float,
        title: str | None = None,
        error: str | None = None,
        update: FeedUpdate | None = None,
        seen: Callable[[], datetime] | None = None,
    ) -> SaveResult:
        """Store one successful poll's entries and its record, in one transaction.

        An entry is identified by its feed and guid (a guid listed twice: the first wins).
        A new guid is inserted (first seen and updated at `now`, or with `seen`, at the time
        it gives once the write lock is held: see `write_barrier`); a known guid whose
        content changed is updated in place, keeping its id and first-seen time (updated at
        that time); an unchanged one is left alone. An entry without a date is dated by its
        first-seen time, and keeps it when edited. The feed's failures and error are
        cleared, its last attempt and success set to `now` and its title to `title` if
        given; with `update`, its validators (etag, last_modified, content_hash) are
        replaced by the update's and its last status, next poll, Retry-After and redirected
        URL (if given) recorded.

        Returns:
            How many entries were new and updated, and their ids in the order listed.

        Raises:
            ValueError: a naive datetime (nothing of this poll was stored).
            StorageError: the write failed; nothing of this poll was stored.
        """
        ...

    def record_not_modified(
        self, feed: Feed, *, now: datetime, seconds: float, update: FeedUpdate
    ) -> None:
        """Record a poll that found nothing new (304, or the same bytes): no entry is
        touched; failures cleared, last attempt and success `now`, validators kept where
        `update` has none, and `update`'s status, next poll and Retry-After recorded."""
        ...

    def record_failure(
        self,
        feed: Feed,
        error: str,
        *,
        now: datetime,
        seconds: float,
        update: FeedUpdate | None = None,
    ) -> None:
        """Record a failed poll: the error, the attempt, one more consecutive failure (the
        last success stays); `update`'s status, next poll and Retry-After, and its
        `disabled_reason`, which disables the feed (a poll recorded as 'gone')."""
        ...

    # --- pollers -------------------------------------------------------------------------

    def record_poller(self, poller: PollerRecord, *, forget_before: datetime) -> None:
        """Store what a poller says of itself (its row, by `owner`, made or replaced whole)
        and forget the other pollers last seen before `forget_before` (stopped or silent
        since), in one transaction. A heartbeat changes nothing a page shows: on a shared
        store it does not wait for other writes, nor does it move `change_stamp`."""
        ...

    def pollers(self, now: datetime) -> list[PollerState]:
        """Every recorded poller, by start (then owner), each with the number of feeds leased
        to it whose lease ends after `now`."""
        ...

    # --- entries -------------------------------------------------------------------------

    def entries_between(self, since: datetime, until: datetime) -> list[Entry]:
        """Entries published in [since, until), oldest first (then by id), each with its
        feed's name."""
        ...

    def entries_in(self, ranges: Sequence[EntryRange]) -> list[Entry]:
        """The entries in any of `ranges` (each once), read in one snapshot, oldest first
        (then by id), each with its feed's name: a daily digest's (docs/digests.md). A range
        bounded below by first-seen time is read by it: it costs the rows stored since, not
        every entry published in it."""
        ...

    def articles_stored(
        self, placed: Sequence[tuple[int, int]], *, stored_before: datetime, dated_before: datetime
    ) -> set[int]:
        """Of the articles `placed` (story id, article id each: an article's entries are in
        one story), those with an entry first stored before `stored_before` and published
        before `dated_before`: a daily digest's late arrival in one is a copy, stored again,
        of what an earlier daily digest could show (a feed that changed an item's guid and
        link, or its link's tracking parameters), not news (docs/digests.md)."""
        ...

    def entries_by_ids(self, ids: Sequence[int]) -> list[Entry]:
        """The entries with these ids (those that exist), oldest first (then by id)."""
        ...

    def entry_stamps(self, ids: Sequence[int]) -> dict[int, str]:
        """A fingerprint of each of these entries (those that exist) as deduplication reads
        it: its content hash, feed, feed's name and dates. An edit or a feed's rename changes
        it; being placed does not. Far cheaper to read than the entries."""
        ...

    def entry_reader(self) -> EntryReader | None:
        """A reader of `stamped_entries` that another process (a feature worker) can be
        handed, opening its own connection; None if this store offers none."""
        ...

    def stamped_entries(self, ids: Sequence[int]) -> tuple[list[Entry], dict[int, str]]:
        """`entries_by_ids` and `entry_stamps` of these ids, read in one snapshot: the
        stamps are those of the entries returned."""
        ...

    def first_published(self) -> datetime | None:
        """When the earliest stored entry was published (None: no entry yet)."""
        ...

    def entry_count(self) -> int:
        """How many entries are stored."""
        ...

    # --- search and reading ---------------------------------------------------------------

    def search(self, query: str, page: int = 1, per_page: int = 20) -> SearchResults:
        """Full-text search over entries' titles, summaries and texts, by story.

        Words match in any case and, in Chinese, in either script (a Simplified query finds
        Traditional text, and the reverse); plain words must all occur; FTS5's syntax
        (phrases in double quotes, AND/OR/NOT, parentheses, `prefix*`) is understood.
        Stories are ranked by their best entry's bm25 (a title's words count more) times
        1 + ln(n), n their matching entries, then by id; each shows its best entry; an entry
        not placed in a story yet is a result of its own. A query matching
        more than `fulltext.RANKED_MATCHES` entries (a word in most texts, where ranking
        says little and costs a pass over every match) lists its stories newest first
        instead (by their newest matching entry), and counts them up to
        `fulltext.COUNT_CAP` (`newest`, `exact`). Every entry stored before the call is
        searched (the index catches up first: `index_pending`).

        Returns:
            The `page`-th page (from 1) of `per_page` stories and how many there are in all.
            A query that cannot be run (malformed, empty or over `fulltext.MAX_QUERY`
            characters) finds nothing and says why in `message`; it never raises.
        """
        ...

    def index_pending(self, limit: int | None = None) -> int:
        """Bring the search index up to date with the entries stored or edited since it last
        was (at most `limit` of them; None: all), a batch per transaction, and say how many
        were indexed. Storing entries does not index them (it would cost a poll ~1 ms an
        entry): `search` calls this first, and `serve` in the background."""
        ...

    def story_entries(self, story_id: int) -> list[Entry]:
        """The entries filed under a story (its current id: see `story_id`), oldest first
        (then by id); none for an unknown id."""
        ...

    def recent_errors(self, per_feed: int = RECENT_ERRORS) -> dict[str, list[tuple[datetime, str]]]:
        """Each feed's `per_feed` most recent failed polls (feed URL -> (when, error)),
        newest first; feeds that never failed are left out. (Past RECENT_ERRORS, the older
        failures a feed's polls since have pruned are not there.)"""
        ...

    def change_stamp(self) -> str:
        """A value that differs after anything was written to the store (through this
        handle or another) since it was last read, and stays the same while nothing is: what
        a cache of what the store holds is keyed by. Cheap (no table is read)."""
        ...

    def tallies(self) -> Tallies:
        """Counts of entries, articles, stories, polls, feeds by last poll and email
        deliveries, and the last daily digest's time, in one consistent state. Every poll
        ever recorded is counted, those pruned since too. Cheap: the counts are kept as
        polls and batches are recorded (storage/totals.py), not counted at each read."""
        ...

    # --- email deliveries and daily digest runs ------------------------------------------

    def claim_email(
        self, digest: str, recipient: str, *, now: datetime, force: bool, stale_after: timedelta
    ) -> int | None:
        """Atomically take the right to send `digest` to `recipient` now (status 'sending').

        Refused when it was already sent (unless `force`) or when another process claimed
        it less than `stale_after` ago (a claim older than that is taken to have crashed).

        Returns:
            None if refused; else the attempts made before (the caller then sends, and
            calls `record_email`).
        """
        ...

    def record_email(
        self,
        digest: str,
        recipient: str,
        *,
        now: datetime,
        ok: bool,
        attempts: int,
        error: str | None = None,
        message_id: str | None = None,
        next_attempt: datetime | None = None,
    ) -> None:
        """Record the outcome of a claimed delivery (see `claim_email`): 'sent' (sent at
        `now`, error cleared) or 'failed' (with `error` and `next_attempt`, None: given up);
        `attempts` are added to those made before."""
        ...

    def email_deliveries(self, *, limit: int = 100) -> list[EmailDelivery]:
        """The `limit` most recent deliveries, newest attempt first (then digest, newest
        first, then recipient)."""
        ...

    def email_retries_due(self, now: datetime) -> list[EmailDelivery]:
        """Failed deliveries whose next retry time is at or before `now`, by digest, then
        recipient."""
        ...

    def digest_made(self, day: date) -> datetime | None:
        """When the daily digest of `day` was made, or None if it has not been."""
        ...

    def digest_made_before(self, day: date) -> DigestRun | None:
        """The daily digest of the latest day before `day` that has one (the day, when it
        was made), or None if no earlier day's was made."""
        ...

    def record_digest(self, day: date, *, now: datetime) -> None:
        """Record that the daily digest of `day` was made at `now` (again, if it was)."""
        ...

    def write_barrier(self, clock: Callable[[], datetime]) -> datetime:
        """`clock` read while holding the store's write lock (writing nothing): every
        write that took the lock before has committed, and every write after takes it
        later. With entries first seen at a time read under the lock (`save_poll`'s
        `seen`), each entry first seen before the time returned is committed when it
        returns: a daily digest reading its entries then, taking those first seen before
        it, misses none the next one leaves to it (docs/digests.md).

        It waits for the lock as a write does (SQLite: up to its busy timeout; PostgreSQL's
        advisory lock: as long as the writer holding it takes), and is not counted as a
        change (`change_stamp`).

        Raises:
            StorageError: the lock could not be taken (SQLite: another writer held it past
                the busy timeout), or the store failed.
        """
        ...

    # --- watches' alerts -----------------------------------------------------------------

    def stories_changed(self, after: int | None = None) -> tuple[list[int], int]:
        """The stories (their current ids) of the entries placed in dedup batches numbered
        after `after` (None: after the batches alerts were evaluated on, see
        `record_alerts`), in id order, and the latest batch number."""
        ...

    def entries_of_stories(self, story_ids: Sequence[int]) -> list[Entry]:
        """The entries filed under these stories (current ids), oldest first (then by id),
        each with its feed's name."""
        ...

    def alerted(self, story_ids: Sequence[int]) -> dict[tuple[int, str, str], tuple[int, int]]:
        """What was recorded for these stories (current ids, so a story's alerts include
        those of the stories merged into it): (story, watch, channel) -> (the source count
        of its first alert, the highest level recorded)."""
        ...

    def record_alerts(self, due: Sequence[DueAlert], *, now: datetime, seq: int) -> list[int]:
        """Record these alerts as due at `now`, in one transaction, leaving out those
        recorded already for the story (or one merged into it), watch, channel and level;
        and that alerts were evaluated up to dedup batch `seq` (never moved back).

        Returns:
            The ids of the rows added.
        """
        ...

    def claim_alert(
        self,
        alert_id: int,
        *,
        now: datetime,
        owner: int,
        stale_after: timedelta,
        dead: Iterable[int] = (),
    ) -> int | None:
        """Atomically take the right to deliver an alert now (status 'sending', claimed by
        process `owner`).

        Refused when it was sent, or when another claim is in progress: made less than
        `stale_after` ago by a process not among `dead` (an older claim, or one of a dead
        process, was left by a crash).

        Returns:
            None if refused; else the attempts made before.
        """
        ...

    def record_alert_attempt(
        self,
        alert_id: int,
        *,
        now: datetime,
        ok: bool,
        error: str | None = None,
        receipt: str | None = None,
        next_attempt: datetime | None = None,
    ) -> None:
        """Record one attempt of a claimed alert: 'sent' at `now` (with the receipt, error
        cleared) or 'failed' (with `error` and `next_attempt`, None: given up)."""
        ...

    def alerts_due(self, now: datetime) -> list[AlertRecord]:
        """Alerts to deliver: 'due' ones, 'failed' ones whose next attempt is at or before
        `now`, and 'sending' ones (the caller tells a live claim from a crashed one), by id."""
        ...

    def alerts_since(
        self, since: datetime | None = None, *, limit: int = 1000
    ) -> list[AlertRecord]:
        """The alerts recorded at or after `since` (None: all), newest first, at most `limit`."""
        ...

    def alerts_sent(self) -> dict[str, int]:
        """How many alerts each watch has had sent, by watch name."""
        ...

    # --- deduplication: features, placements, stories, word counts -----------------------
    #
    # Caches (SqliteStorage's, not part of the contract): `stories_near` hands back, for a
    # story whose stored row is unchanged since its last call, the very `StoryState` it
    # returned then; `known_copies` the same `Known` while an entry's batch number and
    # placement stay, and the same `Features` while its batch number stays;
    # `vocabulary` the counts it read, kept current by `save_outcome`. They only save
    # decoding: a backend returning new objects decides alike (docs/storage.md, Caches).

    def unassigned_ids(self, among: Iterable[int] | None = None) -> list[int]:
        """Ids of entries not yet placed in an article (new ones, or stored before
        deduplication existed), in no promised order; only those of `among` if given."""
        ...

    def placing_order(self, ids: Iterable[int]) -> list[int]:
        """These entries' ids in the order a daemon places them: by publication time, then
        feed URL and guid (by code point), which do not depend on when or by whom the
        entries were stored; unknown ids are left out."""
        ...

    def story_id(self, story_id: int) -> int | None:
        """The story a story id stands for now: itself, the story it was merged into, or
        None when no entry is filed under it (an unknown id)."""
        ...

    def article_count(self, story_id: int, excluding: Iterable[int] = ()) -> int:
        """How many articles have entries in the story, not counting the entries whose ids
        are in `excluding` (a batch being placed again); 0 for an unknown id."""
        ...

    def previous_placements(
        self, ids: Sequence[int]
    ) -> dict[int, tuple[int | None, dict[str, float] | None]]:
        """For the entries among `ids` placed before: the story their words counted in, and
        that word vector (None: none was stored)."""
        ...

    def dedup_features(self, after: int = 0) -> tuple[list[Features], int]:
        """Placed entries' copy features recorded in batches numbered after `after`, by
        entry id, read in one consistent state.

        Returns:
            The features (without terms), and the batch number they are complete up to.
        """
        ...

    def kept_key_index(self, settings: str) -> tuple[int, bytes | bytearray] | None:
        """The kept copy of a lookup-key index made under `settings` (`save_key_index`):
        the batch number it is complete up to, and its bytes; None if none is kept, or it
        was made under other settings."""
        ...

    def save_key_index(self, seq: int, settings: str, data: bytes | bytearray) -> None:
        """Keep a copy of a lookup-key index complete up to batch `seq` (derived data: a
        process that places loads it instead of computing every stored entry's keys),
        unless the copy kept under the same settings is as recent. Any size: it is held in
        parts of `encoding.KEPT_INDEX_PART` bytes (a value holds ~1 GB at most)."""
        ...

    def known_copies(self, ids: Iterable[int]) -> list[Known]:
        """The placed entries among `ids`, with their features, article and story, by entry
        id; entries not placed are left out."""
        ...

    def stories_near(
        self, terms: Iterable[str], since: datetime, until: datetime, ids: Iterable[int] = ()
    ) -> list[StoryState]:
        """Stories active in [since, until] (last published at or after `since`, first at or
        before `until`) indexed under one of `terms`, and those in `ids`; by id."""
        ...

    def vocabulary(self, terms: Iterable[str]) -> tuple[Vocabulary, int]:
        """Document frequencies of `terms` (those with a count), the number of documents,
        and the next free article/story id, read in one consistent state."""
        ...

    def save_outcome(
        self,
        features: Sequence[Features],
        outcome: Outcome,
        *,
        expected_next_id: int,
    ) -> int | None:
        """Record where a batch of entries went, in one transaction: their articles and
        stories, features and vectors; the stories (each indexed under
        `outcome.story_terms`), merged stories removed and aliased to the one they went to;
        word counts and documents changed by the deltas (never below 0); the next free id.

        Returns:
            The batch's number (see `dedup_features`); None, recording nothing, when
            another writer allocated article/story ids since `expected_next_id` was read
            (the batch must be decided again).
        """
        ...
