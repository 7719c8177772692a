"""A feature worker's word table kept across its pieces (aggregator/wordtables.py): each
piece ships only its new words, read back as one list; the batch's layout is the same."""

from __future__ import annotations

import pickle
from collections.abc import Iterator, Mapping
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from aggregator import wordtables
from aggregator.dedup.features import features
from aggregator.dedup.terms import PackedTerms, entry_terms, pack_terms
from aggregator.dedup.text import normalise
from aggregator.dedup.vectors import BatchTerms, weigh
from aggregator.types import DedupSettings, Pending, Vocabulary
from tests.builders import stored_entry

T0 = datetime(2025, 2, 10, 12, tzinfo=UTC)
TEXTS = [
    ("Paris AI summit opens", "Leaders met in Paris for the AI Action Summit on Monday."),
    ("巴黎人工智能峰会开幕", "马克龙在巴黎主持人工智能行动峰会，欧盟宣布投资2000亿欧元。"),
    ("EU pledges €200 billion for AI", "The European Union pledged funds for AI in Paris."),
    ("Summit ends without US signature", "The US and UK did not sign the Paris declaration."),
    ("Nvidia shares fall", "Shares of Nvidia fell on Monday after DeepSeek's model."),
    ("巴黎峰会闭幕", "美国和英国没有签署巴黎人工智能宣言。"),
]


@pytest.fixture
def worker(monkeypatch: pytest.MonkeyPatch) -> None:
    """This process as a feature worker of pool "p" (and the reader of its pieces)."""
    monkeypatch.setattr(wordtables, "_pool", None)
    monkeypatch.setattr(wordtables, "_serving", None)
    monkeypatch.setattr(wordtables, "_copies", {})
    monkeypatch.setattr(wordtables, "_ended", set())
    wordtables.serve("p")


def _counts() -> list[Mapping[str, int]]:
    return [entry_terms(normalise(title), normalise(body)) for title, body in TEXTS]


def _shipped(pieces: list[list[PackedTerms]]) -> list[PackedTerms]:
    """The pieces as the reading process gets them: each pickled on its own, in order."""
    return [t for piece in pieces for t in pickle.loads(pickle.dumps(piece))]


def test_a_workers_pieces_ship_each_word_once(worker: None) -> None:
    counts = _counts()
    table = wordtables.serving()
    assert table is not None and wordtables.serving() is table
    pieces = [pack_terms(counts[i : i + 2], table) for i in (0, 2, 4)]
    alone = len(pickle.dumps(pack_terms(counts[:1])))  # a table of its own: its words
    read = _shipped(pieces)
    assert table.shipped == len(table) == len(set(table))
    copy = read[0].table
    assert all(t.table is copy for t in read) and copy == list(table)
    assert [dict(t) for t in read] == [dict(c) for c in counts]
    # A piece whose words were all shipped before carries none of them: smaller than the
    # same entry packed on its own, which carries its words.
    again = pickle.dumps(pack_terms(counts[:1], table))
    assert len(again) < alone and all(word.encode() not in again for word in table)
    assert [dict(t) for t in pickle.loads(again)] == [dict(counts[0])]


def test_a_piece_that_failed_midway_leaves_the_table_in_line(worker: None) -> None:
    """An entry whose words fail (any error, in a task whose error may never be read) after
    others of its piece were numbered: the words numbered are listed all the same, and go
    out with the worker's next piece, in their places."""
    counts = _counts()
    table = wordtables.serving()
    assert table is not None

    def failing() -> Iterator[Mapping[str, int]]:
        yield from counts[:2]
        raise MemoryError

    with pytest.raises(MemoryError):
        pack_terms(failing(), table)
    assert list(table) == list(table.slots) and len(table) > 0
    read = _shipped([pack_terms(counts[2:], table), pack_terms(counts[:3], table)])
    assert [dict(t) for t in read] == [dict(c) for c in [*counts[2:], *counts[:3]]]


def test_a_piece_never_read_stops_the_reading(worker: None) -> None:
    """A piece sent and never read (only when a pool breaks) leaves the copy short of its
    words: the next piece is refused, not read with words in the wrong places."""
    counts = _counts()
    table = wordtables.serving()
    assert table is not None
    pickle.loads(pickle.dumps(pack_terms(counts[:2], table)))
    pickle.dumps(pack_terms(counts[2:4], table))  # lost
    with pytest.raises(ValueError, match="word table: .* words known, .* start at"):
        pickle.loads(pickle.dumps(pack_terms(counts[4:], table)))
    # A table the reader never saw the start of, likewise.
    wordtables.serve("q")
    other = wordtables.serving()
    assert other is not None and other.token[0] == "q"
    pickle.dumps(pack_terms(counts[:2], other))
    with pytest.raises(ValueError):
        pickle.loads(pickle.dumps(pack_terms(counts[2:], other)))


def test_a_full_table_starts_another_and_the_pool_forgets_them(
    worker: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(wordtables, "MAX_WORDS", 12)
    counts = _counts()
    tables, read = [], []
    for i in range(0, len(counts), 2):
        table = wordtables.serving()
        assert table is not None
        tables.append(table)
        read += pickle.loads(pickle.dumps(pack_terms(counts[i : i + 2], table)))
    assert len({t.token for t in tables}) > 1, "no table filled up"
    assert [dict(t) for t in read] == [dict(c) for c in counts]
    # The reader keeps the copy of each worker's newest table only.
    assert list(wordtables._copies) == [tables[-1].token]
    wordtables.forget("other pool")
    assert wordtables._copies
    wordtables.forget("p")
    assert not wordtables._copies
    # A result of the ended pool still read (a broken pool's manager thread) makes no copy.
    with pytest.raises(ValueError, match="pool has ended"):
        pickle.loads(pickle.dumps(pack_terms(counts[:1], wordtables.WordTable(("p", 1, 0)))))
    assert not wordtables._copies


def test_a_batch_of_a_workers_pieces_lays_out_as_its_counts(worker: None) -> None:
    """`BatchTerms.of` of a worker's pieces (one table, read back piece by piece), mixed
    with a piece packed here (its own table) and leaving entries out, has the words,
    document frequencies, counts and vectors of the same counts as dictionaries."""
    counts = [*_counts(), {"paris": 70, "summit": 1}, {}]
    table = wordtables.serving()
    assert table is not None
    read = _shipped([pack_terms(counts[i : i + 3], table) for i in (0, 3)])
    here = pack_terms(counts[6:])  # computed where it is placed: a table of its own
    packed = [*read, *here]
    base = features(stored_entry(1, "x", published=T0), DedupSettings())
    vocabulary = Vocabulary({"paris": 3, "summit": 2, "ai": 9}, 40)
    for chosen in ([0, 1, 2, 3, 4, 5], [5, 0, 3], [6, 1, 7, 4], list(range(8))):
        mine = [Pending(replace(base, entry_id=i, terms=packed[i])) for i in chosen]
        theirs = [Pending(replace(base, entry_id=i, terms=dict(counts[i]))) for i in chosen]
        got, want = BatchTerms.of(mine), BatchTerms.of(theirs)
        assert sorted(got.words) == sorted(want.words)
        assert len(got.words) == len(set(got.words))
        assert got.df_delta == want.df_delta and got.docs_delta == want.docs_delta
        assert got.changes == [want.df_delta.get(w, 0) for w in got.words]
        for n in range(len(chosen)):
            a, b = slice(*got.bounds[n : n + 2]), slice(*want.bounds[n : n + 2])
            assert [got.words[i] for i in got.index[a]] == [want.words[i] for i in want.index[b]]
            assert got.counts[a].tolist() == want.counts[b].tolist()
        assert weigh(mine, vocabulary, got) == weigh(theirs, vocabulary, want)


def test_other_processes_pack_each_call_on_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wordtables, "_pool", None)
    assert wordtables.serving() is None
    first, second = pack_terms(_counts()[:2]), pack_terms(_counts()[:2])
    assert first[0].table is not second[0].table and first[0].table == second[0].table


def test_words_are_numbered_in_the_order_first_met() -> None:
    """Known and new words mixed in an entry, new ones first, last and between: each new
    word takes the next place as it is met, a known one keeps its own."""
    from array import array

    table = wordtables.WordTable(("p", 1, 1))
    pack_terms([{"b": 1, "d": 2}], table)
    packed = pack_terms([{"x": 1, "b": 2, "y": 1, "z": 3, "d": 1, "w": 1}, {"z": 1, "v": 2}], table)
    assert list(table) == ["b", "d", "x", "y", "z", "w", "v"]
    assert [list(array("I", p.index)) for p in packed] == [[2, 0, 3, 4, 1, 5], [4, 6]]
    assert [dict(p) for p in packed] == [
        {"x": 1, "b": 2, "y": 1, "z": 3, "d": 1, "w": 1},
        {"z": 1, "v": 2},
    ]
