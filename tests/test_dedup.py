"""Deduplication decisions: canonical URLs, copies (MinHash + LSH), stories, incremental runs."""

from __future__ import annotations

import math
import os
import sqlite3
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import opencc
import pytest
from datasketch import MinHash
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from aggregator.config import Config, load_config
from aggregator.core import Aggregator, make_aggregator
from aggregator.dedup import copies as copies_module
from aggregator.dedup import index as index_module
from aggregator.dedup import minhash
from aggregator.dedup.assign import (
    INDEX_TERMS,
    SUMMARY_SHINGLES,
    StoryMemo,
    assign,
    entry_keys,
    entry_keys_many,
    features,
    is_copy,
    top_terms,
)
from aggregator.dedup.text import comparison_text, normalise
from aggregator.dedup.urls import canonical_url
from aggregator.exceptions import ConfigError, StorageError
from aggregator.sources.files import read_source
from aggregator.storage import SqliteStorage, open_storage
from aggregator.storage.sqlite import _dedup as sqlite_dedup
from aggregator.storage.sqlite import codec
from aggregator.types import (
    DedupSettings,
    Entry,
    EntryData,
    Features,
    Feed,
    Outcome,
    Pending,
    Story,
    StoryState,
    Vocabulary,
)
from tests.builders import stored_entry
from tests.conftest import SEEDS, FrozenClock

T0 = datetime(2025, 2, 10, 12, 0, tzinfo=UTC)
SETTINGS = DedupSettings()
SEED_ENTRIES = {e.title: e for e in read_source(SEEDS).entries}
OPENING = next(e for t, e in SEED_ENTRIES.items() if t.startswith("刚刚"))
DW = next(e for t, e in SEED_ENTRIES.items() if t.startswith("人工智能峰会"))
CHINA = next(e for t, e in SEED_ENTRIES.items() if t.startswith("中方派出"))
S2T = opencc.OpenCC("s2t")
S2TWP = opencc.OpenCC("s2twp")


def make_entry(
    entry_id: int,
    text: str,
    *,
    title: str = "标题",
    link: str | None = None,
    feed: str = "feed-a",
    guid: str | None = None,
    summary: str = "",
    published: datetime = T0,
) -> Entry:
    return stored_entry(
        entry_id,
        title,
        published=published,
        feed_url=feed,
        feed_name=feed,
        guid=guid,
        link=link,
        summary=summary,
        text=text,
    )


def feats(entry_id: int, text: str, **kwargs: object) -> Features:
    return features(make_entry(entry_id, text, **kwargs), SETTINGS)  # type: ignore[arg-type]


def syndicate(text: str, start: float = 0.45, share: float = 0.12) -> str:
    """A republication: a credit line added, one passage cut."""
    sentences = [s + "。" for s in text.split("。") if s]
    first = int(len(sentences) * start)
    count = max(1, int(len(sentences) * share))
    kept = sentences[:first] + sentences[first + count :]
    return "来源：某某网 转载请注明出处\n" + "".join(kept) + "\n责任编辑：张三"


# --- canonical URLs ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "canonical"),
    [
        ("HTTP://Example.COM:80/a/b/?utm_source=x&id=3#frag", "https://example.com/a/b?id=3"),
        ("https://example.com:443/a//b/", "https://example.com/a/b"),
        ("https://example.com:8443/a", "https://example.com:8443/a"),
        ("https://example.com/a?b=2&a=1&spm=a.b.c&from=timeline", "https://example.com/a?a=1&b=2"),
        ("https://example.com/a?fbclid=1&gclid=2&share=3&utm_MEDIUM=4", "https://example.com/a"),
        ("https://example.com/%7Euser/%E4%B8%AD", "https://example.com/~user/%E4%B8%AD"),
        ("https://example.com/~user/中", "https://example.com/~user/%E4%B8%AD"),
        ("https://example.com./", "https://example.com"),
        # The mobile, AMP and www spellings of a page are the page.
        ("https://www.example.com/a/b", "https://example.com/a/b"),
        ("http://m.example.com/a/b/", "https://example.com/a/b"),
        ("https://amp.example.co.uk/world/x", "https://example.co.uk/world/x"),
        ("https://example.com/news/x/amp/", "https://example.com/news/x"),
        ("https://example.com/news/x.amp.html", "https://example.com/news/x.html"),
        ("https://example.com/x?amp=1&id=3", "https://example.com/x?id=3"),
        ("https://EXAMPLE.com/x?outputType=amp", "https://example.com/x"),
        ("https://m.co/x", "https://m.co/x"),  # a host of two labels keeps them
        ("http://[::1]:8080/x", "https://[::1]:8080/x"),
        ("https://[2001:DB8::1]/x/", "https://[2001:db8::1]/x"),
        ("https://example.com/camp", "https://example.com/camp"),
        ("https://example.com/x?amp=yes", "https://example.com/x?amp=yes"),
        ("https://www.m.example.com/x", "https://example.com/x"),  # at once: idempotent
        ("https://example.com/news/x/amp/amp", "https://example.com/news/x"),
        ("https://example.com/news/x.amp.amp.html", "https://example.com/news/x.html"),
        ("https://www.bbc.co.uk/news/world-123.amp", "https://bbc.co.uk/news/world-123"),
        ("https://en.wikipedia.org/wiki/AMP", "https://en.wikipedia.org/wiki/AMP"),
        ("https://example.com/my-post-slug/amp/", "https://example.com/my-post-slug"),
        ("https://example.com/amp", "https://example.com/amp"),  # no page name would remain
        ("https://example.com/news/x/amp.amp", "https://example.com/news/x"),
        ("file:001.txt", None),
        ("not a url", None),
        ("", None),
        (None, None),
        ("http://[::1", None),
    ],
)
def test_canonical_url(url: str | None, canonical: str | None) -> None:
    assert canonical_url(url) == canonical


def test_canonical_url_configured_tracking_params() -> None:
    url = "https://example.com/a?ref_id=9&keep=1"
    assert canonical_url(url) == "https://example.com/a?keep=1&ref_id=9"
    assert canonical_url(url, ["REF_ID"]) == "https://example.com/a?keep=1"


_host = st.from_regex(r"[a-z][a-z0-9]{0,8}\.(com|org|cn)", fullmatch=True)
_segment = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=["Cs", "Cc"]), max_size=6
)
_param = st.tuples(
    st.sampled_from(["id", "p", "utm_source", "spm", "q", "from"]), st.text(max_size=4)
)


@settings(deadline=None)  # a shared, loaded machine: time is not what is tested
@given(
    scheme=st.sampled_from(["http", "https", "HTTP"]),
    host=_host,
    port=st.sampled_from(["", ":80", ":443"]),
    path=st.lists(_segment, max_size=3),
    params=st.lists(_param, max_size=4),
    fragment=st.text(max_size=5),
    slash=st.booleans(),
)
def test_canonical_url_properties(
    scheme: str,
    host: str,
    port: str,
    path: list[str],
    params: list[tuple[str, str]],
    fragment: str,
    slash: bool,
) -> None:
    from urllib.parse import quote, urlencode

    base = f"{scheme}://{host.upper()}{port}/" + "/".join(quote(p, safe="") for p in path)
    url = base + ("/" if slash else "") + ("?" + urlencode(params) if params else "")
    url += f"#{quote(fragment)}" if fragment else ""
    canonical = canonical_url(url)
    assert canonical is not None
    assert canonical_url(canonical) == canonical  # idempotent
    assert canonical.startswith(f"https://{host}")  # lower-case host, no default port
    assert "#" not in canonical and "spm=" not in canonical
    # A kept parameter's value may spell "utm_" (id=utm_); no parameter may be named so.
    assert "?utm_" not in canonical and "&utm_" not in canonical
    # Parameter order, tracking parameters, fragments and trailing slashes never matter.
    kept = [p for p in params if p[0] in ("id", "p", "q")]
    shuffled = base + ("?" + urlencode(list(reversed(kept))) if kept else "")
    assert canonical_url(shuffled) == canonical


# Links near the fast path's edge: its characters and the ones that must leave it (upper
# case, escapes, ports, queries, fragments, white space, dots and slashes in odd places).
_near_simple = st.text(alphabet="hts:/ab.-_~0AZ%?#=&@[] \t", max_size=30)
_links = st.one_of(
    st.from_regex(r"\s?https?://[a-z0-9.-]{0,8}(/[A-Za-z0-9._~/%-]{0,12})?\s?", fullmatch=True),
    st.builds("{}{}".format, st.sampled_from(["http://", "https://", "HTTP://", ""]), _near_simple),
    st.text(max_size=20),
)


@settings(deadline=None)
@given(url=_links)
@example(url="https://site.example./news//1/")
@example(url="http://a.b.")
def test_canonical_url_fast_path_agrees_with_the_general_rule(url: str) -> None:
    from aggregator.dedup.urls import _canonical_url

    assert canonical_url(url) == _canonical_url(url, ())
    assert canonical_url(url, ["a"]) == _canonical_url(url, ["a"])


_site_spellings = st.builds(
    "https://{}/{}{}{}".format,
    st.sampled_from(["www.m.example.com", "amp.example.co.uk", "m.co", "[::1]", "Example.com"]),
    st.lists(
        st.sampled_from(["amp", ".amp", "x.amp", "x.amp.html", "AMP", "a", "", ".html", "b"]),
        max_size=5,
    ).map("/".join),
    st.sampled_from(["", "/"]),
    st.sampled_from(["", "?amp=1", "?outputType=amp&id=2", "?a=1"]),
)


@settings(deadline=None)
@given(url=_site_spellings)
def test_mobile_and_amp_spellings_fold_at_once_and_alike_on_both_paths(url: str) -> None:
    from aggregator.dedup.urls import _canonical_url

    canonical = canonical_url(url)
    assert canonical == _canonical_url(url, ())
    assert canonical is None or canonical_url(canonical) == canonical  # idempotent


@settings(deadline=None)
@given(url=_links)
@example(url="https://site.example./")
@example(url="https://site.example//")
@example(url="https://site.example?a=1")
def test_article_url_is_the_canonical_url_of_a_page_with_a_path(url: str) -> None:
    from urllib.parse import urlsplit

    from aggregator.dedup.urls import article_url

    canonical = canonical_url(url, ["a"])
    expected = canonical if canonical is not None and urlsplit(canonical).path else None
    assert article_url(url, ["a"]) == expected


# --- comparison text --------------------------------------------------------------------


def test_case_folding_is_idempotent() -> None:
    """`comparison_words` leaves out `is_credit`'s casefold of case-folded text."""
    folded = [chr(c).casefold() for c in range(0x110000)]
    assert [f for f in folded if f.casefold() != f] == []


_CREDIT_PIECES = [
    "来源：新华社", "責任編輯：王五", "(Reporting by Jane Doe)", "© 2025 Reuters", "SUBSCRIBE now",
    "Photo: AP", "this story first ran", "版權所有", "a" * 130 + " copyright", "人工智慧峰會",
    "Markets rose", " ", "\t", "\u3000", "\x85", "\u2028", "\r", "  \n  ", "\n", "\n\n", "İ", "ß",
]  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.one_of(st.sampled_from(_CREDIT_PIECES), st.text(max_size=12)), max_size=12).map(
        "".join
    )
)
@example("来源：某某网\n\n正文第一段。\n  \nReporting by X")
def test_comparison_words_are_the_text_without_credit_paragraphs(text: str) -> None:
    from aggregator.dedup.text import comparison_words, is_credit

    # The rule as first written: drop blank and credit paragraphs, collapse white space.
    kept = [p for p in normalise(text).split("\n") if p.strip() and not is_credit(p)]
    expected = " ".join(kept).split()
    assert comparison_words(text) == expected
    assert comparison_text(text) == " ".join(expected)
    # `tokens` given the words cuts the same tokens as from the joined text.
    body = " ".join(expected)
    assert minhash.tokens(body, expected).tolist() == minhash.tokens(body).tolist()


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.sampled_from([*_CREDIT_PIECES, "(c)", "(C)", "订阅", "二维码", "扫", "码", "©"]),
            st.text(max_size=8),
        ),
        max_size=10,
    ).map("".join)
)
def test_a_credit_line_holds_a_credit_word_as_a_substring_test_finds_it(text: str) -> None:
    """`is_credit`'s search for `_CREDIT_WORDS` (one regular expression, or in ASCII text
    its ASCII words) finds what a substring test for each finds (short paragraphs: longer
    ones are content whatever they hold); so does `comparison_words`' test of case-folded
    text."""
    from aggregator.dedup import text as text_module

    stripped = text.strip()
    folded = stripped.casefold()
    expected = len(stripped) <= text_module.CREDIT_MAX_CHARS and (
        text_module._CREDIT_START.match(stripped) is not None
        or any(word in folded for word in text_module._CREDIT_WORDS)
    )
    assert text_module.is_credit(text) == expected
    assert text_module._is_credit_line(folded, folded=True) == (
        len(folded) <= text_module.CREDIT_MAX_CHARS
        and (
            text_module._CREDIT_START.match(folded) is not None
            or any(word in folded for word in text_module._CREDIT_WORDS)
        )
    )


# --- copies -----------------------------------------------------------------------------


def test_minhash_estimates_jaccard_like_datasketch() -> None:
    """Our one-permutation signatures estimate what datasketch's MinHash estimates."""
    a = comparison_text(OPENING.text)
    b = a[len(a) // 3 :]
    ids_a = minhash.shingles(minhash.tokens(a))
    ids_b = minhash.shingles(minhash.tokens(b))
    exact = len(np.intersect1d(ids_a, ids_b)) / len(np.union1d(ids_a, ids_b))
    ours = minhash.jaccard(
        minhash.to_bytes(minhash.signature(ids_a)) or b"",
        minhash.to_bytes(minhash.signature(ids_b)) or b"",
    )
    theirs_a, theirs_b = MinHash(num_perm=128), MinHash(num_perm=128)
    theirs_a.update_batch([int(x).to_bytes(8, "little") for x in ids_a])
    theirs_b.update_batch([int(x).to_bytes(8, "little") for x in ids_b])
    assert abs(ours - exact) < 0.1
    assert abs(theirs_a.jaccard(theirs_b) - exact) < 0.1


def test_republished_copy_new_title_credit_and_cut_passage() -> None:
    original = feats(1, OPENING.text, title=OPENING.title)
    copy = feats(2, syndicate(OPENING.text), title="全新的标题", feed="feed-b")
    assert is_copy(original, copy, SETTINGS) and is_copy(copy, original, SETTINGS)
    assert not is_copy(original, feats(3, CHINA.text), SETTINGS)
    assert not is_copy(feats(4, DW.text), feats(5, CHINA.text), SETTINGS)


def test_traditional_script_conversions_are_copies() -> None:
    original = feats(1, DW.text)
    for i, convert in enumerate((S2T, S2TWP)):
        converted = feats(10 + i, convert.convert(DW.text), title=convert.convert(DW.title))
        assert is_copy(original, converted, SETTINGS)
    assert normalise("人工智慧峰會") == normalise("人工智能峰会")


def test_trimmed_and_summary_only_copies() -> None:
    original = feats(1, DW.text, link="https://www.dw.com/zh/a-71563901")
    paragraphs = DW.text.split("\n\n")
    trimmed = feats(2, "\n\n".join(paragraphs[: len(paragraphs) // 3]), link="https://m.x/1")
    assert is_copy(original, trimmed, SETTINGS)
    summary = feats(3, "", summary=DW.text[:90], link="https://m.x/2")
    assert is_copy(original, summary, SETTINGS)
    linked = feats(
        4, "", summary="一段完全不同的简介", link="http://WWW.dw.com:80/zh/a-71563901/#top"
    )
    assert is_copy(original, linked, SETTINGS)
    # A short text that opens like another but goes on differently is not a copy of it.
    other = feats(5, DW.text[:90] + CHINA.text[:2000])
    assert not is_copy(original, other, SETTINGS)
    # The AMP and mobile pages of the article, linked with a summary of their own.
    for n, page in enumerate(
        ("https://amp.dw.com/zh/a-71563901", "https://m.dw.com/zh/a-71563901/amp?amp=1")
    ):
        mobile = feats(10 + n, "", summary="另一段不同的简介", link=page)
        assert is_copy(original, mobile, SETTINGS)
        assert set(entry_keys(original, SETTINGS)) & set(entry_keys(mobile, SETTINGS))


GUID = "urn:uuid:1b4e28ba-2fa1-11d2-883f-0016d3cca427"


def test_guid_within_a_feed_and_front_page_links() -> None:
    a = feats(1, "一些文字", guid="1234", feed="f")
    b = feats(2, "另外的文字内容", guid="1234", feed="f")
    c = feats(3, "另外的文字内容", guid="1234", feed="g")
    assert is_copy(a, b, SETTINGS) and not is_copy(a, c, SETTINGS)  # "1234" is per feed
    # A guid that names one item everywhere is kept by republishers: a copy in any feed.
    for guid in ("https://x.com/a?utm_source=1", "tag:reuters.com,2025:newsml_L1N3", GUID):
        x = feats(6, "一些文字", guid=guid, feed="f")
        y = feats(7, "另外的文字内容", guid=guid.replace("?utm_source=1", ""), feed="g")
        assert is_copy(x, y, SETTINGS)
        assert set(entry_keys(x, SETTINGS)) & set(entry_keys(y, SETTINGS))
    front = feats(8, "第一条完全不同的消息内容", guid="https://x.com/", feed="f")
    page = feats(9, "第二条另一件事情的报道", guid="https://x.com", feed="g")
    assert not is_copy(front, page, SETTINGS)
    home1 = feats(4, "第一条完全不同的消息内容", link="https://site.com/")
    home2 = feats(5, "第二条另一件事情的报道", link="https://site.com")
    assert not is_copy(home1, home2, SETTINGS)


def test_english_copies_compare_words_not_letters() -> None:
    text = (
        "Leaders from nearly 100 countries gathered at the Grand Palais in Paris on Monday "
        "for the AI Action Summit, a two-day meeting co-chaired by Emmanuel Macron and "
        "Narendra Modi that aims to shape how artificial intelligence is governed. Macron "
        "opened the summit by announcing 109 billion euros of private investment in French "
        "artificial intelligence projects over the coming years."
    )
    other = (
        "Shares of Nvidia rose more than 3% on Monday, extending a rebound from the record "
        "one-day loss the chipmaker suffered last month after the Chinese start-up DeepSeek "
        "released a low-cost reasoning model. Analysts said demand for data centre chips "
        "remained strong as large technology companies reaffirmed their spending plans."
    )
    assert is_copy(feats(1, text), feats(2, "Reporting by Jane Doe\n" + text), SETTINGS)
    assert not is_copy(feats(3, text), feats(4, other), SETTINGS)


_SENTENCES = [
    s + "。"
    for e in (OPENING, DW, CHINA)
    for s in comparison_text(e.text).replace("。", "。\n").split("\n")
    if len(s) > 15
]


@settings(max_examples=25, deadline=None)
@given(
    picked=st.lists(st.sampled_from(_SENTENCES), min_size=6, max_size=14, unique=True),
    cut1=st.integers(min_value=0, max_value=13),
    cut2=st.integers(min_value=0, max_value=12),
)
def test_a_copy_of_a_copy_is_a_copy(picked: list[str], cut1: int, cut2: int) -> None:
    """Two republications in a row end up in one article, whatever the order seen.

    Each cuts one passage of at most a third of the text it republishes. A cut of half
    a short text near its opening is not caught (hypothesis found one: the copy's opening
    differs and its Jaccard similarity with the text it came from is 0.45;
    docs/deduplication.md says so under "Copies"); a longer one is, by containment
    (`CUT_CONTAINMENT`).
    """
    text = "".join(picked)
    first = picked[: cut1 % len(picked)] + picked[cut1 % len(picked) + 1 :]
    second = first[: cut2 % len(first)] + first[cut2 % len(first) + 1 :]
    assume(3 * len(picked[cut1 % len(picked)]) <= len(text))
    assume(3 * len(first[cut2 % len(first)]) <= len("".join(first)))
    entries = [
        make_entry(1, text, feed="a"),
        make_entry(2, "来源：甲网\n" + "".join(first), feed="b", published=T0 + timedelta(hours=1)),
        make_entry(3, "".join(second) + "\n(c) 乙网", feed="c", published=T0 + timedelta(hours=2)),
    ]
    batch = [Pending(features(e, SETTINGS)) for e in entries]
    outcome = assign(batch, [], [], Vocabulary({}, 0), SETTINGS, next_id=1)
    assert len({p.article_id for p in outcome.placements}) == 1


def test_a_copy_cut_at_its_opening_is_a_copy() -> None:
    """A republication that dropped the first passages (its opening differs) and lies
    within the original is a copy; a text of which only half lies within it is not."""
    original = "".join(_SENTENCES[:12])
    cut = make_entry(2, "来源：甲网\n" + "".join(_SENTENCES[6:12]), feed="b")  # half of it
    half = make_entry(3, "".join(_SENTENCES[6:12] + _SENTENCES[40:46]), feed="c")
    a, b, c = (features(e, SETTINGS) for e in (make_entry(1, original), cut, half))
    assert b.size > SUMMARY_SHINGLES and minhash.jaccard(a.lead, b.lead) < 0.3
    assert minhash.jaccard(a.signature, b.signature) < SETTINGS.copy_threshold
    assert is_copy(a, b, SETTINGS)
    assert not is_copy(a, c, SETTINGS)


@settings(max_examples=30, deadline=None)
@given(
    picked=st.lists(st.sampled_from(_SENTENCES), min_size=8, max_size=16, unique=True),
    drop=st.integers(min_value=0, max_value=15),
    copy=st.booleans(),
    which=st.sampled_from(["s2t", "s2twp", "s2hk", "s2tw"]),
)
def test_script_conversion_never_changes_the_decision(
    picked: list[str], drop: int, copy: bool, which: str
) -> None:
    """A copy (one sentence cut, a credit added) or an unrelated text, in either script."""
    half = len(picked) // 2
    original = "".join(picked[:half] if not copy else picked)
    if copy:
        kept = picked[: drop % len(picked)] + picked[drop % len(picked) + 1 :]
        other = "來源：某報\n" + "".join(kept)
    else:
        other = "".join(picked[half:])
    converted = opencc.OpenCC(which).convert(other)
    x = feats(1, original)
    assert is_copy(x, feats(2, other), SETTINGS) == copy
    assert is_copy(x, feats(3, converted), SETTINGS) == copy
    assert (
        is_copy(feats(4, opencc.OpenCC(which).convert(original)), feats(5, other), SETTINGS) == copy
    )


# --- incremental assignment through storage ---------------------------------------------


def _assignments(db_path: Path) -> list[tuple[int, int, int]]:
    with sqlite3.connect(db_path) as db:
        return db.execute("SELECT id, article_id, story_id FROM entries ORDER BY id").fetchall()


def _counts(db_path: Path) -> tuple[int, ...]:
    with sqlite3.connect(db_path) as db:
        return tuple(
            db.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
            for t in ("dedup_entries", "stories", "stories WHERE terms IS NOT NULL", "term_counts")
        )


def _article(title: str, date: str, body: str, link: str) -> str:
    return f'---\ntitle: "{title}"\ndate: "{date}"\n---\n\n{body}\n\n[link]({link})\n'


def test_incremental_repoll_changes_nothing_and_edits_are_reassigned(tmp_path: Path) -> None:
    (tmp_path / "seeds").mkdir()
    for entry_file in SEEDS.iterdir():
        (tmp_path / "seeds" / entry_file.name).write_bytes(entry_file.read_bytes())
    portal = tmp_path / "portal"
    portal.mkdir()
    (portal / "copy.md").write_text(
        _article("新标题", "2025-02-10 22:00:00", syndicate(OPENING.text), "https://p.cn/1"),
        encoding="utf-8",
    )
    (portal / "edited.md").write_text(
        _article("会改的文章", "2025-02-11 08:00:00", CHINA.text, "https://p.cn/2"),
        encoding="utf-8",
    )
    (tmp_path / "feeds.toml").write_text(
        '[storage]\npath = "t.db"\n[[feeds]]\nurl = "seeds"\ntimezone = "Asia/Shanghai"\n'
        '[[feeds]]\nurl = "portal"\ntimezone = "Asia/Shanghai"\n',
        encoding="utf-8",
    )
    clock = FrozenClock(datetime(2025, 2, 12, tzinfo=UTC))
    config = load_config(tmp_path / "feeds.toml")
    db = tmp_path / "t.db"
    with make_aggregator(config, clock=clock) as aggregator:
        aggregator.poll()
        first = _assignments(db)
        by_title = {e.title: e for e in aggregator.storage.entries_by_ids([r[0] for r in first])}
        assert by_title["新标题"].article_id == by_title[OPENING.title].article_id
        assert by_title["会改的文章"].article_id == by_title[CHINA.title].article_id
        assert by_title[DW.title].article_id != by_title[CHINA.title].article_id
        counts = _counts(db)

        clock.advance(hours=1)
        aggregator.poll()  # the same entries again: nothing moves, nothing is added
        assert _assignments(db) == first and _counts(db) == counts

        # Edited in place: now a copy of the DW article, no longer of the China one.
        (portal / "edited.md").write_text(
            _article("会改的文章", "2025-02-11 08:00:00", DW.text, "https://p.cn/2"),
            encoding="utf-8",
        )
        clock.advance(hours=1)
        aggregator.poll()
        after = {e.title: e for e in aggregator.storage.entries_by_ids([r[0] for r in first])}
        assert after["会改的文章"].article_id == after[DW.title].article_id
        assert after[CHINA.title].article_id == by_title[CHINA.title].article_id
        assert _counts(db)[0] == counts[0]  # one feature row per entry, replaced
        assert aggregator.assign([]) == 0  # nothing left unassigned


def test_entries_stored_before_dedup_are_placed_on_the_next_poll(tmp_path: Path) -> None:
    (tmp_path / "feeds.toml").write_text(
        '[storage]\npath = "t.db"\n[[feeds]]\nurl = "seeds"\n', encoding="utf-8"
    )
    (tmp_path / "seeds").mkdir()
    for entry_file in SEEDS.iterdir():
        (tmp_path / "seeds" / entry_file.name).write_bytes(entry_file.read_bytes())
    config = load_config(tmp_path / "feeds.toml")
    with make_aggregator(config) as aggregator:
        aggregator.poll()
    with sqlite3.connect(tmp_path / "t.db") as db:
        db.execute("UPDATE entries SET article_id = NULL, story_id = NULL")
        db.execute("DELETE FROM dedup_entries")
    with make_aggregator(config) as aggregator:
        assert aggregator.assign([]) == 4
    assert all(r[1] is not None and r[2] is not None for r in _assignments(tmp_path / "t.db"))


def test_copies_placed_by_another_process_are_found(tmp_path: Path) -> None:
    """Each process keeps its lookup keys in memory; what another records is loaded too."""
    (tmp_path / "seeds").mkdir()
    (tmp_path / "portal").mkdir()
    (tmp_path / "portal" / "other.md").write_text(
        _article(DW.title, "2025-02-10 20:00:00", DW.text, "https://p.cn/8"), encoding="utf-8"
    )
    (tmp_path / "feeds.toml").write_text(
        '[storage]\npath = "t.db"\n[[feeds]]\nurl = "seeds"\n[[feeds]]\nurl = "portal"\n',
        encoding="utf-8",
    )
    config = load_config(tmp_path / "feeds.toml")
    clock = FrozenClock(datetime(2025, 2, 12, tzinfo=UTC))
    with (
        make_aggregator(config, clock=clock) as early,
        make_aggregator(config, clock=clock) as late,
    ):
        late.poll()  # builds its index, places an unrelated article
        (tmp_path / "seeds" / "opening.md").write_text(
            _article(OPENING.title, "2025-02-10 21:00:00", OPENING.text, "https://a.cn/1"),
            encoding="utf-8",
        )
        clock.advance(hours=1)
        early.poll()  # another process places the original
        (tmp_path / "portal" / "copy.md").write_text(
            _article("新标题", "2025-02-10 22:00:00", syndicate(OPENING.text), "https://p.cn/9"),
            encoding="utf-8",
        )
        clock.advance(hours=1)
        late.poll()
        rows = _assignments(tmp_path / "t.db")
    assert len(rows) == 3 and rows[1][1] == rows[2][1] != rows[0][1]


def _seeds_and_portal(tmp_path: Path, seeds: dict[str, Entry | EntryData]) -> Config:
    """A config of two local feeds in `tmp_path`: "seeds", holding `seeds` (by file name,
    linked from a.cn), and "portal", empty (the tests put republications in it)."""
    (tmp_path / "seeds").mkdir()
    (tmp_path / "portal").mkdir()
    for name, entry in seeds.items():
        (tmp_path / "seeds" / f"{name}.md").write_text(
            _article(entry.title, "2025-02-10 21:00:00", entry.text, f"https://a.cn/{name}"),
            encoding="utf-8",
        )
    (tmp_path / "feeds.toml").write_text(
        '[storage]\npath = "t.db"\n[[feeds]]\nurl = "seeds"\n[[feeds]]\nurl = "portal"\n',
        encoding="utf-8",
    )
    return load_config(tmp_path / "feeds.toml")


def test_entries_placed_before_keys_were_numbered_are_indexed(tmp_path: Path) -> None:
    """A database migrated from the version that kept keys in SQLite has seq 0 everywhere."""
    config = _seeds_and_portal(tmp_path, {"1": OPENING})
    clock = FrozenClock(datetime(2025, 2, 12, tzinfo=UTC))
    with make_aggregator(config, clock=clock) as aggregator:
        aggregator.poll()
    with sqlite3.connect(tmp_path / "t.db") as db:
        db.execute("UPDATE dedup_entries SET seq = 0")
        db.execute("UPDATE dedup_meta SET value = 0 WHERE key = 'seq'")
    (tmp_path / "portal" / "copy.md").write_text(
        _article("新标题", "2025-02-10 22:00:00", syndicate(OPENING.text), "https://p.cn/9"),
        encoding="utf-8",
    )
    clock.advance(hours=1)
    with make_aggregator(config, clock=clock) as aggregator:
        aggregator.poll()
    rows = _assignments(tmp_path / "t.db")
    assert len(rows) == 2 and rows[0][1] == rows[1][1]


def _portal_copy(tmp_path: Path, name: str, text: str, link: str) -> None:
    (tmp_path / "portal" / f"{name}.md").write_text(
        _article(f"转载 {name}", "2025-02-10 22:00:00", syndicate(text), link), encoding="utf-8"
    )


def test_a_store_keeps_its_key_index_for_the_next_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A process that built its lookup-key index from every stored entry keeps a copy in the
    store; the next one loads it and reads only the batches recorded since, and finds the
    same copies. A copy it cannot read (a part of it lost), or one made under other settings,
    is not used: the index is built again (and kept again). Kept in parts of 256 bytes here
    (~1 GB each in use: `encoding.KEPT_INDEX_PART`)."""
    from aggregator import placer as placer_module
    from aggregator.storage import encoding

    monkeypatch.setattr(placer_module, "KEEP_INDEX_KEYS", 1)
    monkeypatch.setattr(encoding, "KEPT_INDEX_PART", 256)
    config = _seeds_and_portal(tmp_path, {"opening": OPENING, "dw": DW})
    clock = FrozenClock(datetime(2025, 2, 12, tzinfo=UTC))
    reads: list[int] = []
    original = SqliteStorage.dedup_features

    def counted(self: SqliteStorage, after: int = 0) -> tuple[list[Features], int]:
        reads.append(after)
        return original(self, after)

    monkeypatch.setattr(SqliteStorage, "dedup_features", counted)

    def kept() -> tuple[int, str] | None:
        with sqlite3.connect(tmp_path / "t.db") as db:
            row = db.execute("SELECT seq, settings FROM dedup_index").fetchone()
            (parts,) = db.execute("SELECT count(*) FROM dedup_index_parts").fetchone()
        db.close()
        assert row is None or parts > 2  # (an index of this many keys: more than 768 bytes)
        return row

    def poll(copy: str | None = None, source: Entry | EntryData = OPENING) -> None:
        if copy is not None:
            _portal_copy(tmp_path, copy, source.text, f"https://p.cn/{copy}")
        clock.advance(hours=1)
        with make_aggregator(config, clock=clock) as aggregator:
            aggregator.poll()

    poll()  # an empty store: the index is made from the batch, nothing kept
    assert reads == [-1] and kept() is None
    poll("one")  # built from the stored entries: kept
    assert reads[1:] == [-1] and kept() == (2, "keys 1; copy threshold 0.5")
    poll("two", DW)  # loaded: only what was recorded after batch 2 is read
    assert reads[2:] == [2]
    rows = _assignments(tmp_path / "t.db")  # each copy in its original's article
    assert len(rows) == 4 and len({article for _, article, _ in rows}) == 2

    with sqlite3.connect(tmp_path / "t.db") as db:
        db.execute("DELETE FROM dedup_index_parts WHERE part = 2")
    db.close()
    with caplog.at_level("WARNING", logger="aggregator"):
        poll("three")
    assert "kept index of lookup keys is unreadable" in caplog.text
    assert reads[3:] == [-1] and kept() == (4, "keys 1; copy threshold 0.5")
    assert len({a for _, a, _ in _assignments(tmp_path / "t.db")}) == 2

    other = tmp_path / "feeds.toml"
    other.write_text(other.read_text() + "[dedup]\ncopy_threshold = 0.55\n", encoding="utf-8")
    config = load_config(other)
    poll("four")  # other settings: the kept copy is not theirs
    assert reads[4:] == [-1] and kept() == (5, "keys 1; copy threshold 0.55")
    assert len({a for _, a, _ in _assignments(tmp_path / "t.db")}) == 2


def test_a_kept_key_index_the_store_cannot_send_is_built_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The kept copy is a cache: a store that fails to read it (PostgreSQL refusing a value
    it would send as more than 1 GB of hex, say) costs a warning and a build from the
    stored entries, not the grouping; the copy kept then replaces it."""
    from aggregator import placer as placer_module

    monkeypatch.setattr(placer_module, "KEEP_INDEX_KEYS", 1)
    config = _seeds_and_portal(tmp_path, {"opening": OPENING})
    clock = FrozenClock(datetime(2025, 2, 12, tzinfo=UTC))
    for copy in ("one", "two"):  # the second poll keeps a copy (built from the store)
        _portal_copy(tmp_path, copy, OPENING.text, f"https://p.cn/{copy}")
        clock.advance(hours=1)
        with make_aggregator(config, clock=clock) as aggregator:
            aggregator.poll()

    def refused(self: SqliteStorage, settings: str) -> None:
        raise StorageError("database read failed: invalid memory alloc request size")

    monkeypatch.setattr(SqliteStorage, "kept_key_index", refused)
    _portal_copy(tmp_path, "three", OPENING.text, "https://p.cn/three")
    clock.advance(hours=1)
    with caplog.at_level("WARNING", logger="aggregator"):
        with make_aggregator(config, clock=clock) as aggregator:
            aggregator.poll()
    assert "kept index of lookup keys cannot be read" in caplog.text
    assert "could not group" not in caplog.text
    rows = _assignments(tmp_path / "t.db")  # every copy in its original's article
    assert len(rows) == 4 and len({article for _, article, _ in rows}) == 1
    with sqlite3.connect(tmp_path / "t.db") as db:
        assert db.execute("SELECT seq FROM dedup_index").fetchall() == [(3,)]  # kept anew
    db.close()


def test_a_daemon_keeps_its_key_index_at_the_end_of_a_pass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A long-lived process keeps its copy when a pass that placed entries ends, not only
    when it closes: a daemon killed later leaves a recent copy."""
    from aggregator import placer as placer_module

    monkeypatch.setattr(placer_module, "KEEP_INDEX_KEYS", 1)
    config = _seeds_and_portal(tmp_path, {"opening": OPENING})
    clock = FrozenClock(datetime(2025, 2, 12, tzinfo=UTC))
    with make_aggregator(config, clock=clock) as first:
        first.poll()  # an empty store: nothing kept
    with make_aggregator(config, clock=clock) as daemon:
        _portal_copy(tmp_path, "one", OPENING.text, "https://p.cn/one")
        clock.advance(hours=1)
        daemon.poll()
        with sqlite3.connect(tmp_path / "t.db") as db:
            assert db.execute("SELECT seq FROM dedup_index").fetchall() == [(2,)]
        db.close()


def test_a_kept_key_index_claims_only_the_batches_its_index_holds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A process keeps its index as complete up to the batch its index holds, not the
    store's latest (another process may have recorded one since): the next process reads
    that one from the store and finds its entries' copies. A loaded copy is kept again
    only once the index grew by `KEEP_INDEX_GROWTH`."""
    from aggregator import placer as placer_module

    monkeypatch.setattr(placer_module, "KEEP_INDEX_KEYS", 1)
    config = _seeds_and_portal(tmp_path, {"opening": OPENING, "dw": DW})
    clock = FrozenClock(datetime(2025, 2, 12, tzinfo=UTC))

    def kept() -> tuple[int, int]:
        with sqlite3.connect(tmp_path / "t.db") as db:
            row = db.execute(
                "SELECT i.seq, m.value FROM dedup_index i, dedup_meta m WHERE m.key = 'seq'"
            ).fetchone()
        db.close()
        return row

    with make_aggregator(config, clock=clock) as first:
        first.poll()  # batch 1, from an empty store: nothing kept
    with make_aggregator(config, clock=clock) as one:
        _portal_copy(tmp_path, "one", OPENING.text, "https://p.cn/one")
        clock.advance(hours=1)
        one.poll()  # its index built from the store; batch 2, kept as the pass ends
        assert kept() == (2, 2)
        (tmp_path / "portal" / "china.md").write_text(
            _article(CHINA.title, "2025-02-10 22:30:00", CHINA.text, "https://p.cn/china"),
            encoding="utf-8",
        )
        clock.advance(hours=1)
        monkeypatch.setattr(placer_module, "KEEP_INDEX_KEYS", 1 << 40)
        with make_aggregator(config, clock=clock) as other:
            other.poll()  # another process records batch 3 (a new article), keeps nothing
        monkeypatch.setattr(placer_module, "KEEP_INDEX_KEYS", 1)
        monkeypatch.setattr(placer_module, "KEEP_INDEX_GROWTH", 0.0)
    assert kept() == (2, 3)  # `one` kept again at close: what its index holds, batch 2
    monkeypatch.setattr(placer_module, "KEEP_INDEX_GROWTH", 0.1)
    _portal_copy(tmp_path, "china copy", CHINA.text, "https://p.cn/china-copy")
    clock.advance(hours=1)
    with make_aggregator(config, clock=clock) as last:
        last.poll()  # loads the copy of batch 2, reads batch 3: finds the copy's original
    rows = _assignments(tmp_path / "t.db")
    assert len(rows) == 5 and rows[3][1] == rows[4][1]  # china, and its copy
    # Grown past the copy by less than the share: not kept again; by more: kept.
    monkeypatch.setattr(placer_module, "KEEP_INDEX_GROWTH", 100.0)
    seq = kept()[0]
    _portal_copy(tmp_path, "two", DW.text, "https://p.cn/two")
    clock.advance(hours=1)
    with make_aggregator(config, clock=clock) as grown:
        grown.poll()
    assert kept()[0] == seq
    monkeypatch.setattr(placer_module, "KEEP_INDEX_GROWTH", 0.1)
    _portal_copy(tmp_path, "three", DW.text, "https://p.cn/three")
    clock.advance(hours=1)
    with make_aggregator(config, clock=clock) as grown:
        grown.poll()
    assert kept() == (seq + 2, seq + 2)


def _news(count: int, start: int = 0) -> list[EntryData]:
    """English news on a few events: articles that join, and merge, stories."""
    events = ["Nvidia chips export", "Paris farm fair", "Jakarta flood relief", "Oslo wage talks"]
    out = []
    for n in range(start, start + count):
        event = events[n % len(events)]
        words = " ".join(f"{event} update{n % 7} detail{n % 5} report" for _ in range(3))
        out.append(
            EntryData(
                guid=f"n{n}",
                title=f"{event}: report {n % 9}",
                link=f"https://news{n % 3}.example/{n}",
                published=T0 + timedelta(hours=n),
                summary=words[:100],
                text=words,
            )
        )
    return out


def _story_rows(db_path: Path) -> list[tuple[object, ...]]:
    with sqlite3.connect(db_path) as db:
        return (
            db.execute("SELECT * FROM stories ORDER BY id").fetchall()
            + db.execute("SELECT id, article_id, story_id FROM entries ORDER BY id").fetchall()
        )


def test_two_processes_placing_in_turn_decide_as_one(tmp_path: Path) -> None:
    """Each process keeps what it decoded of the stories it loaded (`StoryMemo`); stories
    another process changed meanwhile are loaded afresh, so taking turns changes nothing."""
    feed = Feed(url="https://feed.example/rss", name="feed")
    results = []
    for turns in ([0, 0, 0, 0, 0], [0, 0, 1, 0, 1]):
        config = Config(path=tmp_path / f"{turns}.toml", storage_path=tmp_path / f"{turns}.db")
        with make_aggregator(config) as a, make_aggregator(config) as b:
            for batch, which in enumerate(turns):
                placing = (a, b)[which]
                placing.storage.sync_feeds([feed], T0)
                placing.storage.save_poll(feed, _news(15, 15 * batch), now=T0, seconds=0)
                placing.group_stored()
        results.append(_story_rows(config.storage_path))
    assert results[0] == results[1]
    assert len({r[2] for r in results[0] if len(r) == 3}) < 60  # stories were joined


def _stored_polls(
    aggregator: Aggregator, entries: list[EntryData], size: int
) -> Iterator[tuple[Feed, list[EntryData]]]:
    """Store `entries` one feed of `size` at a time, as polls do, yielding each feed and its
    entries once stored (the caller places them)."""
    from bench.cluster_scale import START

    for start in range(0, len(entries), size):
        feed = Feed(url=f"https://feed{start}.example/rss", name=str(start))
        polled = entries[start : start + size]
        aggregator.storage.sync_feeds([feed], START)
        aggregator.storage.save_poll(feed, polled, now=START, seconds=0)
        yield feed, polled


def _check_index(memo: StoryMemo, db_path: Path) -> None:
    """The memo's index holds each story under its current heaviest words, with their
    weights, and nothing else; its stories are as stored (float32 weights)."""
    with sqlite3.connect(db_path) as db:
        stored = {
            sid: codec.load_vector(blob)
            for sid, blob in db.execute("SELECT id, centroid FROM stories")
        }
    expected: dict[str, dict[int, float]] = {}
    for sid, (centroid, norm, terms) in memo.indexed.items():
        if centroid:
            assert centroid == pytest.approx(stored[sid], rel=1e-6)
        assert terms == top_terms(centroid, INDEX_TERMS)
        assert norm == pytest.approx(math.sqrt(sum(w * w for w in centroid.values())))
        for term in terms:
            expected.setdefault(term, {})[sid] = centroid[term]
    assert memo.index == expected


@pytest.mark.slow
def test_a_memo_kept_across_batches_decides_as_a_fresh_one(tmp_path: Path) -> None:
    """Batches that create, join, merge and (through edits in place) shrink stories decide
    the same with the story index kept between them as with one built afresh each time."""
    from bench.cluster_scale import START, Corpus

    entries, _ = Corpus(seed=7, per_day=300).entries(600)
    results = []
    for keep in (True, False):
        config = Config(path=tmp_path / f"{keep}.toml", storage_path=tmp_path / f"{keep}.db")
        with make_aggregator(config) as aggregator:
            polls = []
            for poll in _stored_polls(aggregator, entries, 150):
                polls.append(poll)
                if not keep:
                    aggregator.placer._story_memo = StoryMemo()
                aggregator.group_stored()
                _check_index(aggregator.placer._story_memo, config.storage_path)
            for feed, polled in polls[:2]:  # a third of two feeds' entries edited in place
                edited = [
                    replace(e, title=e.title + " update", text=f"{e.text} harbour strike talks")
                    if i % 3 == 0
                    else e
                    for i, e in enumerate(polled)
                ]
                saved = aggregator.storage.save_poll(feed, edited, now=START, seconds=0)
                assert len(saved.updated_ids) == 50
                if not keep:
                    aggregator.placer._story_memo = StoryMemo()
                aggregator.assign(saved.updated_ids)
                _check_index(aggregator.placer._story_memo, config.storage_path)
        results.append(_story_rows(config.storage_path))
    assert results[0] == results[1]


def test_story_memo_is_checked_against_what_storage_loads(tmp_path: Path) -> None:
    storage = open_storage(tmp_path / "t.db")
    centroid = {"nvidia": 0.75, "chips": 0.5}
    with sqlite3.connect(tmp_path / "t.db") as db:
        db.execute(
            "INSERT INTO stories (id, first_published, last_published, size, centroid) "
            "VALUES (1, '2025-02-10T00:00:00Z', '2025-02-10T00:00:00Z', 1, ?)",
            (codec.dump_vector(centroid),),
        )
    window = (T0 - timedelta(days=9), T0 + timedelta(days=9))
    (first,) = storage.stories_near([], *window, ids=[1])
    (again,) = storage.stories_near([], *window, ids=[1])
    assert again is first  # unchanged: decoded once
    with sqlite3.connect(tmp_path / "t.db") as db:
        db.execute("UPDATE stories SET size = 2 WHERE id = 1")
    (grown,) = storage.stories_near([], *window, ids=[1])
    assert grown.size == 2 and grown.centroid is first.centroid
    with sqlite3.connect(tmp_path / "t.db") as db:  # another process changes the story
        db.execute(
            "UPDATE stories SET centroid = ? WHERE id = 1",
            (codec.dump_vector({"nvidia": 0.5, "export": 0.25}),),
        )
    (changed,) = storage.stories_near([], *window, ids=[1])
    assert changed.centroid == {"nvidia": 0.5, "export": 0.25}
    storage.close()

    # A memo entry for the story with another centroid than the one loaded is not used.
    memo = StoryMemo()
    memo.indexed[1] = (first.centroid, 1.0, ["chips"])
    memo.index["chips"] = {1: 0.5}
    memo.indexed[2] = ({"fair": 1.0}, 1.0, ["fair"])  # a story this batch does not load
    memo.index["fair"] = {2: 1.0}
    entry = make_entry(5, "", title="Nvidia export rules tighten", published=T0)
    batch = [Pending(features(entry, SETTINGS))]
    vocabulary = Vocabulary({}, 0)
    fresh = assign(batch, [], [changed], vocabulary, SETTINGS, 10)
    assert assign(batch, [], [changed], vocabulary, SETTINGS, 10, memo=memo) == fresh
    assert fresh.placements[0].story_id == 1  # found through "export", the new word
    assert memo.indexed[1][0] is not changed.centroid  # it took the article in
    assert set(memo.indexed) == {1}
    assert memo.index["export"][1] > 0 and "chips" not in memo.index and "fair" not in memo.index


def _record_counts(storage: SqliteStorage, df_delta: dict[str, int], docs: int = 1) -> None:
    """Record a batch that changes only word counts, as `Aggregator.assign` would."""
    _, next_id = storage.vocabulary(df_delta)
    outcome = Outcome([], [], df_delta, docs, next_id)
    assert storage.save_outcome([], outcome, expected_next_id=next_id) is not None


def test_word_counts_kept_in_memory_follow_other_writers(tmp_path: Path) -> None:
    """A storage remembers the counts it read and recorded; another storage recording a
    batch in between makes it read them again."""
    a, b = open_storage(tmp_path / "t.db"), open_storage(tmp_path / "t.db")
    _record_counts(a, {"nvidia": 2, "chips": 1})
    assert a.vocabulary(["nvidia", "chips", "export"])[0] == Vocabulary(
        {"nvidia": 2, "chips": 1}, 1
    )
    _record_counts(a, {"nvidia": -3, "export": 0})  # as the upsert: >= 0, a new row of 0
    assert a.vocabulary(["nvidia", "chips", "export"])[0].df == {
        "nvidia": 0,
        "chips": 1,
        "export": 0,
    }
    assert b.vocabulary(["nvidia", "chips"])[0] == a.vocabulary(["nvidia", "chips"])[0]
    _record_counts(b, {"chips": 5, "tariffs": 1})
    assert a.vocabulary(["chips", "tariffs"])[0].df == {"chips": 6, "tariffs": 1}
    # b records between a's reading the counts and a's recording its batch (one that
    # allocated no ids, so a's save goes through): a's own change is not all that changed.
    _, next_id = a.vocabulary(["nvidia", "chips", "export", "tariffs"])
    _record_counts(b, {"chips": 1}, docs=0)
    a.save_outcome([], Outcome([], [], {"export": 1}, 1, next_id), expected_next_id=next_id)
    expected = Vocabulary({"nvidia": 0, "chips": 7, "export": 1, "tariffs": 1}, 4)
    words = ["nvidia", "chips", "export", "tariffs"]
    assert a.vocabulary(words)[0] == b.vocabulary(words)[0] == expected
    with sqlite3.connect(tmp_path / "t.db") as db:
        assert dict(db.execute("SELECT term, df FROM term_counts")) == expected.df
    a.close()
    b.close()


def test_word_counts_kept_in_memory_are_bounded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_dedup, "DF_CACHE_WORDS", 3)
    storage = open_storage(tmp_path / "t.db")
    _record_counts(storage, {"a": 1, "b": 2, "c": 3, "d": 4})
    assert storage.vocabulary(["a", "b"])[0].df == {"a": 1, "b": 2}
    assert storage.vocabulary(["c", "d"])[0].df == {"c": 3, "d": 4}  # a, b dropped
    assert len(storage._df) == 2
    assert storage.vocabulary(["a", "b", "c", "d"])[0].df == {"a": 1, "b": 2, "c": 3, "d": 4}
    assert storage._df == {}  # a batch of more words than fit is not kept
    storage.close()


def test_key_index_finds_entries_across_merges(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(index_module, "MERGE_AT", 8)
    monkeypatch.setattr(index_module, "MAX_RUNS", 2)
    index = index_module.KeyIndex()
    index.add([(1, [10, 11]), (2, [11, 12])])
    index.add([(3, [12, -5])])  # a second run
    assert index.find([11, 12, 99]).by_entry() == {1: {11}, 2: {11, 12}, 3: {12}}
    index.add([(4, [400])])
    index.add([(5, [500])])  # a fourth run: the runs are merged into one
    index.add([(6, [600, -5]), (7, [700, -5])])  # 12 keys in runs: all merged into main
    assert len(index) == 12 and index.find([-5]).by_entry() == {3: {-5}, 6: {-5}, 7: {-5}}
    index.add([(8, [10]), (9, [])])
    assert (
        index.find([10, 700]).by_entry() == {1: {10}, 7: {700}, 8: {10}}
        and index.find([]).by_entry() == {}
    )
    # Keys given twice, and keys past either end of every level.
    extremes = [2**63 - 1, 700, 700, -(2**63), 10**6]
    assert index.find(extremes).by_entry() == {7: {700}}
    index.add([(10, [2**63 - 1, -(2**63)])])
    assert index.find(extremes).by_entry() == {7: {700}, 10: {2**63 - 1, -(2**63)}}
    # The keys as an int64 array (unsorted, repeated): the same pairs; the array unchanged.
    given = np.array(extremes, dtype=np.int64)
    assert index.find(given).by_entry() == {7: {700}, 10: {2**63 - 1, -(2**63)}}
    assert given.tolist() == extremes
    # As arrays: each level's pairs (entry, key); the batch's own entries left out.
    hits = index.find([11, 12, 10])
    assert sorted(zip(hits.entry_ids.tolist(), hits.keys.tolist(), strict=True)) == [
        (1, 10),
        (1, 11),
        (2, 11),
        (2, 12),
        (3, 12),
        (8, 10),
    ]
    assert hits.entries() == [1, 2, 3, 8]
    assert hits.without([2, 8]).by_entry() == {1: {10, 11}, 3: {12}}
    assert index.find([99]).entries() == [] and index.find([99]).without([1]).by_entry() == {}


# --- configuration ----------------------------------------------------------------------


def test_dedup_table_is_validated(tmp_path: Path) -> None:
    path = tmp_path / "feeds.toml"
    path.write_text(
        '[dedup]\ncopy_threshold = 0.6\nstory_window = "2d"\ntracking_params = ["ref_id"]\n',
        encoding="utf-8",
    )
    dedup = load_config(path).dedup
    assert dedup.copy_threshold == 0.6 and dedup.story_window == timedelta(days=2)
    assert (
        dedup.tracking_params == ("ref_id",) and dedup.story_threshold == SETTINGS.story_threshold
    )
    for body, message in (
        ("[dedup]\ncopy_treshold = 0.6\n", "did you mean 'copy_threshold'"),
        ("[dedup]\nstory_threshold = 2\n", "above 0 and at most 1"),
        ('[dedup]\nstory_window = "soon"\n', "is not a duration"),
        ('[dedup]\ntracking_params = "utm"\n', "list of query parameter names"),
        ("dedup = 3\n", "must be a table"),
    ):
        path.write_text(body, encoding="utf-8")
        with pytest.raises(ConfigError, match=message) as info:
            load_config(path)
        assert "feeds.toml" in str(info.value)


@pytest.mark.parametrize("threshold", [0.3, 0.5, 0.7])
@pytest.mark.parametrize("bins", [24, 128])
def test_bands_are_what_datasketch_chooses(threshold: float, bins: int) -> None:
    from datasketch import MinHashLSH

    lsh = MinHashLSH(threshold=threshold, num_perm=bins, weights=minhash.BAND_WEIGHTS)
    assert minhash.bands(threshold, bins) == (lsh.b, lsh.r)


def test_rjieba_cuts_chinese_exactly_as_jieba() -> None:
    """terms uses rjieba for speed; its words must be jieba's (same dictionary, no HMM)."""
    import jieba

    from aggregator.dedup.terms import _cut

    tokenizer = jieba.Tokenizer()
    texts = [normalise(f"{e.title}\n{e.text}") for e in SEED_ENTRIES.values()]
    texts += [
        normalise(p.read_text(encoding="utf-8", errors="replace"))
        for p in sorted((Path(__file__).parent / "fixtures").rglob("*"))
        if p.is_file() and p.suffix in {".xml", ".txt", ".json", ".html", ".md"}
    ]
    assert sum(map(len, texts)) > 20_000
    for text in texts:
        assert _cut(text) == tokenizer.lcut(text, HMM=False)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="\x00")))
def test_skipping_opencc_without_chinese_changes_nothing(text: str) -> None:
    # (OpenCC ends a text at a NUL; stored text has none: parsing drops control characters.)
    from aggregator.dedup.text import to_simplified

    assert to_simplified(text) == opencc.OpenCC("tw2sp").convert(text)


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.text(alphabet="人工智能峰会巴黎ab c", max_size=400), min_size=1, max_size=8),
    st.sampled_from([minhash.NUM_BINS, minhash.LEAD_BINS, 7]),
)
def test_batch_signatures_equal_one_by_one(texts: list[str], bins: int) -> None:
    sets = [minhash.shingles(minhash.tokens(t)) for t in texts]
    batch = minhash.signatures(sets, bins)
    for ids, signature in zip(sets, batch, strict=True):
        alone = minhash.signature(ids, bins)
        assert (alone is None and signature is None) or (
            alone is not None and signature is not None and (alone == signature).all()
        )
    ids, sizes = minhash.shingles_many([minhash.tokens(t) for t in texts])
    assert minhash.packed_signature_bytes(ids, sizes, bins) == [
        minhash.to_bytes(s) for s in minhash.packed_signatures(ids, sizes, bins)
    ]
    assert minhash.packed_signature_bytes(ids, sizes, bins) == [minhash.to_bytes(s) for s in batch]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(alphabet="人工a b\U000f0000", max_size=12), max_size=8))
def test_batch_shingles_equal_one_by_one(texts: list[str]) -> None:
    """Texts of 0, 1, 2 and more tokens, with repeated shingles, side by side."""
    codes = [minhash.tokens(t) for t in texts]
    ids, sizes = minhash.shingles_many(codes)
    alone = [minhash.shingles(c) for c in codes]
    assert sizes.tolist() == [len(a) for a in alone]
    assert ids.tolist() == [i for a in alone for i in a.tolist()]
    assert ids.dtype == np.uint64


def test_stories_matching_no_topic_are_named_by_their_keywords() -> None:
    from aggregator.dedup.group import make_article, make_story
    from aggregator.dedup.topics import OTHER, group_by_topic, story_keywords
    from aggregator.types import Topic

    def story(*titles: str) -> Story:
        return make_story(
            [
                make_article([make_entry(i, f"{t}. More on this.", title=t, published=T0)])
                for i, t in enumerate(titles)
            ]
        )

    bengaluru = story(
        "Developers flock to Bengaluru for India's largest AI conference",
        "Bengaluru conference draws record crowd of developers",
        "At Bengaluru's AI conference, developers debate open models",
    )
    assert story_keywords(bengaluru) == ["Bengaluru", "developers", "conference"]
    floods = story("洪水袭击西班牙瓦伦西亚", "西班牙瓦伦西亚洪水死亡人数上升")
    lone = story("Markets close higher on Friday")
    summit = story("巴黎AI行动峰会开幕", "AI行动峰会闭幕")
    topics = [Topic("Paris AI Action Summit", ("AI行动峰会",))]
    groups = group_by_topic([lone, floods, bengaluru, summit], topics)
    assert [(g.name, len(g.stories)) for g in groups] == [
        ("Paris AI Action Summit", 1),
        ("Bengaluru · developers · conference", 1),
        ("瓦伦西亚 · 洪水 · 西班牙", 1),
        (OTHER, 1),
    ]


def _reference_tokens(text: str) -> list[int]:
    """Tokens as first specified: words packed by a regex callback, then non-word dropped."""
    import re
    import zlib

    word = re.compile(r"[0-9a-z\u00c0-\u024f\u0370-\u03ff\u0400-\u04ff]+")
    packed = word.sub(
        lambda m: chr(0xF0000 + (zlib.crc32(m.group().encode("utf-8")) & 0xFFFF)), text
    )
    return [ord(c) for c in re.sub(r"[^\w\U000f0000-\U000fffff]+|_+", "", packed)]


def test_token_table_is_the_token_pattern() -> None:
    """`tokens` keeps a character of Chinese text by a table: the pattern, at every code point."""
    import re

    pattern = re.compile(r"[^\W_]|[\U000f0000-\U000fffff]")
    table = minhash._token_points()
    assert [c for c in range(0x110000) if bool(table[c]) != bool(pattern.fullmatch(chr(c)))] == []
    assert minhash.tokens("人\ud800工，_智").tolist() == [ord(c) for c in "人工智"]


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=80))
@example("a_b __ c9 ٣x")
@example("x\U000f1234y \U000f0000 人工智能 AI-Act, İstanbul")
def test_tokens_are_as_specified(text: str) -> None:
    assert minhash.tokens(text).tolist() == _reference_tokens(text)
    assert minhash.tokens(normalise(text)).tolist() == _reference_tokens(normalise(text))


@pytest.mark.slow
def test_merged_stories_leave_no_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Stories merged by `settle` are deleted; every stored story holds entries, and is
    indexed under its heaviest words."""
    from aggregator.config import Config
    from aggregator.dedup import assign as assign_module
    from bench.cluster_scale import Corpus

    merges: list[int] = []

    def counting(*args: object, **kwargs: object) -> Outcome:
        outcome = assign(*args, **kwargs)  # type: ignore[arg-type]
        merges.append(len(outcome.merged))
        # The index words handed to storage are the centroids' heaviest, as ranked afresh.
        assert outcome.story_terms == {
            story.id: top_terms(story.centroid, INDEX_TERMS) for story in outcome.stories
        }
        return outcome

    monkeypatch.setattr(assign_module, "assign", counting)  # core imports it when placing
    entries, _ = Corpus(seed=3, per_day=300).entries(900)
    config = Config(path=tmp_path / "feeds.toml", storage_path=tmp_path / "t.db")
    with make_aggregator(config) as aggregator:
        for _ in _stored_polls(aggregator, entries, 300):
            aggregator.group_stored()
    with sqlite3.connect(tmp_path / "t.db") as db:
        rows = {r[0] for r in db.execute("SELECT id FROM stories")}
        used = {r[0] for r in db.execute("SELECT DISTINCT story_id FROM entries")}
    assert sum(merges) > 0  # the corpus makes settle merge stories
    assert rows == used


@pytest.mark.slow
def test_comparing_only_candidates_sharing_weight_changes_no_placement(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`CANDIDATE_SHARE` spares the full comparison of stories that share only light index
    words with an article; on synthetic news it decides as comparing every candidate does
    (while leaving most of them out: else the test says nothing)."""
    from aggregator.dedup import stories as stories_module
    from bench.cluster_scale import Corpus

    compared: list[int] = []
    real_dot = stories_module._dot

    def counting(a: dict[str, float], b: dict[str, float]) -> float:
        compared.append(1)
        return real_dot(a, b)

    monkeypatch.setattr(stories_module, "_dot", counting)
    entries, _ = Corpus(seed=5, per_day=400).entries(1600)
    results, counts = [], []
    for share in (stories_module.CANDIDATE_SHARE, 0.0):
        monkeypatch.setattr(stories_module, "CANDIDATE_SHARE", share)
        compared.clear()
        config = Config(path=tmp_path / f"{share}.toml", storage_path=tmp_path / f"{share}.db")
        with make_aggregator(config) as aggregator:
            for _ in _stored_polls(aggregator, entries, 400):
                aggregator.group_stored()
        results.append(_story_rows(config.storage_path))
        counts.append(len(compared))
    assert results[0] == results[1]
    assert counts[0] < counts[1] / 2
    assert len({r[2] for r in results[0] if len(r) == 3}) < len(entries) * 0.9  # stories


#: Title-only headlines of one event from several publishers (English and Chinese apart:
#: words do not cross languages), written the way wires and portals word them.
HEADLINES = {
    "nvda-en": [
        "Nvidia loses nearly $600 billion in market value as DeepSeek rattles investors",
        "Nvidia shares plunge 17% as Chinese AI startup DeepSeek sparks selloff",
        "DeepSeek sell-off wipes $593bn from Nvidia's market value",
        "Nvidia stock suffers record one-day loss after DeepSeek AI model launch",
    ],
    "nvda-zh": [
        "英伟达市值蒸发近6000亿美元 DeepSeek引发科技股抛售",
        "DeepSeek冲击美股 英伟达股价暴跌17%",
        "英伟达股价单日暴跌17% 市值蒸发5930亿美元",
    ],
    "declaration-en": [
        "US and UK refuse to sign Paris summit declaration on 'inclusive' AI",
        "Britain and US decline to sign AI declaration at Paris summit",
        "UK and US snub Paris AI summit statement",
    ],
    "declaration-zh": [
        "美英拒绝签署巴黎人工智能行动峰会宣言",
        "巴黎AI峰会发表联合声明 美国英国未签署",
    ],
    "vance-en": [
        "JD Vance warns Europe against 'excessive regulation' of AI",
        "Vance tells Europeans that heavy AI regulation could kill the industry",
        "Vance slams EU AI rules in Paris speech",
    ],
    "macron-en": [
        "Macron announces 109 billion euros of AI investment in France",
        "France to invest €109bn in AI, Macron says ahead of summit",
    ],
    "boe-en": [
        "Bank of England cuts interest rates to 4.5%",
        "BoE lowers rates to 4.5% as growth outlook dims",
    ],
    "boe-zh": ["英国央行降息25个基点至4.5%", "英国央行宣布降息至4.5% 下调经济增长预期"],
    "musk-en": [
        "Musk-led group makes $97.4 billion bid for OpenAI",
        "Elon Musk consortium offers $97.4bn to buy OpenAI",
        "Musk-led investors bid $97.4 billion for control of OpenAI",
    ],
    "musk-zh": ["马斯克财团出价974亿美元收购OpenAI", "马斯克牵头财团报价974亿美元 欲收购OpenAI"],
    "super-bowl-en": [
        "Eagles beat Chiefs 40-22 to win Super Bowl",
        "Philadelphia Eagles rout Kansas City Chiefs to win Super Bowl LIX",
    ],
}


@pytest.mark.parametrize(
    ("title", "feed", "link", "expected"),
    [
        ("Nvidia shares plunge 17% as DeepSeek sparks selloff - Reuters", "", None,
         "Nvidia shares plunge 17% as DeepSeek sparks selloff"),
        ("UK and US snub Paris AI summit statement | World news | The Guardian", "", None,
         "UK and US snub Paris AI summit statement"),
        ("Vance slams EU AI rules in Paris speech - bbc.com", "", None,
         "Vance slams EU AI rules in Paris speech"),
        ("Vance slams EU AI rules - the daily wire", "The Daily Wire", None,
         "Vance slams EU AI rules"),
        ("Vance slams EU AI rules - theverge", "", "https://www.theverge.com/x",
         "Vance slams EU AI rules"),
        ("英伟达股价单日暴跌17% 市值蒸发5930亿美元_网易新闻", "", None,
         "英伟达股价单日暴跌17% 市值蒸发5930亿美元"),
        ("美英拒绝签署巴黎人工智能行动峰会宣言｜澎湃新闻", "", None,
         "美英拒绝签署巴黎人工智能行动峰会宣言"),
        ("馬斯克財團出價974億美元收購OpenAI - 中央通訊社", "", None,
         "馬斯克財團出價974億美元收購OpenAI"),
        # Kept: no name after the separator, or nothing much before it.
        ("Eagles beat Chiefs 40-22 to win Super Bowl", "", None, None),
        ("Musk-led group makes $97.4 billion bid for OpenAI", "", None, None),
        ("Apple unveils iPhone 17 - here's what's new", "", None, None),
        ("Bank of England cuts rates - 4.5%", "", None, None),
        ("Nvidia stock falls | Markets | Here is why it matters today", "", None, None),
        ("独家｜DeepSeek发布新模型", "", None, None),
        ("英伟达-英特尔合作", "", None, None),
        ("Top stories - Reuters", "", None, None),
        # Hyphens within words and scores are no separators; quotes keep their speaker.
        ("Man City 1-2 Tottenham", "", None, None),
        ("Manchester City 1 - 2 Tottenham", "", None, None),
        ("Boeing grounds all 737-MAX", "", None, None),
        ("Rapper hit by car in Winston-Salem", "", None, None),
        ("'We need to be much better' - Guardiola", "", None, None),
        ("Live updates: US election 2024 - Trump Wins Pennsylvania", "", None, None),
        ("Fed cuts rates | Inflation rises - Reuters", "", None,
         "Fed cuts rates | Inflation rises"),
        # Ordinary Chinese words ending like a media name (下台, 警报, 互联网).
        ("韩国总统尹锡悦 - 宣布下台", "", None, None),
        ("伊朗发射导弹 - 以色列拉响警报", "", None, None),
        ("国务院发布新规_规范互联网", "", None, None),
        ("人民日报：某事件发生了什么_人民网", "", None, "人民日报：某事件发生了什么"),
        ("马斯克出价974亿美元收购OpenAI - 新华网", "", None, "马斯克出价974亿美元收购OpenAI"),
        # Only the site's own name counts, not a word its host holds elsewhere.
        ("Trump wins presidency - first time since 1892", "", "https://time.com/x", None),
        ("Putin warns NATO - world leaders react", "", "https://world.huanqiu.com/x", None),
        ("Pep Guardiola signs new deal - BBC Sport", "", "https://www.bbc.co.uk/sport/x",
         "Pep Guardiola signs new deal"),
        ("川普勝選 將成為美國第47任總統 | 中央社 CNA", "中央社", None,
         "川普勝選 將成為美國第47任總統"),
        # A capitalised tail of three words or more needs a media word to be a name.
        ("Fed Lowers Rates by 0.25 Point - Bloomberg", "", None,
         "Fed Lowers Rates by 0.25 Point"),
        ("Fed Lowers Rates - The Wall Street Journal", "", None, "Fed Lowers Rates"),
        ("x" + " " * 20000 + "- y", "", None, "x - y"),  # white space runs: one space, at once
        # The feed's or site's name in whole words, not a segment opening like it.
        ("Stocks tumble on Wall Street - April jobs report misses", "AP", None, None),
        ("Oil prices surge - Reuters poll shows", "Reuters", None, None),
        ("Trump edit row grows - BBC apologises for edit", "", "https://www.bbc.co.uk/x", None),
        ("Trump wins presidency - Timeline of the night", "", "https://time.com/x", None),
        ("Flood hits the city - 9News", "", "https://www.9news.com.au/x", "Flood hits the city"),
        ("某公司发布新产品_36氪", "36氪", None, "某公司发布新产品"),
        ("某公司发布新产品今日_21世纪经济报道", "", None, "某公司发布新产品今日"),
        ("Storm hits Helsinki today - Yle", "", "https://yle.fi/a/1", "Storm hits Helsinki today"),
        ("Storm hits NYC today - ABC News", "", "https://abcnews.go.com/x",
         "Storm hits NYC today"),
        ("Storm hits Delhi today - Times of India", "", "https://timesofindia.indiatimes.com/x",
         "Storm hits Delhi today"),
        ("Arsenal 2 - Chelsea 1", "", None, None),
        ("Pep Guardiola signs a deal until 2027 | The Guardian", "The Guardian", None,
         "Pep Guardiola signs a deal until 2027"),
    ],
)  # fmt: skip
def test_headline_drops_the_publishers_name(
    title: str, feed: str, link: str | None, expected: str | None
) -> None:
    from aggregator.dedup.text import headline

    assert headline(title, feed, link) == (title if expected is None else expected)


def test_a_story_is_headed_without_its_first_publishers_name() -> None:
    from aggregator.dedup.group import make_article, make_story

    wire = make_entry(1, "", title="Nvidia shares plunge 17% - Reuters", feed="Reuters")
    later = make_entry(
        2, "", title="Nvidia stock tumbles | CNBC", published=T0 + timedelta(hours=1)
    )
    story = make_story([make_article([later]), make_article([wire])])
    assert story.headline == "Nvidia shares plunge 17%"
    assert story.articles[0].title == "Nvidia shares plunge 17% - Reuters"  # shown as it came
    place = make_entry(3, "", title="Magnitude 6.8 earthquake strikes off the coast - Japan")
    assert make_story([make_article([place])]).headline == place.title  # no guessing


def test_a_story_is_headed_by_the_title_most_of_its_titles_agree_with() -> None:
    """Of three or more articles, the lead (headline, link, summary) is the one whose title
    shares the most words with the others', not the earliest (a teaser, a round-up or a
    misfit); a title its feed cut short ("…") only when all are; ties go to the earliest."""
    from aggregator.dedup.group import make_article, make_story

    def story(*titles: str, feed: str = "feed-a", unlinked: int | None = None) -> Story:
        return make_story(
            [
                make_article(
                    [
                        make_entry(
                            i,
                            "",
                            title=t,
                            feed=feed,
                            link=None if i == unlinked else f"https://n.example/{i}",
                            published=T0 + timedelta(hours=i),
                        )
                    ]
                )
                for i, t in enumerate(titles)
            ]
        )

    titanfall = (
        "Entertainment briefs",
        "Titanfall released for Xbox One",
        "Xbox One shooter Titanfall released today",
        "Titanfall released: what you need to know",
    )
    told = story(*titanfall)
    assert told.headline == "Titanfall released for Xbox One"
    assert [a.title for a in told.articles] == [titanfall[1], titanfall[0], *titanfall[2:]]
    assert told.articles[0].link == "https://n.example/1"  # the headline links to its article
    # However they come, the same story.
    assert make_story(list(reversed(told.articles))) == told
    # Two reports are as like each other: the earliest leads, as before.
    assert story(*titanfall[:2]).headline == titanfall[0]
    # A cut title shares the most words here, but a whole one heads the story.
    harbour = (
        "Harbour fire destroys warehouse, crews ...",
        "Harbour fire",
        "Warehouse fire at the harbour",
        "Crews fight warehouse fire",
    )
    assert story(*harbour).headline == "Warehouse fire at the harbour"
    assert story(*[f"{t} ..." for t in harbour]).headline == f"{harbour[0]} ..."
    # Cut short before the feed's name, or with "[...]": as cut.
    reuters = story(*[harbour[0].replace(" ...", " ... - Reuters"), *harbour[1:]], feed="Reuters")
    assert reuters.headline == "Warehouse fire at the harbour"
    bracket = story(harbour[0].replace("...", "[\u2026]"), *harbour[1:])
    assert bracket.headline == "Warehouse fire at the harbour"
    # The headline links to its article: one with a link leads before one without.
    assert story(*titanfall, unlinked=1).headline == "Xbox One shooter Titanfall released today"
    # Equal titles: the earliest.
    assert story("Dam bursts", "Dam bursts", "Dam bursts").articles[0].link == "https://n.example/0"


def test_a_storys_lead_is_the_same_in_every_process() -> None:
    """Sets of words iterate in an order that changes with each process's string hashing
    (PYTHONHASHSEED): near ties must not be decided by it (the scores are exact sums)."""
    script = (
        "from datetime import datetime, timedelta, UTC\n"
        "from tests.test_dedup import make_entry\n"
        "from aggregator.dedup.group import make_article, make_story\n"
        "import itertools, random\n"
        "words = 'fire flood storm harbour crews warehouse city port dam river rain wind'.split()\n"
        "rng = random.Random(7)\n"
        "leads = []\n"
        "for n in range(200):\n"
        "    titles = [' '.join(rng.sample(words, rng.randint(2, 6))) for _ in range(6)]\n"
        "    arts = [make_article([make_entry(i, '', title=t, link=f'https://n.example/{i}',\n"
        "            published=datetime(2025, 1, 1, tzinfo=UTC) + timedelta(hours=i))])\n"
        "            for i, t in enumerate(titles)]\n"
        "    leads.append(make_story(arts).articles[0].link[-1])\n"
        "print(''.join(leads))\n"
    )
    root = Path(__file__).parent.parent
    runs = {
        subprocess.run(
            [sys.executable, "-c", script],
            cwd=root,
            env={**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(root)},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in ("1", "2", "3")
    }
    assert len(runs) == 1
    assert len(set(runs.pop().strip())) > 1  # the leads differ between stories


def test_title_only_copies_are_keyed_without_guessing_a_publisher() -> None:
    """Two briefs ending in different place names are two articles; the same headline with
    different publishers' names (a domain, the feed's own) is one."""
    quake = "Magnitude 6.8 earthquake strikes off the coast, officials say"
    japan = feats(1, "", title=f"{quake} - Japan")
    chile = feats(2, "", title=f"{quake} - Chile")
    assert not is_copy(japan, chile, SETTINGS)
    wire = feats(3, "", title=f"{quake} - Reuters", feed="Reuters")
    site = feats(4, "", title=f"{quake} - apnews.com")
    assert is_copy(wire, site, SETTINGS)
    # A product named like a domain is no site.
    release = "Vercel ships a new release with faster builds and caching"
    nextjs = feats(5, "", title=f"{release} - Next.js")
    nuxt = feats(6, "", title=f"{release} - Nuxt.js")
    assert not is_copy(nextjs, nuxt, SETTINGS)


def _polled_by_publisher(tmp_path: Path, headlines: dict[str, list[str]]) -> list[Entry]:
    """Title-only headlines placed as publishers' polls come in: publisher n (the n-th title
    of each key) is a feed polled in turn, its headlines joining the stories so far. The
    stored entries, their guids "<key>/<n>"."""
    from aggregator.config import Config
    from aggregator.types import EntryData, Feed

    config = Config(path=tmp_path / "feeds.toml", storage_path=tmp_path / "t.db")
    with make_aggregator(config) as aggregator:
        for publisher in range(max(map(len, headlines.values()))):
            feed = Feed(url=f"https://pub{publisher}.example/rss", name=f"pub{publisher}")
            items = [
                EntryData(
                    guid=f"{key}/{publisher}",
                    title=titles[publisher],
                    link=f"https://pub{publisher}.example/{key}",
                    published=T0 + timedelta(minutes=publisher),
                )
                for key, titles in headlines.items()
                if publisher < len(titles)
            ]
            aggregator.storage.sync_feeds([feed], T0)
            aggregator.storage.save_poll(feed, items, now=T0, seconds=0)
            aggregator.group_stored()
        return aggregator.storage.entries_between(T0 - timedelta(days=1), T0 + timedelta(days=1))


#: What aggregators and sites append to each publisher's headlines (English, Chinese).
PUBLISHER_TAILS = [
    (" - Reuters", " - 新华网"),
    (" | World news | The Guardian", "｜澎湃新闻"),
    (" - Bloomberg.com", "_网易新闻"),
    (" — The Wall Street Journal", " - 財新網"),
]


@pytest.mark.parametrize("tails", [False, True], ids=["bare", "publisher-names"])
def test_title_only_headlines_cluster_by_event(tmp_path: Path, tails: bool) -> None:
    """Each publisher is a feed polled in turn; its headlines join the stories so far.

    With each publisher's name appended to its headlines (as aggregators do), the grouping
    is the same: without `headline`, one publisher's name glued two events together and
    split four."""

    def tail(event: str, publisher: int) -> str:
        return PUBLISHER_TAILS[publisher][event.endswith("-zh")] if tails else ""

    entries = _polled_by_publisher(
        tmp_path,
        {e: [t + tail(e, n) for n, t in enumerate(titles)] for e, titles in HEADLINES.items()},
    )
    stories: dict[int | None, set[str]] = {}
    for entry in entries:
        stories.setdefault(entry.story_id, set()).add(entry.guid.split("/")[0])
    assert len(entries) == sum(map(len, HEADLINES.values()))
    # One story per event, its English and Chinese headlines together.
    events: dict[str, list[str]] = {}
    for e in HEADLINES:
        events.setdefault(e.rsplit("-", 1)[0], []).append(e)
    assert sorted(map(sorted, stories.values())) == sorted(map(sorted, events.values()))


#: Title-only headlines in scripts other than Latin and Han: (language, event) -> titles.
WORLD_HEADLINES = {
    ("ko", "nvda"): [
        "엔비디아 주가 17% 폭락 딥시크 충격",
        "딥시크 충격에 엔비디아 시가총액 5930억달러 증발",
        "딥시크 쇼크 엔비디아 주가 사상 최대 폭락",
    ],
    ("ko", "boe"): [
        "영국 중앙은행 기준금리 4.5%로 인하",
        "영국 중앙은행 기준금리 인하 성장 전망 하향",
    ],
    ("ar", "nvda"): ["انهيار أسهم إنفيديا بسبب ديب سيك", "ديب سيك تهوي بأسهم إنفيديا 17 في المئة"],
    ("ar", "summit"): [
        "قمة باريس للذكاء الاصطناعي تنطلق بمشاركة 100 دولة",
        "انطلاق قمة باريس للذكاء الاصطناعي",
    ],
    ("ru", "nvda"): ["Акции Nvidia рухнули на 17% из-за DeepSeek", "DeepSeek обрушил акции Nvidia"],
    ("ru", "boe"): ["Банк Англии снизил ставку до 4,5%", "Банк Англии понизил ключевую ставку"],
    ("hi", "nvda"): [
        "डीपसीक के झटके से एनवीडिया के शेयर 17% गिरे",
        "एनवीडिया के शेयर धड़ाम डीपसीक का असर",
    ],
    ("hi", "summit"): ["पेरिस एआई शिखर सम्मेलन में 100 देश शामिल", "पेरिस में एआई शिखर सम्मेलन शुरू"],
    ("ja", "nvda"): [
        "エヌビディア株が17%急落 DeepSeekの衝撃",
        "DeepSeek衝撃でエヌビディア株価急落",
    ],
    ("ja", "summit"): [
        "パリでAIアクションサミット開幕",
        "AIアクションサミットがパリで開幕 100カ国参加",
    ],
    # Short headlines of different events sharing a function word ("in"): only the words'
    # frequencies in their languages tell that it says nothing (0.33 alike without them).
    ("ar", "cairo-rain"): ["الأمطار في القاهرة"],
    ("ar", "beirut-fire"): ["حريق في بيروت"],
    ("hi", "mumbai-rain"): ["मुंबई में भारी बारिश"],
    ("hi", "delhi-smog"): ["दिल्ली में वायु प्रदूषण"],
}


def test_headlines_in_other_scripts_cluster_by_event(tmp_path: Path) -> None:
    """Korean, Arabic, Russian, Hindi and Japanese headlines group by event: each language's
    coverage of an event is one story, and no story holds two events. (Before words were
    read in these scripts, a Hangul, Arabic or Devanagari title had none, and each
    headline stayed a story of its own; Japanese was cut into single characters. Without
    the background frequencies of these languages, the Arabic briefs were one story.)"""
    entries = _polled_by_publisher(
        tmp_path,
        {f"{language}/{event}": titles for (language, event), titles in WORLD_HEADLINES.items()},
    )
    assert len(entries) == sum(map(len, WORLD_HEADLINES.values()))
    events: dict[int | None, set[str]] = {}
    stories: dict[tuple[str, str], set[int | None]] = {}
    for entry in entries:
        language, event, _ = entry.guid.split("/")
        events.setdefault(entry.story_id, set()).add(event)
        stories.setdefault((language, event), set()).add(entry.story_id)
    assert all(len(held) == 1 for held in events.values()), events
    assert {key: len(found) for key, found in stories.items()} == dict.fromkeys(stories, 1)


def test_words_of_other_scripts() -> None:
    from aggregator.dedup.terms import words

    assert words(normalise("엔비디아 주가 17% 폭락, 딥시크 충격")) == [
        "엔비디아", "주가", "폭락", "딥시크", "충격",
    ]  # fmt: skip
    # Korean particles are folded as English plurals are: 엔비디아의, 엔비디아가 -> 엔비디아.
    assert words(normalise("엔비디아의 주가는 엔비디아가")) == ["엔비디아", "주가", "엔비디아"]
    assert words(normalise("국가 안보")) == ["국가", "안보"]  # two syllables stay
    assert words(normalise("हिंदी समाचार")) == ["हिंदी", "समाचार"]  # vowel signs kept in the word
    assert words(normalise("エヌビディア株が17%急落")) == ["急落", "エヌビディア"]
    assert words(normalise("Việt Nam tăng trưởng")) == ["việt", "nam", "tăng", "trưởng"]
    assert words(normalise("L'action Nvidia chute")) == ["action", "nvidia", "chute"]
    # Punctuation within the scripts' blocks ends a word.
    assert words(normalise("إنفيديا، أسهم؟")) == ["إنفيديا", "أسهم"]
    assert words(normalise("शेयर गिरे।")) == ["शेयर", "गिरे"]
    assert words(normalise("ドナルド・トランプ氏が勝利")) == ["胜利", "ドナルド", "トランプ"]
    # ... but marks that belong within a word keep it whole.
    assert words(normalise("צה״ל תוקף")) == ["צה״ל", "תוקף"]
    assert words(normalise("می\u200cخواهم بروم")) == ["می\u200cخواهم", "بروم"]
    assert words(normalise("نمو ٣٫٥٪")) == ["نمو", "٣٫٥"]
    assert words(normalise("İstanbul")) == [normalise("İstanbul")]  # i + a combining dot
    # Chinese with a Katakana middle dot is still Chinese (jieba's words, not pairs).
    assert words(normalise("埃隆・马斯克收购推特")) == words(normalise("埃隆·马斯克收购推特"))


def test_english_terms() -> None:
    from aggregator.dedup.terms import entry_terms, idf

    terms = entry_terms(normalise("Musk-led investors' bid: rates cut to 4.5%, Paris says"), "")
    assert set(terms) == {"musk", "led", "investor", "bid", "rate", "cut", "4.5", "paris"}
    # Before the corpus counts them, a rare name outweighs a common word (wordfreq prior).
    assert idf("nvidia", 0, 0) > idf("market", 0, 0) + 2
    assert idf("deepseek", 0, 0) >= idf("nvidia", 0, 0)  # unknown: rare


def test_story_idf_keeps_half_the_say_for_the_background() -> None:
    """Story vectors' IDF (`STORY_PRIOR_DOCS`, capped): a corpus larger than the prior counts
    as that many documents, its frequencies kept, so the background never loses more than
    half the say; smaller corpora blend as before."""
    from aggregator.dedup.terms import STORY_PRIOR_DOCS as P
    from aggregator.dedup.terms import idf, idf_many, prior_share

    for word in ("titanfall", "market", "le"):
        # Four times the prior's documents, four times the count: the same IDF as a corpus
        # the prior's size (the same floats: the scaling is exact here).
        assert idf(word, 4_000, 4 * P, P, capped=True) == idf(word, 1_000, P, P)
        assert idf(word, 1_000, P // 2, P, capped=True) == idf(word, 1_000, P // 2, P)
        # In 80% of a stream ten times the prior's size: common (the stream corrects the
        # background), but not weightless as the stream's own counts would make it.
        capped, uncapped = idf(word, 8 * P, 10 * P, P, capped=True), idf(word, 8 * P, 10 * P, P)
        assert 1.0 < uncapped < 1.35 < 1.8 < capped < 2.0
    # A batch's words weigh as each word alone does, capped or not.
    counts = [("titanfall", 4_000), ("market", 12), ("deepseek", 0)]
    for docs in (P // 2, 4 * P):
        assert idf_many(counts, docs, P, capped=True) == {
            w: math.log((min(docs, P) + P) / (n * min(1.0, P / docs) + P * prior_share(w) + 1.0))
            + 1.0
            for w, n in counts
        }
    # The default (topics' weights) is not capped.
    assert idf("market", 900, 9_000) < idf("market", 900, 9_000, capped=True)


@settings(max_examples=200, deadline=None)
@given(title=st.text(max_size=40), body=st.text(max_size=200))
@example(title="Rates rates RATES 人工智能 人工智能", body="rates 人工智能 峰会 Paris")
def test_entry_terms_count_the_title_twice_then_the_lead(title: str, body: str) -> None:
    from collections import Counter
    from unittest import mock

    from aggregator.dedup import terms as terms_module
    from aggregator.dedup.terms import LEAD_CHARS, TITLE_TERM_WEIGHT, entry_terms, words

    title, body = normalise(title), normalise(body)
    expected: Counter[str] = Counter()
    for word in words(title):
        expected[word] += TITLE_TERM_WEIGHT
    expected.update(words(body[:LEAD_CHARS]))
    with mock.patch.object(terms_module, "CROSS_LANGUAGE", False):  # words, as written
        terms = entry_terms(title, body)
    assert list(terms.items()) == list(expected.items())  # the same counts, in one order


@settings(max_examples=200, deadline=None)
@given(
    counts=st.dictionaries(st.sampled_from("abcdefghij"), st.integers(-2, 200), max_size=10),
    base=st.floats(0.01, 20.0),
)
@example(counts={"a": 1, "b": 63, "c": 64, "d": 0, "e": -1}, base=1.5)
def test_weigh_weighs_every_count_as_one_plus_its_log(counts: dict[str, int], base: float) -> None:
    """The table of small counts gives the formula's floats; counts below 1 are dropped;
    the norm's squares are summed left to right (as on every Python: from 3.12 `sum`
    compensates)."""
    import math
    from functools import reduce
    from operator import add

    from aggregator.dedup.assign import _weigh

    idfs = {t: base + i for i, t in enumerate(counts)}
    weights = {t: (1.0 + math.log(n)) * idfs[t] for t, n in counts.items() if n > 0}
    norm = math.sqrt(reduce(add, (w * w for w in weights.values()), 0.0))
    expected = {t: w / norm for t, w in weights.items()} if norm else {}
    assert list(_weigh(counts, idfs).items()) == list(expected.items())
    with pytest.raises(KeyError):
        _weigh({**counts, "z": 1}, idfs)  # an IDF missing


def _delta(batch: list[Pending]) -> tuple[Counter[str], int]:
    """The batch's change to the document frequencies, and to the number of documents, from
    each entry's terms (the rule `vectors.BatchTerms` computes from its layout)."""
    df_delta: Counter[str] = Counter()
    docs_delta = 0
    for pending in batch:
        if pending.previous_vector:
            df_delta.subtract(pending.previous_vector.keys())
            docs_delta -= 1
        df_delta.update(pending.features.terms.keys())
        docs_delta += 1
    return df_delta, docs_delta


def test_article_vectors_are_weighed_from_the_whole_vocabulary() -> None:
    """The vectors `article_vectors` hands `assign` equal, to the bit, those weighed from
    the whole vocabulary with the batch counted and `idf` word by word: with an edited entry
    (its former words uncounted, one of them no longer in the batch) and without."""
    from aggregator.dedup.assign import _weigh, article_vectors
    from aggregator.dedup.terms import STORY_PRIOR_DOCS, idf

    entries = [make_entry(i, e.text, title=e.title) for i, e in enumerate(SEED_ENTRIES.values())]
    batch = [Pending(features(e, SETTINGS)) for e in entries[:8]]
    words = sorted({t for p in batch for t in p.features.terms})
    vocabulary = Vocabulary({t: i % 5 for i, t in enumerate(words[::2])} | {"gone": 3}, 40)
    edited = replace(batch[0], previous_story=1, previous_vector={"gone": 0.6, words[0]: 0.8})
    for pending in (batch, [edited, *batch[1:]]):
        df_delta, docs_delta = _delta(pending)
        df = Counter(vocabulary.df)
        df.update(df_delta)
        docs = vocabulary.docs + docs_delta
        expected = {
            p.features.entry_id: _weigh(
                p.features.terms,
                {
                    t: idf(t, df.get(t, 0), docs, STORY_PRIOR_DOCS, capped=True)
                    for t in p.features.terms
                },
            )
            for p in pending
        }
        got = article_vectors(pending, vocabulary)
        assert [list(v.items()) for v in got.values()] == [
            list(v.items()) for v in expected.values()
        ]
        assert list(got) == list(expected)


@settings(max_examples=300, deadline=None)
@given(
    entries=st.lists(
        st.dictionaries(
            st.text("abcdefghijklmnopqrstuvwxyz峰会", min_size=1, max_size=3),
            st.integers(1, 70),  # `_TF`'s table and beyond it
            max_size=60,  # past VECTOR_TERMS
        ),
        max_size=8,
    ),
    dfs=st.lists(st.sampled_from([0, 1, 2, 5, 40]), min_size=1, max_size=5),  # many ties
    docs=st.sampled_from([0, 3, 100, 10_000]),
)
@example(entries=[{}, {"a": 1}], dfs=[0], docs=0)
@example(  # ties at the cut: 45 words of one weight; 30 heavier and 20 tied below them
    entries=[
        {f"w{i:02d}": 1 for i in reversed(range(45))},
        {**{f"h{i}": 3 for i in range(30)}, **{f"w{i:02d}": 1 for i in range(20)}},
        {f"w{i:02d}": 1 + i % 2 for i in range(41)},
    ],
    dfs=[2],
    docs=100,
)
@example(  # a word ending in NUL ties with its stem (numpy's strings would take them as one)
    entries=[
        {**{f"w{i:02d}": 2 for i in range(39)}, "qzv": 1, "qzv\x00": 1},
        {"zqx\x00": 1, "zqx": 1},
    ],
    dfs=[2],
    docs=100,
)
@example(  # an entry of more terms than the padded table takes (`_WIDEST`)
    entries=[{f"w{i:04d}": 1 + i * 37 % 61 for i in range(1100)}, {"a": 2}],
    dfs=[0, 1, 2, 5, 40, 7, 3],
    docs=50,
)
def test_batched_vectors_are_weigh_entry_by_entry(
    entries: list[dict[str, int]], dfs: list[int], docs: int
) -> None:
    """`article_vectors` (in numpy over the whole batch) gives each entry `_weigh`'s vector
    to the bit, in its order: the IDFs of the batch's counts, the heaviest VECTOR_TERMS
    words (ties at the cut by the word), their norm; and its heaviest INDEX_TERMS words
    (the words it looks for stories under) as `top_terms` ranks them."""
    from aggregator.dedup.stories import INDEX_TERMS, top_terms
    from aggregator.dedup.terms import STORY_PRIOR_DOCS, idf_many
    from aggregator.dedup.vectors import BatchTerms, _weigh, weigh

    base = features(make_entry(0, "x"), SETTINGS)
    batch = [Pending(replace(base, entry_id=i, terms=t)) for i, t in enumerate(entries)]
    words = sorted({w for t in entries for w in t})
    vocabulary = Vocabulary({w: dfs[i % len(dfs)] for i, w in enumerate(words)}, docs)
    terms = BatchTerms.of(batch)
    assert terms.words == list(dict.fromkeys(w for t in entries for w in t))
    assert dict(terms.df_delta) == {w: sum(w in t for t in entries) for w in terms.words}
    idfs = idf_many(
        [(w, vocabulary.df.get(w, 0) + terms.df_delta[w]) for w in terms.words],
        docs + len(entries),
        STORY_PRIOR_DOCS,
        capped=True,
    )
    weighed = weigh(batch, vocabulary, terms)
    got = weighed.vectors
    assert list(got) == list(weighed.heads) == list(range(len(entries)))
    for i, t in enumerate(entries):
        assert list(got[i].items()) == list(_weigh(t, idfs).items())
        assert weighed.heads[i] == top_terms(got[i], INDEX_TERMS)


@given(
    vector=st.dictionaries(
        st.text("abcdef峰会\x00", max_size=3),
        st.sampled_from([0.5, 1.0, 1.0 + 2**-52, 2.0, 3.25, 1e-300]),  # many ties
        max_size=140,  # a story's sum: past CENTROID_TERMS
    ),
    n=st.sampled_from([0, 1, 12, 100, 200]),
)
@example(vector={f"w{i:03d}": float(i % 3) for i in reversed(range(130))}, n=12)
def test_a_vectors_heaviest_words_are_ranked_by_weight_then_by_word(
    vector: dict[str, float], n: int
) -> None:
    """`top_terms` and a centroid's truncation (`_truncate`) rank words by weight, heaviest
    first, then by the word, whatever shortcut finds them: equal weights at the cut
    included, and the kept centroid in that order."""
    from aggregator.dedup.stories import CENTROID_TERMS, INDEX_TERMS, _truncate, top_terms

    ranked = [t for _, t in sorted((-w, t) for t, w in vector.items())]
    assert top_terms(vector, n) == ranked[:n]
    kept, heads = _truncate(vector)
    assert list(kept.items()) == [(t, vector[t]) for t in ranked[:CENTROID_TERMS]]
    assert heads == ranked[:INDEX_TERMS]


def test_an_article_lists_a_feeds_copies_of_one_link_once() -> None:
    """Copies one feed gave with one link (a feed that changes an item's guid on every
    poll) are one line of the article; another feed's copy, or another link of the same
    feed, is listed."""
    from aggregator.dedup.group import group_stories

    text = "马克龙在巴黎主持人工智能行动峰会。" * 5
    entries = [
        make_entry(1, text, link="https://a.cn/1", guid="g-0", published=T0),
        make_entry(2, text, link="https://a.cn/1", guid="g-1", published=T0 + timedelta(1)),
        make_entry(3, text, link="https://a.cn/1", guid="g-2", published=T0 + timedelta(2)),
        make_entry(4, text, link="https://b.cn/9", feed="feed-b", published=T0 + timedelta(1)),
        make_entry(5, text, link="https://a.cn/2", guid="g-3", published=T0 + timedelta(3)),
        make_entry(6, text, guid="g-4", published=T0 + timedelta(4)),  # no link: its own line
        make_entry(7, text, guid="g-5", published=T0 + timedelta(5)),
    ]
    placed = [replace(e, article_id=1, story_id=1) for e in entries]
    (story,) = group_stories(placed)
    (article,) = story.articles
    assert [c.id for c in article.copies] == [1, 4, 5, 6, 7]


def test_of_stories_equally_similar_an_article_joins_the_oldest() -> None:
    """Equal cosines with several stories: the article joins the lowest id (the oldest),
    in whatever order the stories were loaded or indexed."""
    from aggregator.dedup.stories import _Stories
    from aggregator.types import StoryState

    when = datetime(2025, 2, 10, tzinfo=UTC)
    centroid = {"summit": 2.0, "paris": 1.5, "macron": 1.0}
    for order in ([7, 3, 5], [3, 5, 7], [5, 7, 3]):
        stories = _Stories(
            [StoryState(sid, when, when, 1, dict(centroid), False) for sid in order], SETTINGS
        )
        assert stories.best({"summit": 1.0, "paris": 1.0}, when, True) == 3


def test_packed_terms_lay_out_a_batch_as_its_counts_would() -> None:
    """Terms packed by pieces (`terms.pack_terms`, as a worker's pieces ship them, pickled
    and read back) are the counts they pack, and `BatchTerms.of` lays out a batch of them,
    in any order and holding only some of a piece's entries, with the words, document
    frequencies, counts and vectors of the same counts as dictionaries."""
    import pickle
    from collections.abc import Mapping

    from aggregator.dedup.terms import PackedTerms, entry_terms, pack_terms
    from aggregator.dedup.vectors import BatchTerms, weigh

    texts = [
        ("Paris AI summit opens", "Leaders met in Paris for the AI Action Summit on Monday."),
        ("巴黎人工智能峰会开幕", "马克龙在巴黎主持人工智能行动峰会，欧盟宣布投资2000亿欧元。"),
        ("EU pledges €200 billion for AI", "The European Union pledged funds for AI in Paris."),
        ("Summit ends without US signature", "The US and UK did not sign the Paris declaration."),
        ("Nvidia shares fall", "Shares of Nvidia fell on Monday after DeepSeek's model."),
    ]
    counts: list[Mapping[str, int]] = [
        entry_terms(normalise(title), normalise(body)) for title, body in texts
    ]
    counts += [{}, {"paris": 70, "summit": 1}]  # no words; a count `_TF` lacks
    # Two pieces, read back as the placing process reads a worker's.
    pieces = [pack_terms(counts[:3]), pack_terms(counts[3:])]
    packed = [t for piece in pickle.loads(pickle.dumps(pieces)) for t in piece]
    for p, c in zip(packed, counts, strict=True):
        assert isinstance(p, PackedTerms)
        assert p == c and list(p.items()) == list(c.items()) and len(p) == len(c)
    base = features(make_entry(0, "x"), SETTINGS)
    # Entry 1 left out: its piece's words it alone holds are not the batch's.
    chosen = [4, 2, 0, 3, 5, 6]
    as_packed = [Pending(replace(base, entry_id=i, terms=packed[i])) for i in chosen]
    as_dicts = [Pending(replace(base, entry_id=i, terms=dict(counts[i]))) for i in chosen]
    vocabulary = Vocabulary({"paris": 3, "summit": 2, "ai": 9}, 40)
    # And with an edited entry (its former words uncounted), and with one entry's counts
    # not packed (laid out as dictionaries are).
    edit = {"previous_story": 1, "previous_vector": {"gone": 0.6, "paris": 0.8}}
    edited = [replace(as_packed[0], **edit), *as_packed[1:]]  # type: ignore[arg-type]
    cases = [
        (as_packed, as_dicts),
        (edited, [replace(as_dicts[0], **edit), *as_dicts[1:]]),  # type: ignore[arg-type]
        ([*as_packed[:-1], as_dicts[-1]], as_dicts),
    ]
    for mine, theirs in cases:
        got, want = BatchTerms.of(mine), BatchTerms.of(theirs)
        assert sorted(got.words) == sorted(want.words)
        counted, docs = _delta(theirs)  # as each entry's terms count
        assert got.df_delta == want.df_delta == {w: n for w, n in counted.items() if n}
        assert got.docs_delta == want.docs_delta == docs
        assert got.changes == [want.df_delta.get(w, 0) for w in got.words]
        for n in range(len(chosen)):
            a, b = slice(*got.bounds[n : n + 2]), slice(*want.bounds[n : n + 2])
            assert [got.words[i] for i in got.index[a]] == [want.words[i] for i in want.index[b]]
            assert got.counts[a].tolist() == want.counts[b].tolist()
        assert got.edited(mine) == got  # the same again
        weighed = weigh(mine, vocabulary, got)
        assert weighed == weigh(theirs, vocabulary, want)
        assert sum(map(bool, weighed.vectors.values())) == len(chosen) - 1  # all but {}


@pytest.mark.parametrize("capped", [False, True])
@pytest.mark.parametrize("docs", [0, 7, 5_000, 2_000_000])
def test_idf_array_is_idf_many(docs: int, capped: bool) -> None:
    from aggregator.dedup.terms import idf_array, idf_many

    words = ["峰会", "summit", "the", "zzqx", "巴黎", "ai", "de"]
    dfs = [0, 3, 1_000, 1, 40, 2_000_000, 7]
    expected = idf_many(zip(words, dfs, strict=True), docs, 1_000, capped)
    assert idf_array(words, dfs, docs, 1_000, capped).tolist() == list(expected.values())


def test_jaccards_of_many_equal_one_by_one() -> None:
    sigs = [
        minhash.to_bytes(minhash.signature(minhash.shingles(minhash.tokens(t))))
        for t in (OPENING.text, syndicate(OPENING.text), DW.text, CHINA.text)
    ]
    many = minhash.jaccards(sigs[0], [*sigs, None])
    assert many == [minhash.jaccard(sigs[0], s) for s in sigs if s] + [None]
    assert many[0] == 1.0 and minhash.jaccards(None, sigs) == [None] * 4


def test_keywords_are_spelled_as_whole_words() -> None:
    from aggregator.dedup.group import make_article, make_story
    from aggregator.dedup.topics import story_keywords

    titles = ["Startup funding rounds shrink", "Art startup raises funding", "Fundraising art fair"]
    story = make_story([make_article([make_entry(i, t, title=t)]) for i, t in enumerate(titles)])
    assert all(k.lower() in {"startup", "funding", "art"} for k in story_keywords(story))


def test_damaged_signatures_are_treated_as_missing() -> None:
    a = feats(1, OPENING.text)
    damaged = replace(feats(2, OPENING.text, link="https://x.cn/2"), signature=b"\x01\x02\x03")
    short = replace(
        a, entry_id=3, guid="guid-3", signature=(a.signature or b"")[:64], lead=b"\x00" * 8
    )
    assert entry_keys(damaged, SETTINGS)  # its bands are skipped, its other keys remain
    # Not comparable is as if missing: not a copy by text (these raised ValueError before).
    assert not is_copy(a, damaged, SETTINGS)
    assert not is_copy(a, short, SETTINGS)


@settings(max_examples=200, deadline=None)
@given(
    big=st.lists(st.integers(-3, 3), max_size=40),
    small=st.lists(st.integers(-4, 4), max_size=15),
)
def test_merging_a_level_into_a_larger_one_keeps_the_stable_order(
    big: list[int], small: list[int]
) -> None:
    """The binary-search merge gives what one stable sort of both gives: equal keys of the
    larger (earlier) level first, each level's in its order."""
    first = (np.array(sorted(big), np.int64), np.arange(len(big), dtype=np.int64))
    second = (np.array(sorted(small), np.int64), np.arange(100, 100 + len(small), dtype=np.int64))
    keys, ids = index_module._merged(first, second)
    want_keys, want_ids = index_module._sorted([first, second])
    assert keys.tolist() == want_keys.tolist() and ids.tolist() == want_ids.tolist()


@settings(max_examples=50, deadline=None)
@given(
    adds=st.lists(
        st.lists(
            st.tuples(st.integers(1, 30), st.lists(st.integers(0, 40), max_size=5)),
            min_size=1,
            max_size=6,
        ),
        max_size=40,
    )
)
def test_key_index_finds_every_entry_under_its_latest_keys(
    adds: list[list[tuple[int, list[int]]]],
) -> None:
    """Whatever merges happen (tiny thresholds), a lookup finds each entry under its latest
    keys, and under no key it never had."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(index_module, "MERGE_AT", 6)
        patch.setattr(index_module, "MAX_RUNS", 2)
        index = index_module.KeyIndex()
        latest: dict[int, set[int]] = {}
        ever: dict[int, set[int]] = {}
        for batch in adds:
            index.add(batch)
            for entry, keys in batch:
                latest[entry] = set(keys)
                ever.setdefault(entry, set()).update(keys)
            found = index.find(range(41)).by_entry()
            for entry, keys in latest.items():
                assert keys <= found.get(entry, set())
            for entry, keys in found.items():
                assert keys <= ever[entry]


def test_key_index_drops_superseded_keys() -> None:
    index = index_module.KeyIndex()
    index.add([(1, [10, 11, 12]), (2, [20, 21, 22])])
    index.add([(1, [13])])  # 3 stale keys of 4 live: the index is compacted at once
    assert len(index) == 4 and index.find([10, 13, 20]).by_entry() == {1: {13}, 2: {20}}
    index.add([(2, [20, 23]), (2, [24])])  # given twice in one batch: the last keys count
    assert index.find([20, 24]).by_entry() == {2: {24}}


def test_key_index_keeps_only_the_latest_keys_of_edited_entries(tmp_path: Path) -> None:
    """A feed that rewrites its entries on every poll must not grow the index without bound.

    Two processes each edit one entry of their own, 30 times: each index (brought up to
    date with the other's edits through storage) holds little more than the live keys.
    """
    for feed in ("portal", "wire"):
        (tmp_path / feed).mkdir()
    (tmp_path / "feeds.toml").write_text(
        '[storage]\npath = "t.db"\n[[feeds]]\nurl = "portal"\n[[feeds]]\nurl = "wire"\n',
        encoding="utf-8",
    )
    config = load_config(tmp_path / "feeds.toml")
    portal, wire = config.feeds
    texts = [OPENING.text, DW.text, CHINA.text]
    clock = FrozenClock(datetime(2025, 2, 12, tzinfo=UTC))
    with (
        make_aggregator(config, clock=clock) as writer,
        make_aggregator(config, clock=clock) as other,
    ):
        for edit in range(30):
            for aggregator, feed, link in (
                (writer, portal, "https://p.cn/1"),
                (other, wire, "https://w.cn/1"),
            ):
                text = f"{texts[edit % 3]}\n\n第{edit}版。"
                (tmp_path / feed.url / "edited.md").write_text(
                    _article(f"会改的文章 {edit}", "2025-02-11 08:00:00", text, link),
                    encoding="utf-8",
                )
                clock.advance(hours=1)
                assert aggregator.poll_feed(feed).updated == (edit > 0)
        stored, _ = writer.storage.dedup_features()
        live = sum(len(keys) for keys in entry_keys_many(stored, config.dedup))
        assert len(stored) == 2 and live > 60
        for aggregator in (writer, other):
            index = aggregator.placer._index  # the structure under test is private to the Placer
            assert index is not None and len(index) <= 2 * live  # before: ~30 times as many
        # The latest keys still find the entries.
        found = other.placer._key_index(config.dedup).find(entry_keys(stored[0], config.dedup))
        assert stored[0].entry_id in found.entries()


def test_copy_scores_of_a_batch_are_each_pairs_copy_score() -> None:
    """`copy_scores` (all of a batch's candidate pairs at once, as arrays) scores every pair
    as `copy_score` does: republished, trimmed, summarised and retitled copies, shared
    links and guids, missing texts and unrelated articles."""
    from aggregator.dedup.assign import copy_score, copy_scores
    from bench.cluster_scale import Corpus

    generated, pairs = Corpus(seed=3, per_day=200).entries(160)
    assert len(pairs) > 20  # copies to find
    found = []
    for n, e in enumerate(generated):
        text = e.text
        if n % 7 == 0:
            text = text[:120]  # a summary-length text
        elif n % 11 == 0:
            text = ""  # a headline alone: no signature
        found.append(
            features(
                make_entry(
                    n,
                    text,
                    title=e.title,
                    link=f"https://news.example/{n // 10}" if n % 5 == 0 else e.link,
                    guid=f"https://wire.example/{n // 8}" if n % 4 == 0 else None,
                    feed=f"feed-{n % 3}",
                ),
                SETTINGS,
            )
        )
    left, right = np.array(
        [(a, b) for a in range(len(found)) for b in range(len(found)) if a != b], dtype=np.intp
    ).T
    scores = copy_scores(found, left, right, SETTINGS)
    expected = [copy_score(found[a], found[b], SETTINGS) for a, b in zip(left, right, strict=True)]
    assert [None if math.isnan(s) else s for s in scores.tolist()] == expected
    kinds = {s for s in expected if s is not None}
    assert {3.0}.issubset(kinds) and any(1.0 < s < 2.0 for s in kinds)  # links, texts
    assert any(0.5 < s < 1.0 for s in kinds)  # openings and cuts


def test_copy_scores_compare_in_full_every_pair_a_bound_cannot_rule_out() -> None:
    """`copy_scores` rules pairs out by a bound of their Jaccard (the low 16 bits of each
    hash value agreeing). Signatures that agree there but not in full score as
    `copy_score` scores them, in each case the bound alone would misjudge: a shared link
    between unrelated texts, a text within a longer one, a text near the copy threshold
    (under a higher containment threshold), and a summary."""
    from aggregator.dedup.assign import copy_score, copy_scores
    from bench.cluster_scale import Corpus

    generated, _ = Corpus(seed=5, per_day=200).entries(40)
    longest = max(generated, key=lambda e: len(e.text))
    base = features(make_entry(0, longest.text, title="a", link="https://x.example/1"), SETTINGS)
    short = features(make_entry(5, longest.text[:120], title="f"), SETTINGS)
    assert base.size >= copies_module.LONG_SHINGLES
    assert copies_module.SUMMARY_SHINGLES < base.size // 3
    assert short.size <= copies_module.SUMMARY_SHINGLES

    def differing(signature: bytes | None, agree: int, low_only: int) -> bytes:
        """`signature` with its first `agree` values kept, the next `low_only` changed in
        their high bits only, and the rest changed in full."""
        changed = np.frombuffer(signature or b"", dtype="<u4").copy()
        changed[agree : agree + low_only] ^= np.uint32(0x5A5A0000)
        changed[agree + low_only :] ^= np.uint32(0x5A5A5A5A)
        return changed.astype("<u4").tobytes()

    def other(f: Features, n: int, **changes: object) -> Features:
        fields: dict[str, object] = {"url": None, "guid": f"g{n}", "title_key": f"t{n}"}
        return replace(f, entry_id=n, **(fields | changes))

    found = [
        base,
        other(base, 1, url=base.url, signature=differing(base.signature, 0, 40)),  # a link
        other(base, 2, size=base.size // 3, signature=differing(base.signature, 13, 26)),
        other(base, 3, signature=differing(base.signature, 38, 40)),  # near the threshold
        short,
        other(short, 4, signature=differing(short.signature, 30, 20)),  # a summary
    ]
    left, right = np.array([(0, 1), (0, 2), (0, 3), (4, 5)], dtype=np.intp).T
    signatures = [f.signature for f in found]
    bound = copies_module._pair_jaccards(signatures, left, right, bound=True)
    exact = copies_module._pair_jaccards(signatures, left, right)
    assert bound.tolist() == [40 / 128, 39 / 128, 78 / 128, 50 / 128]
    assert exact.tolist() == [0.0, 13 / 128, 38 / 128, 30 / 128]
    stricter = replace(SETTINGS, containment_threshold=0.95)
    for settings_ in (SETTINGS, stricter):
        scores = copy_scores(found, left, right, settings_)
        pairs = zip(left.tolist(), right.tolist(), strict=True)
        expected = [copy_score(found[a], found[b], settings_) for a, b in pairs]
        assert [None if math.isnan(s) else s for s in scores.tolist()] == expected
        assert expected[3] == 0.5 + 30 / 128  # the summary, by its opening


def test_grouping_counts_its_cpu_time_by_stage(tmp_path: Path) -> None:
    """`stage_seconds` (printed by bench/cluster_scale.py and the -v log) holds each stage
    of placing a batch, and grows as more entries are placed."""
    from bench.cluster_scale import Corpus

    entries, _ = Corpus(seed=2, per_day=400).entries(400)
    config = Config(path=tmp_path / "feeds.toml", storage_path=tmp_path / "t.db")
    with make_aggregator(config) as aggregator:
        seen = []
        for _ in _stored_polls(aggregator, entries, 200):
            aggregator.group_stored()
            seen.append(dict(aggregator.stage_seconds))
    stages = {"read", "key index", "features", "vectors", "place", "record"}
    assert set(seen[0]) == set(seen[1]) == stages
    assert all(seen[1][s] >= seen[0][s] >= 0 for s in stages)
    assert seen[1]["place"] > seen[0]["place"] > 0


def test_each_story_articles_joined_is_settled_once_per_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stories that articles joined are settled (merged with similar ones) once, after the
    batch is placed, not after every join: a stream of few large stories costs one settle
    per story, and the merges still happen."""
    from aggregator.dedup import assign as assign_module
    from bench.cluster_scale import Corpus

    settled: list[int] = []
    real = assign_module._Stories.settle

    def counting(self: assign_module._Stories, sid: int) -> int:
        settled.append(sid)
        return real(self, sid)

    monkeypatch.setattr(assign_module._Stories, "settle", counting)
    entries, _ = Corpus(seed=5, per_day=1000).entries(600)
    batch = [Pending(features(make_entry(n, e.text, title=e.title), SETTINGS))
             for n, e in enumerate(entries)]  # fmt: skip
    outcome = assign(batch, [], [], Vocabulary({}, 0), SETTINGS, 1)
    joined = len(batch) - len({p.story_id for p in outcome.placements}) - len(outcome.merged)
    assert len(settled) == len(set(settled))  # once each
    assert 0 < len(settled) < joined  # fewer settles than joins
    assert outcome.merged  # and stories merged


def test_the_compact_idf_table_reads_as_a_dict_of_the_file_would() -> None:
    """`terms._Table` (jieba's IDF table held as sorted arrays, ~40 MiB less per process)
    gives every word of the file the value a dict of its lines gives, the last of a word
    listed twice, the default for a word it lacks, and the same median and characters."""
    import statistics

    import jieba

    from aggregator.dedup import terms

    path = Path(jieba.__file__).parent / "analyse" / "idf.txt"
    fields = path.read_text(encoding="utf-8").split()
    expected = dict(zip(fields[::2], map(float, fields[1::2]), strict=True))
    table, median = terms._prior_table()
    assert median == statistics.median(expected.values())
    # The IDF of a word no table knows is that median, written down so that English text
    # never loads the table.
    assert terms.UNKNOWN_IDF == median
    assert all(table.get(w, -1.0) == v for w, v in expected.items())
    assert table.get("深度求索公司", -1.0) == table.get("不在表里", -1.0) == -1.0
    assert sorted(table.characters()) == sorted((w, v) for w, v in expected.items() if len(w) == 1)
    twice = terms._Table(["峰会", "巴黎", "峰会", "人工智能行动峰会", "人工智能行动峰会"],
                         [1.0, 2.0, 3.0, 4.0, 5.0])  # fmt: skip
    assert (twice.get("峰会", 0.0), twice.get("人工智能行动峰会", 0.0)) == (3.0, 5.0)
    assert twice.median == 3.0  # of 3.0, 2.0, 5.0: one value a word


def test_word_lists_read_directly_are_wordfreqs(monkeypatch: pytest.MonkeyPatch) -> None:
    """`wordlists.frequencies` reads wordfreq's files without importing wordfreq (~0.2 s a
    process) and gives its `get_frequency_dict` exactly, in every language it is asked
    for (those of other scripts, and the Latin ones whose function words and frequencies
    weigh words); where a file is not there, it asks wordfreq."""
    import wordfreq

    from aggregator import wordlists
    from aggregator.dedup import terms

    asked = {lang for _, _, languages in terms._SCRIPT_LANGUAGES for lang in languages}
    for language in sorted({"en", *asked, *wordlists.LANGUAGES, *terms.LATIN_PRIORS}):
        direct = wordlists.read_frequencies(language)
        assert list(direct.items()) == list(
            wordfreq.get_frequency_dict(language, wordlist="small").items()
        )
    monkeypatch.setattr(wordlists.importlib.util, "find_spec", lambda name: None)
    assert wordlists.read_frequencies("en") == wordfreq.get_frequency_dict("en", wordlist="small")


def test_weighing_english_words_does_not_load_jiebas_table() -> None:
    """A text without Chinese needs no Chinese IDF table (a fresh process, as a poll of
    English feeds is)."""
    code = (
        "from aggregator.dedup import terms\n"
        "terms.prior_share('summit'); terms.prior_share('deepseekish')\n"
        "terms.entry_terms('paris ai summit opens', 'leaders meet in paris on monday')\n"
        "print(terms._prior_table.cache_info().currsize)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "0"


def test_an_articles_vector_keeps_its_heaviest_terms_at_unit_length() -> None:
    """A long lead's vector holds its `VECTOR_TERMS` heaviest terms (ties by the word), so
    that its many common words do not dilute its likeness to its story."""
    from aggregator.dedup.assign import VECTOR_TERMS, _weigh

    n = VECTOR_TERMS + 20
    counts = {f"w{i:03d}": 1 + i % 3 for i in range(n)}
    idfs = {f"w{i:03d}": 1.0 + i / 10 for i in range(n)}
    vector = _weigh(counts, idfs)
    weight = {t: (1 + math.log(c)) * idfs[t] for t, c in counts.items()}
    heaviest = sorted(weight, key=lambda t: (-weight[t], t))[:VECTOR_TERMS]
    assert set(vector) == set(heaviest)
    assert math.isclose(math.fsum(w * w for w in vector.values()), 1.0)
    ratio = vector[heaviest[0]] / weight[heaviest[0]]
    assert all(math.isclose(vector[t], weight[t] * ratio) for t in heaviest)

    tied = _weigh({f"t{i:03d}": 1 for i in range(n)}, {f"t{i:03d}": 2.0 for i in range(n)})
    assert sorted(tied) == [f"t{i:03d}" for i in range(VECTOR_TERMS)]
    short = _weigh({"paris": 2, "summit": 1}, {"paris": 3.0, "summit": 4.0})
    assert set(short) == {"paris", "summit"}


def test_story_memo_takes_a_story_with_an_equal_centroid_as_indexed() -> None:
    """The memo depends on the centroid's words and weights, not on storage handing back
    the same object: a story loaded again with an equal centroid (a new object) is not
    indexed again; one with another centroid is."""
    from aggregator.dedup.stories import _Stories

    centroid = {"nvidia": 0.75, "chips": 0.5}
    story = StoryState(id=1, first=T0, last=T0, size=1, centroid=centroid)
    memo = StoryMemo()
    _Stories([story], SETTINGS, memo)
    held = memo.indexed[1]
    assert held[0] is centroid
    reloaded = replace(story, centroid=dict(centroid))  # decoded anew, equal
    _Stories([reloaded], SETTINGS, memo)
    assert memo.indexed[1] is held  # not indexed again
    changed = replace(story, centroid={"nvidia": 0.75, "export": 0.5})
    _Stories([changed], SETTINGS, memo)
    assert memo.indexed[1][0] is changed.centroid and "export" in memo.index


def test_a_nul_does_not_cut_a_text_short() -> None:
    """OpenCC stops converting at a NUL character; what follows it is kept and converted
    (stored entries lose their control characters, but keywords and other callers need not)."""
    from aggregator.dedup.text import normalise, to_simplified

    assert to_simplified("漢\x00漢字") == "汉\x00汉字"
    assert normalise("峰會\x00巴黎") == "峰会\x00巴黎"


def test_a_body_too_short_to_tell_texts_apart_makes_no_copies() -> None:
    """Hacker News, Lobsters and many blogs give every item the same one-word body
    ("Comments", "Read more"): that body says nothing about which text an item is. Before,
    a whole day of such a feed was one article: every headline a copy of the first."""
    items = [
        feats(1, "Comments", title="Show HN: A tiny SQLite browser", link="https://a.example/x"),
        feats(2, "Comments", title="Rust 2.0 released", link="https://b.example/y"),
        feats(3, "Read more »", title="Why I left Google", link="https://c.example/z"),
        feats(4, "Read more »", title="The physics of bicycles", link="https://d.example/w"),
    ]
    for a in items:
        for b in items:
            if a is not b:
                assert not is_copy(a, b, SETTINGS), (a.entry_id, b.entry_id)
    # A short body does not stop title-only copies from being found by their title.
    quake = "Magnitude 6.8 earthquake strikes off the coast, officials say"
    assert is_copy(
        feats(5, "Comments", title=quake, link="https://e.example/1"),
        feats(6, "", title=f"{quake} - Reuters", feed="Reuters"),
        SETTINGS,
    )
