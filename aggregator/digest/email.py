"""Mailing a digest: the message (multipart/alternative, CSS inlined) and the SMTP delivery.

The one module that imports smtplib and css_inline. Building a message is pure; sending
it is the edge, with retries for transient failures (connection problems, 4xx replies).
Every string from a feed that reaches a header (the subject's headline) is reduced to one
line of printable text first, so a feed title cannot inject a header.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
from collections.abc import Callable, Sequence
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr
from typing import NamedTuple

import css_inline

from aggregator.backoff import MAX_ATTEMPTS as MAX_ATTEMPTS  # re-exported (tests)
from aggregator.backoff import RETRY_FIRST as RETRY_FIRST
from aggregator.backoff import retry_time
from aggregator.config import EmailConfig
from aggregator.digest.render import date_label, one_line
from aggregator.exceptions import SendError
from aggregator.types import Digest
from aggregator.width import display_width

log = logging.getLogger("aggregator")

# Connecting and each SMTP command: a stuck server must not hang the daemon.
SMTP_TIMEOUT = 30.0
# In one call: this many attempts, sleeping these many seconds between them.
RETRY_DELAYS = (2.0, 10.0)
# Between runs, a failed email is retried as every failed delivery is (backoff.py); a
# refusal (5xx) is final.
# The subject shows the top headline up to about this many display columns.
SUBJECT_HEADLINE_WIDTH = 60


class Outgoing(NamedTuple):
    """A message ready to send, and the ids a delivery record keeps."""

    message: EmailMessage
    recipient: str
    message_id: str


class SendAttempt(NamedTuple):
    """The outcome of delivering one message (after any in-call retries)."""

    ok: bool
    attempts: int
    error: str | None
    permanent: bool  # the server refused for good (5xx): retrying later will not help


def subject_for(digest: Digest) -> str:
    """The subject line: the digest's date and its top headline (one line, plain text).

    Args:
        digest: The digest being sent.

    Returns:
        E.g. ``Digest 2025-02-10: 巴黎AI峰会开幕… (+3 more)``, or ``…: nothing new``.
    """
    stories = [story for topic in digest.topics for story in topic.stories if story.articles]
    label = f"Digest {date_label(digest)}"
    if not stories:
        return f"{label}: nothing new"
    headline = _clip(one_line(stories[0].headline), SUBJECT_HEADLINE_WIDTH)
    more = f" (+{len(stories) - 1} more)" if len(stories) > 1 else ""
    return f"{label}: {headline}{more}"


def worth_sending(digest: Digest, config: EmailConfig, *, send_empty: bool = False) -> bool:
    """Whether to mail this digest: one with no story only when [digest.email] send_empty,
    or when this one was asked for (`send_empty`: `digest --email --force`, or a retry).

    Args:
        digest: The digest made for the window.
        config: The [digest.email] table.
        send_empty: Send this digest whatever it holds.

    Returns:
        True when the digest holds a story, or either send_empty is set.
    """
    return (
        send_empty
        or config.send_empty
        or any(story.articles for topic in digest.topics for story in topic.stories)
    )


def sender_address(config: EmailConfig) -> Address:
    """The From address: `from` in the config, else the SMTP username when it is an address.

    Raises:
        SendError: neither gives a usable address.
    """
    raw = config.sender or (config.username if config.username and "@" in config.username else "")
    name, addr = parseaddr(raw)
    return _address(name or "aggregator", addr, "from")


def recipient_address(recipient: str) -> Address:
    """Parse one configured recipient (``name <addr>`` or a bare address).

    Raises:
        SendError: it is not a usable address.
    """
    name, addr = parseaddr(recipient)
    return _address(name, addr, "to")


def recipient_key(recipient: str) -> str:
    """The address a configured recipient's deliveries are recorded under (lower-cased).

    Args:
        recipient: ``Name <addr>`` or a bare address, as configured.

    Returns:
        The address, or the configured text itself when it holds none.
    """
    addr = parseaddr(recipient)[1]
    return addr.lower() if "@" in addr else recipient


def build_message(
    digest: Digest,
    *,
    text: str,
    html: str,
    sender: Address,
    recipient: str,
    now: datetime,
    list_name: str = "Aggregator digest",
    archive_url: str | None = None,
) -> Outgoing:
    """Build the email for one recipient: plain text and HTML (CSS inlined) alternatives.

    Args:
        digest: The digest (for the subject).
        text: The digest rendered as text.
        html: The digest rendered as HTML; its stylesheet is inlined here.
        sender: The From address.
        recipient: One configured recipient.
        now: The Date header's time (its zone is kept).
        list_name: The List-Id's display name.
        archive_url: The public archive, for List-Archive, if there is one.

    Returns:
        The message, the recipient's address and the Message-ID.

    Raises:
        SendError: the recipient is not a usable address.
    """
    to = recipient_address(recipient)
    domain = sender.domain or "localhost"
    message_id = make_msgid(idstring="digest", domain=domain)
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject_for(digest)
    msg["Date"] = format_datetime(now)
    msg["Message-ID"] = message_id
    msg["List-Id"] = f"{list_name} <digest.{domain}>"
    if archive_url:
        msg["List-Archive"] = f"<{archive_url}>"
    # Mark it machine-sent so that vacation responders stay quiet.
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(text, subtype="plain", charset="utf-8")
    msg.add_alternative(inline_css(html), subtype="html", charset="utf-8")
    return Outgoing(msg, to.addr_spec, message_id)


def inline_css(html: str) -> str:
    """Move the page's stylesheet into style attributes, for mail clients that drop <style>.

    The @media rules (dark scheme, narrow screens) stay in a <style> element: they cannot
    be inlined, and clients that honour them then apply them (they are !important).

    Raises:
        SendError: the HTML cannot be processed.
    """
    try:
        return str(css_inline.CSSInliner(keep_at_rules=True).inline(html))
    except ValueError as e:
        raise SendError(f"cannot inline the digest's CSS: {e}") from e


def send(
    outgoing: Outgoing,
    config: EmailConfig,
    *,
    password: str | None,
    sleep: Callable[[float], None],
    delays: Sequence[float] = RETRY_DELAYS,
) -> SendAttempt:
    """Deliver one message, retrying transient failures after each of `delays` seconds.

    Never raises for a delivery failure: the outcome says what happened.

    Args:
        outgoing: The message.
        config: The SMTP server and how to talk to it.
        password: The SMTP password, when the server needs a login.
        sleep: Waits between attempts (injected so tests do not wait).
        delays: The waits before the second, third, … attempt.

    Returns:
        Whether it was delivered, after how many attempts, and the last error.
    """
    attempts = 0
    while True:
        attempts += 1
        try:
            _send_once(outgoing, config, password)
            return SendAttempt(True, attempts, None, False)
        except SendError as e:
            permanent = bool(getattr(e, "permanent", False))
            if permanent or attempts > len(delays):
                return SendAttempt(False, attempts, str(e), permanent)
            sleep(delays[attempts - 1])


def next_retry(attempt: SendAttempt, total_attempts: int, now: datetime) -> datetime | None:
    """When to try a failed delivery again, or None (delivered, refused, or given up).

    Args:
        attempt: The outcome of the latest sending run.
        total_attempts: Attempts so far, this run's included.
        now: The time of the outcome.

    Returns:
        The time of the next retry, or None.
    """
    if attempt.ok or attempt.permanent:
        return None
    return retry_time(total_attempts, now)


class SmtpFailure(SendError):
    """The SMTP server or the way to it failed; `permanent` when it refused for good (5xx)."""

    def __init__(self, message: str, *, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent


def _send_once(outgoing: Outgoing, config: EmailConfig, password: str | None) -> None:
    smtp_send(outgoing.message, [outgoing.recipient], config, password)


def smtp_send(
    message: EmailMessage, recipients: Sequence[str], config: EmailConfig, password: str | None
) -> None:
    """Hand one message to the SMTP server for these envelope recipients, in one session.

    The digest's and the alerts' one SMTP sender.

    Args:
        message: The message (its headers are sent as they are).
        recipients: The envelope's addresses.
        config: The SMTP server and how to talk to it ([digest.email]).
        password: The SMTP password, when the server needs a login.

    Raises:
        SmtpFailure: the server refused (`permanent` for a 5xx or a refused recipient) or
            could not be reached or talked to (not permanent: connection, timeout, TLS, 4xx).
    """
    where = f"{config.host}:{config.port}"
    try:
        smtp: smtplib.SMTP
        if config.security == "ssl":
            smtp = smtplib.SMTP_SSL(
                config.host,
                config.port,
                timeout=SMTP_TIMEOUT,
                context=ssl.create_default_context(),
            )
        else:
            smtp = smtplib.SMTP(config.host, config.port, timeout=SMTP_TIMEOUT)
        try:
            smtp.ehlo()
            if config.security == "starttls":
                smtp.starttls(context=ssl.create_default_context())
                smtp.ehlo()
            if config.username:
                if password is None:
                    raise SmtpFailure(
                        f"{where}: no password (set the environment variable named by "
                        "[digest.email] password_env)",
                        permanent=True,
                    )
                smtp.login(config.username, password)
            refused = smtp.send_message(message, to_addrs=list(recipients))
            if refused:
                raise SmtpFailure(f"{where}: refused {refused}", permanent=True)
        except BaseException:
            smtp.close()
            raise
        # DATA's 250 came: the server has the message. A failed QUIT cannot unsend it, and
        # calling it a failure would send it again (docs/alerts.md, Email).
        try:
            smtp.quit()
        except (smtplib.SMTPException, OSError) as e:
            log.info("%s: the message was accepted; QUIT failed: %s", where, e)
        finally:
            smtp.close()
    except smtplib.SMTPResponseException as e:
        # 5xx is the server's final answer; 4xx (and 421 closing) may pass.
        text = e.smtp_error.decode("utf-8", "replace") if isinstance(e.smtp_error, bytes) else ""
        raise SmtpFailure(
            f"{where}: {e.smtp_code} {text}".rstrip(), permanent=500 <= e.smtp_code < 600
        ) from e
    except smtplib.SMTPRecipientsRefused as e:
        raise SmtpFailure(f"{where}: recipient refused: {e.recipients}", permanent=True) from e
    except smtplib.SMTPNotSupportedError as e:
        raise SmtpFailure(f"{where}: {e}", permanent=True) from e
    except (smtplib.SMTPException, OSError) as e:  # OSError: refused, timeout, TLS
        raise SmtpFailure(f"{where}: {type(e).__name__}: {e}", permanent=False) from e


def _address(name: str, addr: str, key: str) -> Address:
    name = one_line(name)
    if not addr or "@" not in addr:
        raise SendError(f"[digest.email] {key}: {addr or 'nothing'!r} is not an email address")
    try:
        return Address(display_name=name, addr_spec=addr)
    except (ValueError, IndexError, TypeError) as e:
        raise SendError(f"[digest.email] {key}: {addr!r} is not an email address: {e}") from e


def _clip(text: str, width: int) -> str:
    if display_width(text) <= width:
        return text
    out, used = "", 0
    for ch in text:
        used += display_width(ch)
        if used > width - 1:
            break
        out += ch
    return out.rstrip() + "…"
