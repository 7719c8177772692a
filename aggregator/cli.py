"""The command line (click): parses arguments, calls core, turns our errors into exit codes."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any, NoReturn

import click

from aggregator import __version__
from aggregator.config import (
    Config,
    add_feed,
    format_duration,
    load_config,
    parse_duration,
    remove_feed,
)
from aggregator.core import Aggregator, Window, make_aggregator
from aggregator.exceptions import AggregatorError, ConfigError, SendError
from aggregator.types import Feed, Format, PollResult

log = logging.getLogger("aggregator")


def _fail(error: AggregatorError) -> NoReturn:
    click.echo(f"aggregator: error: {error}", err=True)
    sys.exit(error.exit_code)


class _Context:
    def __init__(self, config_path: Path) -> None:
        self.config_path = config_path

    def config(self) -> Config:
        return load_config(self.config_path)

    def aggregator(self) -> Aggregator:
        return make_aggregator(self.config())


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


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=lambda: os.environ.get("AGGREGATOR_CONFIG", "feeds.toml"),
    show_default="./feeds.toml or $AGGREGATOR_CONFIG",
    help="The feeds.toml to use.",
)
@click.option("-v", "--verbose", is_flag=True, help="Log debugging detail to standard error.")
@click.option("-q", "--quiet", is_flag=True, help="Log only errors.")
@click.version_option(__version__, prog_name="aggregator")
@click.pass_context
def cli(ctx: click.Context, config_path: Path, verbose: bool, quiet: bool) -> None:
    """Follow many feeds and get one digest where each story appears once, with all its sources."""
    level = logging.DEBUG if verbose else logging.ERROR if quiet else logging.INFO
    logging.basicConfig(
        level=level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s"
    )
    if not verbose:
        for noisy in ("httpx", "httpcore", "jieba", "apscheduler"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
    ctx.obj = _Context(config_path)


@cli.command()
@click.pass_obj
@_guarded
def poll(obj: _Context) -> None:
    """Poll every configured feed once, store new and edited entries, then exit.

    Exits 0 even when some feeds fail; their errors are recorded (see `status`)
    and summarised on standard error.
    """
    with obj.aggregator() as agg:
        results = agg.poll()
    _summarise(results)


def _summarise(results: list[PollResult]) -> None:
    ok = sum(r.status == "ok" for r in results)
    failed = [r for r in results if r.status == "error"]
    new = sum(r.new for r in results)
    updated = sum(r.updated for r in results)
    click.echo(
        f"polled {len(results)} feeds: {ok} ok, {len(failed)} failed; "
        f"{new} new entries, {updated} updated",
        err=True,
    )
    for r in failed:
        click.echo(f"  failed: {r.feed_name}: {r.error}", err=True)


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
    help="Where to write only this format; '-' for standard output. Default: the digest "
    "folder, in every format (<date or range>.html/.txt/.json), with its index.html and "
    "feed.xml updated.",
)
@click.option(
    "--email",
    is_flag=True,
    help="Also email it to [digest.email] `to`: once per digest and recipient.",
)
@click.option("--force", is_flag=True, help="With --email: send again to those who had it.")
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
    digest yet; --force sends it again. A failed send exits 1; it is recorded, retried by
    the daemon, and shown by `status`. The files are written either way.
    """
    if day and (since or until):
        raise ConfigError("use either --date or --since/--until, not both", key="--date")
    if until and not since:
        raise ConfigError("--until needs --since", key="--until")
    if force and not email:
        raise ConfigError("--force only applies with --email", key="--force")
    with obj.aggregator() as agg:
        today = agg.today()
        first = _parse_day(day, "--date") or _parse_day(since, "--since") or today
        last = (
            _parse_day(day, "--date") or _parse_day(until, "--until") or (today if since else first)
        )
        if last < first:
            raise ConfigError(f"--until {last} is before --since {first}", key="--until")
        window = Window(first, last)
        the_digest = agg.make_digest(window)
        format_ = Format(fmt)
        path: Path | None = None
        if output == "-":
            from aggregator.digest.render import render

            sys.stdout.write(render(the_digest, format_))
            sys.stdout.flush()
        elif output:
            path = agg.write_digest(the_digest, format_, Path(output))
        else:
            # Into the archive: every format, and index.html and feed.xml brought up to date.
            agg.write_digest_files(window, the_digest)
            path = agg.digest_path(window, format_)
        if path is not None:
            click.echo(
                f"{the_digest.story_count} stories, {the_digest.entry_count} entries -> ",
                err=True,
                nl=False,
            )
            click.echo(str(path))
        if email:
            # One attempt each: the user sees failures now, the daemon retries them later.
            results = agg.send_digest_email(window, the_digest, force=force, retry_now=False)
            for result in results:
                if result.status == "sent":
                    click.echo(f"emailed to {result.recipient}", err=True)
                elif result.status == "already sent":
                    click.echo(
                        f"already emailed to {result.recipient} (--force sends again)", err=True
                    )
            failed = [f"{r.recipient} ({r.error})" for r in results if r.status == "failed"]
            if failed:
                raise SendError(
                    f"not emailed to {'; '.join(failed)}; recorded, and retried by the daemon"
                )


@cli.command()
@click.pass_obj
@_guarded
def run(obj: _Context) -> None:
    """Run the daemon: poll each feed on its schedule and write the daily digest."""
    from aggregator.scheduler import run_daemon

    run_daemon(obj.config_path)


@cli.group()
def feeds() -> None:
    """List, add and remove the feeds in feeds.toml (comments and order are kept)."""


@feeds.command("list")
@click.pass_obj
@_guarded
def feeds_list(obj: _Context) -> None:
    """List the configured feeds: name, URL or path, interval."""
    config = obj.config()
    for feed in config.feeds:
        interval = format_duration(feed.interval) if feed.interval else "default"
        click.echo(f"{feed.name}\t{feed.url}\t{interval}")


@feeds.command("add")
@click.argument("url")
@click.option("--name", help="Display name (default: the feed's title or host).")
@click.option("--interval", metavar="DUR", help="Fixed polling interval, e.g. 30s, 15m, 2h.")
@click.option("--no-check", is_flag=True, help="Add without fetching the feed first.")
@click.pass_obj
@_guarded
def feeds_add(
    obj: _Context, url: str, name: str | None, interval: str | None, no_check: bool
) -> None:
    """Add a feed (http/https URL, or a local file or folder) to feeds.toml.

    Unless --no-check, the URL is fetched and must be a readable feed.
    """
    config = obj.config()
    if interval is not None:
        try:
            parse_duration(interval)
        except ValueError as e:
            raise ConfigError(str(e), key="--interval") from e
    if "://" not in url:
        local = Path(url).resolve()
        if not no_check and not local.exists():
            raise ConfigError(f"{url}: no such file or folder", key="url")
        url = os.path.relpath(local, config.path.parent.resolve())
    if not no_check:
        probe = Feed(
            url=url,
            name=name or url,
            path=(config.path.parent / url).resolve() if "://" not in url else None,
        )
        with make_aggregator(config) as agg:
            parsed = agg.read(probe)
        if name is None and parsed.title:
            name = parsed.title
        click.echo(f"{url}: a feed with {len(parsed.entries)} entries", err=True)
    added = add_feed(config.path, url, name=name, interval=interval)
    click.echo(f"added {added.name} ({added.url}) to {config.path}")


@feeds.command("remove")
@click.argument("url_or_name")
@click.pass_obj
@_guarded
def feeds_remove(obj: _Context, url_or_name: str) -> None:
    """Remove a feed from feeds.toml by URL or name (its stored entries are kept)."""
    config_path = obj.config_path
    removed = remove_feed(config_path, url_or_name)
    click.echo(f"removed {removed.name} ({removed.url}) from {config_path}")


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="aggregator")
