"""JSON Feed (https://jsonfeed.org, versions 1.0 and 1.1): recognising one and reading its items."""

from __future__ import annotations

import json
from datetime import datetime, tzinfo
from typing import Any
from urllib.parse import urljoin

from aggregator import dates
from aggregator.exceptions import ParseError
from aggregator.grammar import counted
from aggregator.sources.charset import decode, http_charset
from aggregator.sources.entries import bounded, distinct_guids, entry_guid
from aggregator.sources.excerpt import excerpt
from aggregator.sources.html_text import collapse_paragraphs, html_to_text
from aggregator.sources.language import detect_language, normalize_language
from aggregator.types import EntryData, ParsedFeed

__all__ = ["looks_like_json_feed", "parse_json_feed"]


_JSON_TYPES = frozenset({"application/feed+json", "application/json"})


def looks_like_json_feed(data: bytes, content_type: str | None) -> bool:
    """Whether the bytes are a JSON Feed, by their Content-Type or, without one, their shape.

    A body that starts with "<" is markup whatever its label: a server that sends its RSS
    as application/json must not fail every poll with "not valid JSON".
    """
    head = data[:512].lstrip(b"\xef\xbb\xbf \t\r\n")
    kind = (content_type or "").split(";")[0].strip().lower()
    if kind in _JSON_TYPES:
        return not head.startswith(b"<")
    return head.startswith(b"{") and b"jsonfeed.org/version" in data[:4096]


def parse_json_feed(
    data: bytes,
    url: str,
    *,
    content_type: str | None = None,
    default_tz: tzinfo | None = None,
    default_language: str | None = None,
) -> ParsedFeed:
    """Parse a JSON Feed (https://jsonfeed.org, versions 1.0 and 1.1) into entries.

    Items map as for other feeds: ``id`` (else ``url``) is the guid, ``url`` (else
    ``external_url``) the link, ``content_html`` or ``content_text`` the text,
    ``summary`` the summary, ``date_published``/``date_modified`` the dates,
    ``authors``/``author`` the author, ``language`` (1.1) the language. The bytes are
    decoded by `decode` (UTF-8 unless a BOM or the Content-Type's charset says otherwise).

    Raises:
        ParseError: The bytes are not JSON, or not a JSON Feed.
    """
    decoded = decode(data, [http_charset(content_type)], default_language)
    try:
        doc = json.loads(decoded.text)
    except ValueError as e:
        raise ParseError(url, f"not valid JSON: {e}") from e
    if not isinstance(doc, dict) or not isinstance(doc.get("items"), list):
        raise ParseError(url, "not a JSON Feed: no 'items' list")
    warnings_out = [decoded.warning] if decoded.warning else []
    version = _str(doc.get("version"))
    if "jsonfeed.org/version/" not in version:
        warnings_out.append(f"JSON Feed without a recognised version ({version or 'none'})")
    feed_language = normalize_language(_str(doc.get("language")))
    feed_author = _json_author(doc)
    entries: list[EntryData] = []
    skipped = 0
    for item in doc["items"]:
        if not isinstance(item, dict):
            skipped += 1
            continue
        html = _str(item.get("content_html"))
        text = html_to_text(html) if html else collapse_paragraphs(_str(item.get("content_text")))
        summary_raw = _str(item.get("summary"))
        summary = excerpt(html_to_text(summary_raw) if summary_raw else text)
        title = html_to_text(_str(item.get("title"))) or excerpt(text, 80)
        link = (_str(item.get("url")) or _str(item.get("external_url"))).strip() or None
        if link:
            link = urljoin(_str(doc.get("home_page_url")) or url, link)
        declared_id = item.get("id")
        guid_source = str(declared_id) if isinstance(declared_id, str | int) else None
        if not (title or text or link):
            skipped += 1
            continue
        published = _json_date(item.get("date_published"), default_tz)
        updated = _json_date(item.get("date_modified"), default_tz)
        language = (
            normalize_language(_str(item.get("language")))
            or feed_language
            or normalize_language(default_language)
            or detect_language(f"{title}\n{text}")
        )
        entries.append(
            EntryData(
                guid=entry_guid(guid_source, link, title, text),
                title=title,
                link=link,
                published=published or updated,
                updated=updated,
                author=_json_author(item) or feed_author,
                summary=summary,
                text=text,
                language=language,
            )
        )
    if skipped:
        warnings_out.append(f"skipped {counted(skipped, 'JSON Feed item')} with nothing in them")
    entries, guid_warning = distinct_guids([bounded(e) for e in entries])
    if guid_warning:
        warnings_out.append(guid_warning)
    feed_title = _str(doc.get("title")).strip() or None
    return ParsedFeed(title=feed_title, entries=entries, warnings=warnings_out)


def _json_author(obj: dict[str, Any]) -> str | None:
    authors = obj.get("authors")
    candidates = authors if isinstance(authors, list) else [obj.get("author")]
    names = [
        _str(a.get("name")).strip() for a in candidates if isinstance(a, dict) and a.get("name")
    ]
    return ", ".join(n for n in names if n) or None


def _json_date(value: object, default_tz: tzinfo | None) -> datetime | None:
    if not isinstance(value, str) or not value.strip():
        return None
    return dates.entry_date(value.strip(), default_tz)


def _str(value: object) -> str:
    return value if isinstance(value, str) else ""
