"""Watches end to end: real local feeds syndicating one story over several polls, a real
SQLite file, a real webhook receiver on 127.0.0.1; the alerts each watch and channel gets."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from datetime import datetime
from pathlib import Path

import pytest

from aggregator import notify
from aggregator.backoff import RETRY_FIRST
from aggregator.config import Config, load_config
from aggregator.core import Aggregator, Window, make_aggregator
from aggregator.digest.render import digest_to_dict
from aggregator.scheduler import Daemon
from aggregator.storage import open_storage
from aggregator.types import AlertPayload, AlertStatus
from tests.alerting import Receiver, config_text, syndicate
from tests.conftest import FrozenClock, RunCli, wait_until
from tests.smtpserver import Server

FEEDS = 8
WATCHES = """
[[watches]]
name = "summit"
keywords = ["AI峰會"]          # Traditional: matches the Simplified copies too
notify = ["webhook", "command"]

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
    return make_aggregator(load_config(path), clock=clock, env={})


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
            ("summit", "new"): 2,  # one on each of its channels
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
            ("summit", "new"): 2,  # one story, however many copies: one alert per channel
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
        summit = [
            c for b, c in zip(bodies, receiver.channels, strict=True) if b["watch"] == "summit"
        ]
        assert sorted(summit) == ["command", "webhook"]
        alerts = agg.alerts()
        assert len(alerts) == len(bodies) == 8
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
    assert list(story) == ["id", "headline", "topic", "first_seen", "sources", "link"]
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
    assert story["link"] in [s["link"] for s in story["sources"]]  # the headline's article
    assert json.dumps(body, ensure_ascii=False)


ONE_WATCH = """
[[watches]]
name = "summit"
keywords = ["AI峰会"]
notify = ["webhook"]
"""


def one_watch(folder: Path, receiver: Receiver, clock: FrozenClock | None) -> Aggregator:
    path = folder / "feeds.toml"
    path.write_text(config_text(receiver.url, FEEDS, ONE_WATCH), encoding="utf-8")
    return make_aggregator(load_config(path), clock=clock, env={})


def test_a_failing_receiver_is_retried_with_backoff_and_delivered_once(
    tmp_path: Path, clock: FrozenClock, run_cli: RunCli
) -> None:
    receiver = Receiver(statuses=[500, 503])
    try:
        with one_watch(tmp_path, receiver, clock) as agg:
            poll(agg, tmp_path, 3)
            assert receiver.bodies == []
            (failed,) = agg.alerts()
            assert (failed.status, failed.attempts) == (AlertStatus.FAILED, 1)
            assert failed.error is not None and "HTTP 500" in failed.error
            assert failed.next_attempt == clock() + RETRY_FIRST

            listed = run_cli("alerts", "--format", "json", cwd=tmp_path)
            (row,) = json.loads(listed.stdout)
            assert (row["status"], row["attempts"]) == ("failed", 1)
            assert "HTTP 500" in row["error"]

            assert agg.deliver_alerts() == 0  # not before its time
            clock.advance(minutes=5)
            assert agg.deliver_alerts() == 1
            assert agg.wait_alerts(30)
            (again,) = agg.alerts()
            assert (again.status, again.attempts) == (AlertStatus.FAILED, 2)
            assert again.next_attempt == clock() + 2 * RETRY_FIRST  # backing off
            clock.advance(minutes=10)
            assert agg.deliver_alerts() == 1
            assert agg.wait_alerts(30)
            clock.advance(hours=1)
            assert agg.deliver_alerts() == 0
        assert len(receiver.bodies) == 1 and receiver.bodies[0]["watch"] == "summit"
        listed = run_cli("alerts", cwd=tmp_path)
        assert listed.returncode == 0
        (line,) = listed.stdout.splitlines()
        assert "\tsummit\twebhook\tnew (3 sources)\tstory " in line
        assert line.endswith("\tsent\t3 attempts")
    finally:
        receiver.close()


def test_an_alert_sent_while_another_process_locks_the_database_is_not_sent_again(
    tmp_path: Path,
    clock: FrozenClock,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The receiver took the alert, and recording that meets another connection's write
    lock past the busy timeout: the record is tried again once the lock is gone, so the
    alert is sent, recorded once, and not sent again when its claim would be stale."""
    monkeypatch.setattr("aggregator.storage.sqlite._base.BUSY_TIMEOUT", 0.2)
    receiver = Receiver()
    locks: list[threading.Timer] = []

    def deliver_then_lock(
        channel: str, payload: AlertPayload, config: Config, *, env: Mapping[str, str]
    ) -> str | None:
        receipt = notify.deliver(channel, payload, config, env=env)
        other = sqlite3.connect(tmp_path / "alerts.db", check_same_thread=False)
        other.execute("BEGIN IMMEDIATE")  # another process's write, for 1 s
        locks.append(threading.Timer(1.0, lambda: (other.rollback(), other.close())))
        locks[-1].start()
        return receipt

    try:
        path = tmp_path / "feeds.toml"
        path.write_text(config_text(receiver.url, FEEDS, ONE_WATCH), encoding="utf-8")
        with make_aggregator(
            load_config(path), clock=clock, env={}, deliver=deliver_then_lock
        ) as agg:
            poll(agg, tmp_path, 3)
            assert len(locks) == 1
            locks[0].join(10)  # the other connection's lock is gone
            (alert,) = agg.alerts()
            assert (alert.status, alert.attempts) == (AlertStatus.SENT, 1)
            clock.advance(minutes=20)  # a claim left 'sending' would be stale by now
            assert agg.deliver_alerts() == 0
            assert agg.wait_alerts(30)
        assert [b["watch"] for b in receiver.bodies] == ["summit"]
        # The lock did refuse a record: the test means something.
        assert "recording it failed" in caplog.text and "database is locked" in caplog.text
    finally:
        receiver.close()


def test_status_shows_an_alert_that_will_be_retried_and_exits_0(
    tmp_path: Path, run_cli: RunCli
) -> None:
    receiver = Receiver(statuses=[500])
    try:
        with one_watch(tmp_path, receiver, None) as agg:
            poll(agg, tmp_path, 1)
        status = run_cli("status", cwd=tmp_path)
        assert status.returncode == 0, status.stderr  # it will be retried: not lost
        assert "alerts: 0 of 1 alert of the last 7 days sent" in status.stdout
        assert "FAILED:" in status.stdout and "HTTP 500" in status.stdout
        assert "; next retry" in status.stdout
    finally:
        receiver.close()


def test_an_alert_refused_for_good_makes_status_exit_1(tmp_path: Path, run_cli: RunCli) -> None:
    receiver = Receiver(statuses=[404])
    try:
        with one_watch(tmp_path, receiver, None) as agg:
            poll(agg, tmp_path, 1)
            (refused,) = agg.alerts()
            assert (refused.status, refused.next_attempt) == (AlertStatus.FAILED, None)
        status = run_cli("status", cwd=tmp_path)
        assert status.returncode == 1
        assert "HTTP 404" in status.stdout and "; not retried" in status.stdout
        as_json = run_cli("status", "--format", "json", cwd=tmp_path)
        assert as_json.returncode == 1 and "1 alert failed for good" in as_json.stderr
    finally:
        receiver.close()


def test_watches_list_and_test_on_the_stored_stories(
    tmp_path: Path, receiver: Receiver, clock: FrozenClock, run_cli: RunCli
) -> None:
    listed = aggregator(tmp_path, receiver, clock)
    with listed as agg:
        poll(agg, tmp_path, 3)
    database = (tmp_path / "alerts.db").stat().st_mtime_ns
    shown = run_cli("watches", "list", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    rows = {line.split("\t")[0]: line.split("\t")[1:] for line in shown.stdout.splitlines()}
    assert rows["summit"] == ["AI峰會", "webhook, command", "2 alerts sent"]
    assert rows["wide"] == ["峰会 sources>=4", "webhook", "0 alerts sent"]
    assert rows["central bank"][0] == "准备金 +央行 topic:Economy"
    assert rows["wire"][0] == "峰会 feed:wire"
    tested = run_cli("watches", "test", "wide", "--since", "2025-02-10", cwd=tmp_path)
    assert tested.returncode == 0, tested.stderr
    (story,) = tested.stdout.splitlines()
    assert story.split("\t")[1:] == [
        "3 sources",
        "AI",
        "巴黎AI峰会开幕，百国探讨AI未来  (below min_sources)",
    ]
    assert "1 story match 'wide'" in tested.stderr
    none = run_cli("watches", "test", "not the palace", "--since", "2025-02-10", cwd=tmp_path)
    assert none.stdout == "" and "0 stories match" in none.stderr
    unknown = run_cli("watches", "test", "nope", cwd=tmp_path)
    assert unknown.returncode == 2 and "no watch is named 'nope'" in unknown.stderr
    bad_day = run_cli("watches", "test", "wide", "--since", "yesterday", cwd=tmp_path)
    assert bad_day.returncode == 2 and "--since must be a date" in bad_day.stderr
    assert (tmp_path / "alerts.db").stat().st_mtime_ns == database  # nothing written
    assert len(receiver.bodies) == 5  # nothing sent


def test_watches_list_and_alerts_create_no_database(tmp_path: Path, run_cli: RunCli) -> None:
    (tmp_path / "feeds.toml").write_text(
        config_text("http://127.0.0.1:9/hook", 1, ONE_WATCH), encoding="utf-8"
    )
    assert run_cli("watches", "list", cwd=tmp_path).stdout.startswith("summit\tAI峰会\twebhook")
    assert run_cli("alerts", cwd=tmp_path).stdout == ""
    assert not (tmp_path / "alerts.db").exists()


CHILD = Path(__file__).with_name("alert_child.py")


@pytest.mark.slow
def test_killed_between_matched_and_delivered_the_restart_delivers_once(
    tmp_path: Path, receiver: Receiver
) -> None:
    syndicate(tmp_path, range(3), feeds_total=FEEDS)
    config = tmp_path / "feeds.toml"
    config.write_text(config_text(receiver.url, FEEDS, ONE_WATCH), encoding="utf-8")
    marker = tmp_path / "delivering"
    with (tmp_path / "child.log").open("wb") as log:
        child = subprocess.Popen(
            [sys.executable, str(CHILD), str(config), str(marker)], stdout=log, stderr=log
        )
    try:
        wait_until(marker.exists, 120, "the poll to start delivering its alert")
        with open_storage(tmp_path / "alerts.db") as db:  # the kill lands mid-work:
            (alert,) = db.alerts_since()  # the alert is recorded and claimed,
            assert (alert.status, alert.claimed_by) == (AlertStatus.SENDING, child.pid)
        assert receiver.bodies == []  # and not delivered
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(30)
    assert child.returncode == -signal.SIGKILL

    for _restart in range(2):  # the first restart delivers it; the second finds it sent
        again = subprocess.run(
            [sys.executable, str(CHILD), str(config)], capture_output=True, text=True, timeout=120
        )
        assert again.returncode == 0, again.stderr
        assert len(receiver.bodies) == 1
    assert receiver.bodies[0]["watch"] == "summit"
    with open_storage(tmp_path / "alerts.db") as db:
        (alert,) = db.alerts_since()
        assert (alert.status, alert.attempts) == (AlertStatus.SENT, 1)


def test_the_daemons_alert_job_delivers_what_is_due(tmp_path: Path, clock: FrozenClock) -> None:
    receiver = Receiver(statuses=[500])
    try:
        with one_watch(tmp_path, receiver, clock) as agg:
            poll(agg, tmp_path, 2)
            daemon = Daemon(agg)
            assert daemon.alert_job() == 0  # its retry is not due yet
            clock.advance(minutes=5)
            assert daemon.alert_job() == 1
            assert agg.wait_alerts(30)
        assert [b["watch"] for b in receiver.bodies] == ["summit"]
    finally:
        receiver.close()


@pytest.mark.slow
def test_watches_and_alerts_through_the_console_script(
    tmp_path: Path, receiver: Receiver, clock: FrozenClock, run_console: RunCli
) -> None:
    with one_watch(tmp_path, receiver, clock) as agg:
        poll(agg, tmp_path, 2)
    listed = run_console("watches", "list", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout == "summit\tAI峰会\twebhook\t1 alert sent\n"
    tested = run_console("watches", "test", "summit", "--since", "2025-02-11", cwd=tmp_path)
    assert tested.returncode == 0, tested.stderr
    assert tested.stdout.split("\t")[1] == "2 sources"
    alerts = run_console("alerts", "--format", "json", cwd=tmp_path)
    assert alerts.returncode == 0, alerts.stderr
    (row,) = json.loads(alerts.stdout)
    assert list(row) == [
        "id", "story", "headline", "watch", "channel", "reason", "sources", "created_at",
        "status", "attempts", "last_attempt", "sent_at", "next_attempt", "error", "receipt",
    ]  # fmt: skip
    assert (row["watch"], row["status"], row["receipt"]) == ("summit", "sent", "HTTP 200")


@pytest.mark.slow
def test_the_daemon_killed_while_delivering_delivers_once_after_a_restart(
    tmp_path: Path, receiver: Receiver
) -> None:
    """`aggregator run` (notify's webhook to the receiver, which holds the request
    unanswered), killed with SIGKILL once the alert is recorded and claimed; the daemon
    started again delivers it at once, exactly once."""
    from tests.test_daemon import Run, wait_for

    syndicate(tmp_path, range(3), feeds_total=FEEDS)
    (tmp_path / "feeds.toml").write_text(
        config_text(receiver.url, FEEDS, ONE_WATCH), encoding="utf-8"
    )
    receiver.holding.set()
    first = Run(tmp_path, "first")
    try:
        wait_for(receiver.arrived.is_set, 60, "the alert's request", first)
        with open_storage(tmp_path / "alerts.db") as db:
            (alert,) = db.alerts_since()
            assert (alert.status, alert.claimed_by) == (AlertStatus.SENDING, first.proc.pid)
        assert receiver.bodies == []
    finally:
        first.proc.send_signal(signal.SIGKILL)
        first.proc.wait(30)
    receiver.holding.clear()
    receiver.release.set()
    second = Run(tmp_path, "second")
    try:
        wait_for(lambda: len(receiver.bodies) == 1, 60, "the alert delivered", second)
        second.wait_log("alert sent: summit on webhook")
        time.sleep(1)  # nothing more comes
        assert [b["watch"] for b in receiver.bodies] == ["summit"]
    finally:
        assert second.stop()[0] == 0
    with open_storage(tmp_path / "alerts.db") as db:
        (alert,) = db.alerts_since()
        assert (alert.status, alert.attempts) == (AlertStatus.SENT, 1)


def test_a_watch_alerts_by_email_once_with_every_source(
    tmp_path: Path, receiver: Receiver, clock: FrozenClock, smtp: Server
) -> None:
    """The email channel end to end: a real SMTP server (aiosmtpd) gets one message per
    story and watch, however many polls bring copies, naming the story and each source."""
    email = (
        f'[digest.email]\nto = ["digest@example.org"]\nfrom = "aggregator@example.org"\n'
        f'host = "127.0.0.1"\nport = {smtp.port}\n\n'
        '[notify.email]\nto = ["desk@example.org", "editor@example.org"]\n\n'
    )
    watch = '[[watches]]\nname = "summit"\nkeywords = ["AI峰会"]\nnotify = ["email"]\n'
    path = tmp_path / "feeds.toml"
    path.write_text(email + config_text(receiver.url, FEEDS, watch), encoding="utf-8")
    with make_aggregator(load_config(path), clock=clock, env={}) as agg:
        poll(agg, tmp_path, 3)
        clock.advance(minutes=30)
        poll(agg, tmp_path, FEEDS)  # more copies of the same story: no second email
    assert receiver.bodies == []  # nothing went by webhook
    assert len(smtp.inbox.received) == 1
    recipients, _ = smtp.inbox.received[0]
    assert sorted(recipients) == ["desk@example.org", "editor@example.org"]
    (message,) = smtp.inbox.messages()
    assert "巴黎AI峰会开幕" in str(message["Subject"])
    assert "3 sources" in str(message["Subject"])  # as many as carried it when it fired
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None and html is not None
    for index in range(3):
        link = f"https://news{index}.example/summit-{index}"
        assert link in text.get_content()
        assert link in html.get_content()
