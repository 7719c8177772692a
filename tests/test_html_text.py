"""html_to_text and excerpt: their fast paths give exactly the text of the slow ones."""

from __future__ import annotations

import html.entities
from pathlib import Path

from hypothesis import example, given, settings
from hypothesis import strategies as st

from aggregator.sources import excerpt, html_text
from tests.conftest import ROOT
from tests.feedfarm import Farm

TAGS = ["p", "div", "br", "b", "i", "a", "img", "small", "li", "ul", "h2", "script", "style",
        "figure", "figcaption", "table", "td", "span", "blockquote"]  # fmt: skip
pieces = st.one_of(
    st.sampled_from([f"<{t}>" for t in TAGS] + [f"</{t}>" for t in TAGS]),
    st.sampled_from(
        [
            "<img src='x.png'>",
            '<a href="https://e.org/?a=1&amp;b=2">',
            "<!-- c -->",
            "&amp;",
            "&lt;",
            "&nbsp;",
            "&#x4e2d;",
            " ",
            "\n",
            "\n\n",
        ]
    ),  # fmt: skip
    st.text(st.sampled_from("abc 巴黎峰會。.,"), min_size=1, max_size=6),
)


def _both(markup: str) -> tuple[str, str]:
    """html_to_text's answer, and the BeautifulSoup path's answer for the same markup."""
    clean = html_text._CONTROL_CHARS.sub("", markup)
    if "<" not in clean and "&" not in clean:  # plain text keeps its own paragraphs
        return html_text.html_to_text(markup), html_text.collapse_paragraphs(clean)
    parts = html_text._soup_text(clean).split(html_text._BREAK)
    reference = html_text._join_paragraphs(html_text._CONTROL_CHARS.sub(" ", p) for p in parts)
    return html_text.html_to_text(markup), reference


@settings(max_examples=300, deadline=None)
@given(st.lists(pieces, max_size=40).map("".join))
def test_lxml_and_soup_agree_on_any_markup(markup: str) -> None:
    fast, reference = _both(markup)
    assert fast == reference


def test_lxml_and_soup_agree_on_a_real_corpus() -> None:
    import feedparser

    corpus = [p.read_text(encoding="utf-8", errors="replace") for p in (ROOT / "seeds").iterdir()]
    corpus += [
        p.read_text(encoding="utf-8", errors="replace") for p in (ROOT / "tests" / "data").glob("*")
    ]
    farm = Farm(feeds=6, entries=20)
    farm.server.server_close()  # only its generated feeds are needed
    for body in farm.bodies.values():
        for entry in feedparser.parse(body).entries:
            corpus += [c["value"] for c in entry.get("content", [])] + [entry.get("summary", "")]
    assert len(corpus) > 150
    for markup in corpus:
        html_text._lxml_text(markup)  # the fast path reads all of it (raises if not)
        fast, reference = _both(markup)
        assert fast == reference, markup[:300]


def test_markup_lxml_refuses_with_a_lone_surrogate_is_read_too() -> None:
    # "&#1;" makes lxml refuse the text; BeautifulSoup then met the surrogate lxml had read
    assert html_text.html_to_text("<p>a&#1;\ud800b</p>") == "a ?b"


def test_markup_lxml_refuses_falls_back_to_soup(tmp_path: Path) -> None:
    # A str with an encoding declaration is refused by lxml's str API; we pass bytes, so
    # it is read; either way the text comes out.
    markup = "<?xml version='1.0' encoding='iso-8859-1'?><p>caf\u00e9</p><p>two</p>"
    assert html_text.html_to_text(markup) == "caf\u00e9\n\ntwo"


# --- markup read without lxml (html_text._simple_markup_text) ------------------------------

SIMPLE = sorted(html_text._SIMPLE_BLOCKS | html_text._SIMPLE_INLINE)
# and tags it leaves to lxml: other HTML 4 closing rules, dropped content, void tags
OTHERS = ["dl", "dt", "dd", "address", "font", "tt", "img", "script", "table", "td", "pre"]
texts = st.one_of(
    st.sampled_from(
        [
            " ",
            "\n",
            "\n \n",
            "\r\n",
            "\t",
            "\xa0",
            "\u3000",
            "&amp;",
            "&lt;p&gt;",
            "&nbsp;",
            "&#8217;",
            "&#x4E2D;",
            "&#128;",
            "&#0;",
            "&#xe000;",
            "&eacute;",
            "&copy",
            "AT&T",
            "a < b",
            "<!-- c -->",
            "<br>",
            "<br />",
            "</br>",
            "<hr>",
            "<p/>",
            "\x01",
            "\ud800",
        ]
    ),  # fmt: skip
    st.text(st.sampled_from("ab .。巴黎"), min_size=1, max_size=4),
)
attributes = st.sampled_from(
    ["", "", ' class="x"', " href='https://e.org/?a=1&amp;b'", ' title="a>b"', " data-x",
     "\u3000class=x", ' href="x"title="y"']
)  # fmt: skip


@st.composite
def elements(draw: st.DrawFn, children: st.SearchStrategy[str]) -> str:
    name = draw(st.sampled_from(SIMPLE + OTHERS))
    name = name.upper() if draw(st.integers(0, 19)) == 0 else name
    inner = "".join(draw(st.lists(children, max_size=4)))
    end = "" if draw(st.integers(0, 9)) == 0 else f"</{name}>"  # unclosed or stray, at times
    return f"<{name}{draw(attributes)}>{inner}{end}"


markup_trees = st.lists(st.recursive(texts, elements, max_leaves=12), max_size=5).map("".join)


@settings(max_examples=300, deadline=None)
@given(markup_trees)
@example("<p>a\ud800b</p>")  # lxml reads a lone surrogate as "?"
@example("<p\u3000class=x>a</p>b")  # not a <p>: the tag's name ends at HTML's whitespace
@example("<span><p>a</span>b")  # </span> ends the paragraph too
@example("<p>a<div>b</div>c</p>d")  # <div> ends the paragraph; </p> is then ignored
@example("abc</p>x<b>y</b> <i>z</i>")
def test_markup_read_without_lxml_reads_as_lxml_does(markup: str) -> None:
    assert html_text.html_to_text(markup) == html_text._tree_text(markup)


def test_common_bodies_are_read_without_lxml() -> None:
    farm = Farm(feeds=2, entries=2)
    farm.server.server_close()
    assert b"&lt;p&gt;" in farm.bodies[farm.feeds[0].path]  # the farm's bodies: paragraphs
    for markup in [
        "<p>One</p>\n<p>Two<br/>lines</p>",
        '<p>Read <a href="https://e.com/?a=1&amp;b=2">the <em>report</em></a> &#8212; now.</p>',
        "<ul><li>a</li><li><b>b</b></li></ul><h2 class='x'>Head</h2>",
    ]:
        assert html_text._simple_markup_text(markup) == html_text._tree_text(markup), markup


def test_closed_by_is_what_lxml_closes() -> None:
    import lxml.html

    for tag in SIMPLE + sorted(html_text._SIMPLE_VOID):
        for open_tag in SIMPLE:
            markup = f"<{open_tag}>a<{tag}>b".encode()
            root = lxml.html.document_fromstring(markup, parser=html_text._lxml_parser())
            element = root.find(f".//{open_tag}")
            assert element is not None
            closed = element.find(tag) is None
            assert closed == (open_tag in html_text._CLOSED_BY.get(tag, ())), (open_tag, tag)


def test_character_references_read_as_lxml_reads_them() -> None:
    names = [name for name in html.entities.html5 if name.endswith(";")]
    codes = [*range(0x250), 0xA0, 0x2028, 0xD7FF, 0xD800, 0xDFFF, 0xE000, 0xFDD0, 0xFFFD, 0xFFFE]
    codes += [0xFFFF, 0x10000, 0x1F600, 0x10FFFF, 0x110000, 9_999_999]
    references = [f"&{name}" for name in names] + [f"&#{code};" for code in codes]
    references += [f"&#x{code:X};" for code in codes] + ["&#00065;", "&#x0041;", "&amp", "&;"]
    for reference in references:
        markup = f"<p>a{reference}b</p>"
        assert html_text.html_to_text(markup) == html_text._tree_text(markup), reference


# --- excerpt -----------------------------------------------------------------------------


def _sentence_end_as_written(cut: str, limit: int) -> int:
    """excerpt._sentence_end as first written (in summarize): a loop over every character."""
    best = -1
    for i, char in enumerate(cut[:limit]):
        if char in "。！？!?.…" and (char != "." or cut[i + 1 : i + 2] in (" ", "")):
            end = i + 1
            while end < limit and cut[end] in excerpt._CLOSERS:
                end += 1
            best = end
    return best


summary_texts = st.lists(
    st.sampled_from(
        list("ab .。！？!?…”’\"'」』）)】中文\n\t\u3000\xa0") + ["word ", ". ", "。\n\n"]
    ),
    max_size=600,
).map("".join)


@settings(max_examples=300, deadline=None)
@given(summary_texts, st.sampled_from([1, 5, 20, 80, 200]))
@example("aaaaaaaa. bbbb.cccc dddd eeee", 20)  # "." ends a sentence only before a space
@example("第一句。” 第二句很长很长很长很长", 8)
def test_summarize_finds_the_sentence_end_it_found_reading_every_character(
    text: str, limit: int
) -> None:
    flat = excerpt._flatten(text)
    cut = flat[: limit + 1]
    if len(flat) > limit:  # as excerpt calls it
        assert excerpt._sentence_end(cut, limit) == _sentence_end_as_written(cut, limit)


@settings(max_examples=300, deadline=None)
@given(summary_texts, st.integers(0, 700))
@example("中文\n\n中文", 3)  # cut inside the break after Chinese text, which joins without one
def test_the_flattened_start_of_a_text_starts_its_flattened_text(text: str, length: int) -> None:
    assert excerpt._flatten(text).startswith(excerpt._flatten(text[:length]))


@settings(max_examples=100, deadline=None)
@given(summary_texts, st.integers(0, 3000), st.sampled_from([20, 200]))
def test_summarize_reads_on_past_a_start_that_is_mostly_space(
    text: str, spaces: int, limit: int
) -> None:
    assert excerpt.excerpt(" \n" * spaces + text, limit) == excerpt.excerpt(text, limit)
