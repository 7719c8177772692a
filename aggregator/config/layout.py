"""feeds.toml as written: its text (line ends, BOM), its lines, and the lines each table owns."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

_BOM = "\ufeff"
# A table header, [name] or [[name]], maybe followed by a comment.
_HEADER = re.compile(r"^[ \t]*\[(\[)?[ \t]*([^\[\]#]*?)[ \t]*\]\]?[ \t]*(?:#.*)?$")


class _Table(NamedTuple):
    """A table of the file and the lines it owns, lines[start:end]."""

    name: str
    array: bool  # [[name]]
    start: int
    end: int


def _read(path: Path) -> str:
    """The file's text as written: its line ends, and a UTF-8 BOM as its first character."""
    return path.read_bytes().decode("utf-8")


def _lines(text: str) -> list[str]:
    # Not str.splitlines: it also splits at characters TOML strings may hold (U+2028, ...).
    return [line for line in re.split(r"(?<=\n)", text) if line]


def _is_comment(line: str) -> bool:
    return line.lstrip().startswith("#")


def _tables(lines: Sequence[str]) -> list[_Table]:
    """The tables of a file and the lines each owns.

    A table owns its header, the comment block directly above it, its keys, and comments
    directly below them that a blank line (or the end of the file) ends. Comments after a
    blank line belong to what follows, so they stay when the table goes.
    """
    headers = [
        (number, match)
        for number, line in enumerate(lines)
        if (match := _HEADER.match(line.rstrip("\r\n")))
    ]
    tables = []
    for position, (header, match) in enumerate(headers):
        following = headers[position + 1][0] if position + 1 < len(headers) else len(lines)
        start = header
        while start > 0 and _is_comment(lines[start - 1]):
            start -= 1
        last = header
        for number in range(header + 1, following):
            if lines[number].strip() and not _is_comment(lines[number]):
                last = number
        end = last + 1
        while end < following and _is_comment(lines[end]):
            end += 1
        if end == following < len(lines):
            end = last + 1  # comments running into the next header are that table's
        name = match.group(2).strip("\"' ")
        tables.append(_Table(name, match.group(1) is not None, start, end))
    return tables


def _without_lines(lines: list[str], start: int, end: int) -> list[str]:
    """lines without lines[start:end], leaving no doubled blank line where they were."""
    kept = lines[:start] + lines[end:]
    if start == len(kept):
        while kept and not kept[-1].strip():
            kept.pop()
    elif start == 0:
        while kept and not kept[0].strip():
            kept.pop(0)
    elif not kept[start - 1].strip() and not kept[start].strip():
        del kept[start]
    return kept
