"""APScheduler wiring only: each feed on its interval, the daily digest at [digest] time."""

from __future__ import annotations

import logging
import signal
from datetime import timedelta
from pathlib import Path
from types import FrameType

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from aggregator.config import DEFAULT_INTERVAL, load_config
from aggregator.core import Aggregator, Window, make_aggregator
from aggregator.types import Format

log = logging.getLogger("aggregator")


def write_daily_digest(agg: Aggregator) -> None:
    """Write the digest of yesterday (digest timezone), the last whole day, in every format."""
    yesterday = agg.today() - timedelta(days=1)
    window = Window(yesterday, yesterday)
    digest = agg.make_digest(window)
    for fmt in Format:
        path = agg.write_digest(digest, fmt, agg.digest_path(window, fmt))
        log.info("digest written: %s", path)


def run_daemon(config_path: Path) -> None:
    """Poll every feed now and then on its interval; write the digest daily; stop on SIGTERM/SIGINT.

    Raises:
        ConfigError, StorageError: the config or the database cannot be used.
    """
    config = load_config(config_path)
    agg = make_aggregator(config)
    # One worker: the storage connection is used by one job at a time.
    scheduler = BlockingScheduler(
        executors={"default": ThreadPoolExecutor(1)},
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 3600},
    )
    for feed in config.feeds:
        every: timedelta = feed.interval or DEFAULT_INTERVAL
        scheduler.add_job(
            agg.poll_feed,
            IntervalTrigger(seconds=every.total_seconds(), jitter=None),
            args=[feed],
            id=f"poll:{feed.url}",
            name=f"poll {feed.name}",
            next_run_time=agg.clock(),
        )
    send = config.digest.time
    scheduler.add_job(
        write_daily_digest,
        CronTrigger(hour=send.hour, minute=send.minute, timezone=config.digest.timezone),
        args=[agg],
        id="digest",
        name="daily digest",
    )

    def stop(signum: int, frame: FrameType | None) -> None:
        log.info("signal %d: stopping", signum)
        scheduler.shutdown(wait=False)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info(
        "running: %d feeds, digest daily at %s %s",
        len(config.feeds),
        send.strftime("%H:%M"),
        config.digest.timezone,
    )
    try:
        scheduler.start()
    finally:
        agg.close()
