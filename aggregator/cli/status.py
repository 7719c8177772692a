"""`status`: each feed's health and the digest email's, as a table or JSON."""

from __future__ import annotations

import json
import shutil
import sys
import textwrap
from datetime import datetime, timedelta, tzinfo
from typing import TYPE_CHECKING, Any

import click

from aggregator.cli.group import _Context, _guarded, cli, table_or_json
from aggregator.grammar import counted
from aggregator.liveness import Condition, condition, shown
from aggregator.types import AlertStatus, DeliveryStatus

if TYPE_CHECKING:
    from aggregator.core import AlertRecord, EmailDelivery, FeedStatus, PollerState


@cli.command()
@table_or_json
@click.pass_obj
@_guarded
def status(obj: _Context, fmt: str) -> None:
    """Show each feed's health: last success and attempt, last error, failures, next poll.

    The table is followed by the pollers sharing the store (each `aggregator run`, on this
    host or another, seen in the last 24 hours or not stopped): host, pid, start, last
    heartbeat, running, stopped or SILENT (no heartbeat for 3 intervals: it died or lost
    the store), and the feeds it holds leases on now; then the digest email's state: the
    latest digest's deliveries, and every failed one with its error and next retry; then
    the watches' alerts of the last 7 days: how many were sent, and each one pending (due,
    being sent) or failed.

    A running daemon whose writes fail (a full disk) is reported under the table (with
    --format json, on standard error, as are SILENT pollers).

    Exits 1 when any enabled feed has failed [poll] failure_threshold times in a row
    (default 3), an alert of the last 24 hours failed for good (refused, or given up after
    its retries), or the daemon cannot write the database, else 0, so it can be run from
    cron or a monitoring system; pollers do not change it (the others take a dead one's
    feeds once its leases end). A damaged database is an error (exit 1) naming the fix.
    """
    with obj.aggregator(read_only=True) as agg:
        feeds = agg.status()
        deliveries = agg.email_status()
        recent = agg.clock() - ALERTS_SHOWN
        alerts = agg.alerts(recent) if agg.config.store_exists() else []
        report = agg.daemon_report()
        tz = agg.tz
        now = agg.clock().astimezone(tz)
        pollers = (
            [p for p in agg.pollers() if shown(p.poller, now)] if agg.config.store_exists() else []
        )
    storage_error = None
    if report is not None and report.storage_error:
        since = f" since {report.since.astimezone(tz):%Y-%m-%d %H:%M:%S}" if report.since else ""
        pid = f" (pid {report.pid})" if report.pid else ""
        storage_error = (
            f"storage: FAILING: the daemon{pid} cannot write the database{since}: "
            f"{report.storage_error}; polls are retried with backoff"
        )
    if fmt == "json":
        rows = []
        for feed in feeds:
            row: dict[str, Any] = feed._asdict()
            del row["failing"]
            for key, value in row.items():
                if isinstance(value, datetime):
                    row[key] = value.isoformat()
            rows.append(row)
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
    else:
        color = sys.stdout.isatty()
        width = shutil.get_terminal_size().columns if color else STATUS_WIDTH
        lines = _status_lines(feeds, now=now, width=max(width, 60), color=color)
        lines += _poller_lines(pollers, now=now, width=max(width, 60), color=color)
        lines += _email_lines(deliveries, tz)
        lines += _alert_lines(alerts, tz)
        # One write: 2,000 feeds are ~5,000 lines.
        click.echo("\n".join(lines), color=color)
    if storage_error:
        click.echo(storage_error, err=fmt == "json")
    lost = [a for a in alerts if _lost(a, now)]
    if lost and fmt == "json":
        click.echo(f"alerts: {counted(len(lost), 'alert')} failed for good", err=True)
    silent = [p.poller for p in pollers if condition(p.poller, now) is Condition.SILENT]
    if silent and fmt == "json":
        who = ", ".join(
            f"{_printable(p.host)} pid {p.pid} (last seen {_ago(p.seen, now)})" for p in silent
        )
        click.echo(f"pollers: SILENT: {who}", err=True)
    if storage_error or any(f.failing for f in feeds) or lost:
        sys.exit(1)


#: `status` shows the alerts recorded this recently.
ALERTS_SHOWN = timedelta(days=7)
#: An alert that failed for good this recently makes `status` exit 1.
ALERT_FAILED_EXIT = timedelta(hours=24)


def _lost(alert: AlertRecord, now: datetime) -> bool:
    """An alert of the last `ALERT_FAILED_EXIT` that failed and will not be retried."""
    return (
        alert.status == AlertStatus.FAILED
        and alert.next_attempt is None
        and alert.last_attempt is not None
        and now - alert.last_attempt < ALERT_FAILED_EXIT
    )


def _alert_lines(alerts: list[AlertRecord], tz: tzinfo) -> list[str]:
    """The alerts' state in words: how many were sent, then each one not sent."""
    from aggregator.cli.watches import alert_row

    if not alerts:
        return []
    sent = sum(1 for a in alerts if a.status == AlertStatus.SENT)
    lines = [f"alerts: {sent} of {counted(len(alerts), 'alert')} of the last 7 days sent"]
    for alert in alerts:
        if alert.status != AlertStatus.SENT:
            state = "FAILED" if alert.status == AlertStatus.FAILED else str(alert.status)
            lines.append(f"  {state}: " + "  ".join(alert_row(alert, tz)))
    return lines


#: The status table's width when it is not shown on a terminal (a pipe, a file, cron mail).
STATUS_WIDTH = 80
_TIME_WIDTH = 12  # "last success"; a time is "12-05 14:03", or "2025-02-10" another year


def _status_lines(feeds: list[FeedStatus], *, now: datetime, width: int, color: bool) -> list[str]:
    """The status table: a line of times and counts per feed, then its URL and state.

    Times are in the digest timezone (named above the table); the URL is shortened in its
    middle, keeping its host and its file name, so that every line fits `width` columns.
    An error is shown whole, wrapped under the feed.
    """
    from aggregator.width import display_width

    others: dict[str, None] = {}  # the other UTC offsets times are shown in, in order met

    def when(value: datetime | None) -> str:
        return "-" if value is None else _table_time(value, now, others)

    def cell(text: str, size: int) -> str:
        return text + " " * max(size - display_width(text), 0)

    def styled(text: str, fg: str | None) -> str:
        return click.style(text, fg=fg) if color and fg else text

    numbers = 5 + 2 + 7  # "fails", "entries"
    name_width = max(width - 3 * (_TIME_WIDTH + 2) - numbers - 2, 12)
    columns = (name_width, _TIME_WIDTH, _TIME_WIDTH, _TIME_WIDTH)
    lines = [
        f"Times in {now.tzinfo} ({_utc_offset(now)}), the digest timezone.",
        "  ".join(
            cell(title, size)
            for title, size in zip(
                ("feed", "last success", "last attempt", "next poll"), columns, strict=True
            )
        )
        + f"  {'fails':>5}  {'entries':>7}",
    ]
    for feed in feeds:
        times = (
            when(feed.last_success),
            when(feed.last_attempt),
            "-" if feed.disabled else when(feed.next_poll),
        )
        name = _clip_end(feed.name, name_width)
        row = "  ".join(cell(text, _TIME_WIDTH) for text in times)
        lines.append(
            f"{cell(name, name_width)}  {row}  {feed.consecutive_failures:>5}  "
            f"{feed.entry_count:>7}"
        )
        fg: str | None
        if feed.disabled:
            state, fg = f"disabled: {feed.disabled_reason}", "red"
        elif feed.failing:
            state, fg = f"failing: {feed.last_error}", "red"
        elif feed.last_error:
            state, fg = feed.last_error, "yellow"
        else:
            state, fg = ("ok", "green") if feed.last_success else ("not polled yet", None)
        url = feed.url
        if display_width(f"  {url}  {state}") <= width:
            lines.append(f"  {url}  {styled(state, fg)}")
        else:
            lines.append("  " + _clip_middle(url, width - 2))
            lines += [
                styled(part, fg)
                for part in textwrap.wrap(
                    state, width, initial_indent="    ", subsequent_indent="    "
                )
            ]
        if feed.redirected_url:
            moved = _clip_middle(feed.redirected_url, width - 11)
            lines.append(styled(f"  moved to {moved}", "yellow"))
    return lines + _offsets_note(others)


def _table_time(value: datetime, now: datetime, others: dict[str, None]) -> str:
    """A time as `status`'s tables show it, in now's timezone: ``12-05 14:03``, or the day
    alone of another year. One in another UTC offset than now's (the other side of a clock
    change: the header gives now's) is marked ``*`` and its offset added to `others`, so
    that an hour shown twice, or skipped, is not read in the wrong one."""
    local = value.astimezone(now.tzinfo)
    if local.year != now.year:
        return f"{local:%Y-%m-%d}"
    shown = f"{local:%m-%d %H:%M}"
    if local.utcoffset() != now.utcoffset():
        others[_utc_offset(local)] = None
        return shown + "*"
    return shown


def _offsets_note(others: dict[str, None]) -> list[str]:
    """The note under a table whose times `_table_time` marked: the offsets they are in."""
    if not others:
        return []
    return [f"* in {' or '.join(others)}: a clock change lies between then and now."]


def _utc_offset(moment: datetime) -> str:
    """``UTC+08:00``: the offset from UTC `moment` (aware) is in."""
    offset = moment.strftime("%z")
    return f"UTC{offset[:3]}:{offset[3:]}"


#: The pollers table's widest host name; a longer one is cut.
_HOST_WIDTH = 30


def _poller_lines(
    pollers: list[PollerState], *, now: datetime, width: int, color: bool
) -> list[str]:
    """The pollers sharing the store, a line each: host, pid, start (in the digest
    timezone), last heartbeat (how long ago), state and feeds leased now; under a poller
    whose writes fail, since when and the error (wrapped to `width`). None: no line."""
    from aggregator.width import display_width

    if not pollers:
        return []
    others: dict[str, None] = {}
    states = [condition(p.poller, now) for p in pollers]
    counts = ", ".join(
        f"{sum(s is c for s in states)} {c}" for c in Condition if any(s is c for s in states)
    )
    rows = [("host", "pid", "started", "last seen", "state", "leases")]
    for p in pollers:
        rows.append(
            (
                _clip_end(_printable(p.poller.host), _HOST_WIDTH),
                str(p.poller.pid),
                _table_time(p.poller.started, now, others),
                _ago(p.poller.seen, now),
                "",  # the state, styled below
                str(p.leases),
            )
        )
    widths = [max(display_width(row[i]) for row in rows) for i in range(6)]
    widths[4] = max(len(c) for c in ("state", *states))

    def line(row: tuple[str, ...], state: str, fg: str | None) -> str:
        host, pid, started, seen, _, leases = row
        pad = " " * (widths[4] - len(state))
        shown_state = click.style(state, fg=fg) if color and fg else state
        return (
            f"  {host}{' ' * (widths[0] - display_width(host))}  {pid:>{widths[1]}}  "
            f"{started:<{widths[2]}}  {seen:<{widths[3]}}  {shown_state}{pad}  "
            f"{leases:>{widths[5]}}"
        )

    colors = {Condition.RUNNING: "green", Condition.STOPPED: None, Condition.SILENT: "red"}
    lines = [f"pollers sharing the store: {counts}", line(rows[0], "state", None)]
    for p, row, state in zip(pollers, rows[1:], states, strict=True):
        lines.append(line(row, state, colors[state]))
        if p.poller.storage_error and state is not Condition.STOPPED:
            since = p.poller.failing_since
            when = f" since {_table_time(since, now, others)}" if since else ""
            failing = f"writes FAILING{when}: {p.poller.storage_error}"
            lines += textwrap.wrap(
                failing, width, initial_indent="    ", subsequent_indent="      "
            )
    return lines + _offsets_note(others)


def _printable(text: str) -> str:
    """`text` with what a terminal would act on (escapes, line breaks) shown as "?": a host
    name comes from another machine sharing the store."""
    return "".join(c if c.isprintable() else "?" for c in text)


def _ago(then: datetime, now: datetime) -> str:
    """How long before `now` `then` was, in words: "12 s ago", "5 min ago", "3 h ago"."""
    seconds = max(int((now - then).total_seconds()), 0)
    if seconds < 120:
        return f"{seconds} s ago"
    if seconds < 120 * 60:
        return f"{seconds // 60} min ago"
    if seconds < 48 * 3600:
        return f"{seconds // 3600} h ago"
    return f"{seconds // 86400} d ago"


def _clip_end(text: str, width: int) -> str:
    """`text` cut to `width` columns, ending with "…" when cut."""
    from aggregator.width import display_width, fit

    if display_width(text) <= width:
        return text
    return fit(text, width - 1) + "…"


def _clip_middle(url: str, width: int) -> str:
    """`url` in `width` columns: its start (scheme and host) and its end (the file name)
    kept, the middle replaced by "…"."""
    from aggregator.width import display_width, fit

    if display_width(url) <= width:
        return url
    tail = max((width - 1) * 2 // 5, 1)
    end = fit(url[::-1], tail)[::-1]
    return f"{fit(url, width - 1 - tail)}…{end}"


def _email_lines(deliveries: list[EmailDelivery], tz: tzinfo) -> list[str]:
    """The digest email's state in words: the latest digest, then each failed delivery."""
    if not deliveries:
        return []

    def when(value: datetime) -> str:
        return value.astimezone(tz).strftime("%Y-%m-%d %H:%M")

    latest = max(d.digest for d in deliveries)
    of_latest = [d for d in deliveries if d.digest == latest]
    sent = [d for d in of_latest if d.status == DeliveryStatus.SENT]
    of_all = counted(len(of_latest), "recipient")
    lines = [f"email: digest {latest} sent to {len(sent)} of {of_all}"]
    for d in of_latest:
        if d.status == DeliveryStatus.SENT and d.sent_at:
            lines.append(f"  {d.recipient}: sent {when(d.sent_at)}")
    for d in deliveries:
        if d.status == DeliveryStatus.FAILED:
            retry = (
                f"next retry {when(d.next_attempt)}"
                if d.next_attempt
                else f"not retried; `aggregator digest --date {d.digest} --email` sends it"
            )
            lines.append(
                f"  {d.recipient}: digest {d.digest} FAILED after {counted(d.attempts, 'attempt')} "
                f"(last {when(d.last_attempt)}): {d.error}; {retry}"
            )
        elif d.status == DeliveryStatus.SENDING:
            lines.append(f"  {d.recipient}: digest {d.digest} sending since {when(d.last_attempt)}")
    return lines
