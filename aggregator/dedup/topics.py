"""Filing stories under the configured topics, and grouping the rest into a few sections.

Topics. Keywords are matched on normalised text (NFKC, Simplified script, case-folded), so
one keyword matches both scripts; a keyword of Latin letters or digits matches whole words
only ("AI" is not in "said"; a plural "s" may follow). A story's evidence for a topic is
what its headlines are about, weighed by how specific each keyword is:

- each article counts once per keyword (copies are one article): `TITLE_KEYWORD_WEIGHT` when the
  keyword is in one of its titles, up to twice that at the start of the title (the
  headline's subject: "巴黎AI峰会开幕，…，DeepSeek成焦点" is about the summit), falling
  linearly to `TITLE_KEYWORD_WEIGHT` at its end; 1 when it is only in the text; a keyword found
  only inside a longer keyword of the same topic ("AI峰会" in "巴黎AI峰会") is not counted
  again;
- each keyword's evidence is multiplied by its specificity among the stories being filed,
  an inverse document frequency ``ln((N + 1) / (df + 1)) + 1`` (N stories, df of them
  mentioning the keyword): a name that many unrelated stories mention ("DeepSeek" in a
  model launch, a market report and a summit) is weak evidence, a keyword few mention is
  strong.

The topic with the most evidence wins; ties go to the topic listed first in feeds.toml. A
story is listed once, under that topic; another topic whose keywords are in its titles and
whose evidence is at least `ALSO_SHARE` of the winner's lists it as "also in" (the HTML and
text digests show a one-line reference there, not a second copy).

Sections. Stories matching no topic are grouped into at most `MAX_SECTIONS` sections (the
``[digest] max_sections`` key) and "Other". Each story is a TF-IDF vector of the words of
its titles (twice) and leads, sublinear, over the words at least two of these stories use.
The group whose stories are furthest from its centroid is split in two along its principal
direction and refined as two spherical k-means clusters, until there are `max_sections`
groups; a split whose halves' centroids are `SAME_SUBJECT` alike is undone (one subject).
The groups of at least `NAMED_MIN_ARTICLES` articles become sections; each story then joins
the section whose centroid it is most similar to (at least `JOIN_SIMILARITY`: single
articles too), `REFINE_ROUNDS` times over, and the rest goes under "Other". A story sharing
no word with the others is a group of its own.

A section is named by its distinctive words (`section_keywords`): words of its titles and
leads scored by how many of its articles use them (`TITLE_KEYWORD_WEIGHT` per title, 1 per lead;
an article of a story of n articles counts 1/sqrt(n), so one big story does not name a
section of many) times ``ln((p_in + SMOOTHING) / (p_out + SMOOTHING))``, p_in and p_out
the shares of the section's and the other sections' stories using the word (frequent
inside, rare outside); only words in at least two of its articles, one of them in a
title, and more common inside than outside count; ties go to the rarer word (background
IDF), then alphabetically. Words are shown as most of the section's titles spell them:
Latin words whole and in their case ("DeepSeek", "Rates"), Chinese words in the script the
titles use ("颱風" in Traditional titles). docs/topics.md has the details and measurements.

Order: the configured topics in feeds.toml order, then the sections (most articles first),
then "Other"; stories newest first (a digest puts them in `most_covered_first`'s order).
Everything is a function of the set of stories: the input order changes nothing.

The served Now page, made again after every poll, keeps its last clustering (`grouping`)
and files what changed into those sections (`regroup`: the topics decided as above, over
the whole window) until `regrouping_due` says to cluster again (docs/topics.md).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from functools import cache, cached_property, lru_cache
from itertools import chain, repeat
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from aggregator.dedup.group import MEMO_ARTICLES, title_words
from aggregator.dedup.terms import idf, idf_many, words
from aggregator.dedup.text import CASED_LETTERS, HAN, cased_edges, headline, normalise
from aggregator.types import Article, Story, Topic, TopicGroup

OTHER = "Other"
#: A keyword in a title weighs this much (in the text: 1), up to twice at a title's start.
TITLE_KEYWORD_WEIGHT = 3
#: Extra weight of a keyword at the very start of a title, in units of `TITLE_KEYWORD_WEIGHT`.
SUBJECT_BONUS = 1.0
#: Another matching topic lists a story as "also in" from this share of the winner's evidence.
ALSO_SHARE = 0.5
#: Sections besides the configured topics and "Other" (``[digest] max_sections``).
MAX_SECTIONS = 12
#: A section needs this many articles.
NAMED_MIN_ARTICLES = 2
#: Keywords in a section's name.
NAME_KEYWORDS = 3
#: Added to the shares of stories using a word inside and outside a section, whose ratio
#: (logarithm) says how distinctive the word is.
SMOOTHING = 0.05
#: Characters of a body read for section words (as for story terms: the lead names the event).
LEAD_CHARS = 160
#: A group is not split in two halves whose centroids are this similar (cosine).
SAME_SUBJECT = 0.5
#: A story joins the nearest section from this cosine similarity with its centroid.
JOIN_SIMILARITY = 0.05
#: Rounds of every story joining its nearest section (k-means over the sections' centroids).
REFINE_ROUNDS = 3
#: Power iterations for a group's principal direction, at most (they stop once it no longer
#: turns: `_SETTLED`), and k-means rounds after a split. 30 rounds left the direction
#: unsettled on uci-news-dev's 6,290 headlines, so that where it ended depended on where it
#: started: one title's words less moved the sections' purity from 0.819 to 0.672; settled,
#: both gave 0.851 (docs/topics.md).
_POWER_ROUNDS = 1000
_SETTLED = 1e-12
_KMEANS_ROUNDS = 8


FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]


# --- topics --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Filing:
    """Where a story goes: its topic's index (None: no topic matched) and other topics'."""

    topic: int | None
    also: tuple[int, ...] = ()


@cache
def _pattern(keyword: str) -> re.Pattern[str]:
    """The normalised keyword as a regular expression: whole words at Latin edges, and at
    Greek and Cyrillic ones as `text.cased_edges` says."""
    key = normalise(keyword)
    latin = "0-9a-z\u00c0-\u024f"
    starts, ends = cased_edges(keyword)
    before = rf"(?<![{latin}])" if re.match(rf"[{latin}]", key) else ""
    after = rf"(?:e?s)?(?![{latin}])" if re.search(rf"[{latin}]$", key) else ""
    if starts:
        before = rf"(?<![{latin}{CASED_LETTERS}])"
    if ends:
        after = rf"(?![{latin}{CASED_LETTERS}])"
    return re.compile(before + re.escape(key) + after)


def _spans(text: str, keywords: Sequence[str]) -> list[list[tuple[int, int]]]:
    """Each keyword's match spans in the text."""
    return [[m.span() for m in _pattern(k).finditer(text)] for k in keywords]


def _counted(spans: list[list[tuple[int, int]]]) -> list[int | None]:
    """Per keyword, the start of its first match not inside a longer keyword's match."""
    found = [(s, e, n) for n, matches in enumerate(spans) for s, e in matches]
    starts: list[int | None] = []
    for matches in spans:
        start = None
        for s, e in matches:
            inside = any(s2 <= s and e <= e2 and (e2 - s2) > (e - s) for s2, e2, _ in found)
            if not inside:
                start = s
                break
        starts.append(start)
    return starts


class _Text(NamedTuple):
    """An article as keywords are looked for in it: its normalised titles and text."""

    titles: tuple[str, ...]
    body: str

    @staticmethod
    @lru_cache(maxsize=MEMO_ARTICLES)
    def of(article: Article) -> _Text:
        # Each copy's title (a copy may be retitled), the feed's or site's name dropped.
        titles = dict.fromkeys(_title_of(c.title, c.feed_name, c.link) for c in article.copies)
        text = article.copies[0].text if article.copies else ""
        return _Text(
            tuple(titles) or (normalise(article.title),), normalise(text or article.summary)
        )


def _title_of(title: str, feed: str, link: str | None, *, guess: bool = False) -> str:
    # Without a guess only the feed's or site's name goes: a keyword must not be lost to a
    # guess ("… - Japan").
    return normalise(headline(title, feed, link, guess=guess))


@lru_cache(maxsize=8 * MEMO_ARTICLES)  # per article and topic
def _evidence(text: _Text, topic: Topic) -> tuple[float, ...]:
    """What an article says for each of the topic's keywords (see the module docstring)."""
    evidence = [0.0] * len(topic.keywords)
    for title in text.titles:
        for n, start in enumerate(_counted(_spans(title, topic.keywords))):
            if start is not None:
                subject = 1.0 - start / max(len(title), 1)
                weight = TITLE_KEYWORD_WEIGHT * (1.0 + SUBJECT_BONUS * subject)
                evidence[n] = max(evidence[n], weight)
    for n, start in enumerate(_counted(_spans(text.body, topic.keywords))):
        if start is not None:
            evidence[n] = max(evidence[n], 1.0)
    return tuple(evidence)


def topic_scores(
    story: Story, topics: Sequence[Topic], stories: Sequence[Story] = ()
) -> list[float]:
    """The story's evidence for each topic, in the topics' order.

    Args:
        story: The story to file.
        topics: The configured topics.
        stories: The stories being filed together (the story among them), whose mentions of
            each keyword weigh it; empty: the story alone (every keyword weighs the same).
    """
    own = [_Text.of(a) for a in story.articles]
    # The story alone: its texts are normalised once, not again for the weights.
    texts = [[_Text.of(a) for a in s.articles] for s in stories] if stories else [own]
    return _scores(own, topics, _specificity(texts, topics))[0]


def _specificity(texts: Sequence[Sequence[_Text]], topics: Sequence[Topic]) -> list[list[float]]:
    """Per topic and keyword, ``ln((N + 1) / (df + 1)) + 1`` over N stories' texts."""
    keywords = _keywords(topics)
    return _weights([_found(story, keywords) for story in texts], topics)


def _keywords(topics: Sequence[Topic]) -> tuple[str, ...]:
    return tuple(k for topic in topics for k in topic.keywords)


def _found(story: Sequence[_Text], keywords: tuple[str, ...]) -> tuple[bool, ...]:
    """Whether each keyword is in one of the story's articles."""
    found = [False] * len(keywords)
    for article in story:
        found = [a or b for a, b in zip(found, _mentions(article, keywords), strict=True)]
    return tuple(found)


def _weights(found: Sequence[tuple[bool, ...]], topics: Sequence[Topic]) -> list[list[float]]:
    """`_specificity` of the stories whose keywords are `found`."""
    df = [0] * sum(len(topic.keywords) for topic in topics)
    for story in found:
        df = [n + f for n, f in zip(df, story, strict=True)]
    out = []
    at = 0
    for topic in topics:
        row = [
            math.log((len(found) + 1) / (n + 1)) + 1.0 for n in df[at : at + len(topic.keywords)]
        ]
        at += len(topic.keywords)
        out.append(row)
    return out


@lru_cache(maxsize=MEMO_ARTICLES)
def _mentions(text: _Text, keywords: tuple[str, ...]) -> tuple[bool, ...]:
    """Whether each keyword is in one of the article's titles or its body (a keyword's
    pattern never spans two of them, so this is as searching them joined)."""
    parts = (*text.titles, text.body)
    return tuple(any(_pattern(k).search(part) for part in parts) for k in keywords)


def _scores(
    story: Sequence[_Text], topics: Sequence[Topic], weights: list[list[float]]
) -> tuple[list[float], list[bool]]:
    """A story's evidence per topic, and whether a keyword of it is in a title."""
    scores, titled = [], []
    for topic, weight in zip(topics, weights, strict=True):
        total, in_title = 0.0, False
        for article in story:
            for w, e in zip(weight, _evidence(article, topic), strict=True):
                total += w * e
                in_title = in_title or e >= TITLE_KEYWORD_WEIGHT
        scores.append(total)
        titled.append(in_title)
    return scores, titled


def file_stories(stories: Sequence[Story], topics: Sequence[Topic]) -> list[Filing]:
    """Each story's topic and the topics listing it as "also in" (module docstring)."""
    if not topics:
        return [Filing(None) for _ in stories]
    texts = [[_Text.of(a) for a in s.articles] for s in stories]
    weights = _specificity(texts, topics)
    return [_filing(*_scores(story, topics, weights)) for story in texts]


def _filing(scores: list[float], titled: list[bool]) -> Filing:
    """Where a story of these scores goes (module docstring)."""
    best = max(scores)
    if best <= 0:
        return Filing(None)
    chosen = scores.index(best)
    also = tuple(
        n
        for n, (score, title) in enumerate(zip(scores, titled, strict=True))
        if n != chosen and title and score >= ALSO_SHARE * best
    )
    return Filing(chosen, also)


class _Filable(NamedTuple):
    """A story as filing it needs, for `topics`: its texts, the keywords found in it, and
    the topics for which it has evidence."""

    texts: list[_Text]
    found: tuple[bool, ...]
    evident: tuple[int, ...]

    @staticmethod
    def of(story: Story, topics: Sequence[Topic]) -> _Filable:
        texts = [_Text.of(a) for a in story.articles]
        evident = tuple(
            n
            for n, topic in enumerate(topics)
            if any(e > 0 for text in texts for e in _evidence(text, topic))
        )
        return _Filable(texts, _found(texts, _keywords(topics)), evident)

    def filing(self, topics: Sequence[Topic], weights: list[list[float]]) -> Filing:
        """As `file_stories` files it: the weights (each at least 1) matter only when it has
        evidence for two topics or more; for one, that topic has the only score above 0."""
        if len(self.evident) < 2:
            return Filing(self.evident[0] if self.evident else None)
        return _filing(*_scores(self.texts, topics, weights))


def best_topic(story: Story, topics: Sequence[Topic], stories: Sequence[Story] = ()) -> str:
    """The name of the topic the story matches best, or OTHER (see `topic_scores`)."""
    scores = topic_scores(story, topics, stories)
    if not scores or max(scores) <= 0:
        return OTHER
    return topics[scores.index(max(scores))].name


# --- sections ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Words:
    """A story's section words: per article, its title words and its other lead words."""

    titles: tuple[frozenset[str], ...]
    leads: tuple[frozenset[str], ...]

    @staticmethod
    @lru_cache(maxsize=MEMO_ARTICLES)
    def of(story: Story) -> _Words:
        found = [_article_words(article) for article in story.articles]
        return _Words(tuple(t for t, _ in found), tuple(lead for _, lead in found))

    @cached_property
    def counts(self) -> Counter[str]:
        """Word -> 2 per title and 1 per lead it is in (read only: it is kept)."""
        counts: Counter[str] = Counter()
        for title, lead in zip(self.titles, self.leads, strict=True):
            counts.update(dict.fromkeys(title, 2))
            counts.update(dict.fromkeys(lead, 1))
        return counts

    @cached_property
    def terms(self) -> tuple[tuple[str, ...], FloatArray]:
        """Its words in alphabetical order, and each one's sublinear count ``1 + ln(n)``."""
        ordered = tuple(sorted(self.counts))
        return ordered, np.array([1.0 + math.log(self.counts[w]) for w in ordered], np.float64)

    @cached_property
    def used(self) -> frozenset[str]:
        """The words of its titles and leads."""
        return frozenset().union(*self.titles, *self.leads)


@lru_cache(maxsize=MEMO_ARTICLES)
def _article_words(article: Article) -> tuple[frozenset[str], frozenset[str]]:
    """An article's section words: its title's, and its lead's not in the title."""
    shown = article.copies[0] if article.copies else None
    # A guessed publisher's name must not name a section ("Reuters · …").
    title = title_words(article)
    text = (shown.text if shown else "") or article.summary
    return title, frozenset(words(normalise(text)[:LEAD_CHARS], article.language)) - title


class _Matrix:
    """Stories' unit TF-IDF rows, sparse: row, column and value of each non-zero."""

    def __init__(self, found: Sequence[_Words]) -> None:
        df: Counter[str] = Counter(chain.from_iterable(f.terms[0] for f in found))
        vocabulary = sorted(w for w, n in df.items() if n >= 2)
        column = {w: n for n, w in enumerate(vocabulary)}
        idfs = idf_many(((w, df[w]) for w in vocabulary), len(found))
        weight = np.array([idfs[w] for w in vocabulary], dtype=np.float64)
        # Row by row, each row's words in alphabetical order: the order the sums add in.
        sizes = [len(f.terms[0]) for f in found]
        every = chain.from_iterable(f.terms[0] for f in found)
        cols = np.fromiter(map(column.get, every, repeat(-1)), dtype=np.intp, count=sum(sizes))
        rows = np.repeat(np.arange(len(found)), sizes)
        tf = np.concatenate([f.terms[1] for f in found]) if found else np.zeros(0)
        kept = cols >= 0
        self.size = len(found)
        self.width = len(vocabulary)
        self.column = column
        self.weight = weight
        self.rows = rows[kept].astype(np.intp)
        self.cols = cols[kept]
        values = tf[kept] * weight[self.cols]
        norms = np.sqrt(np.bincount(self.rows, values * values, minlength=self.size))
        self.vals = values / norms[self.rows] if len(values) else values
        self.empty = norms == 0
        self._last: tuple[IntArray, tuple[IntArray, IntArray, FloatArray]] | None = None

    def times(self, members: IntArray, vector: FloatArray) -> FloatArray:
        """Rows `members` of the matrix times a column vector."""
        local, cols, vals = self._local(members)
        products = vals * vector[cols]
        return np.bincount(local, products, minlength=len(members)).astype(np.float64)

    def sum(self, members: IntArray, weights: FloatArray) -> FloatArray:
        """The weighted sum of rows `members` (weights in the members' order)."""
        local, cols, vals = self._local(members)
        return np.bincount(cols, vals * weights[local], minlength=self.width).astype(np.float64)

    def _local(self, members: IntArray) -> tuple[IntArray, IntArray, FloatArray]:
        """The members' non-zeros: their rows' positions among the members, columns, values."""
        # A split asks of the same members dozens of times in a row.
        if self._last is not None and self._last[0] is members:
            return self._last[1]
        position = np.full(self.size, -1, dtype=np.intp)
        position[members] = np.arange(len(members))
        picked = np.flatnonzero(position[self.rows] >= 0)
        found = position[self.rows[picked]], self.cols[picked], self.vals[picked]
        self._last = (members, found)
        return found


def _unit(vector: FloatArray) -> FloatArray:
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 0 else vector


def _split(
    matrix: _Matrix, members: IntArray, mass: FloatArray
) -> tuple[IntArray, IntArray] | None:
    """Two groups of `members`: by the sign along their principal direction (PDDP), then
    refined as two spherical k-means clusters. None when one side would be empty."""
    weights = mass[members]
    mean = matrix.sum(members, weights) / weights.sum()
    # Start from the member least like the mean: deterministic, and never orthogonal to
    # the direction that sets it apart.
    far = int(np.argmin(matrix.times(members, mean)))
    direction = _unit(matrix.sum(members[far : far + 1], np.ones(1)) - mean)
    for _ in range(_POWER_ROUNDS):
        projected = (matrix.times(members, direction) - mean @ direction) * weights
        previous, direction = (
            direction,
            _unit(matrix.sum(members, projected) - mean * projected.sum()),
        )
        # Settled, or no direction at all (members alike: nothing to turn).
        if not direction.any() or 1.0 - abs(float(direction @ previous)) < _SETTLED:
            break
    side = matrix.times(members, direction) - mean @ direction >= 0
    for _ in range(_KMEANS_ROUNDS):
        if side.all() or not side.any():
            return None
        a = _unit(matrix.sum(members[side], weights[side]))
        b = _unit(matrix.sum(members[~side], weights[~side]))
        new = matrix.times(members, a) >= matrix.times(members, b)
        if (new == side).all():
            break
        side = new
    if side.all() or not side.any():
        return None
    return members[side], members[~side]


def _spread(matrix: _Matrix, members: IntArray, mass: FloatArray) -> float:
    """How far the members are from their centroid: the weighted sum of 1 - cosine."""
    weights = mass[members]
    similarity = matrix.times(members, _unit(matrix.sum(members, weights)))
    return float((1.0 - similarity) @ weights)


def _clusters(matrix: _Matrix, mass: FloatArray, limit: int) -> list[IntArray]:
    """Bisect the non-empty rows, the most spread group first, into at most `limit` groups;
    a group whose halves would be alike (centroids' cosine `SAME_SUBJECT` or more) stays."""
    start = np.flatnonzero(~matrix.empty)
    if not len(start):
        return []
    groups = [start]
    whole: set[int] = set()  # ids of groups not to split
    while len(groups) < limit:
        candidates = [
            (-_spread(matrix, g, mass), n)
            for n, g in enumerate(groups)
            if len(g) >= 2 and id(g) not in whole
        ]
        if not candidates:
            break
        _, n = min(candidates)
        halves = _split(matrix, groups[n], mass)
        if halves is None or _alike(matrix, mass, *halves):
            whole.add(id(groups[n]))
            continue
        groups[n] = halves[0]
        groups.append(halves[1])
    return groups


def _alike(matrix: _Matrix, mass: FloatArray, a: IntArray, b: IntArray) -> bool:
    """True when two groups' centroids are as similar as one subject's halves."""
    first = _unit(matrix.sum(a, mass[a]))
    second = _unit(matrix.sum(b, mass[b]))
    return float(first @ second) >= SAME_SUBJECT


@cache
def _one_blas_thread() -> None:
    """Run numpy's BLAS (the sections' dot products) on one thread, for the process.

    OpenBLAS splits a dot product of over 10,000 values (a vocabulary's) between threads:
    on a busy machine each then waited milliseconds for the other (docs/serve.md). One
    thread also sums in the same order on any machine. No other code here uses BLAS.
    """
    from threadpoolctl import threadpool_limits

    threadpool_limits(1, user_api="blas")


class _Sectioned(NamedTuple):
    """What `_sections` found: the groups of story indices that become sections (at most
    `limit`), the rest, each story's words; and, to file a further story as a story joined
    these: the matrix's columns and weights, the centroids the stories joined (those of
    the groups too small to be sections too) and which of them each section's is."""

    sections: list[list[int]]
    rest: list[int]
    found: list[_Words]
    column: dict[str, int]
    weight: FloatArray
    centroids: list[FloatArray]
    which: list[int]


def _sections(stories: Sequence[Story], limit: int) -> _Sectioned:
    """Groups of story indices that become sections (at most `limit`), and the rest."""
    found = [_Words.of(s) for s in stories]
    nothing = _Sectioned([], list(range(len(stories))), found, {}, np.zeros(0), [], [])
    if limit < 1 or not stories:
        return nothing
    _one_blas_thread()
    matrix = _Matrix(found)
    articles = np.array([len(s.articles) for s in stories], dtype=np.float64)
    mass = 1.0 + np.log(articles)
    groups = _clusters(matrix, mass, limit)
    groups += [np.array([n]) for n in np.flatnonzero(matrix.empty)]
    sized = sorted(
        ((float(articles[g].sum()), int(g.min()), g) for g in groups),
        key=lambda t: (-t[0], t[1]),
    )
    kept = [g for size, _, g in sized if size >= NAMED_MIN_ARTICLES][:limit]
    if not kept:
        return nothing
    # Every story joins the nearest kept group's centroid, when near enough; a story sharing
    # no word with the others stays in its own group.
    everyone = np.arange(len(stories))
    centroids = [_unit(matrix.sum(g, mass[g])) for g in kept]
    for _ in range(REFINE_ROUNDS + 1):
        joined_to = centroids
        similarity = np.stack([matrix.times(everyone, c) for c in centroids])
        nearest = np.argmax(similarity, axis=0)
        best = similarity[nearest, everyone]
        joined = best >= JOIN_SIMILARITY
        centroids = [
            _unit(matrix.sum(m, mass[m])) if len(m := everyone[joined & (nearest == n)]) else c
            for n, c in enumerate(centroids)
        ]
    members: list[list[int]] = [[] for _ in kept]
    rest = []
    alone = {int(g[0]): n for n, g in enumerate(kept) if len(g) == 1}
    for n in range(len(stories)):
        if n in alone:
            members[alone[n]].append(n)
        elif best[n] >= JOIN_SIMILARITY:
            members[int(nearest[n])].append(n)
        else:
            rest.append(n)
    sections, which = [], []
    for k, group in enumerate(members):
        if sum(len(stories[n].articles) for n in group) >= NAMED_MIN_ARTICLES:
            sections.append(group)
            which.append(k)
        else:
            rest.extend(group)
    return _Sectioned(sections, sorted(rest), found, matrix.column, matrix.weight, joined_to, which)


def section_keywords(
    stories: Sequence[Story],
    others: Sequence[Story] = (),
    n: int = NAME_KEYWORDS,
) -> list[str]:
    """The words that name a section of `stories`, set against `others` (module docstring)."""
    return _name_words([_Words.of(s) for s in stories], [_Words.of(s) for s in others], stories, n)


def _name_words(
    group: Sequence[_Words],
    others: Sequence[_Words],
    stories: Sequence[Story],
    n: int,
    everyone: Counter[str] | None = None,
) -> list[str]:
    """The section's naming words; `everyone`: the stories of `group` and `others` using
    each word, when the caller counted them once for every section."""
    # Each article's title and lead words, counted in one pass.
    articles = Counter(chain.from_iterable(p for f in group for p in (*f.titles, *f.leads)))
    titled: set[str] = set().union(*(title for found in group for title in found.titles))
    used = _story_counts(group)
    if everyone is None:
        everyone = _story_counts(others) + used
    inside_n, outside_n = max(len(group), 1), max(len(others), 1)
    contrasts = {}
    for word in titled:
        if articles[word] < 2:
            continue
        inside, beyond = used[word] / inside_n, (everyone[word] - used[word]) / outside_n
        contrast = math.log((inside + SMOOTHING) / (beyond + SMOOTHING))
        if contrast > 0:
            contrasts[word] = contrast
    # Scores of those words only, each added up in the articles' order.
    score = dict.fromkeys(contrasts, 0.0)
    wanted = score.keys()
    for found in group:
        share = 1.0 / math.sqrt(len(found.titles))
        for title, lead in zip(found.titles, found.leads, strict=True):
            for word in title & wanted:
                score[word] += TITLE_KEYWORD_WEIGHT * share
            for word in lead & wanted:
                score[word] += share
    ranked = sorted((-score[w] * c, -idf(w, 0, 0), w) for w, c in contrasts.items())
    return [_spelling(word, stories) for _, _, word in ranked[:n]]


def _story_counts(found: Sequence[_Words]) -> Counter[str]:
    """Word -> how many of the stories' titles or leads hold it."""
    return Counter(chain.from_iterable(f.used for f in found))


def story_keywords(story: Story, n: int = NAME_KEYWORDS) -> list[str]:
    """The words that name a story: those most of its articles' titles and leads share."""
    return section_keywords([story], (), n)


#: A Latin-script word as a title writes it, with its apostrophes ("BoE's", "Cosmos'").
#: A word as a title writes it, in Latin, Greek or Cyrillic letters (alphabets with case).
_CASED_TOKEN = re.compile(
    rf"[0-9A-Za-z\u00c0-\u024f{CASED_LETTERS}][0-9A-Za-z\u00c0-\u024f{CASED_LETTERS}'’]*"
)
_POSSESSIVE = re.compile(r"(?:['’]s?)+$")


def _spelling(word: str, stories: Iterable[Story]) -> str:
    """The word as most of the titles holding it spell it (the first such title on a tie)."""
    if HAN.match(word):
        return _han_spelling(word, stories)
    # A Latin, Greek or Cyrillic word is shown whole, as the title writes it ("rate" ->
    # "Rates", "токио" -> "Токио"), without a possessive's or a closing quote's apostrophe.
    spellings: Counter[str] = Counter()
    for story in stories:
        for article in story.articles:
            if word not in _folded_title(article.title):
                continue
            for token in _CASED_TOKEN.findall(article.title):
                if words(normalise(token)) == [word]:
                    spellings[_POSSESSIVE.sub("", token)] += 1
                    break
    return spellings.most_common(1)[0][0] if spellings else word


@lru_cache(maxsize=MEMO_ARTICLES)
def _folded_title(title: str) -> str:
    return normalise(title)


def _han_spelling(word: str, stories: Iterable[Story]) -> str:
    """The Chinese word in the script most titles holding it use (words are Simplified)."""
    spellings: Counter[str] = Counter()
    for story in stories:
        for article in story.articles:
            title = article.title
            folded = _folded_title(title)
            at = folded.find(word)
            # NFKC and OpenCC keep a Chinese title's length, and so its positions, but for
            # phrase conversions (人工智慧 -> 人工智能): then the word stands as it is.
            if at >= 0:
                same = len(folded) == len(title)
                spellings[title[at : at + len(word)] if same else word] += 1
    return spellings.most_common(1)[0][0] if spellings else word


# --- the digest's sections -----------------------------------------------------------------


def _key(story: Story) -> tuple[tuple[int, ...], str]:
    """A story's identity, for an order that does not depend on the input's."""
    return tuple(sorted([c.id for a in story.articles for c in a.copies])), story.headline


def group_by_topic(
    stories: Sequence[Story], topics: Sequence[Topic], *, max_sections: int = MAX_SECTIONS
) -> tuple[TopicGroup, ...]:
    """The digest's sections (see the module docstring).

    Args:
        stories: The window's stories.
        topics: The configured topics, in feeds.toml order.
        max_sections: Sections at most for the stories matching no topic, besides "Other".

    Returns:
        Non-empty sections: the topics in feeds.toml order (each with the stories filed
        elsewhere that it also lists), then the named sections, then "Other".
    """
    return grouping(stories, topics, max_sections=max_sections).groups


#: What tells a story from its other versions: its headline and its copies' ids and edit times.
Identity = tuple[str, tuple[tuple[int, datetime], ...]]


def _identity(story: Story) -> Identity:
    # Cheaper to hash and compare than the story (its texts), and as telling.
    return story.headline, tuple((c.id, c.updated_at) for a in story.articles for c in a.copies)


class Grouping(NamedTuple):
    """A window's sections as `group_by_topic` made them, with what `regroup` needs to file
    further stories into them: where each story matching no topic went (a section's name or
    OTHER), and each section's centroid (its name; None for a group too small or left
    without a name, whose stories went under OTHER) over the words the sections knew."""

    groups: tuple[TopicGroup, ...]
    topics: tuple[Topic, ...]
    max_sections: int
    stories: frozenset[Identity]
    placed: dict[Identity, str]
    names: tuple[str | None, ...]
    centroids: FloatArray
    column: dict[str, int]
    weight: FloatArray
    #: The stories `regroup` filed, as filing them needs (a cache, filled as it files).
    filable: dict[Identity, _Filable]


def grouping(
    stories: Sequence[Story],
    topics: Sequence[Topic],
    *,
    max_sections: int = MAX_SECTIONS,
    to_regroup: bool = False,
) -> Grouping:
    """`group_by_topic`'s sections, and what filing further stories into them needs;
    `to_regroup`: keep each story as filing it needs too (`regroup` then reads none again)."""
    ordered = sorted(stories, key=_key)
    filable: dict[Identity, _Filable] = {}
    filed, also, unmatched = _file(ordered, topics, filable if to_regroup else None)
    sectioned = _sections(unmatched, max_sections)
    groups, rest, found = sectioned.sections, sectioned.rest, sectioned.found
    taken = {t.name for t in topics} | {OTHER}
    named: dict[str, list[Story]] = {}
    names: list[str | None] = [None] * len(sectioned.centroids)
    everyone = _story_counts(found)
    for group, which in zip(groups, sectioned.which, strict=True):
        members = [unmatched[n] for n in group]
        inside = set(group)
        outside = [found[n] for n in range(len(unmatched)) if n not in inside]
        keywords = _name_words(
            [found[n] for n in group], outside, members, NAME_KEYWORDS + 2, everyone
        )
        name = " · ".join(keywords[:NAME_KEYWORDS])
        # A name taken already gets a further word; one left without a name, "Other".
        for extra in range(NAME_KEYWORDS, len(keywords)):
            if name not in taken:
                break
            name = " · ".join(keywords[: extra + 1])
        if not keywords or name in taken:
            rest.extend(group)
            continue
        taken.add(name)
        named[name] = members
        names[which] = name
    other = [unmatched[n] for n in rest]
    placed = {_identity(story): name for name, members in named.items() for story in members}
    placed.update((_identity(story), OTHER) for story in other)
    width = len(sectioned.column)
    return Grouping(
        _ordered(topics, filed, also, named, other),
        tuple(topics),
        max_sections,
        frozenset(map(_identity, ordered)),
        placed,
        tuple(names),
        np.stack(sectioned.centroids) if sectioned.centroids else np.zeros((0, width)),
        sectioned.column,
        sectioned.weight,
        filable,
    )


def _file(
    ordered: Sequence[Story], topics: Sequence[Topic], kept: dict[Identity, _Filable] | None = None
) -> tuple[list[list[Story]], list[list[Story]], list[Story]]:
    """The stories filed under each topic, those each topic also lists, and the unmatched;
    `kept`: the stories as filing them needs, by identity, kept between calls (and added to)."""
    if kept is None or not topics:
        filings = file_stories(ordered, topics)
    else:
        filable = []
        for story in ordered:
            key = _identity(story)
            if (known := kept.get(key)) is None:
                known = kept[key] = _Filable.of(story, topics)
            filable.append(known)
        weights = _weights([f.found for f in filable], topics)
        filings = [f.filing(topics, weights) for f in filable]
    filed: list[list[Story]] = [[] for _ in topics]
    also: list[list[Story]] = [[] for _ in topics]
    unmatched: list[Story] = []
    for story, filing in zip(ordered, filings, strict=True):
        if filing.topic is None:
            unmatched.append(story)
            continue
        filed[filing.topic].append(story)
        for n in filing.also:
            also[n].append(story)
    return filed, also, unmatched


def _ordered(
    topics: Sequence[Topic],
    filed: Sequence[Sequence[Story]],
    also: Sequence[Sequence[Story]],
    named: dict[str, list[Story]],
    other: Sequence[Story],
) -> tuple[TopicGroup, ...]:
    """The non-empty sections in the digest's order (module docstring)."""
    sections = [
        *((t.name, group, tuple(a)) for t, group, a in zip(topics, filed, also, strict=True)),
        *(
            (name, group, ())
            for name, group in sorted(
                named.items(), key=lambda kv: (-sum(len(s.articles) for s in kv[1]), kv[0])
            )
        ),
        (OTHER, other, ()),
    ]
    return tuple(
        TopicGroup(name, _newest_first(group), _newest_first(listed))
        for name, group, listed in sections
        if group
    )


def regroup(last: Grouping, stories: Sequence[Story]) -> Grouping:
    """The stories under `last`'s sections, without clustering them again: each story is
    filed under the configured topics as `group_by_topic` files it (over all the stories);
    of the rest, a story `last` grouped stays where it was, and any other joins the section
    whose centroid is most similar to it, as `group_by_topic`'s stories join theirs (from
    `JOIN_SIMILARITY`; else, or when that group had no section, "Other"). A section left
    with fewer than `NAMED_MIN_ARTICLES` articles goes under "Other". The result's
    `stories` and `placed` stay `last`'s: what is filed is always set against the grouping
    that clustered (`regrouping_due` says when to cluster again)."""
    ordered = sorted(stories, key=_key)
    filed, also, unmatched = _file(ordered, last.topics, last.filable)
    named: dict[str, list[Story]] = {name: [] for name in last.names if name is not None}
    other: list[Story] = []
    for story in unmatched:
        where = last.placed.get(_identity(story))
        if where is None:
            where = _nearest(story, last)
        (other if where == OTHER else named[where]).append(story)
    for name, members in list(named.items()):
        if sum(len(s.articles) for s in members) < NAMED_MIN_ARTICLES:
            other.extend(members)
            del named[name]
    return last._replace(groups=_ordered(last.topics, filed, also, named, sorted(other, key=_key)))


def _nearest(story: Story, last: Grouping) -> str:
    """The section a story joins among `last`'s (module docstring), or OTHER."""
    if not len(last.centroids):
        return OTHER
    words, counts = _Words.of(story).terms
    columns = np.fromiter((last.column.get(w, -1) for w in words), dtype=np.intp, count=len(words))
    kept = columns >= 0
    values = counts[kept] * last.weight[columns[kept]]
    norm = float(np.linalg.norm(values))
    if norm == 0:
        return OTHER
    similarity = last.centroids[:, columns[kept]] @ (values / norm)
    best = int(np.argmax(similarity))
    name = last.names[best]
    return name if name is not None and similarity[best] >= JOIN_SIMILARITY else OTHER


#: A window's sections are clustered again once this share of its stories are new, changed
#: or gone since they were last clustered ...
REGROUP_SHARE = 0.1
#: ... or this long after (seconds).
REGROUP_AFTER = 600.0


def regrouping_due(
    last: Grouping | None,
    stories: Sequence[Story],
    topics: Sequence[Topic],
    max_sections: int,
    age: float,
) -> bool:
    """Whether `stories` are to be grouped from scratch rather than filed into `last`'s
    sections (`regroup`): no sections yet, other settings (topics, max_sections), more than
    `REGROUP_SHARE` of the stories new, changed or gone since, or `last` made `age` seconds
    ago, `REGROUP_AFTER` or more."""
    if last is None or last.topics != tuple(topics) or last.max_sections != max_sections:
        return True
    if age >= REGROUP_AFTER:
        return True
    changed = len(last.stories.symmetric_difference(map(_identity, stories)))
    return changed > REGROUP_SHARE * max(len(last.stories), 1)


def section_name(story: Story, topics: Sequence[Topic]) -> str:
    """The section a story alone would go under: its topic, or a section named by its own
    words when it has `NAMED_MIN_ARTICLES` articles, or "Other"."""
    groups = group_by_topic([story], topics)
    return groups[0].name if groups else OTHER


def most_covered_first(groups: Iterable[TopicGroup]) -> tuple[TopicGroup, ...]:
    """Each section's stories as a digest lists them: those the most feeds carry first, then
    the newest (a day's biggest story is what a morning's reader looks for first; ties keep
    the newest-first order the sections come in). A live page keeps them newest first."""
    return tuple(
        replace(group, stories=tuple(sorted(group.stories, key=_feeds, reverse=True)))
        for group in groups
    )


def _feeds(story: Story) -> int:
    return len({copy.feed_url for article in story.articles for copy in article.copies})


def _newest_first(stories: Iterable[Story]) -> tuple[Story, ...]:
    # `sorted` is stable and the stories come in `_key` order: ties stay put.
    return tuple(sorted(stories, key=_newest, reverse=True))


def _newest(story: Story) -> datetime:
    return max(a.published for a in story.articles)
