"""Local sources: reading article files and feed files from a file or a folder.

Article formats understood (those of the project's seed files):

1. Markdown with YAML front matter (``---`` ... ``---``): title, date, summary, lang,
   author; the body's last line ``[site](url)`` is the original link.
2. Plain Markdown: the title is the one top-level ``# `` heading; no date, no link.
3. Feed export: ``<!--epoch-ms-->``, ``[title](link)``, a ``------`` rule, then HTML
   that may open with a ``<div><i>Author<br>date</i></div>`` byline.

Feed files (RSS, Atom, RDF, JSON Feed) go through `parse.parse_feed`, as the same bytes
would over HTTP: a file is a feed when its name says so (``.xml``, ``.rss``, ``.atom``,
``.rdf``, ``.json``) or its content does (an XML root element ``rss``, ``feed`` or
``RDF``, or a JSON object with ``items``). Text in another encoding than UTF-8 is
decoded as for HTTP (`charset.decode`), with a warning. No network is used.
"""

from __future__ import annotations

import html
import re
import stat
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from pathlib import Path

import yaml

from aggregator import dates
from aggregator.exceptions import ParseError
from aggregator.sources import parse
from aggregator.sources.charset import decode
from aggregator.sources.entries import bounded, distinct_guids
from aggregator.sources.excerpt import excerpt
from aggregator.sources.html_text import html_to_text
from aggregator.sources.language import detect_language, normalize_language
from aggregator.types import EntryData, ParsedFeed

__all__ = ["read_source"]

# Files in a folder that are no articles: editors' backups ("a.md~"), autosaves ("#a.md#")
# and swap files, downloads and saves in progress, and what an OS leaves in a folder.
_NOT_ARTICLE_SUFFIXES = (
    "~",
    ".swp",
    ".swo",
    ".swx",
    ".tmp",
    ".temp",
    ".bak",
    ".part",
    ".partial",
    ".crdownload",
)
_NOT_ARTICLE_NAMES = frozenset({"thumbs.db", "desktop.ini", "icon\r"})
_FEED_SUFFIXES = frozenset({".xml", ".rss", ".atom", ".rdf", ".json", ".jsonfeed"})
_JSON_SUFFIXES = frozenset({".json", ".jsonfeed"})
# The root element of a feed, after any XML declaration, comments, PIs and DOCTYPE.
_FEED_ROOT = re.compile(
    r"<\?xml\b"
    r"|(?:<!--(?:(?!-->).)*-->|<\?(?:(?!\?>).)*\?>|<!DOCTYPE[^>]*>|\s)*"
    r"<(?:[\w.-]+:)?(?:rss|feed|rdf)\b",
    re.IGNORECASE | re.DOTALL,
)
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EXPORT_STAMP = re.compile(r"^<!--\s*(\d{1,14})\s*-->$")
_MD_LINK_LINE = re.compile(r"^\[(?P<text>.*)\]\((?P<url>[^()\s]*(?:\([^()\s]*\)[^()\s]*)*)\)$")
_BYLINE = re.compile(
    r"^\s*<div>\s*<(?P<tag>i|em)>\s*(?P<author>[^<>]{1,100}?)\s*<br\s*/?>\s*"
    r"(?P<date>\d{4}-\d{2}-\d{2}[^<>]*)</(?P=tag)>\s*</div>",
    re.IGNORECASE,
)
_PAREN_URL = r"\((?:[^()\n]|\([^()\n]*\))*\)"
_MD_IMAGE = re.compile(r"!\[[^\]\n]*\]" + _PAREN_URL)
_MD_LINK = re.compile(r"\[([^\]\n]*)\]" + _PAREN_URL)
_MD_REF_LINK = re.compile(r"\[([^\]\n]+)\]\[[^\]\n]*\]")
_MD_REF_DEF = re.compile(r"^\s{0,3}\[[^\]\n]+\]:\s+\S+.*$")
_AUTOLINK = re.compile(r"<(?:https?|ftp|mailto):[^>\s]*>")
_HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)(?:\s+#+)?\s*$")
_LIST_ITEM = re.compile(r"^\s*(?:[-*+]|\d{1,9}[.)])\s+")
_QUOTE = re.compile(r"^\s{0,3}(?:>\s?)+")
_RULE = re.compile(r"^\s{0,3}(?:(?:\*\s*){3,}|(?:-\s*){3,}|(?:_\s*){3,}|(?:=\s*){3,})$")
_FENCE = re.compile(r"^\s{0,3}(?:```|~~~)")
_STRONG = re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1")
_EM_STAR = re.compile(r"(?<![\w*])\*(?=\S)(.+?)(?<=\S)\*(?![\w*])")
_EM_UNDERSCORE = re.compile(r"(?<![\w_])_(?=\S)(.+?)(?<=\S)_(?![\w_])")
_STRIKE = re.compile(r"~~(?=\S)(.+?)(?<=\S)~~")
_CODE = re.compile(r"`+([^`\n]*)`+")
_HTML_TAG = re.compile(r"</?[A-Za-z][^<>]*>|<!--")
_BYLINE_LINE = re.compile(  # "大公報記者 郭瀚林": a short line, the reporter's name last
    r"^\S{0,12}?(?:記者|记者)[\s\u3000]+(?P<name>[^\s\u3000，,。；;：:]{2,4})$"
)
_BOILERPLATE = re.compile(r"^(?:©|\(c\)|copyright\b)|版权声明|版權聲明|all rights reserved", re.I)
_CJK_END = re.compile(r"[\u2e80-\u9fff\uf900-\ufaff\uff00-\uffef\u3000-\u303f]$")
_CJK_START = re.compile(r"^[\u2e80-\u9fff\uf900-\ufaff\uff00-\uffef\u3000-\u303f]")


@dataclass(frozen=True)
class _Article:
    """What one article file says, before defaults are applied."""

    title: str
    text: str
    link: str | None = None
    published: datetime | None = None
    author: str | None = None
    summary: str = ""
    language: str | None = None
    warnings: tuple[str, ...] = ()


def read_source(
    path: Path,
    *,
    default_tz: tzinfo | None = None,
    default_language: str | None = None,
    max_bytes: int | None = None,
) -> ParsedFeed:
    """Read a local file, or every file of a folder, into entries.

    A folder is read non-recursively, in name order; hidden files, editors' backup and
    temporary files, files an OS leaves there (`_skipped`) and subfolders are skipped. A
    file that cannot be read or parsed adds a warning naming it and the rest are still
    read; so does one that is not a regular file (a named pipe would block the read for
    good, /dev/zero never end it) or is larger than `max_bytes`. An article file's `guid`
    is its link when it has one (and no other file of the folder gives that guid to another
    entry), else ``"file:"`` + its file name, so re-reading a folder yields the same guids.

    Args:
        path: A file or a folder.
        default_tz: Timezone for dates written without one (UTC when None).
        default_language: Language of articles that neither declare one nor are
            recognised by `language.detect_language`.
        max_bytes: The largest file read ([poll] max_body, as for a body over HTTP);
            None: any size.

    Returns:
        The source's title (the folder's or file's name, or a feed file's title), its
        entries, and warnings.

    Raises:
        ParseError: `path` does not exist or cannot be listed, or it is a single file
            that cannot be read or parsed.
    """
    if path.is_dir():
        try:
            children = sorted(path.iterdir(), key=lambda p: p.name)
        except OSError as e:
            raise ParseError(str(path), f"cannot list the folder: {e.strerror or e}") from e
        entries: list[EntryData] = []
        article_files: dict[int, str] = {}  # an article file's entry's index -> its file name
        warnings: list[str] = []
        for child in children:
            if _skipped(child.name) or child.is_dir():
                continue
            try:
                found, is_feed = _read_file(child, default_tz, default_language, max_bytes)
            except ParseError as e:
                warnings.append(f"{child.name}: {e.message}")
                continue
            if not is_feed:
                article_files[len(entries)] = child.name
            entries.extend(found.entries)
            warnings.extend(f"{child.name}: {w}" for w in found.warnings)
        entries, guid_warning = _folder_guids(entries, article_files)
        if guid_warning:
            warnings.append(guid_warning)
        return ParsedFeed(title=path.name, entries=entries, warnings=warnings)
    if not path.exists():
        raise ParseError(str(path), "no such file or folder")
    return _read_file(path, default_tz, default_language, max_bytes)[0]


def _skipped(name: str) -> bool:
    """Whether a folder's file is no article: hidden, a backup, a temporary or a system file."""
    folded = name.casefold()
    return (
        name.startswith((".", "~$"))
        or (name.startswith("#") and name.endswith("#"))
        or folded.endswith(_NOT_ARTICLE_SUFFIXES)
        or folded in _NOT_ARTICLE_NAMES
    )


def _folder_guids(
    entries: list[EntryData], article_files: dict[int, str]
) -> tuple[list[EntryData], str | None]:
    """The entries of a folder's files, told apart where two files gave one guid.

    The folder is one feed, whose guids must be distinct: else the second file's entry
    would be taken for the first's and never stored. Feed files number their items ("1",
    "2", ...) and saved articles may link to one page; an article file sharing its guid
    (its link) with a different entry is keyed by its file name, as one without a link
    is, and feed items are told apart as a feed's own are (`entries.distinct_guids`).
    """
    shared: dict[str, set[tuple[str | None, str]]] = {}
    for entry in entries:
        shared.setdefault(entry.guid, set()).add((entry.link, entry.title))
    renamed = [
        replace(entry, guid=f"file:{article_files[n]}")
        if n in article_files and len(shared[entry.guid]) > 1
        else entry
        for n, entry in enumerate(entries)
    ]
    return distinct_guids(renamed)


def _read_file(
    path: Path, default_tz: tzinfo | None, default_language: str | None, max_bytes: int | None
) -> tuple[ParsedFeed, bool]:
    """A file's entries, and whether it is a feed file (else an article file)."""
    try:
        found = path.stat()
        if not stat.S_ISREG(found.st_mode):
            raise ParseError(str(path), "not a regular file (a pipe, socket or device): not read")
        if max_bytes is not None and found.st_size > max_bytes:
            raise ParseError(
                str(path), f"larger than the {max_bytes}-byte limit ([poll] max_body): not read"
            )
        data = path.read_bytes()
    except OSError as e:
        raise ParseError(str(path), f"cannot read the file: {e.strerror or e}") from e
    if not data.strip():
        raise ParseError(str(path), "the file is empty")
    kind = _feed_kind(path, data)
    if kind is not None:
        feed = parse.parse_feed(
            data,
            str(path),
            content_type=kind or None,
            default_tz=default_tz,
            default_language=default_language,
        )
        return (feed if feed.title else feed._replace(title=path.name)), True
    if b"\x00" in data and not data.startswith(_UTF16_BOMS):
        raise ParseError(str(path), "a binary file, not text")
    decoded = decode(data, [], default_language)
    warnings = [decoded.warning] if decoded.warning else []
    text = decoded.text.replace("\r\n", "\n").replace("\r", "\n")

    stripped = text.lstrip("\n")
    first_line = stripped.split("\n", 1)[0].strip()
    if stripped.startswith("---\n"):
        article = _front_matter_article(path, stripped, default_tz)
    elif _EXPORT_STAMP.match(first_line):
        article = _export_article(path, stripped)
    else:
        article = _markdown_article(path, text)
    if not article.title and not article.text:
        raise ParseError(str(path), "no title and no text found")
    warnings.extend(article.warnings)

    language = article.language or detect_language(f"{article.title}\n{article.text}")
    entry = EntryData(
        guid=article.link or f"file:{path.name}",
        title=article.title or excerpt(article.text, 80) or path.stem,
        link=article.link,
        published=article.published,
        author=article.author,
        summary=article.summary or excerpt(article.text),
        text=article.text,
        language=language or normalize_language(default_language),
    )
    return ParsedFeed(title=path.name, entries=[bounded(entry)], warnings=warnings), False


def _feed_kind(path: Path, data: bytes) -> str | None:
    """Whether a file is a feed: None if not, else the Content-Type that says which ("")."""
    if data.startswith(_UTF16_BOMS):
        head = data[:1024].decode("utf-16", errors="ignore")
    else:
        head = data[:1024].decode("latin-1")
    head = head.lstrip("\ufeff\xef\xbb\xbf \t\r\n")
    suffix = path.suffix.lower()
    if suffix in _JSON_SUFFIXES or (head.startswith("{") and b'"items"' in data):
        return "application/feed+json"
    if suffix in _FEED_SUFFIXES or _FEED_ROOT.match(head):
        return ""
    return None


def _front_matter_article(path: Path, text: str, default_tz: tzinfo | None) -> _Article:
    match = re.match(r"---\n(.*?)\n(?:---|\.\.\.)[ \t]*(?:\n|$)", text, re.S)
    if not match:
        raise ParseError(str(path), "front matter opened with '---' is never closed")
    try:
        meta = yaml.safe_load(match.group(1))
    except yaml.YAMLError as e:
        raise ParseError(str(path), f"bad YAML front matter: {e}") from e
    if meta is None:
        meta = {}
    if not isinstance(meta, dict):
        raise ParseError(str(path), "the front matter is not a mapping of keys to values")

    body, link = _split_link_line(text[match.end() :])
    body_text = _markdown_to_text(body)
    title = _first_str(meta.get("title"))
    if not title:
        title, body_text = _title_from_markdown(body)
    published = None
    warnings: tuple[str, ...] = ()
    if "date" in meta:
        published = _to_datetime(meta["date"], default_tz)
        if published is None:  # the article is kept, as one without a date
            written = str(meta["date"])
            warnings = (f"unreadable date in front matter: {written!r}; dated when first seen",)
    return _Article(
        title=title,
        text=body_text,
        link=link,
        published=published,
        author=_first_str(meta.get("author")) or None,
        summary=" ".join(_first_str(meta.get("summary")).split()),
        language=normalize_language(_first_str(meta.get("lang") or meta.get("language"))),
        warnings=warnings,
    )


def _export_article(path: Path, text: str) -> _Article:
    lines = text.split("\n")
    stamp = _EXPORT_STAMP.match(lines[0].strip())
    published = None
    if stamp:
        # The format's stamp is epoch milliseconds, whatever its number of digits.
        try:
            published = _EPOCH + timedelta(milliseconds=int(stamp.group(1)))
        except (OverflowError, OSError, ValueError):
            published = None
    rest = lines[1:]
    while rest and not rest[0].strip():
        rest.pop(0)
    title, link = "", None
    if rest:
        heading = _MD_LINK_LINE.match(rest[0].strip())
        if heading:
            title, link = " ".join(heading.group("text").split()), heading.group("url") or None
            rest.pop(0)
    while rest and (not rest[0].strip() or _RULE.match(rest[0])):
        rest.pop(0)
    body = "\n".join(rest)

    author = None
    byline = _BYLINE.match(body)
    if byline:
        author = " ".join(byline.group("author").split()) or None
        if published is None:
            published = _to_datetime(byline.group("date").strip(), None)
        body = body[byline.end() :]
    body_text = html_to_text(body) if _HTML_TAG.search(body) else _markdown_to_text(body)
    if not title:
        raise ParseError(str(path), "no '[title](link)' line after the timestamp")
    return _Article(
        title=title,
        text=_drop_boilerplate(body_text),
        link=link,
        published=published,
        author=author,
    )


def _markdown_article(path: Path, text: str) -> _Article:
    body, link = _split_link_line(text)
    title, body_text = _title_from_markdown(body)
    author = None
    paragraphs = body_text.split("\n\n")
    for i, paragraph in enumerate(paragraphs):
        byline = _BYLINE_LINE.match(paragraph)
        if byline:
            author = byline.group("name")
            body_text = "\n\n".join(paragraphs[:i] + paragraphs[i + 1 :])
            break
    return _Article(title=title, text=body_text, link=link, author=author)


def _title_from_markdown(body: str) -> tuple[str, str]:
    """The document's top-level heading (else its first heading) and the rest as text."""
    lines = body.split("\n")
    in_fence = False
    candidates: list[tuple[int, int, str]] = []  # (level, line number, text)
    for number, line in enumerate(lines):
        if _FENCE.match(line):
            in_fence = not in_fence
            continue
        heading = None if in_fence else _HEADING.match(line)
        if heading:
            candidates.append((len(heading.group(1)), number, heading.group(2)))
    if not candidates:
        return "", _markdown_to_text(body)
    level, number, raw_title = min(candidates, key=lambda c: (c[0], c[1]))
    title = _inline_to_text(raw_title)
    rest = "\n".join(lines[:number] + lines[number + 1 :])
    return title, _markdown_to_text(rest)


def _split_link_line(body: str) -> tuple[str, str | None]:
    """Remove a final ``[site](url)`` line; it is the article's original link."""
    lines = body.rstrip().split("\n")
    if lines:
        last = _MD_LINK_LINE.match(lines[-1].strip())
        if last and last.group("url").startswith(("http://", "https://")):
            return "\n".join(lines[:-1]), last.group("url")
    return body, None


def _markdown_to_text(markdown: str) -> str:
    """Plain text of a Markdown document: no markup, links reduced to their text."""
    paragraphs: list[str] = []
    current: list[str] = []

    def flush() -> None:
        if current:
            paragraphs.append(_join_lines(current))
            current.clear()

    in_fence = False
    for line in markdown.split("\n"):
        if _FENCE.match(line):
            flush()
            in_fence = not in_fence
            continue
        if in_fence:
            if line.strip():
                current.append(line.strip())
            continue
        if not line.strip() or _RULE.match(line) or _MD_REF_DEF.match(line):
            flush()
            continue
        line = _QUOTE.sub("", line)
        heading = _HEADING.match(line)
        if heading or _LIST_ITEM.match(line):
            flush()
            content = heading.group(2) if heading else _LIST_ITEM.sub("", line, count=1)
            paragraphs.append(_inline_to_text(content))
            continue
        current.append(_inline_to_text(line))
    flush()
    text = "\n\n".join(p for p in (" ".join(p.split()) for p in paragraphs) if p)
    return _drop_boilerplate(text)


def _inline_to_text(line: str) -> str:
    line = _MD_IMAGE.sub("", line)
    line = _AUTOLINK.sub("", line)
    line = _MD_LINK.sub(r"\1", line)
    line = _MD_REF_LINK.sub(r"\1", line)
    line = _CODE.sub(r"\1", line)
    for pattern in (_STRONG, _STRIKE):
        line = pattern.sub(lambda m: m.group(m.lastindex or 0), line)
    line = _EM_STAR.sub(r"\1", line)
    line = _EM_UNDERSCORE.sub(r"\1", line)
    if _HTML_TAG.search(line):
        line = html_to_text(line).replace("\n\n", " ")
    else:
        line = html.unescape(line)
    return line.strip()


def _join_lines(lines: list[str]) -> str:
    """Join a paragraph's soft-wrapped lines: a space between words, none between CJK."""
    out = ""
    for line in lines:
        if not line:
            continue
        if out and not (_CJK_END.search(out) and _CJK_START.search(line)):
            out += " "
        out += line
    return out


def _drop_boilerplate(text: str) -> str:
    """Remove trailing copyright notices ("© 2025 ... 版权声明 ...")."""
    paragraphs = text.split("\n\n")
    while paragraphs and len(paragraphs[-1]) < 400 and _BOILERPLATE.search(paragraphs[-1]):
        paragraphs.pop()
    return "\n\n".join(paragraphs)


def _first_str(value: object) -> str:
    """A front-matter value as one string: lists give their first item."""
    if isinstance(value, list):
        value = value[0] if value else None
    if value is None:
        return ""
    return str(value).strip()


def _to_datetime(value: object, default_tz: tzinfo | None) -> datetime | None:
    """A front-matter date (string, YAML datetime or date) as an aware datetime; None when
    unreadable or implausible (as a feed entry's: `dates.entry_date`)."""
    if isinstance(value, datetime):
        text = value.isoformat()
    elif isinstance(value, date):
        text = datetime.combine(value, time()).isoformat()
    elif isinstance(value, str | int | float) and str(value).strip():
        text = str(value).strip()
    else:
        return None
    return dates.entry_date(text, default_tz)
