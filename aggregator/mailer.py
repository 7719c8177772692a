"""Emails digests: once per digest and recipient, with retries of failed sends."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import NamedTuple

from aggregator.config import EmailConfig
from aggregator.exceptions import AggregatorError, ConfigError, SendError
from aggregator.parts import Part, Shared
from aggregator.publisher import Publisher, Window
from aggregator.storage import EmailDelivery
from aggregator.types import Digest, Format, SendStatus

log = logging.getLogger("aggregator")


class EmailResult(NamedTuple):
    """What happened to one recipient's copy of a digest."""

    digest: str  # the window name
    recipient: str
    status: SendStatus
    error: str | None = None


# A 'sending' claim older than this was left by a process that died mid-send.
EMAIL_CLAIM_STALE = timedelta(minutes=15)


class Mailer(Part):
    """Sends digests by email and retries the sends that failed."""

    def __init__(
        self, shared: Shared, publisher: Publisher, sleep: Callable[[float], None]
    ) -> None:
        super().__init__(shared)
        self._publisher = publisher  # makes a digest to send, when not given one
        self.sleep = sleep  # waits between email retries

    def email_config(self) -> EmailConfig:
        """The [digest.email] table, checked as far as it can be without sending.

        Raises:
            ConfigError: there is no [digest.email] table, or it has no recipients.
            SendError: the sender address is unusable.
        """
        from aggregator.digest.email import sender_address

        config = self.config.digest.email
        if config is None or not config.to:
            raise ConfigError(
                "no recipients: add a [digest.email] table with `to` to feeds.toml",
                path=str(self.config.path),
                key="digest.email.to",
            )
        sender_address(config)
        return config

    def send_digest_email(
        self,
        window: Window,
        digest: Digest | None = None,
        *,
        force: bool = False,
        send_empty: bool = False,
        recipients: Sequence[str] | None = None,
        retry_now: bool = True,
    ) -> list[EmailResult]:
        """Email the window's digest to each recipient that has not had it yet.

        At most once per digest and recipient (recorded in the database) unless `force`.
        Transient failures are retried a few times at once, then left to `retry_emails`.
        A digest with no story is not mailed (no result) unless [digest.email] send_empty,
        or `send_empty`.

        Args:
            window: The digest's window; its name keys the delivery records.
            digest: The digest, if already made.
            force: Send even to recipients who already had it.
            send_empty: Send even a digest with no story (`digest --email --force`, and
                the retry of a send once decided), whatever [digest.email] says.
            recipients: A subset of the configured recipients (default all).
            retry_now: Retry transient failures a few times at once (a few seconds apart);
                False makes one attempt each, for interactive use.

        Returns:
            One result per recipient; failures are recorded and returned, not raised.

        Raises:
            ConfigError: there is no [digest.email] table, or it has no recipients.
            SendError: the sender address is unusable.
            StorageError: the delivery records cannot be written.
        """
        from aggregator.digest.email import (
            RETRY_DELAYS,
            SendAttempt,
            build_message,
            next_retry,
            recipient_key,
            send,
            sender_address,
            worth_sending,
        )
        from aggregator.digest.render import render

        config = self.email_config()
        sender = sender_address(config)
        digest = digest if digest is not None else self._publisher.make_digest(window)
        if not worth_sending(digest, config, send_empty=send_empty):
            log.info(
                "digest %s has no story: not emailed (digest --email --force sends it; "
                "[digest.email] send_empty = true sends every one)",
                window.name,
            )
            return []
        base = self.config.digest.base_url
        web_url = f"{base}{window.name}.html" if base else None
        archive_url = f"{base}index.html" if base else None
        feed_url = f"{base}feed.xml" if base else None
        text = render(digest, Format.TEXT, web_url=web_url, archive_url=archive_url)
        html = render(
            digest, Format.HTML, web_url=web_url, archive_url=archive_url, feed_url=feed_url
        )
        password = os.environ.get(config.password_env) if config.password_env else None
        results = []
        for configured in recipients if recipients is not None else config.to:
            # Deliveries are recorded by address: "Name <a@b>" and "a@b" are one recipient.
            recipient = recipient_key(configured)
            previous = self.storage.claim_email(
                window.name, recipient, now=self.clock(), force=force, stale_after=EMAIL_CLAIM_STALE
            )
            if previous is None:
                log.debug("digest %s already emailed to %s", window.name, recipient)
                results.append(EmailResult(window.name, recipient, SendStatus.ALREADY_SENT))
                continue
            message_id = None
            try:
                outgoing = build_message(
                    digest,
                    text=text,
                    html=html,
                    sender=sender,
                    recipient=configured,
                    now=self.clock().astimezone(self._publisher.tz),
                    archive_url=archive_url,
                )
            except SendError as e:
                attempt = SendAttempt(False, 1, str(e), permanent=True)
            else:
                message_id = outgoing.message_id
                attempt = send(
                    outgoing,
                    config,
                    password=password,
                    sleep=self.sleep,
                    delays=RETRY_DELAYS if retry_now else (),
                )
            now = self.clock()
            retry_at = next_retry(attempt, previous + attempt.attempts, now)
            self.storage.record_email(
                window.name,
                recipient,
                now=now,
                ok=attempt.ok,
                attempts=attempt.attempts,
                error=attempt.error,
                message_id=message_id,
                next_attempt=retry_at,
            )
            if attempt.ok:
                log.debug("digest %s emailed to %s", window.name, recipient)
                results.append(EmailResult(window.name, recipient, SendStatus.SENT))
            else:
                when = f"; retry after {retry_at:%Y-%m-%d %H:%M} UTC" if retry_at else ""
                log.warning(
                    "digest %s not emailed to %s: %s%s", window.name, recipient, attempt.error, when
                )
                results.append(
                    EmailResult(window.name, recipient, SendStatus.FAILED, attempt.error)
                )
        return results

    def retry_emails(self) -> list[EmailResult]:
        """Resend the failed deliveries whose retry time has come (the daemon calls this).

        Returns:
            One result per delivery retried.

        Raises:
            SendError: the sender address is unusable.
            StorageError: the delivery records cannot be used.
        """
        from aggregator.digest.archive import parse_name
        from aggregator.digest.email import recipient_key

        config = self.config.digest.email
        if config is None or not config.to:
            return []
        configured = {recipient_key(to): to for to in config.to}
        results = []
        for due in self.storage.email_retries_due(self.clock()):
            window = parse_name(due.digest)
            if window is None or due.recipient not in configured:
                continue  # a recipient since removed from feeds.toml is not written to
            # Its sending was decided when it first failed, even with no story in it.
            results += self.send_digest_email(
                Window(*window),
                self._publisher.make_again(Window(*window)),
                send_empty=True,
                recipients=[configured[due.recipient]],
            )
        return results

    def email_status(self, *, limit: int = 20) -> list[EmailDelivery]:
        """The most recent email deliveries, newest first (for `aggregator status`)."""
        return self.storage.email_deliveries(limit=limit)

    def mail_daily(self, window: Window, digest: Digest) -> list[EmailResult]:
        """Email the daily digest when [digest.email] is configured, and retry the failed
        sends that are due; failures are logged and recorded, never raised."""
        emails: list[EmailResult] = []
        email = self.config.digest.email
        if email is not None and email.to:
            try:
                emails += self.send_digest_email(window, digest)
                emails += self.retry_emails()
            except AggregatorError as e:
                log.error("digest email: %s", e)
            for status in SendStatus:
                who = [f"{e.recipient} ({e.digest})" for e in emails if e.status == status]
                if who:
                    log.info("digest email %s: %s", status, ", ".join(who))
        return emails
