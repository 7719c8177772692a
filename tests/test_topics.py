"""Topics and sections (dedup/topics.py): which topic a story is filed under, "also in"
references, and the few sections the stories matching no topic are grouped into."""

from __future__ import annotations

import itertools
import json
import random
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from aggregator.config import load_config
from aggregator.dedup.group import make_article, make_story
from aggregator.dedup.topics import (
    MAX_SECTIONS,
    OTHER,
    REGROUP_AFTER,
    REGROUP_SHARE,
    best_topic,
    group_by_topic,
    grouping,
    regroup,
    regrouping_due,
    section_keywords,
    topic_scores,
)
from aggregator.digest.render import render
from aggregator.exceptions import ConfigError
from aggregator.sources.files import read_source
from aggregator.types import Digest, Entry, EntryData, Format, Story, Topic
from tests.builders import stored_entry

ROOT = Path(__file__).resolve().parent.parent
T0 = datetime(2025, 2, 10, 12, 0, tzinfo=UTC)
_ids = itertools.count(1)


def entry(title: str, text: str = "", *, feed: str = "feed", minutes: int = 0) -> Entry:
    n = next(_ids)
    return stored_entry(
        n,
        title,
        published=T0 + timedelta(minutes=minutes),
        feed_url=f"https://{feed}.example/rss",
        feed_name=feed,
        link=f"https://{feed}.example/{n}",
        text=text,
    )


def story(*titles: str, text: str = "", minutes: int = 0) -> Story:
    """A story of one article per title (each from its own feed)."""
    return make_story(
        [
            make_article([entry(t, text, feed=f"feed{n}", minutes=minutes)])
            for n, t in enumerate(titles)
        ]
    )


def seed_entries() -> dict[str, EntryData]:
    parsed = read_source(ROOT / "seeds", default_tz=ZoneInfo("Asia/Shanghai"))
    return {e.title: e for e in parsed.entries}


def copies(data: EntryData, count: int) -> Story:
    """A seed article with `count` copies in as many feeds (copies are one article)."""
    return make_story(
        [make_article([entry(data.title, data.text, feed=f"copy{n}") for n in range(count)])]
    )


# --- topic choice ----------------------------------------------------------------------------

# The topics of issue 14, DeepSeek first: on a tie the first listed wins, which is where
# counting keyword hits filed the summit.
DEEPSEEK = Topic("DeepSeek", ("DeepSeek", "深度求索"))
SUMMIT = Topic("巴黎AI行动峰会", ("行动峰会", "AI峰会", "人工智能峰会", "AI行动峰会"))
ISSUE_TOPICS = (DEEPSEEK, SUMMIT)


def _deepseek_window() -> tuple[Story, Story, Story, list[Story]]:
    """The summit seeds among stories that mention DeepSeek for other reasons."""
    seeds = seed_entries()
    opening = copies(seeds["刚刚，巴黎AI峰会开幕，百国探讨AI未来，DeepSeek成焦点"], 7)
    china = copies(
        seeds["中方派出高级别代表团，DeepSeek让同行看到新希望，巴黎AI峰会热议“中国成功”"], 2
    )
    launch = story(
        "DeepSeek发布新一代推理模型 性能比肩OpenAI o1",
        "深度求索推出新模型",
        text="DeepSeek今日发布新一代推理模型，深度求索称其成本更低。此前巴黎AI峰会上该公司备受关注。",
    )
    unrelated = [
        story("美股收盘：英伟达涨超3% DeepSeek概念股集体回调"),
        story("DeepSeek暂停API充值服务 称服务器资源紧张"),
        story("Nvidia shares extend rebound as investors reassess DeepSeek threat"),
        story("港股科技股走强 DeepSeek带动AI应用板块", text="多只与DeepSeek合作的公司股价上涨。"),
    ]
    return opening, china, launch, unrelated


def test_summit_story_naming_deepseek_in_its_headline_is_filed_under_the_summit() -> None:
    opening, china, launch, unrelated = _deepseek_window()
    window = [opening, china, launch, *unrelated]
    groups = {g.name: g for g in group_by_topic(window, ISSUE_TOPICS)}
    assert set(groups[SUMMIT.name].stories) == {opening, china}
    assert best_topic(opening, ISSUE_TOPICS, window) == SUMMIT.name
    assert best_topic(china, ISSUE_TOPICS, window) == SUMMIT.name


def test_deepseek_model_launch_is_filed_under_deepseek() -> None:
    opening, china, launch, unrelated = _deepseek_window()
    window = [launch, opening, china, *unrelated]
    groups = {g.name: g for g in group_by_topic(window, ISSUE_TOPICS)}
    assert set(groups[DEEPSEEK.name].stories) == {launch, *unrelated}
    assert best_topic(launch, ISSUE_TOPICS, window) == DEEPSEEK.name


def test_a_keyword_many_stories_mention_weighs_less() -> None:
    """The same mention counts less when the window's other stories use the word too."""
    mixed = story("巴黎AI峰会开幕 DeepSeek成焦点")
    alone = topic_scores(mixed, ISSUE_TOPICS)
    _, _, _, unrelated = _deepseek_window()
    among = topic_scores(mixed, ISSUE_TOPICS, [mixed, *unrelated])
    assert among[0] / among[1] < alone[0] / alone[1]


def test_headline_subject_outweighs_a_later_mention() -> None:
    """Equally specific keywords: the one at the headline's start names what it is about."""
    about_summit = story("巴黎AI峰会开幕 各国领导人与DeepSeek创始人出席")
    about_model = story("DeepSeek新模型亮相 巴黎AI峰会前夕发布")
    assert best_topic(about_summit, ISSUE_TOPICS) == SUMMIT.name
    assert best_topic(about_model, ISSUE_TOPICS) == DEEPSEEK.name


def test_an_article_counts_once_per_keyword_however_often_it_repeats() -> None:
    repeated = story("AI峰会", text="DeepSeek " * 50)
    assert best_topic(repeated, ISSUE_TOPICS) == SUMMIT.name


def test_latin_keywords_match_whole_words() -> None:
    ai = (Topic("AI", ("AI",)),)
    assert best_topic(story("Minister said the plan was certain to fail"), ai) == OTHER
    assert best_topic(story("EU agrees rules for AI models"), ai) == "AI"
    summit = (Topic("Summits", ("summit",)),)
    assert best_topic(story("Leaders leave two summits without a deal"), summit) == "Summits"


# --- "also in" -----------------------------------------------------------------------------


def test_also_in_line_under_the_other_topic_and_json_lists_each_story_once() -> None:
    stocks = Topic("Markets", ("shares", "stocks"))
    chips = Topic("Chips", ("Nvidia", "chip"))
    both = story(
        "Nvidia shares tumble as chip export rules tighten",
        "Chip stocks slide, Nvidia shares lead losses",
    )
    market = story("Stocks close higher as oil rebounds", "Shares rise on oil rebound")
    chip = story("Nvidia unveils new AI chip", "New Nvidia chip aims at data centres")
    groups = group_by_topic([both, market, chip], [stocks, chips])
    digest = Digest(
        since=T0, until=T0 + timedelta(days=1), generated_at=T0, timezone="UTC", topics=groups
    )
    filed = next(g for g in groups if both in g.stories)
    other = next(g for g in groups if g is not filed)
    assert other.also == (both,)

    text = render(digest, Format.TEXT)
    section = text.split(f"== {other.name} ==", 1)[1]
    assert f"Also in this section: {both.headline} (under {filed.name})" in section
    # The story's entries are listed once: under the section it is filed in.
    assert sum(line.endswith(f". {both.headline}") for line in text.splitlines()) == 1

    html = render(digest, Format.HTML)
    assert 'class="also"' in html and 'href="#story-' in html.split('class="also"', 1)[1]

    data = json.loads(render(digest, Format.JSON))
    headlines = [s["headline"] for t in data["topics"] for s in t["stories"]]
    assert sorted(headlines) == sorted(s.headline for s in (both, market, chip))
    assert all(set(t) == {"name", "stories"} for t in data["topics"])


def test_no_also_in_for_a_mention_in_the_text_only() -> None:
    stocks = Topic("Markets", ("shares",))
    chips = Topic("Chips", ("Nvidia",))
    about = story("Nvidia unveils a chip", "Nvidia's new chip", text="Its shares rose.")
    (group,) = group_by_topic([about], [stocks, chips])
    assert group.name == "Chips" and group.also == ()


# --- sections ------------------------------------------------------------------------------

SUBJECTS = {
    "quake": [
        "Earthquake of magnitude {n} strikes {p}, officials count damage",
        "{p} earthquake: rescuers search rubble after magnitude {n} quake",
        "Aftershocks rattle {p} a day after earthquake, officials say",
    ],
    "football": [
        "{p} beat rivals {n}-1 in league match, officials confirm goal",
        "Striker scores twice as {p} win league match",
        "{p} coach praises striker after league win",
    ],
    "rates": [
        "Central bank of {p} holds interest rates at {n}%, officials say",
        "{p} central bank signals interest rate cut as inflation cools",
        "Inflation in {p} eases, central bank weighs rates",
    ],
    "phones": [
        "{p} smartphone maker unveils foldable phone with {n} cameras",
        "Foldable smartphone from {p} maker goes on sale",
        "Review: {p} foldable phone battery lasts a day, officials of the maker say",
    ],
    "film": [
        "{p} film festival opens with premiere of director's new movie",
        "Director wins top prize at {p} film festival for movie on war",
        "Actors walk red carpet at {p} film festival premiere",
    ],
}
PLACES = ["Chile", "Japan", "Peru", "Turkey", "Nepal", "Italy", "Greece", "Mexico", "Iran", "Fiji"]


def subject_stories() -> dict[Story, str]:
    """Fifty stories of two articles each, ten per subject, each story in another place."""
    out = {}
    for subject, patterns in SUBJECTS.items():
        for n, place in enumerate(PLACES):
            titles = [patterns[(n + k) % 3].format(p=place, n=n + 4) for k in range(2)]
            out[story(*titles, minutes=n)] = subject
    return out


def test_sections_are_at_most_max_sections_plus_other() -> None:
    labelled = subject_stories()
    for limit in (3, MAX_SECTIONS):
        groups = group_by_topic(list(labelled), [], max_sections=limit)
        assert len([g for g in groups if g.name != OTHER]) <= limit
        assert sum(len(g.stories) for g in groups) == len(labelled)
    groups = group_by_topic(list(labelled), [])
    majority = sum(Counter(labelled[s] for s in g.stories).most_common(1)[0][1] for g in groups)
    assert majority / len(labelled) >= 0.9
    assert len(groups) <= len(SUBJECTS) + 1


def test_sections_are_named_by_their_distinctive_words() -> None:
    labelled = subject_stories()
    groups = group_by_topic(list(labelled), [])
    by_subject = {
        Counter(labelled[s] for s in g.stories).most_common(1)[0][0]: g.name
        for g in groups
        if g.name != OTHER
    }
    assert len(by_subject) == len(groups) == len(SUBJECTS)
    assert "officials" not in " ".join(by_subject.values())  # in most subjects' titles
    assert "earthquake" in by_subject["quake"].lower()
    assert "festival" in by_subject["film"].lower()
    quakes = [s for s, subject in labelled.items() if subject == "quake"]
    others = [s for s, subject in labelled.items() if subject != "quake"]
    assert "officials" not in section_keywords(quakes, others, 5)


def test_section_names_are_spelled_as_the_titles_spell_them() -> None:
    typhoon = [
        story("颱風襲擊台灣東部 多地停班停課", "颱風登陸台灣 東部強風豪雨"),
        story("颱風過境 台灣東部災情持續", "颱風遠離台灣 東部復原"),
    ]
    (group,) = group_by_topic(typhoon, [])
    assert "颱風" in group.name and "台风" not in group.name
    latin = [story("DeepSeek's model tops the charts", "DeepSeek releases its model")]
    (named,) = group_by_topic(latin, [])
    assert named.name.startswith("DeepSeek ·") and "'" not in named.name
    # Cyrillic and Greek words too (they were shown case-folded: "япония · токио")
    russian = [story("Землетрясение в Японии: Токио трясёт", "Японии грозит цунами, Токио")]
    (named,) = group_by_topic(russian, [])
    assert set(named.name.split(" · ")) <= {"Японии", "Токио", "Землетрясение"}, named.name
    greek = [story("Σεισμός στην Ιαπωνία, το Τόκιο", "Ιαπωνία: το Τόκιο σείεται")]
    (named,) = group_by_topic(greek, [])
    assert "Ιαπωνία" in named.name and "Τόκιο" in named.name, named.name


def test_sections_do_not_depend_on_the_input_order() -> None:
    labelled = list(subject_stories())
    _, _, launch, unrelated = _deepseek_window()
    labelled += [launch, *unrelated]
    expected = group_by_topic(labelled, [SUMMIT])
    for seed in range(3):
        shuffled = random.Random(seed).sample(labelled, len(labelled))
        assert group_by_topic(shuffled, [SUMMIT]) == expected


def test_lone_unrelated_stories_go_under_other() -> None:
    lone = [story("Markets close higher on Friday"), story("巴黎国际农业博览会下周开幕")]
    assert [g.name for g in group_by_topic(lone, [])] == [OTHER]


# --- the configuration key -----------------------------------------------------------------


def _config(tmp_path: Path, value: str) -> Path:
    path = tmp_path / "feeds.toml"
    path.write_text(
        f'[[feeds]]\nurl = "seeds"\nname = "Seeds"\n\n[digest]\ntimezone = "UTC"\n'
        f"max_sections = {value}\n",
        encoding="utf-8",
    )
    return path


def test_max_sections_is_read_and_defaults_to_twelve(tmp_path: Path) -> None:
    assert load_config(_config(tmp_path, "5")).digest.max_sections == 5
    path = tmp_path / "plain.toml"
    path.write_text('[digest]\ntimezone = "UTC"\n', encoding="utf-8")
    assert load_config(path).digest.max_sections == MAX_SECTIONS == 12


@pytest.mark.parametrize("value", ["0", "-2", '"12"', "true", "2.5"])
def test_max_sections_must_be_a_whole_number_of_at_least_one(tmp_path: Path, value: str) -> None:
    path = _config(tmp_path, value)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.key == "digest.max_sections"
    assert info.value.line == 7
    assert info.value.path == str(path)
    assert "at least 1" in info.value.message


# --- filing into the sections kept (the served Now page after a poll) ----------------------


def test_a_new_story_joins_the_section_of_its_subject_and_names_stay() -> None:
    labelled = subject_stories()
    last = grouping(list(labelled), [])
    quake = story(
        "Earthquake of magnitude 6 strikes Spain, officials count damage",
        "Spain earthquake: rescuers search rubble after magnitude 6 quake",
        minutes=30,
    )
    lone = story("Parliament debates the budget for a third night")
    groups = regroup(last, [*labelled, quake, lone]).groups
    # The same names (in the order of their sizes: the quakes' grew), and "Other".
    assert sorted(g.name for g in groups) == sorted([OTHER, *(g.name for g in last.groups)])
    where = {s: g.name for g in groups for s in g.stories}
    quakes = [s for s, subject in labelled.items() if subject == "quake"]
    assert where[quake] == Counter(where[s] for s in quakes).most_common(1)[0][0] != OTHER
    assert where[lone] == OTHER
    assert sum(len(g.stories) for g in groups) == len(labelled) + 2 == len(where)
    # The stories grouped before stay where they were.
    before = {s: g.name for g in last.groups for s in g.stories}
    assert all(where[s] == before[s] for s in labelled)


def test_topics_are_filed_as_the_whole_grouping_files_them() -> None:
    """A story that comes to match a topic (edited, or new) is filed under it, exactly as
    group_by_topic files it; one gone from the window is gone; each story is listed once."""
    labelled = subject_stories()
    film = Topic("Film", ("film festival",))
    films = [s for s, subject in labelled.items() if subject == "film"]
    others = [s for s in labelled if s not in films]
    last = grouping(others, [film])
    assert [g.name for g in last.groups if g.name == "Film"] == []
    edited = others[0]  # a story its sources retitled: the same id, another version
    retitled = make_story(
        [
            make_article([replace(c, title="Film festival opens in Chile") for c in a.copies])
            for a in edited.articles
        ],
        story_id=edited.id,
    )
    window = [*films, retitled, *others[2:]]
    groups = regroup(last, window).groups
    expected = group_by_topic(window, [film])
    assert groups[0].name == expected[0].name == "Film"
    assert set(groups[0].stories) == set(expected[0].stories) == {*films, retitled}
    listed = [s for g in groups for s in g.stories]
    assert len(listed) == len(set(listed)) == len(window)
    assert others[1] not in listed and edited not in listed


def test_the_sections_are_clustered_again_when_the_rule_says() -> None:
    labelled = list(subject_stories())
    last = grouping(labelled, [SUMMIT])
    assert regrouping_due(None, labelled, [SUMMIT], MAX_SECTIONS, 0)
    assert not regrouping_due(last, labelled, [SUMMIT], MAX_SECTIONS, 0)
    assert regrouping_due(last, labelled, [SUMMIT], MAX_SECTIONS, REGROUP_AFTER)
    assert not regrouping_due(last, labelled, [SUMMIT], MAX_SECTIONS, REGROUP_AFTER - 1)
    assert regrouping_due(last, labelled, [SUMMIT, DEEPSEEK], MAX_SECTIONS, 0)
    assert regrouping_due(last, labelled, [SUMMIT], MAX_SECTIONS - 1, 0)
    share = int(REGROUP_SHARE * len(labelled))  # 5 of 50: new, changed or gone
    fresh = [story(f"Fresh story number {n}") for n in range(share + 1)]
    assert not regrouping_due(last, [*labelled[3:], *fresh[:2]], [SUMMIT], MAX_SECTIONS, 0)
    assert regrouping_due(last, [*labelled[3:], *fresh[:3]], [SUMMIT], MAX_SECTIONS, 0)
    assert regrouping_due(last, [*labelled, *fresh], [SUMMIT], MAX_SECTIONS, 0)


def test_unchanged_stories_keep_the_whole_groupings_sections() -> None:
    labelled = list(subject_stories())
    last = grouping(labelled, [SUMMIT])
    assert last.groups == group_by_topic(labelled, [SUMMIT])
    kept = regroup(last, labelled).groups
    assert [(g.name, set(g.stories)) for g in kept] == [
        (g.name, set(g.stories)) for g in last.groups
    ]


def test_filing_into_the_sections_kept_weighs_keywords_over_the_whole_window() -> None:
    """Stories with evidence for both topics are filed, with their "also in", by the
    keywords' specificity over every story of the window, as group_by_topic files them."""
    opening, china, launch, unrelated = _deepseek_window()
    window = [opening, china, launch, *unrelated, *list(subject_stories())[:20]]
    for held in (0, 1, 3):  # the summit's stories new since the sections were clustered
        new = (opening, china, launch)[:held]
        last = grouping([s for s in window if s not in new], ISSUE_TOPICS)
        kept = regroup(last, window).groups
        whole = group_by_topic(window, ISSUE_TOPICS)
        assert [(g.name, g.stories, g.also) for g in kept[:2]] == [
            (g.name, g.stories, g.also) for g in whole[:2]
        ]
        assert any(g.also for g in kept[:2])  # a story listed under both, once "also"
