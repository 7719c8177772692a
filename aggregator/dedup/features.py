"""An entry's comparison features (MinHash signatures, words) and its lookup keys (LSH bands).

`features_many` is the costly step, linear in a text's length (`parallel` runs it on the
other cores); `entry_keys_many` gives the keys under which an entry's possible copies
(`copies`) are found.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from itertools import chain
from urllib.parse import urlsplit

import numpy as np
import numpy.typing as npt

from aggregator import wordtables
from aggregator.dedup import minhash
from aggregator.dedup.index import ranges
from aggregator.dedup.terms import entry_terms, pack_terms
from aggregator.dedup.text import comparison_words, headline, normalise
from aggregator.dedup.urls import article_url, canonical_url
from aggregator.types import DedupSettings, Entry, Features

MIN_TITLE_TOKENS = 6
#: A body of fewer tokens tells no text apart: many feeds give every item the same one
#: ("Comments" on Hacker News, "Read more »"), which made a day of such a feed one article.
#: The entry is compared as a title-only one instead.
MIN_TEXT_TOKENS = MIN_TITLE_TOKENS
#: How far below copy_threshold the text's LSH bands are set.
COPY_BAND_MARGIN = 0.1
#: Band threshold for the opening's LSH keys (lower than lead_threshold: keys only propose).
LEAD_BAND_THRESHOLD = 0.5

_FULL, _LEAD = 1, 2


def features(entry: Entry, settings: DedupSettings) -> Features:
    """Compute an entry's comparison features (the costly step; linear in its length)."""
    return features_many([entry], settings)[0]


def features_many(entries: Sequence[Entry], settings: DedupSettings) -> list[Features]:
    """`features` of many entries, their MinHash signatures built in one vectorised pass."""
    words = [comparison_words(entry.text or entry.summary) for entry in entries]
    bodies = [" ".join(chunks) for chunks in words]  # `comparison_text`
    codes = [minhash.tokens(body, chunks) for body, chunks in zip(bodies, words, strict=True)]
    codes = [c if len(c) >= MIN_TEXT_TOKENS else c[:0] for c in codes]
    full, full_sizes = minhash.shingles_many(codes)
    lead, lead_sizes = minhash.shingles_many(
        [c[: minhash.LEAD_SHINGLES + minhash.SHINGLE - 1] for c in codes]
    )
    signatures = minhash.packed_signature_bytes(full, full_sizes)
    lead_signatures = minhash.packed_signature_bytes(lead, lead_sizes, minhash.LEAD_BINS)
    sizes, leads = full_sizes.tolist(), lead_sizes.tolist()  # ints, as storage takes them
    titles = [normalise(headline(e.title, e.feed_name, e.link)) for e in entries]
    terms = pack_terms(
        (
            entry_terms(title, body, entry.language)
            for title, body, entry in zip(titles, bodies, entries, strict=True)
        ),
        wordtables.serving(),  # a worker's table, kept across its pieces
    )
    out = []
    for i, entry in enumerate(entries):
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
                terms=terms[i],
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
    out = _named_keys(found)
    for groups in _signature_bands(found, settings):  # the full bands, then the lead's
        for at, matrix in groups:
            for i, keys in zip(at.tolist(), matrix.tolist(), strict=True):
                out[i].extend(keys)
    return [tuple(keys) for keys in out]


#: The version of how lookup keys are made from features: an index kept under another
#: is built again (`key_settings`). Raise it with any change to what `entry_keys_many`
#: gives for stored features: `_key`, `_named_keys`, `global_guid`, `_signature_bands`,
#: `_bands`, `COPY_BAND_MARGIN`, `LEAD_BAND_THRESHOLD`, `minhash.LEAD_SHINGLES`,
#: `minhash.bands` or `minhash.band_keys_many`.
KEYS_VERSION = 1


def key_settings(settings: DedupSettings) -> str:
    """What the lookup keys of stored features depend on (their version and the copy
    threshold their bands are set for): an index kept under other settings is not used."""
    return f"keys {KEYS_VERSION}; copy threshold {settings.copy_threshold!r}"


def index_keys(
    found: Sequence[Features], settings: DedupSettings
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """`entry_keys_many` of the entries as arrays: their ids, how many keys each has, and
    the keys, each entry's one after another in `entry_keys`' order. What
    `dedup.index.KeyIndex.add_arrays` takes: a store's index built from its features
    without a Python tuple an entry (docs/speed.md, Twenty-first session)."""
    named = _named_keys(found)
    full, lead = _signature_bands(found, settings)
    n = len(found)
    counts = np.fromiter(map(len, named), dtype=np.int64, count=n)
    parts = [counts]
    for rows in (full, lead):
        got = np.zeros(n, dtype=np.int64)
        for at, matrix in rows:
            got[at] = matrix.shape[1]
        parts.append(got)
    sizes = np.sum(parts, axis=0)
    starts = np.zeros(n, dtype=np.int64)
    np.cumsum(sizes[:-1], out=starts[1:])
    keys = np.empty(int(sizes.sum()), dtype=np.int64)
    # The named keys (1-4 an entry) first, then each entry's full bands, then its lead's.
    keys[ranges(starts, starts + counts)] = np.fromiter(
        chain.from_iterable(named), dtype=np.int64, count=int(counts.sum())
    )
    before = starts + counts
    for rows, width in zip((full, lead), parts[1:], strict=True):
        for at, matrix in rows:
            place = before[at, None] + np.arange(matrix.shape[1])
            keys[place.ravel()] = matrix.ravel()
        before = before + width
    return np.fromiter((f.entry_id for f in found), np.int64, n), sizes, keys


def _named_keys(found: Sequence[Features]) -> list[list[int]]:
    """Each entry's keys from its names: guid (in its feed, and alone when it names the item
    everywhere), link and title (`entry_keys`' first ones, in that order)."""
    out = []
    for f in found:
        keys = [_key("guid", f.feed_url, f.guid)]
        if global_guid(f.guid):
            keys.append(_key("global guid", f.guid))
        if f.url is not None:
            keys.append(_key("url", f.url))
        if f.title_key is not None:
            keys.append(_key("title", f.title_key))
        out.append(keys)
    return out


_Bands = list[tuple[npt.NDArray[np.intp], npt.NDArray[np.int64]]]


def _signature_bands(found: Sequence[Features], settings: DedupSettings) -> tuple[_Bands, _Bands]:
    """The LSH band keys of the entries' signatures and of their leads' (`_bands`)."""
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
    return full, lead


def _bands(
    found: Sequence[Features],
    blob: Callable[[Features], bytes | None],
    threshold: float,
    kind: int,
) -> _Bands:
    """Band keys of the entries' signatures (`blob`), grouped by the signatures' length:
    the positions of a group's entries (ascending) and their keys, a row each."""
    by_length: dict[int, list[tuple[int, bytes]]] = {}
    for i, f in enumerate(found):
        data = blob(f)
        if data and len(data) % 4 == 0:  # a damaged blob proposes no candidates
            by_length.setdefault(len(data), []).append((i, data))
    out = []
    for rows in by_length.values():
        matrix = np.frombuffer(b"".join(d for _, d in rows), dtype="<u4").reshape(len(rows), -1)
        at = np.fromiter((i for i, _ in rows), dtype=np.intp, count=len(rows))
        out.append((at, minhash.band_keys_many(matrix, threshold, kind)))
    return out


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
