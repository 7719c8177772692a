"""Replacing a file atomically: the one place files are written to a temporary file and renamed."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

__all__ = ["replace_file"]


def replace_file(path: Path, text: str | bytes, *, mode: int | None = None) -> None:
    """Replace `path` with `text` (UTF-8, line endings as given; or bytes), never leaving
    half of it.

    The text goes to a temporary file in the same folder, is flushed to disk, and is renamed
    over `path`: a crash leaves the old file or the new one.

    Args:
        path: The file to write; its folder must exist.
        text: The new content: text, or bytes written as they are.
        mode: The new file's permissions; None: those any new file gets (the umask's).

    Raises:
        OSError: the file could not be written (the temporary file is removed).
    """
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")  # no other writer's name
    try:
        data = text.encode("utf-8") if isinstance(text, str) else text
        with open(tmp, "xb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
