"""Issue 16, friction in the CLI: -v/-q after the subcommand, init, and feeds add's guesses."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import RunCli, write_config
from tests.feedserver import FeedServer, static


def _rss(title: str, items: int = 2) -> str:
    entries = "".join(
        f"<item><title>{title} item {n}</title><link>https://news.example/{title}/{n}</link>"
        f"<pubDate>Tue, 11 Feb 2025 0{n}:00:00 GMT</pubDate></item>"
        for n in range(1, items + 1)
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
        f"<title>{title}</title><link>https://news.example/</link>{entries}</channel></rss>"
    )


# --- -v/-q after the subcommand; -v is our DEBUG, -vv the libraries' too ----------------


def test_verbose_and_quiet_after_the_subcommand(
    run_cli: RunCli, tmp_path: Path, feed_server: FeedServer
) -> None:
    feed_server.routes["/rss"] = static(_rss("Local"))
    write_config(tmp_path, f'[[feeds]]\nurl = "{feed_server.url("/rss")}"\nname = "Local"\n')

    verbose = run_cli("poll", "-v", cwd=tmp_path)
    assert verbose.returncode == 0, verbose.stderr
    assert "DEBUG grouped" in verbose.stderr  # our debugging detail
    assert "httpcore" not in verbose.stderr and "HTTP Request" not in verbose.stderr

    before = run_cli("-v", "poll", cwd=tmp_path)  # still accepted before it, the same way
    assert before.returncode == 0, before.stderr
    assert "httpcore" not in before.stderr and "HTTP Request" not in before.stderr

    libraries = run_cli("poll", "-vv", cwd=tmp_path)
    assert libraries.returncode == 0, libraries.stderr
    assert "httpcore" in libraries.stderr or "HTTP Request" in libraries.stderr

    quiet = run_cli("poll", "-q", cwd=tmp_path)
    assert quiet.returncode == 0, quiet.stderr
    assert " INFO " not in quiet.stderr and "Local: ok" not in quiet.stderr
    assert "polled 1 feed" in quiet.stderr  # the summary is the command's output, not a log

    listed = run_cli("feeds", "list", "-q", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
