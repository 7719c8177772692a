"""The Aggregator facade, and make_aggregator: the one place where the parts are wired."""

from __future__ import annotations

import logging
import os
import time as _time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import NamedTuple
from zoneinfo import ZoneInfo

from aggregator import clock as _clock
from aggregator.config import Config
from aggregator.dedup.group import group_stories
from aggregator.dedup.topics import group_by_topic
from aggregator.digest.archive import parse_name
from aggregator.digest.email import (
    RETRY_DELAYS,
    SendAttempt,
    build_message,
    next_retry,
    recipient_key,
    send,
    sender_address,
)
from aggregator.digest.render import render
from aggregator.digest.write import write_archive, write_atomic
from aggregator.exceptions import AggregatorError, ConfigError, SendError
from aggregator.sources.files import read_source
from aggregator.sources.http import Fetcher, Transport
from aggregator.sources.parse import parse_feed
from aggregator.storage import EmailDelivery, SqliteStorage, open_storage
from aggregator.types import Digest, Feed, Format, ParsedFeed, PollResult, SourceKind

log = logging.getLogger("aggregator")

EXTENSIONS = {Format.HTML: "html", Format.TEXT: "txt", Format.JSON: "json"}


@dataclass(frozen=True)
class Window:
    """A digest's time window: whole days [first, last] in the digest timezone."""

    first: date
    last: date

    @property
    def name(self) -> str:
        return self.first.isoformat() if self.first == self.last else f"{self.first}_{self.last}"


class EmailResult(NamedTuple):
    """What happened to one recipient's copy of a digest."""

    digest: str  # the window name
    recipient: str
    status: str  # "sent", "already sent" or "failed"
    error: str | None = None


class Published(NamedTuple):
    """What `Aggregator.publish_daily` did."""

    window: Window
    digest: Digest
    paths: tuple[Path, ...]
    emails: tuple[EmailResult, ...] = ()


# A 'sending' claim older than this was left by a process that died mid-send.
EMAIL_CLAIM_STALE = timedelta(minutes=15)


class Aggregator:
    """Polls the configured sources into storage and makes digests from it."""

    def __init__(
        self,
        config: Config,
        storage: SqliteStorage,
        fetcher: Fetcher,
        clock: _clock.Clock,
        sleep: Callable[[float], None] = _time.sleep,
    ) -> None:
        self.config = config
        self.storage = storage
        self.fetcher = fetcher
        self.clock = clock
        self.sleep = sleep  # waits between email retries
        self.storage.sync_feeds(config.feeds, clock())

    def close(self) -> None:
        self.fetcher.close()
        self.storage.close()

    def __enter__(self) -> Aggregator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- polling -------------------------------------------------------------------------

    def read(self, feed: Feed) -> ParsedFeed:
        """Fetch and parse one feed's current entries, storing nothing.

        Raises:
            FetchError, ParseError: the source could not be read.
        """
        tz = ZoneInfo(feed.timezone) if feed.timezone else None
        if feed.kind is SourceKind.FILE:
            assert feed.path is not None
            return read_source(feed.path, default_tz=tz, default_language=feed.language)
        response = self.fetcher.get(feed.url)
        return parse_feed(
            response.body,
            feed.url,
            content_type=response.content_type,
            default_tz=tz,
            default_language=feed.language,
        )

    def poll_feed(self, feed: Feed) -> PollResult:
        """Poll one feed and store what changed; a failure is recorded, never raised."""
        started = _time.monotonic()
        now = self.clock()
        try:
            parsed = self.read(feed)
        except AggregatorError as e:
            seconds = _time.monotonic() - started
            self.storage.record_failure(feed, str(e), now=now, seconds=seconds)
            log.warning("%s: error: %s (%.2fs)", feed.name, e, seconds)
            return PollResult(feed.url, feed.name, "error", 0, 0, str(e), seconds)
        warning = "; ".join(parsed.warnings) or None
        seconds = _time.monotonic() - started
        saved = self.storage.save_poll(
            feed, parsed.entries, now=now, seconds=seconds, title=parsed.title, error=warning
        )
        if warning:
            log.warning("%s: %s", feed.name, warning)
        log.info("%s: ok, %d new, %d updated (%.2fs)", feed.name, saved.new, saved.updated, seconds)
        return PollResult(feed.url, feed.name, "ok", saved.new, saved.updated, warning, seconds)

    def poll(self, on_result: Callable[[PollResult], None] | None = None) -> list[PollResult]:
        """One pass over every configured feed."""
        results = []
        for feed in self.config.feeds:
            result = self.poll_feed(feed)
            if on_result is not None:
                on_result(result)
            results.append(result)
        return results

    # --- digests -------------------------------------------------------------------------

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.config.digest.timezone)

    def today(self) -> date:
        return self.clock().astimezone(self.tz).date()

    def make_digest(self, window: Window) -> Digest:
        """Collect the window's entries into stories under topics."""
        since = datetime.combine(window.first, datetime.min.time(), self.tz)
        until = datetime.combine(window.last + timedelta(days=1), datetime.min.time(), self.tz)
        entries = self.storage.entries_between(since, until)
        topics = group_by_topic(group_stories(entries), self.config.topics)
        return Digest(
            since=since,
            until=until,
            generated_at=self.clock(),
            timezone=self.config.digest.timezone,
            topics=topics,
            new_feeds=tuple(self.storage.feeds_added_between(since, until)),
        )

    def digest_path(self, window: Window, fmt: Format) -> Path:
        return self.config.digest.output / f"{window.name}.{EXTENSIONS[fmt]}"

    def write_digest(self, digest: Digest, fmt: Format, path: Path) -> Path:
        """Render the digest and write it atomically to `path` (a file of its own, not archived).

        Raises:
            AggregatorError: the file cannot be written.
        """
        write_atomic(path, render(digest, fmt))
        return path

    def write_digest_files(self, window: Window, digest: Digest) -> tuple[Path, ...]:
        """Write the window's digest into the output folder in every format, then the archive.

        The files are ``<window name>.html``, ``.txt`` and ``.json``; index.html and
        feed.xml are then rewritten to include them.

        Returns:
            The paths written, in Format order, then index.html and feed.xml.

        Raises:
            AggregatorError: a file cannot be written.
        """
        base_url = self.config.digest.base_url
        paths = []
        for fmt in Format:
            path = self.digest_path(window, fmt)
            if fmt is Format.HTML:
                # The page sits next to the archive, so relative links always work.
                text = render(digest, fmt, archive_url="index.html", feed_url="feed.xml")
            elif fmt is Format.TEXT:
                index = f"{base_url}index.html" if base_url else None
                text = render(digest, fmt, archive_url=index)
            else:
                text = render(digest, fmt)
            write_atomic(path, text)
            paths.append(path)
        return (*paths, *self.write_archive())

    def write_archive(self) -> tuple[Path, Path]:
        """Rewrite the output folder's index.html and feed.xml from the digests it holds.

        Raises:
            AggregatorError: a file cannot be written.
        """
        return write_archive(
            self.config.digest.output,
            now=self.clock(),
            timezone=self.config.digest.timezone,
            base_url=self.config.digest.base_url,
        )

    def publish_daily(self, window: Window | None = None, *, send_email: bool = True) -> Published:
        """The daily job: write the last whole day's digest in every format, and the archive,
        then email it when [digest.email] is configured.

        Files come first and do not depend on the email: a failed send is recorded (see
        `email_status`) and retried later (`retry_emails`, also called here), never raised.

        Args:
            window: The window to publish; default yesterday in the digest timezone.
            send_email: False to write the files only.

        Returns:
            The window, the digest, the files written and what happened to each email.

        Raises:
            AggregatorError: a file cannot be written.
        """
        if window is None:
            yesterday = self.today() - timedelta(days=1)
            window = Window(yesterday, yesterday)
        digest = self.make_digest(window)
        paths = self.write_digest_files(window, digest)
        for path in paths:
            log.info("digest written: %s", path)
        emails: list[EmailResult] = []
        email = self.config.digest.email
        if send_email and email is not None and email.to:
            try:
                emails += self.send_digest_email(window, digest)
                emails += self.retry_emails()
            except AggregatorError as e:
                log.error("digest email: %s", e)
            for status in ("sent", "already sent", "failed"):
                who = [f"{e.recipient} ({e.digest})" for e in emails if e.status == status]
                if who:
                    log.info("digest email %s: %s", status, ", ".join(who))
        return Published(window, digest, paths, tuple(emails))

    # --- email ---------------------------------------------------------------------------

    def send_digest_email(
        self,
        window: Window,
        digest: Digest | None = None,
        *,
        force: bool = False,
        recipients: Sequence[str] | None = None,
        retry_now: bool = True,
    ) -> list[EmailResult]:
        """Email the window's digest to each recipient that has not had it yet.

        At most once per digest and recipient (recorded in the database) unless `force`.
        Transient failures are retried a few times at once, then left to `retry_emails`.

        Args:
            window: The digest's window; its name keys the delivery records.
            digest: The digest, if already made.
            force: Send even to recipients who already had it.
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
        config = self.config.digest.email
        if config is None or not config.to:
            raise ConfigError(
                "no recipients: add a [digest.email] table with `to` to feeds.toml",
                path=str(self.config.path),
                key="digest.email.to",
            )
        sender = sender_address(config)
        digest = digest if digest is not None else self.make_digest(window)
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
                results.append(EmailResult(window.name, recipient, "already sent"))
                continue
            message_id = None
            try:
                outgoing = build_message(
                    digest,
                    text=text,
                    html=html,
                    sender=sender,
                    recipient=configured,
                    now=self.clock().astimezone(self.tz),
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
                results.append(EmailResult(window.name, recipient, "sent"))
            else:
                when = f"; retry after {retry_at:%Y-%m-%d %H:%M} UTC" if retry_at else ""
                log.warning(
                    "digest %s not emailed to %s: %s%s", window.name, recipient, attempt.error, when
                )
                results.append(EmailResult(window.name, recipient, "failed", attempt.error))
        return results

    def retry_emails(self) -> list[EmailResult]:
        """Resend the failed deliveries whose retry time has come (the daemon calls this).

        Returns:
            One result per delivery retried.

        Raises:
            SendError: the sender address is unusable.
            StorageError: the delivery records cannot be used.
        """
        config = self.config.digest.email
        if config is None or not config.to:
            return []
        configured = {recipient_key(to): to for to in config.to}
        results = []
        for due in self.storage.email_retries_due(self.clock()):
            window = parse_name(due.digest)
            if window is None or due.recipient not in configured:
                continue  # a recipient since removed from feeds.toml is not written to
            results += self.send_digest_email(
                Window(*window), recipients=[configured[due.recipient]]
            )
        return results

    def email_status(self, *, limit: int = 20) -> list[EmailDelivery]:
        """The most recent email deliveries, newest first (for `aggregator status`)."""
        return self.storage.email_deliveries(limit=limit)


def make_aggregator(
    config: Config,
    *,
    storage: SqliteStorage | None = None,
    transport: Transport | None = None,
    clock: _clock.Clock | None = None,
    sleep: Callable[[float], None] | None = None,
) -> Aggregator:
    """Wire an Aggregator from its config; tests inject storage, transport, clock and sleep.

    Raises:
        StorageError: the database cannot be opened.
    """
    return Aggregator(
        config,
        storage if storage is not None else open_storage(config.storage_path),
        Fetcher(transport=transport),
        clock or _clock.now,
        sleep or _time.sleep,
    )
