"""The `aggregator` command group and what its commands share: the config they name, turning
our errors into a message and an exit code, and -v/-q."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from aggregator import __version__
from aggregator.exceptions import AggregatorError, ConfigError

if TYPE_CHECKING:
    from aggregator.config import Config
    from aggregator.core import Aggregator


log = logging.getLogger("aggregator")


def quiet() -> bool:
    """Whether -q (errors only) was given to the command running."""
    context = click.get_current_context(silent=True)
    state = None if context is None else context.find_root().meta.get("aggregator.verbosity")
    return state is not None and bool(state.quiet)


def note(message: str, *, nl: bool = True) -> None:
    """A line on standard error saying what a command did (a count, the next step): not an
    error, so -q (errors only) leaves it out; a command's output stays on standard output."""
    if not quiet():
        click.echo(message, err=True, nl=nl)


def _fail(error: AggregatorError) -> NoReturn:
    click.echo(f"aggregator: error: {error}", err=True)
    sys.exit(error.exit_code)


class _Context:
    def __init__(self, config_path: Path) -> None:
        self.config_path = config_path

    def config(self, *, alerts: bool = False) -> Config:
        """feeds.toml; with `alerts`, for a command that delivers alerts: the variables
        they read must be set (config.require_alert_secrets)."""
        from aggregator.config import load_config, require_alert_secrets

        config = load_config(self.config_path)
        if alerts:
            require_alert_secrets(config)
        return config

    def aggregator(self, *, read_only: bool = False, alerts: bool = False) -> Aggregator:
        from aggregator.core import make_aggregator

        return make_aggregator(self.config(alerts=alerts), read_only=read_only)


#: The days a window can be made of in every timezone: a day's midnight in UTC, or the
#: day after it, is a date too.
FIRST_DAY, LAST_DAY = date.min + timedelta(days=1), date.max - timedelta(days=1)


def _parse_day(value: str | None, option: str) -> date | None:
    if value is None:
        return None
    try:
        day = date.fromisoformat(value)
    except ValueError as e:
        raise ConfigError(
            f"{option} must be a date like 2025-02-10, not {value!r}", key=option
        ) from e
    if not FIRST_DAY <= day <= LAST_DAY:
        raise ConfigError(
            f"{option} must be a date from {FIRST_DAY} to {LAST_DAY}, not {value!r}", key=option
        )
    return day


#: `--format table|json`: what `status` and `alerts` print.
table_or_json = click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
    help="A table for people, or a JSON list for programs.",
)


#: The exit code of a command interrupted by Ctrl-C (SIGINT): 128 + the signal's number,
#: as shells report it.
INTERRUPTED = 130


def _guarded(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn our errors into a message on stderr and the error's exit code, and Ctrl-C into
    "interrupted" and exit 130 (not click's "Aborted!" and 1, an operational failure's)."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except AggregatorError as e:
            _fail(e)
        except KeyboardInterrupt:
            click.echo("aggregator: interrupted", err=True)
            sys.exit(INTERRUPTED)

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
