"""The digest archive: which digests the output folder holds, read back from their files.

The folder is the archive's only record: each digest is `<date>.html`/`.txt`/`.json`
(or `<first>_<last>.*` for a range), and the JSON file (the documented contract) gives
the index and the Atom feed their counts and headlines. A damaged JSON file costs that
digest its details, never the index. A digest made before its last day was over (`digest
--date` a day to come) is no digest of that day: it stays out of the archive.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import date, datetime
from pathlib import Path
from typing import Any, NamedTuple

log = logging.getLogger("aggregator")

_NAME = re.compile(r"^(\d{4}-\d{2}-\d{2})(?:_(\d{4}-\d{2}-\d{2}))?$")
FORMAT_EXTENSIONS = ("html", "txt", "json")
# The feed and the index show this many headlines per digest.
HEADLINES = 5


class Headline(NamedTuple):
    """A story's headline and the link of its primary article."""

    title: str
    link: str | None


class ArchivedDigest(NamedTuple):
    """One digest in the output folder, as the index and the feed show it."""

    name: str  # the file stem: 2025-02-10, or 2025-02-10_2025-02-12
    first: date
    last: date
    extensions: tuple[str, ...]  # the formats present, in FORMAT_EXTENSIONS order
    generated_at: datetime | None = None
    story_count: int | None = None
    entry_count: int | None = None
    source_count: int | None = None
    headlines: tuple[Headline, ...] = ()

    @property
    def daily(self) -> bool:
        return self.first == self.last


def parse_name(stem: str) -> tuple[date, date] | None:
    """The window a digest file stem names, or None if it names none.

    Args:
        stem: A file name without its extension, like ``2025-02-10``.

    Returns:
        (first, last) days, or None for other files and impossible dates.
    """
    match = _NAME.match(stem)
    if not match:
        return None
    try:
        first = date.fromisoformat(match.group(1))
        last = date.fromisoformat(match.group(2)) if match.group(2) else first
    except ValueError:
        return None
    return (first, last) if first <= last else None


def scan_archive(folder: Path) -> list[ArchivedDigest]:
    """Every digest in `folder`, newest first (by last day, then the shorter window).

    Args:
        folder: The digest output folder (it need not exist).

    Returns:
        One ArchivedDigest per file stem that names a window; details come from its JSON
        file when that is present and readable.
    """
    found: dict[str, set[str]] = {}
    try:
        paths = list(folder.iterdir())
    except FileNotFoundError:
        return []
    except OSError as e:
        log.warning("%s: cannot list the digest folder: %s", folder, e)
        return []
    for path in paths:
        ext = path.suffix[1:]
        if ext in FORMAT_EXTENSIONS and parse_name(path.stem) and path.is_file():
            found.setdefault(path.stem, set()).add(ext)
    items = []
    for stem, extensions in found.items():
        window = parse_name(stem)
        assert window is not None
        item = ArchivedDigest(
            name=stem,
            first=window[0],
            last=window[1],
            extensions=tuple(e for e in FORMAT_EXTENSIONS if e in extensions),
        )
        if "json" in extensions:
            item = _with_details(item, folder / f"{stem}.json")
        if premature(item):
            log.info("%s: made on %s, before its last day: not archived", stem, item.generated_at)
            continue
        items.append(item)
    items.sort(key=lambda d: (d.last, d.first, d.name), reverse=True)
    return items


def premature(item: ArchivedDigest) -> bool:
    """Whether the digest was made before its window's last day (in the digest timezone,
    which its generated_at carries): a digest of days to come."""
    return item.generated_at is not None and item.last > item.generated_at.date()


def _with_details(item: ArchivedDigest, path: Path) -> ArchivedDigest:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return item._replace(**details_from_json(data))
    except (OSError, UnicodeDecodeError, ValueError, TypeError, KeyError, AttributeError) as e:
        log.warning("%s: not a readable digest, listed without details: %s", path, e)
        return item


def details_from_json(data: Any) -> dict[str, Any]:
    """Counts and headlines from a digest's JSON document (see render.digest_to_dict).

    Args:
        data: The parsed JSON document.

    Returns:
        The ArchivedDigest fields it provides.

    Raises:
        KeyError, TypeError, ValueError, AttributeError: the document is not a digest.
    """
    stories = [story for topic in data["topics"] for story in topic["stories"]]
    copies = [
        copy for story in stories for article in story["articles"] for copy in article["copies"]
    ]
    headlines = []
    for story in stories[:HEADLINES]:
        link = story["articles"][0]["link"] if story["articles"] else None
        headlines.append(Headline(str(story["headline"]), link if isinstance(link, str) else None))
    return {
        "generated_at": datetime.fromisoformat(data["generated_at"]),
        "story_count": len(stories),
        "entry_count": len(copies),
        "source_count": len({copy["feed"] for copy in copies}),
        "headlines": tuple(headlines),
    }
