"""feeds.toml's [poll] table and feed tags: values, defaults, errors that say where."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from aggregator.config import PollConfig, load_config
from aggregator.exceptions import ConfigError


def _load(tmp_path: Path, text: str) -> PollConfig:
    path = tmp_path / "feeds.toml"
    path.write_text(text, encoding="utf-8")
    return load_config(path).poll


#: A PostgreSQL store (only named: loading the config does not connect).
PG = '[storage]\nurl = "postgresql://news@db.example/news"\n\n'


def test_poll_defaults(tmp_path: Path) -> None:
    poll = _load(tmp_path, "")
    assert poll == PollConfig()
    assert (poll.concurrency, poll.per_host, poll.max_body) == (20, 2, 10 * 1024 * 1024)
    assert poll.min_interval == timedelta(minutes=5) and poll.max_interval == timedelta(hours=24)
    assert poll.lease == timedelta(minutes=5)


def test_poll_values(tmp_path: Path) -> None:
    poll = _load(
        tmp_path,
        '[poll]\nconcurrency = 50\nper_host = 4\ntimeout = "5s"\ndeadline = 0.5\n'
        'max_body = "2MiB"\nfailure_threshold = 5\nallow_private_redirects = true\n'
        'min_interval = "1m"\nmax_interval = "2h"\nmax_backoff = "6h"\nlease = "90s"\n',
    )
    assert poll == PollConfig(
        concurrency=50,
        per_host=4,
        timeout=5.0,
        deadline=0.5,
        max_body=2 * 1024 * 1024,
        failure_threshold=5,
        allow_private_redirects=True,
        min_interval=timedelta(minutes=1),
        max_interval=timedelta(hours=2),
        max_backoff=timedelta(hours=6),
        lease=timedelta(seconds=90),
    )
    assert _load(tmp_path, "[poll]\nmax_body = 1000\n").max_body == 1000
    assert _load(tmp_path, '[poll]\nmax_body = "10 KB"\n').max_body == 10_000


def test_lease_is_checked_where_it_is_used_and_follows_a_long_deadline(tmp_path: Path) -> None:
    """SQLite ignores `lease`: a long `deadline` there is no error (it was, with the default
    lease). Unset, the lease outlasts a long deadline by a minute."""
    assert _load(tmp_path, '[poll]\ndeadline = 600\nlease = "1m"\n').deadline == 600
    assert _load(tmp_path, "[poll]\ndeadline = 600\n").lease == timedelta(seconds=660)
    assert _load(tmp_path, PG + "[poll]\ndeadline = 600\n").lease == timedelta(seconds=660)
    assert _load(tmp_path, PG + "[poll]\ndeadline = 60\n").lease == timedelta(minutes=5)


@pytest.mark.parametrize(
    ("text", "message", "line"),
    [
        ("[poll]\nconcurency = 5\n", "did you mean 'concurrency'?", 2),
        ("[poll]\nper_host = 0\n", "at least 1", 2),
        ("[poll]\n\nconcurrency = true\n", "whole number", 3),
        ('[poll]\ntimeout = "soon"\n', "is not a duration", 2),
        ("[poll]\ndeadline = -1\n", "-1 seconds: a duration must be longer than zero", 2),
        # Said "0 is not a duration like '30s' or a number of seconds", which 0 is.
        ('[[feeds]]\nurl = "x"\ninterval = 0\n', "0 seconds: a duration must be longer", 3),
        ("[poll]\ntimeout = nan\n", "is not a duration", 2),
        ('[poll]\nmax_body = "big"\n', "size like '10MiB'", 2),
        ('[poll]\nallow_private_redirects = "yes"\n', "true or false", 2),
        ('[poll]\nmin_interval = "2d"\n', "max_interval", 2),
        (PG + '[poll]\ndeadline = "1m"\nlease = "1m"\n', "longer than deadline", 6),
        ('poll = "fast"\n', "must be a table", 1),
        ('[[feeds]]\nurl = "x"\ntags = [1]\n', "list of non-empty strings", 3),
    ],
)
def test_poll_errors_say_where(tmp_path: Path, text: str, message: str, line: int | None) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        _load(tmp_path, text)
    assert info.value.line == line


def test_feed_tags(tmp_path: Path) -> None:
    path = tmp_path / "feeds.toml"
    path.write_text(
        '[[feeds]]\nurl = "https://a.example/f"\ntags = ["News", " Tech "]\n'
        '[[feeds]]\nurl = "https://b.example/f"\ntags = "Solo"\n'
        '[[feeds]]\nurl = "https://c.example/f"\n',
        encoding="utf-8",
    )
    assert [f.tags for f in load_config(path).feeds] == [("News", "Tech"), ("Solo",), ()]
