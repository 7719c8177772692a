"""An article is a connected group of copies: which entries end up in one article does not
depend on the order they arrive in or the batches they are placed in (issue 20: several
pollers place what they fetch in batches of their own, and must make the articles one
process would)."""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aggregator.config import Config
from aggregator.core import make_aggregator
from aggregator.dedup.assign import assign, features
from aggregator.dedup.index import KeyHits
from aggregator.dedup.text import comparison_text
from aggregator.sources.files import read_source
from aggregator.types import (
    DedupSettings,
    EntryData,
    Features,
    Feed,
    Known,
    Outcome,
    Pending,
    StoryState,
    Vocabulary,
)
from tests.builders import stored_entry
from tests.conftest import SEEDS

T0 = datetime(2025, 2, 10, 12, 0, tzinfo=UTC)
SETTINGS = DedupSettings()
DAY = timedelta(days=1)

#: Sentences of the seed articles (real Chinese news), each long enough to count.
SENTENCES = [
    s + "。"
    for e in read_source(SEEDS).entries
    for s in comparison_text(e.text).replace("。", "。\n").split("\n")
    if len(s) > 15
]


def chain() -> dict[str, str]:
    """Three texts where B holds A and C, and A and C share nothing: B is a copy of both
    (each lies within it), A and C are not copies of each other."""
    a, c = SENTENCES[:8], SENTENCES[8:16]
    return {"A": "".join(a), "B": "".join(a + c), "C": "".join(c)}


def test_the_chain_is_what_the_tests_assume() -> None:
    from aggregator.dedup.copies import is_copy

    texts = chain()
    f = {
        k: features(stored_entry(i, k, text=t, published=T0), SETTINGS)
        for i, (k, t) in enumerate(texts.items())
    }
    assert is_copy(f["A"], f["B"], SETTINGS) and is_copy(f["C"], f["B"], SETTINGS)
    assert not is_copy(f["A"], f["C"], SETTINGS)


@pytest.mark.parametrize("order", list(itertools.permutations("ABC")))
def test_a_copy_of_two_articles_joins_them_whatever_the_order_in_a_batch(
    order: tuple[str, ...],
) -> None:
    texts = chain()
    entries = [
        stored_entry(n + 1, name, text=texts[name], published=T0 + timedelta(hours=n))
        for n, name in enumerate(order)
    ]
    batch = [Pending(features(e, SETTINGS)) for e in entries]
    outcome = assign(batch, [], [], Vocabulary({}, 0), SETTINGS, next_id=1)
    assert len({p.article_id for p in outcome.placements}) == 1
    assert len({p.story_id for p in outcome.placements}) == 1
    # The oldest article id survives. Only B coming last joins two articles (A's and C's,
    # in stories of their own, ids 1 to 4); otherwise B joins the first, the other B's.
    assert {p.article_id for p in outcome.placements} == {1}
    if order[-1] == "B":
        (join,) = outcome.joined_articles
        assert (join.article, join.into) == (3, 1)
        assert len(outcome.merged) == 1  # C's story held only C: merged into A's
    else:
        assert outcome.joined_articles == []


@pytest.mark.parametrize("ids", list(itertools.permutations((1, 2, 3))))
def test_entries_published_at_one_time_are_placed_by_feed_and_guid_not_by_id(
    ids: tuple[int, ...],
) -> None:
    """Which id an entry got depends on which feed answered first; the order of placing
    must not (a daemon's batches are the same whoever stored them: issue 20)."""
    texts = chain()
    entries = [
        stored_entry(i, name, text=texts[name], published=T0, feed_url=f"https://{name}.example/")
        for i, name in zip(ids, "ABC", strict=True)
    ]
    batch = [Pending(features(e, SETTINGS)) for e in reversed(entries)]
    outcome = assign(batch, [], [], Vocabulary({}, 0), SETTINGS, next_id=1)
    # A, then B (a copy of A: its article), then C (a copy of B: the same article).
    assert [p.entry_id for p in outcome.placements] == list(ids)
    assert {p.article_id for p in outcome.placements} == {1}
    assert outcome.joined_articles == []  # B came before C: nothing to join


@pytest.mark.parametrize("order", list(itertools.permutations("ABC")))
def test_lookup_keys_given_as_arrays_place_as_the_keys_do(order: tuple[str, ...]) -> None:
    """The placing process hands `assign` its batch's keys as arrays, in the batch's order
    (not the placing order): the copies found, and so the whole outcome, are the same."""
    import numpy as np

    from aggregator.dedup.assign import entry_keys

    texts = chain()
    entries = [
        stored_entry(n + 1, name, text=texts[name], published=T0 + timedelta(hours=2 - n))
        for n, name in enumerate(order)
    ]
    batch = [
        Pending(f, keys=entry_keys(f, SETTINGS)) for f in (features(e, SETTINGS) for e in entries)
    ]
    counts = np.array([len(p.keys) for p in batch], dtype=np.int64)
    keys = np.array([k for p in batch for k in p.keys], dtype=np.int64)
    plain = assign(batch, [], [], Vocabulary({}, 0), SETTINGS, next_id=1)
    assert len({p.article_id for p in plain.placements}) == 1  # copies found: one article
    given = assign(batch, [], [], Vocabulary({}, 0), SETTINGS, next_id=1, key_arrays=(counts, keys))
    assert given == plain


def _place(db: Path, polls: list[list[tuple[str, str, datetime]]]) -> dict[str, tuple[int, int]]:
    """Store and place each poll in turn (each a feed of its own, as pollers would), and
    return each entry's (article, story) by its guid."""
    config = Config(path=db.with_suffix(".toml"), storage_path=db)
    with make_aggregator(config) as aggregator:
        for n, poll in enumerate(polls):
            feed = Feed(url=f"https://feed{n}.example/rss", name=f"feed{n}")
            aggregator.storage.sync_feeds([feed], T0)
            data = [
                EntryData(
                    guid=guid,
                    title=f"Title {guid}",
                    link=f"https://site{guid}.example/{guid}",
                    published=at,
                    summary="",
                    text=text,
                )
                for guid, text, at in poll
            ]
            aggregator.storage.save_poll(feed, data, now=T0, seconds=0)
            aggregator.group_stored()
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT guid, article_id, story_id FROM entries").fetchall()
    conn.close()
    return {guid: (article, story) for guid, article, story in rows}


def _placed_at_once_and_in_drawn_polls(
    data: st.DataObject, texts: dict[str, str], folder: Path, max_cuts: int
) -> tuple[dict[str, tuple[int, int]], dict[str, tuple[int, int]]]:
    """`texts` (guid -> text) at drawn times placed all at once (together.db), and in a
    drawn order cut into drawn polls (apart.db): each entry's (article, story) of both."""
    guids = data.draw(st.permutations(sorted(texts)))
    at = {g: T0 + timedelta(minutes=data.draw(st.integers(0, 600))) for g in guids}
    cuts = sorted(data.draw(st.sets(st.integers(1, len(guids) - 1), max_size=max_cuts)))
    polls = [
        [(g, texts[g], at[g]) for g in guids[i:j]]
        for i, j in zip([0, *cuts], [*cuts, len(guids)], strict=True)
    ]
    together = _place(folder / "together.db", [[(g, texts[g], at[g]) for g in sorted(texts)]])
    return together, _place(folder / "apart.db", polls)


def _stories_without_entries(db: Path) -> list[tuple[int, int]]:
    """The stories (id, size) no entry is filed under."""
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT id, size FROM stories WHERE id NOT IN (SELECT story_id FROM entries)"
        ).fetchall()
    conn.close()
    return rows


def _partition(placed: dict[str, tuple[int, int]], which: int) -> set[frozenset[str]]:
    groups: dict[int, set[str]] = {}
    for guid, ids in placed.items():
        groups.setdefault(ids[which], set()).add(guid)
    return {frozenset(g) for g in groups.values()}


@pytest.mark.parametrize("order", list(itertools.permutations("ABC")))
def test_stored_articles_are_joined_when_a_later_batch_bridges_them(
    tmp_path: Path, order: tuple[str, ...]
) -> None:
    """One entry a poll: A and C are stored as two articles (in stories of their own when
    they come first), and B, whenever it comes, makes them one, in one story; the
    surviving article keeps the oldest id."""
    texts = chain()
    polls = [[(name, texts[name], T0 + timedelta(hours=n))] for n, name in enumerate(order)]
    placed = _place(tmp_path / "t.db", polls)
    assert _partition(placed, 0) == {frozenset("ABC")}
    assert _partition(placed, 1) == {frozenset("ABC")}
    # The first entry's article and story ids (the first allocated) survive.
    assert set(placed.values()) == {(1, 2)}


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_articles_do_not_depend_on_order_or_batches(
    tmp_path_factory: pytest.TempPathFactory, data: st.DataObject
) -> None:
    """Texts republished whole, cut and combined, placed in any order and any batches:
    the same articles as all of them placed at once."""
    base = [SENTENCES[i : i + 6] for i in range(0, 36, 6)]  # six originals
    texts = {f"o{n}": "".join(s) for n, s in enumerate(base)}
    for n, s in enumerate(base):  # a cut copy of each, and texts bridging two originals
        texts[f"cut{n}"] = "".join(s[1:])
        if n + 1 < len(base) and n % 2 == 0:
            texts[f"both{n}"] = "".join(s + base[n + 1])
    folder = tmp_path_factory.mktemp("order")
    together, apart = _placed_at_once_and_in_drawn_polls(data, texts, folder, max_cuts=4)
    assert _partition(apart, 0) == _partition(together, 0)
    # Each article in one story, and no story left without entries.
    assert len({ids for ids in apart.values()}) == len(_partition(apart, 0))
    assert _stories_without_entries(folder / "apart.db") == []
    # Each original with its cut copy, and the pairs a bridging text copies joined.
    assert frozenset({"o0", "cut0", "both0", "o1", "cut1"}) in _partition(together, 0)


def _chain_features() -> tuple[Features, Features, Features]:
    """A, B and C of `chain` as entries 1, 3 and 2."""
    texts = chain()
    a, b, c = (
        features(stored_entry(n, name, text=texts[name], published=T0), SETTINGS)
        for n, name in ((1, "A"), (3, "B"), (2, "C"))
    )
    return a, b, c


def _b_placed(others: int, shared: KeyHits | None = None) -> Outcome:
    """B placed with A and C stored as articles 1 and 3, in stories 2 and 4 (story 4 with
    `others` more articles)."""
    from aggregator.dedup.features import entry_keys

    a, b, c = _chain_features()
    return assign(
        [Pending(b, keys=entry_keys(b, SETTINGS))],
        [Known(a, article_id=1, story_id=2), Known(c, article_id=3, story_id=4)],
        [
            StoryState(2, T0, T0, 1, {"summit": 1.0}),
            StoryState(4, T0, T0, 1 + others, {"summit": 0.5, "paris": 0.5}),
        ],
        Vocabulary({}, 0),
        SETTINGS,
        next_id=5,
        article_count={2: 1, 4: 1 + others}.__getitem__,
        shared=shared,
    )


@pytest.mark.parametrize("others", [0, 1])
def test_a_joined_article_moves_to_the_survivors_story_which_absorbs_it_if_emptied(
    others: int,
) -> None:
    """A and C stored as articles 1 and 3 in stories 2 and 4; B copies both. C's entries
    move to article 1 in story 2; story 4 is merged into story 2 if C was all it held,
    else it stays with its other article (and the words C brought it)."""
    outcome = _b_placed(others)
    (placed,) = outcome.placements
    assert (placed.article_id, placed.story_id, placed.vector) == (1, 2, None)
    (join,) = outcome.joined_articles
    assert join == ((3, 4, 1, 2) if others else (3, 2, 1, 2))
    assert outcome.merged == ({} if others else {4: 2})
    # An id is used up, so that a batch another writer decided before this one is refused
    # (storage checks the next free id), though the join allocated none.
    assert outcome.next_id == 6


def test_the_key_index_pairs_decide_as_the_known_entries_own_keys() -> None:
    """`assign`'s `shared` (the key index's (entry, key) pairs): pairs of entries not among
    the known ones (unplaced), pairs listed twice (two index levels) change nothing; the
    known entries' own keys (no `shared`) decide alike; and a known entry with no pair is
    no candidate."""
    from aggregator.dedup.features import entry_keys

    def placed(shared: KeyHits | None) -> tuple[object, ...]:
        outcome = _b_placed(1, shared)
        (entry,) = outcome.placements
        return entry.article_id, entry.story_id, outcome.joined_articles

    a, b, c = _chain_features()
    keys = {n: entry_keys(f, SETTINGS) for n, f in ((1, a), (2, c), (99, a))}
    index = KeyHits.of([*keys.items(), (1, keys[1][:3]), (3, entry_keys(b, SETTINGS))])
    assert placed(index.without([3])) == placed(None) == (1, 2, [(3, 4, 1, 2)])
    assert placed(KeyHits.of([(2, keys[2])])) == (3, 4, [])  # A not found: C's alone


def test_a_chain_of_joins_leaves_no_story_without_entries(tmp_path: Path) -> None:
    """A, C and D stored one poll each; then C+D joins C's and D's articles, and A+C joins
    that one with A's: one article, in A's story, and every story left holds entries (a
    story is merged away when the last article it held moves out, however many article
    vectors its centroid counted)."""
    a, c, d = ("".join(SENTENCES[i : i + 8]) for i in (0, 8, 16))
    polls = [
        [("A", a, T0)],
        [("C", c, T0 + timedelta(hours=1))],
        [("D", d, T0 + timedelta(hours=2))],
        [("CD", c + d, T0 + timedelta(hours=3)), ("AC", a + c, T0 + timedelta(hours=4))],
    ]
    db = tmp_path / "t.db"
    placed = _place(db, polls)
    assert _partition(placed, 0) == {frozenset({"A", "C", "D", "CD", "AC"})}
    assert set(placed.values()) == {(1, 2)}
    assert _stories_without_entries(db) == []


def test_a_story_merged_by_an_earlier_join_of_the_same_entry_is_counted_as_merged() -> None:
    """B1 copies articles 11 and 15 (story 16) and 13 (story 14, alone): story 14 is
    emptied and merged, and 16 with it takes id 14; B2 then copies article 11 (in story
    14 now) and article 7 (story 8): story 14's last article leaves, so it is merged too,
    not left as a story without entries (found by review)."""
    from aggregator.dedup.features import entry_keys
    from aggregator.types import Known, StoryState

    def at(n: int, sentences: list[str], hours: int, **kw: str) -> Features:
        text = "".join(sentences)
        published = T0 + timedelta(hours=hours)
        return features(stored_entry(n, str(n), text=text, published=published, **kw), SETTINGS)

    def known(f: Features, article: int, story: int) -> Known:
        return Known(f, article, story)

    a_, c_, d_, f_ = (SENTENCES[i : i + 8] for i in (0, 8, 16, 24))
    guid, one, two = "https://g.example/item-1", "https://x.example/one", "https://x.example/two"
    a, c = at(1, a_, 0), at(2, c_, 0, link=one)
    f, d = at(3, f_, 0, guid=guid), at(4, d_, 0, link=two)
    b1 = at(20, a_ + c_ + f_, 1, link=one, guid=guid)
    b2 = at(21, a_ + c_ + f_ + d_, 2, link=two)
    outcome = assign(
        [Pending(b, keys=entry_keys(b, SETTINGS)) for b in (b1, b2)],
        [known(a, 11, 16), known(c, 13, 14), known(f, 15, 16), known(d, 7, 8)],
        [
            StoryState(16, T0, T0, 2, {"x": 1.0, "w": 1.0}),
            StoryState(14, T0, T0, 1, {"y": 1.0}),
            StoryState(8, T0, T0, 1, {"z": 1.0}),
        ],
        Vocabulary({}, 0),
        SETTINGS,
        next_id=30,
        article_count={16: 2, 14: 1, 8: 1}.__getitem__,
    )
    assert [(p.article_id, p.story_id) for p in outcome.placements] == [(7, 8), (7, 8)]
    assert outcome.merged == {16: 8, 14: 8}
    assert {(j.article, j.into, j.into_story) for j in outcome.joined_articles} == {
        (11, 7, 8),
        (13, 7, 8),
        (15, 7, 8),
    }


def test_a_copy_another_process_records_while_a_batch_is_read_is_found(tmp_path: Path) -> None:
    """Two placers on one SQLite file. The first places an edited entry E (new text F);
    just before it reads the next free id, the second records Y (text F too, another
    feed). The first's copy candidates (its key index) are read after that id, so Y is
    found and E joins Y's article (found by review: the index was read first, and the
    save, checked against the id alone, was accepted with E and Y in two articles)."""
    a, f = "".join(SENTENCES[:8]), "".join(SENTENCES[24:32])

    def data(guid: str, text: str, at: datetime) -> EntryData:
        link = f"https://site{guid}.example/{guid}"
        return EntryData(guid=guid, title=f"Title {guid}", link=link, published=at, text=text)

    db = tmp_path / "t.db"
    config = Config(path=db.with_suffix(".toml"), storage_path=db)
    later = T0 + timedelta(minutes=5)
    with make_aggregator(config) as first, make_aggregator(config) as second:
        feeds = [Feed(url=f"https://feed{n}.example/rss", name=f"feed{n}") for n in range(2)]
        first.storage.sync_feeds(feeds, T0)
        first.storage.save_poll(feeds[0], [data("E", a, T0)], now=T0, seconds=0)
        first.group_stored()
        edited = first.storage.save_poll(feeds[0], [data("E", f, T0)], now=later, seconds=0)
        first.placer.stored(edited.new_ids, edited.updated_ids)  # as a poll tells it

        read = first.storage.vocabulary
        raced: list[bool] = []

        def vocabulary(terms: Iterable[str]) -> tuple[Vocabulary, int]:
            if not raced:  # the other process records its batch just before this read
                raced.append(True)
                y = data("Y", f, T0 + timedelta(hours=1))
                second.storage.save_poll(feeds[1], [y], now=later, seconds=0)
                second.group_stored()
            return read(terms)

        first.storage.vocabulary = vocabulary  # type: ignore[method-assign]
        first.group_stored()
        assert raced
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT guid, article_id FROM entries ORDER BY guid").fetchall()
    conn.close()
    assert rows[0][1] == rows[1][1]  # one article


def _event_texts() -> dict[str, str]:
    """English reports on four events (two originals each, with a cut copy each), and
    round-ups that copy an original of one event and one of another: joins across
    stories, not only within one."""
    import random

    rng = random.Random(7)
    events = {
        "chips": "nvidia chips export rules washington beijing licence",
        "fair": "paris farm fair cattle growers minister visit",
        "flood": "jakarta flood relief rain evacuation shelters river",
        "wages": "oslo wage talks union strike employers mediator",
    }
    common = "the said on a in of and to for with after new week".split()
    texts: dict[str, str] = {}
    for name, words in events.items():
        vocab = words.split()
        for n in range(2):
            sentences = [
                " ".join(rng.choice(vocab + common) for _ in range(14)).capitalize() + "."
                for _ in range(10)
            ]
            texts[f"{name}{n}"] = " ".join(sentences)
            texts[f"{name}{n}cut"] = " ".join(sentences[1:])
    texts["roundup1"] = texts["chips0"] + " " + texts["fair1"]
    texts["roundup2"] = texts["flood0"] + " " + texts["wages0"]
    return texts


@settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_joins_across_stories_keep_articles_whole_and_stories_non_empty(
    tmp_path_factory: pytest.TempPathFactory, data: st.DataObject
) -> None:
    """Round-ups join articles of different events' stories; in any order and batches the
    articles are those of one batch, each lies in one story, and no story row is left
    without entries."""
    texts = _event_texts()
    folder = tmp_path_factory.mktemp("events")
    together, apart = _placed_at_once_and_in_drawn_polls(data, texts, folder, max_cuts=5)
    articles = _partition(apart, 0)
    assert articles == _partition(together, 0)
    assert frozenset({"chips0", "chips0cut", "fair1", "fair1cut", "roundup1"}) in articles
    assert len(set(apart.values())) == len(articles)  # each article in one story
    assert _stories_without_entries(folder / "apart.db") == []


def _edited_after_a_join(
    tmp_path: Path, guid: str, text: str
) -> tuple[dict[str, int], dict[str, int], dict[int, StoryState]]:
    """chips0, fair0 and fair1 polled (fair0 and fair1 one story); a round-up copying
    chips0 and fair1 moves fair1's article to chips0's story (its words stay counted in the
    fair story's centroid, its size); then entry `guid` is edited to `text`. Each entry's
    story after the join and after the edit, and every story row after it."""
    texts = _event_texts()
    db = tmp_path / "edit.db"
    feed, other = (Feed(url=f"https://feed{n}.example/rss", name=f"feed{n}") for n in (0, 1))

    def data(name: str, minutes: int, text: str | None = None) -> EntryData:
        return EntryData(
            guid=name,
            title=f"Title {name}",
            link=f"https://site{name}.example/{name}",
            published=T0 + timedelta(minutes=minutes),
            summary="",
            text=texts[name] if text is None else text,
        )

    first = [data("chips0", 0), data("fair0", 1), data("fair1", 2)]
    edited = [data(e.guid, n, text) if e.guid == guid else e for n, e in enumerate(first)]
    placed: list[dict[str, int]] = []
    with make_aggregator(Config(path=tmp_path / "feeds.toml", storage_path=db)) as agg:
        agg.storage.sync_feeds([feed, other], T0)
        for where, entries, now in (
            (feed, first, T0),
            (other, [data("roundup1", 3)], T0),
            (feed, edited, T0 + DAY),
        ):
            stored = agg.storage.save_poll(where, entries, now=now, seconds=0)
            agg.placer.stored(stored.new_ids, stored.updated_ids)
            agg.group_stored()
            placed.append({e.guid: e.story_id for e in agg.storage.entries_by_ids(range(1, 9))})
        ids = set(placed[2].values())
        stories = agg.storage.stories_near([], T0 - DAY, T0 + DAY, ids=ids)
    joined = placed[1]
    assert joined["fair1"] == joined["chips0"] != joined["fair0"]  # fair0 alone in its story
    assert _stories_without_entries(db) == []
    return joined, placed[2], {s.id: s for s in stories}


def test_an_edit_taking_the_last_article_out_of_a_story_leaves_no_empty_story(
    tmp_path: Path,
) -> None:
    """fair0, the fair story's last article, is edited into another event's text. The
    story's size still counted fair1, so it was taken as not emptied: it kept its row with
    no entry and no alias (found in the eighth session). Now it is emptied by its articles'
    count, and the edited entry, nothing else being similar, keeps its id, its words
    afresh."""
    joined, edited, stories = _edited_after_a_join(tmp_path, "fair0", _event_texts()["wages0"])
    story = stories[edited["fair0"]]
    assert story.id == joined["fair0"]  # the story it held alone: its id kept
    # Afresh: the wage talks' words, none of the farm fair's that fair1 brought.
    assert story.size == 1 and {"wage", "union"} <= set(story.centroid)
    assert not {"cattle", "growers", "farm"} & set(story.centroid)


def test_an_edit_of_a_storys_only_vector_keeps_the_articles_moved_into_it_findable(
    tmp_path: Path,
) -> None:
    """chips0 held the only vector of its story, which also holds fair1 and the round-up,
    moved in by the join (they carry none). Edited to another report of its event, it
    keeps that story and its words: a new story of its own left the old one with size 0,
    no words, found by no article again (found by review)."""
    joined, edited, stories = _edited_after_a_join(tmp_path, "chips0", _event_texts()["chips1"])
    assert edited["chips0"] == edited["fair1"] == edited["roundup1"] == joined["chips0"]
    story = stories[joined["chips0"]]
    assert story.size == 1 and {"nvidia", "export"} <= set(story.centroid)


def test_an_edit_back_into_its_emptied_story_makes_its_words_afresh(tmp_path: Path) -> None:
    """fair0, edited to a cut of itself, is similar to its story's words, fair1's among
    them though fair1 moved out: it joins it again, and the story counts its words alone
    (size 1, not 2; found by review)."""
    cut = _event_texts()["fair0cut"]
    joined, edited, stories = _edited_after_a_join(tmp_path, "fair0", cut)
    assert edited["fair0"] == joined["fair0"]
    assert stories[joined["fair0"]].size == 1
