"""Watches end to end: real local feeds syndicating one story over several polls, a real
SQLite file, a real webhook receiver on 127.0.0.1; the alerts each watch and channel gets."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from aggregator.config import load_config
from aggregator.core import Aggregator, Window, make_aggregator
from aggregator.digest.render import digest_to_dict
from aggregator.types import AlertStatus
from tests.alerting import Receiver, config_text, post_alert, syndicate
from tests.conftest import FrozenClock

FEEDS = 8
WATCHES = """
[[watches]]
name = "summit"
keywords = ["AI峰會"]          # Traditional: matches the Simplified copies too
notify = ["webhook"]

[[watches]]
name = "wide"
keywords = ["峰会"]
min_sources = 4
notify = ["webhook"]

[[watches]]
name = "grow"
keywords = ["人工智能"]
renotify_sources = 3
notify = ["webhook"]

[[watches]]
name = "wire"
keywords = ["峰会"]
feeds = ["wire"]
notify = ["webhook"]

[[watches]]
name = "not the palace"
keywords = ["峰会"]
none = ["大皇宫"]
notify = ["webhook"]

[[watches]]
name = "AI economy"
keywords = ["AI"]
topics = ["Economy"]
notify = ["webhook"]

[[watches]]
name = "central bank"
keywords = ["准备金"]
topics = ["Economy"]
all = ["央行"]
notify = ["webhook"]
"""


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


def aggregator(folder: Path, receiver: Receiver, clock: FrozenClock) -> Aggregator:
    path = folder / "feeds.toml"
    path.write_text(config_text(receiver.url, FEEDS, WATCHES), encoding="utf-8")
    return make_aggregator(load_config(path, env={}), clock=clock, deliver=post_alert, env={})


def poll(agg: Aggregator, folder: Path, carried_by: int) -> None:
    syndicate(folder, range(carried_by), feeds_total=FEEDS)
    agg.poll()
    assert agg.wait_alerts(30)


def test_a_syndicated_story_alerts_once_per_watch_and_channel(
    tmp_path: Path, receiver: Receiver, clock: FrozenClock
) -> None:
    with aggregator(tmp_path, receiver, clock) as agg:
        poll(agg, tmp_path, 2)  # feeds 0 and 1 carry it
        first = Counter((b["watch"], b["reason"]) for b in receiver.bodies)
        assert first == {
            ("summit", "new"): 1,
            ("grow", "new"): 1,
            ("wire", "new"): 1,  # feed 1 is tagged "wire"
            ("central bank", "new"): 1,  # the other story, filed under Economy
        }
        clock.advance(minutes=30)
        poll(agg, tmp_path, 5)  # feed 2's copy is in Traditional script
        clock.advance(minutes=30)
        poll(agg, tmp_path, 5)  # nothing changed: nothing new
        clock.advance(minutes=30)
        poll(agg, tmp_path, FEEDS)
        bodies = receiver.bodies
        by_watch = Counter((b["watch"], b["reason"]) for b in bodies)
        assert by_watch == {
            ("summit", "new"): 1,  # one story, however many copies: one alert
            ("wide", "new"): 1,  # when 4 feeds carried it: the second poll
            ("grow", "new"): 1,
            ("grow", "grew"): 2,  # 2 sources alerted, then 5 (+3) and 8 (+6)
            ("wire", "new"): 1,
            ("central bank", "new"): 1,
        }
        wide = next(b for b in bodies if b["watch"] == "wide")
        assert len({s["feed"] for s in wide["story"]["sources"]}) == 5
        assert any("百國探討" in s["title"] for s in wide["story"]["sources"])  # Traditional
        summit_ids = {b["story"]["id"] for b in bodies if b["watch"] != "central bank"}
        assert len(summit_ids) == 1  # every alert names the one story, by its stable id
        alerts = agg.alerts()
        assert len(alerts) == len(bodies) == 7
        assert {a.status for a in alerts} == {AlertStatus.SENT}
        assert agg.alerts_sent()["grow"] == 3
        digest = digest_to_dict(agg.make_digest(Window(*(datetime(2025, 2, 11).date(),) * 2)))
        ids = {s["headline"]: s["id"] for t in digest["topics"] for s in t["stories"]}
        assert ids["巴黎AI峰会开幕，百国探讨AI未来"] == summit_ids.pop()


def test_the_payload_is_the_webhook_contract(
    tmp_path: Path, receiver: Receiver, clock: FrozenClock
) -> None:
    with aggregator(tmp_path, receiver, clock) as agg:
        poll(agg, tmp_path, 3)
    body = next(b for b in receiver.bodies if b["watch"] == "summit")
    assert list(body) == ["watch", "reason", "story"]
    assert body["reason"] == "new"
    story = body["story"]
    assert list(story) == ["id", "headline", "topic", "first_seen", "sources"]
    assert story["id"].isdigit()
    assert story["headline"] == "巴黎AI峰会开幕，百国探讨AI未来"
    assert story["topic"] == "AI"
    assert datetime.fromisoformat(story["first_seen"]) == datetime.fromisoformat(
        "2025-02-12T12:00:00+00:00"
    )
    assert sorted(s["feed"] for s in story["sources"]) == ["feed 0", "feed 1", "feed 2"]
    for source in story["sources"]:
        assert list(source) == ["feed", "title", "link", "published"]
        assert source["link"].startswith("https://news")
        datetime.fromisoformat(source["published"])
    assert json.dumps(body, ensure_ascii=False)
