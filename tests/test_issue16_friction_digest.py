"""Issue 16, the digest's and status's friction: an empty digest is not mailed unless asked,
the window's end is shown inclusively, summaries start at the news rather than a byline,
the status table fits 80 columns and names its timezone, and a database on a read-only
mount says why it cannot be opened (defect 14)."""

from __future__ import annotations

import logging
import os
import subprocess
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from aggregator import cli as cli_module
from aggregator.config import load_config
from aggregator.core import Window, make_aggregator
from aggregator.digest.summary import summarize
from tests.conftest import FrozenClock, write_config
from tests.smtpserver import Server
from tests.test_email import DAY, configure
from tests.test_email import agg_for as agg_for  # the fixtures, by their names


def _invoke(workdir: Path, *args: str) -> Result:
    return CliRunner().invoke(cli_module.cli, ["--config", str(workdir / "feeds.toml"), *args])


# --- defect 14: a database on a read-only mount --------------------------------------------


@pytest.fixture
def read_only_folder(tmp_path: Path) -> Iterator[Path]:
    """A folder on a read-only file system (a tmpfs remounted ro), holding a database."""
    folder = tmp_path / "ro"
    folder.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a read-only file system needs root")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(folder)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr!r}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=False)


def test_a_database_on_a_read_only_mount_says_why(read_only_folder: Path, tmp_path: Path) -> None:
    db = read_only_folder / "news.db"
    feeds = '[[feeds]]\nname = "Seeds"\nurl = "seeds/"\n'
    write_config(tmp_path, feeds)
    config = tmp_path / "feeds.toml"
    config.write_text(config.read_text().replace('"test.db"', f'"{db}"'), encoding="utf-8")
    assert _invoke(tmp_path, "status").exit_code == 0  # creates the database
    assert db.exists()
    subprocess.run(["mount", "-o", "remount,ro", str(read_only_folder)], check=True)

    for args in (("status",), ("poll",)):
        result = _invoke(tmp_path, *args)
        assert result.exit_code != 0, result.output
        assert "unable to open database file" in result.output
        assert f"{read_only_folder} is on a read-only file system" in result.output

    config.write_text(config.read_text().replace("news.db", "new.db"), encoding="utf-8")
    result = _invoke(tmp_path, "status")
    assert f"{read_only_folder} is on a read-only file system" in result.output


def test_run_on_a_read_only_mount_exits_2_as_poll_does(
    read_only_folder: Path, tmp_path: Path
) -> None:
    """The daemon's lock file cannot be made beside the database: a path that cannot be
    used (exit 2, as `poll`'s database there), not a passing failure (exit 1)."""
    db = read_only_folder / "news.db"
    write_config(tmp_path, '[[feeds]]\nname = "Seeds"\nurl = "seeds/"\n')
    config = tmp_path / "feeds.toml"
    config.write_text(config.read_text().replace('"test.db"', f'"{db}"'), encoding="utf-8")
    assert _invoke(tmp_path, "status").exit_code == 0  # creates the database
    subprocess.run(["mount", "-o", "remount,ro", str(read_only_folder)], check=True)

    assert _invoke(tmp_path, "poll").exit_code == 2
    result = _invoke(tmp_path, "run")
    assert result.exit_code == 2, result.output
    assert f"cannot create lock file {db}.lock" in result.output
    assert "read-only file system" in result.output.lower()
    assert "Traceback" not in result.output


# --- the digest's window: an inclusive end, as its title names the days ---------------------


@pytest.fixture
def polled(workdir: Path) -> Path:
    """The shipped feeds.toml and seeds, polled into a real database."""
    result = _invoke(workdir, "poll")
    assert result.exit_code == 0, result.output
    return workdir


def test_the_window_ends_on_the_day_the_title_names(polled: Path) -> None:
    args = ("digest", "--since", "2025-02-10", "--until", "2026-12-05", "--output", "-")
    html = _invoke(polled, *args, "--format", "html").output
    assert '<span class="nowrap">2026-12-05</span></h1>' in html
    assert "2025-02-10 00:00 +08:00</time> – <time" in html
    assert '<time datetime="2026-12-05T23:59:59+08:00">2026-12-05 23:59 +08:00</time>' in html
    assert "2026-12-06 00:00" not in html
    text = _invoke(polled, *args, "--format", "text").output
    assert text.startswith("Digest 2025-02-10 – 2026-12-05\n")
    assert "Digest: 2025-02-10 00:00 +08:00 – 2026-12-05 23:59 +08:00\n" in text
    assert "2026-12-06 00:00" not in text

    # A day with nothing: "Nothing new" names the same last minute.
    args = ("digest", "--date", "2025-03-01", "--output", "-")
    html = _invoke(polled, *args, "--format", "html").output
    assert "Nothing new between 2025-03-01 00:00 +08:00 and 2025-03-01 23:59 +08:00." in html
    text = _invoke(polled, *args, "--format", "text").output
    assert "Nothing new between 2025-03-01 00:00 +08:00 and 2025-03-01 23:59 +08:00." in text


# --- summaries start at the news, not at a byline --------------------------------------------


def test_the_summit_story_starts_at_the_news_not_the_byline(polled: Path) -> None:
    args = ("digest", "--date", "2025-02-10", "--output", "-")
    text = _invoke(polled, *args, "--format", "text").output
    html = _invoke(polled, *args, "--format", "html").output
    assert "   今日，为期两天的法国巴黎AI行动峰会" in text
    assert '<p class="summary" dir="auto" lang="zh-CN">今日，为期两天的法国巴黎AI行动峰会' in html
    for page in (text, html):
        assert "zhidxcom" not in page
        assert "程茜编辑" not in page


@pytest.mark.parametrize(
    ("text", "summary"),
    [
        (
            "智东西（公众号：zhidxcom）编译 | 程茜编辑 | 云鹏智东西2月10日报道，今日，峰会开幕。",
            "今日，峰会开幕。",
        ),
        ("新华社巴黎2月10日电（记者 张三）当地时间10日，峰会开幕。", "当地时间10日，峰会开幕。"),
        ("IT之家2月10日消息，峰会开幕。", "峰会开幕。"),
        ("来源：新华社。\n\n峰会开幕。与会者众多。", "峰会开幕。与会者众多。"),
        ("责任编辑：张三。\n\n峰会开幕。", "峰会开幕。"),
        ("Reporting by Jane Doe.\n\nThe summit opened.", "The summit opened."),
    ],
)
def test_bylines_and_credit_lines_before_the_news_are_dropped(text: str, summary: str) -> None:
    assert summarize(text) == summary


@pytest.mark.parametrize(
    "text",
    [
        "2月10日，人工智能（AI）行动峰会在法国巴黎开幕。",
        "路透社2月10日报道称，美国和英国没有签署声明。",
        "他在2月10日的报道中写道，峰会开幕了。",
        "这是 A | B 测试的编辑器，今天发布。",
        "The summit opened in Paris on Monday. Leaders of 100 countries came.",
        "By the end of the day, the summit had a declaration. Two countries did not sign.",
        "Subscribers to the service got the news first. It was good.",
        "Subscribers to the service got the news first.\n\nIt was good.",
        "峰会开幕。",  # nothing after a byline-like opening: kept whole
    ],
)
def test_an_ordinary_first_sentence_is_kept(text: str) -> None:
    assert summarize(text) == text.replace("\n\n", " ")


# --- the status table: its timezone, 80 columns, as fast as the JSON ------------------------

LONG_PATH = "/".join(f"section-{n}" for n in range(12))


def _status_config(folder: Path, feeds: int = 0) -> Path:
    """Three feeds to show (a local folder, a dead server with a long URL, a long CJK name),
    and `feeds` more that were never polled."""
    (folder / "news").mkdir()
    (folder / "news" / "one.md").write_text("# 峰会开幕\n\n峰会今天开幕。\n", encoding="utf-8")
    tables = [
        '[[feeds]]\nname = "本地新闻"\nurl = "news/"',
        f'[[feeds]]\nname = "Dead"\nurl = "http://127.0.0.1:9/{LONG_PATH}/feed.xml"',
        '[[feeds]]\nname = "人工智能行动峰会的每日新闻与评论汇总频道"\nurl = "news/one.md"',
    ]
    tables += [
        f'[[feeds]]\nname = "farm {n}"\nurl = "http://127.0.0.1:9/feed/{n}.xml"'
        for n in range(feeds)
    ]
    extra = "\n[poll]\nfailure_threshold = 1\ntimeout = 2\n"
    return write_config(folder, "\n\n".join(tables), extra)


def test_status_table_names_its_timezone_and_fits_80_columns(tmp_path: Path) -> None:
    from aggregator.digest.summary import display_width

    _status_config(tmp_path)
    assert _invoke(tmp_path, "poll").exit_code == 0
    result = _invoke(tmp_path, "status")
    assert result.exit_code == 1  # Dead is failing
    lines = result.output.splitlines()
    assert lines[0].startswith("Times in Asia/Shanghai (UTC+08:00)")
    assert all(display_width(line) <= 80 for line in lines), "\n".join(lines)
    # The long URL keeps its host and its file name; the error is shown whole.
    dead = next(i for i, line in enumerate(lines) if line.startswith("Dead "))
    url = lines[dead + 1].strip()
    assert url.startswith("http://127.0.0.1:9/section-0/") and url.endswith("/feed.xml")
    assert "…" in url
    assert "failing:" in lines[dead + 2]
    assert "人工智能行动峰会的每…   " in result.output  # a name cut to its column
    assert "  news/  ok" in result.output


def test_status_table_marks_times_on_the_other_side_of_a_clock_change() -> None:
    """The header gives now's UTC offset; a time shown in another (before the spring change,
    or after the autumn one) is marked, with the offset it is in: 01:30 on the night of the
    autumn change happens twice, and could be read in the wrong one."""
    from zoneinfo import ZoneInfo

    from aggregator.cli.status import _status_lines
    from aggregator.types import FeedStatus

    paris = ZoneInfo("Europe/Paris")
    now = datetime(2025, 3, 30, 12, 0, tzinfo=paris)  # the change was at 02:00 this night
    feed = FeedStatus(
        "Wire", "https://wire.example/rss", None,
        last_success=datetime(2025, 3, 29, 20, 0, tzinfo=paris),  # CET, UTC+01:00
        last_attempt=datetime(2025, 3, 30, 11, 0, tzinfo=paris),
        last_error=None, consecutive_failures=0,
        next_poll=datetime(2025, 3, 30, 20, 0, tzinfo=paris),
        disabled=False, disabled_reason=None, entry_count=3, failing=False,
    )  # fmt: skip
    lines = _status_lines([feed], now=now, width=80, color=False)
    assert lines[0].startswith("Times in Europe/Paris (UTC+02:00)")
    row = next(line for line in lines if line.startswith("Wire "))
    assert "03-29 20:00*  03-30 11:00   03-30 20:00 " in row
    assert lines[-1] == "* in UTC+01:00: a clock change lies between then and now."
    assert all(len(line) <= 80 for line in lines)
    after = _status_lines(
        [feed._replace(last_success=feed.last_attempt)], now=now, width=80, color=False
    )
    assert not any("*" in line for line in after)  # all in now's offset: no mark, no note


def test_status_table_is_as_fast_as_the_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time

    import aggregator.config

    path = _status_config(tmp_path, feeds=600)
    config = aggregator.config.load_config(path)
    # Loading feeds.toml is the same for both formats: time what differs.
    monkeypatch.setattr(aggregator.config, "load_config", lambda *a, **k: config)
    assert _invoke(tmp_path, "status", "--format", "json").exit_code == 0  # creates the db

    def seconds(fmt: str) -> float:
        best = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            result = _invoke(tmp_path, "status", "--format", fmt)
            best = min(best, time.perf_counter() - start)
            assert result.exit_code == 0, result.output
        return best

    table, as_json = seconds("table"), seconds("json")
    assert table < 2 * as_json + 0.05, (table, as_json)


# --- an empty digest is not mailed unless [digest.email] send_empty = true ------------------

EMPTY_DAY = "2025-03-01"  # the seeds hold nothing that day


def test_an_empty_digest_is_not_mailed_unless_send_empty(
    workdir: Path, smtp: Server, caplog: pytest.LogCaptureFixture
) -> None:
    configure(workdir, smtp.port)
    assert _invoke(workdir, "poll").exit_code == 0
    with caplog.at_level(logging.INFO, logger="aggregator"):
        empty = _invoke(workdir, "digest", "--date", EMPTY_DAY, "--email")
    assert empty.exit_code == 0, empty.output
    assert (workdir / "digests" / f"{EMPTY_DAY}.html").exists()  # written, not mailed
    assert smtp.inbox.received == []
    assert f"digest {EMPTY_DAY} has no story: not emailed" in caplog.text
    assert "send_empty = true" in caplog.text
    # A day with stories is mailed as before.
    assert _invoke(workdir, "digest", "--date", DAY, "--email").exit_code == 0
    assert len(smtp.inbox.received) == 2

    config = workdir / "feeds.toml"
    config.write_text(config.read_text(encoding="utf-8") + "send_empty = true\n", "utf-8")
    sent = _invoke(workdir, "digest", "--date", EMPTY_DAY, "--email")
    assert sent.exit_code == 0, sent.output
    assert len(smtp.inbox.received) == 4
    assert smtp.inbox.messages()[-1]["Subject"] == f"Digest {EMPTY_DAY}: nothing new"


def test_digest_email_force_mails_an_empty_digest_asked_for(
    workdir: Path, smtp: Server, caplog: pytest.LogCaptureFixture
) -> None:
    configure(workdir, smtp.port)  # send_empty is false
    assert _invoke(workdir, "poll").exit_code == 0
    with caplog.at_level(logging.INFO, logger="aggregator"):
        skipped = _invoke(workdir, "digest", "--date", EMPTY_DAY, "--email")
    assert skipped.exit_code == 0, skipped.output
    assert smtp.inbox.received == []
    assert "digest --email --force sends it" in caplog.text

    forced = _invoke(workdir, "digest", "--date", EMPTY_DAY, "--email", "--force")
    assert forced.exit_code == 0, forced.output
    assert "emailed to reader@example.org" in forced.output
    assert "emailed to second@example.org" in forced.output
    assert len(smtp.inbox.received) == 2
    assert smtp.inbox.messages()[-1]["Subject"] == f"Digest {EMPTY_DAY}: nothing new"

    # Once sent, a plain --email does not send it again; the help says what --force does.
    assert _invoke(workdir, "digest", "--date", EMPTY_DAY, "--email").exit_code == 0
    assert len(smtp.inbox.received) == 2
    help_text = " ".join(_invoke(workdir, "digest", "--help").output.split())
    assert "send again to those who had it, and send it even with no story" in help_text
    assert "A digest with no story is mailed only with --force or [digest.email]" in help_text


def test_a_forced_empty_digest_that_failed_is_retried(
    smtp: Server, agg_for: Any, clock: FrozenClock
) -> None:
    agg, _ = agg_for(smtp.port)  # send_empty is false
    smtp.inbox.replies = ["451 4.3.0 try again later"] * 2
    empty = Window(date.fromisoformat(EMPTY_DAY), date.fromisoformat(EMPTY_DAY))
    failed = agg.send_digest_email(empty, force=True, send_empty=True, retry_now=False)
    assert [r.status for r in failed] == ["failed", "failed"]  # as `digest --email --force`
    clock.advance(hours=1)
    retried = agg.retry_emails()
    assert [r.status for r in retried] == ["sent", "sent"]
    assert smtp.inbox.messages()[-1]["Subject"] == f"Digest {EMPTY_DAY}: nothing new"
    assert all(d.status == "sent" for d in agg.email_status())


def test_send_empty_must_be_true_or_false(workdir: Path) -> None:
    configure(workdir, 2525, 'send_empty = "yes"')
    result = _invoke(workdir, "status")
    assert result.exit_code == 2
    assert "digest.email.send_empty" in result.output
    assert "must be true or false, not 'yes'" in result.output


def test_the_daemons_daily_digest_of_an_empty_day_is_mailed_only_with_send_empty(
    smtp: Server, agg_for: Any, workdir: Path, clock: FrozenClock
) -> None:
    """The daemon's daily publish (`publish_daily`, what the scheduler runs) follows
    send_empty as `digest --email` does: an empty day's files are written, and mailed only
    when [digest.email] send_empty = true."""
    empty = Window(date.fromisoformat(EMPTY_DAY), date.fromisoformat(EMPTY_DAY))
    agg, _ = agg_for(smtp.port)
    published = agg.publish_daily(empty)
    assert published.digest.entry_count == 0
    assert published.paths and all(path.exists() for path in published.paths)
    assert published.emails == () and smtp.inbox.received == []

    config = workdir / "feeds.toml"  # [digest.email] is its last table
    config.write_text(config.read_text(encoding="utf-8") + "send_empty = true\n", "utf-8")
    with make_aggregator(load_config(config), clock=clock) as agg:
        published = agg.publish_daily(empty)
    assert [e.status for e in published.emails] == ["sent", "sent"]  # both recipients
    assert len(smtp.inbox.received) == 2
    assert smtp.inbox.messages()[-1]["Subject"] == f"Digest {EMPTY_DAY}: nothing new"
