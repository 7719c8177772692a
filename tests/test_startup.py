"""Start-up: light commands do not import the fetching, dedup or digest stacks.

Each command runs in a fresh interpreter (the real CLI, `python -m aggregator`), which
reports the modules it imported when it exits.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from tests.conftest import ROOT, SEEDS, RunCli, run_python, write_config
from tests.feedserver import FeedServer, respond

# Runs the CLI as `python -m aggregator` does, then writes the imported modules' names to
# the file named by $IMPORTED (stdout and stderr stay the command's own).
WRAPPER = """
import json, os, runpy, sys
sys.argv[0] = "aggregator"
try:
    runpy.run_module("aggregator", run_name="__main__", alter_sys=True)
finally:
    with open(os.environ["IMPORTED"], "w") as out:
        json.dump(sorted(sys.modules), out)
"""
HEAVY = ("numpy", "rjieba", "jieba", "httpx", "jinja2", "starlette", "uvicorn", "prometheus_client")
STAGES = ("aggregator.dedup", "aggregator.digest")
RSS = (
    "<?xml version='1.0'?><rss version='2.0'><channel><title>News</title>"
    "<item><title>Hello</title><guid>news-1</guid>"
    "<pubDate>Wed, 12 Feb 2025 10:00:00 +0000</pubDate><description>Some text."
    "</description></item></channel></rss>"
)


def imported(
    *args: str, cwd: Path, tmp_path: Path
) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """Run the CLI with `args`; return the finished process and the modules it imported."""
    record = tmp_path / "imported.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "IMPORTED": str(record)}
    env.pop("AGGREGATOR_CONFIG", None)
    done = subprocess.run(
        [sys.executable, "-c", WRAPPER, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return done, set(json.loads(record.read_text(encoding="utf-8")))


def loaded(modules: set[str], packages: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules if any(m == p or m.startswith(f"{p}.") for p in packages))


@pytest.fixture
def local_config(tmp_path: Path, run_cli: RunCli) -> Path:
    """A config with one local folder feed (the seeds), polled once into its database."""
    folder = tmp_path / "work"
    folder.mkdir()
    (folder / "articles").mkdir()
    for seed in SEEDS.iterdir():
        (folder / "articles" / seed.name).write_bytes(seed.read_bytes())
    write_config(folder, '[[feeds]]\nurl = "articles"\nname = "Local"\n')
    polled = run_cli("poll", cwd=folder)
    assert polled.returncode == 0, polled.stderr
    assert (folder / "test.db").exists()
    return folder


def test_help_imports_no_heavy_module(tmp_path: Path) -> None:
    done, modules = imported("--help", cwd=tmp_path, tmp_path=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Usage: aggregator" in done.stdout and "digest" in done.stdout
    assert loaded(modules, HEAVY + STAGES) == []


@pytest.mark.parametrize("command", [("feeds", "list"), ("status",)], ids=" ".join)
def test_light_commands_import_no_heavy_module(
    command: tuple[str, ...], local_config: Path, tmp_path: Path
) -> None:
    done, modules = imported(*command, cwd=local_config, tmp_path=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Local" in done.stdout
    assert loaded(modules, HEAVY + STAGES) == []
    assert "aggregator.core" in modules  # the database was opened (the feed's state read)


@pytest.mark.parametrize(
    "command", [("watches", "list"), ("alerts",), ("watches", "--help")], ids=" ".join
)
def test_the_watch_commands_import_no_heavy_module(
    command: tuple[str, ...], local_config: Path, tmp_path: Path
) -> None:
    done, modules = imported(*command, cwd=local_config, tmp_path=tmp_path)
    assert done.returncode == 0, done.stderr
    assert loaded(modules, HEAVY + STAGES) == []


def test_a_poll_answered_304_imports_no_dedup_or_digest_module(
    tmp_path: Path, run_cli: RunCli, feed_server: FeedServer
) -> None:
    def conditional(h: BaseHTTPRequestHandler) -> None:
        if h.headers.get("If-None-Match") == '"v1"':
            respond(h, 304, headers={"ETag": '"v1"'})
        else:
            respond(h, 200, RSS.encode(), headers={"ETag": '"v1"'})

    feed_server.routes["/news"] = conditional
    write_config(tmp_path, f'[[feeds]]\nurl = "{feed_server.url("/news")}"\nname = "News"\n')
    first = run_cli("poll", cwd=tmp_path)
    assert first.returncode == 0 and "1 ok" in first.stderr, first.stderr
    done, modules = imported("poll", cwd=tmp_path, tmp_path=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "1 not modified" in done.stderr
    assert feed_server.requests_to("/news")[-1].headers.get("if-none-match") == '"v1"'
    assert loaded(modules, STAGES + ("numpy", "rjieba", "jieba", "jinja2")) == []
    assert "httpx" in modules  # it did fetch
    # ...without httpx's command line and what it imports (~35 ms a process), nor the
    # feeds.toml editor (tomlkit, 11-14 ms).
    assert loaded(modules, ("pygments", "rich", "tomlkit")) == []


def test_only_chinese_text_loads_the_chinese_stack(feed_server: FeedServer, tmp_path: Path) -> None:
    """Placing English entries loads the dedup stack but not rjieba (~0.1 s to import: it
    loads its dictionary); placing the seeds, in Chinese, does."""
    feed_server.routes["/news"] = lambda h: respond(h, 200, RSS.encode())
    write_config(tmp_path, f'[[feeds]]\nurl = "{feed_server.url("/news")}"\nname = "News"\n')
    done, modules = imported("poll", cwd=tmp_path, tmp_path=tmp_path)
    assert done.returncode == 0 and "1 new entry," in done.stderr, done.stderr
    assert {"aggregator.dedup.terms", "numpy"} <= modules  # the entry was placed
    assert loaded(modules, ("rjieba", "jieba")) == []
    chinese = tmp_path / "chinese"
    (chinese / "articles").mkdir(parents=True)
    for seed in SEEDS.iterdir():
        (chinese / "articles" / seed.name).write_bytes(seed.read_bytes())
    write_config(chinese, '[[feeds]]\nurl = "articles"\nname = "Local"\n')
    done, modules = imported("poll", cwd=chinese, tmp_path=tmp_path)
    assert done.returncode == 0 and "4 new entries" in done.stderr, done.stderr
    assert "rjieba" in modules


def test_the_workers_warm_up_loads_no_chinese_stack(tmp_path: Path) -> None:
    """A placing process or feature worker warms up (`parallel.warm_up`) without rjieba,
    jieba's IDF table or CC-CEDICT: the first Chinese text loads them."""
    script = (
        "import json, sys\n"
        "from aggregator.dedup import crosslang, terms\n"
        "from aggregator.parallel import warm_up\n"
        "from aggregator.types import DedupSettings\n"
        "warm_up(DedupSettings())\n"
        "print(json.dumps(['rjieba' in sys.modules,\n"
        "    terms._prior_table.cache_info().currsize,\n"
        "    crosslang.dictionary.cache_info().currsize,\n"
        "    'aggregator.dedup.features' in sys.modules]))\n"
    )
    done = run_python(script, cwd=tmp_path, timeout=120)
    assert json.loads(done.stdout) == [False, 0, 0, True]


def test_the_command_leaves_its_heap_to_the_exit(tmp_path: Path) -> None:
    """The command's process freezes its objects once the command is done, so that the
    exit's last collection does not walk them (~20-40 ms of a 304 pass)."""
    wrapper = (
        "import gc, os, runpy, sys\n"
        "sys.argv[0] = 'aggregator'\n"
        "try:\n"
        "    runpy.run_module('aggregator', run_name='__main__', alter_sys=True)\n"
        "finally:\n"
        "    with open(os.environ['FROZEN'], 'w') as out:\n"
        "        out.write(str(gc.get_freeze_count()))\n"
    )
    counted = tmp_path / "frozen"
    done = run_python(wrapper, "--help", cwd=tmp_path, env={"FROZEN": str(counted)})
    assert "Usage: aggregator" in done.stdout
    assert int(counted.read_text()) > 1000  # every object the imports made
