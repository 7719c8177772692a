"""The webhook channel against real HTTP receivers on 127.0.0.1 (pytest-httpserver, sockets)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from email.header import decode_header, make_header
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request

from aggregator.config import Config, NotifyConfig, WebhookConfig
from aggregator.exceptions import AlertError
from aggregator.notify import deliver
from aggregator.notify.shape import json_body, webhook_request
from aggregator.notify.webhook import redacted
from aggregator.types import AlertPayload, AlertSource, AlertStory
from tests.alerts import HEADLINE, payload
from tests.conftest import ROOT

SECRET_ENV = "AGGREGATOR_WEBHOOK_SECRET"


def config_for(url: str, **webhook: object) -> Config:
    return Config(
        path=Path("feeds.toml"),
        storage_path=Path("aggregator.db"),
        notify=NotifyConfig(webhook=WebhookConfig(url, **webhook)),  # type: ignore[arg-type]
    )


def url_for(httpserver: HTTPServer, path: str) -> str:
    """The server's URL on 127.0.0.1 (url_for says "localhost")."""
    return f"http://127.0.0.1:{httpserver.port}{path}"


def received(httpserver: HTTPServer) -> Request:
    assert len(httpserver.log) == 1, httpserver.log
    return httpserver.log[0][0]


@pytest.fixture
def hook(httpserver: HTTPServer) -> str:
    httpserver.expect_request("/hook", method="POST").respond_with_data("ok")
    return url_for(httpserver, "/hook")


def test_json_body_arrives_as_the_contract_says(httpserver: HTTPServer, hook: str) -> None:
    alert = payload()
    assert deliver("webhook", alert, config_for(hook), env={}) == "HTTP 200"
    request = received(httpserver)
    assert request.headers["Content-Type"] == "application/json"
    assert "X-Aggregator-Signature" not in request.headers
    body = request.get_data()
    assert body == json_body(alert)
    sent = json.loads(body.decode("utf-8"))
    assert sent["watch"] == "summit" and sent["reason"] == "new"
    story = sent["story"]
    assert story["headline"] == HEADLINE
    assert HEADLINE.encode("utf-8") in body  # UTF-8, not \u escapes
    assert (story["id"], story["topic"], story["first_seen"]) == (
        "4127",
        "AI",
        "2025-02-10T08:00:00+00:00",
    )
    feeds = [s["feed"] for s in story["sources"]]
    assert feeds == ["腾讯新闻", "聯合新聞網", "BBC", "DW 中文", "local"]
    assert story["sources"][4] == {
        "feed": "local",
        "title": "巴黎AI峰会 (undated)",
        "link": None,
        "published": "2025-02-10T10:30:00+00:00",
    }
    assert set(sent) == {"watch", "reason", "story"}
    assert set(story) == {"id", "headline", "topic", "first_seen", "sources", "link"}
    assert story["link"] == "https://new.qq.com/rain/a/20250210A08ACT00"


def test_signature_verifies_with_the_secret(httpserver: HTTPServer, hook: str) -> None:
    config = config_for(hook, secret_env=SECRET_ENV)
    deliver("webhook", payload(), config, env={SECRET_ENV: "s3cret"})
    request = received(httpserver)
    body = request.get_data()
    expected = "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(request.headers["X-Aggregator-Signature"], expected)
    wrong = "sha256=" + hmac.new(b"other", body, hashlib.sha256).hexdigest()
    assert not hmac.compare_digest(request.headers["X-Aggregator-Signature"], wrong)


def test_an_unset_secret_variable_is_final_and_sends_nothing(
    httpserver: HTTPServer, hook: str
) -> None:
    for env in ({}, {SECRET_ENV: ""}):
        with pytest.raises(AlertError, match=SECRET_ENV) as caught:
            deliver("webhook", payload(), config_for(hook, secret_env=SECRET_ENV), env=env)
        assert caught.value.retryable is False
    assert httpserver.log == []


@pytest.mark.parametrize(
    ("status", "retryable"), [(500, True), (503, True), (429, True), (404, False), (400, False)]
)
def test_error_statuses(httpserver: HTTPServer, status: int, retryable: bool) -> None:
    httpserver.expect_request("/hook", method="POST").respond_with_data(
        "receiver says\nno", status=status
    )
    with pytest.raises(AlertError) as caught:
        deliver("webhook", payload(), config_for(url_for(httpserver, "/hook")), env={})
    assert caught.value.retryable is retryable
    message = str(caught.value)
    assert f"webhook http://127.0.0.1:{httpserver.port}/…: HTTP {status}" in message
    assert message.endswith(": receiver says no")
    assert len(httpserver.log) == 1  # one attempt: retrying is the caller's


def test_a_redirect_is_not_followed_and_is_final(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/hook", method="POST").respond_with_data(
        "", status=301, headers={"Location": url_for(httpserver, "/elsewhere")}
    )
    with pytest.raises(AlertError, match="HTTP 301") as caught:
        deliver("webhook", payload(), config_for(url_for(httpserver, "/hook")), env={})
    assert caught.value.retryable is False
    assert [r.path for r, _ in httpserver.log] == ["/hook"]


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections (the kernel's backlog) and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield int(listener.getsockname()[1])


def test_a_receiver_that_never_answers_is_cut_at_the_timeout(silent_port: int) -> None:
    config = config_for(f"http://127.0.0.1:{silent_port}/hook", timeout=0.5)
    began = time.monotonic()
    with pytest.raises(AlertError, match="0.5s|timed out") as caught:
        deliver("webhook", payload(), config, env={})
    elapsed = time.monotonic() - began
    assert caught.value.retryable is True
    assert 0.4 < elapsed < 5, elapsed


def test_a_trickling_answer_is_cut_at_the_timeout_too() -> None:
    """The timeout is for the whole exchange, not between two reads."""
    stop = threading.Event()
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = int(listener.getsockname()[1])

        def trickle() -> None:
            connection, _ = listener.accept()
            with connection:
                connection.recv(65536)
                connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
                while not stop.wait(0.1):
                    try:
                        connection.sendall(b"x")
                    except OSError:
                        return

        thread = threading.Thread(target=trickle, daemon=True)
        thread.start()
        config = config_for(f"http://127.0.0.1:{port}/hook", timeout=0.5)
        began = time.monotonic()
        try:
            with pytest.raises(AlertError, match="within 0.5s") as caught:
                deliver("webhook", payload(), config, env={})
        finally:
            stop.set()
            thread.join(5)
    assert caught.value.retryable is True
    assert time.monotonic() - began < 5


def test_connection_refused_is_retryable() -> None:
    with socket.socket() as s:  # a port nothing listens on once this socket is closed
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    with pytest.raises(AlertError, match="network error") as caught:
        deliver("webhook", payload(), config_for(f"http://127.0.0.1:{port}/hook"), env={})
    assert caught.value.retryable is True
    assert f"webhook http://127.0.0.1:{port}/…" in str(caught.value)


def test_slack_shape_on_a_real_server(httpserver: HTTPServer, hook: str) -> None:
    deliver("webhook", payload(), config_for(hook, format="slack"), env={})
    request = received(httpserver)
    assert request.headers["Content-Type"] == "application/json"
    text = json.loads(request.get_data())["text"]
    assert text.startswith(f"*[summit]* <https://new.qq.com/rain/a/20250210A08ACT00|{HEADLINE}>")
    assert "<https://www.dw.com/zh/a-71|人工智能峰会——欧洲还有竞争力吗？> (DW 中文)" in text


def test_discord_shape_on_a_real_server(httpserver: HTTPServer, hook: str) -> None:
    deliver("webhook", payload(), config_for(hook, format="discord"), env={})
    body = json.loads(received(httpserver).get_data())
    assert set(body) == {"content", "allowed_mentions"}
    assert body["content"].startswith(f"**[summit]** [{HEADLINE}](<https://new.qq.com/")
    assert body["content"].count("\n• ") == 5


def test_ntfy_shape_on_a_real_server(httpserver: HTTPServer, hook: str) -> None:
    deliver("webhook", payload(), config_for(hook, format="ntfy"), env={})
    request = received(httpserver)
    assert request.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert str(make_header(decode_header(request.headers["Title"]))) == f"[summit] {HEADLINE}"
    assert request.headers["Click"] == "https://new.qq.com/rain/a/20250210A08ACT00"
    assert request.headers["Tags"] == "newspaper"
    body = request.get_data().decode("utf-8")
    assert body.startswith(f"{HEADLINE} — 5 sources\n腾讯新闻: {HEADLINE} https://new.qq.com/")


def test_unconfigured_and_unknown_channels_are_final() -> None:
    config = Config(path=Path("feeds.toml"), storage_path=Path("aggregator.db"))
    for channel, match in (("webhook", r"\[notify.webhook\]"), ("pager", "unknown")):
        with pytest.raises(AlertError, match=match) as caught:
            deliver(channel, payload(), config, env={})
        assert caught.value.retryable is False


def test_a_bad_url_or_format_is_final(httpserver: HTTPServer, hook: str) -> None:
    for config in (config_for("ftp://127.0.0.1/hook"), config_for(hook, format="teams")):
        with pytest.raises(AlertError) as caught:
            deliver("webhook", payload(), config, env={})
        assert caught.value.retryable is False
    assert httpserver.log == []


def test_errors_leave_out_the_token_in_the_path() -> None:
    url = "https://hooks.slack.com/services/T000/B000/XXXXSECRETXXXX?token=abc"
    assert redacted(url) == "https://hooks.slack.com/…"
    assert redacted("http://[::1]:8080") == "http://[::1]:8080"
    assert redacted("http://user:pw@example.org:81/") == "http://example.org:81"


def _blocks(path: Path, language: str) -> list[str]:
    text = path.read_text(encoding="utf-8")
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.DOTALL)


@pytest.mark.parametrize("doc", ["README.md", "docs/alerts.md"])
def test_the_documented_body_has_the_contracts_keys_and_types(doc: str) -> None:
    [example] = [b for b in _blocks(ROOT / doc, "json") if '"watch"' in b]
    body = json.loads(example)
    assert set(body) == set(AlertPayload.__annotations__)
    assert body["reason"] in ("new", "grew")
    assert set(body["story"]) == set(AlertStory.__annotations__)
    assert body["story"]["sources"], doc
    for entry in body["story"]["sources"]:
        assert set(entry) == set(AlertSource.__annotations__)
        assert entry["link"] is None or entry["link"].startswith("https://")
        assert datetime.fromisoformat(entry["published"]).utcoffset() is not None
    assert datetime.fromisoformat(body["story"]["first_seen"]).utcoffset() is not None
    assert json.loads(json_body(body)) == body  # what deliver sends for it


def test_the_documented_verification_accepts_our_signature_only() -> None:
    [snippet] = [b for b in _blocks(ROOT / "docs/alerts.md", "python") if "compare_digest" in b]
    namespace: dict[str, Any] = {}
    exec(snippet, namespace)
    verified = namespace["verified"]
    request = webhook_request(payload(), "discord", secret="s3cret")
    header = request.headers["X-Aggregator-Signature"]
    assert verified(request.body, header, "s3cret") is True
    assert verified(request.body, header, "wrong") is False
    assert verified(request.body + b"\n", header, "s3cret") is False


def test_a_surprise_is_an_alert_error_too(httpserver: HTTPServer, hook: str) -> None:
    """deliver raises nothing but AlertError: here the payload cannot be serialised."""
    broken = payload()
    broken["story"]["sources"][0]["title"] = {"a set"}  # type: ignore[typeddict-item]
    with pytest.raises(AlertError, match="webhook: unexpected error: TypeError") as caught:
        deliver("webhook", broken, config_for(hook), env={})
    assert caught.value.retryable is True
    assert httpserver.log == []


def test_deliver_works_from_a_thread_running_an_event_loop(
    httpserver: HTTPServer, hook: str
) -> None:
    async def inside_a_loop() -> str | None:
        return deliver("webhook", payload(), config_for(hook), env={})

    assert asyncio.run(inside_a_loop()) == "HTTP 200"
    assert len(httpserver.log) == 1
