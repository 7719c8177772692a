"""An article's TF-IDF vector: its words weighed by their IDFs, the heaviest kept, unit length."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from itertools import chain, compress, repeat
from operator import add, ge, mul, neg, truediv

from aggregator.dedup.terms import STORY_PRIOR_DOCS, idf_many
from aggregator.types import Pending, Vocabulary

#: Terms an article's vector keeps: its heaviest, which name the event. The rest of a long
#: lead are words many stories hold: kept, they only dilute an article's likeness to its
#: story (measurements in docs/stories.md).
VECTOR_TERMS = 40


def _weigh(terms: Mapping[str, int], idfs: Mapping[str, float]) -> dict[str, float]:
    """A unit-length TF-IDF vector of an article's term counts (`idfs`: each term's IDF),
    of its `VECTOR_TERMS` heaviest terms."""
    # Weights in a list, then the norm and the division over it in C (map): the same
    # floats as dicts built and read back by comprehensions, in less time.
    try:
        weights = [_TF[n] * idfs[t] for t, n in terms.items()]
    except KeyError:  # a count `_TF` lacks (or an IDF missing: raised again there)
        return _weigh_any(terms, idfs)
    return _unit(list(terms), weights)


def _weigh_any(terms: Mapping[str, int], idfs: Mapping[str, float]) -> dict[str, float]:
    """`_weigh` of counts that `_TF` lacks: large ones, and any below 1 (dropped)."""
    weights = {t: (1.0 + math.log(n)) * idfs[t] for t, n in terms.items() if n > 0}
    return _unit(list(weights), list(weights.values()))


def _unit(words: list[str], weights: list[float]) -> dict[str, float]:
    """The vector of the heaviest `VECTOR_TERMS` of `words` (ties: by the word), at unit
    length."""
    if len(weights) > VECTOR_TERMS:
        # The weights from the cut up, found in C (a sort of bare floats, then `compress`);
        # the words keep their order.
        cut = sorted(weights, reverse=True)[VECTOR_TERMS - 1]
        kept = list(map(ge, weights, repeat(cut)))
        words, weights = list(compress(words, kept)), list(compress(weights, kept))
        if len(weights) > VECTOR_TERMS:  # words tied at the cut: the first by the word
            ranked = sorted(zip(map(neg, weights), words, strict=True))[:VECTOR_TERMS]
            words, weights = [w for _, w in ranked], [-w for w, _ in ranked]
    norm = math.sqrt(sum(map(mul, weights, weights)))
    return dict(zip(words, map(truediv, weights, repeat(norm)), strict=True)) if norm else {}


#: count -> 1 + ln(count) for small counts (the bench's terms count at most 7); a count
#: it lacks takes `_weigh_any`, whose ``1.0 + math.log(n)`` gives these same floats.
_TF = {n: 1.0 + math.log(n) for n in range(1, 64)}


def _delta(batch: Sequence[Pending]) -> tuple[Counter[str], int]:
    """The batch's change to the document frequencies, and to the number of documents."""
    df_delta: Counter[str] = Counter()
    docs_delta = 0
    for pending in batch:
        if pending.previous_vector:
            df_delta.subtract(pending.previous_vector.keys())
            docs_delta -= 1
        df_delta.update(pending.features.terms.keys())
        docs_delta += 1
    return df_delta, docs_delta


def article_vectors(
    batch: Sequence[Pending], vocabulary: Vocabulary
) -> dict[int, dict[str, float]]:
    """Each entry's TF-IDF vector, as `assign` weighs it (entry id -> vector)."""
    # The counts with the batch's changes, read only for the batch's words: copying the
    # vocabulary (~16k words) into a Counter to add the batch's changes cost more than the
    # arithmetic it fed. The same ints, so the same IDFs (docs/speed.md, Grouping).
    df_delta, docs_delta = _delta(batch)
    stored = vocabulary.df.get
    words: Collection[str]
    if any(p.previous_vector for p in batch):  # df_delta also holds edits' former words
        words = dict.fromkeys(chain.from_iterable(p.features.terms for p in batch))
        changes: Iterable[int] = map(df_delta.__getitem__, words)
    else:  # df_delta's words are the batch's, in order: its counts need no lookup
        words, changes = df_delta, df_delta.values()
    counts = zip(words, map(add, map(stored, words, repeat(0)), changes), strict=True)
    idfs = idf_many(counts, vocabulary.docs + docs_delta, STORY_PRIOR_DOCS, capped=True)
    return {p.features.entry_id: _weigh(p.features.terms, idfs) for p in batch}
