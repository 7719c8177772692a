"""The installed console script, once per command, each in a process of its own.

Everything else drives the CLI in-process (`tests.conftest.cli`); these prove the real
entry point starts, reads its arguments, writes where it should and exits with the code
the in-process tests expect. `run` has its own in test_daemon.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import CONSOLE_SCRIPT, RunCli
from tests.feedserver import FeedServer, static

RSS = (
    "<?xml version='1.0'?><rss version='2.0'><channel><title>Served</title>"
    "<item><title>Hello</title><guid>served-1</guid>"
    "<pubDate>Wed, 12 Feb 2025 10:00:00 +0000</pubDate></item></channel></rss>"
)


def test_the_console_script_is_installed() -> None:
    assert CONSOLE_SCRIPT.is_file(), "the README's install makes it"


@pytest.mark.slow
def test_every_command_through_the_console_script(
    tmp_path: Path, run_console: RunCli, feed_server: FeedServer
) -> None:
    made = run_console("init", "--with-seeds", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    assert made.stdout.strip() == "wrote feeds.toml" and (tmp_path / "seeds").is_dir()

    polled = run_console("poll", cwd=tmp_path)
    assert polled.returncode == 0, polled.stderr
    assert "4 new entries" in polled.stderr

    status = run_console("status", "--format", "json", cwd=tmp_path)
    assert status.returncode == 0, status.stderr
    assert [row["entry_count"] for row in json.loads(status.stdout)] == [4]

    digest = run_console(
        "digest", "--since", "2025-02-10", "--format", "json", "--output", "-", cwd=tmp_path
    )
    assert digest.returncode == 0, digest.stderr
    assert json.loads(digest.stdout)["topics"]

    feed_server.routes["/rss"] = static(RSS)
    url = feed_server.url("/rss")
    added = run_console("feeds", "add", url, cwd=tmp_path)
    assert added.returncode == 0, added.stderr
    assert "added Served" in added.stdout

    listed = run_console("feeds", "list", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert [line.split("\t")[1] for line in listed.stdout.splitlines()] == ["seeds", url]

    enabled = run_console("feeds", "enable", "Served", cwd=tmp_path)
    assert enabled.returncode == 0 and "enabled Served" in enabled.stdout, enabled.stderr

    moved = run_console("feeds", "update-urls", cwd=tmp_path)
    assert moved.returncode == 0 and "no feed has moved" in moved.stderr, moved.stderr

    exported = run_console("feeds", "export", cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr
    assert url in exported.stdout and "left out the local source" in exported.stderr
    (tmp_path / "subs.opml").write_text(exported.stdout, encoding="utf-8")

    removed = run_console("feeds", "remove", "Served", cwd=tmp_path)
    assert removed.returncode == 0, removed.stderr
    assert url not in (tmp_path / "feeds.toml").read_text(encoding="utf-8")

    imported = run_console("feeds", "import", "subs.opml", cwd=tmp_path)
    assert imported.returncode == 0, imported.stderr
    assert url in imported.stdout and url in (tmp_path / "feeds.toml").read_text("utf-8")

    refused = run_console("feeds", "remove", "nobody", cwd=tmp_path)
    assert refused.returncode == 2 and "no feed with url or name" in refused.stderr
