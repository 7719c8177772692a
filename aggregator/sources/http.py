"""HTTP fetching (httpx, async): the only module that imports httpx.

One `Fetcher` owns one `httpx.AsyncClient` running on a private event loop in a
background thread, so that both a batch (`fetch_many`, for `aggregator poll`) and single
calls from any worker thread (`fetch`, for the daemon) share the same connection pool
and the same limits:

* at most `concurrency` fetches at once, and at most `per_host` per host;
* `timeout` to connect and between two reads, and a `deadline` for the whole fetch, so
  a server that trickles bytes is cut off;
* at most `max_body` bytes, counted while streaming and again after decompression (the
  body is decompressed here, chunk by chunk, never past the limit: a gzip bomb is
  refused after `max_body` bytes of output);
* conditional GET (If-None-Match / If-Modified-Since);
* redirects followed by hand: 301/308 report the new permanent URL, 302/303/307 are
  followed silently, and a redirect from a public address to a loopback, private or
  link-local one is refused (server-side request forgery) unless allowed.
"""

# ruff: noqa: E402 (httpx is imported after keeping its command line out: see there)
from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import ipaddress
import queue
import socket
import ssl
import sys
import threading
import time
import zlib
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple, TypeVar
from urllib.parse import urljoin, urlsplit

# httpx's __init__ imports its command-line client, and with it click, rich and pygments
# (~35 ms a process) when they are installed, as they are with this package. A None entry
# for that module makes the import fail as if they were not, and httpx then defines a stub
# `main` instead; nothing here uses httpx's command line.
sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]

import httpcore
import httpx

from aggregator import USER_AGENT
from aggregator.config import PollConfig
from aggregator.config.identity import is_http_url
from aggregator.exceptions import FeedGoneError, FetchError

Transport = httpx.AsyncBaseTransport  # what tests inject (e.g. httpx.MockTransport)
#: host -> its IP addresses; tests inject one to stand for DNS.
Resolver = Callable[[str], Awaitable[list[str]]]

_DEFAULTS = PollConfig()  # the [poll] defaults: config.py is their one source
MAX_REDIRECTS = 10
#: Seconds an idle connection is kept for the next fetch from its host: under the 5 s
#: idle timeout of common servers (Apache's), so that few are closed by the server just
#: as they are reused (one that is gets one more try on a new connection: `_send`).
KEEPALIVE = 4.0
ACCEPT = (
    "application/atom+xml, application/rss+xml, application/rdf+xml, application/feed+json, "
    "application/xml;q=0.9, text/xml;q=0.9, application/json;q=0.8, */*;q=0.5"
)
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_PERMANENT = frozenset({301, 308})
_T = TypeVar("_T")


class FetchLimits(NamedTuple):
    """How much a Fetcher may do (from the [poll] table)."""

    concurrency: int = _DEFAULTS.concurrency
    per_host: int = _DEFAULTS.per_host
    timeout: float = _DEFAULTS.timeout
    deadline: float = _DEFAULTS.deadline
    max_body: int = _DEFAULTS.max_body
    allow_private_redirects: bool = _DEFAULTS.allow_private_redirects

    @classmethod
    def from_config(cls, poll: PollConfig) -> FetchLimits:
        """The fetch limits of a [poll] table."""
        return cls(
            concurrency=poll.concurrency,
            per_host=poll.per_host,
            timeout=poll.timeout,
            deadline=poll.deadline,
            max_body=poll.max_body,
            allow_private_redirects=poll.allow_private_redirects,
        )


class Request(NamedTuple):
    """What to fetch, with the validators of the copy we already have."""

    url: str
    etag: str | None = None
    last_modified: str | None = None


@dataclass(frozen=True)
class Response:
    """A fetched feed body (empty for 304) and the headers the poller cares about."""

    url: str  # where the answer came from, after redirects
    status: int
    body: bytes
    content_type: str | None
    etag: str | None = None
    last_modified: str | None = None
    cache_control: str | None = None
    expires: str | None = None
    permanent_url: str | None = None  # set when a 301/308 moved the feed
    #: How long the fetch took, from getting its slot (per host and overall) to the last
    #: byte: the time spent waiting for the slot is not in it.
    seconds: float = 0.0
    #: When the last byte was read (`time.monotonic()`): how long the answer then waited to
    #: be parsed and stored is measured from it (`Poller.stored_after`).
    received: float = 0.0

    @property
    def not_modified(self) -> bool:
        return self.status == 304


async def system_resolver(host: str) -> list[str]:
    """The host's addresses from the system resolver ([] when it cannot be resolved)."""
    literal = _ip(host)
    if literal is not None:
        return [str(literal)]
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return []
    return sorted({str(info[4][0]) for info in infos})


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(text.strip("[]").split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    return address


def is_public(address: str) -> bool:
    """True for a globally routable unicast address (not loopback, private, link-local...)."""
    ip = _ip(address)
    return ip is not None and ip.is_global and not ip.is_multicast


class _Arrivals(Iterator[tuple[Request, "Response | FetchError"]]):
    """`Fetcher.fetch_many`'s iterator: closed, or dropped, before its end (even before its
    first item: a generator not started runs no `finally`), it cancels the fetches not done."""

    def __init__(
        self,
        arriving: Iterator[tuple[Request, Response | FetchError]],
        futures: Iterable[concurrent.futures.Future[Response]],
    ) -> None:
        self._arriving = arriving
        self._futures = list(futures)

    def __next__(self) -> tuple[Request, Response | FetchError]:
        return next(self._arriving)

    def close(self) -> None:
        close = getattr(self._arriving, "close", None)
        if close is not None:
            close()
        for future in self._futures:
            future.cancel()

    def __del__(self) -> None:
        self.close()


#: How often a thread waiting for fetches wakes (seconds), so that the main thread raises
#: KeyboardInterrupt soon after Ctrl-C, whichever thread the kernel gave the signal to.
SIGNAL_WAKE = 0.2


class Fetcher:
    """Fetches feed URLs politely and within limits; usable from any thread.

    Args:
        limits: Concurrency, timeouts and the body limit (default: FetchLimits()).
        transport: An httpx transport to use instead of the network (tests).
        resolver: Resolves host names for the redirect check (default: the system's).
        tls: The TLS context, being made meanwhile (`tls.context_soon`); default: httpx's.
    """

    def __init__(
        self,
        limits: FetchLimits | None = None,
        *,
        transport: Transport | None = None,
        resolver: Resolver | None = None,
        tls: concurrent.futures.Future[ssl.SSLContext] | None = None,
    ) -> None:
        self.limits = limits = limits or FetchLimits()
        self._resolve = resolver or system_resolver
        # The client first: one that cannot be made (an unreadable CA file) leaves no thread.
        self._client = httpx.AsyncClient(
            transport=transport,  # None: httpx's own, and the proxies the environment sets
            verify=True if tls is None else tls.result(),  # (the same: `tls.default_context`)
            timeout=httpx.Timeout(limits.timeout, pool=None),
            follow_redirects=False,  # followed by hand, to check and record each hop
            headers={
                "User-Agent": USER_AGENT,
                "Accept": ACCEPT,
                "Accept-Encoding": "gzip, deflate",  # only what _read_body can decompress
            },
            limits=httpx.Limits(
                max_connections=None,
                max_keepalive_connections=limits.concurrency,
                keepalive_expiry=KEEPALIVE,
            ),
        )
        if transport is None:
            _linear_pool(self._client)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="aggregator-http", daemon=True
        )
        self._thread.start()
        self._all = asyncio.Semaphore(limits.concurrency)
        self._hosts: dict[str, asyncio.Semaphore] = {}
        self.closed = False

    # --- the synchronous face ------------------------------------------------------------

    def __enter__(self) -> Fetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Abandon fetches in flight (they fail with "shutting down") and close the client."""
        if self.closed:
            return
        self.closed = True
        try:
            asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(timeout=10)
        except (concurrent.futures.TimeoutError, RuntimeError):
            pass  # a stuck close must not keep the process from exiting
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        if not self._thread.is_alive():
            self._loop.close()

    def get(self, url: str) -> Response:
        """GET a URL unconditionally (see `fetch`).

        Raises:
            FetchError: see `fetch`.
        """
        return self.fetch(Request(url))

    def fetch(self, request: Request) -> Response:
        """Fetch one feed; safe to call from several threads at once.

        Raises:
            FeedGoneError: HTTP 410.
            FetchError: a network error, a timeout, the deadline, an error status (429 and
                503 carry Retry-After), a body over the limit, a refused redirect, or the
                fetcher was closed.
        """
        return self._result(request, self._submit(self.afetch(request)))

    def fetch_many(
        self, requests: Iterable[Request]
    ) -> Iterator[tuple[Request, Response | FetchError]]:
        """Start fetching many feeds concurrently (within the limits), now.

        Returns:
            An iterator of (request, response or error), each as it completes; `request`
            is the very object passed in, so callers may map results by identity. The fetches
            run while the caller does other work; leaving the loop early (or dropping the
            iterator) cancels those not yet done.
        """
        futures = {self._submit(self.afetch(r)): r for r in requests}
        return _Arrivals(self._as_completed(futures), futures)

    def _as_completed(
        self, futures: dict[concurrent.futures.Future[Response], Request]
    ) -> Iterator[tuple[Request, Response | FetchError]]:
        # Each fetch as it ends, in the order they end; waited for in turns (see `_result`).
        ended: queue.SimpleQueue[concurrent.futures.Future[Response]] = queue.SimpleQueue()
        try:
            for future in futures:
                future.add_done_callback(ended.put)
            for _ in range(len(futures)):
                while True:
                    try:
                        future = ended.get(timeout=SIGNAL_WAKE)
                        break
                    except queue.Empty:
                        continue  # none ended this turn: wait again
                request = futures[future]
                try:
                    result = self._result(request, future)
                except FetchError as e:
                    yield request, e
                else:
                    yield request, result
        finally:
            for future in futures:
                future.cancel()

    def _submit(self, coro: Coroutine[Any, Any, _T]) -> concurrent.futures.Future[_T]:
        if self.closed:
            coro.close()
            raise RuntimeError("the fetcher is closed")
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    @staticmethod
    def _result(request: Request, future: concurrent.futures.Future[Response]) -> Response:
        # Waited for in turns: a signal (Ctrl-C) the kernel gives to another thread is
        # handled by the main thread only once it wakes, which a wait without a timeout
        # does only when the fetch ends (a slow feed: up to the deadline).
        while not concurrent.futures.wait([future], SIGNAL_WAKE).done:
            pass
        try:
            return future.result()
        except concurrent.futures.CancelledError as e:
            raise FetchError(request.url, "cancelled: shutting down") from e

    async def _shutdown(self) -> None:
        current = asyncio.current_task()
        tasks = [t for t in asyncio.all_tasks() if t is not current]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._client.aclose()

    def watch_loop(self, every: float = 0.005) -> Callable[[], list[float]]:
        """Start measuring how late the fetcher's event loop wakes (a timer of `every`
        seconds, again and again): what the GIL held by other threads (parsing, placing)
        costs the fetches in flight. Returns what stops it and gives the lateness of each
        wake-up, in seconds (bench/poll.py)."""
        late: list[float] = []
        stop = threading.Event()

        async def watch() -> None:
            loop = asyncio.get_running_loop()
            while not stop.is_set():
                asked = loop.time()
                await asyncio.sleep(every)
                late.append(loop.time() - asked - every)

        future = self._submit(watch())

        def stopped() -> list[float]:
            stop.set()
            with contextlib.suppress(Exception):
                future.result(timeout=1)
            return late

        return stopped

    # --- the asynchronous work -------------------------------------------------------------

    async def afetch(self, request: Request) -> Response:
        """The coroutine behind `fetch` (it must run on this fetcher's loop).

        Raises:
            FetchError: see `fetch`.
        """
        host = (urlsplit(request.url).hostname or "").lower()
        per_host = self._hosts.setdefault(host, asyncio.Semaphore(self.limits.per_host))
        # Host first: a fetch waiting for its host must not hold one of the global slots.
        async with per_host, self._all:
            # Timed from here: the wait for a slot is the other fetches' time, not this one's.
            began = time.monotonic()
            try:
                response = await self._within_deadline(request)
            except FetchError as e:
                e.seconds = time.monotonic() - began
                raise
            done = time.monotonic()
            return dataclasses.replace(response, seconds=done - began, received=done)

    async def _within_deadline(self, request: Request) -> Response:
        """The fetch itself, its errors translated to FetchError."""
        try:
            async with asyncio.timeout(self.limits.deadline):
                return await self._follow(request)
        except TimeoutError as e:
            raise FetchError(
                request.url,
                f"no complete answer within the {self.limits.deadline:g}s deadline",
            ) from e
        except httpx.TimeoutException as e:
            raise FetchError(request.url, f"timed out ({type(e).__name__})") from e
        except (httpx.HTTPError, httpx.InvalidURL, httpx.StreamError) as e:
            raise FetchError(request.url, f"network error: {e or type(e).__name__}") from e
        except (ValueError, UnicodeError) as e:  # e.g. a header httpx cannot encode
            raise FetchError(request.url, f"bad request or response: {e}") from e
        except FetchError:
            raise
        except Exception as e:  # one feed's surprise must not end everyone's poll
            raise FetchError(request.url, f"unexpected error: {_described(e)}") from e

    async def _follow(self, request: Request) -> Response:
        url = request.url
        permanent: str | None = None
        only_permanent = True  # a 301 after a 302 is not a move of the feed itself
        headers = {}
        if request.etag:
            headers["If-None-Match"] = request.etag
        if request.last_modified:
            headers["If-Modified-Since"] = request.last_modified
        for _ in range(MAX_REDIRECTS + 1):
            response = await self._send(url, headers)
            try:
                status = response.status_code
                location = response.headers.get("location")
                if status in _REDIRECTS and location:
                    target = urljoin(url, location.strip())
                    if urlsplit(target).scheme.lower() not in ("http", "https"):
                        raise FetchError(request.url, f"redirect to a non-HTTP URL: {target}")
                    if not is_http_url(target):  # else httpx fails in its own words, or none
                        raise FetchError(request.url, f"redirect to a malformed URL: {target}")
                    await self._check_redirect(request.url, url, target)
                    if only_permanent and status in _PERMANENT:
                        permanent = target
                    else:
                        only_permanent = False
                    url = target
                    continue
                if status == 304:
                    if _bodiless(response):
                        # Read its (empty) end: a response left unread closes its
                        # connection, and the next fetch would pay a new one.
                        async for _ in response.aiter_raw():
                            pass
                    # Else its connection is closed: a server that sends a body with a 304
                    # (h11 reads none) would have its bytes taken for the next answer.
                    return self._response(response, url, b"", permanent)
                if status >= 400 or status in _REDIRECTS:
                    raise _status_error(request.url, response)
                body = await self._read_body(request.url, response)
                return self._response(response, url, body, permanent)
            finally:
                await response.aclose()
        raise FetchError(request.url, f"more than {MAX_REDIRECTS} redirects")

    async def _send(self, url: str, headers: dict[str, str]) -> httpx.Response:
        """GET `url`, its headers read; once more on a new connection if the server closed a
        kept-alive one as it was reused (before answering: a GET may be sent again)."""
        request = self._client.build_request("GET", url, headers=headers)
        try:
            return await self._client.send(request, stream=True)
        except httpx.RemoteProtocolError:
            return await self._client.send(request, stream=True)

    @staticmethod
    def _response(
        response: httpx.Response, url: str, body: bytes, permanent: str | None
    ) -> Response:
        get = response.headers.get
        return Response(
            url=url,
            status=response.status_code,
            body=body,
            content_type=get("content-type"),
            etag=get("etag"),
            last_modified=get("last-modified"),
            cache_control=get("cache-control"),
            expires=get("expires"),
            permanent_url=permanent,
        )

    async def _check_redirect(self, feed_url: str, origin: str, target: str) -> None:
        """Refuse a hop from a public address to a non-public one (SSRF).

        A feed configured on a private address may redirect within private addresses: the
        user pointed us there. What is refused is a public server sending us inside.
        """
        if self.limits.allow_private_redirects:
            return
        origin_host = urlsplit(origin).hostname or ""
        target_host = urlsplit(target).hostname or ""
        origin_addresses = await self._resolve(origin_host)
        if not origin_addresses or not all(is_public(a) for a in origin_addresses):
            return
        private = [a for a in await self._resolve(target_host) if not is_public(a)]
        if private:
            raise FetchError(
                feed_url,
                f"refused a redirect from {origin_host} (public) to {target} "
                f"({private[0]}, a loopback, private or link-local address); "
                "set [poll] allow_private_redirects = true to allow it",
            )

    async def _read_body(self, feed_url: str, response: httpx.Response) -> bytes:
        limit = self.limits.max_body
        declared = response.headers.get("content-length", "").strip()
        if declared.isdigit() and int(declared) > limit:
            raise FetchError(feed_url, f"body of {int(declared)} bytes is over the {limit} limit")
        codings = [
            c.strip().lower()
            for c in response.headers.get("content-encoding", "").split(",")
            if c.strip() and c.strip().lower() != "identity"
        ]
        decoder = None
        if codings:
            if len(codings) > 1 or codings[0] not in ("gzip", "x-gzip", "deflate"):
                raise FetchError(feed_url, f"unsupported Content-Encoding {', '.join(codings)}")
            decoder = zlib.decompressobj(wbits=47)  # 32+15: gzip or zlib, detected
        received = 0
        size = 0
        chunks: list[bytes] = []
        try:
            async for raw in response.aiter_raw():
                received += len(raw)
                if received > limit:
                    raise FetchError(feed_url, f"body larger than the {limit} byte limit")
                # Decompress no further than one byte past the limit, however dense the input.
                data = decoder.decompress(raw, limit - size + 1) if decoder else raw
                size += len(data)
                if size > limit:
                    raise FetchError(
                        feed_url, f"body larger than the {limit} byte limit after decompression"
                    )
                chunks.append(data)
            if decoder is not None:
                tail = decoder.flush()
                size += len(tail)
                if size > limit:
                    raise FetchError(
                        feed_url, f"body larger than the {limit} byte limit after decompression"
                    )
                chunks.append(tail)
        except zlib.error as e:
            raise FetchError(feed_url, f"cannot decompress the body: {e}") from e
        return b"".join(chunks)


class _LinearPool(httpcore.AsyncConnectionPool):
    """httpcore's connection pool with a linear assignment pass.

    httpcore 1.0's pass (run when a request starts and when a response is closed) compares
    every idle connection with every connection and asks each idle socket whether the
    server closed it (`has_expired`: a `getpeername` and a `poll`), so with 32 kept-alive
    connections it cost more than the request itself, and it handed one idle connection to
    several queued requests, which then failed over and ran the pass again
    (encode/httpcore#1035, #1110, unmerged). Here the pass walks the connections once,
    keeps the newest `max_keepalive_connections` idle ones (httpcore counted every
    connection as idle), and asks an idle socket whether it is still open only when it is
    about to be reused: a closed one is dropped and the next one tried (so an idle
    connection past its expiry stays in the pool, at most `max_keepalive_connections` of
    them, until it is reused, dropped as surplus or the pool is closed). An idle connection
    assigned to a queued request is reserved until that request starts on it. Installed by
    `_linear_pool` by setting the class of the pool httpx made (same state, this one method
    differs).
    """

    def _assign_requests_to_connections(self) -> list[httpcore.AsyncConnectionInterface]:
        reserved = {id(r.connection) for r in self._requests if r.connection is not None}
        self._connections = [c for c in self._connections if not c.is_closed()]
        idle = [c for c in self._connections if c.is_idle() and id(c) not in reserved]
        # The oldest idle connections beyond the keep-alive limit are closed.
        closing = idle[: max(0, len(idle) - self._max_keepalive_connections)]
        if closing:
            surplus = {id(c) for c in closing}
            self._connections = [c for c in self._connections if id(c) not in surplus]
        for pool_request in self._requests:
            if not pool_request.is_queued():
                continue
            origin = pool_request.request.url.origin
            chosen = None
            for connection in list(self._connections):
                if id(connection) in reserved or not (
                    connection.can_handle_request(origin) and connection.is_available()
                ):
                    continue
                if connection.is_idle() and connection.has_expired():
                    self._connections.remove(connection)
                    closing.append(connection)
                    continue
                chosen = connection
                break
            if chosen is None:
                if len(self._connections) >= self._max_connections:
                    spare = next(
                        (c for c in self._connections if c.is_idle() and id(c) not in reserved),
                        None,
                    )
                    if spare is None:
                        break  # every connection is busy: the rest wait for one to close
                    self._connections.remove(spare)
                    closing.append(spare)
                chosen = self.create_connection(origin)
                self._connections.append(chosen)
            reserved.add(id(chosen))
            pool_request.assign_to_connection(chosen)
        return closing


def _bodiless(response: httpx.Response) -> bool:
    """Whether a 304's headers announce no body (RFC 9110 allows a Content-Length there, the
    length of the representation; a server might also send that many bytes)."""
    headers = response.headers
    return "transfer-encoding" not in headers and headers.get("content-length", "0") == "0"


def _linear_pool(client: httpx.AsyncClient) -> None:
    """Give the direct connections of httpx's transport `_LinearPool`'s assignment pass.

    Proxies' pools (mounted from the environment) are left as httpx made them, and so is
    every pool under an httpcore other than the 1.0 whose method `_LinearPool` replaces.
    """
    pool = getattr(getattr(client, "_transport", None), "_pool", None)
    if type(pool) is httpcore.AsyncConnectionPool and httpcore.__version__.startswith("1.0."):
        pool.__class__ = _LinearPool


def _described(error: BaseException) -> str:
    """An unexpected error in words: anyio wraps one failure (a socket's OverflowError)
    in an ExceptionGroup whose own words ("unhandled errors in a TaskGroup") say nothing."""
    while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
        error = error.exceptions[0]
    return f"{type(error).__name__}: {error}"


def _status_error(feed_url: str, response: httpx.Response) -> FetchError:
    status = response.status_code
    phrase = f"HTTP {status} {response.reason_phrase}".rstrip()
    if status == 410:
        return FeedGoneError(feed_url, f"{phrase}: the feed was removed", status=status)
    retry_after = response.headers.get("retry-after")
    if status in (429, 503) and retry_after:
        return FetchError(
            feed_url,
            f"{phrase} (Retry-After: {retry_after})",
            status=status,
            retry_after=retry_after,
        )
    if status in _REDIRECTS:
        return FetchError(feed_url, f"{phrase} without a Location", status=status)
    return FetchError(feed_url, phrase, status=status)


# --- one POST (alert webhooks) ------------------------------------------------------------

#: At most this much of a webhook receiver's answer is read (its start shows in errors).
POST_ANSWER_LIMIT = 4096


class Posted(NamedTuple):
    """A receiver's answer to a POST: its status and the start of its body."""

    status: int
    reason: str
    text: str  # at most POST_ANSWER_LIMIT bytes of the body, decoded leniently
    location: str | None = None  # a redirect's target (redirects are not followed)


def post(
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    *,
    timeout: float,
    transport: Transport | None = None,
) -> Posted:
    """POST `body` to `url` once, within `timeout` seconds for the whole exchange.

    Unlike feed fetches, the URL is the user's own receiver: a loopback or private
    address is fine, and no redirect is followed (a POST must not be replayed elsewhere).
    Callable from any thread; it runs its own short-lived event loop.

    Args:
        url: An http(s) URL.
        body: The exact bytes to send.
        headers: Content-Type and any others (values must be ASCII).
        timeout: Seconds for connecting, sending and reading the answer, all together:
            a receiver that accepts the connection and never answers is cut then.
        transport: An httpx transport to use instead of the network (tests).

    Returns:
        The status, reason and the start of the answer, whatever the status.

    Raises:
        FetchError: the URL is unusable, the connection failed, or no complete answer came
            within `timeout`.
    """
    coro = _post(url, body, headers, timeout, transport)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    # Called from a thread that runs an event loop: use a fresh thread for this one.
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="aggregator-post") as pool:
        return pool.submit(asyncio.run, coro).result()


async def _post(
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    timeout: float,
    transport: Transport | None,
) -> Posted:
    try:
        async with (
            asyncio.timeout(timeout),
            httpx.AsyncClient(
                transport=transport,
                timeout=httpx.Timeout(timeout),
                follow_redirects=False,
                headers={"User-Agent": USER_AGENT, "Accept-Encoding": "identity"},
            ) as client,
            client.stream("POST", url, content=body, headers=dict(headers)) as response,
        ):
            answer = bytearray()
            async for chunk in response.aiter_raw():
                answer += chunk
                if len(answer) >= POST_ANSWER_LIMIT:
                    break
            return Posted(
                response.status_code,
                response.reason_phrase,
                bytes(answer[:POST_ANSWER_LIMIT]).decode("utf-8", "replace"),
                response.headers.get("location"),
            )
    except TimeoutError as e:
        raise FetchError(url, f"no complete answer within {timeout:g}s") from e
    except httpx.TimeoutException as e:
        raise FetchError(url, f"timed out ({type(e).__name__})") from e
    except (httpx.HTTPError, httpx.InvalidURL, httpx.StreamError) as e:
        raise FetchError(url, f"network error: {e or type(e).__name__}") from e
    except (ValueError, UnicodeError) as e:  # e.g. a header httpx cannot encode
        raise FetchError(url, f"bad request or response: {e}") from e
