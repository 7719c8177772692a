"""MinHash signatures and LSH band keys over shingles, vectorised with numpy.

Shingles: the comparison text is cut into tokens, one per CJK (or other unspaced)
character and one per Latin/Greek/Cyrillic word or number, so that Chinese needs no
word segmentation and English is compared by words, not by its frequent letter triples.
A shingle is three consecutive tokens; each token is a 21-bit code (a character's code
point, or a word's hash in a private-use plane), so a shingle packs exactly into 63 bits.

Signatures: one-permutation MinHash (Li, Owen & Zhang 2012) with rotation densification
(Shrivastava & Li 2014): each shingle is hashed once, its top bits pick one of `NUM_BINS`
bins, and each bin keeps its smallest value; an empty bin borrows from the next non-empty
one. Building costs one hash per shingle instead of one per shingle and permutation, and the
share of equal bins still estimates the Jaccard similarity. datasketch's MinHash with its
default hashing builds ~480 documents/s here; this builds thousands (bench/cluster_scale.py).

Band keys: the signature is cut into `b` bands of `r` rows, with (b, r) chosen as datasketch's
MinHashLSH chooses them for the configured threshold; two texts share a band key with probability
1 - (1 - J^r)^b, which makes the key lookup in storage the LSH candidate step.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence
from functools import cache

import numpy as np
import numpy.typing as npt

from aggregator.dedup.text import Memo, has_han

NUM_BINS = 128
LEAD_BINS = 24
#: The opening compared for trimmed and summary-only copies, in shingles.
LEAD_SHINGLES = 40
SHINGLE = 3
_LOG2_BINS = NUM_BINS.bit_length() - 1
_MASK32 = np.uint64(0xFFFFFFFF)
_EMPTY = np.uint64(1 << 32)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_ROTATE = np.uint64(0x2545F4914F6CDD1D)

Signature = npt.NDArray[np.uint32]
_Shingles = npt.NDArray[np.uint64]

_WORD = re.compile(r"[0-9a-z\u00c0-\u024f\u0370-\u03ff\u0400-\u04ff]+")
_WORD_GROUP = re.compile(f"({_WORD.pattern})")
#: A token: a word, or one other word character (not "_"), or a private-use character of
#: the plane words are packed into; everything else (space, punctuation) is dropped.
_TOKEN = re.compile(
    r"[0-9a-z\u00c0-\u024f\u0370-\u03ff\u0400-\u04ff]+|[^\W_]|[\U000f0000-\U000fffff]"
)


def _code(token: str) -> str:
    """A token as one character: a word becomes a character of the supplementary private-use
    plane (16 bits of its CRC-32); any other token stands for itself."""
    if _WORD.fullmatch(token):
        return chr(0xF0000 + (zlib.crc32(token.encode("utf-8")) & 0xFFFF))
    return token


_CODES = Memo(_code)


def _packed(chunk: str) -> str:
    """The token codes of a text without spaces, as one string."""
    return "".join(map(_CODES.__getitem__, _TOKEN.findall(chunk)))


#: Space-free chunk of text ("market," "said.") -> `_packed(chunk)`.
_PACKED = Memo(_packed)


@cache
def _token_points() -> npt.NDArray[np.bool_]:
    """Code point -> whether it is a token by itself once words are packed: ``[^\\W_]``
    (what `str.isalnum` accepts) or a character of the plane words are packed into."""
    points = np.arange(0x110000, dtype=np.uint32)
    points[0xD800:0xE000] = 0  # surrogates (not alphanumeric) as NUL, which numpy takes
    table = np.strings.isalnum(points.view("U1"))
    table[0xF0000:0x100000] = True
    return table


def tokens(text: str, chunks: Sequence[str] | None = None) -> npt.NDArray[np.uint32]:
    """Token codes of a comparison text: one per unspaced character or per word.

    `chunks`: ``text.split(" ")``, or the words `text` joins with single spaces, when the
    caller has them (`text.comparison_words`): spares splitting it again.
    """
    if has_han(text):
        # Mostly one-character tokens: replacing the words in place and deleting what is
        # not a token is faster than matching each character.
        parts = _WORD_GROUP.split(text)  # text, word, text, word, ..., text
        parts[1::2] = map(_CODES.__getitem__, parts[1::2])
        # What is not a token (space, punctuation) dropped through a table of code points:
        # half the cost of a regular expression substitution. (A lone surrogate is no
        # token: "surrogatepass" only lets it reach the table.)
        codes = "".join(parts).encode("utf-32-le", "surrogatepass")
        points = np.frombuffer(codes, dtype=np.uint32)
        return points[_token_points()[points]]
    # No token holds a space, so the text's tokens are those of its space-separated chunks,
    # and words recur: each distinct chunk is matched once.
    packed = "".join(map(_PACKED.__getitem__, text.split(" ") if chunks is None else chunks))
    return np.frombuffer(packed.encode("utf-32-le"), dtype=np.uint32)


def shingles(codes: npt.NDArray[np.uint32]) -> _Shingles:
    """The distinct shingles of a token sequence."""
    c = codes.astype(np.uint64)
    if len(c) < SHINGLE:  # too short for one shingle: the whole text is the one shingle
        whole = 0
        for code in c.tolist():
            whole = (whole << 21) | code
        return np.array([whole], dtype=np.uint64)[: len(c)]
    ids = (c[:-2] << np.uint64(42)) | (c[1:-1] << np.uint64(21)) | c[2:]
    # Sort-based: numpy 2's hash-based np.unique is ~6x slower on arrays of this size.
    ids = np.sort(ids)
    keep = np.empty(len(ids), dtype=bool)
    keep[:1] = True
    np.not_equal(ids[1:], ids[:-1], out=keep[1:])
    return ids[keep]


def shingles_many(
    codes: Sequence[npt.NDArray[np.uint32]],
) -> tuple[_Shingles, npt.NDArray[np.intp]]:
    """`shingles` of many token sequences at once: the sets end to end, and their sizes.

    Identical to calling `shingles` on each; a batch costs a few numpy calls in all and one
    small sort per sequence instead of a dozen calls per sequence (a text has ~400 tokens,
    so the calls, not the arithmetic, were the cost).
    """
    lengths = np.fromiter(map(len, codes), dtype=np.intp, count=len(codes))
    c = np.concatenate([*codes, np.zeros(SHINGLE - 1, dtype=np.uint32)]).astype(np.uint64)
    windows = c[:-2] << np.uint64(42)
    windows |= c[1:-1] << np.uint64(21)
    windows |= c[2:]
    starts = np.cumsum(lengths) - lengths
    # One shingle per window, or one for a text too short for a window.
    counts = np.where(lengths >= SHINGLE, lengths - (SHINGLE - 1), np.minimum(lengths, 1))
    firsts = np.cumsum(counts) - counts  # where each text's shingles start in `ids`
    ids = windows[np.repeat(starts - firsts, counts) + np.arange(counts.sum())]
    # A text of two tokens (a, b) is the one shingle a << 21 | b: its window with the code
    # after it (the next text's, or padding) shifted out; a text of one token is its code.
    for i in np.flatnonzero(lengths == SHINGLE - 1).tolist():
        ids[firsts[i]] = windows[starts[i]] >> np.uint64(21)
    for i in np.flatnonzero(lengths == 1).tolist():
        ids[firsts[i]] = c[starts[i]]
    for first, count in zip(firsts.tolist(), counts.tolist(), strict=True):
        if count > 1:
            ids[first : first + count].sort()  # in place: each text's shingles in order
    keep = np.ones(len(ids), dtype=bool)
    np.not_equal(ids[1:], ids[:-1], out=keep[1:])
    keep[firsts[counts > 0]] = True  # a text's first shingle is new even if the last one's
    kept = np.zeros(len(ids) + 1, dtype=np.intp)  # distinct shingles before each position
    np.cumsum(keep, out=kept[1:])
    sizes = kept[firsts + counts] - kept[firsts]
    return ids[keep], sizes


def _mix(ids: _Shingles) -> _Shingles:
    """A 64-bit finaliser (splitmix64): structured shingle ids -> uniform hashes."""
    with np.errstate(over="ignore"):
        x = ids * _GOLDEN
    return _mixed(x, np.empty_like(x))


#: splitmix64's steps after its first product: shift and xor, then multiply (0: none).
_MIX_STEPS = (
    (np.uint64(30), np.uint64(0xBF58476D1CE4E5B9)),
    (np.uint64(27), np.uint64(0x94D049BB133111EB)),
    (np.uint64(31), np.uint64(0)),
)


def _mixed(x: _Shingles, scratch: _Shingles) -> _Shingles:
    """`_mix`'s steps after its first product (`x`: ids times `_GOLDEN`), written over `x`
    (`scratch`: an array of its shape to shift into: no step makes a temporary array)."""
    with np.errstate(over="ignore"):
        for shift, multiplier in _MIX_STEPS:
            np.right_shift(x, shift, out=scratch)
            x ^= scratch
            if multiplier:
                x *= multiplier
    return x


def signature(ids: _Shingles, bins: int = NUM_BINS) -> Signature | None:
    """One-permutation MinHash of a shingle set, densified; None for an empty set."""
    if len(ids) == 0:
        return None
    h = _mix(ids)
    log2 = bins.bit_length() - 1
    if 1 << log2 == bins:
        slot = (h >> np.uint64(64 - log2)).astype(np.intp)
    else:
        slot = ((h >> np.uint64(32)) % np.uint64(bins)).astype(np.intp)
    value = h & _MASK32
    sig = np.full(bins, _EMPTY, dtype=np.uint64)
    np.minimum.at(sig, slot, value)
    full = np.flatnonzero(sig != _EMPTY)
    if len(full) < bins:
        # Rotation: an empty bin takes the next non-empty bin's value (circularly), offset
        # by the distance so borrowed values only agree when both texts borrowed alike.
        positions = np.arange(bins)
        nxt = np.searchsorted(full, positions) % len(full)
        source = full[nxt]
        distance = ((source - positions) % bins).astype(np.uint64)
        with np.errstate(over="ignore"):
            sig = (sig[source] + distance * _ROTATE) & _MASK32
    return sig.astype(np.uint32)


def signatures(sets: Sequence[_Shingles], bins: int = NUM_BINS) -> list[Signature | None]:
    """`signature` of many shingle sets in one vectorised pass (identical results)."""
    sizes = np.fromiter(map(len, sets), dtype=np.intp, count=len(sets))
    return packed_signatures(np.concatenate([*sets, np.empty(0, dtype=np.uint64)]), sizes, bins)


def packed_signatures(
    ids: _Shingles, sizes: npt.NDArray[np.intp], bins: int = NUM_BINS
) -> list[Signature | None]:
    """`signatures` of sets given end to end with their sizes (as `shingles_many` gives)."""
    out: list[Signature | None] = [None] * len(sizes)
    rows = np.flatnonzero(sizes).tolist()
    if rows:
        for i, row in zip(rows, _dense(ids, sizes, rows, bins), strict=True):
            out[i] = row
    return out


def packed_signature_bytes(
    ids: _Shingles, sizes: npt.NDArray[np.intp], bins: int = NUM_BINS
) -> list[bytes | None]:
    """`to_bytes` of each of `packed_signatures`: one conversion of all rows, then slices
    (instead of two numpy calls per signature)."""
    out: list[bytes | None] = [None] * len(sizes)
    rows = np.flatnonzero(sizes).tolist()
    if rows:
        data = _dense(ids, sizes, rows, bins).astype("<u4").tobytes()
        width = 4 * bins
        for k, i in enumerate(rows):
            out[i] = data[k * width : (k + 1) * width]
    return out


def _dense(
    ids: _Shingles, sizes: npt.NDArray[np.intp], rows: list[int], bins: int
) -> npt.NDArray[np.uint32]:
    """The signatures of the non-empty sets (`rows`), one row each."""
    h = _mix(ids)
    log2 = bins.bit_length() - 1
    if 1 << log2 == bins:
        cell = (h >> np.uint64(64 - log2)).astype(np.intp)
    else:
        cell = ((h >> np.uint64(32)) % np.uint64(bins)).astype(np.intp)
    cell += np.repeat(np.arange(len(rows), dtype=np.intp) * bins, sizes[rows])
    sig = np.full(len(rows) * bins, _EMPTY, dtype=np.uint64)
    np.minimum.at(sig, cell, h & _MASK32)
    matrix = sig.reshape(len(rows), bins)
    # Rotation densification, as in `signature`: each empty bin takes the next non-empty
    # bin's value (circularly), found for all rows at once over each row written twice.
    positions = np.arange(2 * bins)
    full = np.where(np.tile(matrix != _EMPTY, 2), positions, 4 * bins)
    following = np.minimum.accumulate(full[:, ::-1], axis=1)[:, ::-1][:, :bins]
    source = following % bins
    distance = (following - positions[:bins]).astype(np.uint64)
    with np.errstate(over="ignore"):
        dense = (np.take_along_axis(matrix, source, axis=1) + distance * _ROTATE) & _MASK32
    return dense.astype(np.uint32)


def jaccard(a: bytes, b: bytes) -> float:
    """Estimated Jaccard similarity of the two sets the signatures (as bytes) were built from."""
    x, y = np.frombuffer(a, dtype="<u4"), np.frombuffer(b, dtype="<u4")
    return float(np.count_nonzero(x == y)) / len(x)


def jaccards(a: bytes | None, others: Sequence[bytes | None]) -> list[float | None]:
    """`jaccard` of one signature with many at once (None where either is missing)."""
    out: list[float | None] = [None] * len(others)
    if a is None:
        return out
    rows = [i for i, b in enumerate(others) if b is not None and len(b) == len(a)]
    if rows:
        x = np.frombuffer(a, dtype="<u4")
        matrix = np.frombuffer(b"".join(others[i] or b"" for i in rows), dtype="<u4")
        equal = np.count_nonzero(matrix.reshape(len(rows), len(x)) == x, axis=1) / len(x)
        for i, value in zip(rows, equal.tolist(), strict=True):
            out[i] = value
    return out


def containment(j: float, size_a: int, size_b: int) -> float:
    """Estimated share of the smaller set inside the larger, from their Jaccard and sizes."""
    if min(size_a, size_b) == 0:
        return 0.0
    return min(1.0, j * (size_a + size_b) / (1.0 + j) / min(size_a, size_b))


#: Weights of false positives and false negatives when choosing the bands: a missed
#: candidate is a missed copy, a false one only costs one signature comparison.
BAND_WEIGHTS = (0.3, 0.7)


@cache
def bands(threshold: float, bins: int) -> tuple[int, int]:
    """(b, r) for LSH at this Jaccard threshold: datasketch's MinHashLSH choice.

    The same search as datasketch's ``_optimal_param`` (minimise the weighted areas under
    the false-positive and false-negative curves), integrated with numpy: importing
    datasketch pulls in scipy, ~1.5 s for every command. tests/test_dedup.py checks that
    both choose alike.
    """
    fp_weight, fn_weight = BAND_WEIGHTS
    below = np.linspace(0.0, threshold, 2001)
    above = np.linspace(threshold, 1.0, 2001)
    best, choice = float("inf"), (1, 1)
    for b in range(1, bins + 1):
        for r in range(1, bins // b + 1):
            fp = np.trapezoid(1 - (1 - below**r) ** b, below)
            fn = np.trapezoid((1 - above**r) ** b, above)
            error = float(fp) * fp_weight + float(fn) * fn_weight
            if error < best:
                best, choice = error, (b, r)
    return choice


def band_keys_many(
    signatures: npt.NDArray[np.uint32], threshold: float, kind: int
) -> npt.NDArray[np.int64]:
    """LSH keys of many signatures at once: an (n, b) array, one key per band.

    A key hashes the band's `r` values with its band number and `kind` (splitmix64
    rounds), so equal keys mean equal bands (up to 64-bit collisions). Keys live only in
    memory (`dedup.index`), so their exact values may change between versions.
    """
    b, r = bands(threshold, signatures.shape[1])
    rows = signatures[:, : b * r].reshape(len(signatures), b, r)
    # `_mix(h ^ value)` for each of a band's values in turn, in place: a store's 100k
    # signatures at once without a temporary array a step (~2x faster: docs/speed.md,
    # Twenty-first session).
    h = np.empty((len(signatures), b), dtype=np.uint64)
    scratch = np.empty_like(h)
    with np.errstate(over="ignore"):
        h[:] = np.arange(b, dtype=np.uint64) * _ROTATE + np.uint64(kind) * _GOLDEN
    for column in range(r):
        h ^= rows[:, :, column]
        h *= _GOLDEN
        _mixed(h, scratch)
    return h.view(np.int64)


def to_bytes(sig: Signature | None) -> bytes | None:
    """A signature as stored: little-endian 32-bit values."""
    return None if sig is None else sig.astype("<u4").tobytes()
