"""Pollers sharing one store (docs/postgres.md, Several pollers): two placing copies of one
article at the same moment make one article and one story, on both backends; two making
the daily digest at once make it and send its email once; and two `aggregator run`
processes sharing one PostgreSQL and one feed farm fetch each feed once, store and place
each entry once, as one process does, and one killed mid-pass loses its leased feeds to
the other once the lease ends (bench/pollers.py measures 1, 2 and 4)."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from aggregator.config import load_config
from aggregator.core import Aggregator, make_aggregator
from aggregator.exceptions import StorageError
from aggregator.scheduler import make_due_digest
from aggregator.storage import Storage, open_storage
from aggregator.storage.postgres import open_postgres
from aggregator.types import EntryData, Vocabulary
from tests.conftest import FrozenClock, news_rss, wait_until
from tests.feedfarm import Farm
from tests.feedserver import FeedServer, respond, static
from tests.pollerfarm import (
    Settings,
    Store,
    fetches,
    one_daemon_groups,
    refetched,
    start_pollers,
    stop,
    wait_for_pass,
    write_config,
)
from tests.smtpserver import Server

T0 = datetime(2025, 2, 12, 12, 0, 1, tzinfo=UTC)
TEXT = (
    "The summit in Paris closed with a declaration on open models signed by sixty "
    "countries, while two of the largest delegations declined to sign it. Ministers "
    "announced new investment in compute and energy for data centres, and researchers "
    "asked for common rules on safety testing before models are released to the public."
)


def config_text(store: str, extra: str = "") -> str:
    key = "url" if store.startswith("postgresql://") else "path"
    return f"""
[storage]
{key} = "{store}"

[[feeds]]
url = "https://a.example/rss"
name = "A"

[[feeds]]
url = "https://b.example/rss"
name = "B"

[digest]
timezone = "UTC"
time = "07:00"
output = "digests"
{extra}
"""


def two_handles(backend: str, tmp_path: Path, pg_server: Any) -> tuple[str, Storage, Storage]:
    """A new store of `backend` and two handles on it, as two processes would hold."""
    if backend == "postgres":
        url = pg_server.database()
        return url, open_postgres(url), open_postgres(url)
    path = tmp_path / "shared.db"
    return str(path), open_storage(path), open_storage(path)


class PausedAfterReading:
    """A storage handle whose first placement stops after reading what it decides on
    (`vocabulary` is its last read before `save_outcome`) until `resume` says so."""

    def __init__(self, inner: Storage, resume: Any) -> None:
        self._inner = inner
        self._resume = resume
        self.reached = threading.Event()
        self.saves: list[int | None] = []  # what each `save_outcome` returned

    def save_outcome(self, *args: Any, **kwargs: Any) -> int | None:
        seq = self._inner.save_outcome(*args, **kwargs)
        self.saves.append(seq)
        return seq

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def vocabulary(self, terms: Iterable[str]) -> tuple[Vocabulary, int]:
        read = self._inner.vocabulary(terms)
        if not self.reached.is_set():
            self.reached.set()
            wait_until(self._resume, 20, "the other poller to race this one")
        return read


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_two_pollers_placing_copies_at_once_make_one_article_and_story(
    backend: str, tmp_path: Path, pg_server: Any
) -> None:
    store, first, second = two_handles(backend, tmp_path, pg_server)
    config = tmp_path / "feeds.toml"
    config.write_text(config_text(store), encoding="utf-8")
    done = threading.Event()

    def lock_waiters() -> int:
        with psycopg.connect(store) as raw:
            row = raw.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            ).fetchone()
        return int(row[0]) if row else 0

    def raced() -> bool:
        # SQLite: the second placed its copy meanwhile (the first's save is then refused
        # and it decides again); PostgreSQL: the second waits for the placing lock.
        return done.is_set() or (backend == "postgres" and lock_waiters() > 0)

    paused = PausedAfterReading(first, raced)
    clock = FrozenClock(T0)
    a = make_aggregator(load_config(config), storage=paused, clock=clock)  # type: ignore[arg-type]
    b = make_aggregator(load_config(config), storage=second, clock=clock)
    feeds = {f.name: f for f in a.config.feeds}

    def place(agg: Aggregator, feed: str, handle: Storage) -> None:
        copy = EntryData(
            guid=f"{feed}-1",
            title="Summit ends with a declaration on open models",
            link=f"https://{feed.lower()}.example/news/1",
            published=T0,
            text=TEXT,
            summary=TEXT[:200],
        )
        saved = handle.save_poll(feeds[feed], [copy], now=T0, seconds=0.1)
        agg.placer.stored(saved.new_ids, saved.updated_ids)
        agg.placer.group_stored()

    try:
        racing = threading.Thread(target=place, args=(a, "A", first))
        racing.start()
        assert paused.reached.wait(20)  # the first has read, and not yet recorded
        place(b, "B", second)
        done.set()
        racing.join(20)
        assert not racing.is_alive()
        placed = first.entries_by_ids(list(range(1, 10)))
        assert sorted(e.guid for e in placed) == ["A-1", "B-1"]
        assert first.unassigned_ids() == []
        known = first.known_copies([e.id for e in placed])
        assert len(known) == 2
        assert len({k.article_id for k in known}) == 1  # one article
        assert len({k.story_id for k in known}) == 1  # one story
        assert first.tallies()[:3] == (2, 1, 1)  # the refused batch counted nothing
        # SQLite: the first's decision, made before the second's copy was recorded, was
        # refused, and not made again: the second had placed every unplaced entry, the
        # first's too (deciding it again would have decided it twice); PostgreSQL: the
        # second waited, nothing was refused.
        assert [seq is None for seq in paused.saves] == ([True] if backend == "sqlite" else [False])
    finally:
        a.close()
        b.close()


def test_a_batch_another_poller_placed_meanwhile_is_not_computed_again(
    pg_url: str, tmp_path: Path
) -> None:
    """Daemons sharing a store cut the same batches once a pass is over: one that finds
    a batch placed by another (after cutting it) neither computes its features nor
    places it again."""
    config = tmp_path / "feeds.toml"
    config.write_text(config_text(pg_url), encoding="utf-8")
    clock = FrozenClock(T0)
    with (
        make_aggregator(load_config(config), clock=clock) as a,
        make_aggregator(load_config(config), clock=clock) as b,
    ):
        feed = a.config.feeds[0]
        item = EntryData(guid="1", title="Summit", link=None, published=T0, text=TEXT)
        saved = a.storage.save_poll(feed, [item], now=T0, seconds=0.1)
        chunk = b.storage.placing_order(b.storage.unassigned_ids())  # as b cut it
        assert chunk == saved.new_ids and a.placer.assign([]) == 1  # a placed it first

        def computed(*args: Any, **kwargs: Any) -> Any:
            raise AssertionError("features computed again")

        b.placer.features.computed = computed  # type: ignore[method-assign]
        b.placer._place_batch(chunk, b.config.dedup, None)
        assert b.storage.unassigned_ids() == []
        (known,) = b.storage.known_copies(chunk)
        assert known.story_id is not None


def test_two_processes_make_the_daily_digest_and_its_email_once(
    pg_url: str, tmp_path: Path, smtp: Server
) -> None:
    email = (
        '[digest.email]\nto = ["desk@example.org"]\nfrom = "agg@example.org"\n'
        f'host = "127.0.0.1"\nport = {smtp.port}\nsecurity = "none"\n'
    )
    made: list[date | None] = []
    clock = FrozenClock(T0 + timedelta(days=1))  # 12:00 on the 13th: the 12th's is due
    aggs = []
    for n in (0, 1):
        folder = tmp_path / f"host{n}"
        folder.mkdir()
        (folder / "feeds.toml").write_text(config_text(pg_url, email), encoding="utf-8")
        aggs.append(make_aggregator(load_config(folder / "feeds.toml"), clock=clock))
    try:
        first = aggs[0].storage
        feed = aggs[0].config.feeds[0]
        first.save_poll(
            feed,
            [EntryData(guid="1", title="Summit", link="https://a.example/1", published=T0)],
            now=T0,
            seconds=0.1,
        )
        aggs[0].placer.group_stored()
        start = threading.Barrier(2)

        def digest(agg: Aggregator) -> None:
            start.wait()
            made.append(make_due_digest(agg))

        threads = [threading.Thread(target=digest, args=(agg,)) for agg in aggs]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert sorted(made, key=str) == [date(2025, 2, 12), None]
        assert len(smtp.inbox.messages()) == 1
        assert first.digest_made(date(2025, 2, 12)) == clock()
        written = [(tmp_path / f"host{n}" / "digests" / "2025-02-12.html").exists() for n in (0, 1)]
        assert sorted(written) == [False, True]  # on the host that made it
    finally:
        for agg in aggs:
            agg.close()


def two_served_feeds(store: str, tmp_path: Path, feed_server: FeedServer) -> Path:
    """feeds.toml on `store` with feeds A and B served by `feed_server` (two news each)."""
    feed_server.routes["/a.xml"] = static(news_rss("A"))
    feed_server.routes["/b.xml"] = static(news_rss("B"))
    config = tmp_path / "feeds.toml"
    config.write_text(
        config_text(store)
        .replace("https://a.example/rss", feed_server.url("/a.xml"))
        .replace("https://b.example/rss", feed_server.url("/b.xml")),
        encoding="utf-8",
    )
    return config


def test_a_manual_poll_skips_a_feed_another_poller_holds(
    pg_url: str, tmp_path: Path, feed_server: FeedServer
) -> None:
    config = two_served_feeds(pg_url, tmp_path, feed_server)
    clock = FrozenClock(T0)
    with make_aggregator(load_config(config), clock=clock) as agg:
        held = agg.storage.lease_feeds(
            {feed_server.url("/b.xml"): "127.0.0.1"},
            owner="another host:1:x",
            now=T0,
            until=T0 + timedelta(minutes=5),
        )
        assert held.granted == [feed_server.url("/b.xml")]
        results = {r.feed_name: r for r in agg.poll()}
        assert results["A"].status == "ok" and results["A"].new == 2
        assert results["B"].status == "skipped" and results["B"].new == 0
        assert results["B"].next_poll == T0 + timedelta(minutes=5)  # when its lease ends
        assert feed_server.requests_to("/b.xml") == []
        clock.advance(minutes=5)  # the other poller died: its lease has ended
        again = {r.feed_name: r for r in agg.poll()}
        assert again["B"].status == "ok" and again["B"].new == 2


def test_a_manual_poll_stopped_by_a_refused_write_gives_its_leases_back(
    pg_url: str, tmp_path: Path, feed_server: FeedServer
) -> None:
    """A poll that stops on a write the server refuses (here a trigger; a full disk, a
    guid too long to index) exits; before, its leases kept the next `poll` off its feeds
    for `lease` (5 minutes): "skipped: another poller polled it, or holds it"."""
    config = two_served_feeds(pg_url, tmp_path, feed_server)
    clock = FrozenClock(T0)
    with make_aggregator(load_config(config), clock=clock) as agg:
        with psycopg.connect(pg_url, autocommit=True) as admin:
            admin.execute(
                "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$"
            )
            admin.execute(
                "CREATE TRIGGER refuse BEFORE INSERT ON entries EXECUTE FUNCTION refuse()"
            )
        with pytest.raises(StorageError, match="refused by the test"):
            list(agg.poll())
        with psycopg.connect(pg_url, autocommit=True) as admin:
            admin.execute("DROP TRIGGER refuse ON entries")
            assert admin.execute(
                "SELECT count(*) FROM feeds WHERE lease_owner IS NOT NULL"
            ).fetchone() == (0,)
        clock.advance(minutes=1)  # well within the 5 minutes' lease
        again = {r.feed_name: r.status for r in agg.poll()}
    assert again == {"A": "ok", "B": "ok"}


def test_a_manual_poll_keeps_its_leases_while_its_feeds_wait_their_turn(
    pg_url: str, feed_server: FeedServer, tmp_path: Path
) -> None:
    """`poll` leases its feeds at once, then fetches them one at a time here: the leases of
    those still waiting are renewed, so no other poller takes one meanwhile (one did, at
    3.6 s, when the 3 s leases ran out)."""
    body = news_rss("slow").encode()

    def slow(handler: Any) -> None:
        time.sleep(1.5)
        respond(handler, 200, body)

    feeds = ""
    for n in range(4):
        feed_server.routes[f"/f{n}.xml"] = slow
        feeds += f'[[feeds]]\nurl = "{feed_server.url(f"/f{n}.xml")}"\nname = "F{n}"\n\n'
    config = tmp_path / "feeds.toml"
    config.write_text(
        f'[storage]\nurl = "{pg_url}"\n\n[poll]\nconcurrency = 1\nper_host = 1\n'
        f'deadline = "2s"\ntimeout = "2s"\nlease = "3s"\n\n{feeds}',
        encoding="utf-8",
    )
    last = feed_server.url("/f3.xml")
    refused: list[dict[str, object]] = []
    with make_aggregator(load_config(config)) as agg, open_postgres(pg_url) as other:

        def another_poller() -> None:
            time.sleep(3.6)  # past the first leases' end; f3's fetch not yet begun
            now = datetime.now(UTC)
            asked = other.lease_feeds(
                {last: "127.0.0.1"}, owner="elsewhere:1:x", now=now,
                until=now + timedelta(seconds=3), due_only=False, per_host=1,
            )  # fmt: skip
            refused.append(dict(asked.refused))

        asker = threading.Thread(target=another_poller)
        asker.start()
        results = list(agg.poll())
        asker.join()
    assert [r.status for r in results] == ["ok"] * 4
    assert list(refused[0]) == [last]  # still this poll's
    assert len(feed_server.requests_to("/f3.xml")) == 1


FEEDS, ENTRIES = 40, 4
SETTINGS = Settings(interval="10m", concurrency=4, per_host=6, deadline="2s", lease="3s")


@pytest.mark.slow
def test_two_pollers_share_the_feeds_and_one_killed_loses_its_leases(
    pg_url: str, tmp_path: Path
) -> None:
    farm = Farm(feeds=FEEDS, entries=ENTRIES, latency=0.2, copies=0.3).start()
    try:
        # What one daemon makes of the same entries in one process (SQLite): the reference.
        alone = write_config(tmp_path / "alone", farm, str(tmp_path / "alone.db"), SETTINGS)
        reference = one_daemon_groups(alone, str(tmp_path / "alone.db"))
        assert len(reference[0]) < FEEDS * ENTRIES  # the farm's copies were found
        assert len(reference[0]) > len(reference[1]) > 1

        store = Store(pg_url)
        configs = [write_config(tmp_path / f"host{n}", farm, pg_url, SETTINGS) for n in (0, 1)]
        began = time.time()
        pollers = start_pollers(configs, log_folder=tmp_path)
        try:
            # Kill the first once it holds leases mid-pass (its feeds' first polls are
            # spread over seconds; each fetch takes 0.3 s).
            deadline = time.monotonic() + 20
            held: dict[str, float] = {}
            while time.monotonic() < deadline and not held:
                done = store.progress()[0]
                if done >= 5:
                    held = store.leased_by(pollers[0].pid)
                time.sleep(0.02)
            assert held, "the first poller never held a lease mid-pass"
            pollers[0].send_signal(signal.SIGKILL)
            killed_at = time.time()
            pollers[0].wait(10)
            # And what it leased between that look and its death (read at once: another
            # poller takes a lease over only once it has ended, 3 s after it was taken).
            held.update(store.leased_by(pollers[0].pid))
            assert store.progress()[0] < FEEDS  # killed mid-pass
            wait_for_pass(store, FEEDS, FEEDS * ENTRIES, pollers[1:], timeout=25)
            # The daily digest due on start (yesterday's: the farm's entries are older) is
            # made after the first round of polls, by whichever poller holds the lock.
            wait_until(lambda: bool(store.rows("SELECT day FROM digest_runs")), 20, "the digest")
        finally:
            codes = stop(pollers)
        assert codes[0] == -signal.SIGKILL and codes[1] == 0

        times = fetches(farm, began)
        assert {farm.url(f).removeprefix(farm.base_url) for f in farm.feeds} <= set(times)
        twice = refetched(times, 600)
        held_paths = {url.removeprefix(farm.base_url): until for url, until in held.items()}
        # Only feeds the dead poller held were fetched again, after its lease ended.
        assert set(twice) <= set(held_paths)
        for path, t in twice.items():
            assert len(t) == 2 and t[1] >= held_paths[path] - 0.05 >= killed_at - 3.1
        assert store.progress() == (FEEDS, FEEDS * ENTRIES, 0)  # each entry once, placed
        # The same articles and stories as one daemon makes, whoever stored what: each
        # places once the pass is over, in the placing order (docs/daemon.md).
        assert store.groups() == reference
        assert len(store.rows("SELECT day FROM digest_runs")) == 1
        with open_postgres(pg_url) as db:  # kept as each poller recorded its batches
            assert db.tallies()[:3] == (FEEDS * ENTRIES, *map(len, reference))
    finally:
        farm.stop()


def test_two_pollers_alert_once_for_the_story_they_both_store(
    pg_url: str, tmp_path: Path, run_console: Any
) -> None:
    """Two hosts (two processes) poll their own copies of one syndicated story into one
    database at the same moment, and each evaluates the watches after its pass: one alert
    per watch and channel in all, delivered once."""
    from tests.alerting import Receiver, config_text, syndicate

    watch = '[[watches]]\nname = "summit"\nkeywords = ["峰会"]\nnotify = ["webhook"]\n'
    receiver = Receiver()
    try:
        hosts = [tmp_path / "host0", tmp_path / "host1"]
        for n, host in enumerate(hosts):
            # Each host its own feeds (folders of other names): copies of one story.
            syndicate(host, range(4), feeds_total=4)
            (host / "feeds").rename(host / f"wire{n}")
            text = config_text(receiver.url, 4, watch).replace('"feeds/', f'"wire{n}/')
            assert 'path = "alerts.db"' in text
            (host / "feeds.toml").write_text(
                text.replace('path = "alerts.db"', f'url = "{pg_url}"'), encoding="utf-8"
            )
        polls: list[Any] = []
        threads = [
            threading.Thread(target=lambda h=host: polls.append(run_console("poll", cwd=h)))
            for host in hosts
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        assert [p.returncode for p in polls] == [0, 0], [p.stderr for p in polls]
        wait_until(lambda: len(receiver.bodies) >= 1, 20, "the alert")
        time.sleep(1)  # a second one, if any, would have come by now
        summit = [b for b in receiver.bodies if b["watch"] == "summit"]
        assert [b["reason"] for b in summit] == ["new"]
        with psycopg.connect(pg_url) as db:
            assert db.execute(
                "SELECT count(*), count(DISTINCT story_id) FROM alerts WHERE watch = 'summit'"
            ).fetchone() == (1, 1)
            # Both hosts' copies (8 entries of the story) are one story.
            copies, stories = db.execute(
                "SELECT count(*), count(DISTINCT story_id) FROM entries WHERE guid LIKE 'summit-%'"
            ).fetchone()
        assert (copies, stories) == (8, 1)
    finally:
        receiver.close()
