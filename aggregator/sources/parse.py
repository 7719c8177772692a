"""Turning a source's bytes into EntryData: feeds (feedparser) and HTML (BeautifulSoup).

This is the only module that imports feedparser, bs4 and charset_normalizer; their
errors and warnings are translated or silenced here.
"""

from __future__ import annotations

import codecs
import hashlib
import html.entities as html_entities
import io
import json
import re
import time
import unicodedata
import warnings
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, tzinfo
from email.utils import parsedate_to_datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import urljoin

import charset_normalizer
import feedparser
import lxml.html
from lxml import etree

from aggregator.exceptions import HtmlPageError, ParseError
from aggregator.grammar import counted
from aggregator.sources import fastfeed

if TYPE_CHECKING:
    from bs4 import BeautifulSoup
    from bs4.element import Tag
from aggregator.types import EntryData, ParsedFeed

__all__ = [
    "Decoded",
    "decode",
    "detect_language",
    "entry_guid",
    "find_feed_links",
    "html_to_text",
    "localize",
    "normalize_language",
    "parse_feed",
    "parse_json_feed",
    "summarize",
]

SUMMARY_LENGTH = 200
# Dates outside these years are typos or placeholders (0001, 9999), not publication dates.
_MIN_YEAR = 1970
_MAX_YEAR = 2100

_FEED_LINK_TYPES = frozenset(
    {
        "application/rss+xml",
        "application/atom+xml",
        "application/rdf+xml",
        "application/feed+json",
        "application/json",
    }
)
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
_SENTENCE_ENDS = "。！？!?…"  # and "." before a space
_CLOSERS = "”’\"'」』）)】"
_CJK_BEFORE_BREAK = re.compile(r"(?<=[\u2e80-\u9fff\uf900-\ufaff\uff00-\uffef])[ \t]*\n\s*")


def parse_feed(
    data: bytes,
    url: str,
    *,
    content_type: str | None = None,
    default_tz: tzinfo | None = None,
    default_language: str | None = None,
) -> ParsedFeed:
    """Parse an RSS, Atom or RDF document into entries.

    The bytes are handed to feedparser as a stream, so it never fetches anything.

    Each entry's `guid` is, in order of preference: the entry's id/guid, its link,
    or ``"sha1:"`` + the SHA-1 of its title and text (see `entry_guid`). `published` is
    timezone-aware: the entry's published date, else its updated date; a date written
    without a timezone is read in `default_tz` (UTC when that is None); dates that cannot
    be parsed, or whose year is before 1970 or after 2100, become None. `language` is the
    entry's or the feed's declared language, else `default_language`, else a guess by
    `detect_language`.

    A feed that is malformed but from which entries were recovered is returned with a
    warning saying what was wrong.

    Args:
        data: The document's bytes, undecoded (the XML declaration names the encoding).
        url: Where the bytes came from; used in errors only.
        content_type: The HTTP Content-Type header, if any (its charset is honoured).
        default_tz: Timezone for dates written without one.
        default_language: Language when neither the entry nor the feed declares one.

    Returns:
        The feed's title, its entries in document order, and warnings.

    A JSON Feed (1.0 or 1.1, recognised by its Content-Type or its shape) is read by
    `parse_json_feed`. The feed's ``<ttl>`` (minutes) is returned as `ttl`.

    Raises:
        HtmlPageError: The bytes are an HTML page; it carries the feeds the page links to.
        ParseError: The bytes are empty or not a feed at all.
    """
    if not data.strip():
        raise ParseError(url, "the document is empty")
    if _looks_like_json(data, content_type):
        return parse_json_feed(
            data,
            url,
            content_type=content_type,
            default_tz=default_tz,
            default_language=default_language,
        )
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


def distinct_guids(entries: list[EntryData]) -> tuple[list[EntryData], str | None]:
    """Entries whose guids tell apart the items a broken feed gave one guid.

    Some CMS templates give every item the same guid. Items sharing a guid but not
    their link and title get a guid of their own: their link when no other item of
    that group has it, else ``"sha1:"`` + the SHA-1 of the guid, title and date. The
    result depends on the document only, so polling it again finds the same guids.
    Items that repeat one another (same guid, link and title) are left alone: they
    are one entry.

    Args:
        entries: One document's entries.

    Returns:
        The entries, and a warning when some guids were replaced (else None).
    """
    groups: dict[str, list[EntryData]] = {}
    for entry in entries:
        groups.setdefault(entry.guid, []).append(entry)
    shared = {
        guid: Counter(e.link for e in group)
        for guid, group in groups.items()
        if len({(e.link, e.title) for e in group}) > 1
    }
    if not shared:
        return entries, None
    taken = set(groups) - set(shared)
    out: list[EntryData] = []
    for entry in entries:
        links = shared.get(entry.guid)
        if links is None:
            out.append(entry)
            continue
        guid = entry.link or ""
        if not guid or links[guid] > 1 or guid in taken:
            date = entry.published.isoformat() if entry.published else ""
            key = f"{entry.guid}\n{entry.title}\n{date}"
            guid = "sha1:" + hashlib.sha1(key.encode("utf-8", "surrogatepass")).hexdigest()
        out.append(replace(entry, guid=guid))
    count = sum(len(groups[g]) for g in shared)
    example = next(iter(shared))
    warning = (
        f"{count} entries share {counted(len(shared), 'guid')} (e.g. {example!r}); "
        "told apart by their link, else their title and date"
    )
    return out, warning


# --- JSON Feed ---------------------------------------------------------------------------

_JSON_TYPES = frozenset({"application/feed+json", "application/json"})


def _looks_like_json(data: bytes, content_type: str | None) -> bool:
    kind = (content_type or "").split(";")[0].strip().lower()
    if kind in _JSON_TYPES:
        return True
    head = data[:512].lstrip(b"\xef\xbb\xbf \t\r\n")
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
    decoded = decode(data, [_http_charset(content_type)], default_language)
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
        text = html_to_text(html) if html else _collapse_paragraphs(_str(item.get("content_text")))
        summary_raw = _str(item.get("summary"))
        summary = summarize(html_to_text(summary_raw) if summary_raw else text)
        title = html_to_text(_str(item.get("title"))) or summarize(text, 80)
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


# --- Decoding ----------------------------------------------------------------------------

_BOMS = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
# Labels naming a subset of what such documents really hold, read as browsers read them.
_SUPERSETS = {"gb2312": "gb18030", "gbk": "gb18030"}
_XML_ENCODING = re.compile(r"""^(\s*<\?xml[^>]*?\bencoding\s*=\s*)(["'])([^"']*)\2""")
_XML_ENCODING_BYTES = re.compile(rb"""^\s*<\?xml[^>]*?\bencoding\s*=\s*["']([^"']*)["']""")
_XML_LANGUAGE = re.compile(rb"""(?:<language>\s*|\bxml:lang\s*=\s*["'])([A-Za-z]{2,3})\b""")
# UTF-8 with this many valid non-ASCII characters per undecodable sequence, or more, is
# UTF-8 with stray bytes (a Latin-1 byte pasted in), not a document in another encoding.
_MOSTLY_UTF8 = 10


class Decoded(NamedTuple):
    """A document's text, the encoding it was read in, and what was wrong, if anything."""

    text: str
    encoding: str
    warning: str | None


def decode(data: bytes, declared: Sequence[str | None], language: str | None = None) -> Decoded:
    """Decode a document as browsers do, never failing.

    A byte-order mark wins. Then each declared charset (e.g. the HTTP header's, then
    the document's own) is tried strictly, then UTF-8. When none fits the bytes, a
    document that is mostly valid UTF-8 is read as UTF-8 with its stray bytes replaced
    (so one Latin-1 byte does not turn all its Chinese into mojibake); any other is
    read in the encoding charset-normalizer detects.

    Args:
        data: The document's bytes.
        declared: Charset labels in order of precedence; None and unknown labels are
            skipped.
        language: The document's language if known (e.g. "zh-CN"): it decides between
            encodings that fit the bytes equally well, as GBK and EUC-KR do for a short
            Chinese title.

    Returns:
        The text, the encoding used, and a warning when no declared charset fitted
        (or a label was unknown), else None.
    """
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            body = data[len(bom) :]
            try:
                return Decoded(body.decode(encoding), encoding, None)
            except UnicodeDecodeError as e:
                warning = (
                    f"not {encoding} despite its byte-order mark ({e.reason} at byte "
                    f"{e.start}): undecodable bytes replaced"
                )
                return Decoded(body.decode(encoding, errors="replace"), encoding, warning)
    problems: list[str] = []
    candidates: list[str] = []
    for label in declared:
        if not label or not label.strip():
            continue
        try:
            name = codecs.lookup(label.strip()).name
        except LookupError:
            problems.append(f"unknown charset {label.strip()!r}")
            continue
        if name.startswith(("utf-16", "utf-32")) and b"\x00" not in data[:4]:
            continue  # a label left from a UTF-16 original: browsers read such bytes as UTF-8
        if name not in candidates:
            candidates.append(name)
    for name in candidates if "utf-8" in candidates else [*candidates, "utf-8"]:
        try:
            text = data.decode(_SUPERSETS.get(name, name))
        except UnicodeDecodeError:
            if name in candidates:
                problems.append(f"the bytes are not {name}")
            continue
        return Decoded(text, name, _charset_warning(problems, name) if problems else None)
    problems = problems or ["the bytes are not utf-8"]
    text = data.decode("utf-8", errors="replace")
    replaced = text.count("\ufffd") - data.count(b"\xef\xbf\xbd")
    valid = len(text) - len(text.encode("ascii", "ignore")) - text.count("\ufffd")
    best = None if valid >= _MOSTLY_UTF8 * replaced else _detect(data, language)
    if best is None:
        how = f"utf-8, {counted(replaced, 'undecodable byte sequence')} replaced"
        return Decoded(text, "utf-8", _charset_warning(problems, how))
    how = f"{best.encoding} (detected)"
    return Decoded(str(best), best.encoding, _charset_warning(problems, how))


_DETECTED_LANGUAGES = {"zh": "Chinese", "ja": "Japanese", "ko": "Korean"}
# Between encodings that fit a short text equally well (cp1250 and cp1252 for "Café", GBK
# and EUC-KR for a Chinese title), the one more of the web and of our feeds is written in.
_COMMON = ("utf_8", "cp1252", "gb18030", "big5", "cp932", "shift_jis", "cp949", "euc_kr")


def _detect(data: bytes, language: str | None) -> charset_normalizer.CharsetMatch | None:
    """charset-normalizer's best match; among equally good ones, one in `language`."""
    matches = list(charset_normalizer.from_bytes(data))
    if not matches:
        return None
    wanted = _DETECTED_LANGUAGES.get((language or "").split("-")[0].lower())
    ties = [m for m in matches if m.chaos <= matches[0].chaos + 0.01]
    return min(
        ties,
        key=lambda m: (
            m.language != wanted if wanted else False,
            _COMMON.index(m.encoding) if m.encoding in _COMMON else len(_COMMON),
        ),
    )


def _charset_warning(problems: list[str], how: str) -> str:
    return f"wrong charset ({'; '.join(problems)}): read as {how}"


def _http_charset(content_type: str | None) -> str | None:
    for param in (content_type or "").split(";")[1:]:
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset":
            return value.strip().strip("\"'") or None
    return None


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
        _http_charset(content_type),
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
    try:
        parsed = _parse_date_string(value.strip())
        if parsed is None:
            return None
        parsed = localize(parsed, default_tz)
    except (ValueError, OverflowError):
        return None
    return parsed if _MIN_YEAR <= parsed.year <= _MAX_YEAR else None


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
            links = tuple(find_feed_links(data, url))
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
        summary = summarize(text if copied else _plain(summary_detail, summary_raw))
    else:
        summary = summarize(text)

    title = _plain(_get(raw, "title_detail"), _str(_get(raw, "title")))
    if not title:
        title = summarize(text, 80)
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


_HTTP_URL = re.compile(r"^https?://[^\s/?#]+", re.IGNORECASE)
# What one entry may weigh: a feed can send a 10 MB title, nobody reads one.
MAX_TITLE = 1_000
MAX_SUMMARY = 2_000
MAX_TEXT = 500_000
MAX_FIELD = 4_000  # links, guids, authors


def bounded(entry: EntryData) -> EntryData:
    """The entry made safe to store and show.

    Every field is cut to a sane length (an over-long guid is hashed, so that it stays
    unique and stable), and a link that is not an absolute http(s) URL (``javascript:``,
    ``data:``, a bare guid that feedparser took for a link) is dropped.
    """

    def cut(value: str, limit: int) -> str:
        return value if len(value) <= limit else value[: limit - 1].rstrip() + "…"

    guid = entry.guid
    if len(guid) > MAX_FIELD:
        guid = "sha1:" + hashlib.sha1(guid.encode("utf-8", "surrogatepass")).hexdigest()
    link = entry.link
    if link is not None and (len(link) > MAX_FIELD or not _HTTP_URL.match(link)):
        link = None
    author = None if entry.author is None else cut(entry.author, MAX_FIELD)
    changed = (
        guid != entry.guid
        or link != entry.link
        or author != entry.author
        or len(entry.title) > MAX_TITLE
        or len(entry.summary) > MAX_SUMMARY
        or len(entry.text) > MAX_TEXT
    )
    if not changed:
        return entry
    return replace(
        entry,
        guid=guid,
        link=link,
        author=author,
        title=cut(entry.title, MAX_TITLE),
        summary=cut(entry.summary, MAX_SUMMARY),
        text=cut(entry.text, MAX_TEXT),
    )


def entry_guid(declared: str | None, link: str | None, title: str, text: str) -> str:
    """The identity of an entry within its feed.

    Args:
        declared: The id/guid the source gave, if any.
        link: The entry's link, if any.
        title: The entry's title.
        text: The entry's plain text.

    Returns:
        `declared` if not blank, else `link`, else ``"sha1:"`` + the hex SHA-1 of
        title, a newline, and text.
    """
    if declared and declared.strip():
        return declared.strip()
    if link and link.strip():
        return link.strip()
    digest = hashlib.sha1(f"{title}\n{text}".encode()).hexdigest()
    return f"sha1:{digest}"


def _get(obj: Any, key: str) -> Any:
    """A feedparser field without its key aliases (which emit DeprecationWarnings)."""
    return dict.get(obj, key) if isinstance(obj, dict) else None


def _str(value: object) -> str:
    return value if isinstance(value, str) else ""


def _plain(detail: Any, value: str) -> str:
    """Text of a feedparser text construct, whatever its declared type."""
    if _is_plain(detail) and "<" not in value:
        return _collapse_paragraphs(value)
    return html_to_text(value)


def _is_plain(detail: Any) -> bool:
    return bool(detail) and _get(detail, "type") == "text/plain"


def _entry_date(raw: Any, key: str, default_tz: tzinfo | None) -> datetime | None:
    text = _str(_get(raw, key)).strip()
    try:
        value = _parse_date_string(text)
        if value is None:
            parsed = _get(raw, f"{key}_parsed")
            if parsed is None and text:  # fastfeed gives only the string: feedparser's formats
                parsed = feedparser.datetimes._parse_date(text)
            if not isinstance(parsed, time.struct_time):
                return None
            # feedparser reads every date as UTC, also those written without a zone.
            value = datetime(*parsed[:6])
            if _has_timezone(text):
                value = value.replace(tzinfo=UTC)
        value = localize(value, default_tz)
    except (ValueError, OverflowError):
        return None
    if not _MIN_YEAR <= value.year <= _MAX_YEAR:
        return None
    return value


def _parse_date_string(text: str) -> datetime | None:
    """ISO 8601 or RFC 822 dates, naive when written without a zone; else None."""
    if not text:
        return None
    try:
        return datetime.fromisoformat(re.sub(r"[zZ]$", "+00:00", text))
    except ValueError:
        pass
    try:
        value = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if value.tzinfo is None and text.rstrip().endswith("-0000"):
        value = value.replace(tzinfo=UTC)  # "-0000" is UTC (with no claim about local time)
    return value


_TZ_SUFFIX = re.compile(r"(?:\b(?:Z|[A-Z]{1,5})|[+-]\d{2}:?\d{2})\s*$")


def _has_timezone(raw: str) -> bool:
    return bool(_TZ_SUFFIX.search(raw.strip()))


def localize(value: datetime, default_tz: tzinfo | None) -> datetime:
    """Make a datetime timezone-aware.

    Args:
        value: A naive or aware datetime.
        default_tz: The zone of a naive `value`; UTC when None.

    Returns:
        `value` unchanged if aware, else `value` in `default_tz`.
    """
    if value.tzinfo is not None and value.utcoffset() is not None:
        return value
    return value.replace(tzinfo=default_tz or UTC)


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
            return _collapse_paragraphs(html)
        simple = _simple_markup_text(html)
        if simple is not None:
            return simple
    return _tree_text(html)


def _tree_text(html: str) -> str:
    """html_to_text by lxml, or by BeautifulSoup for markup lxml refuses."""
    html = _CONTROL_CHARS.sub("", html).replace(_BREAK, "")
    if "<" not in html and "&" not in html:
        return _collapse_paragraphs(html)
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
    soup = _soup(html)
    for img in soup.find_all("img"):
        _drop_caption_after(img)
    for tag in soup.find_all(_DROP_TAGS):
        tag.decompose()
    for br in soup.find_all("br"):
        br.replace_with(_BREAK)
    for block in soup.find_all(_BLOCK_TAGS):
        block.insert_before(_BREAK)
        block.append(_BREAK)
    return str(soup.get_text())


def _soup(markup: str | bytes) -> BeautifulSoup:
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


def _collapse_paragraphs(text: str) -> str:
    text = _CONTROL_CHARS.sub(" ", text)
    return _join_paragraphs(re.split(r"\n\s*\n", text.replace("\r\n", "\n").replace("\r", "\n")))


def _join_paragraphs(parts: Iterable[str]) -> str:
    # map and filter: no Python frame per paragraph (a body has dozens, many empty)
    return "\n\n".join(filter(None, map(" ".join, map(str.split, parts))))


def summarize(text: str, limit: int = SUMMARY_LENGTH) -> str:
    """A short plain-text summary: the start of `text`, cut at a sentence end if possible.

    Args:
        text: Plain text (paragraphs are joined with a space).
        limit: The most characters to keep (an ellipsis may be added).

    Returns:
        At most `limit` characters (plus "…" when cut mid-sentence).
    """
    # The flattened start of a text is the start of the flattened text: once it is longer
    # than the limit, the rest of the text cannot change the summary.
    flat = _flatten(text[: 4 * limit])
    if len(flat) <= limit and len(text) > 4 * limit:
        flat = _flatten(text)
    if len(flat) <= limit:
        return flat
    best = _sentence_end(flat[: limit + 1], limit)
    if best >= limit * 0.4:
        return flat[:best]
    space = flat.rfind(" ", 0, limit)
    if space >= limit * 0.6:
        return flat[:space].rstrip() + "…"
    return flat[:limit].rstrip() + "…"


def _flatten(text: str) -> str:
    # Chinese and Japanese paragraphs join without a space; others with one.
    return " ".join(_CJK_BEFORE_BREAK.sub("", text).split())


def _sentence_end(cut: str, limit: int) -> int:
    """Where the last sentence ending before `limit` ends, its closing quotes included; or -1.

    A "." ends a sentence before a space only (`cut` holds the character after `limit`).
    """
    end = max(cut.rfind(". ", 0, limit + 1), *(cut.rfind(c, 0, limit) for c in _SENTENCE_ENDS))
    if end < 0:
        return -1
    end += 1
    while end < limit and cut[end] in _CLOSERS:
        end += 1
    return end


def find_feed_links(html: bytes | str, base_url: str) -> list[str]:
    """Feed URLs a page advertises with ``<link rel="alternate" type="...">``.

    Recognised types: RSS, Atom, RDF and JSON Feed. A ``<base href>`` is honoured.

    Args:
        html: The page's markup.
        base_url: The page's URL, to make relative links absolute.

    Returns:
        Absolute feed URLs in document order, without duplicates.
    """
    from bs4.element import Tag

    soup = _soup(html)
    base = base_url
    base_tag = soup.find("base", href=True)
    if isinstance(base_tag, Tag):
        base = urljoin(base_url, str(base_tag["href"]).strip())
    found: list[str] = []
    for link in soup.find_all("link", href=True):
        rel: Any = link.get("rel") or []
        rels: list[str] = [rel] if isinstance(rel, str) else [str(r) for r in rel]
        if "alternate" not in (r.lower() for r in rels):
            continue
        kind = str(link.get("type") or "").split(";")[0].strip().lower()
        if kind not in _FEED_LINK_TYPES:
            continue
        url = urljoin(base, str(link["href"]).strip())
        if url not in found:
            found.append(url)
    return found


def normalize_language(tag: str | None) -> str | None:
    """Canonical casing for a language tag: "zh-cn" -> "zh-CN", "ZH_hant" -> "zh-Hant".

    Args:
        tag: A BCP 47-ish language tag, or None.

    Returns:
        The tag with subtags cased as BCP 47 recommends, or None if blank.
    """
    if not tag or not tag.strip():
        return None
    parts = [p for p in re.split(r"[-_]", tag.strip()) if p]
    out = [parts[0].lower()]
    for part in parts[1:]:
        if len(part) == 4 and part.isalpha():
            out.append(part.title())
        elif len(part) in (2, 3):
            out.append(part.upper())
        else:
            out.append(part.lower())
    return "-".join(out)


@lru_cache(maxsize=1)
def _t2s() -> Any:
    import opencc  # building the converter loads dictionaries: do it once, on first use

    return opencc.OpenCC("t2s")


_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_KANA = re.compile(r"[\u3040-\u30ff\u31f0-\u31ff]")
_HANGUL = re.compile(r"[\u1100-\u11ff\u3130-\u318f\uac00-\ud7af]")
_LATIN = re.compile(r"[A-Za-z\u00c0-\u024f]")
_SAMPLE = 3000  # characters looked at: enough to decide, cheap on long articles


def detect_language(text: str) -> str | None:
    """Guess a text's language, cheaply, among those this project meets.

    Chinese is told apart as Traditional or Simplified by converting it with OpenCC
    (Traditional to Simplified): if that changes a meaningful share of the Han
    characters, the text is Traditional.

    Args:
        text: Plain text.

    Returns:
        "zh-Hans", "zh-Hant", "ja", "ko", "en" (for mostly Latin-script text), or None
        when there is too little to go by.
    """
    sample = unicodedata.normalize("NFC", text[:_SAMPLE])
    han = _HAN.findall(sample)
    kana = len(_KANA.findall(sample))
    hangul = len(_HANGUL.findall(sample))
    latin = len(_LATIN.findall(sample))
    total = len(han) + kana + hangul + latin
    if total < 2:
        return None
    if kana and kana >= 0.15 * (kana + len(han)) and kana + len(han) >= 0.3 * total:
        return "ja"
    if hangul >= 0.3 * total and hangul >= len(han):
        return "ko"
    if len(han) >= 0.3 * total:
        chars = "".join(han)
        converted = _t2s().convert(chars)
        if not isinstance(converted, str) or len(converted) != len(chars):
            changed = sum(1 for c in chars if c not in converted)
        else:
            changed = sum(1 for a, b in zip(chars, converted, strict=True) if a != b)
        return "zh-Hant" if changed >= max(1, 0.05 * len(chars)) else "zh-Hans"
    if latin >= 0.6 * total and latin >= 3:
        return "en"
    return None
