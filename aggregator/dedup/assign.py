"""Entries -> Articles (copies of one text) -> Stories (one event), decided incrementally.

Everything here is a pure function of its arguments: core loads what a poll's new and
edited entries need from storage (the stored entries sharing a lookup key with them, the
stories active around their dates, the word counts), calls `assign`, and stores the outcome.

Copies (`is_copy`), in this order:

1. Same canonical link (see `urls`), unless both are long texts with nothing in common
   (a feed that links every item to one page); links to a site's front page never count.
2. Same guid within one feed, or in any feeds when the guid names one item everywhere
   (`global_guid`: a URL, a tag:/urn: URI, a UUID); a guid that is a URL is compared
   canonically.
3. Two title-only entries with the same normalised title (at least `MIN_TITLE_TOKENS`).
4. Same text: estimated Jaccard similarity of the bodies' shingles >= ``copy_threshold``.
5. A cut copy: the shorter text, longer than `SUMMARY_SHINGLES`, lies within the longer
   (estimated containment >= `CUT_CONTAINMENT`), wherever the cut was.
6. Same opening (a trimmed or summary-only copy): the openings' similarity >=
   ``lead_threshold``, and the shorter text is either a summary (at most
   `SUMMARY_SHINGLES`) or lies within the longer (estimated containment >=
   ``containment_threshold``).

Candidates come from lookup keys (`entry_keys`): the link, the guid, the title, and the LSH
band keys of both signatures, so that only texts likely to match are ever compared. A copy
joins the article of the entry it matches best (then the story of that article).

Stories: an entry that is not a copy starts an article, and the article joins the story it
is most similar to: the cosine of the article's TF-IDF vector (`terms.entry_terms`,
weighted ``(1 + ln tf) * idf``, the IDF blending the counts over all articles seen so far
with a background prior: `terms.idf`) with the story's centroid (the sum of its articles'
vectors), if that is at least ``story_threshold`` and the story's time span, widened by
``story_window`` on each side, holds the article's date; else it starts a story. An
article with only a title (a headline), or a title and a summary of a few sentences
(`SUMMARY_SHINGLES`), joins at ``headline_threshold`` within
``headline_window`` (`_evidence`): a few words give lower cosines between reports of one
event, and a subject that comes back days later is another story. An entry without a
date of its own (dated by when it was first seen) is not held to the window and does not
widen the span. After the batch, each story that articles joined merges with the most
similar other story while their centroids meet ``story_threshold`` (`_Stories.settle`);
merged stories keep the oldest id. Only stories sharing one of the
article's top words are compared, and of those only the ones whose shared top words alone
carry `CANDIDATE_SHARE` of the
threshold (a measured heuristic, not a bound: see there).
"""

from __future__ import annotations

import hashlib
import math
import re
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from itertools import chain, compress, repeat
from operator import add, ge, mul, neg, truediv
from urllib.parse import urlsplit

import numpy as np
import numpy.typing as npt

from aggregator.dedup import minhash
from aggregator.dedup.terms import entry_terms, idf_many
from aggregator.dedup.text import comparison_words, headline, normalise
from aggregator.dedup.urls import article_url, canonical_url
from aggregator.types import (
    DedupSettings,
    Entry,
    Features,
    Known,
    Outcome,
    Pending,
    Placement,
    StoryState,
    Vocabulary,
)

MIN_TITLE_TOKENS = 6
#: A text this short (in shingles) that opens like another is its summary.
SUMMARY_SHINGLES = 2 * minhash.LEAD_SHINGLES
#: A text longer than `SUMMARY_SHINGLES` that lies this much within another is a copy cut
#: anywhere, even of its opening (portals drop a dateline paragraph or a lede). Measured:
#: the bench's copies that lost their first paragraph estimate 0.90-1.00 (a copy that kept
#: half a text, J ~0.45, ~0.92); a text of which 70% lies within the other estimates ~0.76
#: (the estimate's error at J 0.3-0.5 with 128 permutations is ~0.04 in J).
CUT_CONTAINMENT = 0.9
#: Links shared by texts this long that have almost nothing in common are not one article.
LONG_SHINGLES = 300
#: Words of a story's centroid kept (and of an article's vector used to find stories).
CENTROID_TERMS = 100
INDEX_TERMS = 12
#: Terms an article's vector keeps: its heaviest, which name the event. The rest of a long
#: lead are words many stories hold: kept, they only dilute an article's likeness to its
#: story (measurements in docs/stories.md).
VECTOR_TERMS = 40
#: A candidate story is compared in full only if the words it shares with the article among
#: both's `INDEX_TERMS` heaviest give at least this share of ``story_threshold`` (their part
#: of the cosine). Measured on `bench/cluster_scale.py` at 30k entries: of the candidates
#: sharing an index word, this leaves 35% of an article's and 8% of a settling story's to
#: compare, and none of those scoring above the threshold were among the ones left out
#: (at 1/5 one of 5,133 was); the words an event is told by are the ones put first.
CANDIDATE_SHARE = 1 / 6
#: How far below copy_threshold the text's LSH bands are set.
COPY_BAND_MARGIN = 0.1
#: Band threshold for the opening's LSH keys (lower than lead_threshold: keys only propose).
LEAD_BAND_THRESHOLD = 0.5

_FULL, _LEAD = 1, 2


# --- features ---------------------------------------------------------------------------


def features(entry: Entry, settings: DedupSettings) -> Features:
    """Compute an entry's comparison features (the costly step; linear in its length)."""
    return features_many([entry], settings)[0]


def features_many(entries: Sequence[Entry], settings: DedupSettings) -> list[Features]:
    """`features` of many entries, their MinHash signatures built in one vectorised pass."""
    words = [comparison_words(entry.text or entry.summary) for entry in entries]
    bodies = [" ".join(chunks) for chunks in words]  # `comparison_text`
    codes = [minhash.tokens(body, chunks) for body, chunks in zip(bodies, words, strict=True)]
    full, full_sizes = minhash.shingles_many(codes)
    lead, lead_sizes = minhash.shingles_many(
        [c[: minhash.LEAD_SHINGLES + minhash.SHINGLE - 1] for c in codes]
    )
    signatures = minhash.packed_signature_bytes(full, full_sizes)
    lead_signatures = minhash.packed_signature_bytes(lead, lead_sizes, minhash.LEAD_BINS)
    sizes, leads = full_sizes.tolist(), lead_sizes.tolist()  # ints, as storage takes them
    out = []
    for i, entry in enumerate(entries):
        title = normalise(headline(entry.title, entry.feed_name, entry.link))
        title_key = None
        if sizes[i] == 0:  # keyed by the title without a guessed publisher (`headline`)
            keyed = normalise(headline(entry.title, entry.feed_name, entry.link, guess=False))
            title_codes = minhash.tokens(keyed)
            if len(title_codes) >= MIN_TITLE_TOKENS:
                title_key = title_codes.tobytes().hex()
        out.append(
            Features(
                entry_id=entry.id,
                feed_url=entry.feed_url,
                published=entry.published,
                url=article_url(entry.link, settings.tracking_params),
                guid=canonical_url(entry.guid, settings.tracking_params) or entry.guid,
                title_key=title_key,
                size=sizes[i],
                signature=signatures[i],
                lead_size=leads[i],
                lead=lead_signatures[i],
                terms=entry_terms(title, bodies[i]),
                dated=entry.dated,
            )
        )
    return out


def _key(*parts: str) -> int:
    digest = hashlib.blake2b("\x00".join(parts).encode("utf-8", "surrogatepass"), digest_size=8)
    return int.from_bytes(digest.digest(), "little", signed=True)


def entry_keys(f: Features, settings: DedupSettings) -> tuple[int, ...]:
    """The lookup keys under which an entry's possible copies are found."""
    return entry_keys_many([f], settings)[0]


def entry_keys_many(found: Sequence[Features], settings: DedupSettings) -> list[tuple[int, ...]]:
    """`entry_keys` of many entries, the LSH bands hashed in one vectorised pass."""
    # Bands for a lower threshold than the decision's: keys only propose candidates, and a
    # copy at J = 0.6 must not be missed (recall 0.99 there instead of 0.87).
    band_threshold = max(settings.copy_threshold - COPY_BAND_MARGIN, 0.05)
    full = _bands(found, lambda f: f.signature, band_threshold, _FULL)
    lead = _bands(
        found,
        lambda f: f.lead if f.lead_size >= minhash.LEAD_SHINGLES // 2 else None,
        LEAD_BAND_THRESHOLD,
        _LEAD,
    )
    out = []
    for i, f in enumerate(found):
        keys = [_key("guid", f.feed_url, f.guid)]
        if global_guid(f.guid):
            keys.append(_key("global guid", f.guid))
        if f.url is not None:
            keys.append(_key("url", f.url))
        if f.title_key is not None:
            keys.append(_key("title", f.title_key))
        keys.extend(full.get(i, ()))
        keys.extend(lead.get(i, ()))
        out.append(tuple(keys))
    return out


def _bands(
    found: Sequence[Features],
    blob: Callable[[Features], bytes | None],
    threshold: float,
    kind: int,
) -> dict[int, list[int]]:
    """Band keys of the entries' signatures (`blob`), by position; grouped by length."""
    by_length: dict[int, list[tuple[int, bytes]]] = {}
    for i, f in enumerate(found):
        data = blob(f)
        if data and len(data) % 4 == 0:  # a damaged blob proposes no candidates
            by_length.setdefault(len(data), []).append((i, data))
    out: dict[int, list[int]] = {}
    for rows in by_length.values():
        matrix = np.frombuffer(b"".join(d for _, d in rows), dtype="<u4").reshape(len(rows), -1)
        for (i, _), keys in zip(
            rows, minhash.band_keys_many(matrix, threshold, kind).tolist(), strict=True
        ):
            out[i] = keys
    return out


# --- copies -----------------------------------------------------------------------------


def copy_score(
    a: Features,
    b: Features,
    settings: DedupSettings,
    j: float | None = None,
    lead_j: float | None = None,
) -> float | None:
    """How strongly `a` and `b` are copies of one text (higher is surer), or None if not.

    `j`, `lead_j`: their signatures' and openings' estimated Jaccard similarities, when the
    caller has them already (`minhash.jaccards`: None where a signature is missing or the
    two differ in length).
    """
    if (
        j is None
        and a.signature is not None
        and b.signature is not None
        and len(a.signature) == len(b.signature)  # else not comparable: as if missing
    ):
        j = minhash.jaccard(a.signature, b.signature)
    unrelated = j is not None and min(a.size, b.size) >= LONG_SHINGLES and j < 0.1
    if a.url is not None and a.url == b.url and not unrelated:
        return 3.0
    if a.guid == b.guid and (a.feed_url == b.feed_url or (global_guid(a.guid) and not unrelated)):
        return 3.0
    if a.title_key is not None and a.title_key == b.title_key:
        return 2.0
    if j is None:
        return None
    if j >= settings.copy_threshold:
        return 1.0 + j
    if (
        min(a.size, b.size) > SUMMARY_SHINGLES
        and minhash.containment(j, a.size, b.size) >= CUT_CONTAINMENT
    ):
        return 0.5 + j  # cut anywhere, its opening included
    if a.lead is None or b.lead is None or min(a.lead_size, b.lead_size) < 2 * minhash.SHINGLE:
        return None
    if len(a.lead) != len(b.lead):
        return None
    if lead_j is None:
        lead_j = minhash.jaccard(a.lead, b.lead)
    if lead_j < settings.lead_threshold:
        return None
    if min(a.size, b.size) <= SUMMARY_SHINGLES:
        return 0.5 + j
    if minhash.containment(j, a.size, b.size) >= settings.containment_threshold:
        return 0.5 + j
    return None


def _pair_jaccards(
    blobs: Sequence[bytes | None], left: npt.NDArray[np.intp], right: npt.NDArray[np.intp]
) -> npt.NDArray[np.float64]:
    """`minhash.jaccard` of the signatures `blobs[left[n]]` and `blobs[right[n]]` for each
    pair n at once; NaN where either is missing or the two differ in length."""
    out = np.full(len(left), np.nan)
    lengths = np.array([len(b) if b is not None else -1 for b in blobs], dtype=np.intp)
    for length in np.unique(lengths[left]).tolist():
        if length <= 0 or length % 4:  # missing, or damaged: not comparable
            continue
        rows = np.flatnonzero(lengths == length)
        matrix = np.frombuffer(b"".join(blobs[i] or b"" for i in rows.tolist()), dtype="<u4")
        matrix = matrix.reshape(len(rows), length // 4)
        at = np.full(len(blobs), -1, dtype=np.intp)
        at[rows] = np.arange(len(rows))
        pairs = np.flatnonzero((lengths[left] == length) & (lengths[right] == length))
        a, b = matrix[at[left[pairs]]], matrix[at[right[pairs]]]
        out[pairs] = np.count_nonzero(a == b, axis=1) / (length // 4)
    return out


def _codes(values: Iterable[str | None]) -> npt.NDArray[np.intp]:
    """Each value's number (equal values, equal numbers); None is -1 (equal to nothing)."""
    numbers: dict[str, int] = {}
    return np.array(
        [-1 if v is None else numbers.setdefault(v, len(numbers)) for v in values], dtype=np.intp
    )


def copy_scores(
    found: Sequence[Features],
    left: npt.NDArray[np.intp],
    right: npt.NDArray[np.intp],
    settings: DedupSettings,
) -> npt.NDArray[np.float64]:
    """`copy_score(found[left[n]], found[right[n]])` for each pair n at once, NaN for None.

    The same rules in the same order, as arrays: one numpy pass over all of a batch's
    candidate pairs instead of a Python call per pair (an entry of a dense stream has
    dozens of candidates).
    """
    j = _pair_jaccards([f.signature for f in found], left, right)
    lead_j = _pair_jaccards([f.lead for f in found], left, right)
    sizes = np.array([f.size for f in found], dtype=np.int64)
    leads = np.array([f.lead_size for f in found], dtype=np.int64)
    url, guid, feed, title = (
        _codes([getattr(f, name) for f in found])
        for name in ("url", "guid", "feed_url", "title_key")
    )
    everywhere = np.array([global_guid(f.guid) for f in found], dtype=bool)
    size_a, size_b = sizes[left], sizes[right]
    smaller = np.minimum(size_a, size_b)
    known = ~np.isnan(j)
    with np.errstate(invalid="ignore", divide="ignore"):
        inside = np.where(
            smaller == 0, 0.0, np.minimum(1.0, j * (size_a + size_b) / (1.0 + j) / smaller)
        )
    unrelated = known & (smaller >= LONG_SHINGLES) & (j < 0.1)
    same_url = (url[left] >= 0) & (url[left] == url[right]) & ~unrelated
    same_guid = (guid[left] == guid[right]) & (
        (feed[left] == feed[right]) | (everywhere[left] & ~unrelated)
    )
    same_title = (title[left] >= 0) & (title[left] == title[right])
    lead_ok = (
        known
        & ~np.isnan(lead_j)  # both openings there, of one length
        & (np.minimum(leads[left], leads[right]) >= 2 * minhash.SHINGLE)
        & (lead_j >= settings.lead_threshold)
    )
    return np.select(
        [
            same_url | same_guid,
            same_title,
            ~known,
            j >= settings.copy_threshold,
            (smaller > SUMMARY_SHINGLES) & (inside >= CUT_CONTAINMENT),
            ~lead_ok,
            smaller <= SUMMARY_SHINGLES,
            inside >= settings.containment_threshold,
        ],
        [3.0, 2.0, np.nan, 1.0 + j, 0.5 + j, np.nan, 0.5 + j, 0.5 + j],
        default=np.nan,
    )


_UUID = re.compile(
    r"^(?:urn:uuid:)?[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I
)


def global_guid(guid: str) -> bool:
    """True for a guid that names one item everywhere: an http(s) URL, a ``tag:`` or ``urn:``
    URI, or a UUID. Wires' partners often keep such a guid when they republish; a guid like
    "1234" means something only within its feed."""
    if guid.startswith("https://"):
        return bool(urlsplit(guid).path)  # a site's front page names no item
    return guid.startswith(("tag:", "urn:")) or bool(_UUID.match(guid))


def is_copy(a: Features, b: Features, settings: DedupSettings) -> bool:
    """True when the two entries are copies of one text (the module docstring's rules)."""
    return copy_score(a, b, settings) is not None


def _copy_matches(
    ordered: Sequence[Pending],
    batch_keys: Sequence[tuple[int, ...]],
    known: Sequence[Known],
    repeated: Collection[int],
    settings: DedupSettings,
) -> list[int | Known | None]:
    """What each entry of the batch (oldest first) is a copy of: the stored entry or the
    earlier entry of the batch (its position) it matches best, or None.

    Its candidates are the stored entries sharing a lookup key with it (of `known`) and the
    earlier entries of the batch sharing one of the keys several entries have
    (`repeated`); of those scoring as copies (`copy_scores`), the highest, and of equal
    ones the lowest entry id.
    """
    entities: list[Features] = [p.features for p in ordered]
    owners: list[Known] = []  # the stored entries, after the batch's entities
    seen: set[int] = set()
    for k in known:  # pairs are made below only under the keys they share
        if k.features.entry_id not in seen:
            seen.add(k.features.entry_id)
            entities.append(k.features)
            owners.append(k)
    batch_key = np.fromiter(chain(*batch_keys), dtype=np.int64)
    batch_at = np.repeat(np.arange(len(batch_keys)), [len(keys) for keys in batch_keys])
    stored_key = np.fromiter(chain.from_iterable(k.keys for k in owners), dtype=np.int64)
    stored_at = np.repeat(np.arange(len(ordered), len(entities)), [len(k.keys) for k in owners])
    # Stored candidates: each (key, entry) of the batch against the stored entries with
    # that key; earlier entries of the batch: against those before it under a repeated key.
    by_stored = np.argsort(stored_key, kind="stable")
    stored_key, stored_at = stored_key[by_stored], stored_at[by_stored]
    begin = np.searchsorted(stored_key, batch_key, side="left")
    end = np.searchsorted(stored_key, batch_key, side="right")
    lefts_s, rights_s = batch_at.repeat(end - begin), stored_at[_ranges(begin, end)]
    by_batch = np.lexsort((batch_at, batch_key))
    sorted_key, sorted_at = batch_key[by_batch], batch_at[by_batch]
    group = np.searchsorted(sorted_key, sorted_key, side="left")
    here = np.arange(len(sorted_key))
    if repeated:
        usable = np.isin(sorted_key, np.fromiter(repeated, dtype=np.int64))
        group = np.where(usable, group, here)
    else:
        group = here
    lefts_b, rights_b = sorted_at.repeat(here - group), sorted_at[_ranges(group, here)]
    pairs = np.unique(
        np.concatenate([lefts_s, lefts_b]) * len(entities) + np.concatenate([rights_s, rights_b])
    )
    lefts, rights = np.divmod(pairs, len(entities))
    keep = lefts != rights  # an entry listing one key twice is not its own candidate
    lefts, rights = lefts[keep], rights[keep]
    out: list[int | Known | None] = [None] * len(ordered)
    if not len(lefts):
        return out
    scores = copy_scores(entities, lefts, rights, settings)
    hit = np.flatnonzero(~np.isnan(scores))
    ids = np.array([entities[r].entry_id for r in rights[hit].tolist()], dtype=np.int64)
    ranked = hit[np.lexsort((ids, -scores[hit], lefts[hit]))]
    first = np.ones(len(ranked), dtype=bool)
    first[1:] = lefts[ranked[1:]] != lefts[ranked[:-1]]
    n = len(ordered)
    for i, r in zip(lefts[ranked[first]].tolist(), rights[ranked[first]].tolist(), strict=True):
        out[i] = r if r < n else owners[r - n]
    return out


def _ranges(begin: npt.NDArray[np.intp], end: npt.NDArray[np.intp]) -> npt.NDArray[np.intp]:
    """The positions begin[n] .. end[n] - 1 of every n, one after another."""
    counts = end - begin
    total = int(counts.sum())
    if not total:
        return np.zeros(0, dtype=np.intp)
    starts = np.repeat(begin - np.cumsum(counts) + counts, counts)
    return starts + np.arange(total)


# --- stories ----------------------------------------------------------------------------


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


def top_terms(vector: Mapping[str, float], n: int) -> list[str]:
    """The n heaviest terms, heaviest first (ties by the term, for stable results)."""
    # One sort of (-weight, term) pairs: tuples compare in C, no key function per item
    # (~2x faster than sorting by term, then stably by weight; the same order).
    ranked = sorted([(-w, t) for t, w in vector.items()])
    return [t for _, t in ranked[:n]]


def _dot(a: Mapping[str, float], b: Mapping[str, float]) -> float:
    if len(a) > len(b):
        a, b = b, a
    common = a.keys() & b.keys()  # in C, over the smaller; few words are shared
    # fsum is exact, so the (hash-seeded) order of the set cannot change a result.
    return math.fsum(map(mul, map(a.__getitem__, common), map(b.__getitem__, common)))


def _norm(vector: Mapping[str, float]) -> float:
    # hypot computes the length in C, ~3x faster on 100 words than a Python sum of squares
    # (and more accurately: it differs from that sum in the last bit for many vectors).
    return math.hypot(*vector.values())


class StoryMemo:
    """The index of the stories one batch loaded, kept for the next batch.

    Consecutive batches load mostly the same stories, unchanged, and storage hands back the
    very centroid object it decoded before when a story's stored row is unchanged (see
    `SqliteStorage.stories_near`). Each indexed story is held with the centroid object its
    entries were computed from, and checked by that identity: a story changed since, here
    or by another process, comes with a new centroid and is indexed afresh, and stories
    not loaded again leave the index, so a memo never changes a decision.
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
            if hit is not None and hit[0] is story.centroid:  # indexed as it is
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
        """The most similar story within the window of [published, last], if similar enough.

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
        for term in top_terms(vector, INDEX_TERMS) if terms is None else terms:
            posting = index.get(term)
            if posting:
                weight = vector[term] * scale
                for sid, other in posting.items():
                    shared[sid] = shared.get(sid, 0.0) + weight * other
        indexed = self.indexed
        best: tuple[float, int] | None = None
        for sid in sorted(shared):
            norm = indexed[sid][1]
            if not norm:
                continue
            story = state[sid]
            threshold, window = _evidence(short or story.short, settings)
            if merging:
                threshold = settings.story_threshold
            if shared[sid] < threshold * CANDIDATE_SHARE * norm:
                continue
            if story.size <= 0 or sid == exclude or sid in self.merged:
                continue
            if dated and not (story.first - window <= last and published <= story.last + window):
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
    ) -> None:
        """The article joins the story `sid` (a new one, or one an edit emptied, afresh)."""
        old = self.state.get(sid)
        if old is None or old.size <= 0:
            self._put(StoryState(sid, published, published, 1, dict(vector), short))
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
            # The oldest id survives: alerts and pages link to a story by its id, and the
            # ids merged into it are recorded as pointing to it (storage's story aliases).
            into, gone = min(sid, other), max(sid, other)
            a, b = self.state[into], self.state[gone]
            kept, terms = _truncate(_summed(a.centroid, b.centroid))
            first, last = min(a.first, b.first), max(a.last, b.last)
            short = a.short and b.short
            self._put(StoryState(into, first, last, a.size + b.size, kept, short), terms)
            self._put(StoryState(gone, b.first, b.last, 0, {}, b.short))
            self.merged[gone] = into
            self.changed.update((into, gone))
            for absorbed, survivor in self.merged.items():
                if survivor == gone:
                    self.merged[absorbed] = into
            sid = into

    def vacate(self, sid: int, into: int) -> None:
        """An edit took the last article of story `sid` to story `into`: `sid` now points
        to `into`, as a story merged into it does (a link to it still finds the entry)."""
        story = self.state.get(sid)
        if sid == into or sid in self.merged or story is None or story.size > 0:
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

    def touch(self, sid: int, published: datetime) -> None:
        """A copy joined the story: only its time span may grow."""
        old = self.state.get(sid)
        if old is not None and not old.first <= published <= old.last:
            first, last = min(old.first, published), max(old.last, published)
            self.state[sid] = StoryState(sid, first, last, old.size, old.centroid, old.short)
            self.changed.add(sid)

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
    ranked = sorted([(-w, t) for t, w in centroid.items()])[:CENTROID_TERMS]
    return {t: -w for w, t in ranked}, [t for _, t in ranked[:INDEX_TERMS]]


# --- the decision -----------------------------------------------------------------------


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
    idfs = idf_many(counts, vocabulary.docs + docs_delta)
    return {p.features.entry_id: _weigh(p.features.terms, idfs) for p in batch}


def story_lookup_terms(vectors: Iterable[Mapping[str, float]]) -> set[str]:
    """The words under which the stories a batch may join are indexed.

    An article is compared only with stories sharing one of its `INDEX_TERMS` heaviest
    words (`_Stories.best`), so these are all the caller needs to load.
    """
    found: set[str] = set()
    for vector in vectors:
        found.update(index_terms(vector))
    return found


def index_terms(vector: Mapping[str, float], n: int = INDEX_TERMS) -> Collection[str]:
    """The words of ``top_terms(vector, n)``, in no particular order.

    Where only which words matter (the stories a batch loads), a cutoff saves sorting
    every word: the n-th heaviest weight is found among the bare
    floats, and only the words tied at it are ordered, by the term as `top_terms` orders
    them (~1 vector in 6 of the bench's has such a tie). ~30% less time than `top_terms`.
    """
    if n <= 0:
        return []
    if len(vector) <= n:
        return vector.keys()
    cutoff = sorted(vector.values())[-n]
    top = [t for t, w in vector.items() if w >= cutoff]
    if len(top) == n:
        return top
    above = [t for t in top if vector[t] > cutoff]
    return above + sorted([t for t in top if vector[t] == cutoff])[: n - len(above)]


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
    for pending, keys, match in zip(ordered_batch, batch_keys, matches, strict=True):
        f = pending.features
        vector: dict[str, float] | None = None
        if match is not None:
            copied = placements[match] if isinstance(match, int) else match
            article_id, story_id = copied.article_id, within.resolve(copied.story_id)
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
        replace(p, story_id=within.resolve(p.story_id)) if p.story_id in within.merged else p
        for p in placements
    ]
    return Outcome(
        placements=placements,
        merged=dict(within.merged),
        stories=[within.state[s] for s in sorted(within.changed)],
        story_terms={s: list(within.indexed[s][2]) for s in within.changed},  # not the memo's
        df_delta={t: n for t, n in df_delta.items() if n},
        docs_delta=docs_delta,
        next_id=next_id,
    )
