"""RSS, Atom and RDF: their bytes read by fastfeed or feedparser, their entries as EntryData.

This is the only module that imports feedparser; its errors and warnings are translated
or silenced here. Entries come as feedparser's dicts (fastfeed gives the same shape).
"""

from __future__ import annotations

import codecs
import io
import re
import warnings
from datetime import datetime, tzinfo
from typing import Any

import feedparser

from aggregator import dates
from aggregator.exceptions import HtmlPageError, ParseError
from aggregator.grammar import counted
from aggregator.sources import fastfeed
from aggregator.sources.charset import decode, http_charset
from aggregator.sources.discover import find_feed_links
from aggregator.sources.entries import bounded, distinct_guids, entry_guid
from aggregator.sources.excerpt import excerpt
from aggregator.sources.html_text import collapse_paragraphs, html_to_text
from aggregator.sources.language import detect_language, normalize_language
from aggregator.types import EntryData, ParsedFeed

__all__ = ["parse_xml_feed"]


def parse_xml_feed(
    data: bytes,
    url: str,
    *,
    content_type: str | None,
    default_tz: tzinfo | None,
    default_language: str | None,
) -> ParsedFeed:
    """Parse an RSS, Atom or RDF document into entries (see `parse.parse_feed`).

    fastfeed reads the common case (~10x faster); feedparser, handed the bytes as a
    stream so that it never fetches anything, reads the rest.

    Raises:
        HtmlPageError: The bytes are an HTML page; it carries the feeds the page links to.
        ParseError: The bytes are not a feed at all.
    """
    data, content_type, charset_warning = _as_utf8(data, content_type, default_language)
    fast = fastfeed.read(data, content_type)  # the common case, ~10x faster (see fastfeed)
    if fast is not None:
        feed_info = fast[0]
        rss = feed_info["version"] == "rss"
        entries_raw = [_as_feedparser_would(raw, rss) for raw in fast[1] if _has_content(raw)]
        bozo = ""
    else:
        feed_info, entries_raw, bozo = _feedparser_read(data, url, content_type)
    feed_language = normalize_language(_str(_get(feed_info, "language")))
    warnings_out = [charset_warning] if charset_warning else []
    if bozo:
        kept = counted(len(entries_raw), "recovered entry")
        warnings_out.append(f"malformed feed, kept {kept}: {bozo}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        entries = [
            _entry_from_feedparser(raw, feed_language, default_tz, default_language)
            for raw in entries_raw
        ]
    title = _plain(_get(feed_info, "title_detail"), _str(_get(feed_info, "title"))) or None
    ttl = _str(_get(feed_info, "ttl")).strip()
    entries, guid_warning = distinct_guids([bounded(e) for e in entries])
    if guid_warning:
        warnings_out.append(guid_warning)
    return ParsedFeed(
        title=title,
        entries=entries,
        warnings=warnings_out,
        ttl_minutes=int(ttl) if ttl.isdigit() else None,
    )


_XML_ENCODING = re.compile(r"""^(\s*<\?xml[^>]*?\bencoding\s*=\s*)(["'])([^"']*)\2""")
_XML_ENCODING_BYTES = re.compile(rb"""^\s*<\?xml[^>]*?\bencoding\s*=\s*["']([^"']*)["']""")
_XML_LANGUAGE = re.compile(rb"""(?:<language>\s*|\bxml:lang\s*=\s*["'])([A-Za-z]{2,3})\b""")


def _as_utf8(
    data: bytes, content_type: str | None, language: str | None = None
) -> tuple[bytes, str | None, str | None]:
    """An XML document as UTF-8 bytes saying so, its Content-Type to match, and a warning.

    The parsers would otherwise decode it themselves, and feedparser falls back to
    windows-1252 for the whole document when its declared charset does not fit.
    """
    head = data[:512]
    declared = _XML_ENCODING_BYTES.match(head)
    labels = [
        http_charset(content_type),
        # UTF-16 without a byte-order mark, told by how "<?" is written (XML 1.0, F.1)
        "utf-16-le" if head.startswith(b"<\x00?\x00") else None,
        "utf-16-be" if head.startswith(b"\x00<\x00?") else None,
        declared.group(1).decode("ascii", "replace") if declared else None,
    ]
    sniffed = _XML_LANGUAGE.search(data[:4096])
    if sniffed:
        language = sniffed.group(1).decode("ascii")
    decoded = decode(data, labels, language)
    plain = not data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) and (
        declared is None or declared.group(1).lower() in (b"utf-8", b"utf8")
    )
    if plain and decoded.encoding == "utf-8" and decoded.warning is None:
        return data, content_type, None  # the common case: already what the parsers read
    text = _XML_ENCODING.sub(r"\1\2utf-8\2", decoded.text, count=1)
    if content_type:
        content_type = content_type.split(";")[0].strip() + "; charset=utf-8"
    return text.encode("utf-8", "surrogatepass"), content_type, decoded.warning


def _feedparser_read(data: bytes, url: str, content_type: str | None) -> tuple[Any, list[Any], str]:
    """feedparser's reading: feed info, entries, and what was malformed ("" if nothing).

    Raises:
        HtmlPageError: The bytes are an HTML page; it carries the feeds the page links to.
        ParseError: Nothing usable could be read.
    """
    headers = {"content-type": content_type} if content_type else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            result = feedparser.parse(
                io.BytesIO(data),
                response_headers=headers,
                # We keep text only (html_to_text) and escape it on output, so feedparser's
                # sanitiser and URI resolution are pure cost: 2.3x the parse time here.
                sanitize_html=False,
                resolve_relative_uris=False,
            )
        except Exception as e:  # feedparser is meant to never raise; be sure of it
            raise ParseError(url, f"could not parse the feed: {e}") from e

    bozo = _bozo_message(result)
    # Recovery from broken XML can leave husks with nothing in them: not entries.
    entries_raw: list[Any] = [raw for raw in _get(result, "entries") or [] if _has_content(raw)]
    version = str(_get(result, "version") or "")
    if not entries_raw:
        if _looks_like_html(data, content_type) and not version:
            # As text: the bytes are UTF-8 by now (`_as_utf8`), and a page's own
            # <meta charset="gb2312"> would have them read as GB2312, losing its links.
            links = tuple(find_feed_links(data.decode("utf-8", "replace"), url))
            message = "the document is an HTML page, not a feed"
            if links:
                message += f"; the page links to {counted(len(links), 'feed')}: {', '.join(links)}"
            raise HtmlPageError(url, message, links)
        if bozo:
            raise ParseError(url, f"not a usable feed: {bozo}")
        if not version:
            raise ParseError(url, "not a feed: no RSS, Atom or RDF root element")

    return _get(result, "feed") or {}, entries_raw, bozo


def _as_feedparser_would(raw: dict[str, Any], rss: bool) -> dict[str, Any]:
    """Apply to a fastfeed entry the two guesses feedparser makes on every text it reads."""
    for key, value in raw.items():
        if isinstance(value, str):
            raw[key] = _undo_mojibake(value)
    details = [raw.get("title_detail"), raw.get("summary_detail"), *raw.get("content", [])]
    for detail in details:
        if detail is None:
            continue
        detail["value"] = _undo_mojibake(detail["value"])
        # RSS does not say whether text is HTML: feedparser guesses, and so must we.
        if rss and detail["type"] == "text/plain" and _LOOKS_LIKE_HTML(detail["value"]):
            detail["type"] = "text/html"
    return raw


_LOOKS_LIKE_HTML = feedparser.mixin._FeedParserMixin.looks_like_html


def _undo_mojibake(value: str) -> str:
    # feedparser's repair of UTF-8 that was read as Latin-1 and encoded again
    try:
        return value.encode("iso-8859-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return value


def _has_content(raw: Any) -> bool:
    return any(_get(raw, key) for key in ("id", "link", "title", "summary", "content"))


def _bozo_message(result: Any) -> str:
    if not _get(result, "bozo"):
        return ""
    exc = _get(result, "bozo_exception")
    message = str(exc).strip() if exc is not None else ""
    name = type(exc).__name__ if exc is not None else "error"
    return f"{name}: {message}" if message else name


def _looks_like_html(data: bytes, content_type: str | None) -> bool:
    if content_type and content_type.split(";")[0].strip().lower() in {"text/html"}:
        return True
    head = data[:4096].lower()
    return b"<html" in head or b"<!doctype html" in head


def _entry_from_feedparser(
    raw: Any,
    feed_language: str | None,
    default_tz: tzinfo | None,
    default_language: str | None,
) -> EntryData:
    contents: list[Any] = list(_get(raw, "content") or [])
    summary_detail: Any = _get(raw, "summary_detail")
    summary_raw = _str(_get(raw, "summary"))
    body_detail: Any = None
    if contents:
        # Some feeds put a plain-text and an HTML rendering side by side: prefer the longest.
        body_detail = max(contents, key=lambda c: len(_str(_get(c, "value"))))
    elif summary_raw:
        body_detail = summary_detail
    body = _str(_get(body_detail, "value")) if body_detail else summary_raw
    text = _plain(body_detail, body)

    if contents and summary_raw:
        # Both readers copy a lone content into the summary (as feedparser does): read it once.
        copied = summary_raw == body and _is_plain(summary_detail) == _is_plain(body_detail)
        summary = excerpt(text if copied else _plain(summary_detail, summary_raw))
    else:
        summary = excerpt(text)

    title = _plain(_get(raw, "title_detail"), _str(_get(raw, "title")))
    if not title:
        title = excerpt(text, 80)
    link = _str(_get(raw, "link")).strip() or None
    author = _str(_get(raw, "author")).strip() or None

    published = _entry_date(raw, "published", default_tz)
    updated = _entry_date(raw, "updated", default_tz)

    declared = None
    for detail in (body_detail, summary_detail, _get(raw, "title_detail")):
        if detail:
            declared = normalize_language(_str(_get(detail, "language")))
            if declared:
                break
    language = declared or feed_language or normalize_language(default_language)
    if not language:
        language = detect_language(f"{title}\n{text}")

    return EntryData(
        guid=entry_guid(_str(_get(raw, "id")), link, title, text),
        title=title,
        link=link,
        published=published or updated,
        updated=updated,
        author=author,
        summary=summary,
        text=text,
        language=language,
    )


def _get(obj: Any, key: str) -> Any:
    """A feedparser field without its key aliases (which emit DeprecationWarnings)."""
    return dict.get(obj, key) if isinstance(obj, dict) else None


def _str(value: object) -> str:
    return value if isinstance(value, str) else ""


def _plain(detail: Any, value: str) -> str:
    """Text of a feedparser text construct, whatever its declared type."""
    if _is_plain(detail) and "<" not in value:
        return collapse_paragraphs(value)
    return html_to_text(value)


def _is_plain(detail: Any) -> bool:
    return bool(detail) and _get(detail, "type") == "text/plain"


def _entry_date(raw: Any, key: str, default_tz: tzinfo | None) -> datetime | None:
    text = _str(_get(raw, key)).strip()

    def feedparser_date() -> object:
        parsed = _get(raw, f"{key}_parsed")
        if parsed is None and text:  # fastfeed gives only the string: feedparser's formats
            parsed = feedparser.datetimes._parse_date(text)
        return parsed

    return dates.entry_date(text, default_tz, feedparser_date)
