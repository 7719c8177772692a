"""Emailing digests through a real SMTP server (aiosmtpd on 127.0.0.1), read back with `email`."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.utils import parsedate_to_datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from aggregator.config import EmailConfig, load_config
from aggregator.core import Aggregator, Window, make_aggregator
from aggregator.digest.email import (
    MAX_ATTEMPTS,
    RETRY_FIRST,
    SendAttempt,
    build_message,
    next_retry,
    sender_address,
    subject_for,
)
from aggregator.exceptions import SendError
from aggregator.types import Article, Digest, Story, TopicGroup
from tests.builders import stored_entry
from tests.conftest import FrozenClock, RunCli
from tests.smtpserver import Server, free_port

DAY = "2025-02-10"
SEED_HEADLINES = (
    "刚刚，巴黎AI峰会开幕，百国探讨AI未来，DeepSeek成焦点",
    "人工智能峰会——欧洲还有竞争力吗？",
)
SEED_LINK = "https://new.qq.com/rain/a/20250210A08ACT00"


def email_toml(port: int, extra: str = "") -> str:
    return f"""
[digest.email]
to = ["读者 <reader@example.org>", "second@example.org"]
from = "每日摘要 <digest@example.org>"
host = "127.0.0.1"
port = {port}
security = "none"
{extra}
"""


def configure(workdir: Path, port: int, extra: str = "") -> None:
    path = workdir / "feeds.toml"
    path.write_text(
        path.read_text(encoding="utf-8") + email_toml(port, extra),
        encoding="utf-8",
    )


class Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.hrefs += [v for k, v in attrs if k == "href" and v]


def hrefs(html: str) -> list[str]:
    parser = Links()
    parser.feed(html)
    return parser.hrefs


# --- end to end -----------------------------------------------------------------------


def test_cli_emails_the_seeds_digest_once(workdir: Path, run_cli: RunCli, smtp: Server) -> None:
    configure(workdir, smtp.port)
    assert run_cli("poll", cwd=workdir).returncode == 0
    sent = run_cli("digest", "--date", DAY, "--email", cwd=workdir)
    assert sent.returncode == 0, sent.stderr
    assert "emailed to reader@example.org" in sent.stderr
    assert (workdir / "digests" / f"{DAY}.html").exists()  # the files as well

    assert [rcpt for rcpt, _ in smtp.inbox.received] == [
        ["reader@example.org"],
        ["second@example.org"],
    ]
    raw = smtp.inbox.received[0][1]
    head = raw.split(b"\r\n\r\n", 1)[0]
    head.decode("ascii")  # every header is 7-bit: the Chinese is RFC 2047-encoded
    subject_line = head.split(b"\r\nSubject: ", 1)[1].split(b"\r\n", 1)[0]
    assert subject_line.startswith(b"Digest 2025-02-10: =?utf-8?")

    msg = smtp.inbox.messages()[0]
    # The four seeds are one story (the summit), headed by its earliest article.
    assert msg["Subject"] == f"Digest {DAY}: {SEED_HEADLINES[0]}"
    assert msg["From"].addresses[0].display_name == "每日摘要"
    assert msg["From"].addresses[0].addr_spec == "digest@example.org"
    assert msg["To"].addresses[0].display_name == "读者"
    assert msg["List-Id"] == "Aggregator digest <digest.example.org>"
    assert msg["Message-ID"].endswith("@example.org>")
    assert parsedate_to_datetime(msg["Date"]).utcoffset() == timedelta(hours=8)
    assert msg.get_content_type() == "multipart/alternative"
    parts = list(msg.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    assert all(p.get_content_charset() == "utf-8" for p in parts)
    text, html = (p.get_content() for p in parts)
    for headline in SEED_HEADLINES:
        assert headline in text and headline in html
    assert f"<{SEED_LINK}>" in text
    assert SEED_LINK in hrefs(html)
    assert all(h.startswith(("https://", "http://", "#")) for h in hrefs(html))
    assert 'style="' in html and "<style" in html  # inlined, media queries kept
    assert "prefers-color-scheme: dark" in html
    assert smtp.inbox.messages()[1]["Message-ID"] != msg["Message-ID"]

    again = run_cli("digest", "--date", DAY, "--email", cwd=workdir)
    assert again.returncode == 0, again.stderr
    assert "already emailed to reader@example.org" in again.stderr
    assert len(smtp.inbox.received) == 2  # the second run sent nothing

    forced = run_cli("digest", "--date", DAY, "--email", "--force", cwd=workdir)
    assert forced.returncode == 0, forced.stderr
    assert len(smtp.inbox.received) == 4

    status = run_cli("status", cwd=workdir)
    assert status.returncode == 0, status.stderr
    assert f"email: digest {DAY} sent to 2 of 2 recipients" in status.stdout
    assert "reader@example.org: sent " in status.stdout


def test_cli_failed_send_exits_1_and_writes_files(workdir: Path, run_cli: RunCli) -> None:
    configure(workdir, free_port())  # nobody listens there
    assert run_cli("poll", cwd=workdir).returncode == 0
    result = run_cli("digest", "--date", DAY, "--email", cwd=workdir, timeout=120)
    assert result.returncode == 1
    assert "not emailed to reader@example.org (127.0.0.1:" in result.stderr
    assert (workdir / "digests" / f"{DAY}.txt").exists()
    status = run_cli("status", cwd=workdir)
    assert f"email: digest {DAY} sent to 0 of 2 recipients" in status.stdout
    assert f"reader@example.org: digest {DAY} FAILED after 1 attempt" in status.stdout
    assert "next retry" in status.stdout


def test_cli_email_needs_configuration(workdir: Path, run_cli: RunCli) -> None:
    result = run_cli("digest", "--email", cwd=workdir)
    assert result.returncode == 2 and "[digest.email]" in result.stderr
    result = run_cli("digest", "--force", cwd=workdir)
    assert result.returncode == 2 and "--force only applies with --email" in result.stderr


# --- in process: retries, records, login ------------------------------------------------


@pytest.fixture
def agg_for(workdir: Path, clock: FrozenClock) -> Iterator[Any]:
    made: list[Aggregator] = []

    def make(port: int, extra: str = "") -> tuple[Aggregator, list[float]]:
        configure(workdir, port, extra)
        sleeps: list[float] = []
        agg = make_aggregator(load_config(workdir / "feeds.toml"), clock=clock, sleep=sleeps.append)
        made.append(agg)
        agg.poll()
        return agg, sleeps

    yield make
    for agg in made:
        agg.close()


WINDOW = Window(datetime(2025, 2, 10).date(), datetime(2025, 2, 10).date())


def test_transient_failures_are_retried_at_once(smtp: Server, agg_for: Any) -> None:
    agg, sleeps = agg_for(smtp.port)
    smtp.inbox.replies = ["451 4.3.0 try again later", "421 4.3.2 busy"]
    results = agg.send_digest_email(WINDOW, recipients=["Reader <READER@example.org>"])
    assert [r.status for r in results] == ["sent"]
    assert sleeps == [2.0, 10.0]
    (delivery,) = agg.email_status()
    assert delivery.status == "sent" and delivery.attempts == 3 and delivery.error is None


def test_failures_are_recorded_and_retried_later(
    smtp: Server, agg_for: Any, clock: FrozenClock
) -> None:
    agg, sleeps = agg_for(smtp.port)
    smtp.inbox.replies = ["451 4.3.0 try again later"] * 6
    results = agg.send_digest_email(WINDOW)
    assert [r.status for r in results] == ["failed", "failed"]
    assert "451" in (results[0].error or "")
    failed = {d.recipient: d for d in agg.email_status()}
    assert failed["reader@example.org"].status == "failed"
    assert failed["reader@example.org"].attempts == 3
    assert failed["reader@example.org"].next_attempt == clock() + RETRY_FIRST * 4
    assert agg.retry_emails() == []  # not due yet
    clock.advance(minutes=21)
    retried = agg.retry_emails()
    assert [(r.recipient, r.status) for r in retried] == [
        ("reader@example.org", "sent"),
        ("second@example.org", "sent"),
    ]
    assert len(smtp.inbox.received) == 2
    assert all(d.status == "sent" and d.attempts == 4 for d in agg.email_status())
    assert agg.send_digest_email(WINDOW)[0].status == "already sent"


@pytest.mark.parametrize("quit_reply", ["421 4.3.2 shutting down", "500 5.5.1 what?", "drop"])
def test_an_error_at_quit_after_the_message_was_taken_is_a_success(
    smtp: Server, agg_for: Any, quit_reply: str
) -> None:
    """DATA's 250 means the server has the message: what QUIT answers cannot unsend it, and
    retrying would mail the digest twice."""
    agg, sleeps = agg_for(smtp.port)
    smtp.inbox.quit_reply = quit_reply
    results = agg.send_digest_email(WINDOW, recipients=["second@example.org"])
    assert [(r.status, r.error) for r in results] == [("sent", None)]
    assert sleeps == [] and len(smtp.inbox.received) == 1
    (delivery,) = agg.email_status()
    assert delivery.status == "sent" and delivery.attempts == 1
    assert agg.retry_emails() == []


def test_a_refusal_is_final(smtp: Server, agg_for: Any) -> None:
    agg, sleeps = agg_for(smtp.port)
    smtp.inbox.replies = ["550 5.1.1 no such user"]
    results = agg.send_digest_email(WINDOW)
    assert [r.status for r in results] == ["failed", "sent"]
    assert sleeps == []
    failed = next(d for d in agg.email_status() if d.status == "failed")
    assert failed.recipient == "reader@example.org" and failed.next_attempt is None
    assert "550" in (failed.error or "")


def test_login_uses_the_password_from_the_environment(
    smtp: Server, agg_for: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    extra = 'username = "digest@example.org"\npassword_env = "TEST_SMTP_PASSWORD"'
    agg, _ = agg_for(smtp.port, extra)
    monkeypatch.delenv("TEST_SMTP_PASSWORD", raising=False)
    missing = agg.send_digest_email(WINDOW, recipients=["second@example.org"])
    assert missing[0].status == "failed" and "no password" in (missing[0].error or "")
    monkeypatch.setenv("TEST_SMTP_PASSWORD", "wrong")
    wrong = agg.send_digest_email(WINDOW, recipients=["second@example.org"])
    assert wrong[0].status == "failed" and "535" in (wrong[0].error or "")
    monkeypatch.setenv("TEST_SMTP_PASSWORD", "s3cret")
    right = agg.send_digest_email(WINDOW, recipients=["second@example.org"])
    assert right[0].status == "sent"
    assert smtp.inbox.logins[-1] == ("digest@example.org", "s3cret")


def test_publish_daily_writes_files_then_emails(
    smtp: Server, agg_for: Any, clock: FrozenClock
) -> None:
    clock.current = datetime(2025, 2, 11, 0, 30, tzinfo=UTC)  # 08:30 on the 11th in Shanghai
    agg, _ = agg_for(smtp.port)
    clock.advance(seconds=1)  # a daily digest shows what was stored before it read
    published = agg.publish_daily()
    assert published.window.name == DAY
    assert {p.name for p in published.paths} >= {f"{DAY}.html", "index.html", "feed.xml"}
    assert [e.status for e in published.emails] == ["sent", "sent"]
    assert agg.publish_daily().emails[0].status == "already sent"


def test_publish_daily_writes_files_when_the_server_is_down(
    agg_for: Any, clock: FrozenClock
) -> None:
    agg, _ = agg_for(free_port())
    clock.advance(seconds=1)
    published = agg.publish_daily(WINDOW)
    assert all(p.exists() for p in published.paths)
    assert {e.status for e in published.emails} == {"failed"}
    assert {d.status for d in agg.email_status()} == {"failed"}


# --- the message itself (pure) ------------------------------------------------------------

T0 = datetime(2025, 2, 10, 13, 0, tzinfo=UTC)


def hostile_digest(title: str) -> Digest:
    entry = stored_entry(
        1,
        title,
        published=T0,
        feed_url="https://f.example/feed",
        feed_name="Feed\r\nBcc: evil@example.org",
        guid="g",
        link="https://f.example/1",
        language="en",
    )
    article = Article(title, entry.link, T0, "en", "", (entry,))
    return Digest(
        since=T0 - timedelta(hours=13),
        until=T0 + timedelta(hours=11),
        generated_at=T0,
        timezone="UTC",
        topics=(TopicGroup("News", (Story(title, (article,)),)),),
    )


def test_no_header_injection_through_a_feed_title() -> None:
    digest = hostile_digest("Breaking\r\nBcc: evil@example.org\r\n\r\n<b>body</b>")
    config = EmailConfig(to=("r@example.org",), sender="d@example.org")
    out = build_message(
        digest,
        text="t",
        html="<p>h</p>",
        sender=sender_address(config),
        recipient="r@example.org",
        now=T0,
    )
    raw = out.message.as_bytes(policy=policy.SMTP)
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert b"\r\nBcc:" not in head and b"evil" not in head.split(b"Subject:")[0]
    parsed = message_from_bytes(raw, policy=policy.default)
    assert parsed["Bcc"] is None
    assert parsed["Subject"] == "Digest 2025-02-10: Breaking Bcc: evil@example.org <b>body</b>"


def test_subject_clips_long_headlines_and_says_nothing_new() -> None:
    long = "巴黎人工智能行动峰会" * 10
    subject = subject_for(hostile_digest(long))
    assert subject.startswith("Digest 2025-02-10: 巴黎人工智能") and subject.endswith("…")
    assert len(subject) < 60
    empty = replace(hostile_digest("x"), topics=())
    assert subject_for(empty) == "Digest 2025-02-10: nothing new"


def test_bad_addresses_are_send_errors() -> None:
    with pytest.raises(SendError, match="from"):
        sender_address(EmailConfig(to=("r@example.org",)))
    assert sender_address(EmailConfig(username="me@example.org")).addr_spec == "me@example.org"
    digest = hostile_digest("x")
    sender = sender_address(EmailConfig(sender="d@example.org"))
    with pytest.raises(SendError, match="to"):
        build_message(digest, text="", html="", sender=sender, recipient="nobody", now=T0)


def test_next_retry_backs_off_and_gives_up() -> None:
    failed = SendAttempt(False, 3, "451", permanent=False)
    assert next_retry(failed, 1, T0) == T0 + RETRY_FIRST
    assert next_retry(failed, 3, T0) == T0 + RETRY_FIRST * 4
    assert next_retry(failed, 20, T0) == T0 + timedelta(hours=6)
    assert next_retry(failed, MAX_ATTEMPTS, T0) is None
    assert next_retry(failed._replace(permanent=True), 1, T0) is None
    assert next_retry(SendAttempt(True, 1, None, False), 1, T0) is None
