"""`aggregator poll` in a process of its own for the kill -9 test of alerts
(tests/test_watches.py): the real poll, evaluation and delivery (notify.deliver). With a
marker path, each delivery first writes the marker and then hangs, so the test can kill
the process between "alert recorded" and "alert delivered".

    python tests/alert_child.py FEEDS_TOML [MARKER]
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aggregator.config import Config, load_config  # noqa: E402
from aggregator.core import make_aggregator  # noqa: E402
from aggregator.notify import deliver as notify  # noqa: E402
from aggregator.types import AlertPayload  # noqa: E402


def main() -> None:
    config_path = Path(sys.argv[1])
    marker = Path(sys.argv[2]) if len(sys.argv) > 2 else None

    def deliver(
        channel: str, payload: AlertPayload, config: Config, *, env: Mapping[str, str]
    ) -> str | None:
        if marker is not None:
            marker.write_text("delivering", encoding="utf-8")
            time.sleep(3600)  # killed here
        return notify(channel, payload, config, env=env)

    with make_aggregator(load_config(config_path), deliver=deliver) as agg:
        agg.poll()
        agg.wait_alerts()


if __name__ == "__main__":
    main()
