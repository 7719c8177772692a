"""Entry policy: an entry's identity within its feed (guids) and the bounds it is kept within."""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from dataclasses import replace
from datetime import datetime, timedelta

from aggregator.grammar import counted
from aggregator.types import EntryData

__all__ = [
    "FUTURE",
    "MAX_TITLE",
    "bounded",
    "distinct_guids",
    "entry_guid",
    "storable",
    "undated_if_future",
]


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


#: How far ahead of the poll an entry's date may lie and be its own (a feed's clock, or a
#: local time given as UTC, can be hours off); beyond it, the entry counts as undated.
FUTURE = timedelta(days=1)


def undated_if_future(
    entries: list[EntryData], now: datetime
) -> tuple[list[EntryData], str | None]:
    """The entries, those dated more than `FUTURE` after `now` without their date: dated
    by when they were first seen, as entries that give none are (a publisher's wrong
    year would otherwise keep one out of every digest until that day comes), and a
    warning naming one (else None)."""
    late = [e for e in entries if e.published is not None and e.published > now + FUTURE]
    if not late:
        return entries, None
    moved = {id(e) for e in late}
    out = [replace(e, published=None) if id(e) in moved else e for e in entries]
    when = late[0].published.isoformat() if late[0].published else ""
    warning = (
        f"{counted(len(late), 'entry', 'entries')} dated in the future "
        f"(e.g. {late[0].title[:60]!r} at {when}): taken as undated"
    )
    return out, warning


_HTTP_URL = re.compile(r"^https?://[^\s/?#]+", re.IGNORECASE)
# What one entry may weigh: a feed can send a 10 MB title, nobody reads one.
MAX_TITLE = 1_000
MAX_SUMMARY = 2_000
MAX_TEXT = 500_000
MAX_FIELD = 4_000  # links, guids, authors
# A guid is hashed past this many UTF-8 bytes: PostgreSQL's index of (feed URL, guid) holds
# rows of at most 2,704 bytes, and refused the poll of a feed with a longer one.
MAX_GUID_BYTES = 1_500


# Characters no store keeps: C0 controls but tab, newline and carriage return (no reader
# sees them, and PostgreSQL's text refuses NUL), and lone surrogates, which are not UTF-8
# (SQLite and PostgreSQL both refuse them; a JSON Feed can write one as "\ud83d").
_UNSTORABLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff]")


def storable(value: str) -> str:
    """`value` without the characters no store keeps: controls dropped, a lone surrogate
    replaced by U+FFFD (the replacement character)."""
    if _UNSTORABLE.search(value) is None:
        return value
    return _UNSTORABLE.sub(lambda m: "\ufffd" if m[0] >= "\ud800" else "", value)


def bounded(entry: EntryData) -> EntryData:
    """The entry made safe to store and show.

    Every field is cut to a sane length (an over-long guid is hashed, so that it stays
    unique and stable), and a link that is not an absolute http(s) URL (``javascript:``,
    ``data:``, a bare guid that feedparser took for a link) is dropped. Characters no
    store keeps (`storable`) are taken out of every field first.
    """

    def cut(value: str, limit: int) -> str:
        return value if len(value) <= limit else value[: limit - 1].rstrip() + "…"

    guid = storable(entry.guid)
    if len(guid) > MAX_GUID_BYTES // 4 and len(guid.encode("utf-8")) > MAX_GUID_BYTES:
        guid = "sha1:" + hashlib.sha1(guid.encode("utf-8")).hexdigest()
    link = entry.link
    if link is not None and (len(link) > MAX_FIELD or not _HTTP_URL.match(link)):
        link = None
    link = None if link is None else storable(link)
    author = None if entry.author is None else cut(storable(entry.author), MAX_FIELD)
    language = None if entry.language is None else storable(entry.language)
    title, summary, text = (storable(v) for v in (entry.title, entry.summary, entry.text))
    changed = (
        guid != entry.guid
        or link != entry.link
        or author != entry.author
        or language != entry.language
        or title != entry.title
        or summary != entry.summary
        or text != entry.text
        or len(title) > MAX_TITLE
        or len(summary) > MAX_SUMMARY
        or len(text) > MAX_TEXT
    )
    if not changed:
        return entry
    return replace(
        entry,
        guid=guid,
        link=link,
        author=author,
        language=language,
        title=cut(title, MAX_TITLE),
        summary=cut(summary, MAX_SUMMARY),
        text=cut(text, MAX_TEXT),
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
