"""Entries -> Articles (copies of one text) -> Stories (one event), decided incrementally.

Everything here is a pure function of its arguments: core loads what a poll's new and
edited entries need from storage (the stored entries sharing a lookup key with them, the
stories active around their dates, the word counts), calls `assign`, and stores the outcome.

The parts live in their own modules, each with its rules: an entry's features and lookup
keys (`features`), copies (`copies`, whose docstring lists the rules), an article's TF-IDF
vector (`vectors`), and the story it joins and the merging of stories (`stories`, whose
docstring states the rule). `assign` ties them into one batch's `Outcome`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime

import numpy as np
import numpy.typing as npt

from aggregator.dedup.copies import (
    SUMMARY_SHINGLES,
    _copy_matches,
    copy_score,
    copy_scores,
    is_copy,
)
from aggregator.dedup.features import entry_keys, entry_keys_many, features
from aggregator.dedup.index import KeyHits, ranges
from aggregator.dedup.stories import INDEX_TERMS, StoryMemo, _Stories, top_terms
from aggregator.dedup.vectors import (
    VECTOR_TERMS,
    BatchTerms,
    _weigh,
    article_vectors,
    weigh,
)
from aggregator.types import (
    ArticleJoin,
    DedupSettings,
    Known,
    Outcome,
    Pending,
    Placement,
    StoryState,
    Vocabulary,
)

#: `assign`, and the names tests/ import from here (kept from before the split, issue 17).
__all__ = [
    "INDEX_TERMS",
    "SUMMARY_SHINGLES",
    "VECTOR_TERMS",
    "StoryMemo",
    "_weigh",
    "article_vectors",
    "assign",
    "copy_score",
    "copy_scores",
    "entry_keys",
    "entry_keys_many",
    "features",
    "is_copy",
    "top_terms",
]


def assign(
    batch: Sequence[Pending],
    known: Sequence[Known],
    stories: Sequence[StoryState],
    vocabulary: Vocabulary,
    settings: DedupSettings,
    next_id: int,
    vectors: Mapping[int, Mapping[str, float]] | None = None,
    memo: StoryMemo | None = None,
    article_count: Callable[[int], int] | None = None,
    shared: KeyHits | None = None,
    terms: BatchTerms | None = None,
    heads: Mapping[int, list[str]] | None = None,
    key_arrays: tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]] | None = None,
) -> Outcome:
    """Place each entry of `batch` in an article and a story.

    Entries are taken oldest first, and each one placed can be matched by the later ones.

    Args:
        batch: The new and edited entries of a poll.
        known: Stored entries sharing a lookup key with some entry of the batch.
        stories: Stored stories the batch may join (active within the window of its
            entries, sharing a word with them, or holding one of the `known` entries).
        vocabulary: Word document frequencies before this batch.
        settings: Thresholds.
        next_id: The first unused article/story id.
        vectors: `article_vectors(batch, vocabulary)`, when the caller has them already.
        memo: What the previous batch computed of the stories it loaded (`StoryMemo`);
            it saves time only: the outcome is the same without it.
        article_count: How many articles have entries in a stored story, not counting the
            batch's entries (storage's `article_count`), asked only when an article leaves
            a story for another's (`_Articles`); without it such a story is taken to keep
            other articles.
        shared: The lookup keys each of `known` shares with the batch, as the key index
            found them: (entry, key) pairs; without them, the known entries' own keys.
        terms: `BatchTerms.of(batch)`, when the caller has it.
        heads: Each vector's `INDEX_TERMS` heaviest words (`vectors.weigh`), given with
            `vectors`.
        key_arrays: The entries' lookup keys (their `Pending.keys`) as arrays, when the
            caller has them: how many each entry has, and all of them, `batch`'s first.

    Returns:
        The placements, the stories created or changed, and the vocabulary's increments.
    """
    if terms is None:
        terms = BatchTerms.of(batch)
    if vectors is None:
        weighed = weigh(batch, vocabulary, terms)
        vectors, heads = weighed.vectors, weighed.heads
    df_delta, docs_delta = terms.df_delta, terms.docs_delta
    within = _Stories(stories, settings, memo)
    for pending in batch:
        if pending.previous_vector and pending.previous_story is not None:
            within.remove(pending.previous_story, pending.previous_vector)

    # Oldest first; entries published at one time by feed URL and guid, not by id: the
    # order stored (which id) depends on which feed answered first.
    order = sorted(range(len(batch)), key=lambda i: _placing_key(batch[i]))
    ordered_batch = [batch[i] for i in order]
    batch_keys = [p.keys or entry_keys(p.features, settings) for p in ordered_batch]
    flat: tuple[npt.NDArray[np.int64], npt.NDArray[np.intp]] | None = None
    if key_arrays is not None:  # the same keys, laid out in placing order by numpy
        counts, every_key = key_arrays
        starts = np.cumsum(counts) - counts
        moved = np.array(order, dtype=np.intp)
        flat = (
            every_key[ranges(starts[moved], starts[moved] + counts[moved])],
            np.repeat(np.arange(len(order), dtype=np.intp), counts[moved]),
        )

    if shared is None:
        shared = KeyHits.of(
            (k.features.entry_id, keys)
            for k, keys in zip(
                known, entry_keys_many([k.features for k in known], settings), strict=True
            )
        )
    matches = _copy_matches(ordered_batch, batch_keys, known, shared, settings, flat)
    placements: list[Placement] = []
    grown: set[int] = set()  # stories articles joined: settled once, after the batch
    first_id = next_id
    articles = _Articles(first_id, article_count)
    for pending, keys, match in zip(ordered_batch, batch_keys, matches, strict=True):
        f, previous = pending.features, pending.previous_story
        vector: dict[str, float] | None = None
        if match:
            # A copy joins the article of what it copies; a copy of entries in several
            # articles joins them into one (`_Articles.join`).
            copied = [placements[m] if isinstance(m, int) else m for m in match]
            article_id, story_id = articles.join(copied, within)
            if f.dated:
                # Every entry it copies is a match (best first), the first report among them.
                # A stored entry's features do not say whether its date is its own (storage
                # does not read `dated` with them): a stored original the feed left undated
                # counts with the time it was first seen.
                originals = [ordered_batch[m].features if isinstance(m, int) else m.features
                             for m in match]  # fmt: skip
                earliest = min((o.published for o in originals if o.dated), default=None)
                within.touch(story_id, f.published, f.size <= SUMMARY_SHINGLES, earliest)
        else:
            article_id, next_id = next_id, next_id + 1
            vector = dict(vectors[f.entry_id])
            short = f.size <= SUMMARY_SHINGLES
            head = heads.get(f.entry_id) if heads is not None else None
            joined = within.best(vector, f.published, f.dated, short=short, terms=head)
            if joined is None:
                # A story of one: nothing was similar enough to the article just now, so
                # nothing is to its centroid either (settling it would find nothing). An
                # edited entry keeps its story's id if that story holds no other article,
                # or no other vector (only articles a join moved in: else no article could
                # find it again).
                if previous is not None and (
                    articles.emptied(previous, within) or within.vectorless(previous)
                ):
                    story_id = previous
                    within.add(story_id, vector, f.published, f.dated, short, True, head)
                else:
                    story_id, next_id = next_id, next_id + 1
                    within.add(story_id, vector, f.published, f.dated, short, terms=head)
            else:
                # Back in its own story, emptied of other articles: its words afresh, not
                # added to those of an article a join moved out.
                afresh = joined == previous and articles.emptied(joined, within)
                within.add(joined, vector, f.published, f.dated, short, afresh, head)
                story_id = joined
                grown.add(joined)
            articles.placed(article_id, story_id)
        if previous is not None and previous != story_id and articles.emptied(previous, within):
            within.vacate(previous, story_id)
        placements.append(Placement(f.entry_id, article_id, story_id, keys, vector))

    settled: set[int] = set()  # a story settled stays so: merges into it settle it again
    for sid in sorted(grown):
        sid = within.resolve(sid)
        if sid not in settled and within.state[sid].size > 0:
            settled.add(within.settle(sid))
    placements = [articles.final(p, within) for p in placements]
    if placements and next_id == first_id:
        # Storage refuses a batch decided before another writer's only when the next free
        # id moved; a batch of copies changes stored state too (joins, merges): use one.
        next_id += 1
    return Outcome(
        placements=placements,
        merged=dict(within.merged),
        joined_articles=articles.joins(within),
        stories=[within.state[s] for s in sorted(within.changed)],
        story_terms={s: list(within.indexed[s][2]) for s in within.changed},  # not the memo's
        df_delta=dict(df_delta),  # (no word of it 0: `BatchTerms`)
        docs_delta=docs_delta,
        next_id=next_id,
    )


def _placing_key(pending: Pending) -> tuple[datetime, str, str, int]:
    """Where an entry comes in its batch: `Storage.placing_order`'s order."""
    f = pending.features
    return (f.published, f.feed_url, f.guid, f.entry_id)


#: The articles taken to be in a stored story when storage is not asked (never emptied).
_MANY = 1 << 30


class _Articles:
    """The articles of a batch: the story each is in, and those joined into another.

    An article is a connected group of copies (the `copies` docstring): an entry copying
    entries of several articles joins them into the oldest. The others' entries move to
    its story; a story that held nothing but an article moved out of it is merged into
    that story (its id then points there, as a merged story's does). A story that keeps
    other articles keeps its centroid as it was (the moved article's words stay counted
    in it) and the moved article no longer holds a vector: an edit of it will not take
    words out of a story that never counted them.
    """

    def __init__(self, first_id: int, article_count: Callable[[int], int] | None = None) -> None:
        #: Absorbed article -> the surviving (oldest) article.
        self.merged: dict[int, int] = {}
        #: Absorbed article -> the story its stored entries were in when it was absorbed.
        self.origin: dict[int, int] = {}
        #: Article -> the story it is in now (every article the batch placed or joined).
        self.story: dict[int, int] = {}
        self._first_id = first_id  # ids from this one on are the batch's: nothing stored
        self._stored_count = article_count
        #: Story -> how many articles it holds now, for the stories a join asked about.
        self._count: dict[int, int] = {}
        #: Story -> new articles the batch placed in it before a join asked about it.
        self._new: dict[int, int] = {}

    def placed(self, article_id: int, story_id: int) -> None:
        """A new article was placed in the story."""
        self.story[article_id] = story_id
        if story_id in self._count:
            self._count[story_id] += 1
        else:
            self._new[story_id] = self._new.get(story_id, 0) + 1

    def _articles(self, story_id: int) -> int:
        """How many articles the story holds now: storage's count of the articles of its
        entries outside the batch (asked once), and the batch's changes."""
        if story_id not in self._count:
            if story_id >= self._first_id:
                stored = 0
            elif self._stored_count is None:  # unknown: taken to keep other articles
                stored = _MANY
            else:
                stored = self._stored_count(story_id)
            self._count[story_id] = stored + self._new.pop(story_id, 0)
        return self._count[story_id]

    def emptied(self, story_id: int, within: _Stories) -> bool:
        """Whether a story an edited entry left holds no article now (and was not merged):
        by storage's count of its articles, or, not asked, by its size (an article moved
        out by a join stays counted in its size)."""
        if self._stored_count is None:
            return within.vectorless(story_id)
        if story_id not in within.state or story_id in within.merged:
            return False
        return self._articles(story_id) <= 0

    def resolve(self, article_id: int) -> int:
        """The article an article id now stands for, after this batch's joins."""
        return self.merged.get(article_id, article_id)

    def join(self, copied: Sequence[Placement | Known], within: _Stories) -> tuple[int, int]:
        """The article and story of an entry copying `copied` (best match first): the
        oldest of their articles, the others joined into it."""
        live: dict[int, int] = {}  # article -> its story, now
        for c in copied:
            article = self.resolve(c.article_id)
            live.setdefault(article, within.resolve(self.story.get(article, c.story_id)))
        into = min(live)
        story = live[into]
        for gone, gone_story in sorted(live.items()):
            if gone == into:
                continue
            gone_story = within.resolve(gone_story)  # a join below may have merged it
            for absorbed, survivor in self.merged.items():
                if survivor == gone:
                    self.merged[absorbed] = into
            self.merged[gone] = into
            self.origin[gone] = gone_story
            if gone_story == story:  # two articles of one story are one now
                self._count[story] = self._articles(story) - 1
                continue
            left = self._articles(gone_story) - 1
            self._count[gone_story] = left
            if left <= 0:  # it held only the article moved (`join` skips a story not loaded)
                kept = self._articles(story)
                story = within.join(story, gone_story, moved=True)
                self._count[story] = kept
        self.story[into] = story
        return into, story

    def final(self, placement: Placement, within: _Stories) -> Placement:
        """A placement of the batch as it ends: its article after the joins, in that
        article's story after the merges; a vector only if it stayed in its story."""
        article = self.resolve(placement.article_id)
        story = within.resolve(self.story.get(article, placement.story_id))
        if (article, story) == (placement.article_id, placement.story_id):
            return placement
        vector = placement.vector if story == within.resolve(placement.story_id) else None
        return replace(placement, article_id=article, story_id=story, vector=vector)

    def joins(self, within: _Stories) -> list[ArticleJoin]:
        """For storage: each absorbed article, the story its stored entries are in once
        the batch's story merges are applied, and the article and story they move to."""
        return [
            ArticleJoin(
                article=gone,
                story=within.resolve(self.origin[gone]),
                into=into,
                into_story=within.resolve(self.story[into]),
            )
            for gone, into in sorted(self.merged.items())
        ]
