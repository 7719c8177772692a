"""Feed discovery: the feeds an HTML page links to."""

from __future__ import annotations

from typing import Any
from urllib.parse import urljoin

from aggregator.config.identity import is_http_url
from aggregator.sources.html_text import soup

__all__ = ["find_feed_links"]

_FEED_LINK_TYPES = frozenset(
    {
        "application/rss+xml",
        "application/atom+xml",
        "application/rdf+xml",
        "application/feed+json",
        "application/json",
    }
)


def find_feed_links(html: bytes | str, base_url: str) -> list[str]:
    """Feed URLs a page advertises with ``<link rel="alternate" type="...">``.

    Recognised types: RSS, Atom, RDF and JSON Feed. A ``<base href>`` is honoured.

    Args:
        html: The page's markup.
        base_url: The page's URL, to make relative links absolute.

    Returns:
        Absolute http(s) feed URLs in document order, without duplicates (a link that is
        malformed or of another scheme, such as ``javascript:``, is none).
    """
    page = soup(html)
    base = base_url
    for base_tag in page.find_all("base", href=True, limit=1):  # the first one counts
        base = _absolute(base_url, str(base_tag["href"])) or base_url
    found: list[str] = []
    for link in page.find_all("link", href=True):
        rel: Any = link.get("rel") or []
        rels: list[str] = [rel] if isinstance(rel, str) else [str(r) for r in rel]
        if "alternate" not in (r.lower() for r in rels):
            continue
        kind = str(link.get("type") or "").split(";")[0].strip().lower()
        if kind not in _FEED_LINK_TYPES:
            continue
        url = _absolute(base, str(link["href"]))
        if url is not None and is_http_url(url) and url not in found:
            found.append(url)
    return found


def _absolute(base: str, href: str) -> str | None:
    """`href` made absolute against `base`; None when it is malformed ("http://[::1")."""
    try:
        return urljoin(base, href.strip())
    except ValueError:
        return None
