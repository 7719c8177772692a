"""Grouping stored entries into Articles (copies) and Stories (one event) by their assigned ids."""

from __future__ import annotations

from collections.abc import Sequence

from aggregator.dedup.text import headline
from aggregator.types import Article, Entry, Story


def primary_copy(copies: Sequence[Entry]) -> Entry:
    """The copy an article is shown as: the earliest dated one; among equals, the longest text."""
    return min(copies, key=lambda e: (not e.dated, e.published, -len(e.text), e.id))


def make_article(copies: Sequence[Entry]) -> Article:
    """The article of `copies` (entries placed in one article): its primary copy first,
    then the others by date; of copies one feed gave with one link, only the first. A feed
    that gives an item a new guid on each poll, or an item first read without its guid
    from a document cut short, stores the item again: a reader sees it once."""
    primary = primary_copy(copies)
    ordered = (
        primary,
        *sorted((c for c in copies if c is not primary), key=lambda e: (e.published, e.id)),
    )
    shown: dict[tuple[str, str] | int, Entry] = {}
    for copy in ordered:
        shown.setdefault((copy.feed_url, copy.link) if copy.link else copy.id, copy)
    if len(shown) < len(ordered):
        ordered = tuple(shown.values())
    return Article(
        title=primary.title,
        link=primary.link,
        published=primary.published,
        language=primary.language,
        summary=primary.summary,
        copies=ordered,
    )


def make_story(articles: Sequence[Article], story_id: int | None = None) -> Story:
    """The story of the articles, headed by its earliest article's title without the name
    of its feed or site appended to it (a story lists many publishers): "Nvidia shares
    plunge 17% - Reuters" from the Reuters feed is headed "Nvidia shares plunge 17%"."""
    ordered = tuple(sorted(articles, key=lambda a: (a.published, a.copies[0].id)))
    first = ordered[0]
    shown = first.copies[0] if first.copies else None
    title = first.title
    if shown is not None:
        title = headline(title, shown.feed_name, shown.link, guess=False) or title
    return Story(headline=title, articles=ordered, id=story_id)


def group_stories(entries: Sequence[Entry]) -> list[Story]:
    """Entries -> Articles (same article_id) -> Stories (same story_id).

    An entry with no article_id is an article of its own; an article with no story_id
    is a story of its own.
    """
    by_article: dict[object, list[Entry]] = {}
    for entry in entries:
        key = ("a", entry.article_id) if entry.article_id is not None else ("e", entry.id)
        by_article.setdefault(key, []).append(entry)
    by_story: dict[tuple[str, int], list[Article]] = {}
    for copies in by_article.values():
        article = make_article(copies)
        story_id = next((c.story_id for c in copies if c.story_id is not None), None)
        key = ("s", story_id) if story_id is not None else ("a", copies[0].id)
        by_story.setdefault(key, []).append(article)
    return [
        make_story(articles, key[1] if key[0] == "s" else None)
        for key, articles in by_story.items()
    ]
