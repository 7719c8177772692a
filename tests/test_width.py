"""Display width: what status's table and the text digest measure text in."""

from __future__ import annotations

from aggregator.width import char_width, display_width, fit


def test_wide_characters_take_two_columns_and_latin_one() -> None:
    assert display_width("巴黎AI峰会") == 2 * 4 + 2
    assert display_width("ＡＩ") == 4  # fullwidth Latin


def test_combining_marks_and_zero_width_characters_take_none() -> None:
    # "é" written as e + U+0301, and a zero-width space between two words.
    assert display_width("cafe\u0301") == 4
    assert display_width("a\u200bb") == 2
    assert char_width("\u0301") == 0


def test_a_control_character_takes_no_column_rather_than_failing() -> None:
    # wcswidth gives -1 for a string holding a control character.
    assert display_width("a\x07b") == 2
    assert display_width("标题\tx") == 5


def test_an_emoji_with_a_skin_tone_takes_two_columns() -> None:
    assert display_width("👍🏽") == 2


def test_fit_keeps_the_longest_start_within_the_columns() -> None:
    assert fit("巴黎AI峰会", 5) == "巴黎A"  # 2 + 2 + 1; the next wide character would make 7
    assert fit("巴黎AI峰会", 10) == "巴黎AI峰会"
    assert fit("cafe\u0301 au lait", 4) == "cafe\u0301"  # the accent takes no column
    assert fit("abc", 0) == ""
