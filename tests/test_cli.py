"""End to end: the real CLI in a subprocess; real files, SQLite and an HTTP server."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from pytest_httpserver import HTTPServer

from tests.conftest import RunCli, write_config

SEED_TITLES = {
    "刚刚，巴黎AI峰会开幕，百国探讨AI未来，DeepSeek成焦点",
    "DeepSeek開源惠及全球 外交部：共享智能紅利",
    "中方派出高级别代表团，DeepSeek让同行看到新希望，巴黎AI峰会热议“中国成功”",
    "人工智能峰会——欧洲还有竞争力吗？",
}


def test_quick_start_digest_of_the_seeds(workdir: Path, run_cli: RunCli) -> None:
    polled = run_cli("poll", cwd=workdir)
    assert polled.returncode == 0, polled.stderr
    assert "4 new entries" in polled.stderr
    made = run_cli("digest", "--since", "2025-02-10", cwd=workdir)
    assert made.returncode == 0, made.stderr
    path = Path(made.stdout.strip())
    assert path.parent == workdir / "digests" and path.suffix == ".html"
    html = path.read_text(encoding="utf-8")
    for title in SEED_TITLES:
        assert title in html
    assert "https://new.qq.com/rain/a/20250210A08ACT00" in html
    assert "2025-02-10 21:00" in html

    as_json = run_cli(
        "digest", "--since", "2025-02-10", "--format", "json", "--output", "-", cwd=workdir
    )
    assert as_json.returncode == 0, as_json.stderr
    data = json.loads(as_json.stdout)  # stdout holds the digest and nothing else
    assert list(data) == ["since", "until", "generated_at", "late_since", "topics"]
    assert data["late_since"] is None
    copies = {}
    for topic in data["topics"]:
        assert set(topic) == {"name", "stories"}
        for story in topic["stories"]:
            assert set(story) == {"id", "headline", "articles"}
            assert story["id"] is None or story["id"].isdigit()
            for article in story["articles"]:
                assert set(article) == {
                    "title",
                    "link",
                    "published",
                    "dated",
                    "language",
                    "copies",
                }
                for copy in article["copies"]:
                    assert set(copy) == {
                        "feed", "title", "link", "published", "dated", "late", "arrived_late"
                    }  # fmt: skip
                    assert copy["late"] is False and copy["arrived_late"] is False
                    assert copy["title"] not in copies  # every entry exactly once
                    copies[copy["title"]] = copy
    assert set(copies) == SEED_TITLES
    assert (
        copies["刚刚，巴黎AI峰会开幕，百国探讨AI未来，DeepSeek成焦点"]["published"]
        == "2025-02-10T21:00:01+08:00"
    )
    assert copies["人工智能峰会——欧洲还有竞争力吗？"]["published"] == "2025-02-10T23:17:05+08:00"
    names = {t["name"] for t in data["topics"]}
    assert names <= {
        "Paris AI Action Summit",
        "DeepSeek and open models",
        "AI investment",
        "AI governance",
    }


def test_digest_of_one_day_and_formats(workdir: Path, run_cli: RunCli) -> None:
    assert run_cli("poll", cwd=workdir).returncode == 0
    text = run_cli(
        "digest", "--date", "2025-02-10", "--format", "text", "--output", "-", cwd=workdir
    )
    assert text.returncode == 0, text.stderr
    assert (
        "刚刚，巴黎AI峰会开幕" in text.stdout and "人工智能峰会——欧洲还有竞争力吗？" in text.stdout
    )
    assert "中方派出高级别代表团" not in text.stdout  # published on the 12th
    made = run_cli("digest", "--date", "2025-02-12", "--format", "json", cwd=workdir)
    assert made.stdout.strip() == str(workdir / "digests" / "2025-02-12.json")
    empty = run_cli(
        "digest", "--date", "2024-01-01", "--format", "json", "--output", "-", cwd=workdir
    )
    assert json.loads(empty.stdout)["topics"] == []


def test_bad_config_exit_2_and_nothing_written(tmp_path: Path, run_cli: RunCli) -> None:
    (tmp_path / "feeds.toml").write_text('[[feeds]]\nurl = "seeds"\nnmae = "x"\n', encoding="utf-8")
    result = run_cli("poll", cwd=tmp_path)
    assert result.returncode == 2
    assert "feeds.toml:3" in result.stderr and "did you mean 'name'" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["feeds.toml"]


def test_bad_cli_dates_exit_2(workdir: Path, run_cli: RunCli) -> None:
    result = run_cli("digest", "--date", "10/02/2025", cwd=workdir)
    assert result.returncode == 2 and "--date must be a date" in result.stderr
    result = run_cli("digest", "--since", "2025-02-12", "--until", "2025-02-10", cwd=workdir)
    assert result.returncode == 2 and "before" in result.stderr
    # A day at the calendar's ends has no window in every timezone: a traceback before.
    for args in (
        ("digest", "--since", "0001-01-01"),
        ("digest", "--date", "9999-12-31", "--output", "-"),
        ("alerts", "--since", "0001-01-01"),
    ):
        result = run_cli(*args, cwd=workdir)
        assert result.returncode == 2, (args, result.stderr)
        assert "must be a date from 0001-01-02 to 9999-12-30" in result.stderr, args
        assert "Traceback" not in result.stderr


def test_config_from_environment(workdir: Path, run_cli: RunCli, tmp_path_factory: object) -> None:
    elsewhere = workdir / "sub"
    elsewhere.mkdir()
    result = run_cli(
        "feeds", "list", cwd=elsewhere, env={"AGGREGATOR_CONFIG": str(workdir / "feeds.toml")}
    )
    assert result.returncode == 0 and result.stdout.startswith("Seeds\tseeds\t")


RSS = """<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel><title>Local news</title><link>http://127.0.0.1/</link>
<description>d</description>
{items}
</channel></rss>"""
ITEM = """<item><title>{title}</title><link>http://127.0.0.1/{guid}</link><guid>{guid}</guid>
<pubDate>Mon, 10 Feb 2025 10:00:00 +0000</pubDate><description>{body}</description></item>"""


def test_http_feed_poll_repoll_edit_and_failure(
    tmp_path: Path, run_cli: RunCli, httpserver: HTTPServer
) -> None:
    def serve(items: list[tuple[str, str, str]]) -> None:
        httpserver.clear()
        body = RSS.format(items="".join(ITEM.format(guid=g, title=t, body=b) for g, t, b in items))
        httpserver.expect_request("/feed.xml").respond_with_data(
            body, content_type="application/rss+xml"
        )
        httpserver.expect_request("/missing.xml").respond_with_data("gone", status=404)

    config = write_config(
        tmp_path,
        f'[[feeds]]\nurl = "{httpserver.url_for("/feed.xml")}"\nname = "Local"\n'
        f'[[feeds]]\nurl = "{httpserver.url_for("/missing.xml")}"\nname = "Missing"\n',
    )
    serve(
        [("a", "Summit opens in Paris", "The summit opened."), ("b", "Second story", "Body two.")]
    )
    first = run_cli("poll", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert (
        "2 new entries" in first.stderr
        and "failed: Missing" in first.stderr
        and "404" in first.stderr
    )
    again = run_cli("poll", cwd=tmp_path)
    assert "0 new entries, 0 updated" in again.stderr
    serve(
        [
            ("a", "Summit opens in Paris (updated)", "The summit opened."),
            ("b", "Second story", "Body two."),
        ]
    )
    edited = run_cli("poll", cwd=tmp_path)
    assert "0 new entries, 1 updated" in edited.stderr
    with sqlite3.connect(tmp_path / "test.db") as db:
        rows = db.execute("SELECT guid, title FROM entries ORDER BY guid").fetchall()
        assert rows == [("a", "Summit opens in Paris (updated)"), ("b", "Second story")]
        failures, error = db.execute(
            "SELECT consecutive_failures, last_error FROM feeds WHERE name='Missing'"
        ).fetchone()
        assert failures == 3 and "404" in error
    assert config.exists()


def test_feeds_add_list_remove(tmp_path: Path, run_cli: RunCli, httpserver: HTTPServer) -> None:
    write_config(tmp_path, '# my feeds\n[[feeds]]\nurl = "seeds"  # local\nname = "Seeds"\n')
    (tmp_path / "seeds").mkdir()
    httpserver.expect_request("/rss").respond_with_data(
        RSS.format(items=ITEM.format(guid="x", title="t", body="b")),
        content_type="application/rss+xml",
    )
    httpserver.expect_request("/page").respond_with_data(
        "<html><head><title>Hi</title></head><body>hello</body></html>", content_type="text/html"
    )
    url = httpserver.url_for("/rss")
    added = run_cli("feeds", "add", url, "--interval", "15m", cwd=tmp_path)
    assert added.returncode == 0, added.stderr
    assert "Local news" in added.stdout  # named after the feed's title
    duplicate = run_cli("feeds", "add", url, cwd=tmp_path)
    assert duplicate.returncode == 2 and "already configured" in duplicate.stderr
    not_a_feed = run_cli("feeds", "add", httpserver.url_for("/page"), cwd=tmp_path)
    assert not_a_feed.returncode != 0 and "HTML" in not_a_feed.stderr
    listed = run_cli("feeds", "list", cwd=tmp_path)
    assert listed.stdout.splitlines() == ["Seeds\tseeds\tdefault", f"Local news\t{url}\t15m"]
    text = (tmp_path / "feeds.toml").read_text(encoding="utf-8")
    assert "# my feeds" in text and '"seeds"  # local' in text
    removed = run_cli("feeds", "remove", "Local news", cwd=tmp_path)
    assert removed.returncode == 0, removed.stderr
    assert run_cli("feeds", "list", cwd=tmp_path).stdout.splitlines() == ["Seeds\tseeds\tdefault"]


def test_feeds_add_checks_the_url_without_creating_the_database(
    tmp_path: Path, httpserver: HTTPServer
) -> None:
    """Checking a feed fetches and parses it, and touches no database (before, wiring the
    Aggregator created one and wrote the configured feeds' rows into it)."""
    from click.testing import CliRunner

    from aggregator.cli import cli

    config = write_config(tmp_path, '[[feeds]]\nurl = "seeds"\nname = "Seeds"\n')
    (tmp_path / "seeds").mkdir()
    (tmp_path / "local.xml").write_text(
        RSS.format(items=ITEM.format(guid="y", title="t", body="b")), encoding="utf-8"
    )
    httpserver.expect_request("/rss").respond_with_data(
        RSS.format(items=ITEM.format(guid="x", title="t", body="b")),
        content_type="application/rss+xml",
    )
    for url, name in (
        (httpserver.url_for("/rss"), "Remote"),
        (str(tmp_path / "local.xml"), "Local"),
    ):
        added = CliRunner().invoke(
            cli, ["--config", str(config), "feeds", "add", url, "--name", name]
        )
        assert added.exit_code == 0, added.output
        assert "a feed with 1 entry" in added.output and f"added {name}" in added.output
    assert "Remote" in config.read_text(encoding="utf-8")
    assert "Local" in config.read_text(encoding="utf-8")
    assert not (tmp_path / "test.db").exists()


def test_every_command_has_help(run_cli: RunCli, tmp_path: Path) -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    for command in (
        ["poll"],
        ["status"],
        ["digest"],
        ["run"],
        ["serve"],
        ["feeds"],
        ["feeds", "add"],
        ["feeds", "list"],
        ["feeds", "remove"],
        ["feeds", "enable"],
        ["feeds", "update-urls"],
        ["feeds", "import"],
        ["feeds", "export"],
        ["watches"],
        ["watches", "list"],
        ["watches", "test"],
        ["alerts"],
    ):
        result = run_cli(*command, "--help", cwd=tmp_path)
        assert result.returncode == 0 and "Usage:" in result.stdout
        assert f"aggregator {' '.join(command)}" in readme, command
