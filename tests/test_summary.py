"""Summaries: sentence-aware teasers for Chinese and Latin text (pure functions)."""

from __future__ import annotations

import pytest

from aggregator.digest.summary import display_width, split_sentences, summarize


def test_chinese_sentences_keep_their_punctuation_and_quotes() -> None:
    text = "他说：“我们会来。”然后走了！真的吗？是的"
    assert split_sentences(text) == ["他说：“我们会来。”", "然后走了！", "真的吗？", "是的"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Mr. Smith went to Washington. He left.", ["Mr. Smith went to Washington.", "He left."]),
        ("It cost $3.5 billion. Shares rose.", ["It cost $3.5 billion.", "Shares rose."]),
        ("See example.com for more. Thanks!", ["See example.com for more.", "Thanks!"]),
        ("The U.S. Army said no. Fine.", ["The U.S. Army said no.", "Fine."]),
        ("J. R. Smith won. Great?", ["J. R. Smith won.", "Great?"]),
        ("He said yes... and left. Then.", ["He said yes... and left.", "Then."]),
        ("DeepSeek!中国公司。", ["DeepSeek!", "中国公司。"]),
        ("no end at all", ["no end at all"]),
    ],
)
def test_latin_sentences(text: str, expected: list[str]) -> None:
    assert split_sentences(text) == expected


def test_summary_takes_up_to_three_sentences() -> None:
    text = "One. Two. Three. Four."
    assert summarize(text) == "One. Two. Three."
    assert summarize(text, max_sentences=1) == "One."


def test_summary_stops_at_the_width_budget() -> None:
    first = "甲" * 60 + "。"
    second = "乙" * 60 + "。"
    assert summarize(first + second, budget=200) == first  # 122 + 122 columns > 200
    assert summarize(first + second, budget=300) == first + second


def test_summary_joins_chinese_without_spaces_and_latin_with() -> None:
    assert summarize("第一句。第二句。") == "第一句。第二句。"
    assert summarize("First.\n\nSecond.") == "First. Second."


def test_summary_skips_headings_captions_and_datelines() -> None:
    text = (
        "美国领先 中国紧跟\n\n"
        "▲人工智能行动峰会于10日在巴黎开幕。\n\n"
        "【环球时报综合报道】当地时间10日，峰会开幕。与会者众多。"
    )
    assert summarize(text) == "当地时间10日，峰会开幕。与会者众多。"


def test_summary_of_headings_only_uses_them() -> None:
    assert summarize("Just a heading") == "Just a heading"


def test_long_first_sentence_is_cut_at_a_clause() -> None:
    sentence = "，".join(["这是一个很长的从句"] * 30) + "。"
    summary = summarize(sentence, budget=100)
    assert summary.endswith("…")
    assert display_width(summary) <= 102
    assert summary[:-1].endswith("从句")  # cut at the clause mark, which is dropped


def test_long_latin_sentence_is_cut_at_a_space() -> None:
    summary = summarize(" ".join(["word"] * 200), budget=50)
    assert summary.endswith("word…") and len(summary) <= 51


def test_feed_truncation_becomes_one_ellipsis() -> None:
    cut = "今日，为期两天的法国巴黎AI行动峰会"
    assert summarize(cut + "...") == cut + "…"


def test_empty_text() -> None:
    assert summarize("") == "" and summarize("  \n\n ") == ""


def test_display_width() -> None:
    assert display_width("abc") == 3
    assert display_width("中文") == 4
    assert display_width("ＡＢ") == 4
