"""The served pages as HTML (`aggregator serve`): Now, a story, search, the digest archive,
the feeds' health and errors, in the digest's look (templates/serve-*.html.j2)."""

from __future__ import annotations

import hashlib
from base64 import b64encode
from collections.abc import Mapping, Sequence
from datetime import datetime
from functools import cache
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from markupsafe import Markup

from aggregator.digest.archive import ArchivedDigest
from aggregator.digest.render import digest_views, document_language, environment
from aggregator.digest.summary import summarize
from aggregator.types import Choices, Digest, FeedStatus, Filters, StoryPage

if TYPE_CHECKING:
    from aggregator.storage import SearchResults


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
    context.setdefault("lang", "en")
    return (
        environment()
        .get_template(name)
        .render(css=Markup(page_css()), timezone=timezone, now=now, **context)
    )


def render_now(
    digest: Digest, choices: Choices, filters: Filters, *, since: str | None, now: datetime
) -> str:
    """The Now page: the window's stories by topic, as the digest shows them, each linked
    to its story page, with a form of filters."""
    topics, counts = digest_views(digest)
    return _page(
        "serve-now.html.j2",
        timezone=digest.timezone,
        now=now,
        title="Now",
        here="Now",
        lang=document_language(digest),
        digest=digest,
        topics=topics,
        counts=counts,
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
    language = page.story.articles[0].language if page.story.articles else None
    return _page(
        "serve-story.html.j2",
        timezone=timezone,
        now=now,
        title=page.story.headline,
        here="",
        lang=language or "en",
        page=page,
        summaries=summaries,
        sources=len({e.feed_name for e in page.timeline}),
    )


def render_search(
    results: SearchResults, headlines: Sequence[str], *, timezone: str, now: datetime
) -> str:
    """Search: the form, the stories found (each under its story's headline) with their
    marked snippets, and pages."""
    pages = max(1, -(-results.total // results.per_page))

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
