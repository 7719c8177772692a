"""feeds.toml: loading, errors that say where, and editing in place."""

from __future__ import annotations

from datetime import time, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aggregator.config import add_feed, format_duration, load_config, parse_duration, remove_feed
from aggregator.exceptions import ConfigError
from tests.conftest import ROOT


def test_shipped_config_has_the_seeds_and_the_summit_topics() -> None:
    config = load_config(ROOT / "feeds.toml")
    assert [f.url for f in config.feeds] == ["seeds"]
    seeds = config.feeds[0]
    assert seeds.timezone == "Asia/Shanghai"
    assert seeds.path == (ROOT / "seeds").resolve()
    names = [t.name for t in config.topics]
    assert len(names) == 4 and "DeepSeek and open models" in names
    assert config.digest.time == time(7, 0)
    assert config.storage_path == ROOT / "aggregator.db"


def test_defaults(tmp_path: Path) -> None:
    path = tmp_path / "feeds.toml"
    path.write_text('[[feeds]]\nurl = "https://example.org/feed.xml"\n', encoding="utf-8")
    config = load_config(path)
    assert config.storage_path == tmp_path.resolve() / "aggregator.db"
    assert config.storage_url is None and config.storage_password_env is None
    assert config.digest.timezone == "UTC"
    assert config.digest.output == tmp_path.resolve() / "digests"
    assert config.feeds[0].name == "example.org"
    assert config.feeds[0].interval is None


BAD = [
    (
        '[[feeds]]\nurl = "https://e.org/f"\nintervall = "5m"\n',
        "feeds[0].intervall",
        3,
        "did you mean 'interval'",
    ),
    ('[storage]\npth = "x.db"\n', "storage.pth", 2, "did you mean 'path'"),
    ('[[feeds]]\nname = "no url"\n', "feeds[0].url", 1, "missing required key 'url'"),
    ('[[feeds]]\nurl = "ftp://e.org/f"\n', "feeds[0].url", 2, "not an http(s) URL"),
    ('[[feeds]]\nurl = "file://host/f.rss"\n', "feeds[0].url", 2, "a file on this machine"),
    ('[[feeds]]\nurl = "file:"\n', "feeds[0].url", 2, "must name a file or folder"),
    (
        '[[feeds]]\nurl = "https://e.org/f"\ninterval = "soon"\n',
        "feeds[0].interval",
        3,
        "not a duration",
    ),
    (
        '[[feeds]]\nurl = "https://e.org/f"\ntimezone = "Mars/Olympus"\n',
        "feeds[0].timezone",
        3,
        "unknown timezone",
    ),
    ('[digest]\ntime = "25:00"\n', "digest.time", 2, "must be a time"),
    (
        '[[topics]]\nname = "x"\nkeywords = "峰会"\n',
        "topics[0].keywords",
        3,
        "list of non-empty strings",
    ),
    ('[digest.email]\nsecurity = "tls"\n', "digest.email.security", 2, "starttls, ssl, none"),
    (
        '[[feeds]]\nurl = "https://e.org/a"\n\n[[feeds]]\nurl = "https://e.org/a"\n',
        "feeds[1].url",
        5,
        "duplicate feed url",
    ),
    ("[feedz]\n", "feedz", None, "did you mean 'feeds'"),
    (
        '[storage]\npath = "a.db"\nurl = "postgresql://u@db.example/agg"\n',
        "storage.url",
        3,
        "not both",
    ),
    ('[storage]\nurl = "mysql://u@db.example/agg"\n', "storage.url", 2, "not a PostgreSQL URL"),
    (
        '[storage]\nurl = "postgresql://u:hunter2@db.example/agg"\n',
        "storage.url",
        2,
        "holds a password",
    ),
    (
        '[storage]\nurl = "postgresql://u@db.example/agg?sslmode=require&password=hunter2"\n',
        "storage.url",
        2,
        "holds a password",
    ),
    ('[storage]\npassword_env = "PGPASS"\n', "storage.password_env", 2, "needs [storage] url"),
    # NUL: PostgreSQL's text cannot hold it (a poll's write failed), nor a program's argv.
    ('[[feeds]]\nurl = "https://e.org/f"\nname = "a\\u0000b"\n', "feeds[0].name", 3, "NUL"),
    (
        '[[watches]]\nname = "w"\nkeywords = ["x", "y\\u0000"]\nnotify = ["command"]\n',
        "watches[0].keywords",
        3,
        "NUL",
    ),
    (
        '[digest]\ntime = "07:00"\n\n[notify.command]\nargv = ["/bin/tr\\U00000000ue"]\n',
        "notify.command.argv",
        5,
        "NUL",
    ),
    (
        '[[topics]]\nname = "t"\nkeywords = ["k"]\n\n[[topics]]\nname = "\\u0000"\n',
        "topics[1].name",
        6,
        "NUL",
    ),
    (
        '[storage]\nurl = "postgresql://u@db.example/agg"\npassword_env = "not a name"\n',
        "storage.password_env",
        3,
        "not an environment variable",
    ),
]


@pytest.mark.parametrize(("text", "key", "line", "words"), BAD)
def test_bad_config_says_file_key_line_and_what(
    tmp_path: Path, text: str, key: str, line: int | None, words: str
) -> None:
    path = tmp_path / "feeds.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    error = info.value
    assert error.key == key
    assert error.line == line
    assert words in str(error)
    assert str(path) in str(error)


def test_a_postgresql_url_and_its_password_variable(tmp_path: Path) -> None:
    path = tmp_path / "feeds.toml"
    path.write_text(
        '[storage]\nurl = "postgresql://agg@db.example:5433/news"\npassword_env = "AGG_PW"\n',
        encoding="utf-8",
    )
    config = load_config(path)
    assert config.storage_url == "postgresql://agg@db.example:5433/news"
    assert config.storage_password_env == "AGG_PW"
    assert config.storage_path == tmp_path.resolve() / "aggregator.db"  # its lock file's place


def test_not_toml_gives_the_line(tmp_path: Path) -> None:
    path = tmp_path / "feeds.toml"
    path.write_text('[storage]\npath = "a.db"\nthis is not toml\n', encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.line == 3


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.toml")


def test_add_and_remove_keep_comments_and_order(tmp_path: Path) -> None:
    path = tmp_path / "feeds.toml"
    original = (ROOT / "feeds.toml").read_text(encoding="utf-8")
    path.write_text(original, encoding="utf-8")
    add_feed(path, "https://example.org/rss.xml", name="Example", interval="15m")
    text = path.read_text(encoding="utf-8")
    assert text.startswith(original.split("[[topics]]")[0][:200])
    for comment in (
        "# Real feeds look like this",
        "# the password is read from this variable",
        "# daily digest, in the timezone above",
    ):
        assert comment in text
    config = load_config(path)
    assert [f.name for f in config.feeds] == ["Seeds", "Example"]
    assert config.feeds[1].interval == timedelta(minutes=15)
    remove_feed(path, "Example")
    assert path.read_text(encoding="utf-8") == original


def test_edits_write_through_a_symlink_and_keep_the_files_permissions(tmp_path: Path) -> None:
    # A feeds.toml kept elsewhere (dotfiles, a repository) and linked in: `feeds add` put a
    # plain file in the link's place and left the real one as it was; a file kept private
    # (chmod 600) came back readable by all (the umask's 644).
    real = tmp_path / "dotfiles" / "feeds.toml"
    real.parent.mkdir()
    real.write_text("# mine\n", encoding="utf-8")
    real.chmod(0o600)
    link = tmp_path / "feeds.toml"
    link.symlink_to(real)
    add_feed(link, "https://example.org/rss.xml", name="Example")
    assert link.is_symlink() and link.resolve() == real
    assert 'url = "https://example.org/rss.xml"' in real.read_text(encoding="utf-8")
    assert real.stat().st_mode & 0o777 == 0o600
    remove_feed(link, "Example")
    assert link.is_symlink() and real.read_text(encoding="utf-8") == "# mine\n"
    assert real.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dotfiles", "feeds.toml"]


def test_add_refuses_duplicates_and_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "feeds.toml"
    path.write_text((ROOT / "feeds.toml").read_text(encoding="utf-8"), encoding="utf-8")
    before = path.read_bytes()
    with pytest.raises(ConfigError, match="already configured"):
        add_feed(path, "seeds")
    with pytest.raises(ConfigError, match="already configured"):
        add_feed(path, "https://x.org/f", name="Seeds")
    with pytest.raises(ConfigError, match="not a duration"):
        add_feed(path, "https://x.org/f", interval="often")
    with pytest.raises(ConfigError, match="did you mean 'Seeds'"):
        remove_feed(path, "Seed")
    assert path.read_bytes() == before


def test_add_to_a_file_without_feeds(tmp_path: Path) -> None:
    path = tmp_path / "feeds.toml"
    path.write_text('# just a comment\n[digest]\ntimezone = "UTC"\n', encoding="utf-8")
    add_feed(path, "https://example.org/a.xml")
    assert load_config(path).feeds[0].url == "https://example.org/a.xml"
    assert "# just a comment" in path.read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("30s", timedelta(seconds=30)),
        ("15m", timedelta(minutes=15)),
        ("2h", timedelta(hours=2)),
        ("1d", timedelta(days=1)),
        ("1h30m", timedelta(hours=1, minutes=30)),
    ],
)
def test_parse_duration(text: str, value: timedelta) -> None:
    assert parse_duration(text) == value


@pytest.mark.parametrize("text", ["", "0s", "5", "m5", "1w", "-3m", "1.5h", "soon"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


@given(
    st.timedeltas(min_value=timedelta(seconds=1), max_value=timedelta(days=400)).map(
        lambda d: timedelta(seconds=int(d.total_seconds())) or timedelta(seconds=1)
    )
)
def test_duration_round_trips(value: timedelta) -> None:
    assert parse_duration(format_duration(value)) == value


def test_a_feed_may_be_a_file_url(tmp_path: Path) -> None:
    """A `file:` URL names a local source (docs/configuration.md): absolute, with no host
    or localhost; the same file written as a path relative to feeds.toml is the same feed."""
    (tmp_path / "news").mkdir()
    for name in ("a.rss", "b.rss", "c.rss", "café.rss"):
        (tmp_path / "news" / name).write_text("<rss/>", encoding="utf-8")
    news = (tmp_path / "news").as_posix()
    path = tmp_path / "feeds.toml"
    path.write_text(
        f'[[feeds]]\nurl = "file://{news}/a.rss"\n'
        f'[[feeds]]\nurl = "file://localhost{news}/b.rss"\n'
        f'[[feeds]]\nurl = "file:{news}/c.rss"\n'
        f'[[feeds]]\nurl = "file://{news}/caf%C3%A9.rss"\n',
        encoding="utf-8",
    )
    feeds = load_config(path).feeds
    names = ["a.rss", "b.rss", "c.rss", "café.rss"]
    assert [f.path for f in feeds] == [tmp_path / "news" / n for n in names]
    assert [f.name for f in feeds] == names
    path.write_text(
        path.read_text(encoding="utf-8") + '[[feeds]]\nurl = "news/b.rss"\n', encoding="utf-8"
    )
    with pytest.raises(ConfigError, match="duplicate feed url 'news/b.rss'"):
        load_config(path)


def test_a_path_starting_with_a_tilde_is_in_the_home_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `path = "~/news.db"` made a folder named "~" beside feeds.toml (one `rm -rf ~` away
    # from the user's home), as did a digest folder or a local feed written so.
    home = tmp_path / "home"
    (home / "news").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    path = tmp_path / "conf" / "feeds.toml"
    path.parent.mkdir()
    path.write_text(
        '[storage]\npath = "~/news.db"\n[digest]\noutput = "~/digests"\n'
        '[[feeds]]\nurl = "~/news"\n[[feeds]]\nurl = "~user-less/x"\n',
        encoding="utf-8",
    )
    config = load_config(path)
    assert config.storage_path == home / "news.db"
    assert config.digest.output == home / "digests"
    assert [f.path for f in config.feeds] == [home / "news", path.parent / "~user-less" / "x"]
    assert config.feed(str(home / "news")) is config.feeds[0]
    with pytest.raises(ConfigError, match="duplicate feed url '../home/news'"):
        path.write_text('[[feeds]]\nurl = "~/news"\n[[feeds]]\nurl = "../home/news"\n')
        load_config(path)
