"""English and Chinese reports of one event: the dictionary, amounts, and stories."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from aggregator.dedup import crosslang, terms
from aggregator.dedup.text import normalise
from bench import bilingual


@pytest.fixture
def cross_language(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """`terms.CROSS_LANGUAGE` on, in this process (polls this small compute features here)."""
    monkeypatch.setattr(terms, "CROSS_LANGUAGE", True)
    yield


@pytest.fixture
def words_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """`terms.CROSS_LANGUAGE` off."""
    monkeypatch.setattr(terms, "CROSS_LANGUAGE", False)
    yield


def test_the_dictionary_loads_from_the_installed_package_without_network(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_network(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the dictionary tried the network")

    monkeypatch.setattr(socket, "socket", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    crosslang.dictionary.cache_clear()
    monkeypatch.setattr(crosslang, "_ENGLISH", crosslang.Memo(crosslang._english))
    path = resources.files(crosslang.DICTIONARY_PACKAGE).joinpath(crosslang.DICTIONARY_FILE)
    assert path.is_file()  # inside the installed package, not fetched
    table = crosslang.dictionary()
    assert len(table) > 100_000
    assert crosslang.english("地震") == "earthquake"


@pytest.mark.parametrize(
    ("word", "english"),
    [
        ("峰会", "summit"),  # "summit meeting": a phrase by its rarest word
        ("芯片", "chip"),  # "computer chip"
        ("马克龙", "macron"),  # "Emmanuel Macron (1977-), president of France": a name's last
        ("特朗普", "trump"),
        ("英伟达", "nvidia"),
        ("缅甸", "myanmar"),
        ("海啸", "tsunami"),
        ("幻方", ""),  # not in the dictionary: stays Chinese
        ("美联储", "fed"),  # "US Federal Reserve (Fed)": a name's abbreviation
        ("比亚迪", "byd"),  # "BYD Company (company name)": not "company"
        ("丰田", "toyota"),  # "Toyota or Toyoda (name)": the first of the alternatives
    ],
)
def test_a_chinese_word_counts_as_one_english_word(word: str, english: str) -> None:
    assert crosslang.english(word) == english


def test_words_jieba_cuts_apart_are_joined_into_a_dictionary_word() -> None:
    # jieba's dictionary lacks 马克龙 and cuts it 马克 + 龙.
    assert list(crosslang.units(["马克", "龙", "宣布", "投资"])) == ["马克龙", "宣布", "投资"]


def _units_by_the_rule(words: list[str], standalone: frozenset[str]) -> list[str]:
    """`crosslang.units` as its docstring says it, plainly: each lone character (in order)
    joined with the words before and after, else before, else after, when that is a
    dictionary word, unless it overlaps a join made already."""
    table, out, i = crosslang.dictionary(), [], 0
    for j, w in enumerate(words):
        if len(w) != 1 or w < "\u3400" or w in standalone:
            continue
        for start, stop in ((j - 1, j + 2), (j - 1, j + 1), (j, j + 2)):
            if start >= 0 and stop <= len(words) and "".join(words[start:stop]) in table:
                if start >= i:
                    out += [*words[i:start], "".join(words[start:stop])]
                    i = stop
                break
    return out + words[i:]


def test_lone_characters_are_joined_as_the_rule_says() -> None:
    """On dictionary words cut at random points, shuffled among lone characters (names
    jieba cuts apart, standalone characters), `units` joins as the rule does."""
    import random

    chosen = random.Random(7)
    table = sorted(crosslang.dictionary())
    standalone = frozenset("的年说")
    joined = 0
    for _ in range(2000):
        words = []
        for word in chosen.sample(table, 6):
            cut = chosen.randrange(len(word) + 1)
            words += [part for part in (word[:cut], word[cut:]) if part]
        words += chosen.sample("的年说龙曼悦锦丽贺克马", 4)
        chosen.shuffle(words)
        expected = _units_by_the_rule(words, standalone)
        assert crosslang.units(words, standalone) == expected
        joined += len(expected) < len(words)
    assert joined > 500  # joins were made (else the test says nothing)


def test_stop_words_stay_out_and_words_the_dictionary_lacks_stay_chinese(
    cross_language: None,
) -> None:
    counts = terms.entry_terms(normalise("幻方在巴黎表示"), normalise("峰会"))
    assert counts == {"幻方": 2, "paris": 2, "summit": 1}


@pytest.mark.parametrize(
    ("chinese", "english", "term"),
    [
        ("法国将获1090亿欧元投资", "France to get €109 billion of investment", "amt:109e9"),
        ("投资1,090亿欧元", "Macron's €109bn AI pledge", "amt:109e9"),
        ("投资1090亿欧元", "109 billion euros of investment", "amt:109e9"),
        ("出价974亿美元收购", "a $97.4 billion bid", "amt:97.4e9"),
        ("罚款5亿欧元", "fined €500m", "amt:500e6"),
        ("加征关税的商品价值5000万美元", "$50 million of goods", "amt:50e6"),
        ("销量427.2万辆", "sales of 4.27 million vehicles", "amt:4.27e6"),
        ("已造成1644人死亡", "1,644 people were killed", "amt:1.64e3"),
    ],
)
def test_amounts_are_one_term_in_both_languages(chinese: str, english: str, term: str) -> None:
    assert crosslang.number_terms(normalise(chinese)) == [term]
    assert crosslang.number_terms(normalise(english)) == [term]


@pytest.mark.parametrize(
    "text", ["2024年销量", "in 2024, 3 people", "3人受伤", "up 17%", "the 5m race", "降息25个基点"]
)
def test_years_small_counts_and_percentages_are_no_amounts(text: str) -> None:
    assert not [t for t in crosslang.number_terms(normalise(text)) if t.startswith("amt:")]


def test_a_chinese_report_shares_the_english_reports_terms(cross_language: None) -> None:
    english = terms.entry_terms(
        normalise("Macron announces 109 billion euros of AI investment in France"), ""
    )
    chinese = terms.entry_terms(normalise("马克龙宣布法国将获1090亿欧元人工智能投资"), "")
    shared = english.keys() & chinese.keys()
    assert {"macron", "france", "euro", "investment", "amt:109e9"} <= shared


def test_off_entry_terms_are_the_words(words_only: None) -> None:
    title = normalise("马克龙宣布法国将获1090亿欧元人工智能投资")
    assert terms.entry_terms(title, "") == {w: terms.TITLE_TERM_WEIGHT for w in terms.words(title)}


def _reports(*events: str) -> list[dict[str, Any]]:
    rows = [row for row in bilingual.load() if row["event"] in events]
    for n, row in enumerate(rows):
        row["guid"] = str(n)
    return rows


def _stories(rows: list[dict[str, Any]], folder: Path) -> list[set[str]]:
    """The events of each story found, polling each report as its publisher's feed."""
    events = {row["guid"]: row["event"] for row in rows}
    found = bilingual.poll(rows, folder)
    return [{events[guid] for guid in guids} for guids in found.values()]


def test_an_english_and_a_chinese_report_of_one_event_are_one_story(
    tmp_path: Path, cross_language: None
) -> None:
    rows = [
        row
        for row in _reports("france-ai-109bn")
        if row["publisher"] in ("Reuters", "新华网")  # one English, one Chinese
    ]
    assert sorted(row["lang"] for row in rows) == ["en", "zh"]
    assert len(bilingual.poll(rows, tmp_path)) == 1


def test_without_the_bridge_they_are_two_stories(tmp_path: Path, words_only: None) -> None:
    rows = [row for row in _reports("france-ai-109bn") if row["publisher"] in ("Reuters", "新华网")]
    assert len(bilingual.poll(rows, tmp_path)) == 2


def test_two_events_sharing_a_name_stay_apart_in_both_languages(
    tmp_path: Path, cross_language: None
) -> None:
    """OpenAI's Stargate venture (21 January 2025) and its Operator agent (two days later),
    each told in English and Chinese: two stories, each in both languages."""
    rows = _reports("stargate", "openai-operator")
    assert {(row["event"], row["lang"]) for row in rows} == {
        (event, lang) for event in ("stargate", "openai-operator") for lang in ("en", "zh")
    }
    stories = _stories(rows, tmp_path)
    assert all(len(events) == 1 for events in stories)  # no story mixes the two
    assert len(stories) == 2
