"""Replacing a file atomically: the one place files are written to a temporary file and renamed."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

__all__ = ["replace_file"]


def replace_file(path: Path, text: str, *, mode: int | None = None) -> None:
    """Replace `path` with `text` (UTF-8, line endings as given), never leaving half of it.

    The text goes to a temporary file in the same folder, is flushed to disk, and is renamed
    over `path`: a crash leaves the old file or the new one.

    Args:
        path: The file to write; its folder must exist.
        text: The new content.
        mode: The new file's permissions; None: those any new file gets (the umask's).

    Raises:
        OSError: the file could not be written (the temporary file is removed).
    """
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")  # no other writer's name
    try:
        with open(tmp, "x", encoding="utf-8", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
