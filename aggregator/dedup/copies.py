"""Whether two entries are copies of one text, and what each entry of a batch is a copy of.

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
band keys of both signatures, so that only texts likely to match are ever compared.

An article is a connected group of copies: an entry that is a copy of entries in several
articles joins them into one (`assign`; the oldest article id survives). So which entries
end up together does not depend on the order they arrive in or the batches they are
placed in: a copy of a copy (A, then C, then B that both resemble) is one article however
A, B and C come.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import chain

import numpy as np
import numpy.typing as npt

from aggregator.dedup import minhash
from aggregator.dedup.features import global_guid
from aggregator.dedup.index import KeyHits, distinct, ranges
from aggregator.types import DedupSettings, Features, Known, Pending

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


#: Candidate pairs whose signatures `_pair_jaccards` compares at once (~4 MiB a side).
PAIR_CHUNK = 8192


def _pair_jaccards(
    blobs: Sequence[bytes | None],
    left: npt.NDArray[np.intp],
    right: npt.NDArray[np.intp],
    bound: bool = False,
) -> npt.NDArray[np.float64]:
    """`minhash.jaccard` of the signatures `blobs[left[n]]` and `blobs[right[n]]` for each
    pair n at once; NaN where either is missing or the two differ in length.

    `bound`: at most that, never less, from half the bytes: the share of the hash values
    whose low 16 bits agree (two values equal agree there too).
    """
    out = np.full(len(left), np.nan)
    if not len(left):
        return out
    lengths = np.array([len(b) if b is not None else -1 for b in blobs], dtype=np.intp)
    for length in sorted(set(lengths.tolist())):  # np.unique on the pairs: 10x slower
        if length <= 0 or length % 4:  # missing, or damaged: not comparable
            continue
        rows = np.flatnonzero(lengths == length)
        matrix = np.frombuffer(b"".join(blobs[i] or b"" for i in rows.tolist()), dtype="<u4")
        matrix = matrix.reshape(len(rows), length // 4)
        if bound:
            matrix = (matrix & 0xFFFF).astype(np.uint16)
        at = np.full(len(blobs), -1, dtype=np.intp)
        at[rows] = np.arange(len(rows))
        pairs = np.flatnonzero((lengths[left] == length) & (lengths[right] == length))
        # A slice of the pairs at a time: a dense batch has hundreds of thousands of
        # candidate pairs, and their signatures side by side took hundreds of MiB at once.
        for start in range(0, len(pairs), PAIR_CHUNK):
            some = pairs[start : start + PAIR_CHUNK]
            a, b = matrix[at[left[some]]], matrix[at[right[some]]]
            out[some] = np.count_nonzero(a == b, axis=1) / (length // 4)
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
    signatures = [f.signature for f in found]
    sizes = np.array([f.size for f in found], dtype=np.int64)
    leads = np.array([f.lead_size for f in found], dtype=np.int64)
    url, guid, feed, title = (
        _codes([getattr(f, name) for f in found])
        for name in ("url", "guid", "feed_url", "title_key")
    )
    everywhere = np.array([global_guid(f.guid) for f in found], dtype=bool)
    size_a, size_b = sizes[left], sizes[right]
    smaller = np.minimum(size_a, size_b)

    def within(j: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """How much of the smaller text the other holds, from their Jaccard (rising with it)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(
                smaller == 0, 0.0, np.minimum(1.0, j * (size_a + size_b) / (1.0 + j) / smaller)
            )

    same_key = (url[left] >= 0) & (url[left] == url[right]) | (guid[left] == guid[right])
    # Most candidate pairs of a dense batch are far from any rule: a bound of their Jaccard
    # (half the bytes compared) rules them out, and only the rest are compared in full.
    # A pair ruled out keeps the bound as its Jaccard: every rule that reads it is false
    # for the bound, and so for the Jaccard, which is at most the bound.
    j = _pair_jaccards(signatures, left, right, bound=True)
    known = ~np.isnan(j)
    full = np.flatnonzero(
        known
        & (
            same_key
            | (smaller <= SUMMARY_SHINGLES)
            | (j >= settings.copy_threshold)
            | (within(j) >= min(CUT_CONTAINMENT, settings.containment_threshold))
        )
    )
    j[full] = _pair_jaccards(signatures, left[full], right[full])
    inside = within(j)
    # The openings are compared only where they can decide (the last three rules: a
    # summary, or a text within the other): most pairs of a dense batch are neither.
    lead_j = np.full(len(left), np.nan)
    compared = np.flatnonzero(
        known
        & (np.minimum(leads[left], leads[right]) >= 2 * minhash.SHINGLE)
        & ((smaller <= SUMMARY_SHINGLES) | (inside >= settings.containment_threshold))
    )
    lead_j[compared] = _pair_jaccards([f.lead for f in found], left[compared], right[compared])
    unrelated = known & (smaller >= LONG_SHINGLES) & (j < 0.1)
    same_url = (url[left] >= 0) & (url[left] == url[right]) & ~unrelated
    same_guid = (guid[left] == guid[right]) & (
        (feed[left] == feed[right]) | (everywhere[left] & ~unrelated)
    )
    same_title = (title[left] >= 0) & (title[left] == title[right])
    lead_ok = ~np.isnan(lead_j) & (lead_j >= settings.lead_threshold)  # both there, alike
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


def is_copy(a: Features, b: Features, settings: DedupSettings) -> bool:
    """True when the two entries are copies of one text (the module docstring's rules)."""
    return copy_score(a, b, settings) is not None


def _copy_matches(
    ordered: Sequence[Pending],
    batch_keys: Sequence[tuple[int, ...]],
    known: Sequence[Known],
    shared: KeyHits,
    settings: DedupSettings,
    flat: tuple[npt.NDArray[np.int64], npt.NDArray[np.intp]] | None = None,
) -> list[list[int | Known]]:
    """What each entry of the batch (oldest first) is a copy of: the stored entries and the
    earlier entries of the batch (their positions) it matches, best first; [] for none.

    Its candidates are the stored entries (of `known`) sharing a lookup key with it (the
    pairs of `shared`: stored entry, key) and the earlier entries of the batch sharing one
    of its keys; those scoring as copies
    (`copy_scores`) are its matches, the highest first, and of equal ones the lowest entry
    id. `flat`: `batch_keys` as arrays, when the caller has them (every key, and the
    position of its entry).
    """
    entities: list[Features] = [p.features for p in ordered]
    owners: list[Known] = []  # the stored entries, after the batch's entities
    seen: set[int] = set()
    for k in known:
        if k.features.entry_id not in seen:
            seen.add(k.features.entry_id)
            entities.append(k.features)
            owners.append(k)
    # Each shared (entry, key) pair of a known entry, as (key, its position in entities).
    owner_ids = np.fromiter((k.features.entry_id for k in owners), dtype=np.int64)
    by_id = np.argsort(owner_ids)
    at = np.minimum(np.searchsorted(owner_ids[by_id], shared.entry_ids), len(owners) - 1)
    if owners:  # pairs of entries not among `known` (not placed) are left out
        mine = owner_ids[by_id[at]] == shared.entry_ids
    else:
        mine = np.zeros(len(shared.entry_ids), dtype=bool)
    stored_key, stored_at = shared.keys[mine], len(ordered) + by_id[at[mine]]
    if flat is None:
        batch_key = np.fromiter(chain(*batch_keys), dtype=np.int64)
        batch_at = np.repeat(np.arange(len(batch_keys)), [len(keys) for keys in batch_keys])
    else:  # `batch_keys` as those arrays already: every key, and its entry's position
        batch_key, batch_at = flat
    # Stored candidates: each (key, entry) of the batch against the stored entries with
    # that key; earlier entries of the batch: against those before it under a repeated key.
    by_stored = np.argsort(stored_key, kind="stable")
    stored_key, stored_at = stored_key[by_stored], stored_at[by_stored]
    begin = np.searchsorted(stored_key, batch_key, side="left")
    end = np.searchsorted(stored_key, batch_key, side="right")
    lefts_s, rights_s = batch_at.repeat(end - begin), stored_at[ranges(begin, end)]
    by_batch = np.lexsort((batch_at, batch_key))
    sorted_key, sorted_at = batch_key[by_batch], batch_at[by_batch]
    # Each (key, entry) against those before it in its key's run (a key one entry alone
    # has: a run of one, no candidate).
    group = np.searchsorted(sorted_key, sorted_key, side="left")
    here = np.arange(len(sorted_key))
    lefts_b, rights_b = sorted_at.repeat(here - group), sorted_at[ranges(group, here)]
    pairs = distinct(
        np.sort(
            np.concatenate([lefts_s, lefts_b]) * len(entities)
            + np.concatenate([rights_s, rights_b])
        )
    )
    lefts, rights = np.divmod(pairs, len(entities))
    keep = lefts != rights  # an entry listing one key twice is not its own candidate
    lefts, rights = lefts[keep], rights[keep]
    out: list[list[int | Known]] = [[] for _ in ordered]
    if not len(lefts):
        return out
    scores = copy_scores(entities, lefts, rights, settings)
    hit = np.flatnonzero(~np.isnan(scores))
    ids = np.array([entities[r].entry_id for r in rights[hit].tolist()], dtype=np.int64)
    ranked = hit[np.lexsort((ids, -scores[hit], lefts[hit]))]
    n = len(ordered)
    for i, r in zip(lefts[ranked].tolist(), rights[ranked].tolist(), strict=True):
        out[i].append(r if r < n else owners[r - n])
    return out
