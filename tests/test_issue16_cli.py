"""Issue 16, the CLI's part: feeds add, digest and poll meet a new user's inputs with words."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from aggregator.cli import cli
from tests.conftest import RunCli, news_rss, write_config
from tests.feedserver import FeedServer, static


def _invoke(config: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--config", str(config), *args])


# --- defect 5: feeds add of file:// and other schemes ---------------------------------


def test_feeds_add_takes_a_file_url_as_a_local_path(tmp_path: Path) -> None:
    config = write_config(tmp_path, "")
    feed = tmp_path / "local feed.rss"
    feed.write_text(news_rss("Local"), encoding="utf-8")
    result = _invoke(config, "feeds", "add", feed.resolve().as_uri())
    assert result.exit_code == 0, result.output
    assert "added Local (local feed.rss)" in result.output
    assert 'url = "local feed.rss"' in config.read_text(encoding="utf-8")
    assert "a feed with 2 entries" in result.output


def test_a_local_feed_is_named_by_the_path_feeds_add_took(tmp_path: Path, run_cli: RunCli) -> None:
    # `feeds add PATH` reads PATH from the current folder and writes it relative to
    # feeds.toml; remove, enable and poll took the same PATH relative to feeds.toml only:
    # "no feed with url or name './news'" from the folder the user had just added it from.
    (tmp_path / "conf").mkdir()
    config = write_config(tmp_path / "conf", "")
    (tmp_path / "news").mkdir()
    (tmp_path / "news" / "feed.rss").write_text(news_rss("Local"), encoding="utf-8")
    added = run_cli("--config", "conf/feeds.toml", "feeds", "add", "news", cwd=tmp_path)
    assert added.returncode == 0, added.stderr
    assert 'url = "../news"' in config.read_text(encoding="utf-8")
    for args in (["poll", "./news"], ["feeds", "enable", "./news"], ["feeds", "remove", "news/"]):
        done = run_cli("--config", "conf/feeds.toml", *args, cwd=tmp_path)
        assert done.returncode == 0, (args, done.stderr)
    assert "../news" not in config.read_text(encoding="utf-8")
    # As written in feeds.toml, relative to it, it is found first (from any folder).
    run_cli("--config", "conf/feeds.toml", "feeds", "add", "news", cwd=tmp_path)
    removed = run_cli("--config", "feeds.toml", "feeds", "remove", "../news", cwd=tmp_path / "conf")
    assert removed.returncode == 0, removed.stderr
    # A name is a name: spelt as the configured folder is, it is no duplicate of its feed.
    run_cli("--config", "conf/feeds.toml", "feeds", "add", "news", "--name", "My news",
            cwd=tmp_path)  # fmt: skip
    named = run_cli("--config", "conf/feeds.toml", "feeds", "add", "https://e.org/news.xml",
                    "--name", "news", "--no-check", cwd=tmp_path)  # fmt: skip
    assert named.returncode == 0, named.stderr
    assert 'name = "news"' in config.read_text(encoding="utf-8")


def test_feeds_add_refuses_other_schemes_with_a_message(tmp_path: Path) -> None:
    config = write_config(tmp_path, "")
    before = config.read_text(encoding="utf-8")
    for args in (["ftp://example.com/feed.rss"], ["--no-check", "ftp://example.com/feed.rss"]):
        result = _invoke(config, "feeds", "add", *args)
        assert result.exit_code == 2, result.output
        assert not isinstance(result.exception, AssertionError)
        assert "ftp://example.com/feed.rss: a feed is an http(s) URL" in result.output
    result = _invoke(config, "feeds", "add", "file://elsewhere.example/feed.rss")
    assert result.exit_code == 2
    assert "must name a file on this machine" in result.output
    assert config.read_text(encoding="utf-8") == before


# --- defect 14: feeds add checks duplicates first and names feeds distinctly -----------


def test_feeds_add_refuses_a_configured_url_before_fetching(
    tmp_path: Path, feed_server: FeedServer
) -> None:
    feed_server.routes["/feed.rss"] = static(news_rss("News"))
    url = feed_server.url("/feed.rss")
    config = write_config(tmp_path, f'[[feeds]]\nurl = "{url}"\nname = "News"\n')
    written_otherwise = url.replace("http://", "HTTP://") + "/"
    result = _invoke(config, "feeds", "add", written_otherwise)
    assert result.exit_code == 2, result.output
    assert "is already configured" in result.output and "News" in result.output
    assert feed_server.requests_to("/feed.rss") == []  # refused without a fetch


def test_feeds_add_names_a_feed_whose_title_is_taken_distinctly(
    tmp_path: Path, feed_server: FeedServer
) -> None:
    feed_server.routes["/a.rss"] = static(news_rss("News"))
    feed_server.routes["/b.rss"] = static(news_rss("News"))
    config = write_config(tmp_path, "")
    first = _invoke(config, "feeds", "add", feed_server.url("/a.rss"))
    assert first.exit_code == 0, first.output
    second = _invoke(config, "feeds", "add", feed_server.url("/b.rss"))
    assert second.exit_code == 0, second.output
    assert "added News (2)" in second.output
    assert "--name" in second.output  # says how to choose another name
    listed = _invoke(config, "feeds", "list")
    assert [line.split("\t")[0] for line in listed.output.splitlines()] == ["News", "News (2)"]


def test_feeds_add_refuses_a_taken_name_before_fetching(
    tmp_path: Path, feed_server: FeedServer
) -> None:
    feed_server.routes["/x.rss"] = static(news_rss("Other"))
    config = write_config(tmp_path, '[[feeds]]\nurl = "https://a.example/f"\nname = "News"\n')
    before = config.read_bytes()
    # Port 9 is closed: a fetch would end in a network error (exit 1).
    for url in ("http://127.0.0.1:9/x.rss", feed_server.url("/x.rss")):
        result = _invoke(config, "feeds", "add", "--name", "News", url)
        assert result.exit_code == 2, result.output
        assert f"{config} [feeds.name]: a feed named 'News' is already configured" in (
            result.output
        )
        assert "network" not in result.output
    assert feed_server.requests_to("/x.rss") == []  # refused without a fetch
    assert config.read_bytes() == before


# --- defect 10: digest --email without [digest.email] writes nothing -------------------


def test_digest_email_without_configuration_writes_nothing(tmp_path: Path) -> None:
    config = write_config(tmp_path, "", extra='output = "out"\n')
    result = _invoke(config, "digest", "--email")
    assert result.exit_code == 2, result.output
    assert "[digest.email]" in result.output
    assert not (tmp_path / "out").exists()
    elsewhere = tmp_path / "one.html"
    result = _invoke(config, "digest", "--email", "--output", str(elsewhere))
    assert result.exit_code == 2 and not elsewhere.exists()


# --- defect 14: digest --output to a folder, [digest] output naming a file ------------


def test_digest_output_to_a_folder_writes_a_named_file_in_it(tmp_path: Path) -> None:
    config = write_config(tmp_path, "")
    folder = tmp_path / "here"
    folder.mkdir()
    for given in (f"{folder}/", str(folder), f"{tmp_path}/new/"):
        result = _invoke(config, "digest", "--date", "2025-02-11", "--output", given)
        assert result.exit_code == 0, result.output
        expected = Path(given) / "2025-02-11.html"
        assert result.output.splitlines()[-1].endswith(str(expected))
        assert "<html" in expected.read_text(encoding="utf-8").lower()
    assert not [p for p in folder.iterdir() if p.name != "2025-02-11.html"]  # no temp file
    assert "0 stories, 0 entries ->" in result.output


def test_digest_output_folder_that_is_a_file_names_the_key(tmp_path: Path) -> None:
    config = write_config(tmp_path, "", extra='output = "feeds.toml"\n')
    before = config.read_bytes()
    result = _invoke(config, "digest", "--date", "2025-02-11")
    assert result.exit_code == 2, result.output
    assert "digest.output" in result.output and "is a file, not a folder" in result.output
    assert "Errno" not in result.output
    assert config.read_bytes() == before


def test_write_atomic_says_which_path_is_not_a_folder(tmp_path: Path) -> None:
    from aggregator.digest.write import write_atomic
    from aggregator.exceptions import AggregatorError

    (tmp_path / "a-file").write_text("x", encoding="utf-8")
    with pytest.raises(AggregatorError, match=r"a-file is not a folder") as raised:
        write_atomic(tmp_path / "a-file" / "sub" / "d.html", "text")
    assert "Errno" not in str(raised.value)
    with pytest.raises(AggregatorError, match="it is a folder, not a file") as raised:
        write_atomic(tmp_path, "text")
    assert ".tmp" not in str(raised.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]


# --- friction: one is singular ---------------------------------------------------------


def test_messages_say_one_in_the_singular(tmp_path: Path) -> None:
    feed = tmp_path / "one.rss"
    feed.write_text(news_rss("One", items=1), encoding="utf-8")
    config = write_config(tmp_path, "")
    added = _invoke(config, "feeds", "add", str(feed))
    assert "a feed with 1 entry\n" in added.output
    polled = _invoke(config, "poll")
    assert polled.exit_code == 0, polled.output
    assert "polled 1 feed: 1 ok, 0 not modified, 0 failed; 1 new entry, 0 updated" in (
        polled.output
    )
    made = _invoke(config, "digest", "--date", "2025-02-11", "--format", "text")
    assert made.exit_code == 0, made.output
    assert "1 story, 1 entry ->" in made.output
    text = Path(made.output.splitlines()[-1].split(" -> ")[-1]).read_text(encoding="utf-8")
    assert "1 story, 1 article, 1 source" in text


# --- defect 12: a feed's logged time is its own fetch, not its wait for a slot ----------


def test_poll_logs_each_feeds_own_fetch_time(
    tmp_path: Path, feed_server: FeedServer, caplog: pytest.LogCaptureFixture
) -> None:
    import re
    import time
    from http.server import BaseHTTPRequestHandler

    from tests.feedserver import respond

    def slow(status: int, body: str) -> Callable[[BaseHTTPRequestHandler], None]:
        def handle(h: BaseHTTPRequestHandler) -> None:
            time.sleep(0.6)
            respond(h, status, body.encode())

        return handle

    feeds = ""
    for n in range(6):  # one host, two at a time ([poll] per_host = 2): three rounds
        path = f"/f{n}"
        feed_server.routes[path] = slow(404, "") if n % 2 else slow(200, news_rss(f"F{n}", 1))
        feeds += f'[[feeds]]\nurl = "{feed_server.url(path)}"\nname = "F{n}"\n'
    config = write_config(tmp_path, feeds)
    caplog.set_level(logging.INFO, logger="aggregator")
    result = _invoke(config, "poll")
    assert result.exit_code == 0, result.output
    times = {}
    for record in caplog.records:
        found = re.match(r"(F\d): .*?(\d+\.\d\d)s", record.getMessage())
        if found:
            times[found.group(1)] = float(found.group(2))
    assert sorted(times) == [f"F{n}" for n in range(6)], caplog.text
    # Each took 0.6 s; the second round waited 0.6 s for its slot, the third 1.2 s.
    assert all(0.55 <= seconds < 1.15 for seconds in times.values()), times


def test_feeds_add_reads_a_quoted_home_path_as_feeds_toml_does(
    tmp_path: Path, run_cli: RunCli
) -> None:
    """`feeds add '~/articles'` (quoted: the shell leaves the ~) looked for a folder named
    "~" in the current folder, while feeds.toml reads "~/" as the home folder."""
    (tmp_path / "conf").mkdir()
    config = write_config(tmp_path / "conf", "")
    (tmp_path / "home" / "articles").mkdir(parents=True)
    feed = tmp_path / "home" / "articles" / "feed.rss"
    feed.write_text(news_rss("Home"), encoding="utf-8")
    added = run_cli("--config", str(config), "feeds", "add", "~/articles", cwd=tmp_path / "conf",
                    env={"HOME": str(tmp_path / "home")})  # fmt: skip
    assert added.returncode == 0, added.stderr
    assert 'url = "../home/articles"' in config.read_text(encoding="utf-8")
