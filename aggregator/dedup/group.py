"""Grouping stored entries into Articles (copies) and Stories (one event) by their assigned ids."""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache

from aggregator.dedup.terms import words
from aggregator.dedup.text import headline, normalise
from aggregator.types import Article, Entry, Story

#: A story of this many articles or more is headed by its most representative title
#: (`lead_article`); a smaller one by its earliest (two titles are as like each other).
REPRESENTATIVE_ARTICLES = 3
#: How much a title's length counts against the words it shares (`lead_article`): at 0 the
#: longest titles won (the wire desks' "CORRECTED-…", "GLOBAL MARKETS-…"); at 0.5
#: (cosines), the shortest ("Titanfall Review"); docs/stories.md has the measurements.
LENGTH_DAMPING = 0.25
#: A title ending so was cut short by its feed: a story's headline only when all were.
_CUT = ("...", "\u2026", "[...]", "[\u2026]")
#: Articles (here: titles) whose normalised texts and words are kept between calls (here
#: and in `topics`): a served Now page is made again after every poll from mostly the same
#: articles (~3,300 a day at 100,000 entries: docs/serve.md, with the memory it takes).
MEMO_ARTICLES = 10_000


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


def title_words(article: Article) -> frozenset[str]:
    """The meaningful words of an article's title (`terms.words`), without a publisher's
    name appended to it, guessed too (`text.headline`)."""
    feed, link = _source(article)
    return _title_words(article.title, feed, link, article.language)


# Keyed on the strings, not the Article: an Article holds its copies' whole texts, which
# a cache of Articles would keep alive (an alerted story's thousands of them).
@lru_cache(maxsize=MEMO_ARTICLES)
def _title_words(title: str, feed: str, link: str | None, language: str | None) -> frozenset[str]:
    return frozenset(words(normalise(headline(title, feed, link, guess=True)), language))


def _source(article: Article) -> tuple[str, str | None]:
    """The feed name and link of the copy an article is shown as."""
    shown = article.copies[0] if article.copies else None
    return (shown.feed_name, shown.link) if shown else ("", None)


def _cut(article: Article) -> bool:
    """Whether the article's title was cut short by its feed ("…", "[...]"), a publisher's
    name appended after the cut or not ("… - Reuters")."""
    feed, link = _source(article)
    return headline(article.title, feed, link, guess=True).rstrip().endswith(_CUT)


def lead_article(articles: Sequence[Article]) -> Article:
    """The article a story is shown as (its headline, link and summary), of its articles
    earliest first.

    Of a story of `REPRESENTATIVE_ARTICLES` or more, the one whose title shares the most
    words with the other titles: each shared word counts once per other title holding it,
    divided by both titles' word counts to the power `LENGTH_DAMPING`. The earliest report is
    often a teaser, a round-up or a misfit ("Entertainment briefs" heading a game's launch);
    the title most others agree with names the event. A title its feed cut short ("…") only
    when every title is, and an article without a link only when every whole title's is
    (the headline links to the lead); among equal scores, the earliest.
    """
    if len(articles) < REPRESENTATIVE_ARTICLES:
        return articles[0]
    found = [title_words(a) for a in articles]
    weight = [len(w) ** -LENGTH_DAMPING if w else 0.0 for w in found]
    share: dict[str, float] = {}
    for w, k in zip(found, weight, strict=True):
        for word in w:
            share[word] = share.get(word, 0.0) + k

    def score(i: int) -> float:
        # fsum is exact: the order a set gives its words cannot change a choice.
        return weight[i] * math.fsum(share[word] - weight[i] for word in found[i])

    worded = [i for i, w in enumerate(found) if w]
    whole = [i for i in worded if not _cut(articles[i])]
    linked = [i for i in whole if articles[i].link]
    # `max` keeps the first of equal scores: the earliest.
    best = max(linked or whole or worded or [0], key=score)
    return articles[best]


def make_story(articles: Sequence[Article], story_id: int | None = None) -> Story:
    """The story of the articles: its lead article first (`lead_article`), then the others
    by date; headed by the lead's title without the name of its feed or site appended to it
    (a story lists many publishers): "Nvidia shares plunge 17% - Reuters" from the Reuters
    feed is headed "Nvidia shares plunge 17%"."""
    by_date = sorted(articles, key=lambda a: (a.published, a.copies[0].id))
    first = lead_article(by_date)
    ordered = (first, *(a for a in by_date if a is not first))
    shown = first.copies[0] if first.copies else None
    title = first.title
    if shown is not None:
        title = headline(title, shown.feed_name, shown.link, guess=False) or title
    return Story(headline=title, articles=ordered, id=story_id)


def article_copies(entries: Sequence[Entry]) -> list[list[Entry]]:
    """Entries as the copies of each article (same article_id); an entry with no article_id
    (not placed yet) is an article of its own."""
    by_article: dict[object, list[Entry]] = {}
    for entry in entries:
        key = ("a", entry.article_id) if entry.article_id is not None else ("e", entry.id)
        by_article.setdefault(key, []).append(entry)
    return list(by_article.values())


def group_stories(entries: Sequence[Entry]) -> list[Story]:
    """Entries -> Articles (same article_id) -> Stories (same story_id).

    An entry with no article_id is an article of its own; an article with no story_id
    is a story of its own.
    """
    by_story: dict[tuple[str, int], list[Article]] = {}
    for copies in article_copies(entries):
        article = make_article(copies)
        story_id = next((c.story_id for c in copies if c.story_id is not None), None)
        key = ("s", story_id) if story_id is not None else ("a", copies[0].id)
        by_story.setdefault(key, []).append(article)
    return [
        make_story(articles, key[1] if key[0] == "s" else None)
        for key, articles in by_story.items()
    ]
