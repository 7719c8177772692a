"""/metrics: the store's counts in Prometheus's text format, read at each scrape (the one
module that imports prometheus_client)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import NamedTuple

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from aggregator.core import POLL_SECONDS_BUCKETS, FeedStatus, Tallies

CONTENT_TYPE = CONTENT_TYPE_LATEST


class Reading(NamedTuple):
    """What one scrape reads: the store's counts and the configured feeds' health."""

    tallies: Tallies
    feeds: Sequence[FeedStatus]


class StoreCollector(Collector):
    """Reads the database at each scrape: right whichever process polls (the daemon, cron)."""

    def __init__(self, read: Callable[[], Reading]) -> None:
        self._read = read

    def collect(self) -> Iterator[Metric]:
        tallies, feeds = self._read()
        for name, doc, value in (
            ("entries", "Entries stored.", tallies.entries),
            (
                "articles",
                "Articles (entries that are copies of one text are one).",
                tallies.articles,
            ),
            ("stories", "Stories (articles on one event).", tallies.stories),
            ("feeds", "Feeds configured.", len(feeds)),
            (
                "feeds_failing",
                "Enabled feeds that failed [poll] failure_threshold times in a row.",
                sum(1 for f in feeds if f.failing),
            ),
            ("feeds_disabled", "Feeds disabled (410 Gone).", sum(1 for f in feeds if f.disabled)),
        ):
            yield GaugeMetricFamily(f"aggregator_{name}", doc, value=value)
        polls = CounterMetricFamily(
            "aggregator_polls", "Polls recorded, by how they ended.", labels=["status"]
        )
        for status, count in sorted(tallies.polls.items()):
            polls.add_metric([status], count)
        yield polls
        last = GaugeMetricFamily(
            "aggregator_feeds_last_poll", "Feeds, by how their last poll ended.", labels=["status"]
        )
        for status, count in sorted(tallies.last_polls.items()):
            last.add_metric([status], count)
        yield last
        emails = CounterMetricFamily(
            "aggregator_emails", "Digest email deliveries, by status.", labels=["status"]
        )
        for status in ("sent", "failed", "sending"):
            emails.add_metric([status], tallies.emails.get(status, 0))
        yield emails
        buckets = [
            (str(bound), count)
            for bound, count in zip(POLL_SECONDS_BUCKETS, tallies.poll_seconds, strict=False)
        ]
        yield HistogramMetricFamily(
            "aggregator_poll_duration_seconds",
            "How long polls took (fetch, parse and store), all recorded polls.",
            buckets=[*buckets, ("+Inf", sum(tallies.polls.values()))],
            sum_value=tallies.poll_seconds_sum,
        )
        if tallies.last_digest is not None:
            yield GaugeMetricFamily(
                "aggregator_last_digest_timestamp_seconds",
                "When the last daily digest was made (Unix time).",
                value=tallies.last_digest.timestamp(),
            )


def exposition(read: Callable[[], Reading]) -> Callable[[], bytes]:
    """A function that renders the metrics, reading the store each time it is called."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StoreCollector(read))
    return lambda: generate_latest(registry)
