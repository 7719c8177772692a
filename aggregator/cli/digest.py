"""`digest`: a digest for a day or a range of days, written, printed or mailed."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from aggregator.cli.group import _Context, _guarded, _parse_day, cli, note
from aggregator.exceptions import ConfigError, SendError
from aggregator.grammar import counted, entries_counted
from aggregator.types import Format, SendStatus


@cli.command()
@click.option(
    "--date",
    "day",
    metavar="D",
    help="The day to digest (YYYY-MM-DD, digest timezone): once the daemon made its daily "
    "digest, that digest (late arrivals too) with the day's news stored since. Default: today.",
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
        if last < first and until is None:  # --since a day to come, to today
            raise ConfigError(
                f"--since {first} is after today ({today}, {agg.tz}); "
                "give --until too for days to come",
                key="--since",
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
        # A day's digest is its daily digest (late arrivals and all) once that was made.
        the_digest = agg.make_day(first) if first == last and day else agg.make_digest(window)
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
            note(
                f"{counted(the_digest.story_count, 'story')}, "
                f"{entries_counted(the_digest.entry_count, the_digest.late_count)} -> ",
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
                    note(f"emailed to {result.recipient}")
                elif result.status == SendStatus.ALREADY_SENT:
                    note(f"already emailed to {result.recipient} (--force sends again)")
            failed = [
                f"{r.recipient} ({r.error})" for r in results if r.status == SendStatus.FAILED
            ]
            if failed:
                raise SendError(
                    f"not emailed to {'; '.join(failed)}; recorded, and retried by the daemon"
                )
