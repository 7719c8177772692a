"""OPML subscription lists: reading them into feeds with folders as tags, and writing them.

Folders (outlines without an ``xmlUrl``) become the `tags` of the feeds inside them,
outermost first; writing nests a feed in the folders of its tags, so a list round-trips.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from datetime import datetime
from email.utils import format_datetime
from typing import NamedTuple

from aggregator.config.identity import one_line_name
from aggregator.exceptions import ParseError
from aggregator.sources.charset import decode
from aggregator.types import Feed

# The encoding an XML declaration names: (before it, the name, its closing quote).
_ENCODING = re.compile(rb"""^(\s*<\?xml[^>]*?\bencoding\s*=\s*["'])([^"']*)(["'])""")


class OpmlFeed(NamedTuple):
    """One subscription read from an OPML file."""

    url: str
    name: str | None
    tags: tuple[str, ...]


def parse_opml(data: bytes, source: str) -> list[OpmlFeed]:
    """Read the subscriptions of an OPML 1.0/2.0 document.

    A subscription is an ``<outline>`` with an ``xmlUrl``; its name is its ``title`` or
    ``text``; its tags are the names of the folders around it, outermost first, then the
    entries of its ``category`` attribute (``"/News/World,Tech"``: "News/World", "Tech").

    Args:
        data: The document's bytes.
        source: Where they came from, for errors.

    Returns:
        The subscriptions in document order (a URL listed twice: the first one).

    Raises:
        ParseError: not XML, not OPML, or a document declaring entities (refused, so that
            a crafted file cannot expand to gigabytes).
    """
    if b"<!ENTITY" in data.upper():
        raise ParseError(source, "OPML with entity declarations is refused")
    try:
        try:
            root = ET.fromstring(data)
        except (ValueError, LookupError):
            # expat reads UTF-8, UTF-16 and single-byte charsets only ("multi-byte
            # encodings are not supported": GBK, Big5, Shift_JIS), and no unknown one:
            # decode the bytes as a feed's are, and hand expat UTF-8 saying so.
            declared = _ENCODING.match(data[:512])
            text = decode(
                data, [declared.group(2).decode("ascii", "replace") if declared else None]
            )
            root = ET.fromstring(_ENCODING.sub(rb"\1utf-8\3", text.text.encode("utf-8"), count=1))
    except ET.ParseError as e:
        raise ParseError(source, f"not valid XML: {e}") from e
    if root.tag.lower() != "opml":
        raise ParseError(source, f"not an OPML document (root element <{root.tag}>)")
    body = root.find("body")
    if body is None:
        raise ParseError(source, "OPML without a <body>")
    found: list[OpmlFeed] = []
    seen: set[str] = set()

    def walk(node: ET.Element, folders: tuple[str, ...]) -> None:
        for outline in node.findall("outline"):
            url = (outline.get("xmlUrl") or outline.get("xmlurl") or "").strip()
            # A title is one line: control characters (a newline written as &#10;) go.
            title = outline.get("title") or outline.get("text") or ""
            name = one_line_name(title) or None
            if url:
                if url not in seen:
                    seen.add(url)
                    tags = list(folders)
                    for category in (outline.get("category") or "").split(","):
                        tag = category.strip().strip("/")
                        if tag and tag not in tags:
                            tags.append(tag)
                    found.append(OpmlFeed(url, name, tuple(tags)))
                walk(outline, folders)
            else:
                walk(outline, (*folders, name) if name else folders)

    walk(body, ())
    return found


def render_opml(feeds: Sequence[Feed], *, title: str, created: datetime) -> str:
    """An OPML 2.0 document listing `feeds`, each inside the folders named by its tags.

    Args:
        feeds: The feeds to list (local files and folders have no URL to share: skip them).
        title: The document's title.
        created: Its creation time.

    Returns:
        The document as text (UTF-8 declared).
    """
    root = ET.Element("opml", version="2.0")
    head = ET.SubElement(root, "head")
    ET.SubElement(head, "title").text = title
    ET.SubElement(head, "dateCreated").text = format_datetime(created)
    body = ET.SubElement(root, "body")
    folders: dict[tuple[str, ...], ET.Element] = {(): body}
    for feed in feeds:
        parent = body
        for depth in range(1, len(feed.tags) + 1):
            path = feed.tags[:depth]
            if path not in folders:
                folders[path] = ET.SubElement(
                    folders[path[:-1]], "outline", text=path[-1], title=path[-1]
                )
            parent = folders[path]
        ET.SubElement(
            parent, "outline", type="rss", text=feed.name, title=feed.name, xmlUrl=feed.url
        )
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
