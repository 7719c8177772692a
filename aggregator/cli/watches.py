"""`watches list`, `watches test` and `alerts`: the watches, what they would match, what
they sent."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, tzinfo
from typing import TYPE_CHECKING, Any

import click

from aggregator.cli.group import _Context, _guarded, _parse_day, cli, note, table_or_json
from aggregator.grammar import counted

if TYPE_CHECKING:
    from aggregator.config import WatchConfig
    from aggregator.core import AlertRecord

#: `watches test` looks at stories published in this many last days by default.
TEST_DAYS = 7


@cli.group()
def watches() -> None:
    """The [[watches]] of feeds.toml: list them, or test one on the stored stories."""


@watches.command("list")
@click.pass_obj
@_guarded
def watches_list(obj: _Context) -> None:
    """List the watches: name, what they look for, their channels, alerts sent."""
    with obj.aggregator(read_only=True) as agg:
        configured = agg.config.watches
        sent = agg.alerts_sent() if configured and agg.config.store_exists() else {}
    if not configured:
        note("no watches: add a [[watches]] table to feeds.toml")
        return
    for watch in configured:
        click.echo(
            f"{watch.name}\t{query_summary(watch)}\t{', '.join(watch.notify)}\t"
            f"{counted(sent.get(watch.name, 0), 'alert')} sent"
        )


def query_summary(watch: WatchConfig) -> str:
    """What a watch looks for, in one line: `AI峰会 | summit +巴黎 -体育 topic:AI …`."""
    parts = [" | ".join(watch.keywords)]
    parts += [f"+{w}" for w in watch.all]
    parts += [f"-{w}" for w in watch.none]
    parts += [f"topic:{t}" for t in watch.topics]
    parts += [f"feed:{f}" for f in watch.feeds]
    if watch.min_sources > 1:
        parts.append(f"sources>={watch.min_sources}")
    if watch.renotify_sources:
        parts.append(f"again every +{watch.renotify_sources}")
    return " ".join(parts)


@watches.command("test")
@click.argument("name")
@click.option(
    "--since",
    metavar="D",
    help=f"Stories with an entry published from this day on (YYYY-MM-DD; default: the "
    f"last {TEST_DAYS} days).",
)
@click.pass_obj
@_guarded
def watches_test(obj: _Context, name: str, since: str | None) -> None:
    """Show the stored stories the watch NAME matches now, with their sources (distinct
    feeds), newest first; sends nothing and writes nothing.

    A story carried by fewer feeds than the watch's min_sources is listed, marked "below
    min_sources": it would alert once enough feeds carry it.
    """
    with obj.aggregator(read_only=True) as agg:  # sends nothing: needs no secret
        watch = agg.watch(name)
        tz = agg.tz
        now = agg.clock()
        first = _parse_day(since, "--since")
        start = (
            datetime.combine(first, datetime.min.time(), tz)
            if first is not None
            else now - timedelta(days=TEST_DAYS)
        )
        found = agg.test_watch(watch, start, now + timedelta(days=1))
    for match in found:
        below = "  (below min_sources)" if match.sources < watch.min_sources else ""
        click.echo(
            f"{match.story_id}\t{counted(match.sources, 'source')}\t{match.topic}\t"
            f"{match.headline}{below}"
        )
    note(f"{counted(len(found), 'story', 'stories')} match {name!r}")


@cli.command()
@click.option("--since", metavar="D", help="Alerts recorded from this day on (YYYY-MM-DD).")
@table_or_json
@click.pass_obj
@_guarded
def alerts(obj: _Context, since: str | None, fmt: str) -> None:
    """List the watches' alerts, newest first: story, watch, channel, reason, time, status
    (due, sending, sent, failed), attempts, error and next retry.

    With --format json, a list of objects with those keys (docs/watches.md).
    """
    with obj.aggregator(read_only=True) as agg:
        tz = agg.tz
        first = _parse_day(since, "--since")
        start = datetime.combine(first, datetime.min.time(), tz) if first else None
        recorded = agg.alerts(start) if agg.config.store_exists() else []
    if fmt == "json":
        click.echo(json.dumps([alert_dict(a) for a in recorded], ensure_ascii=False, indent=2))
        return
    for alert in recorded:
        click.echo("\t".join(alert_row(alert, tz)))
    note(counted(len(recorded), "alert"))


def alert_dict(alert: AlertRecord) -> dict[str, Any]:
    """An alert as `alerts --format json` lists it."""
    return {
        "id": alert.id,
        "story": str(alert.story_id),
        "headline": _headline(alert),
        "watch": alert.watch,
        "channel": alert.channel,
        "reason": alert.reason,
        "sources": alert.sources,
        "created_at": alert.created_at.isoformat(),
        "status": str(alert.status),
        "attempts": alert.attempts,
        "last_attempt": alert.last_attempt.isoformat() if alert.last_attempt else None,
        "sent_at": alert.sent_at.isoformat() if alert.sent_at else None,
        "next_attempt": alert.next_attempt.isoformat() if alert.next_attempt else None,
        "error": alert.error,
        "receipt": alert.receipt,
    }


def alert_row(alert: AlertRecord, tz: tzinfo) -> list[str]:
    """An alert as the `alerts` table and `status` show it."""
    state = str(alert.status)
    if alert.error:
        retry = (
            f"; next retry {alert.next_attempt.astimezone(tz):%Y-%m-%d %H:%M}"
            if alert.next_attempt
            else "; not retried"
        )
        state += f" ({alert.error}{retry})"
    return [
        f"{alert.created_at.astimezone(tz):%Y-%m-%d %H:%M}",
        alert.watch,
        alert.channel,
        f"{alert.reason} ({counted(alert.sources, 'source')})",
        f"story {alert.story_id}: {_headline(alert)}",
        state,
        counted(alert.attempts, "attempt"),
    ]


def _headline(alert: AlertRecord) -> str:
    try:
        return str(json.loads(alert.payload)["story"]["headline"])
    except (ValueError, KeyError, TypeError):
        return ""
