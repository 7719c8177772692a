"""Rendering a Digest as HTML, plain text or JSON; the one module that imports Jinja2.

The JSON shape built by `digest_to_dict` is a public contract (other tools read it);
change it only by adding keys.
"""

from __future__ import annotations

import json
import re
import textwrap
from collections import Counter
from datetime import UTC, datetime
from functools import cache
from typing import Any, NamedTuple, assert_never
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from jinja2 import Environment, PackageLoader, StrictUndefined, pass_context, select_autoescape
from jinja2.runtime import Context

from aggregator.types import Article, Digest, Entry, Format, Story

# A story lists at most this many copies before the rest are folded away.
VISIBLE_COPIES = 5
# Summaries are a teaser for the story, not the article; cut long ones.
SUMMARY_CHARS = 400
TEXT_WIDTH = 78

_SAFE_SCHEMES = frozenset({"http", "https"})
# C0/C1 control characters: a feed must not be able to send escape sequences to a terminal.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_NOT_WORD = re.compile(r"[^\w]+")


class StoryView(NamedTuple):
    """A story as the templates show it: its lead article and its copies, some folded."""

    story: Story
    lead: Article
    summary: str
    shown: tuple[Entry, ...]
    folded: tuple[Entry, ...]


class TopicView(NamedTuple):
    """A topic section with the anchor id the table of contents links to."""

    name: str
    anchor: str
    stories: tuple[StoryView, ...]


class Counts(NamedTuple):
    """The header's numbers."""

    stories: int
    articles: int
    sources: int


def render(digest: Digest, fmt: Format) -> str:
    """Render a digest in one of the output formats.

    Args:
        digest: The digest to show.
        fmt: html (a standalone page), text (terminal/email) or json (the documented shape).

    Returns:
        The rendered document.

    Raises:
        zoneinfo.ZoneInfoNotFoundError: ``digest.timezone`` is not a known IANA zone
            (the config stage is expected to have checked it).
    """
    match fmt:
        case Format.HTML:
            return _render_template("digest.html.j2", digest)
        case Format.TEXT:
            return _render_template("digest.txt.j2", digest)
        case Format.JSON:
            return render_json(digest)
        case _:
            assert_never(fmt)


def render_json(digest: Digest) -> str:
    """Serialise a digest as the documented JSON document (see `digest_to_dict`).

    Args:
        digest: The digest to serialise.

    Returns:
        Indented JSON text, non-ASCII characters kept as they are.
    """
    return json.dumps(digest_to_dict(digest), ensure_ascii=False, indent=2) + "\n"


def digest_to_dict(digest: Digest) -> dict[str, Any]:
    """Build the JSON contract for a digest.

    Every datetime is converted to the digest's timezone and written with
    ``isoformat()``, so it carries its offset (``2025-02-10T21:00:01+08:00``)::

        {"since", "until", "generated_at",
         "topics": [{"name", "stories": [{"headline", "articles": [
             {"title", "link", "published", "language",
              "copies": [{"feed", "title", "link", "published"}]}]}]}]}

    Args:
        digest: The digest to convert.

    Returns:
        Plain dicts, lists, strings and None, in the documented key order.
    """
    tz = ZoneInfo(digest.timezone)

    def iso(value: datetime) -> str:
        return _aware(value).astimezone(tz).isoformat()

    return {
        "since": iso(digest.since),
        "until": iso(digest.until),
        "generated_at": iso(digest.generated_at),
        "topics": [
            {
                "name": topic.name,
                "stories": [
                    {
                        "headline": story.headline,
                        "articles": [
                            {
                                "title": article.title,
                                "link": article.link,
                                "published": iso(article.published),
                                "language": article.language or "",
                                "copies": [
                                    {
                                        "feed": copy.feed_name,
                                        "title": copy.title,
                                        "link": copy.link,
                                        "published": iso(copy.published),
                                    }
                                    for copy in article.copies
                                ],
                            }
                            for article in story.articles
                        ],
                    }
                    for story in topic.stories
                ],
            }
            for topic in digest.topics
        ],
    }


def safe_url(url: str | None) -> str | None:
    """Return the URL if it is an absolute http(s) URL, else None.

    Feed links are untrusted: ``javascript:``, ``data:`` and relative links must never
    become an href.

    Args:
        url: A link from a feed, or None.

    Returns:
        The URL with surrounding whitespace removed, or None when it must not be linked.
    """
    if not url:
        return None
    url = url.strip()
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in _SAFE_SCHEMES or not parts.netloc:
        return None
    if _CONTROL.search(url) or any(ch.isspace() for ch in url):
        return None
    return url


def format_localtime(value: datetime, timezone: str) -> str:
    """Format a datetime in a timezone as ``2025-02-10 21:00 +08:00``.

    Args:
        value: An aware datetime (a naive one is taken as UTC).
        timezone: An IANA timezone name.

    Returns:
        Date, minutes and the UTC offset.
    """
    local = _aware(value).astimezone(ZoneInfo(timezone))
    return f"{local:%Y-%m-%d %H:%M} {_offset(local)}"


def anchor_ids(names: list[str]) -> list[str]:
    """Make a unique, URL-fragment-safe id for each topic name (Chinese letters kept).

    Args:
        names: Topic names in display order.

    Returns:
        One id per name, like ``topic-world-news`` or ``topic-科技``.
    """
    seen: set[str] = set()
    ids = []
    for name in names:
        slug = _NOT_WORD.sub("-", name.casefold()).strip("-_")
        base = f"topic-{slug}" if slug else "topic"
        anchor, n = base, 1
        while anchor in seen:
            n += 1
            anchor = f"{base}-{n}"
        seen.add(anchor)
        ids.append(anchor)
    return ids


def _aware(value: datetime) -> datetime:
    # Stored times are UTC; a naive one would otherwise be read as the host's local time.
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _offset(local: datetime) -> str:
    offset = local.utcoffset()
    minutes = int(offset.total_seconds() // 60) if offset is not None else 0
    sign = "-" if minutes < 0 else "+"
    hours, mins = divmod(abs(minutes), 60)
    return f"{sign}{hours:02d}:{mins:02d}"


def _shorten(text: str, limit: int = SUMMARY_CHARS) -> str:
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    return text[:limit].rstrip() + "…"


def _oneline(value: str) -> str:
    """Text-format filter: a feed string on one line, without control characters."""
    return " ".join(_CONTROL.sub("", value).split())


def _wrap(value: str, width: int = TEXT_WIDTH, indent: str = "") -> str:
    # Unspaced CJK runs and long URLs stay whole rather than being cut mid-word.
    return textwrap.fill(
        _oneline(value),
        width=width,
        initial_indent=indent,
        subsequent_indent=indent,
        break_long_words=False,
        break_on_hyphens=False,
    )


@pass_context
def _localtime_filter(context: Context, value: datetime) -> str:
    return format_localtime(value, context["timezone"])


@pass_context
def _isotime_filter(context: Context, value: datetime) -> str:
    return _aware(value).astimezone(ZoneInfo(context["timezone"])).isoformat()


@pass_context
def _localdate_filter(context: Context, value: datetime) -> str:
    return f"{_aware(value).astimezone(ZoneInfo(context['timezone'])):%Y-%m-%d}"


@cache
def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("aggregator", "templates"),
        # Escape everything except templates explicitly named as plain text.
        autoescape=select_autoescape(
            enabled_extensions=("html.j2", "html"),
            disabled_extensions=("txt.j2",),
            default_for_string=True,
            default=True,
        ),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["localtime"] = _localtime_filter
    env.filters["localdate"] = _localdate_filter
    env.filters["isotime"] = _isotime_filter
    env.filters["safe_url"] = safe_url
    env.filters["oneline"] = _oneline
    env.filters["wrap"] = _wrap
    return env


def _story_view(story: Story) -> StoryView:
    lead = story.articles[0]
    copies = tuple(copy for article in story.articles for copy in article.copies)
    return StoryView(
        story=story,
        lead=lead,
        summary=_shorten(lead.summary),
        shown=copies[:VISIBLE_COPIES],
        folded=copies[VISIBLE_COPIES:],
    )


def _document_language(digest: Digest) -> str:
    languages = Counter(
        article.language
        for topic in digest.topics
        for story in topic.stories
        for article in story.articles
        if article.language
    )
    return languages.most_common(1)[0][0] if languages else "en"


def _render_template(name: str, digest: Digest) -> str:
    stories = [story for topic in digest.topics for story in topic.stories]
    anchors = anchor_ids([topic.name for topic in digest.topics])
    topics = [
        TopicView(
            name=topic.name,
            anchor=anchor,
            stories=tuple(_story_view(story) for story in topic.stories if story.articles),
        )
        for topic, anchor in zip(digest.topics, anchors, strict=True)
    ]
    counts = Counts(
        stories=len(stories),
        articles=sum(len(story.articles) for story in stories),
        sources=len(
            {copy.feed_name for story in stories for a in story.articles for copy in a.copies}
        ),
    )
    template = _environment().get_template(name)
    return template.render(
        digest=digest,
        timezone=digest.timezone,
        topics=topics,
        counts=counts,
        lang=_document_language(digest),
    )
