"""Building the lookup-key index as arrays (a store's first load): the same keys, in the same
order, and the same index, as the per-entry path (docs/speed.md, Twenty-first session)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from itertools import chain

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aggregator.dedup import index as index_module
from aggregator.dedup import minhash
from aggregator.dedup.features import entry_keys_many, features_many, index_keys
from aggregator.types import DedupSettings, Entry, Features
from tests.builders import stored_entry
from tests.conftest import SEEDS

T0 = datetime(2025, 2, 10, 12, 0, tzinfo=UTC)
#: Batches of (entry id -> its keys): entries added again, keys shared and repeated.
_BATCHES = st.lists(
    st.dictionaries(
        st.integers(1, 40), st.lists(st.integers(-6, 6), max_size=6), min_size=1, max_size=8
    ),
    max_size=25,
)


def _entry(n: int, title: str, text: str, *, link: str | None, guid: str) -> Entry:
    return stored_entry(
        n,
        title,
        published=T0 + timedelta(minutes=n),
        feed_url=f"https://feed{n % 3}.example/rss",
        feed_name=f"Feed {n % 3}",
        guid=guid,
        link=link,
        text=text,
    )


def _varied() -> list[Entry]:
    """Entries with every kind of key and without each: Chinese and English texts (full
    bands and the lead's), a short text (no lead bands), titles alone (a title key, no
    bands), links and none, guids that name the item everywhere and ones that do not."""
    seeds = sorted(SEEDS.glob("*"))
    texts = [p.read_text(encoding="utf-8") for p in seeds if p.is_file()]
    english = (
        "Leaders met in Paris on Monday for the AI Action Summit, where France announced "
        "109 billion euros of private investment in data centres and research. "
    ) * 6
    out = []
    for n in range(24):
        kind = n % 6
        text = {0: texts[n % len(texts)], 1: english, 2: "Short note.", 3: "", 4: english[:90]}
        out.append(
            _entry(
                n,
                f"Paris summit opens with pledges on artificial intelligence number {n}",
                text.get(kind, texts[0][: 300 + n]),
                link=None if kind in (2, 3) else f"https://site{n % 4}.example/news/{n}",
                guid=(
                    f"https://site{n % 4}.example/news/{n}"
                    if kind == 1
                    else f"urn:uuid:12345678-1234-1234-1234-{n:012d}"
                    if kind == 4
                    else str(n)
                ),
            )
        )
    return out


def _features() -> list[Features]:
    return features_many(_varied(), DedupSettings())


def test_index_keys_are_each_entrys_keys_in_order() -> None:
    found = _features()
    # The set covers what it claims: some have no signature, some no lead, some no link.
    assert any(f.signature is None for f in found) and any(f.url is None for f in found)
    assert any(f.title_key is not None for f in found)
    for settings_ in (DedupSettings(), DedupSettings(copy_threshold=0.8)):
        ids, counts, keys = index_keys(found, settings_)
        per_entry = entry_keys_many(found, settings_)
        assert ids.tolist() == [f.entry_id for f in found]
        assert counts.tolist() == [len(k) for k in per_entry]
        assert keys.tolist() == list(chain.from_iterable(per_entry))
    empty = index_keys([], DedupSettings())
    assert [len(a) for a in empty] == [0, 0, 0]


@contextmanager
def _tiny_merges() -> Iterator[index_module.KeyIndex]:
    """An empty index whose levels merge at a few keys (`MERGE_AT` 6, `MAX_RUNS` 2)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(index_module, "MERGE_AT", 6)
        patch.setattr(index_module, "MAX_RUNS", 2)
        yield index_module.KeyIndex()


@settings(max_examples=60, deadline=None)
@given(batches=_BATCHES)
def test_keys_added_as_arrays_are_found_under_each_entrys_latest(
    batches: list[dict[int, list[int]]],
) -> None:
    """Whatever merges happen (tiny thresholds), after each `add_arrays` every level is
    sorted, the live keys are counted as each entry's latest keys, and a lookup finds each
    entry under all of those."""
    with _tiny_merges() as index:
        latest: dict[int, list[int]] = {}
        for batch in batches:
            index.add_arrays(
                np.array(list(batch), np.int64),
                np.array([len(k) for k in batch.values()], np.int64),
                np.array(list(chain.from_iterable(batch.values())), np.int64),
            )
            latest.update(batch)
            for level in (index._main, *index._runs):
                assert np.all(level.keys[1:] >= level.keys[:-1])
            assert index._live == int(index._count.sum()) == sum(map(len, latest.values()))
            found = index.find(range(-6, 7)).by_entry()
            for entry, keys in latest.items():
                assert set(keys) <= found.get(entry, set())


def test_arrays_that_do_not_add_up_are_refused() -> None:
    index = index_module.KeyIndex()
    one = np.array([1], np.int64)
    with pytest.raises(ValueError, match="add up"):
        index.add_arrays(one, np.array([2], np.int64), np.array([5], np.int64))
    with pytest.raises(ValueError, match="twice"):
        index.add_arrays(np.array([1, 1], np.int64), np.array([1, 1], np.int64), one.repeat(2))
    assert len(index) == 0 and index._live == 0


@settings(max_examples=200, deadline=None)
@given(
    keys=st.one_of(
        st.lists(st.integers(-3, 3), max_size=300),  # ties everywhere
        st.lists(st.integers(-(2**63), 2**63 - 1), max_size=300),
        st.lists(st.sampled_from([-(2**63), 2**63 - 1, 0]), max_size=50),
    )
)
def test_stable_argsort_is_numpys_stable_argsort(keys: list[int]) -> None:
    array = np.array(keys, dtype=np.int64)
    got = index_module.stable_argsort(array)
    assert got.tolist() == np.argsort(array, kind="stable").tolist()


def test_a_store_loaded_in_one_go_is_one_sorted_level(monkeypatch: pytest.MonkeyPatch) -> None:
    """A first load (one `add_arrays` of more than a merge's worth) leaves one level, sorted,
    equal keys in the entries' order, and finds every entry under each of its keys."""
    monkeypatch.setattr(index_module, "MERGE_AT", 8)
    found = _features()
    ids, counts, keys = index_keys(found, DedupSettings())
    index = index_module.KeyIndex()
    index.add_arrays(ids, counts, keys)
    assert index._runs == [] and len(index) == len(keys)
    level = index._main
    assert np.all(level.keys[1:] >= level.keys[:-1])
    order = np.argsort(keys, kind="stable")
    assert level.ids.tolist() == np.repeat(ids, counts)[order].tolist()
    for f, its in zip(found, entry_keys_many(found, DedupSettings()), strict=True):
        assert all(f.entry_id in index.find([key]).entries() for key in its)


@settings(max_examples=40, deadline=None)
@given(
    rows=st.integers(0, 30),
    bins=st.sampled_from([24, 64, 128]),
    threshold=st.sampled_from([0.3, 0.5, 0.7]),
    kind=st.integers(1, 2),
    seed=st.integers(0, 2**32 - 1),
)
def test_band_keys_hash_each_band_value_by_value(
    rows: int, bins: int, threshold: float, kind: int, seed: int
) -> None:
    """`band_keys_many` (in place, all signatures at once) is, for each signature and band,
    the splitmix64 chain of its values: h = mix(h ^ value), from the band's and the kind's
    seed."""
    signatures = np.random.default_rng(seed).integers(0, 2**32, (rows, bins)).astype("<u4")
    got = minhash.band_keys_many(signatures, threshold, kind)
    b, r = minhash.bands(threshold, bins)
    assert got.shape == (rows, b)
    with np.errstate(over="ignore"):
        for n in range(rows):
            for band in range(b):
                h = np.uint64(band) * minhash._ROTATE + np.uint64(kind) * minhash._GOLDEN
                for value in signatures[n, band * r : (band + 1) * r]:
                    h = minhash._mix(np.array([h ^ np.uint64(value)], dtype=np.uint64))[0]
                assert got[n, band] == np.int64(h.view(np.int64))


@settings(max_examples=60, deadline=None)
@given(batches=_BATCHES)
def test_a_kept_index_reads_back_as_the_same_index(batches: list[dict[int, list[int]]]) -> None:
    """`to_bytes` then `from_bytes`: one level of the live keys, finding each entry under
    each of its latest keys and under no superseded one, counting as the index did; and
    adding to it goes on as adding to the index would."""
    with _tiny_merges() as index:
        latest: dict[int, list[int]] = {}
        for batch in batches:
            index.add(list(batch.items()))
            latest.update(batch)
        kept = index_module.KeyIndex.from_bytes(index.to_bytes())
        assert kept._runs == [] and len(kept) == kept._live == index._live
        assert kept._count.tolist() == index._count.tolist()
        assert kept._latest.tolist() == index._latest.tolist()
        found = kept.find(range(-6, 7)).by_entry()
        assert found == {entry: set(keys) for entry, keys in latest.items() if keys}
        ever = {entry: set(keys) for entry, keys in latest.items()}
        for copy in (index, kept):
            copy.add([(1, [5]), (41, [6])])
        latest.update({1: [5], 41: [6]})
        ever.setdefault(1, set()).add(5)
        ever[41] = {6}
        assert kept._live == index._live and kept._count.tolist() == index._count.tolist()
        found = kept.find(range(-6, 7)).by_entry()
        for entry, keys in latest.items():
            assert set(keys) <= found.get(entry, set())
        for entry, keys in found.items():
            assert keys <= ever[entry]


def test_a_kept_index_that_is_not_one_is_refused() -> None:
    index = index_module.KeyIndex()
    index.add([(1, [10, 11]), (2, [11, 12])])
    data = bytes(index.to_bytes())
    assert index_module.KeyIndex.from_bytes(data).find([11]).entries() == [1, 2]
    header, size, slots = index_module._KEPT.size, 4, len(index._latest)
    keys, ids, latest = header, header + 8 * size, header + 16 * size

    def at(offset: int, value: int, width: int = 8) -> bytes:
        return data[:offset] + value.to_bytes(width, "little", signed=True) + data[offset + width :]

    cases = {
        "short": data[:10],
        "cut": data[:-4],
        "magic": b"XXXX" + data[4:],
        "version": at(4, 99, 4),
        "unsorted": at(keys, 2**40),  # the first key now the largest
        "counts": data[:-4] + (7).to_bytes(4, "little"),  # an entry's count changed
        "id out of range": at(ids, slots),
        "negative id": at(ids, -1),
        "generation ahead": at(latest + 4, 99, 4),  # entry 1's newer than the index
    }
    for name, bad in cases.items():
        with pytest.raises(ValueError):
            index_module.KeyIndex.from_bytes(bad)
            pytest.fail(f"{name}: read as an index")
