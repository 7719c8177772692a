"""Frozen domain data passed between the pipeline's stages."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Literal, NamedTuple, NotRequired, TypedDict


class SourceKind(StrEnum):
    """Where a feed's entries come from."""

    HTTP = "http"
    FILE = "file"


class Format(StrEnum):
    """Digest output formats (the CLI's --format values)."""

    HTML = "html"
    TEXT = "text"
    JSON = "json"


class PollOutcome(StrEnum):
    """What one poll of a feed came to, as far as scheduling cares (`polling.decide`)."""

    OK = "ok"  # 200: parsed and stored
    NOT_MODIFIED = "not_modified"  # 304, or a body identical to the last one
    ERROR = "error"  # network, timeout, 404, 5xx, not a feed, over a limit ...
    THROTTLED = "throttled"  # 429 or 503: the server asked us to slow down
    GONE = "gone"  # 410: disable the feed


class PollStatus(StrEnum):
    """How one poll of a feed ended, as `PollResult` reports it and the polls table stores it."""

    OK = "ok"  # fetched and stored
    NOT_MODIFIED = "not_modified"  # 304, or the same bytes as last time: nothing parsed
    ERROR = "error"  # recorded; the feed backs off
    GONE = "gone"  # 410: the feed is now disabled
    SKIPPED = "skipped"  # disabled, or its server asked us to wait


class DeliveryStatus(StrEnum):
    """A digest's delivery to one recipient, as the email_deliveries table stores it."""

    SENDING = "sending"  # claimed by a process that is sending it
    SENT = "sent"
    FAILED = "failed"  # waits for its next attempt, if any


class AlertStatus(StrEnum):
    """An alert on one channel, as the alerts table stores it (docs/watches.md)."""

    DUE = "due"  # recorded, not yet tried: delivered by this or the next process
    SENDING = "sending"  # claimed by a process that is delivering it
    SENT = "sent"
    FAILED = "failed"  # waits for its next attempt; none (next_attempt None): given up


class SendStatus(StrEnum):
    """What one attempt to email a digest to one recipient came to."""

    SENT = "sent"
    ALREADY_SENT = "already sent"  # delivered before: not sent again without --force
    FAILED = "failed"


@dataclass(frozen=True)
class Feed:
    """A configured source: an http(s) feed URL, or a local file or folder."""

    url: str
    name: str
    interval: timedelta | None = None
    timezone: str | None = None
    language: str | None = None
    path: Path | None = None  # a local source's absolute path (resolved against feeds.toml)
    tags: tuple[str, ...] = ()  # folders, e.g. from an OPML import

    @property
    def kind(self) -> SourceKind:
        lowered = self.url.lower()
        if lowered.startswith(("http://", "https://")):
            return SourceKind.HTTP
        return SourceKind.FILE


@dataclass(frozen=True)
class Topic:
    """A configured digest section and the keywords that file stories under it."""

    name: str
    keywords: tuple[str, ...]


@dataclass(frozen=True)
class DedupSettings:
    """The [dedup] table: how copies and stories are recognised (see docs/deduplication.md)."""

    #: Query parameters dropped from links besides the built-in ones (utm_*, spm, from, ...).
    tracking_params: tuple[str, ...] = ()
    #: Estimated Jaccard similarity of two bodies' shingles at or above which they are copies.
    copy_threshold: float = 0.5
    #: Similarity of two openings at or above which a shorter text is a trimmed copy ...
    lead_threshold: float = 0.7
    #: ... when that much of it lies inside the longer one.
    containment_threshold: float = 0.6
    #: Cosine similarity of an article to a story at or above which it joins the story.
    story_threshold: float = 0.3
    #: The same when the article or the story is short (a headline, or a title and a
    #: summary of a few sentences): few words make cosines smaller (docs/stories.md).
    headline_threshold: float = 0.2
    #: An article joins a story only if the story's span, widened by this on each side,
    #: holds the article's date.
    story_window: timedelta = timedelta(days=3)
    #: The same when the article or the story is short.
    headline_window: timedelta = timedelta(days=1)
    #: Processes computing entries' features beside the main one (None: a core each but
    #: one, at most 4; 0: none). Only large batches use them.
    workers: int | None = None


@dataclass(frozen=True)
class EntryData:
    """One item as a source delivered it, before it is stored.

    `guid` identifies the item within its feed: the feed's id/guid when it has one,
    else its link, else a hash of title and text (the rule lives in sources/entries.py).
    """

    guid: str
    title: str
    link: str | None
    published: datetime | None
    updated: datetime | None = None
    author: str | None = None
    summary: str = ""
    text: str = ""
    language: str | None = None


class ParsedFeed(NamedTuple):
    """What a parser made of a source's bytes."""

    title: str | None
    entries: list[EntryData]
    warnings: list[str]
    ttl_minutes: int | None = None  # RSS <ttl>: how long the feed may be cached


@dataclass(frozen=True)
class Entry:
    """A stored entry: one item of one feed, as the digest needs it.

    `published` is always set: the source's date, or the time it was first seen
    when the source gave none (`dated` tells which).
    """

    id: int
    feed_url: str
    feed_name: str
    guid: str
    title: str
    link: str | None
    published: datetime
    dated: bool
    first_seen: datetime
    updated_at: datetime
    author: str | None
    summary: str
    text: str
    language: str | None
    article_id: int | None = None
    story_id: int | None = None


@dataclass(frozen=True)
class Article:
    """Entries that are copies of one text; the first copy is the one displayed."""

    title: str
    link: str | None
    published: datetime
    language: str | None
    summary: str
    copies: tuple[Entry, ...]


@dataclass(frozen=True)
class Story:
    """Articles about one event. `id` is its stored story id, stable for its life (followed
    through merges: docs/stories.md); None for entries not placed yet."""

    headline: str
    articles: tuple[Article, ...]
    id: int | None = None


@dataclass(frozen=True)
class TopicGroup:
    """A digest section: the stories filed under one topic.

    `also` holds stories filed under another section that match this one too: the HTML
    and text digests show a one-line reference to each (the JSON digest lists a story
    once, where it is filed).
    """

    name: str
    stories: tuple[Story, ...]
    also: tuple[Story, ...] = ()


@dataclass(frozen=True)
class Digest:
    """Everything a rendered digest shows, for one window of time."""

    since: datetime
    until: datetime
    generated_at: datetime
    timezone: str
    topics: tuple[TopicGroup, ...] = field(default_factory=tuple)
    # Names of the feeds added to the configuration during the window.
    new_feeds: tuple[str, ...] = ()
    #: A daily digest's: when the previous daily digest was made. Its late arrivals, the
    #: entries dated before `since` that no daily digest showed, are in it too (None: it
    #: has none by rule: a window asked for, the first daily digest).
    late_since: datetime | None = None
    #: A daily digest's: where the days between the previous daily digest's and its own
    #: start, whose digests were not made (the daemon was down at their digest times):
    #: their entries are late arrivals that did not come late (None: `since`, none).
    missed_since: datetime | None = None

    def late(self, entry: Entry) -> bool:
        """Whether `entry`, one of the digest's, is one of a daily digest's late arrivals:
        dated before its window (its other entries are published in it), shown because
        no earlier daily digest showed it (the JSON's `late`)."""
        return self.late_since is not None and entry.published < self.since

    def arrived_late(self, entry: Entry) -> bool:
        """Whether `entry` is a late arrival dated on a day an earlier daily digest covered
        and stored after that was made (HTML and text say "arrived late"), not one of a
        day between, whose digest was not made."""
        missed = self.missed_since if self.missed_since is not None else self.since
        return self.late(entry) and entry.published < missed

    @property
    def entry_count(self) -> int:
        return sum(len(a.copies) for t in self.topics for s in t.stories for a in s.articles)

    @property
    def late_count(self) -> int:
        """How many of its entries are late arrivals (`late`): a daily digest's."""
        return sum(
            self.late(c)
            for t in self.topics
            for s in t.stories
            for a in s.articles
            for c in a.copies
        )

    @property
    def story_count(self) -> int:
        return sum(len(t.stories) for t in self.topics)


# --- deduplication: what dedup decides over and storage keeps ------------------------------


@dataclass(frozen=True)
class Features:
    """What copy detection and story clustering know about one entry (signatures as bytes)."""

    entry_id: int
    feed_url: str
    published: datetime
    url: str | None
    guid: str
    title_key: str | None
    size: int
    signature: bytes | None
    lead_size: int
    lead: bytes | None
    terms: Mapping[str, int] = field(default_factory=dict)
    #: False when `published` is only when the entry was first seen (the source gave no date).
    dated: bool = True

    def __reduce__(self) -> tuple[Callable[..., Features], tuple[object, ...]]:
        """Pickled as its values in field order: a feature worker's batch of 2,000 is read
        back in 60-70% of the default pickle's time, which rebuilds a dictionary of field
        names for each (read by a thread of the placing process while it places)."""
        values = self.__dict__
        return _features, tuple([values[name] for name in _FEATURE_FIELDS])


def _features(*values: object) -> Features:
    """A `Features` unpickled (`Features.__reduce__`): set as the default pickle sets it."""
    made = object.__new__(Features)
    made.__dict__.update(zip(_FEATURE_FIELDS, values, strict=True))
    return made


_FEATURE_FIELDS = tuple(Features.__dataclass_fields__)


@dataclass(frozen=True)
class Known:
    """A stored entry that shares a lookup key with an entry being assigned."""

    features: Features
    article_id: int
    story_id: int


@dataclass(frozen=True)
class StoryState:
    """A story as clustering sees it: its time span, size and centroid."""

    id: int
    first: datetime
    last: datetime
    size: int
    centroid: Mapping[str, float]
    #: Every article of it is short (a headline, or a title and a summary of a few
    #: sentences): it is joined and merged as a headline is (`dedup.stories._evidence`).
    short: bool = False


@dataclass(frozen=True)
class Pending:
    """An entry to assign; for one edited in place, where its words were counted before."""

    features: Features
    previous_story: int | None = None
    previous_vector: Mapping[str, float] | None = None
    #: Its lookup keys, when the caller has computed them already.
    keys: tuple[int, ...] = ()


@dataclass(frozen=True)
class Vocabulary:
    """Document frequencies of words over all articles seen, and their number."""

    df: Mapping[str, int]
    docs: int


@dataclass(frozen=True)
class Placement:
    """Where one entry went. `vector` is set when it started an article."""

    entry_id: int
    article_id: int
    story_id: int
    keys: tuple[int, ...]
    vector: Mapping[str, float] | None


class ArticleJoin(NamedTuple):
    """An article joined into another: its stored entries, in `story` once the batch's
    story merges are applied, take the article `into` and its story `into_story`."""

    article: int
    story: int
    into: int
    into_story: int


@dataclass(frozen=True)
class Outcome:
    """Everything `assign` decided, for storage to record."""

    placements: list[Placement]
    stories: list[StoryState]
    df_delta: dict[str, int]
    docs_delta: int
    next_id: int
    #: Stories merged into another: absorbed id -> surviving id.
    merged: dict[int, int] = field(default_factory=dict)
    #: The `INDEX_TERMS` heaviest words of each story in `stories` (those storage indexes
    #: it under), as `assign` ranked them.
    story_terms: dict[int, list[str]] = field(default_factory=dict)
    #: Articles joined into another by an entry copying both (`dedup.assign._Articles`).
    joined_articles: list[ArticleJoin] = field(default_factory=list)


class PollResult(NamedTuple):
    """The outcome of polling one feed.

    `status` says how it ended (see `PollStatus`); for "skipped", `error` says why.
    """

    feed_url: str
    feed_name: str
    status: PollStatus
    new: int
    updated: int
    error: str | None  # the error, or the warning of a successful poll
    seconds: float
    http_status: int | None = None
    next_poll: datetime | None = None  # when the feed wants polling again (None: disabled)
    retry_after: datetime | None = None  # its server asked us not to come back before then
    disabled_reason: str | None = None  # set when the feed is disabled


# --- alerts: the webhook `json` body, a contract (README, "Watches") -----------------------


class AlertSource(TypedDict):
    """One feed's entry in an alerted story."""

    feed: str  # the feed's name
    title: str
    link: str | None
    published: str  # ISO-8601; the first-seen time when the entry is undated


class AlertStory(TypedDict):
    """The story an alert is about. `id` is stable for the story's life."""

    id: str
    headline: str
    topic: str
    first_seen: str  # ISO-8601
    sources: list[AlertSource]
    #: The link of the article the headline is the title of (`dedup.group.lead_article`),
    #: which need not be the oldest source's; absent from alerts recorded before it was.
    link: NotRequired[str | None]


class AlertPayload(TypedDict):
    """What every channel is given: the webhook `json` format's body, as is."""

    watch: str
    reason: Literal["new", "grew"]
    story: AlertStory


# --- what the served pages show (browse.py reads them, digest/pages.py renders them) ----


class FeedStatus(NamedTuple):
    """One feed's health, as `aggregator status` shows it (JSON: these names)."""

    name: str
    url: str
    redirected_url: str | None
    last_success: datetime | None
    last_attempt: datetime | None
    last_error: str | None
    consecutive_failures: int
    next_poll: datetime | None
    disabled: bool
    disabled_reason: str | None
    entry_count: int
    failing: bool  # enabled, and failed [poll] failure_threshold times in a row


class Filters(NamedTuple):
    """What the Now page is narrowed to (None: everything)."""

    topic: str | None = None
    feed: str | None = None  # a feed's name
    tag: str | None = None  # a tag of the configured feeds
    language: str | None = None


class Choices(NamedTuple):
    """The values each filter can take in a digest, sorted."""

    topics: tuple[str, ...]
    feeds: tuple[str, ...]
    tags: tuple[str, ...]
    languages: tuple[str, ...]


class StoryPage(NamedTuple):
    """One story: its articles and copies, where it is filed, and who carried it when."""

    story: Story
    topic: str
    timeline: tuple[Entry, ...]  # every copy, by the time it was first seen


#: Reads stored entries by id, with their stamps (`Storage.stamped_entries`), in another
#: process: what `Storage.entry_reader` gives the feature workers.
EntryReader = Callable[[Sequence[int]], tuple[list[Entry], dict[int, str]]]
