"""`aggregator serve`: a real uvicorn server on 127.0.0.1 over a real SQLite database filled
by a real poll of local feed files (the seeds, Chinese in both scripts, and an English RSS
file with hostile strings): every page's content, search, the archive's files, the
operator endpoints, the security headers and the token."""

from __future__ import annotations

import html
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from aggregator.config import load_config
from aggregator.core import Aggregator, make_aggregator
from aggregator.digest import pages
from aggregator.storage import fulltext
from aggregator.storage.schema import SCHEMA_VERSION
from aggregator.web import server
from aggregator.web.server import Served, serve_in_thread
from tests.conftest import ROOT, SEEDS, RunCli, cli, wait_until, write_config

SINCE = "2025-02-10"
ENGLISH = """<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel><title>Wire</title><link>https://wire.example/</link>
<item><title>Leaders open the AI Action Summit in Paris</title>
<link>https://wire.example/summit</link><guid>w1</guid>
<pubDate>Mon, 10 Feb 2025 09:00:00 GMT</pubDate>
<description>Heads of state met in Paris on Monday for the AI Action Summit, where Nvidia
and others showed new chips.</description></item>
<item><title>&lt;script&gt;alert("x")&lt;/script&gt; Chip exports</title>
<link>javascript:alert(1)</link><guid>w2</guid>
<pubDate>Mon, 10 Feb 2025 10:00:00 GMT</pubDate>
<description>&lt;img src=x onerror=alert(2)&gt;Export rules for chips changed.</description>
</item>
</channel></rss>
"""


def make_site(folder: Path, extra: str = "") -> Path:
    """A feeds.toml with the seeds and the English file, polled, and a digest written."""
    shutil.copytree(SEEDS, folder / "seeds")
    (folder / "wire.xml").write_text(ENGLISH, encoding="utf-8")
    write_config(
        folder,
        '[[feeds]]\nurl = "seeds"\nname = "Seeds"\n\n'
        '[[feeds]]\nurl = "wire.xml"\nname = "Wire"\ntags = ["english"]\n',
        extra,
    )
    for args in (("poll",), ("digest", "--since", SINCE)):
        done = cli(*args, cwd=folder)
        assert done.returncode == 0, done.stderr
    return folder


class Site:
    """A served site: its folder, its aggregator, its server and an HTTP client of it."""

    def __init__(self, folder: Path, token: str | None = None) -> None:
        self.folder = folder
        self.agg: Aggregator = make_aggregator(load_config(folder / "feeds.toml"), read_only=True)
        self.served: Served = serve_in_thread(self.agg, "127.0.0.1", 0, token=token)
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{self.served.port}", timeout=30)

    def get(self, path: str, **params: str) -> httpx.Response:
        return self.http.get(path, params=params or None)

    def close(self) -> None:
        self.http.close()
        self.served.stop()
        self.agg.close()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    served = Site(make_site(tmp_path_factory.mktemp("site")))
    yield served
    served.close()


@pytest.fixture(scope="module")
def digest_json(site: Site) -> dict[str, object]:
    """What `aggregator digest` makes of the same window, as JSON."""
    done = cli("digest", "--since", SINCE, "--format", "json", "--output", "-", cwd=site.folder)
    assert done.returncode == 0, done.stderr
    data: dict[str, object] = json.loads(done.stdout)
    return data


def story_ids(data: dict[str, object]) -> dict[str, str]:
    """Headline -> story id, of a JSON digest."""
    topics = data["topics"]
    assert isinstance(topics, list)
    return {s["headline"]: s["id"] for t in topics for s in t["stories"]}


# --- pages ------------------------------------------------------------------------------


def test_now_groups_the_stories_as_the_digest_does(
    site: Site, digest_json: dict[str, object]
) -> None:
    api = site.get("/api/stories", since=SINCE)
    assert api.status_code == 200 and api.headers["content-type"] == "application/json"
    data = api.json()
    assert list(data) == ["since", "until", "generated_at", "late_since", "topics"]
    assert data["late_since"] is None
    assert data["topics"] == digest_json["topics"]  # the same sections, stories and ids
    page = site.get("/", since=SINCE)
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    for topic in data["topics"]:
        assert f"{topic['name']} <span" in page.text
        for story in topic["stories"]:
            assert f'<a href="/stories/{story["id"]}">{story["headline"]}</a>' in page.text
            for article in story["articles"]:
                for copy in article["copies"]:
                    assert copy["feed"] in page.text
    assert "Leaders open the AI Action Summit in Paris" in page.text
    # The hostile title's markup is gone at ingest; its link is dropped, never an href.
    assert "Chip exports" in page.text and "<script" not in page.text
    assert "javascript:" not in page.text and "onerror" not in page.text


def test_now_defaults_to_the_last_24_hours(site: Site) -> None:
    page = site.get("/")
    assert page.status_code == 200
    # Only the seed without a date (dated by when it was first seen, today) is that recent.
    assert "Leaders open the AI Action Summit" not in page.text
    api = site.get("/api/stories").json()
    titles = [
        c["title"]
        for t in api["topics"]
        for s in t["stories"]
        for a in s["articles"]
        for c in a["copies"]
    ]
    assert len(titles) == 1 and all(
        not c["dated"]
        for t in api["topics"]
        for s in t["stories"]
        for a in s["articles"]
        for c in a["copies"]
    )
    assert site.get("/", since="yesterday").status_code == 400
    for far in ("0001-01-01", "9999-12-31", "0001-01-01T00:00:00"):
        assert site.get("/", since=far).status_code == 200, far


@pytest.mark.parametrize(
    ("now", "inside", "outside"),
    [
        # Paris, 26 October 2025, 02:30 in the hour the clocks pass twice (its second
        # pass, 01:30 UTC): what was published ten minutes before (the second pass's
        # 02:20) is shown, and what is older than 24 hours is not.
        (
            datetime(2025, 10, 26, 1, 30, 10, tzinfo=UTC),
            [datetime(2025, 10, 26, 1, 20, tzinfo=UTC), datetime(2025, 10, 25, 1, 40, tzinfo=UTC)],
            [datetime(2025, 10, 25, 1, 20, tzinfo=UTC)],
        ),
        # Paris, 30 March 2025 at noon (CEST): 24 hours back is 11:00 CET the day before.
        (
            datetime(2025, 3, 30, 10, 0, tzinfo=UTC),
            [datetime(2025, 3, 29, 10, 30, tzinfo=UTC)],
            [datetime(2025, 3, 29, 9, 30, tzinfo=UTC)],
        ),
    ],
)
def test_now_is_the_last_24_hours_also_on_the_days_the_clocks_change(
    tmp_path: Path, now: datetime, inside: list[datetime], outside: list[datetime]
) -> None:
    """The window was reckoned on the local clock's face: in the hour passed twice its
    end was an hour back (the last hour's news missing), and 24 hours back was 23 real
    hours on a spring-forward day (25 in the autumn)."""
    items = "".join(
        f"<item><title>Item {n} {word}</title><guid>i{n}</guid>"
        f"<pubDate>{format_datetime(when)}</pubDate>"
        f"<description>{word} {n} said nothing of note today.</description></item>"
        for n, (word, when) in enumerate(
            [("kept", when) for when in inside] + [("old", when) for when in outside]
        )
    )
    (tmp_path / "wire.xml").write_text(
        f'<?xml version="1.0"?><rss version="2.0"><channel><title>W</title>{items}</channel></rss>',
        encoding="utf-8",
    )
    (tmp_path / "feeds.toml").write_text(
        '[[feeds]]\nurl = "wire.xml"\nname = "Wire"\n\n[digest]\ntimezone = "Europe/Paris"\n',
        encoding="utf-8",
    )
    assert cli("poll", cwd=tmp_path).returncode == 0
    agg = make_aggregator(load_config(tmp_path / "feeds.toml"), read_only=True, clock=lambda: now)
    served = serve_in_thread(agg, "127.0.0.1", 0)
    try:
        got = httpx.get(f"http://127.0.0.1:{served.port}/api/stories", timeout=30).json()
    finally:
        served.stop()
        agg.close()
    shown = {
        datetime.fromisoformat(c["published"])
        for t in got["topics"]
        for s in t["stories"]
        for a in s["articles"]
        for c in a["copies"]
    }
    assert shown == set(inside)
    since, until = (datetime.fromisoformat(got[key]) for key in ("since", "until"))
    assert until - since == timedelta(days=1) and now <= until < now + timedelta(minutes=1)


def test_now_filters_by_feed_tag_language_and_topic(site: Site) -> None:
    def headlines(**params: str) -> set[str]:
        data = site.get("/api/stories", since=SINCE, **params).json()
        return {s["headline"] for t in data["topics"] for s in t["stories"]}

    everything = headlines()
    # The seeds' story has the English report on the summit too (English with Chinese).
    seeds = headlines(feed="Seeds")
    assert len(seeds) == 1 and len(everything) == 2
    assert headlines(feed="Wire") == everything
    assert headlines(tag="english") == everything
    assert headlines(language="zh") == headlines(language="zh-CN") == seeds
    assert headlines(language="en") == everything
    assert headlines(feed="No such feed") == headlines(language="fr") == set()
    summit = headlines(topic="Summit")
    assert summit and summit <= everything
    page = site.get("/", since=SINCE, feed="Wire")
    assert '<option value="Wire" selected>Wire</option>' in page.text
    assert '<option value="english">english</option>' in page.text


def test_a_story_page_shows_every_copy_its_timeline_and_topic(
    site: Site, digest_json: dict[str, object]
) -> None:
    topics = digest_json["topics"]
    assert isinstance(topics, list)
    biggest = max((s for t in topics for s in t["stories"]), key=lambda s: len(s["articles"]))
    topic = next(t["name"] for t in topics if biggest in t["stories"])
    page = site.get(f"/stories/{biggest['id']}")
    assert page.status_code == 200
    # The page's words are English; the Chinese headline is marked as Chinese (the seeds').
    assert '<html lang="en">' in page.text
    assert f'<h1 lang="zh-CN">{biggest["headline"]}</h1>' in page.text
    kicker = page.text.split('<p class="kicker">')[1].split("</p>")[0]
    assert kicker.startswith("Story · ") and topic in kicker
    copies = [c for a in biggest["articles"] for c in a["copies"]]
    assert len(copies) >= 3  # the seeds: one story in both scripts
    timeline = page.text.split("<h2>Timeline</h2>")[1]
    for copy in copies:
        assert copy["title"] in page.text and copy["feed"] in timeline
    assert timeline.count("<li>") == len(copies)
    missing = site.get("/stories/999999")
    assert missing.status_code == 404 and "There is no story 999999." in missing.text
    assert site.get("/stories/not-a-number").status_code == 404
    assert site.get("/stories/99999999999999999999999").status_code == 404  # past SQLite's
    assert site.get("/stories/0").status_code == 404


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("人工智能", "巴黎"),  # Simplified
        ("人工智慧", "巴黎"),  # Traditional: the same story
        ("峰會 開幕", "巴黎"),
        ("nvidia", "Leaders open the AI Action Summit in Paris"),  # English
        ("EXPORT rules", "Chip exports"),
    ],
)
def test_search_finds_both_scripts_and_english(site: Site, query: str, expected: str) -> None:
    page = site.get("/search", q=query)
    assert page.status_code == 200 and "<mark>" in page.text
    api = site.get("/api/search", q=query).json()
    assert list(api)[:3] == ["query", "total", "results"]
    assert api["query"] == query and api["total"] >= 1
    first = api["results"][0]
    assert list(first) == ["story_id", "headline", "title", "link", "feed", "published", "snippet"]
    assert expected in first["headline"] + first["title"]
    assert "<mark>" in first["snippet"] or "<mark>" in page.text
    assert first["headline"] in page.text


def test_simplified_and_traditional_queries_find_the_same_stories(site: Site) -> None:
    def found(query: str) -> list[str | None]:
        return [r["story_id"] for r in site.get("/api/search", q=query).json()["results"]]

    assert found("人工智能") == found("人工智慧") != []
    assert found("峰会") == found("峰會") != []
    # A Chinese word after a column filter (its characters were once taken with the column).
    assert found("title:峰会") == found("title:峰會") != []
    assert set(found("title:峰会")) <= set(found("峰会"))
    assert "<mark>title" not in site.get("/search", q="title:峰会").text


def test_a_query_matching_too_many_entries_shows_newest_first_and_a_lower_bound(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fulltext, "RANKED_MATCHES", 1)
    monkeypatch.setattr(fulltext, "COUNT_CAP", 1)
    api = site.get("/api/search", q="chips OR 峰会").json()
    assert (api["total"], api["exact"], api["order"]) == (1, False, "newest")
    assert len(api["results"]) == 2  # every story found is listed, newest first
    page = site.get("/search", q="chips OR 峰会")
    assert "More than 1 stories for" in page.text and "newest first" in page.text
    monkeypatch.setattr(fulltext, "COUNT_CAP", 1000)
    api = site.get("/api/search", q="chips OR 峰会").json()
    assert (api["total"], api["exact"], api["order"]) == (2, True, "newest")
    ranked = site.get("/api/search", q="nvidia").json()
    assert (ranked["exact"], ranked["order"]) == (True, "rank")


@pytest.mark.parametrize("query", ['"', "AND OR (", "x" * 10_240, "NOT", "a:b", "((("])
def test_a_hostile_query_finds_nothing_and_says_so(site: Site, query: str) -> None:
    page = site.get("/search", q=query)
    assert page.status_code == 200
    assert "No results" in page.text and "<mark>" not in page.text
    api = site.get("/api/search", q=query).json()
    assert (api["total"], api["results"]) == (0, []) and api["message"]


def test_search_pages(site: Site) -> None:
    first = site.get("/api/search", q="chips OR 峰会").json()
    assert first["total"] == len(first["results"]) == 2
    again = site.get("/api/search", q="chips OR 峰会", page="2").json()
    assert (again["total"], again["results"]) == (2, [])
    assert site.get("/search", q="summit", page="oops").status_code == 200
    empty = site.get("/search")
    assert empty.status_code == 200 and "No results" not in empty.text


def test_the_digest_archive_and_its_files(site: Site) -> None:
    names = sorted(p.name for p in (site.folder / "digests").iterdir())
    listing = site.get("/digests/")
    assert listing.status_code == 200
    stem = next(n for n in names if n.endswith(".html") and n != "index.html")[: -len(".html")]
    assert f'href="/digests/{stem}.html"' in listing.text
    assert f'href="/digests/{stem}.json"' in listing.text
    page = site.get(f"/digests/{stem}.html")
    assert page.status_code == 200 and "<style>" in page.text
    policy = page.headers["content-security-policy"]
    assert "'sha256-" in policy and "unsafe-inline" not in policy
    as_json = site.get(f"/digests/{stem}.json")
    assert as_json.headers["content-type"] == "application/json"
    assert as_json.json()["topics"]
    assert site.get("/digests/feed.xml").headers["content-type"] == "application/atom+xml"
    assert site.http.get("/digests", follow_redirects=True).url.path == "/digests/"


def test_no_file_outside_the_digest_folder_is_served(site: Site) -> None:
    digests = site.folder / "digests"
    (digests / ".hidden.html").write_text("secret", encoding="utf-8")
    link = digests / "link.html"
    if not link.exists():
        link.symlink_to(site.folder / "feeds.toml")
    for path in (
        "/digests/..%2Ffeeds.toml",
        "/digests/%2e%2e/feeds.toml",
        "/digests/../feeds.toml",
        "/digests/.hidden.html",
        "/digests/link.html",
        "/digests/%00.html",
    ):
        response = site.http.get(path)
        assert response.status_code == 404, path
        assert "[storage]" not in response.text and "secret" not in response.text


def test_feeds_show_their_health_as_status_does(site: Site) -> None:
    done = cli("status", "--format", "json", cwd=site.folder)
    rows = json.loads(done.stdout)
    page = site.get("/feeds")
    assert page.status_code == 200
    for row in rows:
        assert f"<strong>{row['name']}</strong>" in page.text
        assert f'<span class="n label">entries </span>{row["entry_count"]}</td>' in page.text
    assert "2 feeds" in page.text


# --- the operator's endpoints ------------------------------------------------------------


def test_metrics_count_what_the_database_holds(site: Site) -> None:
    response = site.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }
    entries = site.get("/api/stories", since=SINCE).json()
    copies = sum(
        len(a["copies"]) for t in entries["topics"] for s in t["stories"] for a in s["articles"]
    )
    assert samples[("aggregator_entries", ())] == copies == 6
    stories = sum(len(t["stories"]) for t in entries["topics"])
    assert samples[("aggregator_stories", ())] == stories
    assert samples[("aggregator_feeds", ())] == 2
    assert samples[("aggregator_feeds_failing", ())] == 0
    assert samples[("aggregator_polls_total", (("status", "ok"),))] == 2
    assert samples[("aggregator_feeds_last_poll", (("status", "ok"),))] == 2
    assert samples[("aggregator_emails_total", (("status", "sent"),))] == 0
    assert samples[("aggregator_poll_duration_seconds_count", ())] == 2
    assert samples[("aggregator_poll_duration_seconds_bucket", (("le", "+Inf"),))] == 2


def test_healthz_is_503_once_the_database_cannot_be_read(tmp_path: Path) -> None:
    site = Site(make_site(tmp_path))
    try:
        assert site.get("/healthz").status_code == 200
        (tmp_path / "test.db").rename(tmp_path / "moved.db")
        down = site.get("/healthz")
        # Said without the file's path (/healthz needs no token); the log has it.
        assert down.status_code == 503 and "gone" in down.text
        assert "test.db" not in down.text and str(tmp_path) not in down.text
        (tmp_path / "moved.db").rename(tmp_path / "test.db")
        assert site.get("/healthz").status_code == 200
        (tmp_path / "test.db").unlink()
        assert site.get("/healthz").status_code == 503
    finally:
        site.close()


def test_every_response_is_read_only_and_locked_down(site: Site) -> None:
    for path in ("/", "/search?q=x", "/feeds", "/digests/", "/stories/999999", "/metrics"):
        response = site.http.get(path)
        policy = response.headers["content-security-policy"]
        assert "default-src 'none'" in policy and "script-src" not in policy, path
        assert "unsafe-inline" not in policy
        assert response.headers["x-content-type-options"] == "nosniff"
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        response = site.http.request(method, "/")
        assert response.status_code == 405 and response.headers["allow"] == "GET, HEAD"
    assert site.http.head("/").status_code == 200


# --- the token -----------------------------------------------------------------------------


def test_a_token_is_needed_for_everything_but_healthz(tmp_path: Path) -> None:
    site = Site(make_site(tmp_path), token="s3cret")
    try:
        assert site.get("/").status_code == 401
        assert site.get("/metrics").status_code == 401
        assert site.get("/healthz").status_code == 200
        bearer = site.http.get("/", headers={"Authorization": "Bearer s3cret"})
        assert bearer.status_code == 200
        assert site.http.get("/", auth=("anyone", "s3cret")).status_code == 200
        assert site.http.get("/", auth=("anyone", "wrong")).status_code == 401
        wrong = site.http.get("/", headers={"Authorization": "Bearer s3cre"})
        assert wrong.status_code == 401 and "Basic" in wrong.headers["www-authenticate"]
    finally:
        site.close()


def test_a_token_beyond_ascii_is_accepted_as_utf_8_bearer_or_basic(tmp_path: Path) -> None:
    """Clients send a non-ASCII token as its UTF-8 bytes (curl, browsers' Basic with
    charset=UTF-8): both forms are the token; its Latin-1 reading or a near miss is not."""
    site = Site(make_site(tmp_path), token="пароль-令牌")
    try:
        bearer = {"Authorization": "Bearer пароль-令牌".encode()}
        assert site.http.get("/", headers=bearer).status_code == 200
        assert site.http.get("/", auth=("anyone", "пароль-令牌")).status_code == 200
        latin = {"Authorization": "Bearer пароль-令牌".encode().decode("latin-1").encode()}
        assert site.http.get("/", headers=latin).status_code == 401
        near = {"Authorization": "Bearer пароль-令".encode()}
        assert site.http.get("/", headers=near).status_code == 401
    finally:
        site.close()


def test_a_token_no_client_can_send_is_a_config_error(tmp_path: Path) -> None:
    """A token that is not UTF-8 text (undecodable bytes in the variable), or holds a
    control character or white space at its ends, could never be matched: refused at start
    with the variable and the key, not a server that answers 401 to everyone."""
    write_config(tmp_path, '[[feeds]]\nurl = "seeds"\n', '\n[serve]\ntoken_env = "AGG_TOKEN"\n')
    port = free_port()
    for value in (b"caf\xe9", b"tab\there", b" padded"):
        env = {k: v for k, v in os.environ.items() if k != "AGGREGATOR_CONFIG"}
        refused = subprocess.run(
            [sys.executable, "-m", "aggregator", "serve", "--host", "0.0.0.0", "--port", str(port)],
            cwd=tmp_path,
            env={**{k.encode(): v.encode() for k, v in env.items()}, b"AGG_TOKEN": value},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert refused.returncode == 2, (value, refused.stderr)
        assert "AGG_TOKEN" in refused.stderr and "serve.token_env" in refused.stderr
        assert "Traceback" not in refused.stderr
    site = Site(make_site(tmp_path / "ok"), token="令牌")  # beyond ASCII is fine
    site.close()


def test_listening_off_loopback_needs_a_token(tmp_path: Path, run_cli: RunCli) -> None:
    make_site(tmp_path)
    refused = run_cli("serve", "--host", "0.0.0.0", cwd=tmp_path)
    assert refused.returncode == 2
    assert "serve.token_env" in refused.stderr and "needs a token" in refused.stderr
    write_config(tmp_path, '[[feeds]]\nurl = "seeds"\n', '\n[serve]\ntoken_env = "AGG_TOKEN"\n')
    unset = run_cli("serve", "--host", "0.0.0.0", cwd=tmp_path, env={"AGG_TOKEN": ""})
    assert unset.returncode == 2 and "AGG_TOKEN" in unset.stderr


def test_a_port_in_use_is_said_and_exits_2(tmp_path: Path, run_cli: RunCli) -> None:
    """Another program on the port: the address and the reason, exit 2 (a usage error:
    another --port), not uvicorn's own exit 3 after a line saying it serves."""
    make_site(tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        busy = run_cli("serve", "--port", str(port), cwd=tmp_path)
    assert busy.returncode == 2, busy.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in busy.stderr and "in use" in busy.stderr
    assert "serving on" not in busy.stderr


@pytest.mark.parametrize("unusable", ["newer", "not sqlite"])
def test_a_database_no_command_can_use_exits_2_before_serving(
    tmp_path: Path, unusable: str
) -> None:
    # It said "serving on ..." and answered every page 503 "Unavailable" for good, where
    # every other command exits 2 (README, Exit codes): a downgrade went unnoticed.
    make_site(tmp_path)
    db = tmp_path / "test.db"
    if unusable == "newer":
        with sqlite3.connect(db) as conn:
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
        conn.close()
    else:
        db.write_bytes(b"not a database at all" * 50)
    done = subprocess.run(
        [sys.executable, "-m", "aggregator", "serve", "--port", str(free_port())],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert str(db) in done.stderr and "serving on" not in done.stderr


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_healthy(process: subprocess.Popen[str], url: str) -> None:
    """Wait until the server `process` started answers 200 at /healthz."""

    def healthy() -> bool:
        try:
            return httpx.get(f"{url}/healthz", timeout=5).status_code == 200
        except httpx.TransportError:
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            return False

    wait_until(healthy, 60, "the server to answer")


def test_the_command_serves_off_loopback_with_its_token(tmp_path: Path) -> None:
    make_site(tmp_path, '\n[serve]\ntoken_env = "AGG_TOKEN"\n')
    port = free_port()
    env = {**os.environ, "AGG_TOKEN": "t0ken"}
    env.pop("AGGREGATOR_CONFIG", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "aggregator", "serve", "--host", "0.0.0.0", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_healthy(process, url)
        assert httpx.get(f"{url}/").status_code == 401
        with_token = httpx.get(f"{url}/", headers={"Authorization": "Bearer t0ken"})
        assert with_token.status_code == 200 and "Now" in with_token.text
    finally:
        process.terminate()
        _, log = process.communicate(timeout=30)  # closes the pipe too
    assert process.returncode == 0, log


# --- run --serve ---------------------------------------------------------------------------


def test_healthz_says_whether_the_daemons_scheduler_runs(tmp_path: Path) -> None:
    from aggregator.scheduler import Daemon

    folder = make_site(tmp_path)
    agg = make_aggregator(load_config(folder / "feeds.toml"))
    daemon = Daemon(agg)
    served = serve_in_thread(agg, "127.0.0.1", 0, scheduler=daemon.problem)
    try:
        url = f"http://127.0.0.1:{served.port}/healthz"
        before = httpx.get(url)
        assert before.status_code == 503 and "scheduler is not running" in before.text
        daemon.start(paused=True)
        assert httpx.get(url).status_code == 200
        daemon.stop(grace=5)
        stopped = httpx.get(url)
        assert stopped.status_code == 503 and "stopping" in stopped.text
    finally:
        served.stop()
        agg.close()


@pytest.mark.slow
def test_run_serve_serves_from_the_daemon_and_stops_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    make_site(tmp_path, f"\n[serve]\nport = {port}\n")
    env = {k: v for k, v in os.environ.items() if k != "AGGREGATOR_CONFIG"}
    process = subprocess.Popen(
        [sys.executable, "-m", "aggregator", "run", "--serve"],
        cwd=tmp_path,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_healthy(process, url)
        page = httpx.get(f"{url}/api/search", params={"q": "峰会"}).json()
        assert page["total"] >= 1
    finally:
        process.terminate()
        _, log = process.communicate(timeout=60)
    assert process.returncode == 0, log
    assert "SIGTERM: stopping" in log and f"serving on http://127.0.0.1:{port}/" in log


def test_now_shows_what_a_poll_stored_since_it_was_last_made(tmp_path: Path) -> None:
    """Now's pages are kept while the database is unchanged, and made again after a poll
    (meanwhile the last one is answered)."""
    site = Site(make_site(tmp_path))
    try:

        def titles() -> set[str]:
            data = site.get("/api/stories", since=SINCE).json()
            return {
                c["title"]
                for t in data["topics"]
                for s in t["stories"]
                for a in s["articles"]
                for c in a["copies"]
            }

        before = titles()
        assert titles() == before and "Fresh item" not in site.get("/", since=SINCE).text
        wire = tmp_path / "wire.xml"
        wire.write_text(
            wire.read_text(encoding="utf-8").replace(
                "</channel>",
                "<item><title>Fresh item</title><link>https://wire.example/fresh</link>"
                "<guid>w3</guid><pubDate>Tue, 11 Feb 2025 09:00:00 GMT</pubDate></item>"
                "</channel>",
            ),
            encoding="utf-8",
        )
        polled = cli("poll", cwd=tmp_path)  # another connection writes
        assert polled.returncode == 0, polled.stderr
        # The page made before is answered at once while the new one is made ...
        assert titles() == before and "Fresh item" not in site.get("/", since=SINCE).text
        # ... which then replaces it.
        wait_until(lambda: titles() == before | {"Fresh item"}, 30, "the new page")
        wait_until(lambda: "Fresh item" in site.get("/", since=SINCE).text, 30, "the new page")
    finally:
        site.close()


def test_now_shows_each_sections_newest_and_links_to_the_whole_section(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each section shows its newest stories and links to itself alone, which pages."""
    monkeypatch.setattr(pages, "NOW_SECTION_STORIES", 1)
    monkeypatch.setattr(pages, "TOPIC_PAGE_STORIES", 1)
    make_site(tmp_path)
    wire = tmp_path / "wire.xml"
    # Two other summits: stories of their own, filed in the same section.
    subjects = [
        ("Fishing summit in Reykjavik sets cod quotas", "Nordic ministers agreed on quotas."),
        ("Coffee growers meet at a Bogota summit on prices", "Farmers want more."),
    ]
    items = "".join(
        f"<item><title>{title}</title><link>https://wire.example/more{n}</link><guid>m{n}</guid>"
        f"<pubDate>Tue, 11 Feb 2025 0{n}:00:00 GMT</pubDate><description>{text}</description>"
        "</item>"
        for n, (title, text) in enumerate(subjects)
    )
    wire.write_text(
        wire.read_text(encoding="utf-8").replace("</channel>", items + "</channel>"),
        encoding="utf-8",
    )
    polled = cli("poll", cwd=tmp_path)
    assert polled.returncode == 0, polled.stderr
    site = Site(tmp_path)
    try:
        data = site.get("/api/stories", since=SINCE).json()
        now = site.get("/", since=SINCE).text
        for topic in data["topics"]:
            stories = topic["stories"]
            total = len(stories)
            assert f"{topic['name']} <span" in now and f"({total})" in now
            links = [f'<a href="/stories/{s["id"]}">{s["headline"]}</a>' for s in stories]
            assert links[0] in now  # the newest
            assert not any(link in now for link in links[1:])
            more = f"/?{urlencode({'since': SINCE, 'topic': topic['name']})}"
            assert (html.escape(more) in now) == (total > 1)
            # The section alone, a page at a time, newest first: every story once.
            shown = []
            for number in range(1, total + 1):
                page = site.get("/", since=SINCE, topic=topic["name"], page=str(number)).text
                shown += [link for link in links if link in page]
                assert ("Older stories" in page) == (number < total)
                assert ("Newer stories" in page) == (number > 1)
            assert shown == links
        assert sum(len(t["stories"]) for t in data["topics"]) > len(data["topics"])
    finally:
        site.close()


def test_feeds_list_each_feeds_recent_errors(tmp_path: Path) -> None:
    folder = make_site(tmp_path)
    write_config(
        folder,
        '[[feeds]]\nurl = "seeds"\nname = "Seeds"\n\n[[feeds]]\nurl = "wire.xml"\nname = "Wire"\n'
        '\n[[feeds]]\nurl = "missing.xml"\nname = "Missing <b>"\n',
    )
    for _ in range(2):
        assert cli("poll", "--force", cwd=folder).returncode == 0
    site = Site(folder)
    try:
        page = site.get("/feeds").text
        assert "<strong>Missing &lt;b&gt;</strong>" in page
        assert "2 recent errors" in page
        assert page.count("no such file or folder") == 3  # the last error, then both
        assert "1 failing" not in page  # 2 failures, under failure_threshold (3)
    finally:
        site.close()


def test_the_server_indexes_what_polls_store_without_a_search(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Polls only queue their entries for the search index; while serving, a background
    thread catches up, so that a search finds them without waiting for the backlog."""
    monkeypatch.setattr(server, "INDEX_EVERY", 0.1)
    monkeypatch.setattr(server, "INDEX_ROUND", 2)  # several rounds for the backlog

    def pending() -> int:
        with sqlite3.connect(tmp_path / "test.db") as raw:
            return int(raw.execute("SELECT count(*) FROM fts_pending").fetchone()[0])

    folder = make_site(tmp_path)
    assert pending() > 2  # the poll indexed nothing
    site = Site(folder)
    try:
        deadline = time.monotonic() + 30
        while pending() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert pending() == 0
        found = site.get("/api/search", q="峰會").json()
        assert found["total"] >= 1
    finally:
        site.close()


def test_without_a_token_only_loopback_host_names_are_answered(site: Site) -> None:
    """Against DNS rebinding: a page on another site whose name resolves to 127.0.0.1 sends
    its own name as Host; the server, listening on loopback without a token, refuses it."""
    port = site.served.port
    local = ("127.0.0.1", f"127.0.0.1:{port}", "localhost:8080", "[::1]:8080", "127.0.0.2")
    for host in local:
        assert site.http.get("/api/stories", headers={"Host": host}).status_code == 200, host
    for host in ("evil.example", f"evil.example:{site.served.port}", "127.0.0.1.evil.example"):
        refused = site.http.get("/api/stories", headers={"Host": host})
        assert refused.status_code == 421, host
        assert "topics" not in refused.text


def test_a_since_in_the_future_shows_nothing_even_past_year_9999(site: Site) -> None:
    """A window from a later time is empty (it once raised OverflowError: a 500)."""
    for since in ("9999-12-31T23:00-10:00", "2999-01-01"):
        page = site.get("/api/stories", since=since)
        assert page.status_code == 200, since
        assert page.json()["topics"] == []


def test_the_pages_kept_are_bounded_whatever_views_are_asked() -> None:
    """Each distinct query is a view; the pages kept for them stay at most `SIZE`."""
    recent = server._Recent()
    for n in range(recent.SIZE * 3):
        view = (f"since={n}",)
        assert recent.get(view, view, lambda n=n: f"page {n}") == f"page {n}"
    assert len(recent._latest) <= recent.SIZE  # one page a view


def test_a_page_being_made_is_waited_for_not_made_again() -> None:
    """Two first requests of a page (or one and the warm-up) make it once."""
    recent = server._Recent()
    started, release = threading.Event(), threading.Event()
    made: list[int] = []

    def make() -> str:
        made.append(1)
        started.set()
        release.wait(10)
        return "page"

    answers: list[str] = []
    first = threading.Thread(target=lambda: answers.append(recent.get(("v",), ("k",), make)))
    first.start()
    assert started.wait(10)
    second = threading.Thread(target=lambda: answers.append(recent.get(("v",), ("k",), make)))
    second.start()
    second.join(0.2)
    assert second.is_alive()  # waiting for the first
    release.set()
    first.join(10)
    second.join(10)
    assert answers == ["page", "page"] and made == [1]
