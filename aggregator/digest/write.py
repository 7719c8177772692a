"""Writing digest files atomically, and the archive's index.html and feed.xml.

Every file goes through a temporary file and a rename: a crash leaves the old file or the
new one, never half of one.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from pathlib import Path

from aggregator.atomic import replace_file
from aggregator.digest.archive import scan_archive
from aggregator.digest.render import render_feed, render_index
from aggregator.exceptions import AggregatorError


def write_atomic(path: Path, text: str) -> None:
    """Write `text` to `path` via a temporary file in the same folder and a rename.

    Raises:
        AggregatorError: the folder cannot be created or written.
    """
    if path.is_dir():
        raise AggregatorError(f"{path}: cannot write digest: it is a folder, not a file")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as e:
        # The error names a folder it could not make: name the file in the way instead.
        blocking = next((p for p in path.parents if p.exists()), path.parent)
        raise AggregatorError(f"{path}: cannot write digest: {blocking} is not a folder") from e
    except OSError as e:
        raise AggregatorError(f"{path}: cannot write digest: {e}") from e
    try:
        replace_file(path, text, mode=0o644)
    except OSError as e:
        raise AggregatorError(f"{path}: cannot write digest: {e}") from e


def write_archive(
    folder: Path, *, now: datetime, timezone: str, base_url: str | None = None
) -> tuple[Path, Path]:
    """Rewrite the archive's index.html and feed.xml from the digests in `folder`.

    Args:
        folder: The digest output folder.
        now: The time written as the index's and (when no digest is dated) the feed's update.
        timezone: The digest timezone.
        base_url: The folder's public URL, if it is published (absolute links in the feed).

    Returns:
        The paths of index.html and feed.xml.

    Raises:
        AggregatorError: a file cannot be written.
    """
    items = scan_archive(folder)
    index, feed = folder / "index.html", folder / "feed.xml"
    write_atomic(index, render_index(items, generated_at=now, timezone=timezone))
    # Without a public URL the folder's own path is what identifies this archive.
    where = base_url or folder.resolve().as_uri()
    feed_id = uuid.uuid5(uuid.NAMESPACE_URL, where).urn
    write_atomic(
        feed,
        render_feed(items, feed_id=feed_id, updated=now, timezone=timezone, base_url=base_url),
    )
    return index, feed
