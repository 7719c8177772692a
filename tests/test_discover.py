"""Tests for sources/discover.py: the feeds a page links to, relative to its <base href>."""

from __future__ import annotations

from aggregator.sources.discover import find_feed_links


def test_find_feed_links_honours_the_first_base_with_an_href() -> None:
    page = (
        '<html><head><base target="_blank"><base href="/news/"><base href="https://other/">'
        '<link rel="alternate" type="application/rss+xml" href="rss.xml">'
        '<link rel="Alternate feed" type="application/atom+xml; charset=utf-8" href="/atom">'
        '<link rel="alternate" type="text/html" href="page.html">'
        '<link rel="alternate" type="application/rss+xml" href="rss.xml">'
        "</head><body></body></html>"
    )
    assert find_feed_links(page, "https://example.com/index.html") == [
        "https://example.com/news/rss.xml",
        "https://example.com/atom",
    ]
    without_base = page.replace("<base", "<x-base")
    assert find_feed_links(without_base.encode(), "https://example.com/a/index.html") == [
        "https://example.com/a/rss.xml",
        "https://example.com/atom",
    ]
