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

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import replace
from itertools import chain

from aggregator.dedup.copies import (
    SUMMARY_SHINGLES,
    _copy_matches,
    copy_score,
    copy_scores,
    is_copy,
)
from aggregator.dedup.features import entry_keys, entry_keys_many, features
from aggregator.dedup.stories import INDEX_TERMS, StoryMemo, _Stories, index_terms, top_terms
from aggregator.dedup.vectors import VECTOR_TERMS, _delta, _weigh, article_vectors
from aggregator.types import (
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
    "_delta",
    "_weigh",
    "article_vectors",
    "assign",
    "copy_score",
    "copy_scores",
    "entry_keys",
    "entry_keys_many",
    "features",
    "index_terms",
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

    Returns:
        The placements, the stories created or changed, and the vocabulary's increments.
    """
    if vectors is None:
        vectors = article_vectors(batch, vocabulary)
    df_delta, docs_delta = _delta(batch)
    within = _Stories(stories, settings, memo)
    for pending in batch:
        if pending.previous_vector and pending.previous_story is not None:
            within.remove(pending.previous_story, pending.previous_vector)

    ordered_batch = sorted(batch, key=lambda p: (p.features.published, p.features.entry_id))
    batch_keys = [p.keys or entry_keys(p.features, settings) for p in ordered_batch]
    # An entry placed is a candidate for the later ones only under keys they have too:
    # indexing it under the other ~40 (its own LSH bands) would find nothing.
    repeated = {k for k, n in Counter(chain.from_iterable(batch_keys)).items() if n > 1}

    matches = _copy_matches(ordered_batch, batch_keys, known, repeated, settings)
    placements: list[Placement] = []
    grown: set[int] = set()  # stories articles joined: settled once, after the batch
    articles = _Articles()
    for pending, keys, match in zip(ordered_batch, batch_keys, matches, strict=True):
        f = pending.features
        vector: dict[str, float] | None = None
        if match:
            # A copy joins the article of what it copies; a copy of entries in several
            # articles joins them into one (the oldest id), and their stories with them.
            copied = [placements[m] if isinstance(m, int) else m for m in match]
            article_id = articles.join([c.article_id for c in copied])
            story_id = within.resolve(copied[0].story_id)
            for c in copied[1:]:
                story_id = within.join(story_id, c.story_id)
            if f.dated:
                within.touch(story_id, f.published)
        else:
            article_id, next_id = next_id, next_id + 1
            vector = dict(vectors[f.entry_id])
            short = f.size <= SUMMARY_SHINGLES
            joined = within.best(vector, f.published, f.dated, short=short)
            if joined is None:
                # A story of one: nothing was similar enough to the article just now, so
                # nothing is to its centroid either (settling it would find nothing). An
                # edited entry its story held alone keeps that story's id.
                previous = pending.previous_story
                emptied = within.state.get(previous) if previous is not None else None
                if (
                    previous is not None
                    and emptied is not None
                    and emptied.size <= 0
                    and previous not in within.merged
                ):
                    story_id = previous
                else:
                    story_id, next_id = next_id, next_id + 1
                within.add(story_id, vector, f.published, f.dated, short)
            else:
                within.add(joined, vector, f.published, f.dated, short)
                story_id = joined
                grown.add(joined)
        if pending.previous_story is not None:
            within.vacate(pending.previous_story, story_id)
        placements.append(Placement(f.entry_id, article_id, story_id, keys, vector))

    settled: set[int] = set()  # a story settled stays so: merges into it settle it again
    for sid in sorted(grown):
        sid = within.resolve(sid)
        if sid not in settled and within.state[sid].size > 0:
            settled.add(within.settle(sid))
    placements = [
        replace(p, article_id=articles.resolve(p.article_id), story_id=within.resolve(p.story_id))
        if p.story_id in within.merged or p.article_id in articles.merged
        else p
        for p in placements
    ]
    return Outcome(
        placements=placements,
        merged=dict(within.merged),
        merged_articles=dict(articles.merged),
        stories=[within.state[s] for s in sorted(within.changed)],
        story_terms={s: list(within.indexed[s][2]) for s in within.changed},  # not the memo's
        df_delta={t: n for t, n in df_delta.items() if n},
        docs_delta=docs_delta,
        next_id=next_id,
    )


class _Articles:
    """The articles a batch joined into one: absorbed id -> the surviving (oldest) id."""

    def __init__(self) -> None:
        self.merged: dict[int, int] = {}

    def resolve(self, article_id: int) -> int:
        """The article an article id now stands for, after this batch's joins."""
        return self.merged.get(article_id, article_id)

    def join(self, ids: Sequence[int]) -> int:
        """One article of the articles `ids`: the oldest; the others now point to it."""
        live = {self.resolve(a) for a in ids}
        into = min(live)
        for gone in live - {into}:
            self.merged[gone] = into
            for absorbed, survivor in self.merged.items():
                if survivor == gone:
                    self.merged[absorbed] = into
        return into
