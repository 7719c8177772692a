"""Filing stories under the configured topics.

Rule: keywords are matched on normalised text (NFKC, Simplified script, case-folded),
so one keyword matches both scripts. A story's score for a topic is, summed over its
articles, 3 x the number of the topic's keywords in the article's title plus the number
of them in its text (each keyword counted once per title and once per text: a topic is
recognised by how many of its words a story uses, not by how often one long article
repeats one of them). The highest score wins; ties go to the topic listed first in
feeds.toml.

A story that matches no topic and has at least `NAMED_MIN_ARTICLES` articles goes under a
section named by its own top keywords (`story_keywords`: the words most of its titles
share, e.g. "Bengaluru · Developers · conference"); a lone article matching no topic goes
under "Other". Sections: the configured topics in feeds.toml order, then the named
ones, then "Other".
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from datetime import datetime

from aggregator.dedup.terms import idf, words
from aggregator.dedup.text import headline, normalise
from aggregator.types import Article, Story, Topic, TopicGroup

OTHER = "Other"
TITLE_WEIGHT = 3
#: A story matching no topic gets a section of its own from this many articles.
NAMED_MIN_ARTICLES = 2
#: Keywords in a section's name.
NAME_KEYWORDS = 3
#: Characters of a body read for keywords (as for story terms: the lead names the event).
LEAD_CHARS = 160


def topic_scores(story: Story, topics: Sequence[Topic]) -> list[int]:
    """The story's score for each topic, in the topics' order."""
    # Only the feed's or site's name goes: a keyword must not be lost to a guess ("… - Japan").
    titles = [_title(a, guess=False) for a in story.articles]
    bodies = [normalise(a.copies[0].text or a.summary) for a in story.articles]
    scores = []
    for topic in topics:
        score = 0
        for keyword in topic.keywords:
            key = normalise(keyword)
            score += TITLE_WEIGHT * sum(key in t for t in titles)
            score += sum(key in b for b in bodies)
        scores.append(score)
    return scores


def _title(article: Article, *, guess: bool) -> str:
    """The article's normalised title without its publisher's name (`text.headline`)."""
    shown = article.copies[0] if article.copies else None
    feed, link = (shown.feed_name, shown.link) if shown else ("", None)
    return normalise(headline(article.title, feed, link, guess=guess))


def best_topic(story: Story, topics: Sequence[Topic]) -> str:
    """The name of the topic the story matches best, or OTHER."""
    scores = topic_scores(story, topics)
    if not scores or max(scores) == 0:
        return OTHER
    return topics[scores.index(max(scores))].name


def story_keywords(story: Story, n: int = NAME_KEYWORDS) -> list[str]:
    """The words that name a story: those in most of its articles' titles and leads.

    A word scores `TITLE_WEIGHT` per title and 1 per lead it is in; only words in at least
    two titles, or in one title and another article's lead, count; ties go to the rarer
    word (background IDF), then alphabetically. Latin words are shown as a title spells
    them ("DeepSeek", not "deepseek"); Chinese ones in Simplified script.
    """
    in_titles: Counter[str] = Counter()
    in_leads: Counter[str] = Counter()
    for article in story.articles:
        # A guessed publisher's name must not name a section ("Reuters · …").
        in_titles.update(set(words(_title(article, guess=True))))
        body = normalise(article.copies[0].text or article.summary)[:LEAD_CHARS]
        in_leads.update(set(words(body)))
    scored = [
        (TITLE_WEIGHT * count + in_leads[word], idf(word, 0, 0), word)
        for word, count in in_titles.items()
        if count + in_leads[word] >= 2
    ]
    scored.sort(key=lambda s: (-s[0], -s[1], s[2]))
    return [_spelling(word, story) for _, _, word in scored[:n]]


def _spelling(word: str, story: Story) -> str:
    """The word as the first title containing it spells it."""
    # A Latin word is shown whole, as the title writes it ("rate" -> "Rates").
    pattern = re.compile(
        r"(?<![0-9a-z\u00c0-\u024f])" + re.escape(word) + r"[a-z\u00c0-\u024f']*", re.IGNORECASE
    )
    for article in story.articles:
        found = pattern.search(article.title)
        if found:
            return found.group()
    return word


def section_name(story: Story, topics: Sequence[Topic]) -> str:
    """The section a story goes under (see the module docstring)."""
    topic = best_topic(story, topics)
    if topic != OTHER or len(story.articles) < NAMED_MIN_ARTICLES:
        return topic
    keywords = story_keywords(story)
    configured = {t.name for t in topics}
    name = " · ".join(keywords)
    return name if keywords and name not in configured else OTHER


def group_by_topic(stories: Sequence[Story], topics: Sequence[Topic]) -> tuple[TopicGroup, ...]:
    """Sections: the topics in feeds.toml order, then named ones (newest first), then Other.

    Stories newest first within a section; empty sections are dropped.
    """
    filed: dict[str, list[Story]] = {t.name: [] for t in topics}
    named: dict[str, list[Story]] = {}
    other: list[Story] = []
    for story in stories:
        name = section_name(story, topics)
        if name in filed:
            filed[name].append(story)
        elif name == OTHER:
            other.append(story)
        else:
            named.setdefault(name, []).append(story)
    ordered = [
        *filed.items(),
        *sorted(sorted(named.items()), key=lambda kv: max(map(_newest, kv[1])), reverse=True),
        (OTHER, other),
    ]
    return tuple(
        TopicGroup(name, tuple(sorted(group, key=_newest, reverse=True)))
        for name, group in ordered
        if group
    )


def _newest(story: Story) -> datetime:
    return max(a.published for a in story.articles)
