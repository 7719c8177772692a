"""Dates written by others (feeds, article files, HTTP headers): the one place they are read.

Pure functions of their input, standard library only (feedparser's own date formats are
passed in by the feed reader as a fallback, so importing this module stays cheap).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from email.utils import parsedate_to_datetime

__all__ = ["entry_date", "localize", "parse_date", "parse_http_date", "parse_year_first"]

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


# A date written year first in another form than ISO 8601's: "2025/02/10", "2025.2.10",
# "2025年2月10日 21:05" (Chinese and Japanese), "2025년 2월 10일" (Korean), with a time or
# not, and a zone or not.
_YEAR_FIRST = re.compile(
    r"(?P<y>\d{4})\s*[-/.年년]\s*(?P<m>\d{1,2})\s*[-/.月월]\s*(?P<d>\d{1,2})\s*[日일]?"
    r"(?:(?:\s*|T)(?P<H>\d{1,2})\s*[:：時时시]\s*(?P<M>\d{2})"
    r"(?:\s*[:：分분]\s*(?P<S>\d{2}))?\s*[秒초分분]?)?"
    r"(?:\s*(?:(?P<utc>Z|UTC|GMT)|(?P<sign>[+-])(?P<oh>\d{2}):?(?P<om>\d{2})))?",
    re.IGNORECASE,
)


def parse_year_first(text: str) -> datetime | None:
    """A date written year, month, day with other separators than ISO 8601's ("2025/02/10
    21:05", "2025.2.10", "2025年2月10日", "2025/02/10 08:00 UTC"), naive when written
    without a zone; None when it is not one or there is no such day.

    Only the year-first order is read: "10/02/2025" is the 10th of February in one country
    and the 2nd of October in another.
    """
    match = _YEAR_FIRST.fullmatch(text.strip())
    if match is None:
        return None
    y, m, d, hour, minute, second = (int(match[k] or 0) for k in ("y", "m", "d", "H", "M", "S"))
    zone: tzinfo | None = None
    if match["utc"]:
        zone = UTC
    elif match["sign"]:
        offset = timedelta(hours=int(match["oh"]), minutes=int(match["om"]))
        zone = timezone(-offset if match["sign"] == "-" else offset)
    try:
        return datetime(y, m, d, hour, minute, second, tzinfo=zone)
    except ValueError:  # the 30th of February, the 25th hour, an offset of a day
        return None


def entry_date(
    text: str,
    default_tz: tzinfo | None,
    fallback: Callable[[], object] | None = None,
) -> datetime | None:
    """A feed entry's date, timezone-aware, or None when unreadable or implausible.

    Args:
        text: The date as the feed wrote it.
        default_tz: The zone of a date written without one (UTC when None).
        fallback: When neither `parse_date` nor `parse_year_first` can read `text`:
            returns a UTC `time.struct_time` (feedparser's reading, which knows more
            formats), or anything else for none.

    Returns:
        The date, or None when it cannot be read or its year is before 1970 or after 2100.
    """
    try:
        # Year-first dates before the fallback: feedparser reads "2025/02/10 18:00" and
        # "2025年02月10日" as the 1st of December.
        value = parse_date(text) or parse_year_first(text)
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
