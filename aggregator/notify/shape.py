"""What each alert channel sends, made purely from an AlertPayload (no I/O).

The webhook bodies (`json`: the contract, as is; `slack`, `discord`, `ntfy`: those
services' incoming-webhook shapes), the signature header, the alert email's subject and
parts, and which HTTP statuses are worth retrying. Every string from a feed that reaches a
header or a one-line field is reduced to one line first (`one_line`).
"""

from __future__ import annotations

import hashlib
import hmac
import html
import re
from base64 import b64encode
from collections.abc import Callable
from typing import NamedTuple
from urllib.parse import quote

import orjson

from aggregator.digest.render import one_line, safe_url
from aggregator.types import AlertPayload, AlertSource

FORMATS = ("json", "slack", "discord", "ntfy")
SIGNATURE_HEADER = "X-Aggregator-Signature"
#: Discord refuses a message whose content is longer (counted here in UTF-16 code units,
#: which is never fewer than the characters Discord counts).
DISCORD_LIMIT = 2000
#: ntfy turns a longer message body into an attachment.
NTFY_BODY_LIMIT = 4096
#: Slack cuts a message's text after 40,000 characters; a shorter list reads better anyway.
SLACK_SOURCES = 50
#: Headlines longer than this are clipped in titles and subjects.
HEADLINE_CHARS = 200
# An RFC 2047 encoded word is at most 75 characters: 45 bytes of UTF-8 fit in one.
_WORD_BYTES = 45
_URL_SAFE = "/:?#[]@!$&'()*+,;=%~-._"
# Characters Discord's markdown gives a meaning to, escaped in feed text.
_DISCORD_MARKDOWN = re.compile(r"([\\*_~`|\[\]<>])")


class WebhookRequest(NamedTuple):
    """A webhook's POST: the exact body bytes and the headers that go with them."""

    body: bytes
    headers: dict[str, str]


def webhook_request(
    payload: AlertPayload, format: str, *, secret: str | None = None
) -> WebhookRequest:
    """The body and headers to POST for one alert in one webhook `format`.

    Args:
        payload: The alert.
        format: "json" (the contract: the payload itself), "slack", "discord" or "ntfy".
        secret: The HMAC key; when given, the signature header is added.

    Returns:
        The body (UTF-8) and the headers (Content-Type, ntfy's, the signature).

    Raises:
        ValueError: an unknown format.
    """
    headers: dict[str, str]
    if format == "json":
        body, headers = json_body(payload), {"Content-Type": "application/json"}
    elif format == "slack":
        body = orjson.dumps({"text": slack_text(payload)})
        headers = {"Content-Type": "application/json"}
    elif format == "discord":
        # allowed_mentions: a feed title saying "@everyone" must not ping a whole server.
        body = orjson.dumps(
            {"content": discord_content(payload), "allowed_mentions": {"parse": []}}
        )
        headers = {"Content-Type": "application/json"}
    elif format == "ntfy":
        body = ntfy_body(payload).encode("utf-8")
        headers = {"Content-Type": "text/plain; charset=utf-8", **ntfy_headers(payload)}
    else:
        raise ValueError(f"unknown webhook format {format!r} (one of {', '.join(FORMATS)})")
    if secret is not None:
        headers[SIGNATURE_HEADER] = signature(body, secret)
    return WebhookRequest(body, headers)


def json_body(payload: AlertPayload) -> bytes:
    """The `json` format: the payload exactly, as UTF-8 JSON (non-ASCII text unescaped)."""
    return orjson.dumps(payload)


def signature(body: bytes, secret: str) -> str:
    """The signature header's value: ``sha256=`` and the hex HMAC-SHA256 of the body bytes."""
    digest = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def retryable_status(status: int) -> bool:
    """Whether a receiver's HTTP status may turn into a success later: a 5xx, 408 or 429.

    Other 4xx (and redirects, which are not followed for a POST) are final.
    """
    return status >= 500 or status in (408, 429)


def headline(payload: AlertPayload) -> str:
    """The story's headline on one line, clipped to HEADLINE_CHARS."""
    return _clip(one_line(payload["story"]["headline"]) or "(no headline)", HEADLINE_CHARS)


def sources_label(payload: AlertPayload) -> str:
    """E.g. "1 source", "5 sources"; "now 8 sources" when the story grew."""
    count = len(payload["story"]["sources"])
    label = f"{count} source" + ("" if count == 1 else "s")
    return f"now {label}" if payload["reason"] == "grew" else label


def headline_link(payload: AlertPayload) -> str | None:
    """The link the headline opens, if one is safe to open (absolute http/https): the
    story's lead article's (`story.link`), which need not be the oldest source's; else, for
    an alert recorded without it, the first source's."""
    story = payload["story"]
    links = [story.get("link"), *(source["link"] for source in story["sources"])]
    return next(filter(None, map(safe_url, links)), None)


# --- chat services -----------------------------------------------------------------------


def slack_text(payload: AlertPayload) -> str:
    """Slack mrkdwn: the watch and linked headline, then one linked line per source."""
    sources = payload["story"]["sources"]
    lines = [
        f"*[{_slack_escape(one_line(payload['watch']))}]* "
        f"{_slack_link(headline_link(payload), headline(payload))} — {sources_label(payload)}"
    ]
    for source in sources[:SLACK_SOURCES]:
        title = _slack_link(safe_url(source["link"]), _title(source))
        lines.append(f"• {title} ({_slack_escape(one_line(source['feed']))})")
    if len(sources) > SLACK_SOURCES:
        lines.append(f"… and {len(sources) - SLACK_SOURCES} more")
    return "\n".join(lines)


def discord_content(payload: AlertPayload) -> str:
    """Discord markdown, at most DISCORD_LIMIT long: sources that do not fit are counted
    ("… and 3 more") rather than cut mid-line."""
    link = _discord_link(headline_link(payload))
    first = f"**[{_discord_escape(one_line(payload['watch']))}]** "
    tail = f" — {sources_label(payload)}"
    room = DISCORD_LIMIT - _utf16(first) - _utf16(tail) - (_utf16(link) + 6 if link else 0)
    title = _fit_utf16(_discord_escape(headline(payload)), max(room, 1))
    head = first + (f"[{title}](<{link}>)" if link else title) + tail
    if _utf16(head) > DISCORD_LIMIT:  # an absurdly long link: drop it
        head = _fit_utf16(first + title + tail, DISCORD_LIMIT)
    items = [_discord_source(source) for source in payload["story"]["sources"]]
    return _fit_lines(head, items, DISCORD_LIMIT, _utf16)


def ntfy_body(payload: AlertPayload) -> str:
    """ntfy's message: the headline, then each source's feed, title and link, as plain
    text of at most NTFY_BODY_LIMIT bytes (whole lines)."""
    items = []
    for source in payload["story"]["sources"]:
        link = safe_url(source["link"])
        items.append(f"{one_line(source['feed'])}: {_title(source)}" + (f" {link}" if link else ""))
    head = f"{headline(payload)} — {sources_label(payload)}"
    return _fit_lines(head, items, NTFY_BODY_LIMIT, lambda text: len(text.encode("utf-8")))


def ntfy_headers(payload: AlertPayload) -> dict[str, str]:
    """ntfy's Title, Click (the headline's link: `headline_link`) and Tags, as ASCII header
    values: text outside ASCII is sent as RFC 2047 encoded words, which ntfy decodes (its docs,
    "Message title")."""
    headers = {
        "Title": header_value(f"[{one_line(payload['watch'])}] {headline(payload)}"),
        "Tags": "newspaper" if payload["reason"] == "new" else "newspaper,chart_with_upwards_trend",
    }
    link = headline_link(payload)
    if link:
        headers["Click"] = ascii_url(link)
    return headers


def header_value(text: str) -> str:
    """`text` as an HTTP header value: itself when printable ASCII, else RFC 2047 base64
    encoded words (UTF-8, whole characters per word) separated by spaces."""
    text = one_line(text)
    if text.isascii():
        return text
    words: list[str] = []
    chunk = b""
    for ch in text:
        data = ch.encode("utf-8")
        if chunk and len(chunk) + len(data) > _WORD_BYTES:
            words.append(_encoded_word(chunk))
            chunk = b""
        chunk += data
    if chunk:
        words.append(_encoded_word(chunk))
    return " ".join(words)


def ascii_url(url: str) -> str:
    """A URL with non-ASCII characters percent-encoded (UTF-8), for a header."""
    return quote(url, safe=_URL_SAFE)


# --- email -------------------------------------------------------------------------------


def email_subject(payload: AlertPayload) -> str:
    """E.g. ``[summit] 刚刚，巴黎AI峰会开幕 — 5 sources`` (one line)."""
    return f"[{one_line(payload['watch'])}] {headline(payload)} — {sources_label(payload)}"


def email_text(payload: AlertPayload) -> str:
    """The plain-text part: the headline, then each source's feed, title, time and link."""
    story = payload["story"]
    lines = [
        headline(payload),
        f"{_reason(payload)} · {story['topic']} · first seen {story['first_seen']}",
        "",
    ]
    for source in story["sources"]:
        lines.append(f"- {one_line(source['feed'])}: {_title(source)} ({source['published']})")
        link = safe_url(source["link"])
        if link:
            lines.append(f"  {link}")
    return "\n".join(lines) + "\n"


def email_html(payload: AlertPayload) -> str:
    """The HTML part: the same as the text, every feed string escaped, links only http(s)."""
    story = payload["story"]
    e = html.escape
    link = headline_link(payload)
    title = e(headline(payload))
    items = []
    for source in story["sources"]:
        href = safe_url(source["link"])
        text = e(_title(source))
        linked = f'<a href="{e(href)}">{text}</a>' if href else text
        items.append(
            f"<li>{e(one_line(source['feed']))}: {linked} "
            f"<small>{e(source['published'])}</small></li>"
        )
    heading = f'<a href="{e(link)}">{title}</a>' if link else title
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8">'
        f"<title>{title}</title></head><body>\n"
        f"<h1>{heading}</h1>\n"
        f"<p>{e(_reason(payload))} · {e(story['topic'])} · first seen "
        f"{e(story['first_seen'])} · watch {e(one_line(payload['watch']))}</p>\n"
        f"<ul>\n{chr(10).join(items)}\n</ul>\n</body></html>\n"
    )


# --- helpers -----------------------------------------------------------------------------


def _reason(payload: AlertPayload) -> str:
    count = sources_label(payload)
    return f"new story, {count}" if payload["reason"] == "new" else f"story grew, {count}"


def _title(source: AlertSource) -> str:
    return _clip(one_line(source["title"]) or "(untitled)", HEADLINE_CHARS)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _slack_escape(text: str) -> str:
    # Slack's three control characters in mrkdwn (its "Escaping text" rules).
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _slack_link(url: str | None, text: str) -> str:
    if not url:
        return _slack_escape(text)
    # "|" and ">" end a link's URL part; its text may hold neither "|" raw.
    target = url.replace("|", "%7C").replace(">", "%3E").replace("<", "%3C")
    return f"<{target}|{_slack_escape(text).replace('|', '¦')}>"


def _discord_escape(text: str) -> str:
    return _DISCORD_MARKDOWN.sub(r"\\\1", text)


def _discord_source(source: AlertSource) -> str:
    title = _discord_escape(_title(source))
    feed = _discord_escape(one_line(source["feed"]))
    link = _discord_link(safe_url(source["link"]))
    if link:
        return f"• [{title}](<{link}>) ({feed})"
    return f"• {title} ({feed})"


def _discord_link(link: str | None) -> str | None:
    """A link as Discord's ``(<link>)`` takes it: a raw ">" would end it early (the rest of
    the link shown as text), and percent-encoded it is the same URL (RFC 3986 has no raw >)."""
    return link.replace(">", "%3E") if link else None


def _utf16(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _fit_utf16(text: str, limit: int) -> str:
    if _utf16(text) <= limit:
        return text
    out, used = [], 0
    for ch in text:
        size = _utf16(ch)
        if used + size > limit - 1:
            break
        out.append(ch)
        used += size
    clipped = "".join(out)
    # A backslash escape must not be cut from the character it escapes.
    if (len(clipped) - len(clipped.rstrip("\\"))) % 2:
        clipped = clipped[:-1]
    return clipped + "…"


def _fit_lines(head: str, items: list[str], limit: int, size: Callable[[str], int]) -> str:
    """`head` and as many whole `items` lines as fit in `limit` (measured by `size`), the
    rest counted on a last line ("… and 3 more")."""
    lines = [head]
    used = size(head)
    for i, line in enumerate(items):
        left = len(items) - i
        # Keep room for the "… and N more" line unless this is the last item.
        reserve = size(f"\n… and {left - 1} more") if left > 1 else 0
        if used + 1 + size(line) + reserve > limit:
            more = f"… and {left} more"
            if used + 1 + size(more) <= limit:
                lines.append(more)
            break
        lines.append(line)
        used += 1 + size(line)
    return "\n".join(lines)


def _encoded_word(data: bytes) -> str:
    return f"=?UTF-8?B?{b64encode(data).decode('ascii')}?="
