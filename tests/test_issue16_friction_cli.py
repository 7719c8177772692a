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


# --- feeds add of a page linking to exactly one feed --------------------------------------


def _page(*feeds: str) -> str:
    links = "".join(
        f'<link rel="alternate" type="application/rss+xml" title="Feed" href="{href}">'
        for href in feeds
    )
    return f"<html><head><title>Blog</title>{links}</head><body>Hello</body></html>"


def test_feeds_add_of_a_page_with_one_feed_adds_it(
    run_cli: RunCli, tmp_path: Path, feed_server: FeedServer
) -> None:
    config = write_config(tmp_path, "")
    feed_server.routes["/"] = static(_page("/rss.xml"), content_type="text/html")
    feed_server.routes["/rss.xml"] = static(_rss("Blog RSS"))
    added = run_cli("feeds", "add", feed_server.url("/"), cwd=tmp_path)
    assert added.returncode == 0, added.stderr
    assert f"linking to one feed: {feed_server.url('/rss.xml')}" in added.stderr  # says which
    assert "added Blog RSS" in added.stdout
    assert f'url = "{feed_server.url("/rss.xml")}"' in config.read_text(encoding="utf-8")

    # Once it is configured, adding the page again is refused as the feed it stands for.
    again = run_cli("feeds", "add", feed_server.url("/"), cwd=tmp_path)
    assert again.returncode == 2 and "already configured" in again.stderr

    # Two feeds: still a choice for the user, nothing written.
    feed_server.routes["/two"] = static(_page("/a.xml", "/b.xml"), content_type="text/html")
    before = config.read_text(encoding="utf-8")
    offered = run_cli("feeds", "add", feed_server.url("/two"), cwd=tmp_path)
    assert offered.returncode == 1 and "--pick" in offered.stderr
    assert config.read_text(encoding="utf-8") == before


# --- feeds add of a folder with no article in it ------------------------------------------


def test_feeds_add_refuses_a_folder_without_articles(run_cli: RunCli, tmp_path: Path) -> None:
    config = write_config(tmp_path, "")
    before = config.read_bytes()
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")  # hidden: not a file
    (tmp_path / "empty" / "old").mkdir()  # subfolders are not read
    empty = run_cli("feeds", "add", "empty", cwd=tmp_path)
    assert empty.returncode == 2, empty.stderr
    assert "empty: the folder has no files" in empty.stderr

    pictures = tmp_path / "pictures"
    pictures.mkdir()
    (pictures / "photo.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x01\x00")
    (pictures / "scan.pdf").write_bytes(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n\x00\x00")
    refused = run_cli("feeds", "add", str(pictures), cwd=tmp_path)
    assert refused.returncode == 2, refused.stderr
    assert "none of the folder's 2 files holds an article" in refused.stderr
    assert "photo.png: a binary file" in refused.stderr
    assert "Traceback" not in refused.stderr + empty.stderr
    assert config.read_bytes() == before

    # A folder with one article among other files is a source as before.
    (pictures / "note.md").write_text("# Summit opens in Paris\n\nThe summit opened.\n", "utf-8")
    added = run_cli("feeds", "add", str(pictures), cwd=tmp_path)
    assert added.returncode == 0, added.stderr
    assert 'url = "pictures"' in config.read_text(encoding="utf-8")
