"""The feeds.toml to start from (`aggregator init`): the shipped one, with or without its seeds."""

from __future__ import annotations

import shutil
import tomllib
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

from aggregator.config.layout import _BOM, _lines, _tables, _without_lines
from aggregator.config.load import config_from_dict
from aggregator.exceptions import AggregatorError, ConfigError

# What `init` copies is package data (aggregator/shipped/), so that every installation has
# it, not only a clone: a copy of the repository's own feeds.toml and seeds/ (a test keeps
# them equal).
_SHIPPED = "shipped"
SEEDS_URL = "seeds"


def init_config(path: Path, *, with_seeds: bool = False) -> Path | None:
    """Write the shipped, commented feeds.toml at `path`: without its seeds feed, or with
    it and a copy of the seeds folder next to it.

    Returns:
        The seeds folder written (None without `with_seeds`).

    Raises:
        ConfigError: `path` (or, with `with_seeds`, the seeds folder beside it) already
            exists, or cannot be written; nothing is overwritten.
        AggregatorError: this installation has no shipped feeds.toml or seeds to copy.
    """
    folder = resources.files("aggregator").joinpath(_SHIPPED)
    shipped, seeds = folder.joinpath("feeds.toml"), folder.joinpath(SEEDS_URL)
    if path.exists() or path.is_symlink():
        raise ConfigError(
            "already exists: not overwritten (edit it, or remove it to start again)",
            path=str(path),
        )
    target_seeds = path.parent / SEEDS_URL
    if with_seeds and (target_seeds.exists() or target_seeds.is_symlink()):
        raise ConfigError(
            "already exists: not overwritten (without --with-seeds only feeds.toml is written)",
            path=str(target_seeds),
        )
    if not shipped.is_file() or (with_seeds and not seeds.is_dir()):
        raise AggregatorError(
            f"this installation has no shipped feeds.toml{' or seeds' if with_seeds else ''} "
            f"to copy (looked in {folder}); reinstall aggregator"
        )
    text = shipped.read_bytes().decode("utf-8")  # its line ends as written
    if not with_seeds:
        text = _without_feed(text, SEEDS_URL)
    config_from_dict(tomllib.loads(text.removeprefix(_BOM)), path, text)  # it must load
    stage = "folder"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        stage = "seeds"
        if with_seeds:
            _copy_resource(seeds, target_seeds)
        stage = "feeds.toml"
        with path.open("x", encoding="utf-8", newline="") as file:
            file.write(text)
    except OSError as e:
        # All or nothing (no seeds without the feeds.toml naming them, no half a file),
        # leaving alone what another process made meanwhile.
        ours = not isinstance(e, FileExistsError)
        if with_seeds and (stage == "feeds.toml" or (stage == "seeds" and ours)):
            shutil.rmtree(target_seeds, ignore_errors=True)
        if stage == "feeds.toml" and ours:
            path.unlink(missing_ok=True)
        raise ConfigError(f"cannot write: {e.strerror or e}", path=str(e.filename or path)) from e
    return target_seeds if with_seeds else None


def _copy_resource(source: Traversable, target: Path) -> None:
    """Copy a folder of package data to `target`, which must not exist yet."""
    target.mkdir()
    for item in source.iterdir():
        if item.is_dir():
            _copy_resource(item, target / item.name)
        else:
            (target / item.name).write_bytes(item.read_bytes())


def _without_feed(text: str, url: str) -> str:
    """text without the [[feeds]] table of this URL and the comment block directly above it."""
    lines = _lines(text)
    urls = [t.get("url") for t in tomllib.loads(text.removeprefix(_BOM)).get("feeds", [])]
    spans = [t for t in _tables(lines) if t.array and t.name == "feeds"]
    if url not in urls or len(spans) != len(urls):
        return text
    span = spans[urls.index(url)]
    return "".join(_without_lines(lines, span.start, span.end))
