"""Filing stories under the configured topics.

Rule: keywords are matched on normalised text (NFKC, Simplified script, case-folded),
so one keyword matches both scripts. A story's score for a topic is, summed over its
articles, 3 x the number of the topic's keywords in the article's title plus the number
of them in its text (each keyword counted once per title and once per text: a topic is
recognised by how many of its words a story uses, not by how often one long article
repeats one of them). The highest score wins; ties go to the topic listed first in
feeds.toml. A story that matches no topic goes under "Other".
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from aggregator.dedup.text import normalise
from aggregator.types import Story, Topic, TopicGroup

OTHER = "Other"
TITLE_WEIGHT = 3


def topic_scores(story: Story, topics: Sequence[Topic]) -> list[int]:
    """The story's score for each topic, in the topics' order."""
    titles = [normalise(a.title) for a in story.articles]
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


def best_topic(story: Story, topics: Sequence[Topic]) -> str:
    """The name of the topic the story matches best, or OTHER."""
    scores = topic_scores(story, topics)
    if not scores or max(scores) == 0:
        return OTHER
    return topics[scores.index(max(scores))].name


def group_by_topic(stories: Sequence[Story], topics: Sequence[Topic]) -> tuple[TopicGroup, ...]:
    """Sections in feeds.toml order, then Other; stories newest first; empty sections dropped."""
    filed: dict[str, list[Story]] = {t.name: [] for t in topics}
    filed[OTHER] = []
    for story in stories:
        filed[best_topic(story, topics)].append(story)
    return tuple(
        TopicGroup(name, tuple(sorted(group, key=_newest, reverse=True)))
        for name, group in filed.items()
        if group
    )


def _newest(story: Story) -> datetime:
    return max(a.published for a in story.articles)
