"""Issue 16, feeds.toml: editing keeps comments with their tables, default names never
collide, duplicates are found by canonical URL, durations may be seconds, a BOM is read."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from aggregator.config import NewFeed, add_feed, add_feeds, load_config, remove_feed
from aggregator.exceptions import ConfigError
from tests.conftest import ROOT, cli

SHIPPED = (ROOT / "feeds.toml").read_text(encoding="utf-8")


def _copy_shipped(tmp_path: Path) -> Path:
    path = tmp_path / "feeds.toml"
    path.write_text(SHIPPED, encoding="utf-8")
    return path


def _lines_without(text: str, start: str, end: str) -> str:
    """text without the lines from the one starting with `start` to the one with `end`."""
    lines = text.splitlines(keepends=True)
    first = next(i for i, line in enumerate(lines) if line.startswith(start))
    last = next(i for i in range(first, len(lines)) if lines[i].startswith(end))
    return "".join(lines[:first] + lines[last + 1 :])


# --- defect 1: comments stay with the table they belong to ------------------------------


def test_remove_keeps_the_comments_of_other_tables(tmp_path: Path) -> None:
    path = _copy_shipped(tmp_path)
    remove_feed(path, "Seeds")
    text = path.read_text(encoding="utf-8")
    # Only the Seeds table and the comment directly above it go, and one blank line.
    expected = _lines_without(SHIPPED, "# The built-in source", 'language = "zh-CN"')
    expected = expected.replace("# SQLite database\n\n\n", "# SQLite database\n\n")
    assert text == expected
    assert "# Real feeds look like this" in text
    assert "# Topics are the digest's sections" in text
    assert load_config(path).feeds == ()


def test_add_goes_after_the_last_feed_with_a_blank_line(tmp_path: Path) -> None:
    path = _copy_shipped(tmp_path)
    add_feed(path, "https://example.org/rss.xml", name="Example")
    text = path.read_text(encoding="utf-8")
    assert (
        'language = "zh-CN"\n\n[[feeds]]\nurl = "https://example.org/rss.xml"\n'
        'name = "Example"\n\n# Real feeds look like this'
    ) in text
    assert "# Chinese script (a Simplified keyword also matches Traditional text).\n[[topics]]" in (
        text
    )
    assert text.replace(
        '[[feeds]]\nurl = "https://example.org/rss.xml"\nname = "Example"\n\n', ""
    ) == (SHIPPED)
    remove_feed(path, "Example")
    assert path.read_text(encoding="utf-8") == SHIPPED


def test_import_adds_after_the_last_feed(tmp_path: Path) -> None:
    path = _copy_shipped(tmp_path)
    add_feeds(path, [NewFeed("https://a.example/f", "A"), NewFeed("https://b.example/f", "B")])
    text = path.read_text(encoding="utf-8")
    assert (
        'language = "zh-CN"\n\n[[feeds]]\nurl = "https://a.example/f"\nname = "A"\n\n'
        '[[feeds]]\nurl = "https://b.example/f"\nname = "B"\n\n# Real feeds look like this'
    ) in text
    assert [f.name for f in load_config(path).feeds] == ["Seeds", "A", "B"]


def test_remove_a_middle_feed_keeps_detached_comments(tmp_path: Path) -> None:
    path = tmp_path / "feeds.toml"
    original = (
        "# header\n\n"
        '# first feed\n[[feeds]]\nurl = "https://a.example/f"\n\n'
        "# a note about everything below\n\n"
        '# second feed, its own comment\n[[feeds]]\nurl = "https://b.example/f"\n'
        "# a note on b, hugging its keys\n\n"
        '# the third\n[[feeds]]\nurl = "https://c.example/f"\n'
    )
    path.write_text(original, encoding="utf-8")
    remove_feed(path, "https://b.example/f")
    assert path.read_text(encoding="utf-8") == (
        "# header\n\n"
        '# first feed\n[[feeds]]\nurl = "https://a.example/f"\n\n'
        "# a note about everything below\n\n"
        '# the third\n[[feeds]]\nurl = "https://c.example/f"\n'
    )
    remove_feed(path, "https://c.example/f")
    assert path.read_text(encoding="utf-8") == (
        "# header\n\n"
        '# first feed\n[[feeds]]\nurl = "https://a.example/f"\n\n'
        "# a note about everything below\n"
    )


def test_add_to_a_file_whose_feeds_were_all_removed(tmp_path: Path) -> None:
    path = _copy_shipped(tmp_path)
    remove_feed(path, "Seeds")
    add_feed(path, "https://example.org/rss.xml", name="Example")
    text = path.read_text(encoding="utf-8")
    assert (
        '# SQLite database\n\n[[feeds]]\nurl = "https://example.org/rss.xml"\nname = "Example"\n'
        "\n# Real feeds look like this"
    ) in text
    assert "# Topics are the digest's sections" in text


def test_crlf_file_keeps_its_line_ends(tmp_path: Path) -> None:
    path = tmp_path / "feeds.toml"
    original = SHIPPED.replace("\n", "\r\n").encode("utf-8")
    path.write_bytes(original)
    add_feed(path, "https://example.org/rss.xml", name="Example")
    assert b"\n" not in path.read_bytes().replace(b"\r\n", b"")
    remove_feed(path, "Example")
    assert path.read_bytes() == original


# --- defect 4: default names the user never wrote never collide --------------------------


def test_unnamed_feeds_from_one_host_get_distinct_names(tmp_path: Path) -> None:
    path = tmp_path / "feeds.toml"
    path.write_text(
        '[[feeds]]\nurl = "https://feeds.bbci.co.uk/news/rss.xml"\n\n'
        '[[feeds]]\nurl = "https://feeds.bbci.co.uk/news/technology/rss.xml"\n\n'
        '[[feeds]]\nurl = "https://feeds.bbci.co.uk/news/technology/atom.xml"\n\n'
        '[[feeds]]\nurl = "https://example.org/feed"\nname = "feeds.bbci.co.uk"\n',
        encoding="utf-8",
    )
    names = [f.name for f in load_config(path).feeds]
    assert names == [
        "feeds.bbci.co.uk/news",
        "feeds.bbci.co.uk/news/technology",
        "feeds.bbci.co.uk/news/technology/atom.xml",
        "feeds.bbci.co.uk",
    ]


def test_adding_a_second_unnamed_feed_from_one_host(tmp_path: Path) -> None:
    path = tmp_path / "feeds.toml"
    path.write_text("", encoding="utf-8")
    first = add_feed(path, "https://feeds.bbci.co.uk/news/rss.xml")
    second = add_feed(path, "https://feeds.bbci.co.uk/news/technology/rss.xml")
    assert first.name == "feeds.bbci.co.uk"
    assert second.name == "feeds.bbci.co.uk/news/technology"
    assert [f.name for f in load_config(path).feeds] == [first.name, second.name]


def test_a_name_the_user_wrote_twice_is_still_an_error(tmp_path: Path) -> None:
    path = tmp_path / "feeds.toml"
    path.write_text(
        '[[feeds]]\nurl = "https://a.example/f"\nname = "News"\n\n'
        '[[feeds]]\nurl = "https://b.example/f"\nname = "News"\n',
        encoding="utf-8",
    )
    with pytest.raises(ConfigError, match="duplicate feed name 'News'") as info:
        load_config(path)
    assert info.value.line == 7


# --- defect 14: canonical URLs, lines in the file, durations in seconds, a BOM ------------


@pytest.mark.parametrize(
    "same",
    [
        "HTTP://Example.ORG/feed.rss",
        "https://example.org/feed.rss/",
        "https://example.org:443/feed.rss",
        "https://EXAMPLE.org/feed.rss#top",
    ],
)
def test_a_feed_is_a_duplicate_by_canonical_url(tmp_path: Path, same: str) -> None:
    same = same.replace("HTTP://", "HTTPS://")
    path = tmp_path / "feeds.toml"
    path.write_text('[[feeds]]\nurl = "https://example.org/feed.rss"\n', encoding="utf-8")
    before = path.read_bytes()
    with pytest.raises(ConfigError, match="already configured"):
        add_feed(path, same)
    assert path.read_bytes() == before
    path.write_text(
        f'[[feeds]]\nurl = "https://example.org/feed.rss"\n\n[[feeds]]\nurl = "{same}"\n',
        encoding="utf-8",
    )
    with pytest.raises(ConfigError, match="duplicate feed url") as info:
        load_config(path)
    assert info.value.line == 5


def test_canonical_duplicates_are_skipped_on_import_and_found_by_remove(tmp_path: Path) -> None:
    path = tmp_path / "feeds.toml"
    path.write_text('[[feeds]]\nurl = "http://example.org/feed.rss"\n', encoding="utf-8")
    result = add_feeds(path, [NewFeed("HTTP://EXAMPLE.org:80/feed.rss/")])
    assert result.added == [] and result.skipped[0][1] == "already configured"
    removed = remove_feed(path, "http://Example.org/feed.rss/")
    assert removed.url == "http://example.org/feed.rss"
    assert load_config(path).feeds == ()


def test_local_paths_are_duplicates_when_they_resolve_alike(tmp_path: Path) -> None:
    path = tmp_path / "feeds.toml"
    (tmp_path / "seeds").mkdir()
    path.write_text('[[feeds]]\nurl = "seeds"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="already configured"):
        add_feed(path, "./seeds/")


def test_an_error_in_an_edit_cites_no_line_that_is_not_in_the_file(tmp_path: Path) -> None:
    path = tmp_path / "feeds.toml"
    path.write_text('[[feeds]]\nurl = "https://a.example/f"\n', encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        add_feed(path, "https://b.example/f", interval="often")
    assert info.value.line is None
    assert info.value.key == "interval"
    assert len(path.read_text(encoding="utf-8").splitlines()) == 2


@pytest.mark.parametrize(
    ("text", "get", "value"),
    [
        (
            '[[feeds]]\nurl = "https://a.example/f"\ninterval = 300\n',
            lambda c: c.feeds[0].interval,
            timedelta(minutes=5),
        ),
        (
            '[[feeds]]\nurl = "https://a.example/f"\ninterval = 90.5\n',
            lambda c: c.feeds[0].interval,
            timedelta(seconds=90.5),
        ),
        ("[dedup]\nstory_window = 3600\n", lambda c: c.dedup.story_window, timedelta(hours=1)),
        (
            "[dedup]\nheadline_window = 600\n",
            lambda c: c.dedup.headline_window,
            timedelta(minutes=10),
        ),
        ("[poll]\ntimeout = 5\n", lambda c: c.poll.timeout, 5.0),
        ("[poll]\nmin_interval = 60\n", lambda c: c.poll.min_interval, timedelta(minutes=1)),
    ],
)
def test_durations_may_be_numbers_of_seconds(
    tmp_path: Path, text: str, get: object, value: object
) -> None:
    path = tmp_path / "feeds.toml"
    path.write_text(text, encoding="utf-8")
    assert callable(get)
    assert get(load_config(path)) == value


@pytest.mark.parametrize(
    ("text", "key", "line"),
    [
        ('[[feeds]]\nurl = "https://a.example/f"\ninterval = 0\n', "feeds[0].interval", 3),
        ('[[feeds]]\nurl = "https://a.example/f"\ninterval = -5\n', "feeds[0].interval", 3),
        ('[[feeds]]\nurl = "https://a.example/f"\ninterval = true\n', "feeds[0].interval", 3),
        ('[[feeds]]\nurl = "https://a.example/f"\ninterval = 1e300\n', "feeds[0].interval", 3),
        ("[dedup]\nstory_window = nan\n", "dedup.story_window", 2),
        ('[dedup]\nstory_window = "300"\n', "dedup.story_window", 2),
    ],
)
def test_bad_durations_say_where(tmp_path: Path, text: str, key: str, line: int) -> None:
    path = tmp_path / "feeds.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert (info.value.key, info.value.line) == (key, line)


def test_a_bom_is_read_and_kept_when_editing(tmp_path: Path) -> None:
    path = tmp_path / "feeds.toml"
    original = "\ufeff" + SHIPPED
    path.write_text(original, encoding="utf-8")
    assert [f.name for f in load_config(path).feeds] == ["Seeds"]
    add_feed(path, "https://example.org/rss.xml", name="Example")
    assert path.read_bytes().startswith(b"\xef\xbb\xbf# aggregator configuration")
    assert [f.name for f in load_config(path).feeds] == ["Seeds", "Example"]
    remove_feed(path, "Example")
    assert path.read_text(encoding="utf-8") == original


def test_a_bom_does_not_shift_error_lines(tmp_path: Path) -> None:
    path = tmp_path / "feeds.toml"
    path.write_text(
        '\ufeff[[feeds]]\nurl = "https://a.example/f"\nintervall = "5m"\n', encoding="utf-8"
    )
    with pytest.raises(ConfigError, match="did you mean 'interval'") as info:
        load_config(path)
    assert info.value.line == 3


def test_feeds_add_interval_may_be_seconds(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from aggregator.cli import cli

    path = tmp_path / "feeds.toml"
    path.write_text("", encoding="utf-8")
    args = ["--config", str(path), "feeds", "add", "--no-check", "--interval"]
    result = CliRunner().invoke(cli, [*args, "300", "https://a.example/f"])
    assert result.exit_code == 0, result.output
    assert load_config(path).feeds[0].interval == timedelta(minutes=5)
    assert "interval = 300\n" in path.read_text(encoding="utf-8")
    result = CliRunner().invoke(cli, [*args, "0", "https://b.example/f"])
    assert result.exit_code == 2
    assert "--interval" in result.output


def test_a_line_separator_inside_a_string_is_not_a_line_end(tmp_path: Path) -> None:
    path = tmp_path / "feeds.toml"
    original = '[[feeds]]\nurl = "https://a.example/f"\nname = "A\u2028[[feeds]]"\n\n# kept\n'
    path.write_text(original, encoding="utf-8")
    add_feed(path, "https://b.example/f", name="B")
    remove_feed(path, "B")
    assert path.read_text(encoding="utf-8") == original


# --- the review of issue 16: loading is one pass; a name collision cites the file's lines --


def _many_feeds(count: int) -> str:
    """`count` [[feeds]] tables over seven hosts: every third named, the others not."""
    return "\n".join(
        f'[[feeds]]\nurl = "https://host{n % 7}.example/news/{n}/rss.xml"\n'
        + (f'name = "Feed {n}"\n' if n % 3 == 0 else "")
        for n in range(count)
    )


def test_loading_keys_each_feed_once_and_keeps_one_set_of_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import aggregator.config
    import aggregator.config.load

    path = tmp_path / "feeds.toml"
    path.write_text(_many_feeds(600), encoding="utf-8")
    keyed: list[str] = []
    taken_sets: list[set[str]] = []  # held, so that no two sets share an id()
    # Loading looks them up in aggregator.config.load, where they are imported.
    feed_key, free_name = aggregator.config.load.feed_key, aggregator.config.load._free_name

    def counting_key(url: str, base: Path) -> str:
        keyed.append(url)
        return feed_key(url, base)

    def recording_free_name(candidates: Iterator[str], taken: set[str]) -> str:
        taken_sets.append(taken)
        return free_name(candidates, taken)

    monkeypatch.setattr(aggregator.config.load, "feed_key", counting_key)
    monkeypatch.setattr(aggregator.config.load, "_free_name", recording_free_name)
    feeds = aggregator.config.load_config(path).feeds
    assert len({f.name for f in feeds}) == 600
    # Comparing each feed with every earlier one keyed ~180,000 URLs here.
    assert len(keyed) <= 2 * 600
    # One set of taken names for the whole file, not one built per unnamed feed.
    assert len(taken_sets) == 400 and len({id(taken) for taken in taken_sets}) == 1


def test_feeds_list_of_10000_feeds_is_quick(tmp_path: Path) -> None:
    import time

    (tmp_path / "feeds.toml").write_text(_many_feeds(10_000), encoding="utf-8")
    start = time.perf_counter()
    result = cli("feeds", "list", cwd=tmp_path)
    elapsed = time.perf_counter() - start
    assert result.returncode == 0, result.stderr
    names = [line.split("\t")[0] for line in result.stdout.splitlines()]
    assert len(set(names)) == len(names) == 10_000
    assert names[:8] == [
        "Feed 0", "host1.example", "host2.example", "Feed 3", "host4.example",
        "host5.example", "Feed 6", "host0.example",
    ]  # fmt: skip
    assert names[14] == "host0.example/news/14"
    # About 1 s in one pass; 30 s when each feed was compared with every earlier one
    # (docs/speed.md, Configuration).
    assert elapsed < 10, elapsed


@pytest.mark.parametrize(
    ("text", "earlier", "line"),
    [
        (
            '[[feeds]]\nurl = "https://a.example/f"\nname = "News"\n\n'
            '[[feeds]]\nurl = "https://b.example/f"\nname = "News"\n',
            (0, 3),
            7,
        ),
        # str.splitlines would count lines at U+2028 and U+0085 too, which TOML comments
        # and strings may hold: a line past the end of the file.
        (
            "# caf\u00e9\u2028 and a line\u0085 end\n"
            '[[feeds]]\nurl = "https://a.example/f"\nname = "A\u2028B"\n\n'
            '[[feeds]]\nurl = "https://c.example/f"\nname = "News"\n\n'
            '[[feeds]]\nurl = "https://b.example/f"\nname = "News"\n',
            (1, 8),
            12,
        ),
        (
            '\ufeff[storage]\r\npath = "a.db"\r\n\r\n'
            '[[feeds]]\r\nname = "News"\r\nurl = "https://a.example/f"\r\n\r\n'
            '[[feeds]]\r\nurl = "https://c.example/f"\r\n\r\n'
            '[[feeds]]  # again\r\n"name" = "News"\r\nurl = "https://b.example/f"\r\n',
            (0, 5),
            12,
        ),
        (
            'feeds = [{url = "https://a.example/f", name = "News"},\n'
            '         {url = "https://b.example/f", name = "News"}]\n',
            None,
            None,
        ),
    ],
)
def test_a_name_collision_cites_the_files_lines_and_the_earlier_feeds(
    tmp_path: Path, text: str, earlier: tuple[int, int] | None, line: int | None
) -> None:
    import re

    path = tmp_path / "feeds.toml"
    path.write_bytes(text.encode("utf-8"))
    lines = path.read_bytes().splitlines()  # at \n and \r\n only: bytes know no U+2028
    with pytest.raises(ConfigError, match="duplicate feed name 'News'") as info:
        load_config(path)
    error = info.value
    assert error.line == line
    if line is not None:
        assert b'"News"' in lines[line - 1]
    cited = [int(n) for n in re.findall(r"(?::|line )(\d+)", str(error))]
    assert all(1 <= n <= len(lines) for n in cited), (str(error), len(lines))
    if earlier is None:
        assert "line" not in error.message
    else:
        index, number = earlier
        assert f"(feeds[{index}] at line {number} has it too)" in error.message
        assert b'"News"' in lines[number - 1]
