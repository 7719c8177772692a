"""Reading for the served pages: a window's stories (as a digest groups them) and their
filters, one story with its timeline, search by story with headlines, the store's counts."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import NamedTuple

from aggregator.parts import Part, Shared
from aggregator.publisher import Publisher
from aggregator.storage import SearchHit, SearchResults, Tallies
from aggregator.types import Choices, Digest, Feed, Filters, Story, StoryPage, TopicGroup


class Found(NamedTuple):
    """A search hit, with the headline of its story."""

    hit: SearchHit
    headline: str


class Unreadable(NamedTuple):
    """Why the database cannot be read: `said` to whoever reaches /healthz (it needs no
    token), `detail` for the log."""

    said: str
    detail: str


class SearchPage(NamedTuple):
    """A page of search results, each with its story's headline."""

    results: SearchResults
    found: tuple[Found, ...]


def filter_digest(digest: Digest, filters: Filters, feeds: Sequence[Feed]) -> Digest:
    """The digest with only the stories that pass every filter (a section left empty goes).

    A story passes the feed filter when one of its copies came from that feed, the tag
    filter when one came from a feed with that tag, and the language filter when one of
    its articles is in that language (its primary subtag: `zh` takes `zh-TW`).
    """
    tagged = {feed.name for feed in feeds if filters.tag in feed.tags}
    language = (filters.language or "").casefold()

    def passes(story: Story) -> bool:
        names = {c.feed_name for a in story.articles for c in a.copies}
        if filters.feed is not None and filters.feed not in names:
            return False
        if filters.tag is not None and not names & tagged:
            return False
        return not language or any(
            (a.language or "").casefold() in (language,)
            or (a.language or "").casefold().startswith(language + "-")
            for a in story.articles
        )

    topics = []
    for group in digest.topics:
        if filters.topic is not None and group.name != filters.topic:
            continue
        stories = tuple(s for s in group.stories if passes(s))
        if stories:
            also = tuple(s for s in group.also if passes(s))
            topics.append(TopicGroup(group.name, stories, also))
    return Digest(
        digest.since,
        digest.until,
        digest.generated_at,
        digest.timezone,
        tuple(topics),
        digest.new_feeds,
    )


def choices(digest: Digest, feeds: Sequence[Feed]) -> Choices:
    """The topics, feeds, tags and languages a digest's stories have, to filter by."""
    names = {
        c.feed_name for t in digest.topics for s in t.stories for a in s.articles for c in a.copies
    }
    return Choices(
        topics=tuple(t.name for t in digest.topics),
        feeds=tuple(sorted(names)),
        tags=tuple(sorted({tag for f in feeds if f.name in names for tag in f.tags})),
        languages=tuple(
            sorted(
                {
                    a.language
                    for t in digest.topics
                    for s in t.stories
                    for a in s.articles
                    if a.language
                }
            )
        ),
    )


class Browse(Part):
    """What the served pages read: stories, one story, search, counts."""

    def __init__(self, shared: Shared, publisher: Publisher) -> None:
        super().__init__(shared)
        self._publisher = publisher

    def stories(self, since: datetime, until: datetime) -> Digest:
        """The stories of [since, until) under their topics, as a digest groups them
        (without the new feeds: no page shows them)."""
        return self._publisher.digest_between(since, until, new_feeds=False, incremental=True)

    def story(self, story_id: int) -> StoryPage | None:
        """A story by its id (merged: the story it went into); None for an unknown id."""
        from aggregator.dedup.group import group_stories
        from aggregator.dedup.topics import group_by_topic

        current = self.storage.story_id(story_id)
        if current is None:
            return None
        entries = self.storage.story_entries(current)
        stories = group_stories(entries)
        if len(stories) != 1:  # its entries moved on between the two reads
            return None
        (story,) = stories
        digest = self.config.digest
        groups = group_by_topic(stories, self.config.topics, max_sections=digest.max_sections)
        timeline = tuple(sorted(entries, key=lambda e: (e.first_seen, e.published, e.id)))
        return StoryPage(story, groups[0].name if groups else "", timeline)

    def search(self, query: str, page: int = 1, per_page: int = 20) -> SearchPage:
        """A page of stories matching `query` (see Storage.search), with their headlines."""
        from aggregator.dedup.group import group_stories

        results = self.storage.search(query, page, per_page)
        found = []
        for hit in results.hits:
            entries = self.storage.story_entries(hit.story_id) if hit.story_id else []
            stories = group_stories(entries or [hit.entry])
            found.append(Found(hit, stories[0].headline if stories else hit.entry.title))
        return SearchPage(results, tuple(found))

    def unreadable(self) -> Unreadable | None:
        """Why the database cannot be read now (None: it can): it was removed, or a read
        fails. An open connection would go on reading a removed SQLite file, so it is looked at.

        What is said names no file, URL or server's words (a SQLite file's path, a
        PostgreSQL database's host, port, role and name): /healthz needs no token. Only the
        detail, for the log, has them.
        """
        from aggregator.exceptions import StorageError

        path = self.config.storage_path
        if self.config.storage_url is None and not path.is_file():
            return Unreadable("the database file is gone", f"the database {path} is gone")
        try:
            self.storage.tallies()
        except StorageError as e:
            kind = "SQLite" if self.config.storage_url is None else "PostgreSQL"
            return Unreadable(
                f"the {kind} database cannot be read (this process's log says why)", str(e)
            )
        return None

    def tallies(self) -> Tallies:
        """The store's counts (see Storage.tallies)."""
        return self.storage.tallies()
