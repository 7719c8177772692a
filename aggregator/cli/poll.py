"""`poll` (every feed once, now) and `run` (the daemon)."""

from __future__ import annotations

import logging
import sys
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING

import click

from aggregator.cli.group import _Context, _guarded, cli, note, quiet
from aggregator.exceptions import ConfigError
from aggregator.grammar import counted
from aggregator.types import Feed, PollStatus

if TYPE_CHECKING:
    from aggregator.core import Aggregator
    from aggregator.types import PollResult


@cli.command()
@click.option(
    "--force",
    is_flag=True,
    help="Also fetch disabled feeds and those whose server asked us to wait (Retry-After).",
)
@click.argument("feeds", nargs=-1, metavar="[FEED]...")
@click.pass_obj
@_guarded
def poll(obj: _Context, force: bool, feeds: tuple[str, ...]) -> None:
    """Poll every enabled feed once, now, concurrently; store new and edited entries; exit.

    With FEED arguments (names or URLs), poll only those.

    Feeds whose server asked us to wait (429/503 with Retry-After) and feeds disabled
    after a 410 Gone are skipped unless --force. Shows a progress bar on a terminal and
    one line per feed otherwise, then a summary (with -q, only the feeds that failed).
    Exits 0 even when some feeds fail; their errors are recorded (see `aggregator status`).
    The watches' alerts due are then delivered before it exits (failures are recorded and
    retried: `aggregator alerts`).
    """
    from aggregator.parallel import batched_gc

    with batched_gc(), obj.aggregator(alerts=True) as agg:
        only = agg.feeds_named(feeds) if feeds else None
        total = len(only if only is not None else agg.config.feeds)
        if sys.stderr.isatty() and total and not quiet():
            results = _poll_with_progress(agg, force, total, only)
        else:
            results = agg.poll(force=force, only=only)
        agg.wait_alerts()  # each delivery is bounded by its channel's timeout
    _summarise(results)


def _poll_with_progress(
    agg: Aggregator, force: bool, total: int, only: list[Feed] | None
) -> list[PollResult]:
    from rich.console import Console
    from rich.logging import RichHandler
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console(stderr=True)
    root = logging.getLogger()
    saved = root.handlers[:]
    # Log lines scroll above the bar instead of tearing it.
    root.handlers = [RichHandler(console=console, show_path=False, show_time=False)]
    try:
        with Progress(
            TextColumn("polling"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        ) as progress:
            task = progress.add_task("", total=total)

            def advance(result: PollResult) -> None:
                progress.update(task, advance=1, description=result.feed_name)

            return agg.poll(force=force, on_result=advance, only=only)
    finally:
        root.handlers = saved


def _summarise(results: list[PollResult]) -> None:
    counts = Counter(r.status for r in results)
    failed = [r for r in results if r.status in (PollStatus.ERROR, PollStatus.GONE)]
    new = sum(r.new for r in results)
    updated = sum(r.updated for r in results)
    skipped = f", {counts[PollStatus.SKIPPED]} skipped" if counts[PollStatus.SKIPPED] else ""
    note(
        f"polled {counted(len(results), 'feed')}: {counts[PollStatus.OK]} ok, "
        f"{counts[PollStatus.NOT_MODIFIED]} not modified, {len(failed)} failed{skipped}; "
        f"{counted(new, 'new entry', 'new entries')}, {updated} updated"
    )
    for r in failed:
        click.echo(f"  failed: {r.feed_name}: {r.error}", err=True)
    for r in results:
        if r.status == PollStatus.SKIPPED:
            note(f"  skipped: {r.feed_name}: {r.error}")


@cli.command()
@click.option(
    "--serve",
    "serving",
    is_flag=True,
    help="Also serve the web pages ([serve] host and port), as `aggregator serve` does.",
)
@click.pass_obj
@_guarded
def run(obj: _Context, serving: bool) -> None:
    """Run the daemon: poll each feed on its schedule and write the daily digest.

    Runs in the foreground, logging to standard error. SIGHUP, or saving feeds.toml,
    reloads the config without a restart; SIGTERM or SIGINT (Ctrl-C) stops it cleanly
    (exit 0). One daemon per database: a second one exits with code 2.

    With --serve, the same process serves the web pages (see `aggregator serve`; its
    /healthz also says whether the daemon's scheduler runs).
    """
    from aggregator.scheduler import run_daemon

    if not serving:
        run_daemon(obj.config_path)
        return
    from aggregator.cli.serve import listening

    host, port, token = listening(obj.config(), None, None)

    def start(agg: Aggregator, problem: Callable[[], str | None]) -> Callable[[], None]:
        from aggregator.web.server import serve_in_thread

        try:
            served = serve_in_thread(agg, host, port, token=token, scheduler=problem)
        except OSError as e:
            raise ConfigError(f"cannot listen on {host}:{port}: {e}", key="serve.port") from e
        logging.getLogger("aggregator").info("serving on http://%s:%d/", host, served.port)
        return served.stop

    run_daemon(obj.config_path, serve=start)
