"""The command line (click): parses arguments, calls core, turns our errors into exit codes.

group: the `aggregator` group and what its commands share; a module per command group:
feeds (`init`, `feeds …`), poll (`poll`, `run`), status, digest, watches (`watches …`,
`alerts`), storage (`storage migrate`), serve.
"""

import gc

# The commands import what they use: `--help`, `feeds list` and `status` must start
# without the fetching, deduplication and digest stacks (numpy, rjieba, httpx, Jinja2).
from aggregator.cli import (  # noqa: F401  (registers the commands)
    digest,
    feeds,
    poll,
    serve,
    status,
    storage,
    watches,
)
from aggregator.cli.group import _accept_verbosity, cli

_accept_verbosity(cli)


def main() -> None:
    """Console-script entry point: runs one command, then the process ends (its heap is
    frozen for the exit: a caller that goes on after it keeps a frozen heap)."""
    try:
        cli(prog_name="aggregator")  # (ends with SystemExit, click's standalone mode)
    finally:
        # The process ends: its heap is left to the exit, as `aggregator.parallel.ending`
        # leaves the placing process's and the workers' (not imported: `--help` starts
        # without it).
        gc.freeze()


__all__ = ["cli", "main"]
