"""The served pages as HTML (`aggregator serve`): Now, a story, search, the digest archive,
the feeds' health and errors, in the digest's look (templates/serve-*.html.j2)."""

from __future__ import annotations

import hashlib
from base64 import b64encode
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from functools import cache
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import urlencode

from markupsafe import Markup

from aggregator.digest.archive import ArchivedDigest
from aggregator.digest.render import (
    PAGE_LANGUAGE,
    content_language,
    digest_counts,
    digest_views,
    environment,
)
from aggregator.digest.summary import summarize
from aggregator.sources.language import base_language
from aggregator.types import Choices, Digest, FeedStatus, Filters, StoryPage, TopicGroup

if TYPE_CHECKING:
    from aggregator.storage import SearchResults

#: Stories Now shows of each section (its newest), with a link to the whole section ...
NOW_SECTION_STORIES = 10
#: ... which shows this many a page.
TOPIC_PAGE_STORIES = 100


@cache
def page_css() -> str:
    """The pages' style sheet (the digest's, then the pages' own), inlined in each page."""
    env = environment()
    return env.get_template("digest.css.j2").render() + env.get_template("serve.css.j2").render()


@cache
def style_hash() -> str:
    """The Content-Security-Policy source that allows the pages' one style element."""
    digest = hashlib.sha256(page_css().encode("utf-8")).digest()
    return f"'sha256-{b64encode(digest).decode('ascii')}'"


def _page(name: str, *, timezone: str, now: datetime, **context: Any) -> str:
    context.setdefault("lang", PAGE_LANGUAGE)
    return (
        environment()
        .get_template(name)
        .render(css=Markup(page_css()), timezone=timezone, now=now, **context)
    )


class AlsoLink(NamedTuple):
    """A section's reference to a story filed under another: `href` is its place in the
    page, or its story page when the page does not show it."""

    headline: str
    href: str
    topic: str


class SectionLinks(NamedTuple):
    """What a section shows of its stories, and where the rest are."""

    total: int
    more: str | None  # the section alone (from Now), or None: all are shown
    previous: str | None  # the section's newer stories (its own page), or None
    next: str | None  # its older stories, or None


def render_now(
    digest: Digest,
    choices: Choices,
    filters: Filters,
    *,
    since: str | None,
    now: datetime,
    page: int = 1,
) -> str:
    """The Now page: the window's stories by topic, as the digest groups them, each linked
    to its story page, with a form of filters. Each section shows its newest
    NOW_SECTION_STORIES and links to the section alone (?topic=), which shows
    TOPIC_PAGE_STORIES a page (`page`)."""
    query = {
        "since": since,
        "feed": filters.feed,
        "tag": filters.tag,
        "language": filters.language,
    }

    def href(**changes: str | int | None) -> str:
        return "/?" + urlencode({k: v for k, v in {**query, **changes}.items() if v})

    shown_groups = []
    links = []
    for group in digest.topics:
        total = len(group.stories)
        if filters.topic is None:
            cut = group.stories[:NOW_SECTION_STORIES]
            more = href(topic=group.name) if total > len(cut) else None
            links.append(SectionLinks(total, more, None, None))
        else:
            start = (page - 1) * TOPIC_PAGE_STORIES
            cut = group.stories[start : start + TOPIC_PAGE_STORIES]
            newer = href(topic=group.name, page=page - 1 if page > 2 else None)
            older = href(topic=group.name, page=page + 1)
            links.append(
                SectionLinks(
                    total,
                    None,
                    newer if page > 1 else None,
                    older if start + TOPIC_PAGE_STORIES < total else None,
                )
            )
        shown_groups.append(TopicGroup(group.name, cut, group.also))
    topics, _ = digest_views(replace(digest, topics=tuple(shown_groups)))
    placed = {id(view.story): view.anchor for topic in topics for view in topic.stories}
    filed = {id(story): group.name for group in digest.topics for story in group.stories}
    also = [
        [
            AlsoLink(
                s.headline,
                f"#{placed[id(s)]}" if id(s) in placed else f"/stories/{s.id}",
                filed[id(s)],
            )
            for s in group.also
            if id(s) in filed and (id(s) in placed or s.id is not None)
        ]
        for group in digest.topics
    ]
    return _page(
        "serve-now.html.j2",
        timezone=digest.timezone,
        now=now,
        title="Now",
        here="Now",
        content_lang=content_language(digest),
        digest=digest,
        topics=list(zip(topics, links, also, strict=True)),
        counts=digest_counts(digest),
        since=since,
        filters=[
            ("topic", "Topic", choices.topics, filters.topic),
            ("feed", "Feed", choices.feeds, filters.feed),
            ("tag", "Tag", choices.tags, filters.tag),
            ("language", "Language", choices.languages, filters.language),
        ],
    )


def render_story(page: StoryPage, *, timezone: str, now: datetime) -> str:
    """A story: every article with its copies, and the timeline of who carried it when."""
    summaries = [
        summarize(a.copies[0].text if a.copies else "") or summarize(a.summary)
        for a in page.story.articles
    ]
    language = page.story.articles[0].language if page.story.articles else None  # its lead's
    return _page(
        "serve-story.html.j2",
        timezone=timezone,
        now=now,
        title=page.story.headline,
        here="",
        language=language,
        content_lang=base_language(language) if language else None,
        page=page,
        summaries=summaries,
        copies=sum(len(a.copies) for a in page.story.articles),  # as listed (`make_article`)
        sources=len({e.feed_name for e in page.timeline}),
    )


def render_search(
    results: SearchResults, headlines: Sequence[str], *, timezone: str, now: datetime
) -> str:
    """Search: the form, the stories found (each under its story's headline) with their
    marked snippets, and pages."""
    pages = max(1, -(-results.total // results.per_page))
    if not results.exact and len(results.hits) == results.per_page:
        pages = max(pages, results.page + 1)  # more were found than counted

    def link(number: int) -> str | None:
        if not 1 <= number <= pages or number == results.page:
            return None
        return "/search?" + urlencode({"q": results.query, "page": number})

    return _page(
        "serve-search.html.j2",
        timezone=timezone,
        now=now,
        title=f"Search: {results.query}" if results.query else "Search",
        here="Search",
        query=results.query,
        results=results,
        found=list(zip(results.hits, headlines, strict=True)),
        pages=pages,
        previous=link(results.page - 1),
        next=link(results.page + 1),
    )


def render_digests(items: Sequence[ArchivedDigest], *, timezone: str, now: datetime) -> str:
    """The archive: every digest in the output folder, newest first."""
    return _page(
        "serve-digests.html.j2",
        timezone=timezone,
        now=now,
        title="Digests",
        here="Digests",
        items=list(items),
    )


def render_feeds(
    feeds: Sequence[FeedStatus],
    errors: Mapping[str, Sequence[tuple[datetime, str]]],
    *,
    storage_error: str | None,
    timezone: str,
    now: datetime,
) -> str:
    """Each configured feed's health, as `aggregator status` shows it, with its recent
    errors (feed URL -> (when, error), newest first)."""
    return _page(
        "serve-feeds.html.j2",
        timezone=timezone,
        now=now,
        title="Feeds",
        here="Feeds",
        feeds=list(feeds),
        errors=errors,
        failing=sum(1 for f in feeds if f.failing),
        storage_error=storage_error,
    )


def render_error(status: int, title: str, message: str, *, timezone: str, now: datetime) -> str:
    """An error page (not found, unavailable)."""
    return _page(
        "serve-error.html.j2",
        timezone=timezone,
        now=now,
        title=title,
        here="",
        status=status,
        message=message,
    )
