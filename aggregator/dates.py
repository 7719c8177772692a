"""Dates written by others (feeds, article files, HTTP headers): the one place they are read.

Pure functions of their input, standard library only (feedparser's own date formats are
passed in by the feed reader as a fallback, so importing this module stays cheap).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import UTC, datetime, tzinfo
from email.utils import parsedate_to_datetime

__all__ = ["entry_date", "localize", "parse_date", "parse_http_date"]

# Dates outside these years are typos or placeholders (0001, 9999), not publication dates.
MIN_YEAR = 1970
MAX_YEAR = 2100

_TZ_SUFFIX = re.compile(r"(?:\b(?:Z|[A-Z]{1,5})|[+-]\d{2}:?\d{2})\s*$")


def parse_date(text: str) -> datetime | None:
    """An ISO 8601 or RFC 822 date, naive when written without a zone; else None.

    A trailing ``Z`` (or ``z``) is UTC, and so is RFC 822's ``-0000``.
    """
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


def entry_date(
    text: str,
    default_tz: tzinfo | None,
    fallback: Callable[[], object] | None = None,
) -> datetime | None:
    """A feed entry's date, timezone-aware, or None when unreadable or implausible.

    Args:
        text: The date as the feed wrote it.
        default_tz: The zone of a date written without one (UTC when None).
        fallback: When `parse_date` cannot read `text`: returns a UTC `time.struct_time`
            (feedparser's reading, which knows more formats), or anything else for none.

    Returns:
        The date, or None when it cannot be read or its year is before 1970 or after 2100.
    """
    try:
        value = parse_date(text)
        if value is None:
            parsed = fallback() if fallback is not None else None
            if not isinstance(parsed, time.struct_time):
                return None
            # feedparser reads every date as UTC, also those written without a zone.
            value = datetime(*parsed[:6])
            if _TZ_SUFFIX.search(text.strip()):
                value = value.replace(tzinfo=UTC)
        value = localize(value, default_tz)
    except (ValueError, OverflowError):
        return None
    if not MIN_YEAR <= value.year <= MAX_YEAR:
        return None
    return value


def parse_http_date(text: str) -> datetime | None:
    """An HTTP date (``Expires``, ``Retry-After``), timezone-aware; None when unreadable."""
    try:
        parsed = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)  # HTTP dates are GMT by definition
    return parsed


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
