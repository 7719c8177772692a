"""[[watches]] and [notify.*] in feeds.toml: what loads, and each bad value's error (file,
key, line), with `poll` exiting 2 and writing nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from aggregator.config import load_config, require_alert_secrets
from aggregator.config.model import CommandConfig, NotifyEmailConfig, WatchConfig, WebhookConfig
from aggregator.exceptions import ConfigError
from tests.conftest import RunCli

SMTP = '[digest.email]\nfrom = "d@example.org"\nhost = "127.0.0.1"\n\n'
WEBHOOK = '[notify.webhook]\nurl = "http://127.0.0.1:9/hook"\n\n'
TOPICS = '[[topics]]\nname = "AI"\nkeywords = ["AI"]\n\n'
GOOD = """[[watches]]
name = "summit"
keywords = ["AI峰会", "AI Action Summit"]
all = ["巴黎"]
none = ["体育"]
topics = ["AI"]
feeds = ["seeds", "news"]
min_sources = 2
renotify_sources = 3
notify = ["webhook", "email", "command"]

[notify.webhook]
url = "https://hooks.example.org/aggregator"
secret_env = "HOOK_SECRET"
format = "slack"
timeout = "5s"

[notify.email]
to = ["You <you@example.org>", "other@example.org"]

[notify.command]
argv = ["/usr/local/bin/on-alert", "--quiet"]
timeout = "1m"
"""


def test_a_full_watch_and_its_channels_load(tmp_path: Path) -> None:
    path = tmp_path / "feeds.toml"
    path.write_text(TOPICS + SMTP + GOOD, encoding="utf-8")
    config = load_config(path)
    assert config.watches == (
        WatchConfig(
            name="summit",
            keywords=("AI峰会", "AI Action Summit"),
            all=("巴黎",),
            none=("体育",),
            topics=("AI",),
            feeds=("seeds", "news"),
            min_sources=2,
            renotify_sources=3,
            notify=("webhook", "email", "command"),
        ),
    )
    assert config.notify.webhook == WebhookConfig(
        url="https://hooks.example.org/aggregator",
        secret_env="HOOK_SECRET",
        format="slack",
        timeout=5.0,
    )
    assert config.notify.email == NotifyEmailConfig(
        to=("You <you@example.org>", "other@example.org")
    )
    assert config.notify.command == CommandConfig(
        argv=("/usr/local/bin/on-alert", "--quiet"), timeout=60.0
    )


def test_defaults_of_a_minimal_watch(tmp_path: Path) -> None:
    path = tmp_path / "feeds.toml"
    path.write_text(
        WEBHOOK + '[[watches]]\nname = "w"\nkeywords = ["x"]\nnotify = ["webhook"]\n',
        encoding="utf-8",
    )
    config = load_config(path)
    (watch,) = config.watches
    assert (watch.all, watch.none, watch.topics, watch.feeds) == ((), (), (), ())
    assert (watch.min_sources, watch.renotify_sources) == (1, 0)
    assert config.notify.webhook is not None
    assert (config.notify.webhook.format, config.notify.webhook.timeout) == ("json", 10.0)
    assert config.notify.email is None and config.notify.command is None


def watch(body: str) -> str:
    return WEBHOOK + f'[[watches]]\nname = "w"\n{body}'


BAD = [
    # (text, key, line, words)
    (
        watch('keywords = ["x"]\nnotify = ["webhook"]\nkeyword = ["y"]\n'),
        "watches[0].keyword",
        8,
        "did you mean 'keywords'",
    ),
    (
        WEBHOOK
        + '[[watches]]\nname = "w"\nkeywords = ["x"]\nnotify = ["webhook"]\n\n'
        + '[[watches]]\nname = "w"\nkeywords = ["y"]\nnotify = ["webhook"]\n',
        "watches[1].name",
        10,
        "duplicate watch name 'w' (watches[0] at line 5",
    ),
    (watch('keywords = []\nnotify = ["webhook"]\n'), "watches[0].keywords", 6, "at least one"),
    (watch('keywords = ["a", " "]\nnotify = ["webhook"]\n'), "watches[0].keywords", 6, "non-empty"),
    (watch('notify = ["webhook"]\n'), "watches[0].keywords", 4, "missing required key"),
    (
        watch('keywords = ["x"]\nall = [""]\nnotify = ["webhook"]\n'),
        "watches[0].all",
        7,
        "non-empty",
    ),
    (
        watch('keywords = ["x"]\nmin_sources = 0\nnotify = ["webhook"]\n'),
        "watches[0].min_sources",
        7,
        "at least 1, not 0",
    ),
    (
        watch('keywords = ["x"]\nrenotify_sources = -1\nnotify = ["webhook"]\n'),
        "watches[0].renotify_sources",
        7,
        "at least 0, not -1",
    ),
    (
        watch('keywords = ["x"]\nnotify = ["webhok"]\n'),
        "watches[0].notify",
        7,
        "unknown channel 'webhok'; did you mean 'webhook'?",
    ),
    (
        watch('keywords = ["x"]\nnotify = ["command"]\n'),
        "watches[0].notify",
        7,
        "channel 'command' has no [notify.command] table",
    ),
    (watch('keywords = ["x"]\nnotify = []\n'), "watches[0].notify", 7, "at least one channel"),
    (
        watch('keywords = ["x"]\ntopics = ["Al"]\nnotify = ["webhook"]\n'),
        "watches[0].topics",
        7,
        "no [[topics]] is named 'Al'",
    ),
    (
        '[notify.webhook]\nurl = "ftp://example.org/x"\n',
        "notify.webhook.url",
        2,
        "not an http(s) URL",
    ),
    (
        '[notify.webhook]\nurl = "https://example.org/x"\nformat = "teams"\n',
        "notify.webhook.format",
        3,
        "json, slack, discord, ntfy",
    ),
    (
        '[notify.webhook]\nurl = "https://example.org/x"\ntimeout = "soon"\n',
        "notify.webhook.timeout",
        3,
        "not a duration",
    ),
    (
        '[notify.webhook]\nurl = "https://example.org/x"\ntimeout = 0\n',
        "notify.webhook.timeout",
        3,
        "must be longer than zero",
    ),
    (
        '[notify.command]\nargv = ["/bin/true"]\ntimeout = "20m"\n',
        "notify.command.timeout",
        3,
        "at most 10 minutes",
    ),
    (
        '[notify.webhook]\nuri = "https://example.org/x"\n',
        "notify.webhook.uri",
        2,
        "did you mean 'url'",
    ),
    ("[notify.pager]\n", "notify.pager", None, "unknown key 'pager'; valid keys"),
    ("[notify.command]\nargv = []\n", "notify.command.argv", 2, "non-empty list"),
    ('[notify.command]\nargv = [""]\n', "notify.command.argv", 2, "non-empty list"),
    (
        '[notify.command]\nargv = ["/bin/true"]\ntimeout = "-1s"\n',
        "notify.command.timeout",
        3,
        "duration",
    ),
    (
        '[notify.email]\nto = ["you@example.org"]\n',
        "notify.email",
        1,
        "[digest.email] SMTP settings",
    ),
    (
        SMTP + '[notify.email]\nto = ["not an address"]\n',
        "notify.email.to",
        6,
        "not an email address",
    ),
    (
        SMTP + '[notify.email]\nto = ["a@b.org, c@d.org"]\n',
        "notify.email.to",
        6,
        "not an email address",
    ),
    (SMTP + "[notify.email]\nto = []\n", "notify.email.to", 6, "list of email addresses"),
    ('[[watchs]]\nname = "w"\n', "watchs", None, "did you mean 'watches'"),
]


@pytest.mark.parametrize(("text", "key", "line", "words"), BAD)
def test_bad_watch_or_channel_says_file_key_line_and_what(
    tmp_path: Path, text: str, key: str, line: int | None, words: str
) -> None:
    path = tmp_path / "feeds.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    error = info.value
    assert words in str(error)
    assert (error.key, error.line) == (key, line)
    assert str(path) in str(error)


SIGNED = '[notify.webhook]\nurl = "http://127.0.0.1:9/hook"\nsecret_env = "AGG_TEST_SECRET"\n\n'


def test_an_unset_secret_stops_only_what_delivers_or_tests_alerts(
    tmp_path: Path, run_cli: RunCli
) -> None:
    """`secret_env` names a variable only alert delivery reads: unset, `poll` and `run`
    exit 2 naming it, the file, key and line, writing nothing; `status`, `feeds list`,
    `watches list`, `digest` and `watches test` (which sends nothing) work."""
    (tmp_path / "news").mkdir()
    (tmp_path / "news" / "a.md").write_text("# AI峰会在巴黎开幕\n\n正文。\n", encoding="utf-8")
    (tmp_path / "feeds.toml").write_text(
        '[[feeds]]\nurl = "news"\n\n' + SIGNED + '[[watches]]\nname = "w"\nkeywords = ["AI峰会"]\n'
        'notify = ["webhook"]\n',
        encoding="utf-8",
    )
    unset = {"AGG_TEST_SECRET": ""}
    for command in (["poll"], ["run"]):
        refused = run_cli(*command, cwd=tmp_path, env=unset)
        assert refused.returncode == 2, (command, refused.stderr)
        assert "feeds.toml:6 [notify.webhook.secret_env]" in refused.stderr
        assert "AGG_TEST_SECRET is not set" in refused.stderr
        assert not (tmp_path / "aggregator.db").exists()
    for command in (["status"], ["feeds", "list"], ["watches", "list"], ["alerts"]):
        works = run_cli(*command, cwd=tmp_path, env=unset)
        assert works.returncode == 0, (command, works.stderr)
    digest = run_cli("digest", "--format", "json", "--output", "-", cwd=tmp_path, env=unset)
    assert digest.returncode == 0, digest.stderr
    polled = run_cli("poll", cwd=tmp_path, env={"AGG_TEST_SECRET": "k"})
    assert polled.returncode == 0, polled.stderr
    assert (tmp_path / "aggregator.db").exists()
    tested = run_cli("watches", "test", "w", cwd=tmp_path, env=unset)
    assert tested.returncode == 0, tested.stderr
    assert "AI峰会在巴黎开幕" in tested.stdout


def test_a_secret_no_watch_sends_with_is_not_needed(tmp_path: Path) -> None:
    path = tmp_path / "feeds.toml"
    path.write_text(
        '[notify.command]\nargv = ["true"]\n\n'
        + SIGNED
        + '[[watches]]\nname = "w"\nkeywords = ["x"]\nnotify = ["command"]\n',
        encoding="utf-8",
    )
    require_alert_secrets(load_config(path), env={})  # no watch sends on the webhook
    path.write_text(
        path.read_text(encoding="utf-8").replace('["command"]', '["command", "webhook"]'),
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as info:
        require_alert_secrets(load_config(path), env={})
    assert (info.value.key, info.value.line) == ("notify.webhook.secret_env", 6)
    require_alert_secrets(load_config(path), env={"AGG_TEST_SECRET": "k"})


def test_poll_with_a_bad_watch_exits_2_and_writes_no_database(
    tmp_path: Path, run_cli: RunCli
) -> None:
    (tmp_path / "news").mkdir()
    (tmp_path / "news" / "a.md").write_text("# AI峰会在巴黎开幕\n\n正文。\n", encoding="utf-8")
    (tmp_path / "feeds.toml").write_text(
        '[[feeds]]\nurl = "news"\n\n'
        + watch('keywords = ["AI峰会"]\nnotify = ["webhook"]\nmin_sources = 0\n'),
        encoding="utf-8",
    )
    result = run_cli("poll", cwd=tmp_path)
    assert result.returncode == 2
    assert "feeds.toml:11 [watches[0].min_sources]" in result.stderr
    assert not (tmp_path / "aggregator.db").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["feeds.toml", "news"]
