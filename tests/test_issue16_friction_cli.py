"""Issue 16, friction in the CLI: -v/-q after the subcommand, init, and feeds add's guesses."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from importlib import resources
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from aggregator.cli import cli
from tests.conftest import ROOT, RunCli, news_rss, write_config
from tests.feedserver import FeedServer, static

# --- -v/-q after the subcommand; -v is our DEBUG, -vv the libraries' too ----------------


def test_verbose_and_quiet_after_the_subcommand(
    run_cli: RunCli, tmp_path: Path, feed_server: FeedServer
) -> None:
    feed_server.routes["/rss"] = static(news_rss("Local"))
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
    assert quiet.stderr == "" and quiet.stdout == ""  # errors only: from cron, no mail

    listed = run_cli("feeds", "list", "-q", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "Local" in listed.stdout  # a command's output is not a message


def test_quiet_commands_say_only_what_failed_and_print_their_output(
    run_cli: RunCli, tmp_path: Path, feed_server: FeedServer
) -> None:
    """-q (errors only), as from cron: a poll prints the feeds that failed and nothing else,
    and a digest the path of the file it wrote (its output) without its counts."""
    feed_server.routes["/rss"] = static(news_rss("Local"))
    write_config(
        tmp_path,
        f'[[feeds]]\nurl = "{feed_server.url("/rss")}"\nname = "Local"\n'
        f'[[feeds]]\nurl = "{feed_server.url("/gone")}"\nname = "Gone"\n',
    )
    polled = run_cli("-q", "poll", cwd=tmp_path)
    assert polled.returncode == 0, polled.stderr
    assert "polled" not in polled.stderr and "Local" not in polled.stderr
    assert "failed: Gone: " in polled.stderr and "404" in polled.stderr
    told = run_cli("poll", cwd=tmp_path)  # without -q: the summary
    assert "polled 2 feeds: " in told.stderr and "failed: Gone" in told.stderr

    digest = run_cli("-q", "digest", "--since", "2020-01-01", cwd=tmp_path)
    assert digest.returncode == 0, digest.stderr
    assert digest.stderr == ""
    written = Path(digest.stdout.strip())
    assert written.suffix == ".html" and written.exists()
    counted = run_cli("digest", "--since", "2020-01-01", cwd=tmp_path)
    assert " -> " in counted.stderr and counted.stdout.strip() == digest.stdout.strip()


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
    feed_server.routes["/rss.xml"] = static(news_rss("Blog RSS"))
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


# --- aggregator init, and every command saying how to get a feeds.toml ------------------


def test_init_writes_the_shipped_feeds_toml_without_the_seeds(
    run_cli: RunCli, tmp_path: Path, feed_server: FeedServer
) -> None:
    made = run_cli("init", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    config = tmp_path / "feeds.toml"
    text = config.read_text(encoding="utf-8")
    shipped = (ROOT / "feeds.toml").read_text(encoding="utf-8")
    assert "# Real feeds look like this" in text and "[digest]" in text  # commented, complete
    assert "feeds" not in tomllib.loads(text) and "The built-in source" not in text
    assert not (tmp_path / "seeds").exists()
    assert len(text.splitlines()) == len(shipped.splitlines()) - 8  # the seeds feed and comment

    # A first run here works: a poll of no feed, then a feed added and polled.
    assert run_cli("poll", cwd=tmp_path).returncode == 0
    feed_server.routes["/rss"] = static(news_rss("Local"))
    added = run_cli("feeds", "add", feed_server.url("/rss"), cwd=tmp_path)
    assert added.returncode == 0, added.stderr
    polled = run_cli("poll", cwd=tmp_path)
    assert polled.returncode == 0 and "2 new entries" in polled.stderr, polled.stderr

    # Never overwritten.
    edited = config.read_bytes()
    again = run_cli("init", cwd=tmp_path)
    assert again.returncode == 2 and "already exists" in again.stderr
    assert config.read_bytes() == edited


def test_init_with_seeds_in_another_folder(run_cli: RunCli, tmp_path: Path) -> None:
    made = run_cli("init", "first run", "--with-seeds", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    folder = tmp_path / "first run"
    assert (folder / "feeds.toml").read_bytes() == (ROOT / "feeds.toml").read_bytes()
    assert sorted(p.name for p in (folder / "seeds").iterdir()) == sorted(
        p.name for p in (ROOT / "seeds").iterdir()
    )
    polled = run_cli("poll", cwd=folder)
    assert polled.returncode == 0 and "4 new entries" in polled.stderr, polled.stderr

    # A seeds folder already there is not overwritten, and then nothing is written.
    (folder / "feeds.toml").unlink()
    (folder / "seeds" / "mine.md").write_text("# Mine\n\nText.\n", encoding="utf-8")
    again = run_cli("--config", "first run/feeds.toml", "init", "--with-seeds", cwd=tmp_path)
    assert again.returncode == 2 and "already exists" in again.stderr
    assert not (folder / "feeds.toml").exists() and (folder / "seeds" / "mine.md").exists()


def test_the_shipped_feeds_toml_and_seeds_are_package_data_equal_to_the_repositorys() -> None:
    shipped = resources.files("aggregator").joinpath("shipped")
    assert shipped.joinpath("feeds.toml").read_bytes() == (ROOT / "feeds.toml").read_bytes()
    seeds = {p.name: p.read_bytes() for p in shipped.joinpath("seeds").iterdir()}
    assert seeds == {p.name: p.read_bytes() for p in (ROOT / "seeds").iterdir()}
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    package_data = declared["tool"]["setuptools"]["package-data"]["aggregator"]
    assert {"shipped/feeds.toml", "shipped/seeds/*"} <= set(package_data)


def test_init_works_from_an_installed_package_without_the_clone(tmp_path: Path) -> None:
    """What a wheel holds (setuptools' build_py, as `pip install .` runs it), imported from
    outside the repository: init finds its template and seeds in the package."""
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(
        ROOT / "aggregator", source / "aggregator", ignore=shutil.ignore_patterns("__pycache__")
    )
    installed = tmp_path / "site-packages"
    build = [sys.executable, "-c", "from setuptools import setup; setup()", "-q", "build_py"]
    built = subprocess.run(
        [*build, "--build-lib", str(installed)], cwd=source, capture_output=True, text=True
    )
    assert built.returncode == 0, built.stderr
    shutil.rmtree(source)  # nothing left to find next to the package

    env = {**os.environ, "PYTHONPATH": str(installed)}
    env.pop("AGGREGATOR_CONFIG", None)

    def installed_python(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, *args]
        return subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True)

    where = installed_python("-c", "import aggregator; print(aggregator.__file__)")
    assert where.stdout.strip() == str(installed / "aggregator" / "__init__.py"), where.stderr

    made = installed_python("-m", "aggregator", "init", "first")
    assert made.returncode == 0, made.stderr
    text = (tmp_path / "first" / "feeds.toml").read_text(encoding="utf-8")
    assert "# Real feeds look like this" in text and "feeds" not in tomllib.loads(text)

    seeded = installed_python("-m", "aggregator", "init", "seeded", "--with-seeds")
    assert seeded.returncode == 0, seeded.stderr
    assert (tmp_path / "seeded" / "feeds.toml").read_bytes() == (ROOT / "feeds.toml").read_bytes()
    seeds = sorted(p.name for p in (tmp_path / "seeded" / "seeds").iterdir())
    assert seeds == sorted(p.name for p in (ROOT / "seeds").iterdir())


@pytest.mark.parametrize(
    "args",
    [
        ["poll"],
        ["status"],
        ["digest"],
        ["run"],
        ["feeds", "list"],
        ["feeds", "add", "https://news.example/rss"],
        ["feeds", "remove", "News"],
        ["feeds", "enable", "News"],
        ["feeds", "update-urls"],
        ["feeds", "import", "-"],
        ["feeds", "export"],
    ],
)
def test_without_feeds_toml_every_command_says_how_to_make_one(
    args: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AGGREGATOR_CONFIG", raising=False)
    result = CliRunner().invoke(cli, args, input="not OPML")
    assert result.exit_code == 2, result.output
    assert "`aggregator init` writes a commented one" in result.output
    elsewhere = CliRunner().invoke(cli, ["--config", "new/feeds.toml", *args], input="")
    assert elsewhere.exit_code == 2 and "`aggregator init new` writes" in elsewhere.output
    assert list(tmp_path.iterdir()) == []  # nothing written


def _commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = []
    for name, command in group.commands.items():
        found.append((*prefix, name))
        if isinstance(command, click.Group):
            found += _commands(command, (*prefix, name))
    return found


def test_every_command_init_too_has_help_and_a_readme_mention() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    commands = _commands(cli)
    assert ("init",) in commands
    for command in commands:
        result = CliRunner().invoke(cli, [*command, "--help"])
        assert result.exit_code == 0 and "Usage:" in result.output, command
        assert "-v, --verbose" in result.output, command
        assert f"aggregator {' '.join(command)}" in readme, command
