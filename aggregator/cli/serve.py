"""`serve`: the web pages, search and the operator endpoints over the database."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import click

from aggregator.cli.group import _Context, _guarded, cli
from aggregator.exceptions import (
    ConfigError,
    DatabasePathError,
    SchemaVersionError,
    StorageError,
)

if TYPE_CHECKING:
    from aggregator.config import Config


@cli.command()
@click.option(
    "--host",
    default=None,
    help="The address to listen on.  [default: [serve] host, else 127.0.0.1]",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=None,
    help="The port to listen on.  [default: [serve] port, else 8080]",
)
@click.pass_obj
@_guarded
def serve(obj: _Context, host: str | None, port: int | None) -> None:
    """Serve the stories, search, the digest archive and the feeds' health over HTTP.

    Pages: / (the last 24 hours' stories by topic), /stories/ID, /search?q=WORDS,
    /digests/, /feeds; for programs: /api/stories, /api/search, /healthz, /metrics
    (Prometheus). Read-only; no JavaScript.

    Listens on 127.0.0.1 unless told otherwise. Any other address needs [serve] token_env
    in feeds.toml, naming the environment variable that holds the token clients send (a
    bearer token, or a basic-auth password): without it, exits 2. Runs in the foreground
    until Ctrl-C or SIGTERM.
    """
    config = obj.config()
    host, port, token = listening(config, host, port)
    from aggregator.web.server import serve as run_server

    with obj.aggregator(read_only=True) as agg:
        if config.store_exists():
            try:
                agg.storage  # noqa: B018 (opened for its errors)
            except (DatabasePathError, SchemaVersionError):
                raise  # no command can use it (exit 2); not a passing 503 to serve on
            except StorageError:
                pass  # a server down, a file moved: /healthz says 503 until it clears
        try:
            run_server(agg, host, port, token=token)
        except OSError as e:
            raise ConfigError(f"cannot listen on {host}:{port}: {e}", path=str(config.path)) from e


def listening(config: Config, host: str | None, port: int | None) -> tuple[str, int, str | None]:
    """Where to listen (the options, else [serve]) and the token clients must send.

    Raises:
        ConfigError: the address is not a loopback one and no token is configured, or the
            token's environment variable is unset or empty, or holds what no client could
            send (access.token_problem).
    """
    from aggregator.web.access import is_loopback, token_problem

    host = host or config.serve.host
    port = config.serve.port if port is None else port
    token_env = config.serve.token_env
    if not token_env:
        if not is_loopback(host):
            raise ConfigError(
                f"listening on {host} needs a token: set [serve] token_env to the name of "
                "an environment variable holding it",
                path=str(config.path),
                key="serve.token_env",
            )
        return host, port, None
    token = os.environ.get(token_env)
    if not token:
        raise ConfigError(
            f"the token's environment variable {token_env} is not set (or empty)",
            path=str(config.path),
            key="serve.token_env",
        )
    problem = token_problem(token)
    if problem is not None:
        raise ConfigError(
            f"the token in the environment variable {token_env} {problem}: no client could send it",
            path=str(config.path),
            key="serve.token_env",
        )
    return host, port, token
