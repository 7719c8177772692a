"""The email channel: one multipart message per alert, through [digest.email]'s SMTP server."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from aggregator.config import EmailConfig, NotifyEmailConfig
from aggregator.digest.email import SmtpFailure, recipient_address, sender_address, smtp_send
from aggregator.exceptions import AlertError, SendError
from aggregator.notify.shape import email_html, email_subject, email_text
from aggregator.types import AlertPayload


def alert_message(
    payload: AlertPayload, *, sender: Address, to: tuple[Address, ...], now: datetime
) -> EmailMessage:
    """The alert as an email: the subject with the headline and source count, a text part
    and an HTML part (both UTF-8), every source's link in each.

    Args:
        payload: The alert.
        sender: The From address.
        to: The recipients, all in one To header (the user's own addresses).
        now: The Date header's time.
    """
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = email_subject(payload)
    msg["Date"] = format_datetime(now)
    msg["Message-ID"] = make_msgid(idstring="alert", domain=sender.domain or "localhost")
    # Machine-sent: vacation responders stay quiet.
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(email_text(payload), subtype="plain", charset="utf-8")
    msg.add_alternative(email_html(payload), subtype="html", charset="utf-8")
    return msg


def send_alert_email(
    payload: AlertPayload,
    notify: NotifyEmailConfig,
    smtp: EmailConfig | None,
    *,
    env: Mapping[str, str],
    now: datetime,
) -> str:
    """Mail one alert to every [notify.email] recipient, in one SMTP transaction.

    One message for all of them: the server takes it for every recipient or for none,
    so a retry never mails someone twice.

    Args:
        payload: The alert.
        notify: [notify.email] (the recipients).
        smtp: [digest.email] (the server, the sender, the login), None when absent.
        env: The environment the SMTP password is read from (password_env).
        now: The Date header's time.

    Returns:
        The message's Message-ID.

    Raises:
        AlertError: retryable for an unreachable server or a 4xx answer; final for a 5xx,
            a refused recipient, a bad address or missing SMTP settings.
    """
    if smtp is None:
        raise AlertError(
            "email: [notify.email] is sent through the SMTP server of [digest.email]; "
            "add that table (host, port, from)",
            retryable=False,
        )
    where = f"email via {smtp.host}:{smtp.port}"
    try:
        sender = sender_address(smtp)
        to = tuple(_recipient(recipient) for recipient in notify.to)
    except SendError as e:
        raise AlertError(f"{where}: {e}", retryable=False) from e
    if not to:
        raise AlertError(f"{where}: [notify.email] to names no recipient", retryable=False)
    message = alert_message(payload, sender=sender, to=to, now=now)
    password = env.get(smtp.password_env) if smtp.password_env else None
    try:
        smtp_send(message, [address.addr_spec for address in to], smtp, password)
    except SmtpFailure as e:
        raise AlertError(f"email: {e}", retryable=not e.permanent) from e
    return str(message["Message-ID"])


def _recipient(recipient: str) -> Address:
    try:
        return recipient_address(recipient)
    except SendError as e:
        raise SendError(f"[notify.email] to: {recipient!r} is not an email address") from e
