"""The command line (click): parses arguments, calls core, turns our errors into exit codes."""

from __future__ import annotations

import itertools
import json
import logging
import os
import shlex
import shutil
import sys
import textwrap
from collections import Counter
from collections.abc import Callable
from datetime import date, datetime, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, NoReturn

import click

from aggregator import __version__
from aggregator.exceptions import AggregatorError, ConfigError, HtmlPageError, SendError
from aggregator.grammar import counted
from aggregator.types import DeliveryStatus, Feed, Format, PollStatus, SendStatus

# The commands import what they use: `--help`, `feeds list` and `status` must start
# without the fetching, deduplication and digest stacks (numpy, rjieba, httpx, Jinja2).
if TYPE_CHECKING:
    from aggregator.config import Config
    from aggregator.core import Aggregator, EmailDelivery, FeedStatus
    from aggregator.types import PollResult

log = logging.getLogger("aggregator")


def _fail(error: AggregatorError) -> NoReturn:
    click.echo(f"aggregator: error: {error}", err=True)
    sys.exit(error.exit_code)


class _Context:
    def __init__(self, config_path: Path) -> None:
        self.config_path = config_path

    def config(self) -> Config:
        from aggregator.config import load_config

        return load_config(self.config_path)

    def aggregator(self, *, read_only: bool = False) -> Aggregator:
        from aggregator.core import make_aggregator

        return make_aggregator(self.config(), read_only=read_only)


def _guarded(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn our errors into a message on stderr and the error's exit code."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except AggregatorError as e:
            _fail(e)

    wrapper.__name__ = func.__name__
    wrapper.__doc__ = func.__doc__
    return wrapper


class _Verbosity:
    """-v and -q as given so far, before or after the subcommand (`aggregator run -v`)."""

    def __init__(self) -> None:
        self.verbose = 0
        self.quiet = False
        self.owns_root: bool | None = None

    def apply(self) -> None:
        """-v: our DEBUG lines; -vv: the libraries' too (httpx, httpcore…); -q: errors only."""
        ours = logging.DEBUG if self.verbose else logging.ERROR if self.quiet else logging.INFO
        root = logging.getLogger()
        if self.owns_root is None:
            # A program embedding the CLI (or pytest) keeps its own logging setup.
            self.owns_root = not root.handlers
            if self.owns_root:
                logging.basicConfig(
                    stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s"
                )
        if self.owns_root:
            # -v keeps other libraries at INFO: their DEBUG (asyncio, charset detection) is noise.
            root.setLevel(
                logging.DEBUG if self.verbose > 1 else logging.INFO if self.verbose else ours
            )
        if self.verbose:
            logging.getLogger("aggregator").setLevel(logging.DEBUG)
        # Their INFO is a line per request or job: only with -vv.
        for noisy in ("httpx", "httpcore", "jieba", "apscheduler"):
            level = logging.NOTSET if self.verbose > 1 else max(ours, logging.WARNING)
            logging.getLogger(noisy).setLevel(level)


def _set_verbosity(ctx: click.Context, param: click.Parameter, value: int | bool) -> None:
    state = ctx.find_root().meta.setdefault("aggregator.verbosity", _Verbosity())
    if param.name == "verbose":
        state.verbose += int(value)
    elif value:
        state.quiet = True
    state.apply()


def _verbosity_options() -> list[click.Parameter]:
    """-v/--verbose and -q/--quiet, for the group and for every subcommand."""
    return [
        click.Option(
            ["-v", "--verbose"],
            count=True,
            expose_value=False,
            callback=_set_verbosity,
            help="Log our debugging detail to standard error (-vv: the libraries' too).",
        ),
        click.Option(
            ["-q", "--quiet"],
            is_flag=True,
            expose_value=False,
            callback=_set_verbosity,
            help="Log only errors.",
        ),
    ]


def _accept_verbosity(command: click.Command) -> None:
    """Let `command` and each of its subcommands take -v/-q (`aggregator run -v`)."""
    command.params.extend(_verbosity_options())
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            _accept_verbosity(sub)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=lambda: os.environ.get("AGGREGATOR_CONFIG", "feeds.toml"),
    show_default="./feeds.toml or $AGGREGATOR_CONFIG",
    help="The feeds.toml to use.",
)
@click.version_option(__version__, prog_name="aggregator")
@click.pass_context
def cli(ctx: click.Context, config_path: Path) -> None:
    """Follow many feeds and get one digest where each story appears once, with all its sources."""
    ctx.obj = _Context(config_path)


@cli.command()
@click.argument(
    "folder", required=False, type=click.Path(file_okay=False, path_type=Path), metavar="[DIR]"
)
@click.option(
    "--with-seeds",
    is_flag=True,
    help="Keep the built-in source: its feed, and a copy of the seeds folder next to it.",
)
@click.pass_obj
@_guarded
def init(obj: _Context, folder: Path | None, with_seeds: bool) -> None:
    """Write a commented feeds.toml to start from: in DIR, else where --config points.

    It is the shipped one (its topics, digest settings and commented-out example feeds)
    without the built-in seeds feed, unless --with-seeds, which also copies the seeds
    folder. An existing feeds.toml is never overwritten (exit 2).
    """
    from aggregator.config import init_config

    path = folder / "feeds.toml" if folder is not None else obj.config_path
    seeds = init_config(path, with_seeds=with_seeds)
    click.echo(f"wrote {path}")
    if seeds is not None:
        click.echo(f"copied the seeds to {seeds}", err=True)
    where = "" if path == Path("feeds.toml") else f" --config {shlex.quote(str(path))}"
    click.echo(
        f"next: `aggregator{where} feeds add URL` adds a feed, then `aggregator{where} poll`",
        err=True,
    )


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
    one line per feed otherwise, then a summary. Exits 0 even when some feeds fail; their
    errors are recorded (see `aggregator status`).
    """
    with obj.aggregator() as agg:
        only = agg.feeds_named(feeds) if feeds else None
        total = len(only if only is not None else agg.config.feeds)
        if sys.stderr.isatty() and total:
            results = _poll_with_progress(agg, force, total, only)
        else:
            results = agg.poll(force=force, only=only)
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
    click.echo(
        f"polled {counted(len(results), 'feed')}: {counts[PollStatus.OK]} ok, "
        f"{counts[PollStatus.NOT_MODIFIED]} not modified, {len(failed)} failed{skipped}; "
        f"{counted(new, 'new entry', 'new entries')}, {updated} updated",
        err=True,
    )
    for r in failed:
        click.echo(f"  failed: {r.feed_name}: {r.error}", err=True)
    for r in results:
        if r.status == PollStatus.SKIPPED:
            click.echo(f"  skipped: {r.feed_name}: {r.error}", err=True)


@cli.command()
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
    help="A table for people, or a JSON list for programs.",
)
@click.pass_obj
@_guarded
def status(obj: _Context, fmt: str) -> None:
    """Show each feed's health: last success and attempt, last error, failures, next poll.

    The table is followed by the digest email's state: the latest digest's deliveries,
    and every failed one with its error and next retry.

    A running daemon whose writes fail (a full disk) is reported under the table (with
    --format json, on standard error).

    Exits 1 when any enabled feed has failed [poll] failure_threshold times in a row
    (default 3), or the daemon cannot write the database, else 0, so it can be run from
    cron or a monitoring system. A damaged database is an error (exit 1) naming the fix.
    """
    with obj.aggregator(read_only=True) as agg:
        feeds = agg.status()
        deliveries = agg.email_status()
        report = agg.daemon_report()
        tz = agg.tz
        now = agg.clock().astimezone(tz)
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
        lines += _email_lines(deliveries, tz)
        # One write: 2,000 feeds are ~5,000 lines.
        click.echo("\n".join(lines), color=color)
    if storage_error:
        click.echo(storage_error, err=fmt == "json")
    if storage_error or any(f.failing for f in feeds):
        sys.exit(1)


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

    tz = now.tzinfo

    def when(value: datetime | None) -> str:
        if value is None:
            return "-"
        local = value.astimezone(tz)
        return f"{local:%m-%d %H:%M}" if local.year == now.year else f"{local:%Y-%m-%d}"

    def cell(text: str, size: int) -> str:
        return text + " " * max(size - display_width(text), 0)

    def styled(text: str, fg: str | None) -> str:
        return click.style(text, fg=fg) if color and fg else text

    numbers = 5 + 2 + 7  # "fails", "entries"
    name_width = max(width - 3 * (_TIME_WIDTH + 2) - numbers - 2, 12)
    columns = (name_width, _TIME_WIDTH, _TIME_WIDTH, _TIME_WIDTH)
    offset = now.strftime("%z")
    lines = [
        f"Times in {now.tzinfo} (UTC{offset[:3]}:{offset[3:]}), the digest timezone.",
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
    return lines


def _fit(text: str, width: int) -> str:
    """The longest start of `text` that takes at most `width` columns."""
    from aggregator.width import char_width

    used = 0
    for i, ch in enumerate(text):
        used += char_width(ch)
        if used > width:
            return text[:i]
    return text


def _clip_end(text: str, width: int) -> str:
    """`text` cut to `width` columns, ending with "…" when cut."""
    from aggregator.width import display_width

    if display_width(text) <= width:
        return text
    return _fit(text, width - 1) + "…"


def _clip_middle(url: str, width: int) -> str:
    """`url` in `width` columns: its start (scheme and host) and its end (the file name)
    kept, the middle replaced by "…"."""
    from aggregator.width import display_width

    if display_width(url) <= width:
        return url
    tail = max((width - 1) * 2 // 5, 1)
    end = _fit(url[::-1], tail)[::-1]
    return f"{_fit(url, width - 1 - tail)}…{end}"


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


def _parse_day(value: str | None, option: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError as e:
        raise ConfigError(
            f"{option} must be a date like 2025-02-10, not {value!r}", key=option
        ) from e


@cli.command()
@click.option(
    "--date",
    "day",
    metavar="D",
    help="The day to digest (YYYY-MM-DD, digest timezone). Default: today.",
)
@click.option("--since", metavar="D", help="First day of a range (YYYY-MM-DD).")
@click.option("--until", metavar="D", help="Last day of a range, inclusive (default: today).")
@click.option(
    "--format",
    "fmt",
    type=click.Choice([f.value for f in Format]),
    default="html",
    show_default=True,
    help="Output format.",
)
@click.option(
    "--output",
    metavar="PATH|-",
    help="Where to write only this format: a file, a folder (then <date or range>.<ext> in "
    "it) or '-' for standard output. Default: the digest "
    "folder, in every format (<date or range>.html/.txt/.json), with its index.html and "
    "feed.xml updated.",
)
@click.option(
    "--email",
    is_flag=True,
    help="Also email it to [digest.email] `to`: once per digest and recipient.",
)
@click.option(
    "--force",
    is_flag=True,
    help="With --email: send again to those who had it, and send it even with no story.",
)
@click.pass_obj
@_guarded
def digest(
    obj: _Context,
    day: str | None,
    since: str | None,
    until: str | None,
    fmt: str,
    output: str | None,
    email: bool,
    force: bool,
) -> None:
    """Make a digest of the stored entries for a day or a range of days.

    Without --output the digest goes to the digest folder as .html, .txt and .json, the
    folder's index.html and feed.xml (Atom) are updated, and the path of the --format
    file is printed; with --output - the digest itself is the only thing on standard output.

    With --email it is also mailed (text and HTML) to each recipient who has not had this
    digest yet; --force sends it again. A digest with no story is mailed only with --force
    or [digest.email] send_empty = true. A failed send exits 1; it is recorded, retried by
    the daemon, and shown by `status`. The files are written either way.
    """
    if day and (since or until):
        raise ConfigError("use either --date or --since/--until, not both", key="--date")
    if until and not since:
        raise ConfigError("--until needs --since", key="--until")
    if force and not email:
        raise ConfigError("--force only applies with --email", key="--force")
    from aggregator.core import Window

    with obj.aggregator() as agg:
        today = agg.today()
        first = _parse_day(day, "--date") or _parse_day(since, "--since") or today
        last = (
            _parse_day(day, "--date") or _parse_day(until, "--until") or (today if since else first)
        )
        if last < first:
            raise ConfigError(f"--until {last} is before --since {first}", key="--until")
        window = Window(first, last)
        format_ = Format(fmt)
        # Usage errors first: nothing is written when the email could not go.
        if email:
            agg.email_config()
        if not output:
            agg.check_output()
        the_digest = agg.make_digest(window)
        path: Path | None = None
        if output == "-":
            from aggregator.digest.render import render

            sys.stdout.write(render(the_digest, format_))
            sys.stdout.flush()
        elif output:
            path = Path(output)
            if output.endswith(("/", os.sep)) or path.is_dir():
                # A folder: the file is named as in the digest folder.
                path = path / agg.digest_path(window, format_).name
            path = agg.write_digest(the_digest, format_, path)
        else:
            # Into the archive: every format, and index.html and feed.xml brought up to date.
            agg.write_digest_files(window, the_digest)
            path = agg.digest_path(window, format_)
        if path is not None:
            click.echo(
                f"{counted(the_digest.story_count, 'story')}, "
                f"{counted(the_digest.entry_count, 'entry')} -> ",
                err=True,
                nl=False,
            )
            click.echo(str(path))
        if email:
            # One attempt each: the user sees failures now, the daemon retries them later.
            results = agg.send_digest_email(
                window, the_digest, force=force, send_empty=force, retry_now=False
            )
            for result in results:
                if result.status == SendStatus.SENT:
                    click.echo(f"emailed to {result.recipient}", err=True)
                elif result.status == SendStatus.ALREADY_SENT:
                    click.echo(
                        f"already emailed to {result.recipient} (--force sends again)", err=True
                    )
            failed = [
                f"{r.recipient} ({r.error})" for r in results if r.status == SendStatus.FAILED
            ]
            if failed:
                raise SendError(
                    f"not emailed to {'; '.join(failed)}; recorded, and retried by the daemon"
                )


@cli.command()
@click.pass_obj
@_guarded
def run(obj: _Context) -> None:
    """Run the daemon: poll each feed on its schedule and write the daily digest.

    Runs in the foreground, logging to standard error. SIGHUP, or saving feeds.toml,
    reloads the config without a restart; SIGTERM or SIGINT (Ctrl-C) stops it cleanly
    (exit 0). One daemon per database: a second one exits with code 2.
    """
    from aggregator.scheduler import run_daemon

    run_daemon(obj.config_path)


@cli.group()
def feeds() -> None:
    """List, add and remove the feeds in feeds.toml (comments and order are kept)."""


@feeds.command("list")
@click.pass_obj
@_guarded
def feeds_list(obj: _Context) -> None:
    """List the configured feeds: name, URL or path, interval.

    A feed that moved for good (HTTP 301/308) is marked with its new URL, and a disabled
    one with the reason; see `aggregator feeds update-urls` and `aggregator feeds enable`.
    """
    from aggregator.config import format_duration

    config = obj.config()
    states = {}
    if config.storage_path.exists():
        with obj.aggregator(read_only=True) as agg:
            states = {s.url: s for s in agg.status()}
    moved = 0
    for feed in config.feeds:
        interval = format_duration(feed.interval) if feed.interval else "default"
        line = f"{feed.name}\t{feed.url}\t{interval}"
        state = states.get(feed.url)
        if state is not None and state.redirected_url:
            line += f"\tmoved to {state.redirected_url}"
            moved += 1
        if state is not None and state.disabled:
            line += f"\tdisabled: {state.disabled_reason}"
        click.echo(line)
    if moved:
        click.echo(
            f"{counted(moved, 'feed')} moved permanently; `aggregator feeds update-urls` "
            f"writes the new {'URL' if moved == 1 else 'URLs'} into feeds.toml",
            err=True,
        )


@feeds.command("import")
@click.argument("file", type=click.File("rb"))
@click.pass_obj
@_guarded
def feeds_import(obj: _Context, file: BinaryIO) -> None:
    """Add the feeds of an OPML file (from another reader; '-' for standard input).

    Folders become each feed's `tags`; feeds already configured are skipped. The feeds
    are not fetched first: `aggregator poll` then `aggregator status` shows how they fare.
    """
    from aggregator.core import import_opml

    obj.config()  # a missing or broken feeds.toml is said before the OPML file is read
    result = import_opml(obj.config_path, file.read(), getattr(file, "name", "OPML"))
    for url, reason in result.skipped:
        click.echo(f"skipped {url}: {reason}", err=True)
    for feed in result.added:
        tags = f" [{', '.join(feed.tags)}]" if feed.tags else ""
        click.echo(f"added {feed.name} ({feed.url}){tags}")
    click.echo(
        f"{counted(len(result.added), 'feed')} added, {len(result.skipped)} skipped, "
        f"to {obj.config_path}",
        err=True,
    )


@feeds.command("export")
@click.pass_obj
@_guarded
def feeds_export(obj: _Context) -> None:
    """Write the configured feeds as OPML to standard output (tags become folders).

    Local files and folders have no URL another reader could use and are left out.
    """
    from aggregator import clock
    from aggregator.core import export_opml

    document, local = export_opml(obj.config(), clock.now())
    sys.stdout.write(document)
    for feed in local:
        click.echo(f"left out the local source {feed.name} ({feed.url})", err=True)


@feeds.command("update-urls")
@click.pass_obj
@_guarded
def feeds_update_urls(obj: _Context) -> None:
    """Write the new URLs of feeds that moved permanently (HTTP 301/308) into feeds.toml.

    Comments and order in feeds.toml are kept; stored entries stay with their feed.
    """
    with obj.aggregator() as agg:
        moved = agg.update_urls()
    if not moved:
        click.echo("no feed has moved", err=True)
    for feed, new_url in moved:
        click.echo(f"{feed.name}: {feed.url} -> {new_url}")


@feeds.command("enable")
@click.argument("url_or_name")
@click.pass_obj
@_guarded
def feeds_enable(obj: _Context, url_or_name: str) -> None:
    """Poll a feed again that was disabled (e.g. after HTTP 410 Gone); forget its failures."""
    with obj.aggregator() as agg:
        feed = agg.enable(url_or_name)
    click.echo(f"enabled {feed.name} ({feed.url})")


@feeds.command("add")
@click.argument("url")
@click.option("--name", help="Display name (default: the feed's title or host).")
@click.option(
    "--interval", metavar="DUR", help="Fixed polling interval, e.g. 30s, 15m, 2h, or seconds: 300."
)
@click.option("--no-check", is_flag=True, help="Add without fetching the feed first.")
@click.option(
    "--pick",
    type=int,
    metavar="N",
    help="When URL is a web page, add the N-th feed it links to (as listed without --pick).",
)
@click.pass_obj
@_guarded
def feeds_add(
    obj: _Context,
    url: str,
    name: str | None,
    interval: str | None,
    no_check: bool,
    pick: int | None,
) -> None:
    """Add a feed (http/https URL, or a local file or folder) to feeds.toml.

    Unless --no-check, the URL is fetched and must be a readable feed. When it is a web
    page instead, the feeds the page links to (<link rel="alternate">) are listed, and
    --pick N adds one of them.
    """
    from aggregator.config import add_feed, duration_option, refuse_configured
    from aggregator.core import make_aggregator

    config = obj.config()
    seconds_or_text: str | int | None = None
    if interval is not None:
        try:
            seconds_or_text = duration_option(interval)
        except ValueError as e:
            raise ConfigError(str(e), key="--interval") from e
    if url.lower().startswith("file://"):
        url = _file_url_path(url)
    elif "://" in url and not url.lower().startswith(("http://", "https://")):
        raise ConfigError(
            f"{url}: a feed is an http(s) URL, a file:// URL or a local path", key="url"
        )
    if "://" not in url:
        local = Path(url).resolve()
        if not no_check and not local.exists():
            raise ConfigError(f"{url}: no such file or folder", key="url")
        url = os.path.relpath(local, config.path.parent.resolve())
    # Before any fetch: a feed already there is refused however its URL is written, and
    # a name given that another feed has.
    refuse_configured(config, url, name)
    if not no_check:
        probe = Feed(
            url=url,
            name=name or url,
            path=(config.path.parent / url).resolve() if "://" not in url else None,
        )
        # Read-only: checking a URL writes nothing, nor creates the database.
        with make_aggregator(config, read_only=True) as agg:
            try:
                parsed, moved = agg.check(probe)
            except HtmlPageError as e:
                if not e.feed_links:
                    raise
                if pick is None and len(e.feed_links) > 1:
                    _offer(url, e.feed_links)
                if pick is not None and not 1 <= pick <= len(e.feed_links):
                    raise ConfigError(
                        f"--pick must be between 1 and {len(e.feed_links)}", key="--pick"
                    ) from e
                page, url = url, e.feed_links[(pick or 1) - 1]
                if pick is None:  # the page's one feed: no need to ask which
                    click.echo(f"{page} is a web page linking to one feed: {url}", err=True)
                else:
                    click.echo(f"the page links to the feed {url}", err=True)
                refuse_configured(config, url)
                probe = Feed(url=url, name=name or url)
                parsed, moved = agg.check(probe)
        if probe.path is not None and probe.path.is_dir() and not parsed.entries:
            _refuse_folder(url, probe.path, parsed.warnings)
        if moved:
            click.echo(f"{url} moved permanently to {moved}: adding that", err=True)
            url = moved
        if name is None and parsed.title:
            name = _free_name(config, parsed.title)
            if name != parsed.title:
                click.echo(
                    f"a feed named {parsed.title!r} is already configured: naming this one "
                    f"{name!r} (--name gives another)",
                    err=True,
                )
        click.echo(f"{url}: a feed with {counted(len(parsed.entries), 'entry')}", err=True)
    added = add_feed(config.path, url, name=name, interval=seconds_or_text)
    click.echo(f"added {added.name} ({added.url}) to {config.path}")


def _refuse_folder(url: str, folder: Path, unread: list[str]) -> NoReturn:
    """A folder without one entry would be a feed that never has any: say why.

    Raises:
        ConfigError: always; `unread` are the reasons its files gave no entry.
    """
    # As sources/files.py reads a folder: its visible files, not subfolders.
    files = [f for f in folder.iterdir() if not f.name.startswith(".") and not f.is_dir()]
    if not files:
        raise ConfigError(
            f"{url}: the folder has no files; put article files in it (Markdown, or feed "
            "files: see README, Local sources) and add it again",
            key="url",
        )
    reasons = f" ({'; '.join(unread[:3])}{'; …' if len(unread) > 3 else ''})" if unread else ""
    raise ConfigError(
        f"{url}: none of the folder's {counted(len(files), 'file')} holds an article or a feed "
        f"entry{reasons}; see README, Local sources",
        key="url",
    )


def _file_url_path(url: str) -> str:
    """The local path a file:// URL names (on this machine: no host, or localhost).

    Raises:
        ConfigError: the URL names another host.
    """
    from urllib.parse import urlsplit
    from urllib.request import url2pathname

    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        raise ConfigError(f"{url}: a file:// URL must name a file on this machine", key="url")
    return url2pathname(parts.path)


def _free_name(config: Config, title: str) -> str:
    """The feed's title as its name, numbered when another feed has it: "News (2)"."""
    taken = {feed.name for feed in config.feeds}
    candidates = itertools.chain([title], (f"{title} ({n})" for n in itertools.count(2)))
    return next(name for name in candidates if name not in taken)


def _offer(url: str, links: tuple[str, ...]) -> NoReturn:
    click.echo(f"aggregator: {url} is an HTML page, not a feed. It links to:", err=True)
    for number, link in enumerate(links, 1):
        click.echo(f"  {number}. {link}", err=True)
    click.echo(f"Add one with: aggregator feeds add {url} --pick N (or give its URL)", err=True)
    sys.exit(1)


@feeds.command("remove")
@click.argument("url_or_name")
@click.pass_obj
@_guarded
def feeds_remove(obj: _Context, url_or_name: str) -> None:
    """Remove a feed from feeds.toml by URL or name (its stored entries are kept)."""
    from aggregator.config import remove_feed

    config_path = obj.config_path
    removed = remove_feed(config_path, url_or_name)
    click.echo(f"removed {removed.name} ({removed.url}) from {config_path}")


_accept_verbosity(cli)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="aggregator")
