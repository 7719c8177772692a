"""`storage migrate`: the SQLite database copied into a new PostgreSQL database."""

from __future__ import annotations

import click

from aggregator.cli.group import _Context, _guarded, cli, note
from aggregator.grammar import counted


@cli.group()
def storage() -> None:
    """The database itself: copy it from SQLite into PostgreSQL."""


@storage.command()
@click.option(
    "--to",
    "to",
    required=True,
    metavar="URL",
    help="The new PostgreSQL database: postgresql://user@host:port/dbname (no password).",
)
@click.option(
    "--password-env",
    metavar="VAR",
    help="The environment variable holding the PostgreSQL password.",
)
@click.pass_obj
@_guarded
def migrate(obj: _Context, to: str, password_env: str | None) -> None:
    """Copy the SQLite database ([storage] path) into a new PostgreSQL database.

    Copies everything: entries, articles and stories, feed state and poll records, digest
    runs and email deliveries, in one transaction, then counts every table in both and
    prints each table's rows. Refuses a target that already holds anything, and an SQLite
    database `aggregator run` is writing (stop it first). Then point [storage] url at the
    new database (and remove path).
    """
    from aggregator.core import copy_to_postgres

    counts = copy_to_postgres(obj.config(), to, password_env=password_env)
    for table, rows in counts.items():
        click.echo(f"{table}\t{rows}")
    note(
        f"copied {counted(counts['entries'], 'entry')} and every other table into {to}; "
        "set [storage] url to it (and remove path) to use it"
    )
