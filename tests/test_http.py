"""sources/http.py against real HTTP servers on 127.0.0.1: limits, redirects, validators."""

from __future__ import annotations

import asyncio
import gzip
import ssl
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import httpx
import pytest

from aggregator import USER_AGENT
from aggregator.exceptions import ConfigError, FeedGoneError, FetchError
from aggregator.sources import tls
from aggregator.sources.http import (
    Fetcher,
    FetchLimits,
    Request,
    Response,
    _described,
    _linear_pool,
    is_public,
    system_resolver,
)
from tests.conftest import wait_until
from tests.feedserver import FeedServer, endless, respond, static, trickle

RSS = b"<?xml version='1.0'?><rss version='2.0'><channel><title>t</title></channel></rss>"


@pytest.fixture
def fetcher() -> Iterator[Fetcher]:
    f = Fetcher(FetchLimits(timeout=2, deadline=3))
    yield f
    f.close()


def test_user_agent_accept_and_plain_200(feed_server: FeedServer, fetcher: Fetcher) -> None:
    feed_server.routes["/f"] = static(RSS, headers={"ETag": '"v1"', "Cache-Control": "max-age=60"})
    response = fetcher.fetch(Request(feed_server.url("/f")))
    assert response.status == 200 and response.body == RSS and not response.not_modified
    assert response.etag == '"v1"' and response.cache_control == "max-age=60"
    seen = feed_server.requests_to("/f")[0].headers
    assert (
        seen["user-agent"] == USER_AGENT
        and "aggregator/" in USER_AGENT
        and "https://" in USER_AGENT
    )
    assert "application/rss+xml" in seen["accept"]
    assert "if-none-match" not in seen and "if-modified-since" not in seen


def _conditional(etag: str | None, modified: str | None):  # type: ignore[no-untyped-def]
    def handle(h: BaseHTTPRequestHandler) -> None:
        if etag and h.headers.get("If-None-Match") == etag:
            respond(h, 304, headers={"ETag": etag})
        elif modified and h.headers.get("If-Modified-Since") == modified:
            respond(h, 304)
        else:
            headers = {}
            if etag:
                headers["ETag"] = etag
            if modified:
                headers["Last-Modified"] = modified
            respond(h, 200, RSS, headers=headers)

    return handle


@pytest.mark.parametrize(
    ("etag", "modified"),
    [
        ('"abc"', None),
        (None, "Mon, 10 Feb 2025 10:00:00 GMT"),
        ('W/"x"', "Tue, 11 Feb 2025 1:00:00 GMT"),
    ],
)
def test_conditional_get_with_each_validator(
    feed_server: FeedServer, fetcher: Fetcher, etag: str | None, modified: str | None
) -> None:
    feed_server.routes["/f"] = _conditional(etag, modified)
    first = fetcher.fetch(Request(feed_server.url("/f")))
    assert first.status == 200 and first.etag == etag and first.last_modified == modified
    second = fetcher.fetch(Request(feed_server.url("/f"), first.etag, first.last_modified))
    assert second.not_modified and second.body == b""
    sent = feed_server.seen[-1].headers
    assert sent.get("if-none-match") == etag and sent.get("if-modified-since") == modified


def test_permanent_redirects_are_reported_temporary_ones_not(
    feed_server: FeedServer, fetcher: Fetcher
) -> None:
    feed_server.routes["/new"] = static(RSS)
    for code in (301, 308):
        feed_server.routes[f"/old{code}"] = static(b"", status=code, headers={"Location": "/new"})
        response = fetcher.fetch(Request(feed_server.url(f"/old{code}")))
        assert response.permanent_url == feed_server.url("/new") and response.body == RSS
    for code in (302, 307):
        feed_server.routes[f"/tmp{code}"] = static(b"", status=code, headers={"Location": "/new"})
        response = fetcher.fetch(Request(feed_server.url(f"/tmp{code}")))
        assert response.permanent_url is None and response.url == feed_server.url("/new")
    # 301 to a temporary hop: the feed moved to the 301's target, not past the 302.
    feed_server.routes["/a"] = static(b"", status=301, headers={"Location": "/b"})
    feed_server.routes["/b"] = static(b"", status=302, headers={"Location": "/new"})
    assert fetcher.fetch(Request(feed_server.url("/a"))).permanent_url == feed_server.url("/b")
    feed_server.routes["/loop"] = static(b"", status=302, headers={"Location": "/loop"})
    with pytest.raises(FetchError, match="more than 10 redirects"):
        fetcher.fetch(Request(feed_server.url("/loop")))


def test_error_statuses(feed_server: FeedServer, fetcher: Fetcher) -> None:
    feed_server.routes["/gone"] = static(b"gone", status=410, content_type="text/plain")
    feed_server.routes["/busy"] = static(b"", status=429, headers={"Retry-After": "120"})
    feed_server.routes["/down"] = static(b"", status=503, headers={"Retry-After": "30"})
    feed_server.routes["/boom"] = static(b"", status=500)
    with pytest.raises(FeedGoneError) as gone:
        fetcher.fetch(Request(feed_server.url("/gone")))
    assert gone.value.status == 410
    with pytest.raises(FetchError) as busy:
        fetcher.fetch(Request(feed_server.url("/busy")))
    assert busy.value.status == 429 and busy.value.retry_after == "120"
    with pytest.raises(FetchError) as down:
        fetcher.fetch(Request(feed_server.url("/down")))
    assert down.value.status == 503 and down.value.retry_after == "30"
    with pytest.raises(FetchError, match="HTTP 500") as boom:
        fetcher.fetch(Request(feed_server.url("/boom")))
    assert not isinstance(boom.value, FeedGoneError) and boom.value.retry_after is None
    with pytest.raises(FetchError, match="HTTP 404"):
        fetcher.fetch(Request(feed_server.url("/nothing-here")))


def test_connection_refused_is_a_fetch_error(fetcher: Fetcher) -> None:
    with pytest.raises(FetchError, match="network error"):
        fetcher.fetch(Request("http://127.0.0.1:9/feed"))


def test_trickling_server_is_cut_at_the_deadline(feed_server: FeedServer) -> None:
    feed_server.routes["/slow"] = trickle(interval=0.1)
    with Fetcher(FetchLimits(timeout=1, deadline=1.5)) as fetcher:
        started = time.monotonic()
        with pytest.raises(FetchError, match="1.5s deadline"):
            fetcher.fetch(Request(feed_server.url("/slow")))
        elapsed = time.monotonic() - started
    assert 1.4 < elapsed < 1.5 + 2, elapsed  # deadline + margin for a loaded machine


@pytest.mark.parametrize("length", [True, False], ids=["content-length", "chunked"])
def test_50_mb_body_is_refused_within_the_limit(feed_server: FeedServer, length: bool) -> None:
    feed_server.routes["/big"] = endless(length=length)
    with Fetcher(FetchLimits(timeout=5, deadline=10, max_body=1024 * 1024)) as fetcher:
        started = time.monotonic()
        with pytest.raises(FetchError, match="limit"):
            fetcher.fetch(Request(feed_server.url("/big")))
    assert time.monotonic() - started < 5


def test_gzip_bomb_is_refused_after_decompression(feed_server: FeedServer) -> None:
    bomb = gzip.compress(b"\0" * (50 * 1024 * 1024), compresslevel=9)
    assert len(bomb) < 100_000  # small on the wire, 50 MB unpacked
    feed_server.routes["/bomb"] = static(bomb, headers={"Content-Encoding": "gzip"})
    small = gzip.compress(RSS)
    feed_server.routes["/small"] = static(small, headers={"Content-Encoding": "gzip"})
    with Fetcher(FetchLimits(timeout=5, deadline=10, max_body=1024 * 1024)) as fetcher:
        with pytest.raises(FetchError, match="after decompression"):
            fetcher.fetch(Request(feed_server.url("/bomb")))
        assert fetcher.fetch(Request(feed_server.url("/small"))).body == RSS
    assert feed_server.requests_to("/small")[0].headers["accept-encoding"] == "gzip, deflate"


def test_global_and_per_host_limits(feed_server: FeedServer) -> None:
    gate = threading.Event()

    def slow(h: BaseHTTPRequestHandler) -> None:
        gate.wait(0.3)
        respond(h, 200, RSS)

    feed_server.routes["/f"] = slow
    urls = [feed_server.url(f"/f?{i}") for i in range(12)]
    with Fetcher(FetchLimits(concurrency=10, per_host=3, timeout=5, deadline=10)) as fetcher:
        results = list(fetcher.fetch_many(Request(u) for u in urls))
    assert len(results) == 12 and all(not isinstance(r, Exception) for _, r in results)
    assert feed_server.most_active == 3  # one host: its limit, not the global one
    feed_server.most_active = 0
    # Two names for the same server are two hosts: 2 x per_host, still under the global limit.
    urls = [
        feed_server.url(f"/f?{i}", host) for i in range(8) for host in ("127.0.0.1", "localhost")
    ]
    with Fetcher(FetchLimits(concurrency=5, per_host=3, timeout=5, deadline=10)) as fetcher:
        results = list(fetcher.fetch_many(Request(u) for u in urls))
    assert len(results) == 16 and 4 <= feed_server.most_active <= 5


# --- redirects into private networks (SSRF) -----------------------------------------------

PUBLIC = "feeds.example"  # stands for a public host; the fake DNS and network below agree
INTERNAL = "intranet.example"


class _Network(httpx.AsyncBaseTransport):
    """Stands for the network: connections to the fake public host reach 127.0.0.1.

    The request keeps its Host header, as a real connection through NAT would.
    """

    def __init__(self) -> None:
        self._inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.host in (PUBLIC, INTERNAL):
            request.url = request.url.copy_with(host="127.0.0.1")
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


async def _dns(host: str) -> list[str]:
    """A public address for the public name, loopback for the internal one."""
    fake = {PUBLIC: ["93.184.215.14"], INTERNAL: ["127.0.0.1"]}
    return fake[host] if host in fake else await system_resolver(host)


def _ssrf_fetcher(allow: bool = False) -> Fetcher:
    return Fetcher(
        FetchLimits(timeout=2, deadline=3, allow_private_redirects=allow),
        transport=_Network(),
        resolver=_dns,
    )


def test_addresses_public_or_not() -> None:
    private_ones = ["127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254"]
    private_ones += ["::1", "fe80::1", "fd00::1", "::ffff:127.0.0.1", "0.0.0.0", "100.64.0.1"]
    for private in private_ones:
        assert not is_public(private), private
    for public in ("93.184.215.14", "8.8.8.8", "2606:4700::1111"):
        assert is_public(public), public


@pytest.mark.parametrize("target_host", ["127.0.0.1", INTERNAL, "localhost"])
def test_redirect_from_public_to_loopback_is_refused(
    feed_server: FeedServer, target_host: str
) -> None:
    secret = feed_server.url("/secret", target_host)
    feed_server.routes["/feed"] = static(b"", status=302, headers={"Location": secret})
    feed_server.routes["/secret"] = static(RSS)
    with _ssrf_fetcher() as fetcher:
        with pytest.raises(FetchError, match="refused a redirect") as refused:
            fetcher.fetch(Request(feed_server.url("/feed", PUBLIC)))
    assert "allow_private_redirects" in str(refused.value)
    assert feed_server.requests_to("/secret") == []  # never asked
    assert feed_server.requests_to("/feed")[0].headers["host"].startswith(PUBLIC)


def test_a_redirect_to_a_malformed_url_says_so(feed_server: FeedServer, fetcher: Fetcher) -> None:
    # A port out of range failed as "unexpected error: ExceptionGroup: unhandled errors in
    # a TaskGroup (1 sub-exception)", which says nothing of the server's Location.
    feed_server.routes["/feed"] = static(
        b"", status=302, headers={"Location": "http://127.0.0.1:99999/f"}
    )
    with pytest.raises(FetchError) as caught:
        fetcher.fetch(Request(feed_server.url("/feed")))
    assert str(caught.value) == (
        f"{feed_server.url('/feed')}: redirect to a malformed URL: http://127.0.0.1:99999/f"
    )


def test_an_unexpected_error_is_named_by_what_went_wrong_not_its_group() -> None:
    group = ExceptionGroup(
        "unhandled errors in a TaskGroup", [OverflowError("port must be 0-65535")]
    )
    assert _described(group) == "OverflowError: port must be 0-65535"
    two = ExceptionGroup("two", [ValueError("a"), KeyError("b")])
    assert _described(two).startswith("ExceptionGroup: two")


def test_private_redirects_allowed_by_switch_or_from_a_private_feed(
    feed_server: FeedServer,
) -> None:
    feed_server.routes["/feed"] = static(
        b"", status=301, headers={"Location": feed_server.url("/secret")}
    )
    feed_server.routes["/secret"] = static(RSS)
    with _ssrf_fetcher(allow=True) as fetcher:
        assert fetcher.fetch(Request(feed_server.url("/feed", PUBLIC))).body == RSS
    with _ssrf_fetcher() as fetcher:
        # Configured on a loopback address by the user: its redirects stay trusted.
        assert fetcher.fetch(Request(feed_server.url("/feed"))).body == RSS


def test_closed_fetcher_refuses_and_in_flight_fetches_are_abandoned(
    feed_server: FeedServer,
) -> None:
    feed_server.routes["/slow"] = trickle(interval=0.1)
    fetcher = Fetcher(FetchLimits(timeout=5, deadline=20))
    errors: list[Exception] = []

    def fetch() -> None:
        try:
            fetcher.fetch(Request(feed_server.url("/slow")))
        except FetchError as e:
            errors.append(e)

    worker = threading.Thread(target=fetch)
    worker.start()
    wait_until(lambda: bool(feed_server.requests_to("/slow")), 10, "the fetch under way")
    started = time.monotonic()
    fetcher.close()
    worker.join(5)
    assert time.monotonic() - started < 3 and not worker.is_alive()
    assert len(errors) == 1 and "shutting down" in str(errors[0])
    with pytest.raises(RuntimeError):
        fetcher.fetch(Request(feed_server.url("/slow")))


# --- kept-alive connections -----------------------------------------------------------------


def _validated(fetcher: Fetcher, urls: list[str]) -> list[Request]:
    """The requests of a second pass: each URL with the validators its first fetch got."""
    first = dict(fetcher.fetch_many(Request(u) for u in urls))
    assert all(isinstance(r, Response) and r.status == 200 for r in first.values())
    return [Request(q.url, r.etag, r.last_modified) for q, r in first.items()]  # type: ignore[union-attr]


def test_304_answers_keep_their_connections(feed_server: FeedServer) -> None:
    # A 304 left unread closed its connection: a pass of 304s opened one connection a feed.
    feed_server.routes["/f"] = _conditional('"v1"', None)
    urls = [feed_server.url(f"/f?{i}") for i in range(60)]
    with Fetcher(FetchLimits(concurrency=6, per_host=6, timeout=5, deadline=10)) as fetcher:
        requests = _validated(fetcher, urls)
        opened = feed_server.connections
        assert opened <= 6
        for _ in range(2):
            results = list(fetcher.fetch_many(requests))
            assert sorted(r.status for _, r in results) == [304] * 60  # type: ignore[union-attr]
    assert feed_server.connections == opened  # the same six connections all along


def test_connections_the_server_closed_are_replaced(feed_server: FeedServer) -> None:
    feed_server.routes["/f"] = _conditional('"v1"', None)
    urls = [feed_server.url(f"/f?{i}") for i in range(30)]
    with Fetcher(FetchLimits(concurrency=5, per_host=5, timeout=5, deadline=10)) as fetcher:
        requests = _validated(fetcher, urls)
        opened = feed_server.connections
        feed_server.hang_up()  # every idle kept-alive connection ends on the server's side
        wait_until(lambda: feed_server.active == 0, 5, "the server to finish its requests")
        results = list(fetcher.fetch_many(requests))
    assert sorted(r.status for _, r in results) == [304] * 30  # type: ignore[union-attr]
    assert opened < feed_server.connections <= opened + 5


def test_pool_within_fewer_connections_than_requests(feed_server: FeedServer) -> None:
    # The pool's own limits (the Fetcher's are wider): requests queue for a connection, an
    # idle one past the keep-alive limit is closed.
    def slow(h: BaseHTTPRequestHandler) -> None:
        time.sleep(0.05)
        respond(h, 200, RSS)

    feed_server.routes["/f"] = slow

    async def burst() -> list[int]:
        limits = httpx.Limits(max_connections=3, max_keepalive_connections=1)
        async with httpx.AsyncClient(limits=limits) as client:
            _linear_pool(client)
            assert type(client._transport._pool).__name__ == "_LinearPool"  # type: ignore[attr-defined]
            answers = await asyncio.gather(
                *(client.get(feed_server.url(f"/f?{i}")) for i in range(40))
            )
        return [a.status_code for a in answers]

    assert asyncio.run(burst()) == [200] * 40
    assert feed_server.most_active <= 3
    assert feed_server.connections < 40  # kept-alive connections were reused


def test_a_304_with_a_body_does_not_spoil_its_connection(feed_server: FeedServer) -> None:
    # h11 reads no body after a 304: five stray bytes kept on the connection would have
    # been taken for the start of the next answer ("illegal status line").
    feed_server.routes["/bad"] = lambda h: respond(h, 304, b"hello", headers={"ETag": '"1"'})
    feed_server.routes["/good"] = static(RSS)
    with Fetcher(FetchLimits(concurrency=1, per_host=1, timeout=2, deadline=3)) as fetcher:
        for _ in range(2):
            assert fetcher.fetch(Request(feed_server.url("/bad"), '"1"')).not_modified
            good = fetcher.fetch(Request(feed_server.url("/good")))
            assert good.status == 200 and good.body == RSS


def test_a_connection_dropped_unanswered_is_tried_once_more(feed_server: FeedServer) -> None:
    # As a server whose idle timeout ends a kept-alive connection just as it is reused.
    answered: list[bool] = []

    def drop_then_answer(h: BaseHTTPRequestHandler) -> None:
        if not answered:
            answered.append(False)
            h.close_connection = True  # no answer: the client sees the connection close
            return
        answered.append(True)
        respond(h, 200, RSS)

    feed_server.routes["/f"] = drop_then_answer
    with Fetcher(FetchLimits(timeout=2, deadline=3)) as fetcher:
        response = fetcher.fetch(Request(feed_server.url("/f")))
        assert response.status == 200 and answered == [False, True]
        feed_server.routes["/g"] = lambda h: setattr(h, "close_connection", True)
        with pytest.raises(FetchError, match="network error"):
            fetcher.fetch(Request(feed_server.url("/g")))  # never answers: one retry only
    assert len(feed_server.requests_to("/g")) == 2


def test_proxies_from_the_environment_are_used(
    feed_server: FeedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", feed_server.url(""))
    feed_server.routes["http://feeds.example.invalid/rss.xml"] = static(RSS)  # as proxied
    with Fetcher(FetchLimits(timeout=2, deadline=3)) as fetcher:
        response = fetcher.fetch(Request("http://feeds.example.invalid/rss.xml"))
    assert response.status == 200 and response.body == RSS


@pytest.fixture
def https_server(tmp_path: Path) -> Iterator[tuple[FeedServer, Path]]:
    """An HTTPS feed server on 127.0.0.1 whose certificate a CA of the test's own signed
    (trustme), and that CA's certificate as a PEM file."""
    import trustme

    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    pem = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(pem))
    server = FeedServer(tls=context)
    server.routes["/rss"] = static(RSS)
    yield server, pem
    server.close()


def test_https_is_verified_with_the_context_made_while_httpx_is_imported(
    https_server: tuple[FeedServer, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The TLS context made in a thread (`tls.context_soon`) is the one the client uses,
    and it is httpx's: certifi's authorities, or the environment's SSL_CERT_FILE."""
    server, ca = https_server
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    limits = FetchLimits(timeout=2, deadline=3)
    made = tls.context_soon()
    made.result()
    # Set now, the variable would let httpx's own context trust the server: ours, made
    # before, does not.
    monkeypatch.setenv("SSL_CERT_FILE", str(ca))
    with (
        Fetcher(limits, tls=made) as fetcher,
        pytest.raises(FetchError, match="CERTIFICATE_VERIFY_FAILED|certificate verify failed"),
    ):
        fetcher.fetch(Request(server.url("/rss")))  # our CA is not certifi's
    made = tls.context_soon()  # with SSL_CERT_FILE: our CA
    made.result()
    monkeypatch.delenv("SSL_CERT_FILE")
    with Fetcher(limits, tls=made) as fetcher:
        response = fetcher.fetch(Request(server.url("/rss")))
    assert response.status == 200 and response.body == RSS
    assert [s.path for s in server.seen] == ["/rss"]


def test_the_tls_context_is_the_one_httpx_would_make(
    https_server: tuple[FeedServer, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Certifi's authorities, or the environment's SSL_CERT_FILE, as httpx reads them; a
    file that cannot be read is a configuration error naming the variable, raised where
    the context is asked for, where httpx raises its own."""
    _, ca = https_server
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    ours, theirs = tls.context_soon().result(), httpx.create_ssl_context()
    assert ours.cert_store_stats() == theirs.cert_store_stats()
    assert ours.cert_store_stats()["x509_ca"] > 10  # certifi's bundle
    assert (ours.verify_mode, ours.check_hostname) == (ssl.CERT_REQUIRED, True)
    assert ours.minimum_version == theirs.minimum_version
    monkeypatch.setenv("SSL_CERT_FILE", str(ca))
    ours, theirs = tls.context_soon().result(), httpx.create_ssl_context()
    assert ours.cert_store_stats() == theirs.cert_store_stats() == {
        "x509": 1, "crl": 0, "x509_ca": 1
    }  # fmt: skip
    missing = tmp_path / "missing.pem"
    monkeypatch.setenv("SSL_CERT_FILE", str(missing))
    made = tls.context_soon()
    with pytest.raises(ConfigError, match="SSL_CERT_FILE") as refused:
        made.result()
    assert str(missing) in str(refused.value)
    with pytest.raises(FileNotFoundError):
        httpx.create_ssl_context()
    # A fetcher given it fails at once, and starts no event loop's thread.
    loops = [t for t in threading.enumerate() if t.name == "aggregator-http"]
    with pytest.raises(ConfigError, match="SSL_CERT_FILE"):
        Fetcher(FetchLimits(), tls=tls.context_soon())
    assert [t for t in threading.enumerate() if t.name == "aggregator-http"] == loops


@pytest.mark.parametrize("many", [True, False])
@pytest.mark.usefixtures("ctrl_c")
def test_ctrl_c_caught_by_another_thread_still_stops_the_wait_for_fetches(
    feed_server: FeedServer, many: bool
) -> None:
    """SIGINT is handled by the main thread, but the kernel may deliver it to any thread
    (the fetcher's, a library's): the main thread, waiting for fetches, was then woken
    only by the next one to end, as long as a slow feed takes (`aggregator poll` ignored
    Ctrl-C for up to its deadline). The wait wakes often enough to raise it soon."""
    import signal

    feed_server.routes["/slow"] = trickle(interval=0.2, total_seconds=8)
    with Fetcher(FetchLimits(timeout=5, deadline=10)) as fetcher:
        http_thread = fetcher._thread
        assert http_thread.ident is not None
        timer = threading.Timer(0.5, signal.pthread_kill, [http_thread.ident, signal.SIGINT])
        started = time.monotonic()
        timer.start()
        try:
            with pytest.raises(KeyboardInterrupt):
                if many:
                    list(fetcher.fetch_many([Request(feed_server.url("/slow"))]))
                else:
                    fetcher.fetch(Request(feed_server.url("/slow")))
        finally:
            timer.cancel()
        assert time.monotonic() - started < 3  # not when the slow feed ends, 8 s on


def test_fetches_come_out_in_the_order_they_end_while_the_caller_is_busy() -> None:
    """`fetch_many` gives each fetch as it ends, in that order, also those that end while
    the caller works on an earlier one (its wait wakes in turns: none is lost or reordered
    at a turn's end)."""
    import concurrent.futures

    with Fetcher() as fetcher:
        futures: dict[concurrent.futures.Future[Response], Request] = {
            concurrent.futures.Future(): Request(f"https://feed.example/{n}") for n in range(12)
        }
        ending = list(futures)[::-1]

        def end() -> None:
            for future in ending:
                future.set_result(Response(url="", status=200, body=b"", content_type=None))
                time.sleep(0.03)

        threading.Thread(target=end, daemon=True).start()
        got = []
        for request, _ in fetcher._as_completed(futures):
            got.append(request.url)
            time.sleep(0.1)  # several end meanwhile, and a turn (0.2 s) passes
        assert got == [futures[future].url for future in ending]


def test_fetches_dropped_before_the_first_is_read_are_cancelled(feed_server: FeedServer) -> None:
    """`fetch_many`'s iterator dropped unread (the poll stopped while reading its local
    files first) cancels its fetches, as one left early does: none goes on to its deadline."""
    import gc

    feed_server.routes["/slow"] = trickle(interval=0.2, total_seconds=20)

    async def in_flight() -> int:
        return len([t for t in asyncio.all_tasks() if t is not asyncio.current_task()])

    with Fetcher(FetchLimits(per_host=4, timeout=5, deadline=30)) as fetcher:
        arriving = fetcher.fetch_many([Request(feed_server.url("/slow")) for _ in range(3)])
        wait_until(lambda: len(feed_server.requests_to("/slow")) == 3, 10, "the fetches start")
        del arriving
        gc.collect()
        count = lambda: asyncio.run_coroutine_threadsafe(in_flight(), fetcher._loop).result(5)  # noqa: E731
        wait_until(lambda: count() == 0, 5, "the fetches cancelled")
