"""Rendering a Digest as HTML, plain text or JSON; the one module that imports Jinja2.

The JSON shape built by `digest_to_dict` is a public contract (other tools read it);
change it only by adding keys.
"""

from __future__ import annotations

import json
import re
import uuid
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from functools import cache, lru_cache
from typing import Any, NamedTuple, assert_never
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from jinja2 import Environment, PackageLoader, StrictUndefined, pass_context, select_autoescape
from jinja2.runtime import Context
from markupsafe import Markup

from aggregator.digest.archive import ArchivedDigest
from aggregator.digest.summary import is_cjk, summarize
from aggregator.sources.language import base_language, detect_language
from aggregator.types import Article, Digest, Entry, Format, Story
from aggregator.width import display_width

# A story lists at most this many of its articles before the rest are folded away.
VISIBLE_ARTICLES = 5
#: Teasers kept by their texts: a served Now page is made again from mostly the same stories.
MEMO_TEASERS = 10_000
TEXT_WIDTH = 78
# The Atom feed of the archive lists this many digests.
FEED_ENTRIES = 60

_SAFE_SCHEMES = frozenset({"http", "https"})
# Unicode's explicit direction controls (embeddings, overrides, isolates): one in a title
# (U+202E) shows the rest of its line backwards, the source's time and link included. The
# marks (U+200E, U+200F) have no such reach and stay.
_DIRECTION = "\u202a-\u202e\u2066-\u2069"
_DIRECTION_CONTROL = re.compile(f"[{_DIRECTION}]")
# C0/C1 control characters: a feed must not be able to send escape sequences to a terminal.
_CONTROL = re.compile(f"[\\x00-\\x08\\x0b-\\x1f\\x7f-\\x9f{_DIRECTION}]")
# Characters XML 1.0 forbids outright (a feed title carrying one would break feed.xml).
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_NOT_WORD = re.compile(r"[^\w]+")
_MEDIA_TYPES = {"html": "text/html", "txt": "text/plain", "json": "application/json"}
# Chinese/Japanese punctuation that must not begin a line (kinsoku).
_NO_LINE_START = frozenset("，。、；：！？）」』”’》〉】…·")


class ArticleLine(NamedTuple):
    """An article as a story lists it: the copy it is shown as (its primary copy: feed,
    title, link, time), and a copy of the same text from each other feed that carried it,
    named beside it."""

    copy: Entry
    also: tuple[Entry, ...]
    #: The ids of those copies that arrived late (`Digest.arrived_late`).
    late: frozenset[int] = frozenset()


class StoryView(NamedTuple):
    """A story as the templates show it: its lead article first, each article once (with
    the feeds that carried a copy of it), those after `VISIBLE_ARTICLES` folded."""

    story: Story
    lead: Article
    anchor: str
    summary: str
    shown: tuple[ArticleLine, ...]
    folded: tuple[ArticleLine, ...]
    source_count: int

    @property
    def folded_feeds(self) -> list[str]:
        """The feeds of the folded articles, each once, in the order they are listed."""
        copies = (copy for line in self.folded for copy in (line.copy, *line.also))
        return list(dict.fromkeys(copy.feed_name for copy in copies))


class AlsoView(NamedTuple):
    """A one-line reference to a story filed under another section that matches this one."""

    headline: str
    anchor: str  # the story's place in the page
    topic: str  # the section it is filed under


class TopicView(NamedTuple):
    """A topic section with the anchor id the table of contents links to."""

    name: str
    anchor: str
    stories: tuple[StoryView, ...]
    also: tuple[AlsoView, ...] = ()


class Counts(NamedTuple):
    """The header's numbers."""

    stories: int
    articles: int
    sources: int
    new_feeds: int


def render(
    digest: Digest,
    fmt: Format,
    *,
    web_url: str | None = None,
    archive_url: str | None = None,
    feed_url: str | None = None,
) -> str:
    """Render a digest in one of the output formats.

    Args:
        digest: The digest to show.
        fmt: html (a standalone page), text (terminal/email) or json (the documented shape).
        web_url: Where this digest can be read online (shown in html and text, for email).
        archive_url: The archive's index (html and text footers); relative or absolute.
        feed_url: The archive's Atom feed (html footer).

    Returns:
        The rendered document.

    Raises:
        zoneinfo.ZoneInfoNotFoundError: ``digest.timezone`` is not a known IANA zone
            (the config stage is expected to have checked it).
    """
    match fmt:
        case Format.HTML | Format.TEXT:
            name = "digest.html.j2" if fmt is Format.HTML else "digest.txt.j2"
            return _render_template(
                name,
                digest,
                web_url=safe_url(web_url),
                archive_url=archive_url,
                feed_url=feed_url,
            )
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

        {"since", "until", "generated_at", "late_since",
         "topics": [{"name", "stories": [{"id", "headline", "articles": [
             {"title", "link", "published", "dated", "language",
              "copies": [{"feed", "title", "link", "published", "dated", "late",
                          "arrived_late"}]}]}]}]}

    A story's ``id`` is its stable id in storage as a string (``/stories/<id>`` of
    `aggregator serve`), null while it is not placed.
    ``dated`` is false when ``published`` is only when the entry was first seen (its
    source gave no date); an article's is that of the copy it is shown as. A story's ``id``
    is its stored id as a string (what alerts name), null when not placed yet.
    ``late_since`` is when the daily digest before a daily digest was made, null for
    others; a copy is ``late`` when it is one of the daily digest's late arrivals (dated
    before the window, shown because no earlier daily digest showed it: `Digest.late`);
    ``arrived_late`` when, of those, it is dated on a day an earlier daily digest covered
    and was stored after that was made (`Digest.arrived_late`: the page's "arrived
    late"), not of a day between, whose daily digest was not made (the daemon was down).

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
        "late_since": iso(digest.late_since) if digest.late_since is not None else None,
        "topics": [
            {
                "name": topic.name,
                "stories": [
                    {
                        "id": str(story.id) if story.id is not None else None,
                        "headline": story.headline,
                        "articles": [
                            {
                                "title": article.title,
                                "link": article.link,
                                "published": iso(article.published),
                                "dated": _article_dated(article),
                                "language": article.language or "",
                                "copies": [
                                    {
                                        "feed": copy.feed_name,
                                        "title": copy.title,
                                        "link": copy.link,
                                        "published": iso(copy.published),
                                        "dated": copy.dated,
                                        "late": digest.late(copy),
                                        "arrived_late": digest.arrived_late(copy),
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


def _article_dated(article: Article) -> bool:
    # An article shows its first copy's title, link and time (dedup.group.make_article).
    return article.copies[0].dated if article.copies else True


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


def window_end(until: datetime, timezone: str) -> datetime:
    """The last moment a window ending (exclusively) at `until` holds, as people say it.

    A window ending at local midnight ends on the day before: 2026-12-06 00:00 is shown as
    2026-12-05 23:59, as `date_label` names the day. Another end is shown as it is.

    Args:
        until: The window's exclusive end (a naive one is taken as UTC).
        timezone: An IANA timezone name.

    Returns:
        The local time to show: a second before midnight, or `until` itself.
    """
    local = _aware(until).astimezone(ZoneInfo(timezone))
    if local.time() == datetime.min.time():
        return local - timedelta(seconds=1)
    return local


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


#: The language of the pages' own words ("first seen", "also in", "Topics"): the page's
#: `lang`. Feed text in another language is marked as such where it is shown (`_lang_attr`).
PAGE_LANGUAGE = "en"


@pass_context
def _lang_attr(context: Context, text: str, declared: str | None = None) -> Markup:
    """The ` lang="…"` attribute of an element showing feed text: its `declared` language,
    else the one the text reads as (`detect_language`: a Chinese feed name, topic or
    headline of no declared language); nothing for the page's own language or when
    unknown. A screen reader then speaks the text in its language and the page's words
    around it in English, and `:lang()` picks its fonts. Han characters alone read as
    Chinese: on a page whose articles are mostly Japanese (`content_lang`), as Japanese
    (日本経済新聞, 経済)."""
    language = declared or _detected_language(text)
    if language and not declared and language.startswith("zh"):
        content = context.get("content_lang")
        if content == "ja":
            language = "ja"
    if not language or base_language(language) == PAGE_LANGUAGE:  # en-US, en-GB: the page's
        return Markup("")
    return Markup(' lang="{}"').format(language)


def content_language(digest: Digest) -> str | None:
    """The language most of the digest's articles are in, without its region or script
    (None: none is known): what a text of its page that reads as Chinese may be instead
    (`_lang_attr`)."""
    languages = Counter(
        base_language(article.language)
        for topic in digest.topics
        for story in topic.stories
        for article in story.articles
        if article.language
    )
    return languages.most_common(1)[0][0] if languages else None


@lru_cache(maxsize=4096)
def _detected_language(text: str) -> str | None:
    return detect_language(text)


def _shown(value: Any) -> Any:
    """What a template shows of a value: a string without direction controls (`finalize`).

    Markup (a macro's output, an escaped snippet) is left as it is: its strings were shown
    through here already, and a plain string made of it would be escaped again.
    """
    if isinstance(value, str) and not isinstance(value, Markup):
        return _DIRECTION_CONTROL.sub("", value)
    return value


def one_line(value: str) -> str:
    """A feed string on one line, without control characters (text format, email headers).

    Args:
        value: Any text from a feed.

    Returns:
        The text with control characters removed and every whitespace run one space.
    """
    return " ".join(_CONTROL.sub("", value).split())


def _wrap(value: str, width: int = TEXT_WIDTH, indent: str = "") -> str:
    """Text-format filter: fill lines to `width` display columns.

    Latin text breaks at spaces; Chinese and Japanese text breaks between characters
    (never before closing punctuation such as ，。」). Long URLs stay whole.
    """
    tokens: list[tuple[str, bool]] = []  # (token, preceded by a space)
    word, space = "", False
    for ch in one_line(value):
        if ch == " " or is_cjk(ch):
            if word:
                tokens.append((word, space))
                word, space = "", False
            if ch == " ":
                space = True
            else:
                tokens.append((ch, space))
                space = False
        else:
            word += ch
    if word:
        tokens.append((word, space))
    return _fill(tokens, width, indent)


def _fill(
    tokens: Sequence[tuple[str, bool]], width: int, indent: str, hang: str | None = None
) -> str:
    """`tokens` ((token, preceded by a space)) laid in lines of `width` display columns at
    most, broken between tokens but never before closing punctuation; the first line
    indented by `indent`, the others by `hang` (default: `indent`)."""
    hang = indent if hang is None else hang
    lines: list[str] = []
    line, used, prefix = "", 0, indent
    for token, spaced in tokens:
        w = display_width(token)
        gap = 1 if spaced and line else 0
        limit = max(width - display_width(prefix), 10)
        if line and used + gap + w > limit and token not in _NO_LINE_START:
            lines.append(prefix + line)
            line, used, gap, prefix = "", 0, 0, hang
        line += " " * gap + token
        used += gap + w
    if line:
        lines.append(prefix + line)
    return "\n".join(lines)


def _wrap_names(
    names: Sequence[str], lead: str, indent: str, hang: str | None = None, width: int = TEXT_WIDTH
) -> str:
    """Text-format filter: `lead` then the names, comma-separated, filling lines to `width`
    display columns without breaking a name (a feed's name often holds spaces); the first
    line indented by `indent`, the others by `hang` (default: `indent`)."""
    items = [one_line(name) for name in names]
    tokens = [(lead.rstrip(), False)] + [
        (name + ("," if i < len(items) - 1 else ""), True) for i, name in enumerate(items)
    ]
    return _fill(tokens, width, indent, hang)


@pass_context
def _localtime_filter(context: Context, value: datetime) -> str:
    return format_localtime(value, context["timezone"])


@pass_context
def _isotime_filter(context: Context, value: datetime) -> str:
    return _aware(value).astimezone(ZoneInfo(context["timezone"])).isoformat()


@pass_context
def _window_end_filter(context: Context, value: datetime) -> datetime:
    return window_end(value, context["timezone"])


@pass_context
def _localdate_filter(context: Context, value: datetime) -> str:
    return f"{_aware(value).astimezone(ZoneInfo(context['timezone'])):%Y-%m-%d}"


@cache
def environment() -> Environment:
    """The templates' Jinja2 environment (autoescaping HTML and XML), with our filters."""
    env = Environment(
        loader=PackageLoader("aggregator", "templates"),
        # Escape everything except templates explicitly named as plain text.
        autoescape=select_autoescape(
            enabled_extensions=("html.j2", "xml.j2", "html"),
            disabled_extensions=("txt.j2",),
            default_for_string=True,
            default=True,
        ),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        finalize=_shown,
    )
    env.filters["localtime"] = _localtime_filter
    env.filters["localdate"] = _localdate_filter
    env.filters["window_end"] = _window_end_filter
    env.filters["isotime"] = _isotime_filter
    env.filters["safe_url"] = safe_url
    env.filters["oneline"] = one_line
    env.filters["wrap"] = _wrap
    env.filters["wrap_names"] = _wrap_names
    env.filters["xmltext"] = _xml_text
    env.filters["lang"] = _lang_attr
    return env


@lru_cache(maxsize=MEMO_TEASERS)
def _teaser(text: str, summary: str) -> str:
    return summarize(text) or summarize(summary)


def _story_view(story: Story, anchor: str, digest: Digest) -> StoryView:
    lead = story.articles[0]
    copies = tuple(copy for article in story.articles for copy in article.copies)
    # One line an article: a wire report twenty feeds carried is one line naming them, not
    # twenty lines of one headline hiding the story's other reports.
    lines = tuple(_article_line(article, digest) for article in story.articles if article.copies)
    # The primary copy's clean text makes the teaser; the feed's own summary is the fallback
    # (it is often cut mid-sentence, or is the text's first paragraph anyway).
    text = lead.copies[0].text if lead.copies else ""
    return StoryView(
        story=story,
        lead=lead,
        anchor=anchor,
        summary=_teaser(text, lead.summary),
        shown=lines[:VISIBLE_ARTICLES],
        folded=lines[VISIBLE_ARTICLES:],
        source_count=len({copy.feed_name for copy in copies}),
    )


def _article_line(article: Article, digest: Digest) -> ArticleLine:
    """The article's primary copy, and one copy of each other feed that carried it (and
    which of them arrived late)."""
    shown, *others = article.copies
    also: dict[str, Entry] = {}
    for copy in others:
        if copy.feed_name != shown.feed_name:
            also.setdefault(copy.feed_name, copy)
    also_in = tuple(also.values())
    late = frozenset(copy.id for copy in (shown, *also_in) if digest.arrived_late(copy))
    return ArticleLine(shown, also_in, late)


def date_label(digest: Digest) -> str:
    """The digest's days as its title shows them: ``2025-02-10`` or ``2025-02-10 – 2025-02-12``.

    Args:
        digest: The digest; its window ends at midnight after its last day.

    Returns:
        The first day, and the last one when the window spans several days.
    """
    tz = ZoneInfo(digest.timezone)
    first = _aware(digest.since).astimezone(tz)
    last = _aware(digest.until).astimezone(tz)
    # `until` is exclusive: a window ending at midnight ends on the day before.
    last_day = (last - timedelta(microseconds=1)).date() if last > first else first.date()
    if last_day == first.date():
        return f"{first.date():%Y-%m-%d}"
    return f"{first.date():%Y-%m-%d} – {last_day:%Y-%m-%d}"


def _render_template(
    name: str,
    digest: Digest,
    *,
    web_url: str | None = None,
    archive_url: str | None = None,
    feed_url: str | None = None,
) -> str:
    topics, counts = digest_views(digest)
    label = date_label(digest)
    template = environment().get_template(name)
    return template.render(
        digest=digest,
        timezone=digest.timezone,
        topics=topics,
        counts=counts,
        lang=PAGE_LANGUAGE,
        content_lang=content_language(digest),
        date_label=label,
        daily=" – " not in label,
        web_url=web_url,
        archive_url=archive_url,
        feed_url=feed_url,
    )


def digest_views(digest: Digest) -> tuple[list[TopicView], Counts]:
    """A digest's sections as the templates show them (each story numbered, its articles
    folded after VISIBLE_ARTICLES), and the header's counts."""
    anchors = anchor_ids([topic.name for topic in digest.topics])
    topics = []
    number = 0
    # Where each story is shown, by identity: a section's "also" lists the same objects.
    placed: dict[int, tuple[str, str]] = {}
    for topic, anchor in zip(digest.topics, anchors, strict=True):
        views = []
        for story in topic.stories:
            if story.articles:
                number += 1
                views.append(_story_view(story, f"story-{number}", digest))
                placed[id(story)] = (f"story-{number}", topic.name)
        topics.append(TopicView(name=topic.name, anchor=anchor, stories=tuple(views)))
    topics = [
        view._replace(
            also=tuple(
                AlsoView(story.headline, *placed[id(story)])
                for story in topic.also
                if id(story) in placed
            )
        )
        for view, topic in zip(topics, digest.topics, strict=True)
    ]
    return topics, digest_counts(digest)


def digest_counts(digest: Digest) -> Counts:
    """The header's counts: the digest's stories, their articles and sources, new feeds."""
    stories = [story for topic in digest.topics for story in topic.stories]
    return Counts(
        stories=len(stories),
        articles=sum(len(story.articles) for story in stories),
        sources=len(
            {copy.feed_name for story in stories for a in story.articles for copy in a.copies}
        ),
        new_feeds=len(digest.new_feeds),
    )


def render_index(items: Sequence[ArchivedDigest], *, generated_at: datetime, timezone: str) -> str:
    """The archive's index.html: every digest, newest first, with links to each format.

    Args:
        items: The digests, in display order (see archive.scan_archive).
        generated_at: When the index is written.
        timezone: The digest timezone, for displayed times.

    Returns:
        A standalone HTML page.
    """
    template = environment().get_template("index.html.j2")
    return template.render(items=list(items), generated_at=generated_at, timezone=timezone)


def render_feed(
    items: Sequence[ArchivedDigest],
    *,
    feed_id: str,
    updated: datetime,
    timezone: str,
    base_url: str | None = None,
) -> str:
    """The archive's Atom feed (feed.xml): one entry per digest, the newest first.

    Links are relative to the digest folder; with `base_url` they resolve against it
    (``xml:base``), so a feed reader can open them.

    Args:
        items: The digests, newest first; at most FEED_ENTRIES are included.
        feed_id: A stable, unique IRI for the feed; each entry's id is derived from it.
        updated: The feed's update time when it holds no dated digest.
        timezone: The digest timezone, for the times written.
        base_url: The public URL of the digest folder, if it is published.

    Returns:
        An Atom 1.0 document.
    """
    shown = list(items)[:FEED_ENTRIES]
    stamps = [item.generated_at for item in shown if item.generated_at is not None]

    def entry_id(item: ArchivedDigest) -> str:
        # Stable per feed and digest name, so a rewritten digest updates its entry.
        return uuid.uuid5(uuid.NAMESPACE_URL, f"{feed_id}#{item.name}").urn

    template = environment().get_template("feed.xml.j2")
    return template.render(
        items=shown,
        entry_id=entry_id,
        media_types=_MEDIA_TYPES,
        feed_id=feed_id,
        updated=max(stamps, default=updated),
        fallback_updated=updated,
        timezone=timezone,
        base_url=safe_url(base_url),
    )


def _xml_text(value: object) -> str:
    """Feed strings without the characters XML cannot carry."""
    return _NOT_XML.sub("", str(value))
