"""The shared behaviour on PostgreSQL (`[storage] url`): the CLI end to end, the seeds'
digest identical to SQLite's, copies placed alike, a writer killed mid-transaction."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import psycopg
import pytest

from aggregator.config import load_config
from aggregator.core import open_configured
from aggregator.exceptions import ConfigError
from tests.conftest import ROOT, FrozenClock, RunCli, cli, wait_until
from tests.pgserver import PASSWORD, PASSWORD_USER, PgServer

SQLITE_LINE = 'path = "aggregator.db"   # SQLite database'


def use_postgres(folder: Path, url: str, password_env: str | None = None) -> None:
    """Point the folder's feeds.toml (the shipped one) at a PostgreSQL database."""
    path = folder / "feeds.toml"
    text = path.read_text(encoding="utf-8")
    assert SQLITE_LINE in text
    setting = f'url = "{url}"' + (f'\npassword_env = "{password_env}"' if password_env else "")
    path.write_text(text.replace(SQLITE_LINE, setting), encoding="utf-8")


def json_digest(run_cli: RunCli, folder: Path) -> dict[str, object]:
    """The seeds' window as the JSON digest, without the time it was made."""
    made = run_cli(
        "digest", "--since", "2025-02-10", "--format", "json", "--output", "-", cwd=folder
    )
    assert made.returncode == 0, made.stderr
    data: dict[str, object] = json.loads(made.stdout)
    del data["generated_at"]
    # An undated entry is dated when it was first seen: by the clock, not the backend.
    for topic in data["topics"]:  # type: ignore[attr-defined]
        for story in topic["stories"]:
            for article in story["articles"]:
                for item in (article, *article["copies"]):
                    if not item["dated"]:
                        item["published"] = "first seen"
    return data


def copy_workdir(source: Path, to: Path) -> Path:
    to.mkdir()
    shutil.copytree(source / "seeds", to / "seeds")
    shutil.copy(source / "feeds.toml", to / "feeds.toml")
    return to


def stories(digest: dict[str, object]) -> list[list[str]]:
    """Each story's copies' titles, as the digest lists them."""
    topics = digest["topics"]
    assert isinstance(topics, list)
    return [
        [copy["title"] for article in story["articles"] for copy in article["copies"]]
        for topic in topics
        for story in topic["stories"]
    ]


def test_poll_and_digest_on_postgres_match_sqlite(
    workdir: Path, tmp_path: Path, run_cli: RunCli, pg_url: str
) -> None:
    """The README's quick start on each backend: the same entries, articles and stories,
    the same JSON digest apart from when it was made."""
    on_sqlite = copy_workdir(workdir, tmp_path / "sqlite")
    use_postgres(workdir, pg_url)
    for folder in (on_sqlite, workdir):
        polled = run_cli("poll", cwd=folder)
        assert polled.returncode == 0, polled.stderr
        assert "4 new entries" in polled.stderr
    assert not (workdir / "aggregator.db").exists()  # PostgreSQL, not a file
    expected, got = json_digest(run_cli, on_sqlite), json_digest(run_cli, workdir)
    assert got == expected
    assert len(stories(got)) == 1 and len(stories(got)[0]) == 4  # the summit: one story
    again = run_cli("poll", cwd=workdir)  # nothing new the second time
    assert again.returncode == 0 and "; 0 new entries, 0 updated" in again.stderr
    with psycopg.connect(pg_url) as db:
        assert db.execute("SELECT count(*) FROM entries").fetchone() == (4,)
        assert db.execute(
            "SELECT count(DISTINCT article_id), count(DISTINCT story_id) FROM entries"
        ).fetchone() == (4, 1)
    status = run_cli("status", "--format", "json", cwd=workdir)
    assert status.returncode == 0, status.stderr
    assert '"Seeds"' in status.stdout


ARTICLE = """\
---
title: "{title}"
date: 2025-02-11T08:00:00+00:00
lang: en
---
{body}

[site](https://news.example/{slug})
"""
BODY = (
    "The chip maker said on Tuesday that its new accelerator would ship to cloud providers "
    "in the spring, two quarters ahead of plan, after the foundry doubled its output of the "
    "advanced packaging the part needs. Analysts expected the move to squeeze rivals."
)
OTHER = (
    "Heavy rain flooded the valley's lower towns overnight; the river crested two metres "
    "above its banks and rescuers moved three hundred residents to the school on the hill."
)


def test_copies_in_two_feeds_are_one_article_on_both_backends(
    tmp_path: Path, run_cli: RunCli, pg_url: str
) -> None:
    digests = []
    for backend in ("sqlite", "postgres"):
        folder = tmp_path / backend
        for feed, items in {
            "wire": [("Chips ahead of plan", BODY, "chips"), ("Valley floods", OTHER, "rain")],
            "paper": [("Chip maker ships early", BODY, "chips-copy")],
        }.items():
            (folder / feed).mkdir(parents=True)
            for title, body, slug in items:
                (folder / feed / f"{slug}.md").write_text(
                    ARTICLE.format(title=title, body=body, slug=slug), encoding="utf-8"
                )
        storage = f'url = "{pg_url}"' if backend == "postgres" else 'path = "aggregator.db"'
        (folder / "feeds.toml").write_text(
            f'[storage]\n{storage}\n\n[[feeds]]\nurl = "wire"\n\n[[feeds]]\nurl = "paper"\n',
            encoding="utf-8",
        )
        polled = run_cli("poll", cwd=folder)
        assert polled.returncode == 0, polled.stderr
        digests.append(json_digest(run_cli, folder))
    assert digests[1] == digests[0]
    # The copy is an article's second copy, not an article of its own.
    articles = [
        [c["title"] for c in article["copies"]]
        for topic in digests[1]["topics"]  # type: ignore[attr-defined]
        for story in topic["stories"]
        for article in story["articles"]
    ]
    assert sorted(map(sorted, articles)) == [
        ["Chip maker ships early", "Chips ahead of plan"],
        ["Valley floods"],
    ]


def test_the_console_script_uses_the_password_from_password_env(
    workdir: Path, pg_server: PgServer, run_console: RunCli
) -> None:
    url = pg_server.database(owner=PASSWORD_USER)
    use_postgres(workdir, url, password_env="AGGREGATOR_TEST_PG_PASSWORD")
    unset = run_console("poll", cwd=workdir)
    assert unset.returncode == 2
    assert "AGGREGATOR_TEST_PG_PASSWORD" in unset.stderr and "storage.password_env" in unset.stderr
    polled = run_console("poll", cwd=workdir, env={"AGGREGATOR_TEST_PG_PASSWORD": PASSWORD})
    assert polled.returncode == 0, polled.stderr
    assert "4 new entries" in polled.stderr and PASSWORD not in polled.stderr
    wrong = run_console("poll", cwd=workdir, env={"AGGREGATOR_TEST_PG_PASSWORD": "nope"})
    assert wrong.returncode == 2 and "password authentication failed" in wrong.stderr


def test_both_path_and_url_is_a_configuration_error(workdir: Path, run_cli: RunCli) -> None:
    path = workdir / "feeds.toml"
    text = path.read_text(encoding="utf-8")
    path.write_text(
        text.replace(SQLITE_LINE, f'{SQLITE_LINE}\nurl = "postgresql://u@127.0.0.1/db"'),
        encoding="utf-8",
    )
    line = text.splitlines().index(SQLITE_LINE) + 2
    result = run_cli("poll", cwd=workdir)
    assert result.returncode == 2
    assert f"feeds.toml:{line} [storage.url]" in result.stderr and "not both" in result.stderr
    assert not (workdir / "aggregator.db").exists()


def test_an_unset_password_variable_names_the_key(workdir: Path) -> None:
    use_postgres(workdir, "postgresql://u@127.0.0.1:1/db", password_env="NO_SUCH_VAR_FOR_PG")
    os.environ.pop("NO_SUCH_VAR_FOR_PG", None)
    with pytest.raises(ConfigError, match="NO_SUCH_VAR_FOR_PG") as caught:
        open_configured(load_config(workdir / "feeds.toml"))
    assert caught.value.key == "storage.password_env"


# A writer that commits one poll, then stops inside its second poll's transaction (after
# its entries and the feed's row are written, before the poll's record), says so, and waits
# to be killed.
WRITER = textwrap.dedent(
    """
    import sys, threading
    from datetime import UTC, datetime
    from aggregator.storage.postgres import _feeds, open_postgres
    from aggregator.types import EntryData, Feed

    feed = Feed(url="https://crash.example/feed", name="Crash")
    now = datetime(2025, 2, 11, 9, 0, tzinfo=UTC)

    def entries(prefix):
        return [
            EntryData(guid=f"{prefix}{n}", title=f"{prefix} {n}", link=None, published=now)
            for n in range(50)
        ]

    db = open_postgres(sys.argv[1])
    db.sync_feeds([feed], now)
    db.save_poll(feed, entries("committed"), now=now, seconds=0.1)

    def stop(*args, **kwargs):
        print(db._db.info.backend_pid, flush=True)
        threading.Event().wait()  # here until kill -9

    _feeds._record = stop
    db.save_poll(feed, entries("uncommitted"), now=now, seconds=0.1)
    """
)


def test_a_writer_killed_mid_transaction_loses_nothing_committed(pg_url: str) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", WRITER, pg_url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert child.stdout is not None
        backend = int(child.stdout.readline())  # the writer has stopped mid-transaction
        with psycopg.connect(pg_url, autocommit=True) as db:
            state = db.execute(
                "SELECT state FROM pg_stat_activity WHERE pid = %s", (backend,)
            ).fetchone()
            assert state == ("idle in transaction",)  # the kill lands mid-transaction
            child.send_signal(signal.SIGKILL)
            child.wait(timeout=30)

            def gone() -> bool:
                found = db.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (backend,)
                ).fetchone()
                return found == (0,)

            wait_until(gone, 30, "the server to end the killed writer's session")
    finally:
        if child.poll() is None:
            child.kill()
        child.wait(timeout=30)
        assert child.stderr is not None
        child.stderr.close()
        assert child.stdout is not None
        child.stdout.close()
    from aggregator.storage.postgres import open_postgres
    from aggregator.types import Feed

    with open_postgres(pg_url) as store:
        titles = {e.title for e in store.entries_by_ids(list(range(1, 200)))}
        assert titles == {f"committed {n}" for n in range(50)}
        state = store.feed_state("https://crash.example/feed")
        assert state is not None and state.entry_count == 50
        # The killed writer's lock went with its session: another writer goes on.
        feed = Feed(url="https://crash.example/feed", name="Crash")
        assert state.last_success is not None
        saved = store.save_poll(feed, [], now=state.last_success, seconds=0)
        assert saved.new == 0
    with psycopg.connect(pg_url) as db:
        assert db.execute("SELECT count(*) FROM polls").fetchone() == (2,)


def move_db(source: Path, target: Path) -> None:
    """Rename an SQLite database with its write-ahead log and shared-memory files (a
    search writes: it brings the index up to date), as SQLite needs them kept together."""
    for suffix in ("", "-wal", "-shm"):
        moved = source.with_name(source.name + suffix)
        if moved.exists():
            moved.rename(target.with_name(target.name + suffix))
        else:
            target.with_name(target.name + suffix).unlink(missing_ok=True)


def test_storage_migrate_copies_an_sqlite_database_whole(
    workdir: Path, run_cli: RunCli, pg_url: str
) -> None:
    from datetime import UTC, date, datetime, timedelta

    from aggregator.storage import DueAlert, open_storage
    from aggregator.storage.postgres import open_postgres
    from aggregator.storage.schema import TABLES

    assert run_cli("poll", cwd=workdir).returncode == 0
    made = datetime(2025, 2, 11, 7, 0, tzinfo=UTC)
    with open_storage(workdir / "aggregator.db") as db:  # a digest run and its emails
        db.record_digest(date(2025, 2, 10), now=made)
        for to, ok in (("a@example.org", True), ("b@example.org", False)):
            db.claim_email("2025-02-10", to, now=made, force=False, stale_after=timedelta(1))
            db.record_email(
                "2025-02-10", to, now=made, ok=ok, attempts=1, error=None if ok else "refused"
            )
        (story,) = {e.story_id for e in db.entries_between(made - timedelta(3650), made)}
        assert story is not None
        _, seq = db.stories_changed()
        alert = DueAlert(story, "summit", "webhook", "new", 0, 2, '{"story": 1}')
        (alert_id,) = db.record_alerts([alert], now=made, seq=seq)  # and a failed alert
        db.claim_alert(alert_id, now=made, owner=1, stale_after=timedelta(1))
        db.record_alert_attempt(alert_id, now=made, ok=False, error="HTTP 500", next_attempt=made)
        alerts = db.alerts_since()
    expected = json_digest(run_cli, workdir)
    with sqlite3.connect(workdir / "aggregator.db") as raw:
        counts = {t: raw.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}
        # A kept key index is derived data, not copied: the copy makes its own.
        raw.execute("INSERT INTO dedup_index VALUES (1, 99, 'keys', x'00')")
        raw.execute("INSERT INTO dedup_index_parts VALUES (1, x'01')")
    raw.close()
    assert counts["entries"] == 4 and counts["stories"] == 1 and counts["email_deliveries"] == 2
    assert counts["alerts"] == 1

    copied = run_cli("storage", "migrate", "--to", pg_url, cwd=workdir)
    assert copied.returncode == 0, copied.stderr
    assert copied.stdout.splitlines() == [f"{t}\t{n}" for t, n in counts.items()]
    assert "copied 4 entries" in copied.stderr

    use_postgres(workdir, pg_url)  # and drop the SQLite file: PostgreSQL holds it all
    move_db(workdir / "aggregator.db", workdir / "old.db")
    assert json_digest(run_cli, workdir) == expected
    with open_storage(workdir / "old.db") as old, open_postgres(pg_url) as new:
        assert new.alerts_since() == alerts and new.stories_changed() == ([], seq)
        stored = old.entries_between(made - timedelta(days=3650), made + timedelta(days=3650))
        for query in {e.title.split()[0] for e in stored}:  # searched alike in the copy
            found, copy = old.search(query), new.search(query)
            assert found.total and copy.total == found.total
            # The same stories; their order and best entries may differ (bm25, ts_rank).
            stories = [{h.story_id or -h.entry.id for h in r.hits} for r in (found, copy)]
            assert stories[1] == stories[0]
    again = run_cli("poll", cwd=workdir)  # the feed's entries are known: nothing new
    assert again.returncode == 0 and "; 0 new entries, 0 updated" in again.stderr
    status = run_cli("status", cwd=workdir)
    assert "a@example.org" in status.stdout or "b@example.org" in status.stdout
    with psycopg.connect(pg_url) as db:
        assert db.execute("SELECT count(*) FROM dedup_index").fetchone() == (0,)
        assert db.execute("SELECT count(*) FROM dedup_index_parts").fetchone() == (0,)
        db.execute(  # new rows continue after the copied ids
            "INSERT INTO entries (feed_url, guid, title, published, dated, first_seen, "
            "updated_at, summary, text, content_hash) SELECT feed_url, 'new', 't', "
            "published, true, published, published, '', '', '' FROM entries LIMIT 1"
        )
        assert db.execute("SELECT max(id) FROM entries").fetchone() == (5,)
        db.rollback()

    move_db(workdir / "old.db", workdir / "aggregator.db")
    use_sqlite = (workdir / "feeds.toml").read_text(encoding="utf-8")
    (workdir / "feeds.toml").write_text(
        use_sqlite.replace(f'url = "{pg_url}"', SQLITE_LINE), encoding="utf-8"
    )
    refused = run_cli("storage", "migrate", "--to", pg_url, cwd=workdir)
    assert refused.returncode == 1
    assert "not empty (feeds: 1, entries: 4" in refused.stderr
    with psycopg.connect(pg_url) as db:
        assert db.execute("SELECT count(*) FROM entries").fetchone() == (4,)


@pytest.mark.parametrize(
    "url", ["postgresql://u:secret@127.0.0.1/x", "postgresql://u@127.0.0.1/x?password=secret"]
)
def test_storage_migrate_refuses_a_password_in_the_url(
    workdir: Path, run_cli: RunCli, url: str
) -> None:
    refused = run_cli("storage", "migrate", "--to", url, cwd=workdir)
    assert refused.returncode == 2 and "--to" in refused.stderr
    assert "secret" not in refused.stderr


def test_storage_migrate_turns_the_earliest_json_vectors_into_bytes(
    workdir: Path, run_cli: RunCli, pg_url: str
) -> None:
    from datetime import UTC, datetime

    from aggregator.storage.postgres import open_postgres

    assert run_cli("poll", cwd=workdir).returncode == 0
    with sqlite3.connect(workdir / "aggregator.db") as raw:  # as the earliest versions wrote
        (story,) = raw.execute("SELECT id FROM stories").fetchone()
        raw.execute("UPDATE stories SET centroid = ?", ('{"峰会": 0.5, "ai": 0.25}',))
        (entry,) = raw.execute("SELECT min(entry_id) FROM dedup_entries").fetchone()
        raw.execute("UPDATE dedup_entries SET vector = ? WHERE entry_id = ?", ('{"x": 1.0}', entry))
    assert run_cli("storage", "migrate", "--to", pg_url, cwd=workdir).returncode == 0
    with open_postgres(pg_url) as db:
        far = datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC)
        (state,) = db.stories_near([], *far, ids=[story])
        assert state.centroid == {"峰会": 0.5, "ai": 0.25}
        assert db.previous_placements([entry])[entry][1] == {"x": 1.0}


def test_storage_migrate_copies_text_an_earlier_poll_stored_with_a_nul(
    workdir: Path, run_cli: RunCli, pg_url: str
) -> None:
    # SQLite kept a NUL that polls before `storable` stored; PostgreSQL's text holds none:
    # the copy failed whole ("cannot contain NUL (0x00) bytes", exit 1), then printed an
    # "Exception ignored in: <generator ...>" traceback from the SQLite rows left unread.
    assert run_cli("poll", cwd=workdir).returncode == 0
    with sqlite3.connect(workdir / "aggregator.db") as raw:
        (entry,) = raw.execute("SELECT min(id) FROM entries").fetchone()
        raw.execute(
            "UPDATE entries SET title = 'Sum' || char(0) || 'mit', author = char(0) WHERE id = ?",
            (entry,),
        )
    raw.close()
    copied = run_cli("storage", "migrate", "--to", pg_url, cwd=workdir)
    assert copied.returncode == 0, copied.stderr
    assert "Traceback" not in copied.stderr and "Exception ignored" not in copied.stderr
    with psycopg.connect(pg_url) as db:
        row = db.execute("SELECT title, author FROM entries WHERE id = %s", (entry,)).fetchone()
        assert row == ("Summit", "")


def test_storage_migrate_copies_a_guid_an_earlier_poll_stored_past_the_index_limit(
    workdir: Path, run_cli: RunCli, pg_url: str
) -> None:
    # SQLite kept guids up to 4,000 characters; PostgreSQL's (feed, guid) index holds rows
    # of 2,704 bytes: the copy failed whole ("index row requires 9072 bytes", exit 1).
    # Such a guid is copied as its SHA-1, as a poll now stores it: not stored again.
    import hashlib

    assert run_cli("poll", cwd=workdir).returncode == 0
    long = "https://news.example/" + "".join(chr(0x4E00 + i * 7 % 20000) for i in range(2000))
    with sqlite3.connect(workdir / "aggregator.db") as raw:
        (entry,) = raw.execute("SELECT min(id) FROM entries").fetchone()
        raw.execute("UPDATE entries SET guid = ? WHERE id = ?", (long, entry))
    raw.close()
    copied = run_cli("storage", "migrate", "--to", pg_url, cwd=workdir)
    assert copied.returncode == 0, copied.stderr
    with psycopg.connect(pg_url) as db:
        row = db.execute("SELECT guid FROM entries WHERE id = %s", (entry,)).fetchone()
    assert row == ("sha1:" + hashlib.sha1(long.encode()).hexdigest(),)


def test_serve_answers_from_a_postgresql_copy_as_from_sqlite(tmp_path: Path, pg_url: str) -> None:
    """`aggregator serve`'s site (tests/test_serve.py) copied to PostgreSQL: the same Now,
    the same stories found (ranked by ts_rank, not bm25), and Now made again after a
    poll writes to PostgreSQL (its change stamp)."""
    from tests.test_serve import SINCE, Site, make_site

    folder = make_site(tmp_path)
    copied = cli("storage", "migrate", "--to", pg_url, cwd=folder)
    assert copied.returncode == 0, copied.stderr
    sqlite_site = Site(folder)
    config = folder / "feeds.toml"
    config.write_text(
        config.read_text(encoding="utf-8").replace('path = "test.db"', f'url = "{pg_url}"'),
        encoding="utf-8",
    )
    pg_site = Site(folder)
    try:
        stories = [
            s.get("/api/stories", since=SINCE).json()["topics"] for s in (sqlite_site, pg_site)
        ]
        assert stories[0] == stories[1] and stories[0]
        for query in ("峰会", "人工智能", "chips", "paris summit", '"export rules"', "nvid*"):
            found = [s.get("/api/search", q=query).json() for s in (sqlite_site, pg_site)]
            assert found[0]["total"] and found[1]["total"] == found[0]["total"], query
            # The same stories; a story's best entry may be another of its matching ones.
            shown = [{(r["story_id"], r["headline"]) for r in f["results"]} for f in found]
            assert shown[1] == shown[0]
            assert all("<mark>" in r["snippet"] + r["title"] for r in found[1]["results"])
        wire = folder / "wire.xml"
        wire.write_text(
            wire.read_text(encoding="utf-8").replace(
                "</channel>",
                "<item><title>Fresh item</title><link>https://wire.example/fresh</link>"
                "<guid>w3</guid><pubDate>Tue, 11 Feb 2025 09:00:00 GMT</pubDate></item>"
                "</channel>",
            ),
            encoding="utf-8",
        )
        assert "Fresh item" not in pg_site.get("/", since=SINCE).text
        polled = cli("poll", cwd=folder)  # into PostgreSQL, from another process
        assert polled.returncode == 0, polled.stderr
        wait_until(lambda: "Fresh item" in pg_site.get("/", since=SINCE).text, 30, "the new page")
        assert pg_site.get("/api/search", q="fresh").json()["total"] == 1
        sqlite_site.close()
        for name in ("test.db", "test.db-wal", "test.db-shm"):  # PostgreSQL holds it all
            (folder / name).unlink(missing_ok=True)
        assert pg_site.get("/healthz").status_code == 200  # no SQLite file: not "gone"
    finally:
        sqlite_site.close()
        pg_site.close()


def test_healthz_says_the_database_is_unreachable_without_naming_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """/healthz needs no token: while PostgreSQL is down it says so without the URL or the
    server's words (its host, port, user, database); the log has them, once while it is down."""
    from tests.conftest import write_config
    from tests.test_serve import Site
    from tests.test_storage_postgres import socket_port

    with socket_port() as port:
        url = f"postgresql://hiddenrole@127.0.0.1:{port}/hiddendb"
        config = write_config(tmp_path, "")
        config.write_text(
            config.read_text(encoding="utf-8").replace('path = "test.db"', f'url = "{url}"'),
            encoding="utf-8",
        )
        site = Site(tmp_path)
        try:
            with caplog.at_level(logging.WARNING, logger="aggregator"):
                for _ in range(2):
                    down = site.get("/healthz")
                    assert down.status_code == 503
                    assert down.text.startswith("unavailable: ") and "PostgreSQL" in down.text
                    for secret in ("hiddenrole", "hiddendb", "127.0.0.1", str(port)):
                        assert secret not in down.text, down.text
        finally:
            site.close()
    logged = [r.getMessage() for r in caplog.records if r.getMessage().startswith("healthz")]
    assert len(logged) == 1 and "cannot connect to PostgreSQL" in logged[0], logged


@pytest.mark.parametrize(
    "scenario",
    [
        "test_a_syndicated_story_alerts_once_per_watch_and_channel",
        "test_a_failing_receiver_is_retried_with_backoff_and_delivered_once",
        "test_status_shows_an_alert_that_will_be_retried_and_exits_0",
        "test_an_alert_refused_for_good_makes_status_exit_1",
    ],
)
def test_watches_alert_on_postgresql_as_on_sqlite(
    scenario: str,
    tmp_path: Path,
    clock: FrozenClock,
    run_cli: RunCli,
    pg_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """tests/test_watches.py's scenarios, their assertions unchanged, with `[storage]` naming
    a PostgreSQL database: the alerts recorded, claimed, retried and sent through it, and
    listed by `alerts` and `status`."""
    import inspect

    from tests import test_watches
    from tests.alerting import Receiver, config_text

    def on_postgres(receiver_url: str, feeds_total: int, watches: str) -> str:
        text = config_text(receiver_url, feeds_total, watches)
        assert 'path = "alerts.db"' in text
        return text.replace('path = "alerts.db"', f'url = "{pg_url}"')

    monkeypatch.setattr(test_watches, "config_text", on_postgres)
    receiver = Receiver()
    given = {"tmp_path": tmp_path, "clock": clock, "run_cli": run_cli, "receiver": receiver}
    test = getattr(test_watches, scenario)
    try:
        test(**{name: given[name] for name in inspect.signature(test).parameters})
    finally:
        receiver.close()
    assert not (tmp_path / "alerts.db").exists()  # it all went to PostgreSQL
    with psycopg.connect(pg_url) as db:
        (recorded,) = db.execute("SELECT count(*) FROM alerts").fetchone()
    assert recorded >= 1
