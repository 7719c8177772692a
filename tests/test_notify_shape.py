"""The alert channels' shapes, made purely from a payload (notify/shape.py): no I/O."""

from __future__ import annotations

import hashlib
import hmac
import json
from email.header import decode_header, make_header
from html.parser import HTMLParser

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aggregator.notify.shape import (
    DISCORD_LIMIT,
    NTFY_BODY_LIMIT,
    SIGNATURE_HEADER,
    _fit_lines,
    discord_content,
    email_html,
    email_subject,
    email_text,
    header_value,
    ntfy_body,
    retryable_status,
    signature,
    slack_text,
    webhook_request,
)
from tests.alerts import HEADLINE, payload, payloads, source


def decoded(value: str) -> str:
    """A header value as ntfy reads it (RFC 2047 encoded words decoded)."""
    return str(make_header(decode_header(value)))


def test_json_is_the_payload_exactly_in_utf8() -> None:
    alert = payload()
    request = webhook_request(alert, "json")
    assert json.loads(request.body) == alert
    assert HEADLINE.encode("utf-8") in request.body  # not \u-escaped
    assert request.headers == {"Content-Type": "application/json"}


@settings(max_examples=150, deadline=None)
@given(payloads)
def test_any_payload_round_trips_through_json(alert: object) -> None:
    assert json.loads(webhook_request(alert, "json").body.decode("utf-8")) == alert  # type: ignore[arg-type]


def test_signature_is_the_hmac_of_the_exact_body() -> None:
    request = webhook_request(payload(), "json", secret="s3cret")
    expected = hmac.new(b"s3cret", request.body, hashlib.sha256).hexdigest()
    header = request.headers[SIGNATURE_HEADER]
    assert header.startswith("sha256=")
    assert hmac.compare_digest(header, f"sha256={expected}")
    assert not hmac.compare_digest(header, signature(request.body + b" ", "s3cret"))
    assert not hmac.compare_digest(header, signature(request.body, "other"))
    # Each format is signed over its own body.
    for format in ("slack", "discord", "ntfy"):
        shaped = webhook_request(payload(), format, secret="s3cret")
        assert shaped.headers[SIGNATURE_HEADER] == signature(shaped.body, "s3cret")
        assert SIGNATURE_HEADER not in webhook_request(payload(), format).headers


def test_slack_links_every_source_in_mrkdwn() -> None:
    text = json.loads(webhook_request(payload(), "slack").body)["text"]
    assert text == slack_text(payload())
    lines = text.split("\n")
    assert lines[0] == (
        f"*[summit]* <https://new.qq.com/rain/a/20250210A08ACT00|{HEADLINE}> — 5 sources"
    )
    assert "• <https://udn.com/news/story/6811/8535|剛剛，巴黎AI峰會開幕> (聯合新聞網)" in lines
    # & < > are Slack's control characters: escaped in text, left alone inside a URL.
    bbc = "• <https://www.bbc.co.uk/news/ai?x=1&y=2|AI Action Summit opens in Paris> (BBC)"
    assert bbc in lines
    assert "• 巴黎AI峰会 (undated) (local)" in lines  # no link: plain text
    assert len(lines) == 6


def test_slack_escapes_feed_text_and_urls() -> None:
    alert = payload(
        watch="a<b>",
        sources=[source("F&G", "x | <!channel> y", "https://e.org/p|q>r")],
        headline="h",
    )
    text = slack_text(alert)
    assert "*[a&lt;b&gt;]*" in text
    assert "<https://e.org/p%7Cq%3Er|x ¦ &lt;!channel&gt; y> (F&amp;G)" in text
    assert "<!channel>" not in text


def test_discord_content_links_sources_and_escapes_markdown() -> None:
    body = json.loads(webhook_request(payload(), "discord").body)
    assert body["allowed_mentions"] == {"parse": []}
    content = body["content"]
    assert content == discord_content(payload())
    lines = content.split("\n")
    assert lines[0] == (
        f"**[summit]** [{HEADLINE}](<https://new.qq.com/rain/a/20250210A08ACT00>) — 5 sources"
    )
    assert "• [剛剛，巴黎AI峰會開幕](<https://udn.com/news/story/6811/8535>) (聯合新聞網)" in lines
    evil = discord_content(payload(sources=[source("f", "**bold** [x](y)", "https://e.org/")]))
    assert r"• [\*\*bold\*\* \[x\](y)](<https://e.org/>) (f)" in evil


def test_discord_links_holding_a_bracket_stay_whole() -> None:
    """A raw ">" in a link would end Discord's <link> early, in the headline's link as in a
    source's: it is sent percent-encoded (the same URL)."""
    odd = "https://e.org/a?q=<b>&x=1"
    content = discord_content(payload(headline="t", sources=[source("f", "t", odd)]))
    head, item = content.split("\n")
    assert head == "**[summit]** [t](<https://e.org/a?q=<b%3E&x=1>) — 1 source"
    assert item == "• [t](<https://e.org/a?q=<b%3E&x=1>) (f)"


def test_discord_clips_whole_lines_and_counts_the_rest() -> None:
    many = [source(f"feed {i}", f"标题 {i} " + "长" * 80, f"https://e.org/{i}") for i in range(60)]
    content = discord_content(payload(sources=many))
    assert len(content) <= DISCORD_LIMIT
    lines = content.split("\n")
    shown = [line for line in lines if line.startswith("• ")]
    assert 5 < len(shown) < 60
    assert lines[-1] == f"… and {60 - len(shown)} more"
    for i, line in enumerate(shown):  # every shown line is whole
        assert line.endswith(f"(<https://e.org/{i}>) (feed {i})")


def test_discord_clips_a_huge_headline() -> None:
    content = discord_content(payload(headline="峰" * 5000))
    assert len(content) <= DISCORD_LIMIT
    assert "…](<https://new.qq.com/rain/a/20250210A08ACT00>) — 5 sources" in content


@settings(max_examples=150, deadline=None)
@given(payloads)
def test_discord_content_never_exceeds_its_limit(alert: object) -> None:
    content = discord_content(alert)  # type: ignore[arg-type]
    assert len(content.encode("utf-16-le")) // 2 <= DISCORD_LIMIT
    assert content.startswith("**[")
    # Every source is either shown on its own line or counted on the last one.
    lines = content.split("\n")
    shown = sum(1 for line in lines[1:] if line.startswith("• "))
    rest = int(lines[-1].split()[2]) if lines[-1].startswith("… and ") else 0
    assert shown + rest == len(alert["story"]["sources"])  # type: ignore[index]


@settings(max_examples=100, deadline=None)
@given(payloads)
def test_ntfy_body_and_headers_always_fit(alert: object) -> None:
    request = webhook_request(alert, "ntfy")  # type: ignore[arg-type]
    assert len(request.body) <= NTFY_BODY_LIMIT
    for name, value in request.headers.items():
        assert value.isascii() and value.isprintable(), name
        if name == "Title":
            assert decoded(value).startswith("[")


def test_ntfy_plain_text_and_encoded_headers() -> None:
    request = webhook_request(payload(), "ntfy")
    assert request.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert request.headers["Click"] == "https://new.qq.com/rain/a/20250210A08ACT00"
    assert request.headers["Tags"] == "newspaper"
    title = request.headers["Title"]
    assert title.startswith("=?UTF-8?B?") and title.isascii()
    assert decoded(title) == f"[summit] {HEADLINE}"
    assert all(len(word) <= 75 for word in title.split(" "))  # RFC 2047's limit per word
    body = request.body.decode("utf-8")
    assert body.split("\n")[0] == f"{HEADLINE} — 5 sources"
    assert "BBC: AI Action Summit opens in Paris https://www.bbc.co.uk/news/ai?x=1&y=2" in body
    assert "local: 巴黎AI峰会 (undated)" in body
    grew = webhook_request(payload(reason="grew"), "ntfy")
    assert grew.headers["Tags"] == "newspaper,chart_with_upwards_trend"
    assert "now 5 sources" in grew.body.decode()


def test_ntfy_click_is_ascii_and_skips_unsafe_links() -> None:
    alert = payload(
        sources=[
            source("a", "t", "javascript:alert(1)"),
            source("b", "t", "https://例子.org/新闻?q=峰会"),
        ]
    )
    click = webhook_request(alert, "ntfy").headers["Click"]
    assert click.isascii() and click.startswith("https://")
    assert "%E6%96%B0%E9%97%BB" in click  # 新闻, percent-encoded UTF-8


def test_the_headline_opens_its_own_article_not_the_oldest_report() -> None:
    """A story is headed by its lead article's title (dedup.group.lead_article), which need
    not be the oldest source: every channel links the headline to the lead's link
    (`story.link`); an alert recorded without one links the first source that is safe."""
    lead = "Twitter back up after outage"
    alert = payload(
        headline=lead,
        sources=[
            source("Digital Times", "Is Twitter Down Or Offline? Users Experience ...", None),
            source("Twitchy", f"{lead} blamed on glitch, users say", "https://twitchy.example/a"),
            source(
                "Reuters", "Twitter back up  after outage - Reuters", "https://reuters.example/b"
            ),
        ],
    )
    linked = alert["story"]["link"] = "https://reuters.example/b"
    assert slack_text(alert).split("\n")[0] == f"*[summit]* <{linked}|{lead}> — 3 sources"
    assert f"[{lead}](<{linked}>)" in discord_content(alert)
    assert webhook_request(alert, "ntfy").headers["Click"] == linked
    assert f'<a href="{linked}">{lead}</a>' in email_html(alert)
    for unsafe in (None, "javascript:alert(1)"):
        alert["story"]["link"] = unsafe
        assert webhook_request(alert, "ntfy").headers["Click"] == "https://twitchy.example/a"
    del alert["story"]["link"]  # recorded before the key was
    assert webhook_request(alert, "ntfy").headers["Click"] == "https://twitchy.example/a"


def test_ntfy_body_counts_sources_that_do_not_fit() -> None:
    many = [source(f"f{i}", "新" * 150, f"https://e.org/{i}") for i in range(40)]
    body = ntfy_body(payload(sources=many))
    assert len(body.encode("utf-8")) <= NTFY_BODY_LIMIT
    lines = body.split("\n")
    assert lines[-1] == f"… and {40 - (len(lines) - 2)} more"


def test_header_value_keeps_ascii_and_makes_one_line() -> None:
    assert header_value("plain title") == "plain title"
    assert header_value("two\r\nlines\x00") == "two lines"
    assert decoded(header_value("Äpfel und 峰会 " * 20)) == ("Äpfel und 峰会 " * 20).strip()


def test_unknown_format_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="teams"):
        webhook_request(payload(), "teams")


@pytest.mark.parametrize(
    ("status", "retry"),
    [(500, True), (502, True), (503, True), (408, True), (429, True), (400, False),
     (401, False), (403, False), (404, False), (410, False), (301, False)],
)  # fmt: skip
def test_retryable_statuses(status: int, retry: bool) -> None:
    assert retryable_status(status) is retry


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []
        self.text = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.hrefs += [v or "" for k, v in attrs if tag == "a" and k == "href"]

    def handle_data(self, data: str) -> None:
        self.text += data


def test_email_subject_text_and_html() -> None:
    alert = payload()
    assert email_subject(alert) == f"[summit] {HEADLINE} — 5 sources"
    assert email_subject(payload(reason="grew")).endswith("— now 5 sources")
    assert email_subject(payload(sources=[source("a", "b", None)])).endswith("— 1 source")
    text = email_text(alert)
    links = [s["link"] for s in alert["story"]["sources"] if s["link"]]
    for link in links:
        assert f"  {link}\n" in text
    assert "- 聯合新聞網: 剛剛，巴黎AI峰會開幕 (2025-02-10T08:00:00+00:00)" in text
    parser = _Links()
    parser.feed(email_html(alert))
    assert parser.hrefs == [links[0], *links]  # the headline, then each source
    assert "腾讯新闻" in parser.text and "聯合新聞網" in parser.text


def test_email_html_escapes_feed_text_and_drops_unsafe_links() -> None:
    alert = payload(
        headline="<script>alert(1)</script>",
        sources=[source("<b>f</b>", 'x" onclick="y', "javascript:alert(1)")],
    )
    html = email_html(alert)
    assert "<script>" not in html and "<b>f</b>" not in html
    assert "&lt;script&gt;" in html
    assert "javascript:" not in html
    assert "x&quot; onclick=&quot;y" in html
    assert "\n" not in email_subject(payload(headline="a\r\nBcc: x@y.z"))


def test_alerts_drop_a_titles_direction_overrides() -> None:
    """U+202E in a title would show the rest of a line (the feed, the time, a link)
    backwards in a subject, a chat message or the mail's text."""
    alert = payload(
        headline="evil\u202egnp.exe", sources=[source("F\u2067x", "t\u202dy", "https://a.example/")]
    )
    made = [email_subject(alert), email_text(alert), email_html(alert), slack_text(alert)]
    made += [discord_content(alert), ntfy_body(alert)]
    for text in made:
        assert not any(c in text for c in "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
    assert "evilgnp.exe" in email_subject(alert) and "Fx: ty" in email_text(alert)


@settings(max_examples=300, deadline=None)
@given(
    st.integers(0, 80),
    st.lists(st.integers(0, 120), max_size=40),
    st.integers(100, 600),
)
def test_fit_lines_shows_whole_lines_and_counts_the_rest(
    head: int, sizes: list[int], limit: int
) -> None:
    items = [f"• {i:03d}" + "x" * size for i, size in enumerate(sizes)]
    text = _fit_lines("h" * head, items, limit, len)
    assert len(text) <= limit
    lines = text.split("\n")
    shown = lines[1:-1] if lines[-1].startswith("… and ") else lines[1:]
    assert shown == items[: len(shown)]
    if len(shown) < len(items):
        assert lines[-1] == f"… and {len(items) - len(shown)} more"
