"""The webhook channel: one signed POST of an alert to the user's receiver."""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit

from aggregator.config import WebhookConfig
from aggregator.exceptions import AlertError, FetchError
from aggregator.notify.shape import retryable_status, webhook_request
from aggregator.sources.http import Transport, post
from aggregator.types import AlertPayload


def send_webhook(
    payload: AlertPayload,
    config: WebhookConfig,
    *,
    env: Mapping[str, str],
    transport: Transport | None = None,
) -> str:
    """POST one alert in the configured format, once.

    Args:
        payload: The alert.
        config: [notify.webhook].
        env: The environment the secret is read from (`secret_env`).
        transport: An httpx transport to use instead of the network (tests).

    Returns:
        E.g. "HTTP 200".

    Raises:
        AlertError: retryable for a 5xx, 408 or 429, a network error or the timeout; final
            for any other status, an unusable URL or format, or an unset secret variable.
    """
    where = f"webhook {redacted(config.url)}"
    secret = None
    if config.secret_env:
        secret = env.get(config.secret_env)
        if not secret:
            raise AlertError(
                f"{where}: the environment variable {config.secret_env} "
                "([notify.webhook] secret_env) is not set",
                retryable=False,
            )
    parts = urlsplit(config.url)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise AlertError(f"{where}: not an http(s) URL", retryable=False)
    try:
        request = webhook_request(payload, config.format, secret=secret)
    except ValueError as e:
        raise AlertError(f"{where}: {e}", retryable=False) from e
    try:
        answer = post(
            config.url,
            request.body,
            request.headers,
            timeout=config.timeout,
            transport=transport,
        )
    except FetchError as e:
        raise AlertError(f"{where}: {e.message}", retryable=True) from e
    status = f"HTTP {answer.status} {answer.reason}".rstrip()
    if 200 <= answer.status < 300:
        return f"HTTP {answer.status}"
    if 300 <= answer.status < 400:
        target = redacted(answer.location) if answer.location else "nowhere"
        raise AlertError(
            f"{where}: {status} to {target}: redirects are not followed for a POST; "
            "configure the final URL",
            retryable=False,
        )
    said = " ".join(answer.text.split())[:200]
    raise AlertError(
        f"{where}: {status}" + (f": {said}" if said else ""),
        retryable=retryable_status(answer.status),
    )


def redacted(url: str) -> str:
    """The URL as errors show it: scheme, host and port, with "/…" for a path or query.

    Chat services put the webhook's secret token in the path (Slack's
    /services/T…/B…/…, Discord's /api/webhooks/ID/TOKEN); errors are stored and shown
    by `status` and `alerts`, so they leave it out.
    """
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "(an unparsable URL)"
    if ":" in host:
        host = f"[{host}]"
    rest = "/…" if parts.path not in ("", "/") or parts.query else ""
    return f"{parts.scheme}://{host}{port}{rest}"
