"""The polling and health commands end to end: the real CLI, real servers, real SQLite."""

from __future__ import annotations

import json
import os
import pty
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from aggregator.config import load_config
from aggregator.core import make_aggregator
from aggregator.types import PollStatus
from tests.conftest import ROOT, RunCli, write_config
from tests.feedserver import FeedServer, static

RSS = (
    "<?xml version='1.0'?><rss version='2.0'><channel><title>{title}</title>"
    "<item><title>Hello</title><guid>{title}-1</guid>"
    "<pubDate>Wed, 12 Feb 2025 10:00:00 +0000</pubDate></item></channel></rss>"
)
STATUS_FIELDS = {
    "name", "url", "redirected_url", "last_success", "last_attempt", "last_error",
    "consecutive_failures", "next_poll", "disabled", "disabled_reason", "entry_count",
}  # fmt: skip


def _config(folder: Path, server: FeedServer, feeds: dict[str, str], poll: str = "") -> Path:
    tables = "".join(
        f'[[feeds]]\nurl = "{server.url(path)}"\nname = "{name}"\ninterval = "1m"\n'
        for name, path in feeds.items()
    )
    return write_config(folder, tables, f"\n[poll]\ntimeout = 2\ndeadline = 3\n{poll}")


def test_poll_summary_and_status_exit_codes(
    tmp_path: Path, run_cli: RunCli, feed_server: FeedServer
) -> None:
    feed_server.routes["/good"] = static(RSS.format(title="Good"), headers={"ETag": '"1"'})
    feed_server.routes["/bad"] = static(b"", status=500)
    _config(tmp_path, feed_server, {"Good": "/good", "Bad": "/bad"}, "failure_threshold = 2")
    first = run_cli("poll", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "polled 2 feeds: 1 ok, 0 not modified, 1 failed; 1 new entry" in first.stderr
    assert "failed: Bad: HTTP 500" in first.stderr
    assert "Good: ok, 1 new, 0 updated" in first.stderr  # the INFO line per outcome

    healthy = run_cli("status", "--format", "json", cwd=tmp_path)
    assert healthy.returncode == 0, healthy.stderr  # one failure is under the threshold
    rows = {row["name"]: row for row in json.loads(healthy.stdout)}
    assert set(rows) == {"Good", "Bad"} and all(set(r) == STATUS_FIELDS for r in rows.values())
    assert rows["Good"]["entry_count"] == 1 and rows["Good"]["last_error"] is None
    assert rows["Bad"]["consecutive_failures"] == 1 and "HTTP 500" in rows["Bad"]["last_error"]
    assert rows["Bad"]["disabled"] is False and rows["Bad"]["next_poll"].startswith("20")

    second = run_cli("poll", cwd=tmp_path)
    assert "1 not modified, 1 failed" in second.stderr
    failing = run_cli("status", "--format", "json", cwd=tmp_path)
    assert failing.returncode == 1
    assert [r["consecutive_failures"] for r in json.loads(failing.stdout)] == [0, 2]
    table = run_cli("status", cwd=tmp_path)
    assert table.returncode == 1
    assert "Good" in table.stdout and "Bad" in table.stdout and "failing" in table.stdout

    feed_server.routes["/bad"] = static(RSS.format(title="Bad"))
    recovered = run_cli("poll", cwd=tmp_path)
    assert "1 ok, 1 not modified, 0 failed" in recovered.stderr
    assert run_cli("status", cwd=tmp_path).returncode == 0
    one = run_cli("poll", "Bad", cwd=tmp_path)
    assert one.returncode == 0 and "polled 1 feed: 0 ok, 1 not modified" in one.stderr
    unknown = run_cli("poll", "Nope", cwd=tmp_path)
    assert unknown.returncode == 2 and "no feed with url or name 'Nope'" in unknown.stderr
    # One feed named twice, by name and by URL, is one feed: it was fetched, counted and
    # recorded once per mention ("polled 3 feeds").
    polls = len(feed_server.requests_to("/bad"))
    named = run_cli("poll", "Bad", feed_server.url("/bad"), "Bad", cwd=tmp_path)
    assert named.returncode == 0 and "polled 1 feed: 0 ok, 1 not modified" in named.stderr
    assert len(feed_server.requests_to("/bad")) == polls + 1


def test_gone_feed_is_skipped_until_enabled_and_force_fetches_it(
    tmp_path: Path, run_cli: RunCli, feed_server: FeedServer
) -> None:
    feed_server.routes["/gone"] = static(b"", status=410)
    _config(tmp_path, feed_server, {"Gone": "/gone"})
    run_cli("poll", cwd=tmp_path)
    listed = run_cli("feeds", "list", cwd=tmp_path)
    assert "disabled: HTTP 410" in listed.stdout
    status = run_cli("status", "--format", "json", cwd=tmp_path)
    assert status.returncode == 0  # disabled on purpose is not unhealthy
    assert json.loads(status.stdout)[0]["disabled"] is True
    skipped = run_cli("poll", cwd=tmp_path)
    assert "1 skipped" in skipped.stderr and "skipped: Gone: disabled" in skipped.stderr
    assert len(feed_server.seen) == 1
    forced = run_cli("poll", "--force", cwd=tmp_path)
    assert "1 failed" in forced.stderr and len(feed_server.seen) == 2
    feed_server.routes["/gone"] = static(RSS.format(title="Back"))
    enabled = run_cli("feeds", "enable", "Gone", cwd=tmp_path)
    assert enabled.returncode == 0 and "enabled Gone" in enabled.stdout
    assert "1 ok" in run_cli("poll", cwd=tmp_path).stderr
    missing = run_cli("feeds", "enable", "Nope", cwd=tmp_path)
    assert missing.returncode == 2 and "Nope" in missing.stderr


def test_moved_feed_is_marked_and_update_urls_rewrites_feeds_toml(
    tmp_path: Path, run_cli: RunCli, feed_server: FeedServer
) -> None:
    feed_server.routes["/old"] = static(b"", status=301, headers={"Location": "/new"})
    feed_server.routes["/new"] = static(RSS.format(title="New"))
    config = _config(tmp_path, feed_server, {"Moved": "/old"})
    config.write_text("# keep me\n" + config.read_text(encoding="utf-8"), encoding="utf-8")
    assert run_cli("poll", cwd=tmp_path).returncode == 0
    listed = run_cli("feeds", "list", cwd=tmp_path)
    assert f"moved to {feed_server.url('/new')}" in listed.stdout
    assert "feeds update-urls" in listed.stderr
    status = json.loads(run_cli("status", "--format", "json", cwd=tmp_path).stdout)
    assert status[0]["redirected_url"] == feed_server.url("/new")

    updated = run_cli("feeds", "update-urls", cwd=tmp_path)
    assert updated.returncode == 0, updated.stderr
    assert feed_server.url("/old") in updated.stdout and feed_server.url("/new") in updated.stdout
    text = config.read_text(encoding="utf-8")
    assert "# keep me" in text and feed_server.url("/new") in text and "/old" not in text
    status = json.loads(run_cli("status", "--format", "json", cwd=tmp_path).stdout)
    assert status[0]["url"] == feed_server.url("/new") and status[0]["redirected_url"] is None
    assert status[0]["entry_count"] == 1  # the entries moved with the feed
    assert "moved" not in run_cli("feeds", "list", cwd=tmp_path).stdout
    with sqlite3.connect(tmp_path / "test.db") as db:
        assert db.execute("SELECT count(*) FROM feeds").fetchone()[0] == 1
    again = run_cli("feeds", "update-urls", cwd=tmp_path)
    assert again.returncode == 0 and "no feed has moved" in again.stderr


def test_a_poll_by_a_config_read_before_update_urls_stores_nothing_twice(
    tmp_path: Path, run_cli: RunCli, feed_server: FeedServer
) -> None:
    # A daemon reads feeds.toml again within 2 s of its change: a poll of the old URL in
    # that window (or in flight) found no row, made one, and stored every entry again
    # under the old URL, beside the same entries moved to the new one.
    feed_server.routes["/old"] = static(b"", status=308, headers={"Location": "/new"})
    feed_server.routes["/new"] = static(RSS.format(title="New"))
    config = _config(tmp_path, feed_server, {"Moved": "/old"})
    with make_aggregator(load_config(config)) as running:  # the daemon's config, not reloaded
        (moved,) = running.config.feeds
        assert running.poll_feed(moved).new == 1
        assert run_cli("feeds", "update-urls", cwd=tmp_path).returncode == 0
        late = running.poll_feed(moved)
        assert (late.status, late.new) == (PollStatus.SKIPPED, 0)
        assert "update-urls" in (late.error or "")
    with sqlite3.connect(tmp_path / "test.db") as db:
        assert db.execute("SELECT feed_url, count(*) FROM entries GROUP BY 1").fetchall() == [
            (feed_server.url("/new"), 1)
        ]
        assert db.execute("SELECT url FROM feeds").fetchall() == [(feed_server.url("/new"),)]
    again = run_cli("poll", cwd=tmp_path)  # the new URL, from feeds.toml
    assert "polled 1 feed: 0 ok, 1 not modified, 0 failed; 0 new" in again.stderr


def test_update_urls_leaves_a_feed_whose_new_url_a_removed_feed_still_holds(
    tmp_path: Path, run_cli: RunCli, feed_server: FeedServer
) -> None:
    # Told "remove one of them" for a feed moved onto another's URL, the user removed the
    # other: `update-urls` then failed whole, exit 1 ("that URL is already stored": the
    # removed feed's entries are kept), writing no feed's new URL, and said so at each try.
    feed_server.routes["/old"] = static(b"", status=301, headers={"Location": "/new"})
    feed_server.routes["/new"] = static(RSS.format(title="New"))
    feed_server.routes["/other"] = static(b"", status=301, headers={"Location": "/elsewhere"})
    feed_server.routes["/elsewhere"] = static(RSS.format(title="Elsewhere"))
    config = _config(tmp_path, feed_server, {"Moved": "/old", "New": "/new", "Other": "/other"})
    assert run_cli("poll", cwd=tmp_path).returncode == 0
    assert run_cli("feeds", "remove", "New", cwd=tmp_path).returncode == 0
    updated = run_cli("feeds", "update-urls", cwd=tmp_path)
    assert updated.returncode == 0, updated.stderr
    assert (
        updated.stdout == f"Other: {feed_server.url('/other')} -> {feed_server.url('/elsewhere')}\n"
    )
    assert (
        f"Moved moved to {feed_server.url('/new')}, where the entries of a feed removed from "
        "feeds.toml are still stored: left at its old URL"
    ) in updated.stderr
    text = config.read_text(encoding="utf-8")
    assert feed_server.url("/old") in text and feed_server.url("/elsewhere") in text
    with sqlite3.connect(tmp_path / "test.db") as db:
        rows = db.execute("SELECT feed_url, count(*) FROM entries GROUP BY 1 ORDER BY 1")
        assert rows.fetchall() == [
            (feed_server.url("/elsewhere"), 1), (feed_server.url("/new"), 1),
            (feed_server.url("/old"), 1),
        ]  # fmt: skip


def test_a_feed_moved_to_another_feeds_url_is_told_to_remove_one(
    tmp_path: Path, run_cli: RunCli, feed_server: FeedServer
) -> None:
    """A feed that moved to a URL another configured feed has: update-urls leaves it (the
    user picks which to keep), so poll, feeds list and update-urls say so rather than
    pointing to update-urls again and again."""
    feed_server.routes["/old"] = static(b"", status=301, headers={"Location": "/new"})
    feed_server.routes["/new"] = static(RSS.format(title="New"))
    _config(tmp_path, feed_server, {"Moved": "/old", "Kept": "/new"})
    polled = run_cli("poll", cwd=tmp_path)
    assert polled.returncode == 0, polled.stderr
    assert "which the feed 'Kept' has: remove one of them" in polled.stderr
    listed = run_cli("feeds", "list", cwd=tmp_path)
    assert "(the feed 'Kept' has it)" in listed.stdout
    assert "update-urls" not in listed.stderr and "remove one of each pair" in listed.stderr
    updated = run_cli("feeds", "update-urls", cwd=tmp_path)
    assert updated.returncode == 0 and updated.stdout == ""
    assert "no URL written: 1 feed moved to another feed's URL" in updated.stderr


def test_feeds_add_finds_the_feeds_of_a_gbk_page_with_a_chinese_link_title(
    tmp_path: Path, run_cli: RunCli, feed_server: FeedServer
) -> None:
    # A Chinese site in GB2312 names its feed in Chinese; the page was read as UTF-8 bytes
    # under its own <meta charset="gb2312">, which lost every link: "not a feed", no list.
    write_config(tmp_path, "")
    page = (
        '<html><head><meta http-equiv="Content-Type" content="text/html; charset=gb2312">'
        "<title>新闻中心</title>"
        '<link rel="alternate" type="application/rss+xml" title="新闻" href="/rss.xml">'
        "</head><body>要闻</body></html>"
    ).encode("gbk")
    for path, content_type in (("/labelled", "text/html; charset=gb2312"), ("/meta", "text/html")):
        feed_server.routes[path] = static(page, content_type=content_type)
    feed_server.routes["/rss.xml"] = static(RSS.format(title="News"))
    added = run_cli("feeds", "add", feed_server.url("/labelled"), cwd=tmp_path)
    assert added.returncode == 0, added.stderr
    assert f"linking to one feed: {feed_server.url('/rss.xml')}" in added.stderr
    assert "added News" in added.stdout
    again = run_cli("feeds", "add", feed_server.url("/meta"), cwd=tmp_path)
    assert again.returncode == 2 and "already configured" in again.stderr, again.stderr


def test_feeds_add_skips_page_links_that_are_no_feed_urls(
    tmp_path: Path, run_cli: RunCli, feed_server: FeedServer
) -> None:
    # One malformed href ended `feeds add` with a traceback (and a poll of the page with
    # "unexpected error while parsing"); a javascript: link was offered as a feed.
    write_config(tmp_path, "")
    links = ["http://[::1/x", "javascript:alert(1)", "http://127.0.0.1:99999/x", "/rss.xml"]
    page = "<html><head>{}</head><body>blog</body></html>".format(
        "".join(f'<link rel="alternate" type="application/rss+xml" href="{h}">' for h in links)
    )
    feed_server.routes["/"] = static(page, content_type="text/html")
    feed_server.routes["/rss.xml"] = static(RSS.format(title="Blog"))
    added = run_cli("feeds", "add", feed_server.url("/"), cwd=tmp_path)
    assert added.returncode == 0, added.stderr
    assert f"linking to one feed: {feed_server.url('/rss.xml')}" in added.stderr
    assert "Traceback" not in added.stderr and "javascript" not in added.stderr


def test_feeds_add_offers_the_feeds_an_html_page_links_to(
    tmp_path: Path, run_cli: RunCli, feed_server: FeedServer
) -> None:
    write_config(tmp_path, "")
    page = (
        '<html><head><link rel="alternate" type="application/atom+xml" href="/atom.xml">'
        '<link rel="alternate" type="application/rss+xml" title="RSS" href="/rss.xml">'
        "</head><body>blog</body></html>"
    )
    feed_server.routes["/"] = static(page, content_type="text/html")
    feed_server.routes["/rss.xml"] = static(RSS.format(title="Blog RSS"))
    offered = run_cli("feeds", "add", feed_server.url("/"), cwd=tmp_path)
    assert offered.returncode == 1
    assert "HTML page, not a feed" in offered.stderr
    assert feed_server.url("/atom.xml") in offered.stderr
    assert feed_server.url("/rss.xml") in offered.stderr and "--pick" in offered.stderr
    picked = run_cli("feeds", "add", feed_server.url("/"), "--pick", "2", cwd=tmp_path)
    assert picked.returncode == 0, picked.stderr
    assert "added Blog RSS" in picked.stdout
    assert feed_server.url("/rss.xml") in (tmp_path / "feeds.toml").read_text(encoding="utf-8")
    out_of_range = run_cli("feeds", "add", feed_server.url("/"), "--pick", "5", cwd=tmp_path)
    assert out_of_range.returncode == 2 and "--pick" in out_of_range.stderr
    # A feed that moved for good is added at its new address.
    feed_server.routes["/old.xml"] = static(b"", status=301, headers={"Location": "/atom.xml"})
    feed_server.routes["/atom.xml"] = static(RSS.format(title="Blog Atom"))
    moved = run_cli("feeds", "add", feed_server.url("/old.xml"), cwd=tmp_path)
    assert moved.returncode == 0, moved.stderr
    assert "moved permanently" in moved.stderr
    assert f"added Blog Atom ({feed_server.url('/atom.xml')})" in moved.stdout


def _start_poll(
    folder: Path, env: dict[str, str] | None = None, **popen: Any
) -> subprocess.Popen[Any]:
    """`aggregator poll` started in `folder` as a process of its own: this checkout's
    package, `env` added, no AGGREGATOR_CONFIG from the caller's environment."""
    full = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    full.pop("AGGREGATOR_CONFIG", None)
    return subprocess.Popen(
        [sys.executable, "-m", "aggregator", "poll"], cwd=folder, env=full, **popen
    )


def test_poll_on_a_terminal_shows_a_progress_bar(tmp_path: Path, feed_server: FeedServer) -> None:
    feed_server.routes["/a"] = static(RSS.format(title="A"))
    feed_server.routes["/b"] = static(b"", status=500)
    _config(tmp_path, feed_server, {"A": "/a", "B": "/b"})
    master, slave = pty.openpty()
    process = _start_poll(
        tmp_path, {"COLUMNS": "100", "TERM": "xterm"}, stdout=subprocess.DEVNULL, stderr=slave
    )
    os.close(slave)
    output = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        output += chunk
    assert process.wait(timeout=60) == 0
    os.close(master)
    text = output.decode("utf-8", "replace")
    assert "polling" in text and "2/2" in text  # the bar, counting feeds
    assert "polled 2 feeds: 1 ok, 0 not modified, 1 failed" in text
    assert "failed: B: HTTP 500" in text


@pytest.mark.usefixtures("ctrl_c")
def test_ctrl_c_during_a_poll_exits_130_and_keeps_what_was_stored(
    tmp_path: Path, feed_server: FeedServer
) -> None:
    """Ctrl-C (SIGINT) while a feed is still arriving: "interrupted" and exit 130, as
    shells report a command a signal ended (not click's "Aborted!" and 1, which the README
    gives operational failures); the feed that had answered is stored."""
    import signal
    import time

    from tests.conftest import news_rss, wait_until
    from tests.feedserver import trickle

    feed_server.routes["/fast"] = static(news_rss("Fast"))
    feed_server.routes["/slow"] = trickle(interval=0.2, total_seconds=60)
    write_config(
        tmp_path,
        f'[[feeds]]\nurl = "{feed_server.url("/fast")}"\nname = "Fast"\n'
        f'[[feeds]]\nurl = "{feed_server.url("/slow")}"\nname = "Slow"\n',
    )
    process = _start_poll(tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: bool(feed_server.requests_to("/slow")), 30, "the slow feed asked")
        time.sleep(0.5)  # (the fast one stored meanwhile)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 130, stderr
    assert "aggregator: interrupted" in stderr and "Aborted" not in stderr
    with sqlite3.connect(tmp_path / "test.db") as db:
        titles = [t for (t,) in db.execute("SELECT title FROM entries ORDER BY title")]
    db.close()
    assert titles == ["Fast item 1", "Fast item 2"]


def test_a_feed_whose_items_share_a_boilerplate_body_keeps_every_headline(
    tmp_path: Path, run_cli: RunCli, feed_server: FeedServer
) -> None:
    """Hacker News's RSS gives each item the body "Comments" (a link to its thread): the
    digest lists each headline as an article of its own, not as copies of one."""
    titles = ["Rust 2.0 released", "Why I left Google", "The physics of bicycles",
              "Understanding B-trees", "How GPS works", "Building a CPU from scratch"]  # fmt: skip
    items = "".join(
        f"<item><title>{title}</title><link>https://site{n}.example/post</link>"
        f"<guid>https://news.ycombinator.com/item?id={n}</guid>"
        f"<pubDate>Wed, 12 Feb 2025 0{n}:00:00 +0000</pubDate><description>"
        f"&lt;a href=&quot;https://news.ycombinator.com/item?id={n}&quot;&gt;Comments&lt;/a&gt;"
        "</description></item>"
        for n, title in enumerate(titles)
    )
    feed_server.routes["/hn"] = static(
        f"<?xml version='1.0'?><rss version='2.0'><channel><title>HN</title>{items}</channel></rss>"
    )
    _config(tmp_path, feed_server, {"Hacker News": "/hn"})
    assert run_cli("poll", cwd=tmp_path).returncode == 0
    digest = run_cli("digest", "--date", "2025-02-12", "--format", "json", "--output", "-",
                     cwd=tmp_path)  # fmt: skip
    assert digest.returncode == 0, digest.stderr
    articles = [
        article
        for topic in json.loads(digest.stdout)["topics"]
        for story in topic["stories"]
        for article in story["articles"]
    ]
    assert sorted(a["title"] for a in articles) == sorted(titles)
    assert all(len(a["copies"]) == 1 for a in articles)
