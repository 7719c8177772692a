"""HTML to plain text, read once here: lxml, and BeautifulSoup for markup lxml refuses.

This is the only module that imports bs4 (on first use: feed discovery gets its soup from
`soup`); lxml reads HTML here and XML in fastfeed.
"""

from __future__ import annotations

import html.entities as html_entities
import re
import warnings
from collections.abc import Iterable
from functools import lru_cache
from typing import TYPE_CHECKING

import lxml.html
from lxml import etree

if TYPE_CHECKING:
    from bs4 import BeautifulSoup
    from bs4.element import Tag

__all__ = ["collapse_paragraphs", "html_to_text", "soup"]

_BLOCK_TAGS = frozenset(
    {
        "address", "article", "aside", "blockquote", "dd", "div", "dl", "dt", "figure",
        "footer", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "li", "main", "nav",
        "ol", "p", "pre", "section", "table", "td", "th", "tr", "ul",
    }
)  # fmt: skip
_DROP_TAGS = (
    "script", "style", "noscript", "template", "head", "img", "picture", "video", "audio",
    "iframe", "svg", "object", "embed", "figcaption", "button", "form",
)  # fmt: skip
_BREAK = "\ue000"  # paragraph marker (private use); removed from the input first
_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def html_to_text(html: str) -> str:
    """Readable plain text from an HTML fragment or page.

    Scripts, styles, images, media, figure captions (and a lone ``<small>`` caption just
    after an image) are dropped. Block elements (p, div, br, h1-h6, li, ...) become
    paragraph breaks (``"\\n\\n"``); whitespace within a paragraph is collapsed to one
    space; entities are unescaped; link texts are kept, URLs are not.

    Markup made only of text, entities and well-nested common tags (paragraphs, lists,
    headings, links, emphasis) is read without building a tree (`_simple_markup_text`);
    lxml reads the rest (about 25x faster than BeautifulSoup here, which dominated the
    ingest path); BeautifulSoup, which gives the same text, takes over for markup lxml
    refuses. All three give the same text (tests/test_html_text.py).

    Args:
        html: The markup.

    Returns:
        The text, paragraphs separated by blank lines, no leading or trailing space.
    """
    if _UNUSUAL.search(html) is None:
        if "<" not in html and "&" not in html:
            return collapse_paragraphs(html)
        simple = _simple_markup_text(html)
        if simple is not None:
            return simple
    return _tree_text(html)


def _tree_text(html: str) -> str:
    """html_to_text by lxml, or by BeautifulSoup for markup lxml refuses."""
    html = _CONTROL_CHARS.sub("", html).replace(_BREAK, "")
    if "<" not in html and "&" not in html:
        return collapse_paragraphs(html)
    # lxml reads UTF-8 with a lone surrogate as "?": so must BeautifulSoup (it raised)
    html = html.encode("utf-8", "replace").decode("utf-8")
    try:
        text = _lxml_text(html)
    except (etree.LxmlError, ValueError):
        text = _soup_text(html)
    return _join_paragraphs(_CONTROL_CHARS.sub(" ", part) for part in text.split(_BREAK))


# What `_simple_markup_text` reads. lxml (libxml2) keeps all text of these tags in order;
# a block tag breaks a paragraph, an inline one leaves no trace.
_SIMPLE_BLOCKS = frozenset(
    {
        "article", "aside", "blockquote", "div", "footer", "h1", "h2", "h3", "h4", "h5", "h6",
        "header", "li", "main", "nav", "ol", "p", "section", "ul",
    }
)  # fmt: skip
_SIMPLE_INLINE = frozenset(
    {
        "a", "abbr", "b", "cite", "code", "em", "i", "mark", "q", "s", "small", "span",
        "strong", "sub", "sup", "time", "u",
    }
)  # fmt: skip
_SIMPLE_VOID = frozenset({"br", "hr"})
_HEADINGS = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})
# The open element libxml2 closes when one of these tags starts inside it (its HTML 4
# rules, tests/test_html_text.py checks them against lxml). Such markup is left to lxml:
# where an element ends, its paragraph ends, and the written end tag is then ignored.
_CLOSED_BY = {
    **dict.fromkeys(("blockquote", "div", "hr", "ol", "ul", *_HEADINGS), frozenset({"p"})),
    "p": frozenset({"p", "b", "i", "s", "small", "u", *_HEADINGS}),
    "li": frozenset({"li", "p", *_HEADINGS}),
    "a": frozenset({"a"}),
}
_SIMPLE_KNOWN = _SIMPLE_BLOCKS | _SIMPLE_INLINE
_ATTRIBUTES = r"""(?:\s+[a-zA-Z_:][-\w:.]*(?:\s*=\s*(?:"[^"<]*"|'[^'<]*'|[^\s"'<>=`]+))?)*"""
# re.ASCII: HTML's whitespace only (in "<p\u3000>" the space is part of the tag's name).
# An end tag, or a start tag with its attributes and a void tag's "/": split on this, a
# document gives [text, end name, start name, "/", text, ...].
_SIMPLE_TAG = re.compile(
    rf"<(?:/([a-zA-Z][a-zA-Z0-9]*)\s*|([a-zA-Z][a-zA-Z0-9]*){_ATTRIBUTES}\s*(/?))>", re.ASCII
)
# The common body: text in a row of paragraphs (or other blocks, not nested) and line breaks.
_FLAT_BLOCK = "|".join(sorted(_SIMPLE_BLOCKS - {"ol", "ul"}, key=len, reverse=True))
_FLAT_TEXT = r"[^<]*(?:<br\s*/?>[^<]*)*"
_FLAT = re.compile(rf"{_FLAT_TEXT}(?:<({_FLAT_BLOCK})>{_FLAT_TEXT}</\1>{_FLAT_TEXT})*", re.ASCII)
_FLAT_TAGS = re.compile(rf"</?(?:{_FLAT_BLOCK})>|<br\s*/?>", re.ASCII)
# Any "&": group 1 a hex, 2 a decimal, 3 a named character reference (with its ";").
_AMPERSAND = re.compile(
    r"&(?:#[xX]([0-9a-fA-F]{1,6});|#([0-9]{1,7});|([a-zA-Z][a-zA-Z0-9]{0,31});)?"
)
# What lxml's reading alters: control characters, lone surrogates, our paragraph marker.
_UNUSUAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff\ue000]")


def _simple_markup_text(html: str) -> str | None:
    """html_to_text of common markup, without parsing it into a tree; None for other markup.

    lxml's parse and walk was two thirds of a poll's parsing. Most feed bodies are text
    in paragraphs, links and emphasis, whose text lxml keeps in order: their text is the
    text between the tags, with a paragraph break at each block tag. That holds while
    each element ends where its end tag says; so an end tag that does not close the
    innermost open element, a start tag that would close it (see _CLOSED_BY), any other
    tag, a comment, a stray "<" or an unusual "&" returns None.
    """
    flat = _FLAT.fullmatch(html)
    text = _FLAT_TAGS.sub(_BREAK, html) if flat else _nested_markup_text(html)
    if text is None:
        return None
    if "&" in text:
        decoded = _decode_references(text)
        if decoded is None:
            return None
        text = decoded
    return _join_paragraphs(text.split(_BREAK))


def _nested_markup_text(html: str) -> str | None:
    pieces = _SIMPLE_TAG.split(html)
    out = [pieces[0]]
    open_tags: list[str] = []
    for i in range(1, len(pieces), 4):
        end, start, void = pieces[i : i + 3]
        if end is not None:
            name = end.lower()
            if not open_tags or open_tags.pop() != name:
                return None
        else:
            name = start.lower()
            if open_tags and open_tags[-1] in _CLOSED_BY.get(name, ()):
                return None
            if name in _SIMPLE_VOID:
                out.append(_BREAK)
            elif void or name not in _SIMPLE_KNOWN:
                return None
            else:
                open_tags.append(name)
        if name in _SIMPLE_BLOCKS:
            out.append(_BREAK)
        out.append(pieces[i + 3])
    text = "".join(out)
    return None if "<" in text else text


def _decode_references(text: str) -> str | None:
    """Text with its character references decoded as lxml does; None if one is unusual."""
    pieces = _AMPERSAND.split(text)
    for i in range(1, len(pieces), 4):
        hexadecimal, decimal, name = pieces[i : i + 3]
        if name is not None:
            char = html_entities.html5.get(name + ";")
        elif hexadecimal is not None or decimal is not None:
            code = int(hexadecimal, 16) if hexadecimal is not None else int(decimal)
            # lxml turns these into other characters (HTML's rules), or spaces (ours).
            unusual = (code < 0x20 and code not in (9, 10, 13)) or 0x7F <= code <= 0x9F
            unusual = unusual or 0xD800 <= code <= 0xDFFF or code > 0x10FFFF
            char = None if unusual else chr(code)
        else:
            char = None  # a bare "&", or a reference HTML reads differently without ";"
        if char is None:
            return None
        pieces[i : i + 3] = (char, "", "")
    return "".join(pieces)


def _lxml_text(html: str) -> str:
    # As UTF-8 bytes: lxml refuses str input that carries an encoding declaration.
    root = lxml.html.document_fromstring(html.encode("utf-8", "replace"), parser=_lxml_parser())
    for img in root.iter("img"):
        _lxml_drop_caption_after(img)
    for element in list(root.iter(*_DROP_TAGS, etree.Comment, etree.ProcessingInstruction)):
        if element.getparent() is not None:
            element.drop_tree()  # keeps the element's tail text
    for element in root.iter():
        if not isinstance(element.tag, str):
            continue
        if element.tag == "br":
            element.tail = _BREAK + (element.tail or "")
        elif element.tag in _BLOCK_TAGS:
            element.text = _BREAK + (element.text or "")
            element.tail = _BREAK + (element.tail or "")
    return str(root.text_content())


@lru_cache(maxsize=1)
def _lxml_parser() -> lxml.html.HTMLParser:
    # huge_tree: a 10 MB title is hostile but still text; no network, no entities fetched.
    return lxml.html.HTMLParser(
        encoding="utf-8", huge_tree=True, no_network=True, remove_comments=True, remove_pis=True
    )


def _lxml_drop_caption_after(img: lxml.html.HtmlElement) -> None:
    if (img.tail or "").strip():
        return
    sibling = img.getnext()
    if sibling is None or not isinstance(sibling.tag, str):
        return
    if sibling.tag == "small":
        sibling.drop_tree()
        return
    if sibling.tag in {"div", "p"} and not (sibling.text or "").strip():
        children = list(sibling)
        if (
            len(children) == 1
            and children[0].tag == "small"
            and not (children[0].tail or "").strip()
        ):
            sibling.drop_tree()


def _soup_text(html: str) -> str:
    tree = soup(html)
    for img in tree.find_all("img"):
        _drop_caption_after(img)
    for tag in tree.find_all(_DROP_TAGS):
        tag.decompose()
    for br in tree.find_all("br"):
        br.replace_with(_BREAK)
    for block in tree.find_all(_BLOCK_TAGS):
        block.insert_before(_BREAK)
        block.append(_BREAK)
    return str(tree.get_text())


def soup(markup: str | bytes) -> BeautifulSoup:
    """BeautifulSoup over lxml, quietly.

    bs4 is imported on first use: polls rarely need it (lxml reads the text), and its
    import was a fifth of the start-up time of `aggregator poll`.
    """
    import bs4

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bs4.MarkupResemblesLocatorWarning)
        warnings.simplefilter("ignore", bs4.XMLParsedAsHTMLWarning)
        return bs4.BeautifulSoup(markup, "lxml")


def _drop_caption_after(img: Tag) -> None:
    from bs4.element import NavigableString, Tag

    sibling = img.next_sibling
    while isinstance(sibling, NavigableString) and not sibling.strip():
        sibling = sibling.next_sibling
    if not isinstance(sibling, Tag):
        return
    if sibling.name == "small":
        sibling.decompose()
        return
    if sibling.name in {"div", "p"}:
        children = [
            c for c in sibling.children if not (isinstance(c, NavigableString) and not c.strip())
        ]
        if len(children) == 1 and isinstance(children[0], Tag) and children[0].name == "small":
            sibling.decompose()


def collapse_paragraphs(text: str) -> str:
    text = _CONTROL_CHARS.sub(" ", text)
    return _join_paragraphs(re.split(r"\n\s*\n", text.replace("\r\n", "\n").replace("\r", "\n")))


def _join_paragraphs(parts: Iterable[str]) -> str:
    # map and filter: no Python frame per paragraph (a body has dozens, many empty)
    return "\n\n".join(filter(None, map(" ".join, map(str.split, parts))))
