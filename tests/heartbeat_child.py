"""The `aggregator` CLI in a process of its own with the daemon's heartbeat shortened, for
the tests of the pollers `status` lists (tests/test_status_pollers.py): a poller killed
with SIGKILL turns silent after 3 heartbeats, seconds rather than minutes.

    python tests/heartbeat_child.py SECONDS ARGS...
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aggregator import scheduler  # noqa: E402
from aggregator.cli import cli  # noqa: E402

if __name__ == "__main__":  # guarded: feature workers (spawn) import the main module again
    scheduler.HEARTBEAT_EVERY = float(sys.argv[1])
    cli(sys.argv[2:], prog_name="aggregator")
