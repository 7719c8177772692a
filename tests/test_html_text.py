"""html_to_text's fast lxml path gives exactly the text of the BeautifulSoup path."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from aggregator.sources import parse
from bench.feedfarm import Farm
from tests.conftest import ROOT

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
    clean = parse._CONTROL_CHARS.sub("", markup)
    if "<" not in clean and "&" not in clean:  # plain text keeps its own paragraphs
        return parse.html_to_text(markup), parse._collapse_paragraphs(clean)
    parts = parse._soup_text(clean).split(parse._BREAK)
    reference = parse._join_paragraphs(parse._CONTROL_CHARS.sub(" ", p) for p in parts)
    return parse.html_to_text(markup), reference


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
        parse._lxml_text(markup)  # the fast path reads all of it (raises if not)
        fast, reference = _both(markup)
        assert fast == reference, markup[:300]


def test_markup_lxml_refuses_falls_back_to_soup(tmp_path: Path) -> None:
    # A str with an encoding declaration is refused by lxml's str API; we pass bytes, so
    # it is read; either way the text comes out.
    markup = "<?xml version='1.0' encoding='iso-8859-1'?><p>caf\u00e9</p><p>two</p>"
    assert parse.html_to_text(markup) == "caf\u00e9\n\ntwo"
