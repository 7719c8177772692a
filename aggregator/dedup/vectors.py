"""An article's TF-IDF vector: its words weighed by their IDFs, the heaviest kept, unit length."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from functools import reduce
from itertools import chain, compress, count, repeat
from operator import add, ge, mul, neg, truediv

import numpy as np
import numpy.typing as npt

from aggregator.dedup.stories import INDEX_TERMS, top_terms
from aggregator.dedup.terms import STORY_PRIOR_DOCS, PackedTerms, idf_array
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
    # Summed left to right (`reduce`, not `sum`: from Python 3.12 `sum` compensates, and
    # the norm, `_weigh_all`'s too, must be the same floats on every version).
    norm = math.sqrt(reduce(add, map(mul, weights, weights), 0.0))
    return dict(zip(words, map(truediv, weights, repeat(norm)), strict=True)) if norm else {}


#: count -> 1 + ln(count) for small counts (the bench's terms count at most 7); a count
#: it lacks takes `_weigh_any`, whose ``1.0 + math.log(n)`` gives these same floats.
_TF = {n: 1.0 + math.log(n) for n in range(1, 64)}


@dataclass(frozen=True)
class BatchTerms:
    """A batch's term counts laid out flat, read once: what `article_vectors` weighs and
    `assign` counts (`df_delta`), without a dictionary pass over every entry's terms each.

    Entry `i`'s terms are `index[bounds[i]:bounds[i + 1]]` (positions in `words`), in the
    order of its `Features.terms`, with their `counts`.
    """

    #: The batch's distinct words: in the order first met, or where every entry's terms
    #: are `PackedTerms`, in their tables' (those of each table the batch holds, in the
    #: table's order, the tables in the order their first entry is met). Nothing decided
    #: depends on it.
    words: list[str]
    index: npt.NDArray[np.intp]
    counts: npt.NDArray[np.int64]
    bounds: npt.NDArray[np.intp]
    #: The change to the document frequencies (words of edited entries' former vectors
    #: too; none of 0) and to the number of documents (`edited`).
    df_delta: Mapping[str, int]
    docs_delta: int
    #: Each of `words`' net change of document frequency, in `words`' order (0 where
    #: `df_delta` leaves the word out).
    changes: list[int]

    @classmethod
    def of(cls, batch: Sequence[Pending]) -> BatchTerms:
        terms = [p.features.terms for p in batch]
        packed = [t for t in terms if type(t) is PackedTerms]
        if terms and len(packed) == len(terms):
            return cls._packed(packed, len(batch)).edited(batch)
        bounds = _offsets(np.fromiter(map(len, terms), dtype=np.intp, count=len(terms)))
        total = int(bounds[-1])
        flat = chain.from_iterable(terms)
        # Each word once, at the position it was first met: one dictionary step a term.
        first: dict[str, int] = {}
        at = np.fromiter(map(first.setdefault, flat, count()), dtype=np.intp, count=total)
        dense = np.zeros(total, dtype=np.intp)
        dense[np.fromiter(first.values(), dtype=np.intp, count=len(first))] = np.arange(
            len(first), dtype=np.intp
        )
        index = dense[at]
        counts = np.fromiter(
            chain.from_iterable(t.values() for t in terms), dtype=np.int64, count=total
        )
        words = list(first)
        # An entry's terms are distinct: a word's documents are the entries holding it.
        changes = np.bincount(index, minlength=len(words)).tolist()
        df = dict(zip(words, changes, strict=True))
        plain = cls(words, index, counts, bounds, df, len(batch), changes)
        return plain.edited(batch)

    @classmethod
    def _packed(cls, terms: Sequence[PackedTerms], docs: int) -> BatchTerms:
        """`of` terms packed by `terms.pack_terms`: by feature workers (each worker's pieces
        share its table: `aggregator.wordtables`), or by a piece or a whole batch computed
        here. The positions are mapped in numpy; a word is looked up only where several
        tables meet, and only the words the batch holds."""
        tables: list[list[str]] = []
        bases: dict[int, int] = {}  # a table (by id) -> where it begins, the tables end to end
        starts = []
        total = 0
        for t in terms:
            base = bases.get(id(t.table))
            if base is None:
                base = bases[id(t.table)] = total
                tables.append(t.table)
                total += len(t.table)  # (a worker's copy may grow meanwhile: not its start)
            starts.append(base)
        sizes = np.fromiter(map(len, terms), dtype=np.intp, count=len(terms))
        local = np.frombuffer(b"".join(t.index for t in terms), dtype=np.uintc)
        at = local.astype(np.intp) + np.repeat(np.array(starts, dtype=np.intp), sizes)
        # The places the batch holds (not a table's words of entries outside it: a worker's
        # earlier pieces, `Placer._only`), ascending: each table's in turn.
        used = np.flatnonzero(np.bincount(at, minlength=total))
        ends = np.searchsorted(used, [*bases.values(), total]).tolist()
        names: list[str] = []
        for table, base, a, b in zip(tables, bases.values(), ends, ends[1:], strict=False):
            names += map(table.__getitem__, (used[a:b] - base).tolist())
        place = np.zeros(total, dtype=np.intp)  # a place's word among the batch's
        if len(tables) == 1:  # each word once
            words = names
            place[used] = np.arange(len(used), dtype=np.intp)
        else:  # a word in several tables is one word (`len(first)` read before it is set)
            first: dict[str, int] = {}
            place[used] = [first.setdefault(word, len(first)) for word in names]
            words = list(first)
        index = place[at]
        # An entry's terms are distinct: a word's documents are the entries holding it.
        changes = np.bincount(index, minlength=len(words)).tolist()
        df = dict(zip(words, changes, strict=True))
        counts = np.frombuffer(b"".join(t.counts for t in terms), dtype=np.uintc)
        return cls(words, index, counts.astype(np.int64), _offsets(sizes), df, docs, changes)

    def edited(self, batch: Sequence[Pending]) -> BatchTerms:
        """These counts of `batch`'s entries, with the words of the edited ones' former
        vectors uncounted (`Pending.previous_vector`)."""
        edited = [p.previous_vector for p in batch if p.previous_vector]
        if not edited:
            return self
        # Each word's entries counted from this layout, the edited entries' former words
        # uncounted, and each edited entry once less: its terms are not read again (a
        # `PackedTerms` would build its dictionary).
        held = np.bincount(self.index, minlength=len(self.words)).tolist()
        counted = Counter(dict(zip(self.words, held, strict=True)))
        for vector in edited:
            counted.subtract(vector.keys())
        docs_delta = len(batch) - len(edited)
        df_delta = {t: n for t, n in counted.items() if n}  # (words both uncounted and counted)
        return replace(
            self,
            df_delta=df_delta,
            docs_delta=docs_delta,
            changes=list(map(counted.__getitem__, self.words)),
        )


@dataclass(frozen=True)
class Weighed:
    """A batch's vectors (entry id -> vector), and each one's `INDEX_TERMS` heaviest words
    as `stories.top_terms` ranks them (the words it looks for stories under)."""

    vectors: dict[int, dict[str, float]]
    heads: dict[int, list[str]]


def article_vectors(
    batch: Sequence[Pending], vocabulary: Vocabulary, terms: BatchTerms | None = None
) -> dict[int, dict[str, float]]:
    """Each entry's TF-IDF vector, as `assign` weighs it (entry id -> vector): `weigh`'s."""
    return weigh(batch, vocabulary, terms).vectors


def weigh(
    batch: Sequence[Pending], vocabulary: Vocabulary, terms: BatchTerms | None = None
) -> Weighed:
    """Each entry's TF-IDF vector, `_weigh`'s to the bit, of the IDFs with the batch counted
    (`terms`: `BatchTerms.of(batch)`, when the caller has it), and its heaviest words."""
    if terms is None:
        terms = BatchTerms.of(batch)
    # The counts with the batch's changes, read only for the batch's words: copying the
    # vocabulary (~16k words) into a Counter to add the batch's changes cost more than the
    # arithmetic it fed. The same ints, so the same IDFs (docs/speed.md, Grouping).
    stored = vocabulary.df.get
    words = terms.words
    dfs = map(add, map(stored, words, repeat(0)), terms.changes)
    docs = vocabulary.docs + terms.docs_delta
    idfs = idf_array(words, dfs, docs, STORY_PRIOR_DOCS, capped=True)
    ids = [p.features.entry_id for p in batch]
    counts = terms.counts
    if len(counts) and not (counts.min() > 0 and counts.max() < len(_TF_ARRAY)):
        # A count `_TF` lacks (rare): entry by entry.
        by_word = dict(zip(words, idfs.tolist(), strict=True))
        vectors = {i: _weigh(p.features.terms, by_word) for i, p in zip(ids, batch, strict=True)}
        return Weighed(vectors, {i: top_terms(v, INDEX_TERMS) for i, v in vectors.items()})
    found, heads = _weigh_all(terms, idfs)
    return Weighed(dict(zip(ids, found, strict=True)), dict(zip(ids, heads, strict=True)))


#: Entries of more terms than this have their cut found alone, not in `_weigh_all`'s
#: table (as wide as its widest entry; a feed's entry has a few hundred at most).
_WIDEST = 1024

#: `_TF` as an array (count -> weight; 0 unused).
_TF_ARRAY = np.array([math.nan, *(_TF[n] for n in range(1, len(_TF) + 1))], dtype=np.float64)


def _weigh_all(
    terms: BatchTerms, idfs: npt.NDArray[np.float64]
) -> tuple[list[dict[str, float]], list[list[str]]]:
    """`_weigh` of every entry of `terms` (`idfs`: of `terms.words`, in order), in numpy,
    with the same floats in the same order: the products and quotients are IEEE's either
    way, the norm is summed in the vector's order (`np.cumsum` adds as `_unit` does) and
    `np.sqrt` rounds as `math.sqrt`; words tied at the cut are ranked as `_unit` ranks them
    (by weight, then by the word). With each vector's `INDEX_TERMS` heaviest words, ranked
    as `top_terms` ranks them."""
    rows, bounds, index, words = len(terms.bounds) - 1, terms.bounds, terms.index, terms.words
    sizes = np.diff(bounds)
    weights = _TF_ARRAY[terms.counts] * idfs[index]
    row = np.repeat(np.arange(rows, dtype=np.intp), sizes)
    kept = np.arange(len(weights), dtype=np.intp)
    long = np.flatnonzero(sizes > VECTOR_TERMS)
    if len(long):
        # Each long entry's `VECTOR_TERMS`-th heaviest weight, from one partition of a
        # padded table of them; its weights from that one up are kept.
        cut = np.full(rows, -np.inf)
        # (An entry of very many terms alone: the table is as wide as the widest.)
        for r in long[sizes[long] > _WIDEST].tolist():
            mine = weights[bounds[r] : bounds[r + 1]]
            cut[r] = np.partition(mine, len(mine) - VECTOR_TERMS)[len(mine) - VECTOR_TERMS]
        long = long[sizes[long] <= _WIDEST]
        if len(long):
            width = int(sizes[long].max())
            table = np.full((len(long), width), -np.inf)
            slot = np.full(rows, -1, dtype=np.intp)
            slot[long] = np.arange(len(long))
            mask = slot[row] >= 0
            table[slot[row[mask]], kept[mask] - bounds[row[mask]]] = weights[mask]
            cut[long] = np.partition(table, width - VECTOR_TERMS, axis=1)[:, width - VECTOR_TERMS]
        kept = np.flatnonzero(weights >= cut[row])
    kept_row = row[kept]
    tied = np.bincount(kept_row, minlength=rows) > VECTOR_TERMS
    if tied.any():
        # More kept than `VECTOR_TERMS` (weights equal at the cut): those entries' kept
        # words by weight, heaviest first, then by the word, the first `VECTOR_TERMS` of
        # them in that order.
        among = tied[kept_row]
        ties, tie_row = kept[among], kept_row[among]
        order = _ranked(tie_row, weights[ties], index[ties], words)
        ties, tie_row = ties[order], tie_row[order]
        first = _places(tie_row, _offsets(np.bincount(tie_row, minlength=rows))) < VECTOR_TERMS
        kept = np.concatenate([kept[~among], ties[first]])
        kept_row = np.concatenate([kept_row[~among], tie_row[first]])
        order = np.argsort(kept_row, kind="stable")  # by entry, each in its order
        kept, kept_row = kept[order], kept_row[order]
    runs = _offsets(np.bincount(kept_row, minlength=rows))
    col = _places(kept_row, runs)  # each kept word's place in its vector
    squares = np.zeros((rows, VECTOR_TERMS))
    kept_weights = weights[kept]
    squares[kept_row, col] = np.square(kept_weights)
    norms = np.sqrt(np.cumsum(squares, axis=1)[:, -1])
    unit = kept_weights / np.where(norms > 0, norms, 1.0)[kept_row]
    values = unit.tolist()
    kept_words = index[kept]
    names = list(map(words.__getitem__, kept_words.tolist()))
    ends, positive = runs.tolist(), (norms > 0).tolist()
    vectors = [
        dict(zip(names[a:b], values[a:b], strict=True)) if positive[r] else {}
        for r, (a, b) in enumerate(zip(ends, ends[1:], strict=False))
    ]
    # The heads: each vector's words by unit weight, heaviest first, then by the word,
    # ranked among those from its `INDEX_TERMS`-th heaviest weight up (one partition of
    # a table of the unit weights finds it).
    table = np.full((rows, VECTOR_TERMS), -np.inf)
    table[kept_row, col] = unit
    at = max(VECTOR_TERMS - INDEX_TERMS, 0)
    heavy = np.flatnonzero(unit >= np.partition(table, at, axis=1)[:, at][kept_row])
    order = heavy[_ranked(kept_row[heavy], unit[heavy], kept_words[heavy], words)]
    ranked = kept_row[order]
    chosen = order[_places(ranked, _offsets(np.bincount(ranked, minlength=rows))) < INDEX_TERMS]
    head_names = list(map(words.__getitem__, kept_words[chosen].tolist()))
    head_ends = _offsets(np.bincount(kept_row[chosen], minlength=rows)).tolist()
    heads = [
        head_names[a:b] if positive[r] else []
        for r, (a, b) in enumerate(zip(head_ends, head_ends[1:], strict=False))
    ]
    return vectors, heads


def _ranked(
    rows: npt.NDArray[np.intp],
    weights: npt.NDArray[np.float64],
    at: npt.NDArray[np.intp],
    words: Sequence[str],
) -> npt.NDArray[np.intp]:
    """The order of items by row, then by weight, heaviest first, then by their word
    (`words[at]`) as `sorted` orders words: `np.lexsort` of the words' ranks, the weights
    negated and the rows, with the words ranked only where a row holds a weight twice.

    Ranking every word of a batch (a sort of ~25k strings) took ~20% of `weigh`; a row's
    words are distinct, so only items of one row and one weight need their words compared.
    (Not numpy's string sort: its fixed-width strings drop trailing NULs and take the
    longest word's width for every word.)"""
    order = np.lexsort((-weights, rows))
    in_rows, by_weight = rows[order], weights[order]
    same = (in_rows[1:] == in_rows[:-1]) & (by_weight[1:] == by_weight[:-1])
    if not same.any():
        return order
    tied = np.zeros(len(order), dtype=bool)
    tied[1:] = same
    tied[:-1] |= same
    # The tied items' distinct words, ranked as `sorted` ranks them.
    distinct, where = np.unique(at[order[tied]], return_inverse=True)
    names = list(map(words.__getitem__, distinct.tolist()))
    rank = np.empty(len(distinct), dtype=np.intp)
    rank[sorted(range(len(names)), key=names.__getitem__)] = np.arange(len(names))
    key = np.zeros(len(order), dtype=np.intp)  # (0 where a row's weight is its word's own)
    key[tied] = rank[where]
    return order[np.lexsort((key, -by_weight, in_rows))]


def _offsets(counts: npt.NDArray[np.intp]) -> npt.NDArray[np.intp]:
    """0, then the running totals of `counts`: where each run of that many items begins,
    and where the last ends."""
    offsets = np.zeros(len(counts) + 1, dtype=np.intp)
    np.cumsum(counts, out=offsets[1:])
    return offsets


def _places(
    ordered_rows: npt.NDArray[np.intp], offsets: npt.NDArray[np.intp]
) -> npt.NDArray[np.intp]:
    """Each item's place in its row's run (`ordered_rows`: row numbers, ascending;
    `offsets`: where each row's run begins, `_offsets` of their counts)."""
    return np.arange(len(ordered_rows)) - offsets[ordered_rows]
