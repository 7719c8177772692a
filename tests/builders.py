"""Builders of the domain objects tests make by hand, with what a test leaves out filled in."""

from __future__ import annotations

from datetime import datetime

from aggregator.types import Entry


def stored_entry(
    entry_id: int,
    title: str,
    *,
    published: datetime,
    feed_url: str = "https://feed.example/rss",
    feed_name: str = "feed",
    guid: str | None = None,
    link: str | None = None,
    summary: str = "",
    text: str = "",
    language: str | None = None,
    first_seen: datetime | None = None,
) -> Entry:
    """An entry as storage returns it: dated `published`, first seen (and last updated)
    then unless `first_seen` says otherwise, with no author, not yet placed."""
    seen = first_seen or published
    return Entry(
        id=entry_id,
        feed_url=feed_url,
        feed_name=feed_name,
        guid=guid or f"guid-{entry_id}",
        title=title,
        link=link,
        published=published,
        dated=True,
        first_seen=seen,
        updated_at=seen,
        author=None,
        summary=summary,
        text=text,
        language=language,
    )
