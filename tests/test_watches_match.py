"""Matching stories to watches (dedup/watches.py): keywords over both scripts and whole
Latin words, all/none, feeds and tags, and when a match is due an alert."""

from __future__ import annotations

from datetime import UTC, datetime

import opencc
import pytest

from aggregator.config import WatchConfig
from aggregator.dedup.text import normalise
from aggregator.dedup.topics import _pattern
from aggregator.dedup.watches import WatchMatcher, alert_due, from_feeds, sources_of
from tests.builders import stored_entry
from tests.conftest import SEEDS

T0 = datetime(2025, 2, 10, tzinfo=UTC)


def watch(name: str, *keywords: str, **more: tuple[str, ...]) -> WatchConfig:
    return WatchConfig(name=name, keywords=keywords, notify=("webhook",), **more)  # type: ignore[arg-type]


def matched(watches: list[WatchConfig], *texts: str) -> list[str]:
    matcher = WatchMatcher(watches)
    entries = [stored_entry(n, t, published=T0) for n, t in enumerate(texts)]
    return [watches[n].name for n in matcher.matching(matcher.story_terms(entries))]


@pytest.mark.parametrize(
    ("keyword", "text", "hit"),
    [
        ("AI峰会", "巴黎AI峰會開幕", True),  # Simplified keyword, Traditional text
        ("AI峰會", "巴黎AI峰会开幕", True),  # and the other way round
        ("人工智能", "法國舉辦人工智慧行動峰會", True),  # Taiwan's word for it
        ("台风", "颱風逼近", True),  # one Simplified character, several Traditional ones
        ("AI", "He said it", False),  # whole words only
        ("AI", "the AI summit", True),
        ("AI", "AIs and robots", True),  # a plural may follow
        ("Summit", "SUMMIT opens", True),  # case-folded
        ("summit", "summitry", False),
        ("DeepSeek", "DeepSeek发布新模型", True),  # a Latin word next to Chinese
        ("峰会", "这是高峰会议", True),  # Chinese: anywhere
        ("e.u.", "the e.u. said", True),
    ],
)
def test_a_keyword_in_either_script_and_whole_latin_words(
    keyword: str, text: str, hit: bool
) -> None:
    assert matched([watch("w", keyword)], text) == (["w"] if hit else [])


@pytest.mark.parametrize(
    ("keyword", "text", "hit"),
    [
        ("ИИ", "Банк России сохранил ставку", False),  # "ии" ends России, информации
        ("ИИ", "по информации агентства", False),
        ("ИИ", "Компании внедряют ИИ в работу", True),
        ("ИИ", "Рынок ИИ-моделей растёт", True),
        ("ЕС", "если бы не санкции", False),  # an acronym is a whole word
        ("ЕС", "Саммит ЕС в Брюсселе", True),
        ("Путин", "Путину доложили", True),  # a word: its inflected endings follow
        ("Путин", "Распутин", False),  # but it starts a word
        ("Ιαπωνία", "Σεισμός στην Ιαπωνία", True),
        ("ΗΠΑ", "Οι ΗΠΑ και η Κίνα", True),
        ("ΗΠΑ", "ΑΝΗΠΑΝΤΟΧΟΣ", False),
    ],
)
def test_cyrillic_and_greek_keywords_start_a_word_and_acronyms_are_whole(
    keyword: str, text: str, hit: bool
) -> None:
    """A watch or topic keyword "ИИ" (AI in Russian) matched inside России and
    информации, so nearly every Russian story was filed under AI and alerted on. A Greek
    or Cyrillic keyword now starts a word, and one in capitals is a whole word; a word
    still finds its inflected forms. Watches and topics agree."""
    assert matched([watch("w", keyword)], text) == (["w"] if hit else [])
    assert bool(_pattern(keyword).search(normalise(text))) == hit


def test_all_and_none_over_the_whole_story() -> None:
    watches = [
        watch("both", "峰会", all=("巴黎", "AI")),
        watch("not sport", "峰会", none=("体育",)),
    ]
    # "AI" and "巴黎" are in different entries of the story: the story has both.
    assert matched(watches, "峰会开幕", "巴黎见", "AI") == ["both", "not sport"]
    assert matched(watches, "峰會開幕", "巴黎见") == ["not sport"]
    assert matched(watches, "峰会开幕 巴黎 AI", "體育新聞") == ["both"]


def test_one_pass_finds_every_overlapping_keyword_of_every_watch() -> None:
    watches = [watch("long", "AI峰会"), watch("short", "AI"), watch("inner", "峰会")]
    assert matched(watches, "巴黎AI峰会") == ["long", "short", "inner"]


def seed_texts() -> list[str]:
    to_traditional = opencc.OpenCC("s2t")
    texts = [p.read_text("utf-8") for p in sorted(SEEDS.glob("*.txt"))]
    return texts + [to_traditional.convert(t) for t in texts]


@pytest.mark.parametrize(
    "keyword",
    [
        "AI",
        "峰会",
        "人工智能",
        "巴黎",
        "DeepSeek",
        "马克龙",
        "欧洲",
        "开源",
        "美国",
        "Mistral",
        "OpenAI",
        "中国",
    ],
)
def test_finds_what_the_normalised_text_holds_on_the_seeds(keyword: str) -> None:
    """The matcher never converts a text; on the seeds, in both scripts, it finds the
    keyword exactly where the topics' search of the normalised text does."""
    matcher = WatchMatcher([watch("w", keyword)])
    pattern = _pattern(keyword)
    results = [
        (bool(matcher.terms_in(t)), bool(pattern.search(normalise(t)))) for t in seed_texts()
    ]
    assert [a for a, _ in results] == [b for _, b in results]
    assert any(a for a, _ in results)  # the test means something: found somewhere


def test_feeds_by_name_or_tag() -> None:
    assert from_feeds(watch("w", "x"), ["BBC"], [])
    assert from_feeds(watch("w", "x", feeds=("BBC",)), ["BBC", "DW"], [])
    assert from_feeds(watch("w", "x", feeds=("wire",)), ["Reuters"], ["wire", "en"])
    assert not from_feeds(watch("w", "x", feeds=("wire",)), ["BBC"], ["uk"])


def test_sources_are_distinct_feeds() -> None:
    entries = [
        stored_entry(1, "a", published=T0, feed_url="https://a/rss"),
        stored_entry(2, "b", published=T0, feed_url="https://a/rss"),
        stored_entry(3, "c", published=T0, feed_url="https://b/rss"),
    ]
    assert sources_of(entries) == 2


@pytest.mark.parametrize(
    ("min_sources", "renotify", "sources", "alerted", "due"),
    [
        (1, 0, 1, None, ("new", 0)),
        (3, 0, 2, None, None),  # not yet carried widely enough
        (3, 0, 3, None, ("new", 0)),
        (3, 0, 9, (3, 0), None),  # no renotify: never again
        (3, 2, 4, (3, 0), None),
        (3, 2, 5, (3, 0), ("grew", 1)),
        (3, 2, 6, (3, 1), None),  # that threshold was alerted
        (3, 2, 11, (3, 1), ("grew", 4)),  # several crossed at once: one alert, the highest
        (1, 2, 8, (4, 0), ("grew", 2)),  # counted from the first alert's sources
    ],
)
def test_when_an_alert_is_due(
    min_sources: int,
    renotify: int,
    sources: int,
    alerted: tuple[int, int] | None,
    due: tuple[str, int] | None,
) -> None:
    assert alert_due(min_sources, renotify, sources, alerted) == due


def test_no_watch_no_automaton() -> None:
    assert WatchMatcher([]).terms_in("anything") == set()
