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

__all__ = [
    "NAMED_ZONES",
    "entry_date",
    "localize",
    "parse_date",
    "parse_http_date",
    "parse_year_first",
]

# Dates outside these years are typos or placeholders (0001, 9999), not publication dates.
MIN_YEAR = 1970
MAX_YEAR = 2100
# Nor is time 0, what a system with no date writes ("Thu, 01 Jan 1970 00:00:00 +0000", or
# that instant in its own zone), or the day it falls on written without a time.
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

_TZ_SUFFIX = re.compile(r"(?:\b(?:Z|[A-Z]{1,5})|[+-]\d{2}:?\d{2})\s*$")


def _hours(value: float) -> timezone:
    return timezone(timedelta(hours=value))


# Zone names feeds write beside RFC 822's own (UT, GMT, EST/EDT, CST/CDT, MST/MDT, PST/PDT,
# which email.utils reads): those that name one offset. One that names several (IST: India,
# Ireland or Israel; BST: Britain or Bangladesh; AST/ADT: Atlantic or Arabia, -4 or +3; CST
# stays RFC 822's US Central) is left to the feed's `timezone`, as a date with no zone is.
NAMED_ZONES: dict[str, timezone] = {
    name: _hours(hours)
    for names, hours in [
        (("UTC", "WET"), 0),
        (("CET", "MET", "WEST", "WAT"), 1),
        (("CEST", "MEST", "EET", "SAST", "CAT"), 2),
        (("EEST", "MSK", "EAT", "TRT"), 3),
        (("GST",), 4),  # the Gulf
        (("PKT",), 5),
        (("NPT",), 5.75),
        (("ICT", "WIB"), 7),
        (("HKT", "SGT", "AWST", "PHT", "WITA"), 8),
        (("JST", "KST", "WIT"), 9),
        (("ACST",), 9.5),
        (("AEST",), 10),
        (("ACDT",), 10.5),
        (("AEDT",), 11),
        (("NZST",), 12),
        (("NZDT",), 13),
        (("NDT",), -2.5),
        (("BRT", "ART"), -3),
        (("NST",), -3.5),
        (("AKDT",), -8),
        (("AKST",), -9),
        (("HST",), -10),
    ]
    for name in names
}


#: Names email.utils reads as one zone that others write for another: the Atlantic's (-4,
#: -3) and Arabia's (+3, its summer time gone since 2007).
_SEVERAL_ZONES = frozenset({"AST", "ADT"})


def _last_word(text: str) -> str:
    words = text.split()
    return words[-1].upper() if words else ""


def _named_zone(text: str) -> timezone | None:
    """The zone a date's last word names (`NAMED_ZONES`), else None."""
    return NAMED_ZONES.get(_last_word(text))


def parse_date(text: str) -> datetime | None:
    """An ISO 8601 or RFC 822 date, naive when written without a zone; else None.

    A trailing ``Z`` (or ``z``) is UTC, and so is RFC 822's ``-0000``; an RFC 822 date
    may also end in a zone's name (`NAMED_ZONES`: "CET", "JST").
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
    elif value.tzinfo is not None and _last_word(text) in _SEVERAL_ZONES:
        value = value.replace(tzinfo=None)  # email.utils reads AST as the Atlantic's
    elif value.tzinfo is None and (named := _named_zone(text)) is not None:
        value = value.replace(tzinfo=named)  # a name email.utils does not know ("CET")
    return value


# A date written year first in another form than ISO 8601's: "2025/02/10", "2025.2.10",
# "2025年2月10日 21:05" (Chinese and Japanese), "2025년 2월 10일" (Korean), "2025/02/10 6:00
# PM", "2025/02/10 18:00:00.123 GMT+8", "2025年02月10日 18时": its day, then what it says of
# the time and the zone.
_YEAR_FIRST = re.compile(
    r"\s*(?P<y>\d{4})\s*[-/.年년]\s*(?P<m>\d{1,2})\s*[-/.月월]\s*(?P<d>\d{1,2})\s*[日일]?"
)
_CLOCK = re.compile(
    r"(?:\s*|T)(?P<H>\d{1,2})\s*(?:[:：]\s*(?P<M>\d{2})|[時时시點点]\s*(?:(?P<M2>\d{1,2})\s*[分분])?)"
    r"(?:\s*[:：]\s*(?P<S>\d{2})(?:[.,]\d+)?|\s*(?P<S2>\d{1,2})\s*[秒초])?"
    r"(?:\s*(?P<half>[AaPp])\.?\s*[Mm]\.?)?"
)
_ZONE = re.compile(
    r"\s*(?:(?P<utc>Z|UTC|GMT)\s*)?(?:(?P<sign>[+-])(?P<oh>\d{1,2})(?::?(?P<om>\d{2}))?)?\s*",
    re.IGNORECASE,
)


def parse_year_first(text: str) -> datetime | None:
    """A date written year, month, day with other separators than ISO 8601's ("2025/02/10
    21:05", "2025.2.10", "2025年2月10日", "2025/02/10 08:00 UTC", "2025/02/10 6:00 PM
    GMT+8"), naive when written without a zone; None when it is not one or there is no such
    day. A time or zone it cannot read is left out, the day kept: feedparser reads such
    dates as the 1st of December, wrong by months rather than hours.

    Only the year-first order is read: "10/02/2025" is the 10th of February in one country
    and the 2nd of October in another.
    """
    day = _YEAR_FIRST.match(text)
    if day is None:
        return None
    rest = text[day.end() :]
    hour = minute = second = 0
    clock = _CLOCK.match(rest)
    if clock is not None:
        hour = int(clock["H"])
        minute = int(clock["M"] or clock["M2"] or 0)
        second = int(clock["S"] or clock["S2"] or 0)
        if clock["half"] and 1 <= hour <= 12:
            hour = hour % 12 + (12 if clock["half"] in "Pp" else 0)
        rest = rest[clock.end() :]
    zone: tzinfo | None = _named_zone(rest) if rest.strip() else None  # "JST"
    written = _ZONE.fullmatch(rest)  # else a zone it cannot read ("CST"): the default's
    if written is not None and written["sign"]:
        offset = timedelta(hours=int(written["oh"]), minutes=int(written["om"] or 0))
        zone = timezone(-offset if written["sign"] == "-" else offset)
    elif written is not None and written["utc"]:
        zone = UTC
    try:
        return datetime(int(day["y"]), int(day["m"]), int(day["d"]), hour, minute, second,
                        tzinfo=zone)  # fmt: skip
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
        The date, or None when it cannot be read, its year is before 1970 or after 2100,
        or it is the Unix epoch (1970-01-01 00:00 UTC, or written so in another zone).
    """
    try:
        # Year-first dates before the fallback: feedparser reads "2025/02/10 18:00" and
        # "2025年02月10日" as the 1st of December.
        value = parse_date(text) or parse_year_first(text)
        if value is None and _YEAR_FIRST.match(text):
            return None  # no such day ("2025/02/30"): feedparser would make one up
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
    if value == _EPOCH or value.replace(tzinfo=None) == _EPOCH.replace(tzinfo=None):
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
