"""The story an article joins (by cosine with the centroids), and merging similar stories.

Stories: an entry that is not a copy starts an article, and the article joins the story it
is most similar to: the cosine of the article's TF-IDF vector (`terms.entry_terms`,
weighted ``(1 + ln tf) * idf``, the IDF blending the counts over all articles seen so far
with a background prior that keeps at least half the say: `terms.STORY_PRIOR_DOCS`) with
the story's centroid (the sum of its articles' vectors), if that is at least
``story_threshold`` and the story's time span, widened by ``story_window`` on each side,
holds the article's date; else it starts a story. An article with only a title (a
headline), or a title and a summary of a few sentences (`SUMMARY_SHINGLES`), joins at
``headline_threshold`` within ``headline_window`` (`_evidence`): a few words give lower
cosines between reports of one event, and a subject that comes back days later is another
story. A headline joins a story of headlines only within that window of its first report
as well as its last, so a story told in headlines spans at most the window, rather than
growing a window at a time with each report of its subject. An entry without a
date of its own (dated by when it was first seen) is not held to the window and does not
widen the span; a copy (another feed's entry of a stored article) widens it only as far
as an article could, within the window, and within the window of what it copies (a
republication weeks later would otherwise open the whole span between to every report of
the subject: `_Stories._widened`). After the batch, each story
that articles joined merges with the most similar other story while their centroids meet
``story_threshold`` (`_Stories.settle`); merged stories keep the oldest id. Only stories
sharing one of the article's top words are compared, and of those only the ones whose
shared top words alone carry `CANDIDATE_SHARE` of the threshold (a measured heuristic, not
a bound: see there).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from operator import itemgetter, mul

from aggregator.types import DedupSettings, StoryState

#: Words of a story's centroid kept (and of an article's vector used to find stories).
CENTROID_TERMS = 100
INDEX_TERMS = 12
#: A candidate story is compared in full only if the words it shares with the article among
#: both's `INDEX_TERMS` heaviest give at least this share of ``story_threshold`` (their part
#: of the cosine). Measured on `bench/cluster_scale.py` at 30k entries: of the candidates
#: sharing an index word, this leaves 35% of an article's and 8% of a settling story's to
#: compare, and none of those scoring above the threshold were among the ones left out
#: (at 1/5 one of 5,133 was); the words an event is told by are the ones put first.
CANDIDATE_SHARE = 1 / 6


def top_terms(vector: Mapping[str, float], n: int) -> list[str]:
    """The n heaviest terms, heaviest first (ties by the term, for stable results)."""
    # One sort of (-weight, term) pairs: tuples compare in C, no key function per item
    # (~2x faster than sorting by term, then stably by weight; the same order), and only
    # of those from the n-th heaviest weight up, found by a sort of the floats alone
    # (8 -> 5.4-6.7 us on the truncated centroids of a bench run, 15 -> 8 us on its sums).
    if len(vector) > n > 0:
        cut = sorted(vector.values(), reverse=True)[n - 1]
        ranked = sorted([(-w, t) for t, w in vector.items() if w >= cut])
    else:
        ranked = sorted([(-w, t) for t, w in vector.items()])
    return [t for _, t in ranked[:n]]


def _dot(a: Mapping[str, float], b: Mapping[str, float]) -> float:
    if len(a) > len(b):
        a, b = b, a
    common = list(filter(b.__contains__, a))  # in C, over the smaller
    # fsum is exact: the order of the words cannot change a result.
    if len(common) < 2:
        return math.fsum(map(mul, map(a.__getitem__, common), map(b.__getitem__, common)))
    # Both sides' weights fetched in one C call each: a dense stream's article and story
    # share dozens of words (1.35x faster there than a lookup per word; ~15% slower on
    # 1 shared word in 40, where the full cosine is rarely computed: `CANDIDATE_SHARE`).
    weights = itemgetter(*common)
    return math.fsum(map(mul, weights(a), weights(b)))


def _norm(vector: Mapping[str, float]) -> float:
    # hypot computes the length in C, ~3x faster on 100 words than a Python sum of squares
    # (and more accurately: it differs from that sum in the last bit for many vectors).
    return math.hypot(*vector.values())


class StoryMemo:
    """The index of the stories one batch loaded, kept for the next batch.

    Consecutive batches load mostly the same stories, unchanged. Each indexed story is held
    with the centroid its entries were computed from, and a story loaded again is taken as
    indexed when its centroid is the same: the same object (SQLite's storage hands back an
    unchanged row's, decoded once), else equal words and weights. A story changed since,
    here or by another process, has another centroid and is indexed afresh, and stories
    not loaded again leave the index, so a memo never changes a decision, nor depends on
    what storage caches.
    """

    def __init__(self) -> None:
        #: story id -> (the centroid indexed, its norm, its `INDEX_TERMS` heaviest words)
        self.indexed: dict[int, tuple[Mapping[str, float], float, list[str]]] = {}
        #: word -> {story id: the word's weight in its centroid}, for the stories whose
        #: heaviest words hold it (`indexed`).
        self.index: dict[str, dict[int, float]] = {}


class _Stories:
    """The stories within reach of one batch, updated as articles join them."""

    def __init__(
        self,
        stories: Iterable[StoryState],
        settings: DedupSettings,
        memo: StoryMemo | None = None,
    ) -> None:
        self.settings = settings
        self.state: dict[int, StoryState] = {}
        memo = memo if memo is not None else StoryMemo()
        #: Each story's centroid, its length (computed once per change rather than per
        #: comparison) and index words.
        self.indexed = memo.indexed
        self.index = memo.index
        self.changed: set[int] = set()
        #: Stories absorbed into another one: absorbed id -> surviving id.
        self.merged: dict[int, int] = {}
        indexed = self.indexed
        for story in stories:
            hit = indexed.get(story.id)
            # Indexed as it is: the same centroid (the same object, as storage hands back an
            # unchanged row's, or equal words and weights).
            if hit is not None and (hit[0] is story.centroid or hit[0] == story.centroid):
                self.state[story.id] = story
            else:
                self._put(story)
        for sid in [sid for sid in indexed if sid not in self.state]:
            self._unindex(sid, ())  # not within reach of this batch
            del indexed[sid]

    def _put(self, story: StoryState, terms: list[str] | None = None) -> None:
        """Hold the story and index it under its heaviest words (`terms`, when known)."""
        sid, centroid = story.id, story.centroid
        self.state[sid] = story
        if terms is None:
            terms = top_terms(centroid, INDEX_TERMS)
        self._unindex(sid, terms)
        index = self.index
        for term in terms:
            posting = index.get(term)
            if posting is None:
                index[term] = {sid: centroid[term]}
            else:
                posting[sid] = centroid[term]
        self.indexed[sid] = (centroid, _norm(centroid), terms)

    def _unindex(self, sid: int, keep: Sequence[str]) -> None:
        """Take the story out of the index, but under the words in `keep`."""
        held = self.indexed.get(sid)
        if held is None:
            return
        index = self.index
        for term in held[2]:
            if term not in keep:
                posting = index.get(term)
                if posting is not None:  # always, unless an exception cut a `_put` short
                    posting.pop(sid, None)
                    if not posting:
                        del index[term]

    def best(
        self,
        vector: Mapping[str, float],
        published: datetime,
        dated: bool,
        last: datetime | None = None,
        exclude: int | None = None,
        scale: float = 1.0,
        terms: Sequence[str] | None = None,
        short: bool = False,
        merging: bool = False,
    ) -> int | None:
        """The most similar story near enough to [published, last] (`_near`), if similar
        enough.

        `scale`: what makes `vector` unit-length (its inverse norm); `terms`: the vector's
        `INDEX_TERMS` heaviest words, when the caller knows them already; `short`: whether
        the vector is a short text's (or a short story's): with a short story, or as one, it
        is held to the headline threshold and window (`_evidence`); `merging`: the vector
        is a story's centroid, which merges at ``story_threshold`` whatever its kind
        (merging at the headline's threshold joined neighbouring events of one summit).

        Candidates are the stories indexed under one of the vector's `INDEX_TERMS` heaviest
        words, and of those only the ones whose weight on the words both put first reaches
        `CANDIDATE_SHARE` of the threshold are compared in full (see there).
        """
        last = last or published
        state, index = self.state, self.index
        settings = self.settings
        shared: dict[int, float] = {}  # story -> the dot product over the shared index words
        get = shared.get
        for term in top_terms(vector, INDEX_TERMS) if terms is None else terms:
            posting = index.get(term)
            if posting:
                weight = vector[term] * scale
                for sid, other in posting.items():
                    shared[sid] = get(sid, 0.0) + weight * other
        # The rule for a story of full reports and for one of headlines (`_evidence`), once.
        plain, brief = _evidence(short, settings), _evidence(True, settings)
        if merging:
            plain = (settings.story_threshold, plain[1])
            brief = (settings.story_threshold, brief[1])
        indexed, merged = self.indexed, self.merged
        # What the shared index words must carry, per unit of the story's norm.
        plain_cut, brief_cut = plain[0] * CANDIDATE_SHARE, brief[0] * CANDIDATE_SHARE
        best: tuple[float, int] | None = None
        for sid, part in sorted(shared.items()):
            norm = indexed[sid][1]
            if not norm:
                continue
            story = state[sid]
            if story.short:
                if part < brief_cut * norm:
                    continue
                threshold, window = brief
            else:
                if part < plain_cut * norm:
                    continue
                threshold, window = plain
            if story.size <= 0 or sid == exclude or sid in merged:
                continue
            if dated and not _near(story, published, last, short, window):
                continue
            score = _dot(vector, story.centroid) * scale / norm
            if score >= threshold and (best is None or score > best[0]):
                best = (score, sid)
        return None if best is None else best[1]

    def add(
        self,
        sid: int,
        vector: Mapping[str, float],
        published: datetime,
        dated: bool,
        short: bool,
        afresh: bool = False,
        terms: list[str] | None = None,
    ) -> None:
        """The article joins the story `sid` (a new one, or one an edit emptied, afresh:
        `afresh` for one emptied whose centroid still counts an article moved out).
        `terms`: the vector's `INDEX_TERMS` heaviest words, when the caller knows them."""
        old = self.state.get(sid)
        if afresh or old is None or old.size <= 0:
            self._put(StoryState(sid, published, published, 1, dict(vector), short), terms)
        else:
            if not dated:
                published = old.first  # a first-seen time says nothing about the span
            kept, terms = _truncate(_summed(old.centroid, vector))
            first, last = min(old.first, published), max(old.last, published)
            self._put(StoryState(sid, first, last, old.size + 1, kept, old.short and short), terms)
        self.changed.add(sid)

    def settle(self, sid: int) -> int:
        """Merge the story into the most similar other one while they are similar enough.

        An incremental pass meets a story's articles one by one: the first two may say too
        little in common for one to join the other, while the story they both belong to,
        grown from the later ones, is plainly similar to each. Merging centroids that meet
        ``story_threshold`` within the window an article would (`_evidence`: a headline's
        if either story is short) corrects that order dependence. `assign` settles each
        story articles joined once, after placing the batch's entries (in id order), rather
        than after every join: the same groups on every labelled set (dense uci-news-dev
        0.742 -> 0.745), and on a stream of few large stories one settle per story instead
        of one per article.
        """
        while True:
            story = self.state[sid]
            _, norm, terms = self.indexed[sid]
            # The centroid scaled by its inverse norm: the unit centroid's cosines (to the
            # last bit: scaling the sum rounds differently from summing scaled weights).
            other = self.best(
                story.centroid,
                story.first,
                True,
                story.last,
                exclude=sid,
                scale=1.0 / (norm or 1.0),
                terms=terms,
                short=story.short,
                merging=True,
            )
            if other is None:
                return sid
            sid = self.join(sid, other)

    def join(self, sid: int, other: int, *, moved: bool = False) -> int:
        """Merge two stories into one; the id it keeps (the oldest of the two).

        The oldest id survives: alerts and pages link to a story by its id, and the ids
        merged into it are recorded as pointing to it (storage's story aliases). `moved`:
        `other` held only an article a copy joined into one of `sid`'s (`_Articles.join`),
        whose dates widen the span only as a copy's do (`_widened`).
        """
        sid, other = self.resolve(sid), self.resolve(other)
        if sid == other or sid not in self.state or other not in self.state:
            return sid  # (a story storage did not load is left as it is)
        into, gone = min(sid, other), max(sid, other)
        a, b = self.state[into], self.state[gone]
        kept, terms = _truncate(_summed(a.centroid, b.centroid))
        if moved:
            span, extra = self.state[sid], self.state[other]
            for published in (extra.first, extra.last):
                span = self._widened(span, published, extra.short)
            first, last = span.first, span.last
        else:
            first, last = min(a.first, b.first), max(a.last, b.last)
        short = a.short and b.short
        self._put(StoryState(into, first, last, a.size + b.size, kept, short), terms)
        self._put(StoryState(gone, b.first, b.last, 0, {}, b.short))
        self.merged[gone] = into
        self.changed.update((into, gone))
        for absorbed, survivor in self.merged.items():
            if survivor == gone:
                self.merged[absorbed] = into
        return into

    def vectorless(self, sid: int) -> bool:
        """Whether a loaded story, not merged, counts no article's vector (it may still
        hold articles a join moved in, which carry none)."""
        story = self.state.get(sid)
        return story is not None and story.size <= 0 and sid not in self.merged

    def vacate(self, sid: int, into: int) -> None:
        """An edit took the last article of story `sid` to story `into`: `sid` now points
        to `into`, as a story merged into it does (a link to it still finds the entry)."""
        if sid == into or sid in self.merged or sid not in self.state:
            return
        into = self.resolve(into)
        self.merged[sid] = into
        self.changed.add(sid)
        for absorbed, survivor in self.merged.items():
            if survivor == sid:
                self.merged[absorbed] = into

    def resolve(self, sid: int) -> int:
        """The story a story id now stands for, after merges."""
        return self.merged.get(sid, sid)

    def touch(
        self, sid: int, published: datetime, short: bool, earliest: datetime | None = None
    ) -> None:
        """A copy joined the story: only its time span may grow, and only as an article's
        date could widen it (`short`: the copy is a short text), and within that window of
        the earliest (dated) entry it copies, so that copies a window apart do not widen it
        step by step (a headline republished every day)."""
        old = self.state.get(sid)
        if old is not None and (new := self._widened(old, published, short, earliest)) is not old:
            self.state[sid] = new
            self.changed.add(sid)

    def _widened(
        self,
        story: StoryState,
        published: datetime,
        short: bool,
        earliest: datetime | None = None,
    ) -> StoryState:
        """The story with a date that carries no words of it (a copy's, an article's moved
        in by a join): its span widened to that date only if an article of that date could
        join the story (within its window: `_evidence`), and within that window of
        `earliest` (the copied entry's date); else the story itself. A republication weeks
        later would otherwise open the whole span between to every report of the subject
        (docs/stories.md, tenth session)."""
        _, window = _evidence(short or story.short, self.settings)
        if (
            story.first <= published <= story.last
            or not _near(story, published, published, short, window)
            or (earliest is not None and abs(published - earliest) > window)
        ):
            return story
        return replace(story, first=min(story.first, published), last=max(story.last, published))

    def remove(self, sid: int, vector: Mapping[str, float]) -> None:
        old = self.state.get(sid)
        if old is None:
            return
        centroid = {t: w - vector.get(t, 0.0) for t, w in old.centroid.items()}
        kept, terms = _truncate({t: w for t, w in centroid.items() if w > 1e-9})
        size = max(old.size - 1, 0)
        self._put(StoryState(sid, old.first, old.last, size, kept, old.short), terms)
        self.changed.add(sid)


def _evidence(short: bool, settings: DedupSettings) -> tuple[float, timedelta]:
    """The cosine an article must reach to join a story, and how near in time it must be.

    A headline alone, or with a summary of a few sentences (`SUMMARY_SHINGLES`), says
    little: its few words give lower cosines between reports of one event, so it joins at
    ``headline_threshold``, but only a story near it in time (``headline_window``): a
    subject that comes back days later is another story. The weaker side decides: a short
    article joining any story, any article joining a story of short ones, and two stories
    merging when either is short (`short`) are held to the headline's rule, so the order
    in which a headline and a full text arrive does not change what they make.
    """
    if short:
        return settings.headline_threshold, settings.headline_window
    return settings.story_threshold, settings.story_window


def _near(
    story: StoryState, first: datetime, last: datetime, short: bool, window: timedelta
) -> bool:
    """Whether reports dated [first, last] (an article, a copy, another story) are near
    enough in time to join the story, `window` being `_evidence`'s: headlines joining a
    story of headlines within the window of its first report as well as its last, so that
    a story told in headlines spans at most the window (docs/stories.md, eleventh session);
    else within the window of its span."""
    if short and story.short:
        return story.last - window <= first and last <= story.first + window
    return story.first - window <= last and first <= story.last + window


def story_reach(settings: DedupSettings) -> timedelta:
    """How far from an entry's date the stories it may join can lie (any kind of text)."""
    return max(settings.story_window, settings.headline_window)


def _summed(centroid: Mapping[str, float], vector: Mapping[str, float]) -> dict[str, float]:
    """The centroid with the vector added (as `Counter.update` adds, without its per-item
    Python loop: ~2x faster on a 100-word centroid)."""
    get = centroid.get
    summed = dict(centroid)
    summed.update({t: w + get(t, 0.0) for t, w in vector.items()})
    return summed


def _truncate(centroid: Mapping[str, float]) -> tuple[dict[str, float], list[str]]:
    """The centroid's `CENTROID_TERMS` heaviest words, and its `INDEX_TERMS` heaviest (as
    `top_terms` ranks them: one sort serves both)."""
    # (-weight, word) pairs: a story's sum comes mostly in that order already (the centroid
    # as `_truncate` left it, the article's words after it), which the sort runs through.
    # Sorting the words, then stably by weight, was 11.5 against 16 us on a sum in random
    # order, but 29 against 20 us on the sums a bench run truncates (docs/speed.md).
    ranked = sorted([(-w, t) for t, w in centroid.items()])[:CENTROID_TERMS]
    return {t: -w for w, t in ranked}, [t for _, t in ranked[:INDEX_TERMS]]
