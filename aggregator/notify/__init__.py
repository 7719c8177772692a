"""The alert stage: delivering one watch's alert on one channel (email, webhook, command).

`deliver` makes one attempt and says how it went; retrying later (with backoff) and
recording what was sent is the caller's. What each channel sends is made purely in
`shape`; the webhook goes out through sources/http.py (httpx), the email through
digest/email.py's SMTP sender, the command as a subprocess.
"""

from __future__ import annotations

from collections.abc import Mapping

from aggregator.clock import Clock, now
from aggregator.config import Config
from aggregator.exceptions import AlertError
from aggregator.sources.http import Transport
from aggregator.types import AlertPayload

CHANNELS = ("email", "webhook", "command")

__all__ = ["CHANNELS", "Transport", "deliver"]


def deliver(
    channel: str,
    payload: AlertPayload,
    config: Config,
    *,
    env: Mapping[str, str],
    transport: Transport | None = None,
    clock: Clock = now,
) -> str | None:
    """Deliver one alert on one channel, once (no retry here).

    Args:
        channel: "email", "webhook" or "command" (a watch's `notify`).
        payload: The alert (the webhook `json` body, docs/alerts.md).
        config: The configuration: [notify.*], and [digest.email] for SMTP.
        env: The environment (secret_env, [digest.email] password_env), e.g. os.environ.
        transport: An httpx transport for the webhook instead of the network (tests).
        clock: The time an email is dated.

    Returns:
        A short receipt: "HTTP 200", the email's Message-ID, "exit 0".

    Raises:
        AlertError: the delivery failed. `retryable` is True when it may pass later (a
            5xx, 408 or 429, a network error or timeout, an SMTP 4xx or an unreachable
            server, a command that timed out or exited non-zero), False when it will not
            (another 4xx, a refused address, a missing command, a channel that is not
            configured, an unset environment variable). Nothing else is raised for a
            failed delivery.
    """
    try:
        return _deliver(channel, payload, config, env, transport, clock)
    except AlertError:
        raise
    except Exception as e:  # one channel's surprise must not stop the other alerts
        raise AlertError(
            f"{channel}: unexpected error: {type(e).__name__}: {e}", retryable=True
        ) from e


def _deliver(
    channel: str,
    payload: AlertPayload,
    config: Config,
    env: Mapping[str, str],
    transport: Transport | None,
    clock: Clock,
) -> str | None:
    notify = config.notify
    if channel == "webhook":
        if notify.webhook is None:
            raise _not_configured(channel)
        from aggregator.notify.webhook import send_webhook

        return send_webhook(payload, notify.webhook, env=env, transport=transport)
    if channel == "email":
        if notify.email is None:
            raise _not_configured(channel)
        from aggregator.notify.email import send_alert_email

        return send_alert_email(payload, notify.email, config.digest.email, env=env, now=clock())
    if channel == "command":
        if notify.command is None:
            raise _not_configured(channel)
        from aggregator.notify.command import run_command

        return run_command(payload, notify.command)
    raise AlertError(
        f"unknown alert channel {channel!r} (one of {', '.join(CHANNELS)})", retryable=False
    )


def _not_configured(channel: str) -> AlertError:
    return AlertError(
        f"{channel}: no [notify.{channel}] table in the configuration", retryable=False
    )
