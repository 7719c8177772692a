"""The email channel through a real SMTP server (aiosmtpd on 127.0.0.1, conftest's `smtp`)."""

from __future__ import annotations

from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path

import pytest

from aggregator.config import Config, DigestConfig, EmailConfig, NotifyConfig, NotifyEmailConfig
from aggregator.exceptions import AlertError
from aggregator.notify import deliver
from tests.alerts import HEADLINE, payload
from tests.smtpserver import Server, free_port

NOW = datetime(2025, 2, 10, 9, 30, tzinfo=UTC)
TO = ("读者 <reader@example.org>", "second@example.org")


def config_for(port: int | None, to: tuple[str, ...] = TO, **smtp: object) -> Config:
    email = None
    if port is not None:
        settings: dict[str, object] = {
            "sender": "警报 <alerts@example.org>",
            "host": "127.0.0.1",
            "port": port,
            **smtp,
        }
        email = EmailConfig(**settings)  # type: ignore[arg-type]
    return Config(
        path=Path("feeds.toml"),
        storage_path=Path("aggregator.db"),
        digest=DigestConfig(email=email),
        notify=NotifyConfig(email=NotifyEmailConfig(to)),
    )


class _Hrefs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.hrefs += [v or "" for k, v in attrs if tag == "a" and k == "href"]


def test_one_multipart_message_reaches_each_recipient(smtp: Server) -> None:
    alert = payload()
    receipt = deliver("email", alert, config_for(smtp.port), env={}, clock=lambda: NOW)
    assert len(smtp.inbox.received) == 1  # one transaction: a retry never mails anyone twice
    assert smtp.inbox.received[0][0] == ["reader@example.org", "second@example.org"]
    [msg] = smtp.inbox.messages()
    assert receipt == msg["Message-ID"] and receipt.endswith("@example.org>")
    assert msg["Subject"] == f"[summit] {HEADLINE} — 5 sources"
    assert msg["From"].addresses[0].addr_spec == "alerts@example.org"
    assert [a.addr_spec for a in msg["To"].addresses] == [
        "reader@example.org",
        "second@example.org",
    ]
    assert msg["To"].addresses[0].display_name == "读者"
    assert msg["Date"].datetime == NOW
    assert msg.get_content_type() == "multipart/alternative"
    text = msg.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    html = msg.get_body(("html",)).get_content()  # type: ignore[union-attr]
    links = [s["link"] for s in alert["story"]["sources"] if s["link"]]
    assert len(links) == 4
    parser = _Hrefs()
    parser.feed(html)
    for link in links:
        assert link in text
        assert link in parser.hrefs
    assert HEADLINE in text and "聯合新聞網" in html


def test_grew_says_how_many_sources_now(smtp: Server) -> None:
    deliver("email", payload(reason="grew"), config_for(smtp.port), env={})
    assert smtp.inbox.messages()[0]["Subject"].endswith("— now 5 sources")


@pytest.mark.parametrize(
    ("reply", "retryable"),
    [("550 mailbox unavailable", False), ("451 try again later", True)],
)
def test_smtp_refusals(smtp: Server, reply: str, retryable: bool) -> None:
    smtp.inbox.replies.append(reply)
    with pytest.raises(AlertError) as caught:
        deliver("email", payload(), config_for(smtp.port), env={})
    assert caught.value.retryable is retryable
    assert f"email: 127.0.0.1:{smtp.port}: {reply}" in str(caught.value)
    assert smtp.inbox.received == []


@pytest.mark.parametrize("quit_reply", ["421 4.3.2 shutting down", "554 5.3.0 bye", "drop"])
def test_an_error_at_quit_after_data_was_accepted_is_delivered(
    smtp: Server, quit_reply: str
) -> None:
    """After DATA's 250 the alert is with the server: a failing QUIT is no failure (a retry
    would mail it twice)."""
    smtp.inbox.quit_reply = quit_reply
    receipt = deliver("email", payload(), config_for(smtp.port), env={}, clock=lambda: NOW)
    [msg] = smtp.inbox.messages()
    assert receipt == msg["Message-ID"]


def test_an_unreachable_server_is_retryable() -> None:
    port = free_port()  # nobody listens there
    with pytest.raises(AlertError, match=f"127.0.0.1:{port}") as caught:
        deliver("email", payload(), config_for(port), env={})
    assert caught.value.retryable is True


def test_the_login_password_comes_from_env(smtp: Server) -> None:
    config = config_for(smtp.port, username="alerts", password_env="SMTP_PW")
    deliver("email", payload(), config, env={"SMTP_PW": "s3cret"})
    assert smtp.inbox.logins == [("alerts", "s3cret")]
    assert len(smtp.inbox.received) == 1
    with pytest.raises(AlertError, match="no password") as caught:
        deliver("email", payload(), config, env={})
    assert caught.value.retryable is False


def test_bad_settings_are_final_and_send_nothing(smtp: Server) -> None:
    cases = [
        (config_for(smtp.port, to=("not an address",)), "not an address"),
        (config_for(smtp.port, to=()), "no recipient"),
        (config_for(smtp.port, sender=None), "from"),
        (config_for(None), r"\[digest.email\]"),
        (Config(path=Path("feeds.toml"), storage_path=Path("a.db")), r"\[notify.email\]"),
    ]
    for config, match in cases:
        with pytest.raises(AlertError, match=match) as caught:
            deliver("email", payload(), config, env={})
        assert caught.value.retryable is False
    assert smtp.inbox.received == []


def test_a_feed_title_cannot_inject_a_header(smtp: Server) -> None:
    deliver(
        "email", payload(headline="峰会\r\nBcc: victim@example.org"), config_for(smtp.port), env={}
    )
    [(recipients, raw)] = smtp.inbox.received
    assert recipients == ["reader@example.org", "second@example.org"]
    assert b"\nBcc:" not in raw
