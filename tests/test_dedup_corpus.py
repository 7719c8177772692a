"""End to end on the labelled corpus: the real CLI polls seeds + fixtures, the digest groups them.

The expected articles, stories and topics are written down in tests/fixtures/labels.toml.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import RunCli, cli, kept_counts_are_counted
from tests.fixtures.corpus import (
    Grouping,
    digest_json,
    grouping_from_digest,
    load_labels,
    make_workdir,
    use_edited,
)

LABELS = load_labels()


def _digest(run_cli: RunCli, folder: Path) -> Grouping:
    made = run_cli(
        "digest", "--since", "2025-02-09", "--format", "json", "--output", "-", cwd=folder
    )
    assert made.returncode == 0, made.stderr
    return grouping_from_digest(digest_json(made.stdout))


@pytest.fixture(scope="module")
def polled(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Grouping, Grouping]:
    """The corpus polled twice (the edited entry in its first, then its corrected version)."""
    run_cli = cli
    folder = tmp_path_factory.mktemp("corpus")
    make_workdir(folder, edited="edited_before")
    first = run_cli("poll", cwd=folder)
    assert first.returncode == 0, first.stderr
    before = _digest(run_cli, folder)
    use_edited(folder)
    second = run_cli("poll", cwd=folder)
    assert second.returncode == 0, second.stderr
    assert "0 new entries, 1 updated" in second.stderr
    return folder, before, _digest(run_cli, folder)


def test_each_article_once_with_all_its_copies(polled: tuple[Path, Grouping, Grouping]) -> None:
    _, _, after = polled
    assert after.entries == LABELS.entries  # every entry, each exactly once (checked on load)
    assert after.articles == LABELS.articles


def test_the_edited_entry_moves_to_the_article_it_now_copies(
    polled: tuple[Path, Grouping, Grouping],
) -> None:
    _, before, after = polled
    edited = "edited: 欧洲人工智能：美国领先 中国紧跟"
    singapore = "finance_cn: 首届东盟人工智能峰会在新加坡开幕 聚焦区域数字合作"
    dw = "Seeds: 人工智能峰会——欧洲还有竞争力吗？"
    article_before = next(a for a in before.articles if edited in a)
    article_after = next(a for a in after.articles if edited in a)
    assert singapore in article_before and dw not in article_before
    assert dw in article_after and singapore not in article_after


def test_distractors_stay_apart_from_the_summit(polled: tuple[Path, Grouping, Grouping]) -> None:
    _, _, after = polled
    summit = "Seeds: 刚刚，巴黎AI峰会开幕，百国探讨AI未来，DeepSeek成焦点"
    story = next(s for s in after.stories if summit in s)
    for distractor in (
        "finance_cn: 美股收盘：英伟达涨超3% DeepSeek概念股集体回调",
        "finance_cn: 首届东盟人工智能峰会在新加坡开幕 聚焦区域数字合作",
        "finance_cn: DeepSeek暂停API充值服务 称服务器资源紧张",
        "tech_cn: 巴黎国际农业博览会下周开幕 法国农民抗议余波未平",
        "tech_cn: 欧盟委员会撤回人工智能责任指令草案 称立法前景渺茫",
        "markets_en: Nvidia shares extend rebound as investors reassess DeepSeek threat",
        "markets_en: Developers flock to Bengaluru for India's largest AI conference",
        "headlines: 港股收盘：恒指涨1.8% 科技指数领涨",
    ):
        assert distractor not in story


def test_polling_again_changes_nothing(
    polled: tuple[Path, Grouping, Grouping], run_cli: RunCli
) -> None:
    folder, _, after = polled
    again = run_cli("poll", cwd=folder)
    assert again.returncode == 0 and "0 new entries, 0 updated" in again.stderr
    assert _digest(run_cli, folder) == after


def test_the_counts_kept_as_entries_are_placed_are_what_counting_finds(
    polled: tuple[Path, Grouping, Grouping],
) -> None:
    """/metrics' entries, articles and stories and each feed's entries (status), kept as
    polls and batches are recorded (an edit moving an entry to another article included),
    are what counting the stored entries finds."""
    folder, _, _ = polled
    assert kept_counts_are_counted(folder / "corpus.db")[2] > 1


#: The DW article (and its copies) on the summit and Europe's AI: with the languages
#: bridged its cosine with the summit story's centroid is 0.216 here, under 0.3, and it
#: stays a story of its own (docs/stories.md, "Known misses"). Polled alone, the four seeds
#: are one story (tests/test_stories.py).
DW = "Seeds: 人工智能峰会——欧洲还有竞争力吗？"


def test_stories_and_topics_are_as_labelled(polled: tuple[Path, Grouping, Grouping]) -> None:
    """The summit coverage, English and Chinese, is one story; distractors are stories of
    their own. The one known miss: the DW article's copies may stand apart (see `DW`)."""
    _, _, after = polled
    summit = next(s for s in LABELS.stories if DW in s)
    dw = next(a for a in LABELS.articles if DW in a)
    split = (LABELS.stories - {summit}) | {summit - dw, dw}
    assert after.stories in (LABELS.stories, split)
    for story, topic in LABELS.topics.items():
        for found, got in after.topics.items():
            if found <= story:
                assert got == topic, (sorted(found)[0], got, topic)


def test_headline_development_set_keeps_its_score(tmp_path: Path) -> None:
    """The 188 title-only headlines of bench/data/headlines.json (43 events, seven told in
    English and Chinese, a third with publishers' names appended) keep the pairwise story
    F1 docs/stories.md states (0.792; 0.659 when each language's reports were labelled and
    placed apart): a floor, not the figure, so that a small tuning elsewhere need not touch
    it, but losing `headline`, the headline threshold or the language bridge does."""
    from bench.cluster_quality import run_headlines

    precision, recall, f1, _, events = run_headlines(tmp_path)
    assert events == 43
    assert f1 >= 0.75, (precision, recall, f1)
