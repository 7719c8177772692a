"""A feed's bytes to a ParsedFeed: which reader reads them (JSON Feed, or RSS/Atom/RDF).

The parts of the reading live beside this module, one concern each: `charset` (decoding),
`feedxml` (feedparser, fastfeed), `jsonfeed`, `html_text` (HTML to text), `excerpt`
(summaries), `entries` (guids and bounds), `language`, `discover` (feed links of a page),
and `aggregator.dates`.
"""

from __future__ import annotations

from datetime import tzinfo

from aggregator.exceptions import ParseError
from aggregator.sources.entries import storable
from aggregator.sources.feedxml import parse_xml_feed
from aggregator.sources.jsonfeed import looks_like_json_feed, parse_json_feed
from aggregator.types import ParsedFeed

__all__ = ["parse_feed"]


def parse_feed(
    data: bytes,
    url: str,
    *,
    content_type: str | None = None,
    default_tz: tzinfo | None = None,
    default_language: str | None = None,
) -> ParsedFeed:
    """Parse a feed (RSS, Atom, RDF or JSON Feed) into entries.

    Each entry's `guid` is, in order of preference: the entry's id/guid, its link,
    or ``"sha1:"`` + the SHA-1 of its title and text (see `entries.entry_guid`). `published` is
    timezone-aware: the entry's published date, else its updated date; a date written
    without a timezone is read in `default_tz` (UTC when that is None); dates that cannot
    be parsed, or whose year is before 1970 or after 2100, become None. `language` is the
    entry's or the feed's declared language, else `default_language`, else a guess by
    `language.detect_language`.

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
    `jsonfeed.parse_json_feed`, any other document by `feedxml.parse_xml_feed` (fastfeed,
    else feedparser, which is handed the bytes as a stream so that it never fetches
    anything). The feed's ``<ttl>`` (minutes) is returned as `ttl`. Every text is
    `entries.storable` (no control characters, no lone surrogates).

    Raises:
        HtmlPageError: The bytes are an HTML page; it carries the feeds the page links to.
        ParseError: The bytes are empty or not a feed at all.
    """
    if not data.strip():
        raise ParseError(url, "the document is empty")
    read = parse_json_feed if looks_like_json_feed(data, content_type) else parse_xml_feed
    parsed = read(
        data,
        url,
        content_type=content_type,
        default_tz=default_tz,
        default_language=default_language,
    )
    if parsed.title is None or (title := storable(parsed.title)) == parsed.title:
        return parsed
    return parsed._replace(title=title)
