"""The commands on feeds.toml: `init` writes one; `feeds` lists, adds, removes, imports and
exports its feeds."""

from __future__ import annotations

import itertools
import os
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, NoReturn

import click

from aggregator.cli.group import _Context, _guarded, cli, note
from aggregator.exceptions import ConfigError, HtmlPageError
from aggregator.grammar import counted
from aggregator.types import Feed

if TYPE_CHECKING:
    from aggregator.config import Config


@cli.command()
@click.argument(
    "folder", required=False, type=click.Path(file_okay=False, path_type=Path), metavar="[DIR]"
)
@click.option(
    "--with-seeds",
    is_flag=True,
    help="Keep the built-in source: its feed, and a copy of the seeds folder next to it.",
)
@click.pass_obj
@_guarded
def init(obj: _Context, folder: Path | None, with_seeds: bool) -> None:
    """Write a commented feeds.toml to start from: in DIR, else where --config points.

    It is the shipped one (its topics, digest settings and commented-out example feeds)
    without the built-in seeds feed, unless --with-seeds, which also copies the seeds
    folder. An existing feeds.toml is never overwritten (exit 2).
    """
    from aggregator.config import init_config

    path = folder / "feeds.toml" if folder is not None else obj.config_path
    seeds = init_config(path, with_seeds=with_seeds)
    click.echo(f"wrote {path}")
    if seeds is not None:
        note(f"copied the seeds to {seeds}")
    where = "" if path == Path("feeds.toml") else f" --config {shlex.quote(str(path))}"
    note(f"next: `aggregator{where} feeds add URL` adds a feed, then `aggregator{where} poll`")


@cli.group()
def feeds() -> None:
    """List, add and remove the feeds in feeds.toml (comments and order are kept)."""


@feeds.command("list")
@click.pass_obj
@_guarded
def feeds_list(obj: _Context) -> None:
    """List the configured feeds: name, URL or path, interval.

    A feed that moved for good (HTTP 301/308) is marked with its new URL, and a disabled
    one with the reason; see `aggregator feeds update-urls` and `aggregator feeds enable`.
    """
    from aggregator.config import format_duration

    config = obj.config()
    states = {}
    if config.store_exists():
        with obj.aggregator(read_only=True) as agg:
            states = {s.url: s for s in agg.status()}
    moved = clashes = 0
    names = {feed.url: feed.name for feed in config.feeds}
    for feed in config.feeds:
        interval = format_duration(feed.interval) if feed.interval else "default"
        line = f"{feed.name}\t{feed.url}\t{interval}"
        state = states.get(feed.url)
        if state is not None and state.redirected_url:
            line += f"\tmoved to {state.redirected_url}"
            if state.redirected_url in names:  # another feed's URL: `update-urls` skips it
                line += f" (the feed {names[state.redirected_url]!r} has it)"
                clashes += 1
            else:
                moved += 1
        if state is not None and state.disabled:
            line += f"\tdisabled: {state.disabled_reason}"
        click.echo(line)
    if moved:
        note(
            f"{counted(moved, 'feed')} moved permanently; `aggregator feeds update-urls` "
            f"writes the new {'URL' if moved == 1 else 'URLs'} into feeds.toml"
        )
    if clashes:
        note(
            f"{counted(clashes, 'feed')} moved to the URL of another configured feed: "
            "remove one of each pair (`aggregator feeds remove`)"
        )


@feeds.command("import")
@click.argument("file", type=click.File("rb"))
@click.pass_obj
@_guarded
def feeds_import(obj: _Context, file: BinaryIO) -> None:
    """Add the feeds of an OPML file (from another reader; '-' for standard input).

    Folders become each feed's `tags`; feeds already configured are skipped. The feeds
    are not fetched first: `aggregator poll` then `aggregator status` shows how they fare.
    """
    from aggregator.core import import_opml

    obj.config()  # a missing or broken feeds.toml is said before the OPML file is read
    result = import_opml(obj.config_path, file.read(), getattr(file, "name", "OPML"))
    for url, reason in result.skipped:
        note(f"skipped {url}: {reason}")
    for feed in result.added:
        tags = f" [{', '.join(feed.tags)}]" if feed.tags else ""
        click.echo(f"added {feed.name} ({feed.url}){tags}")
    note(
        f"{counted(len(result.added), 'feed')} added, {len(result.skipped)} skipped, "
        f"to {obj.config_path}"
    )


@feeds.command("export")
@click.pass_obj
@_guarded
def feeds_export(obj: _Context) -> None:
    """Write the configured feeds as OPML to standard output (tags become folders).

    Local files and folders have no URL another reader could use and are left out.
    """
    from aggregator import clock
    from aggregator.core import export_opml

    document, local = export_opml(obj.config(), clock.now())
    sys.stdout.write(document)
    for feed in local:
        click.echo(f"left out the local source {feed.name} ({feed.url})", err=True)


@feeds.command("update-urls")
@click.pass_obj
@_guarded
def feeds_update_urls(obj: _Context) -> None:
    """Write the new URLs of feeds that moved permanently (HTTP 301/308) into feeds.toml.

    Comments and order in feeds.toml are kept; stored entries stay with their feed.
    """
    with obj.aggregator() as agg:
        found = len(agg.moved_feeds())
        moved = agg.update_urls()
    left = found - len(moved)  # to a URL another feed has, or had: warned above, each
    if not moved:
        note(
            f"no URL written: {counted(left, 'feed')} moved to another feed's URL"
            if left
            else "no feed has moved"
        )
    for feed, new_url in moved:
        click.echo(f"{feed.name}: {feed.url} -> {new_url}")


@feeds.command("enable")
@click.argument("url_or_name")
@click.pass_obj
@_guarded
def feeds_enable(obj: _Context, url_or_name: str) -> None:
    """Poll a feed again that was disabled (e.g. after HTTP 410 Gone); forget its failures."""
    with obj.aggregator() as agg:
        feed = agg.enable(url_or_name)
    click.echo(f"enabled {feed.name} ({feed.url})")


@feeds.command("add")
@click.argument("url")
@click.option("--name", help="Display name (default: the feed's title or host).")
@click.option(
    "--interval", metavar="DUR", help="Fixed polling interval, e.g. 30s, 15m, 2h, or seconds: 300."
)
@click.option("--no-check", is_flag=True, help="Add without fetching the feed first.")
@click.option(
    "--pick",
    type=int,
    metavar="N",
    help="When URL is a web page, add the N-th feed it links to (as listed without --pick).",
)
@click.pass_obj
@_guarded
def feeds_add(
    obj: _Context,
    url: str,
    name: str | None,
    interval: str | None,
    no_check: bool,
    pick: int | None,
) -> None:
    """Add a feed (http/https URL, or a local file or folder) to feeds.toml.

    Unless --no-check, the URL is fetched and must be a readable feed. When it is a web
    page instead, the feeds the page links to (<link rel="alternate">) are listed, and
    --pick N adds one of them.
    """
    from aggregator.config import add_feed, duration_option, refuse_configured
    from aggregator.config.identity import file_url_path, is_http_url, local_path, name_problem
    from aggregator.core import make_aggregator

    config = obj.config()
    seconds_or_text: str | int | None = None
    if interval is not None:
        try:
            seconds_or_text = duration_option(interval)
        except ValueError as e:
            raise ConfigError(str(e), key="--interval") from e
    try:
        named = file_url_path(url)
    except ValueError as e:
        raise ConfigError(f"{url}: {e}", key="url") from e
    if named is not None:
        url = str(named)
    elif "://" in url and not url.lower().startswith(("http://", "https://")):
        raise ConfigError(
            f"{url}: a feed is an http(s) URL, a file:// URL or a local path", key="url"
        )
    elif "://" in url and not is_http_url(url):
        raise ConfigError(
            f"{url}: not a valid http(s) URL (a host, and a port from 0 to 65535 if any)",
            key="url",
        )
    if "://" not in url:
        local = local_path(url, Path.cwd()).resolve()  # "~/…" as feeds.toml reads it
        if not no_check and not local.exists():
            raise ConfigError(f"{url}: no such file or folder", key="url")
        url = os.path.relpath(local, config.path.parent.resolve())
    # Before any fetch: a feed already there is refused however its URL is written, and
    # a name given that another feed has, or none at all.
    problem = None if name is None else name_problem(name)
    if problem is not None:
        raise ConfigError(f"--name {problem}", key="--name")
    refuse_configured(config, url, name)
    if not no_check:
        probe = Feed(
            url=url,
            name=name or url,
            path=(config.path.parent / url).resolve() if "://" not in url else None,
        )
        # Read-only: checking a URL writes nothing, nor creates the database.
        with make_aggregator(config, read_only=True) as agg:
            try:
                parsed, moved = agg.check(probe)
            except HtmlPageError as e:
                if not e.feed_links:
                    raise
                if pick is None and len(e.feed_links) > 1:
                    _offer(url, e.feed_links)
                if pick is not None and not 1 <= pick <= len(e.feed_links):
                    raise ConfigError(
                        f"--pick must be between 1 and {len(e.feed_links)}", key="--pick"
                    ) from e
                page, url = url, e.feed_links[(pick or 1) - 1]
                if pick is None:  # the page's one feed: no need to ask which
                    note(f"{page} is a web page linking to one feed: {url}")
                else:
                    note(f"the page links to the feed {url}")
                refuse_configured(config, url)
                probe = Feed(url=url, name=name or url)
                parsed, moved = agg.check(probe)
        if probe.path is not None and probe.path.is_dir() and not parsed.entries:
            _refuse_folder(url, probe.path, parsed.warnings)
        if moved:
            note(f"{url} moved permanently to {moved}: adding that")
            url = moved
        if name is None and parsed.title:
            name = _free_name(config, parsed.title)
            if name != parsed.title:
                note(
                    f"a feed named {parsed.title!r} is already configured: naming this one "
                    f"{name!r} (--name gives another)"
                )
        note(f"{url}: a feed with {counted(len(parsed.entries), 'entry')}")
    added = add_feed(config.path, url, name=name, interval=seconds_or_text)
    click.echo(f"added {added.name} ({added.url}) to {config.path}")


def _refuse_folder(url: str, folder: Path, unread: list[str]) -> NoReturn:
    """A folder without one entry would be a feed that never has any: say why.

    Raises:
        ConfigError: always; `unread` are the reasons its files gave no entry.
    """
    # As sources/files.py reads a folder: its visible files, not subfolders.
    files = [f for f in folder.iterdir() if not f.name.startswith(".") and not f.is_dir()]
    if not files:
        raise ConfigError(
            f"{url}: the folder has no files; put article files in it (Markdown, or feed "
            "files: see README, Local sources) and add it again",
            key="url",
        )
    reasons = f" ({'; '.join(unread[:3])}{'; …' if len(unread) > 3 else ''})" if unread else ""
    raise ConfigError(
        f"{url}: none of the folder's {counted(len(files), 'file')} holds an article or a feed "
        f"entry{reasons}; see README, Local sources",
        key="url",
    )


def _free_name(config: Config, title: str) -> str:
    """The feed's title as its name, numbered when another feed has it: "News (2)"."""
    taken = {feed.name for feed in config.feeds}
    candidates = itertools.chain([title], (f"{title} ({n})" for n in itertools.count(2)))
    return next(name for name in candidates if name not in taken)


def _offer(url: str, links: tuple[str, ...]) -> NoReturn:
    click.echo(f"aggregator: {url} is an HTML page, not a feed. It links to:", err=True)
    for number, link in enumerate(links, 1):
        click.echo(f"  {number}. {link}", err=True)
    click.echo(f"Add one with: aggregator feeds add {url} --pick N (or give its URL)", err=True)
    sys.exit(1)


@feeds.command("remove")
@click.argument("url_or_name")
@click.pass_obj
@_guarded
def feeds_remove(obj: _Context, url_or_name: str) -> None:
    """Remove a feed from feeds.toml by URL or name (its stored entries are kept)."""
    from aggregator.config import remove_feed

    config_path = obj.config_path
    removed = remove_feed(config_path, url_or_name)
    click.echo(f"removed {removed.name} ({removed.url}) from {config_path}")
