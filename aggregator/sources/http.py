"""HTTP fetching (httpx): the only module that imports httpx."""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from aggregator import USER_AGENT
from aggregator.exceptions import FetchError

Transport = httpx.BaseTransport  # what tests inject (e.g. httpx.MockTransport)
MAX_BODY = 10 * 1024 * 1024
ACCEPT = (
    "application/atom+xml, application/rss+xml, application/rdf+xml, application/feed+json, "
    "application/xml;q=0.9, text/xml;q=0.9, */*;q=0.5"
)


@dataclass(frozen=True)
class Response:
    """A fetched feed body and the headers the poller cares about."""

    url: str
    status: int
    body: bytes
    content_type: str | None


class Fetcher:
    """Fetches feed URLs with timeouts, a body limit and a User-Agent naming the project."""

    def __init__(
        self,
        *,
        transport: httpx.BaseTransport | None = None,
        timeout: float = 30.0,
        max_body: int = MAX_BODY,
    ) -> None:
        self.max_body = max_body
        self._client = httpx.Client(
            transport=transport,
            timeout=httpx.Timeout(timeout, connect=10.0),
            follow_redirects=True,
            headers={"User-Agent": USER_AGENT, "Accept": ACCEPT},
            max_redirects=10,
        )

    def close(self) -> None:
        self._client.close()

    def get(self, url: str) -> Response:
        """GET a feed, reading at most max_body bytes (after decompression).

        Raises:
            FetchError: network error, timeout, an error status, or a body over the limit.
        """
        try:
            with self._client.stream("GET", url) as response:
                if response.status_code >= 400:
                    raise FetchError(
                        url,
                        f"HTTP {response.status_code} {response.reason_phrase}",
                        status=response.status_code,
                    )
                chunks: list[bytes] = []
                size = 0
                for chunk in response.iter_bytes():
                    size += len(chunk)
                    if size > self.max_body:
                        raise FetchError(url, f"body larger than the {self.max_body} byte limit")
                    chunks.append(chunk)
                return Response(
                    url=str(response.url),
                    status=response.status_code,
                    body=b"".join(chunks),
                    content_type=response.headers.get("content-type"),
                )
        except httpx.TooManyRedirects as e:
            raise FetchError(url, "too many redirects") from e
        except httpx.TimeoutException as e:
            raise FetchError(url, f"timed out ({type(e).__name__})") from e
        except httpx.HTTPError as e:
            raise FetchError(url, f"network error: {e}") from e
