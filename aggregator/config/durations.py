"""Durations as feeds.toml and the command line write them: "30s", "15m", "2h", "1d", seconds."""

from __future__ import annotations

import math
import re
from datetime import timedelta

_DURATION = re.compile(r"^\s*(?:(\d+)\s*d)?\s*(?:(\d+)\s*h)?\s*(?:(\d+)\s*m)?\s*(?:(\d+)\s*s)?\s*$")


def parse_duration(text: str) -> timedelta:
    """Parse a duration such as "30s", "15m", "2h", "1d" or "1h30m".

    Raises:
        ValueError: the text is not a positive duration.
    """
    match = _DURATION.match(text) if isinstance(text, str) else None
    if not text or not isinstance(text, str) or not match or not any(match.groups()):
        raise ValueError(f"{text!r} is not a duration like '30s', '15m', '2h' or '1d'")
    days, hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
    value = timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
    if value <= timedelta(0):
        raise ValueError(f"{text!r} must be longer than zero")
    return value


def duration_value(value: object) -> timedelta:
    """A duration as feeds.toml writes it: a string for parse_duration, or a number of seconds.

    Raises:
        ValueError: the value is not a positive duration.
    """
    if isinstance(value, str):
        return parse_duration(value)
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise ValueError(f"{value!r} is not a duration like '30s' or a number of seconds")
    if value <= 0:  # a number of seconds, but none: not "not a number of seconds"
        raise ValueError(f"{value!r} seconds: a duration must be longer than zero")
    try:
        return timedelta(seconds=value)
    except OverflowError as e:
        raise ValueError(f"{value!r} seconds is too long a duration") from e


def duration_option(text: str) -> str | int:
    """A duration given on the command line, as feeds.toml will hold it: "15m" as written,
    "300" as 300 seconds.

    Raises:
        ValueError: the text is not a positive duration.
    """
    text = text.strip()
    value: str | int = int(text) if text.isdigit() else text
    duration_value(value)
    return value


def format_duration(value: timedelta) -> str:
    """The inverse of parse_duration, in the shortest exact form."""
    seconds = int(value.total_seconds())
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return "".join(parts) or "0s"
