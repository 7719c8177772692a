"""200 local feeds, one broken in each way: the poll ends within the deadline, good feeds land."""

from __future__ import annotations

import gzip
import sqlite3
import time
from pathlib import Path

import pytest

from aggregator.config import load_config
from aggregator.core import make_aggregator
from tests.conftest import FrozenClock, RunCli, write_config
from tests.feedserver import FeedServer, endless, static, trickle
from tests.test_http import PUBLIC, _dns, _Network

DATA = Path(__file__).parent / "data"
DEADLINE = 3.0
GOOD = 190


def _rss(n: int) -> bytes:
    items = "".join(
        f"<item><title>Feed {n} item {i}</title><guid>f{n}-{i}</guid>"
        f"<pubDate>Wed, 12 Feb 2025 1{i}:00:00 +0000</pubDate></item>"
        for i in range(3)
    )
    return (
        f"<?xml version='1.0'?><rss version='2.0'><channel><title>Feed {n}</title>{items}"
        "</channel></rss>"
    ).encode()


@pytest.fixture(scope="module")
def bomb() -> bytes:
    return gzip.compress(b"\0" * (50 * 1024 * 1024), compresslevel=9)


def _farm(
    server: FeedServer, bomb: bytes, *, with_ssrf: bool, good: int = GOOD
) -> tuple[dict[str, str], set[str]]:
    """Routes for `good` good feeds and one of each kind of broken one: {name: url}, broken."""
    feeds = {}
    for n in range(good):
        server.routes[f"/good/{n}"] = static(_rss(n))
        feeds[f"good {n}"] = server.url(f"/good/{n}")
    # One good feed moved permanently, one is not UTF-8: both still good.
    server.routes["/moved"] = static(b"", status=301, headers={"Location": "/good/0"})
    feeds["moved"] = server.url("/moved")
    server.routes["/gb2312"] = static(
        (DATA / "src_gb2312.xml").read_bytes(), content_type="text/xml; charset=utf-8"
    )
    feeds["gb2312"] = server.url("/gb2312")
    broken = {
        "404": static(b"", status=404),
        "500": static(b"", status=500),
        "410": static(b"", status=410),
        "429": static(b"", status=429, headers={"Retry-After": "3600"}),
        "html": static("<html><body>not a feed</body></html>", content_type="text/html"),
        "trickle": trickle(interval=0.1),
        "50mb": endless(),
        "bomb": static(bomb, headers={"Content-Encoding": "gzip"}),
        "malformed": static((DATA / "src_malformed.xml").read_bytes()),
    }
    for name, handler in broken.items():
        server.routes[f"/broken/{name}"] = handler
        feeds[name] = server.url(f"/broken/{name}")
    feeds["refused"] = "http://127.0.0.1:9/feed"
    names = set(broken) | {"refused"}
    if with_ssrf:
        server.routes["/ssrf"] = static(
            b"", status=302, headers={"Location": server.url("/good/1")}
        )
        feeds["ssrf"] = server.url("/ssrf", PUBLIC)
        names.add("ssrf")
    return feeds, names


def _config(folder: Path, feeds: dict[str, str], deadline: float = DEADLINE) -> Path:
    tables = "".join(f'[[feeds]]\nurl = "{url}"\nname = "{name}"\n' for name, url in feeds.items())
    # The default concurrency (20); the one local server stands for many hosts.
    poll = f'\n[poll]\nper_host = 20\ntimeout = 1\ndeadline = {deadline}\nmax_body = "1MiB"\n'

    return write_config(folder, tables, poll)


def _stored(db_path: Path) -> dict[str, int]:
    with sqlite3.connect(db_path) as db:
        rows = db.execute(
            "SELECT f.name, count(e.id) FROM feeds f LEFT JOIN entries e ON e.feed_url = f.url "
            "GROUP BY f.name"
        ).fetchall()
    return dict(rows)


@pytest.mark.slow
def test_aggregator_poll_200_feeds_with_every_kind_of_breakage(
    tmp_path: Path, run_cli: RunCli, feed_server: FeedServer, bomb: bytes
) -> None:
    feeds, broken = _farm(feed_server, bomb, with_ssrf=False)
    assert len(feeds) >= 200
    _config(tmp_path, feeds)
    started = time.monotonic()
    result = run_cli("poll", cwd=tmp_path, timeout=60)
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    # Every fetch runs at once: the slowest is cut at the deadline; the rest is start-up,
    # parsing and storing (a few seconds on a shared, slow CI machine).
    assert elapsed < DEADLINE + 10, elapsed
    summary = next(line for line in result.stderr.splitlines() if line.startswith("polled"))
    assert summary.startswith(f"polled {len(feeds)} feeds: {GOOD + 3} ok, 0 not modified, 9 failed")
    stored = _stored(tmp_path / "test.db")
    assert all(stored[f"good {n}"] == 3 for n in range(GOOD))
    assert stored["moved"] == 3 and stored["gb2312"] == 1 and stored["malformed"] >= 1
    for name in broken - {"malformed"}:
        assert stored[name] == 0, name
    for name, reason in {
        "trickle": "deadline",
        "50mb": "limit",
        "bomb": "after decompression",
        "html": "HTML page",
        "410": "410",
        "429": "Retry-After",
        "refused": "network error",
    }.items():
        assert any(
            f"failed: {name}: " in line and reason in line for line in result.stderr.splitlines()
        ), name


@pytest.mark.slow
def test_core_poll_with_every_breakage_and_a_refused_private_redirect(
    tmp_path: Path, feed_server: FeedServer, bomb: bytes, clock: FrozenClock
) -> None:
    # In-process, to inject the fake DNS and network of the redirect check. Fewer good
    # feeds: here the server's threads compete for the GIL with the fetches and parsing.
    feeds, _ = _farm(feed_server, bomb, with_ssrf=True, good=40)
    config = load_config(_config(tmp_path, feeds))
    with make_aggregator(config, transport=_Network(), resolver=_dns, clock=clock) as agg:
        started = time.monotonic()
        results = {r.feed_name: r for r in agg.poll()}
        elapsed = time.monotonic() - started
    assert elapsed < DEADLINE + 6, elapsed
    assert results["ssrf"].status == "error" and "refused a redirect" in (
        results["ssrf"].error or ""
    )
    assert results["410"].status == "gone" and results["trickle"].status == "error"
    assert sum(r.status == "ok" for r in results.values()) == 40 + 3
    assert all(results[f"good {n}"].new == 3 for n in range(40))
