"""Shared fixtures: a temp config folder with a real SQLite file, a frozen clock, the seeds."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.feedserver import FeedServer

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "seeds"


class FrozenClock:
    """A clock tests move by hand."""

    def __init__(self, start: datetime) -> None:
        self.current = start

    def __call__(self) -> datetime:
        return self.current

    def advance(self, **kwargs: float) -> None:
        self.current += timedelta(**kwargs)


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(datetime(2025, 2, 12, 12, 0, tzinfo=UTC))


@pytest.fixture
def feed_server() -> Iterator[FeedServer]:
    """A threaded HTTP server on 127.0.0.1 with scriptable routes (see tests/feedserver.py)."""
    server = FeedServer()
    yield server
    server.close()


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A folder holding a copy of the seeds and of the shipped feeds.toml."""
    shutil.copytree(SEEDS, tmp_path / "seeds")
    shutil.copy(ROOT / "feeds.toml", tmp_path / "feeds.toml")
    return tmp_path


def write_config(folder: Path, feeds: str, extra: str = "") -> Path:
    """Write a minimal feeds.toml with the given [[feeds]] tables."""
    path = folder / "feeds.toml"
    path.write_text(
        f"""
[storage]
path = "test.db"

{feeds}

[[topics]]
name = "Summit"
keywords = ["峰会", "summit"]

[digest]
timezone = "Asia/Shanghai"
{extra}
""",
        encoding="utf-8",
    )
    return path


def news_rss(title: str, items: int = 2) -> str:
    """An RSS 2.0 feed titled `title` with `items` dated items, each with its own link."""
    entries = "".join(
        f"<item><title>{title} item {n}</title><link>https://news.example/{title}/{n}</link>"
        f"<pubDate>Tue, 11 Feb 2025 0{n}:00:00 GMT</pubDate></item>"
        for n in range(1, items + 1)
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
        f"<title>{title}</title><link>https://news.example/</link>{entries}</channel></rss>"
    )


RunCli = Callable[..., subprocess.CompletedProcess[str]]


def cli(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run the real CLI in a subprocess (python -m aggregator), returning the completed process."""
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    full_env.pop(
        "AGGREGATOR_CONFIG", None
    ) if env is None or "AGGREGATOR_CONFIG" not in env else None
    return subprocess.run(
        [sys.executable, "-m", "aggregator", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def run_cli() -> RunCli:
    """The real CLI in a subprocess (see `cli`)."""
    return cli
