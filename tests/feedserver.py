"""A real, threaded HTTP server on 127.0.0.1 whose routes tests script (stdlib only).

pytest-httpserver serves one request at a time, which cannot show concurrency, a
trickling server or a client hanging up; this one gives each connection a thread.
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import NamedTuple

Handler = Callable[[BaseHTTPRequestHandler], None]


class Seen(NamedTuple):
    """A request the server received."""

    path: str
    headers: dict[str, str]


class FeedServer:
    """Routes (path -> handler), a log of requests, and counters of concurrency; HTTPS with
    `tls` (a server context holding its certificate)."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.routes: dict[str, Handler] = {}
        self.seen: list[Seen] = []
        self.active = 0
        self.most_active = 0
        self.connections = 0  # connections accepted so far
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()
        server = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:  # once per connection
                super().setup()
                with server._lock:
                    server.connections += 1
                    server._open.append(self.connection)

            def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
                with server._lock:
                    server.seen.append(
                        Seen(self.path, {k.lower(): v for k, v in self.headers.items()})
                    )
                    server.active += 1
                    server.most_active = max(server.most_active, server.active)
                self._counted = True
                try:
                    handler = server.routes.get(self.path.split("?")[0])
                    if handler is None:
                        respond(self, 404, b"not found", "text/plain")
                    else:
                        handler(self)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client hung up: that is what some tests are about
                finally:
                    self._answered()

            def send_response(self, code: int, message: str | None = None) -> None:
                # A request stops counting as active once its answer starts: the client
                # may read it and send its next request before this thread runs again.
                self._answered()
                super().send_response(code, message)

            def _answered(self) -> None:
                if getattr(self, "_counted", False):
                    self._counted = False
                    with server._lock:
                        server.active -= 1

            def log_message(self, format: str, *args: object) -> None:
                pass

        class _Server(ThreadingHTTPServer):
            request_queue_size = 512  # the stdlib's 5 drops bursts of connections

        self.httpd = _Server(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.scheme = "http"
        if tls is not None:  # each connection's handshake when accepted
            self.httpd.socket = tls.wrap_socket(self.httpd.socket, server_side=True)
            self.scheme = "https"
        self._thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"{self.scheme}://{host}:{self.port}{path}"

    def requests_to(self, path: str) -> list[Seen]:
        return [s for s in self.seen if s.path == path]

    def hang_up(self) -> None:
        """Close every connection clients hold open (as a server ending idle keep-alives)."""
        with self._lock:
            held, self._open = self._open, []
        for sock in held:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already closed by the client

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def respond(
    handler: BaseHTTPRequestHandler,
    status: int,
    body: bytes = b"",
    content_type: str | None = "application/rss+xml",
    headers: dict[str, str] | None = None,
) -> None:
    """Send a complete response."""
    handler.send_response(status)
    if content_type:
        handler.send_header("Content-Type", content_type)
    for key, value in (headers or {}).items():
        handler.send_header(key, value)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    if body:
        handler.wfile.write(body)


def static(
    body: bytes | str,
    *,
    status: int = 200,
    content_type: str | None = "application/rss+xml",
    headers: dict[str, str] | None = None,
) -> Handler:
    """A handler that always answers the same."""
    data = body.encode("utf-8") if isinstance(body, str) else body

    def handle(h: BaseHTTPRequestHandler) -> None:
        respond(h, status, data, content_type, headers)

    return handle


def trickle(interval: float = 0.2, total_seconds: float = 30.0) -> Handler:
    """Headers at once, then one byte every `interval` seconds: never a read timeout."""

    def handle(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "application/rss+xml")
        h.send_header("Content-Length", "100000")
        h.end_headers()
        h.wfile.write(b"<?xml version='1.0'?><rss version='2.0'><channel>")
        h.wfile.flush()
        stop = time.monotonic() + total_seconds
        while time.monotonic() < stop:
            time.sleep(interval)
            h.wfile.write(b" ")
            h.wfile.flush()

    return handle


def endless(
    chunk: bytes = b"x" * 65536, total: int = 50 * 1024 * 1024, length: bool = False
) -> Handler:
    """A `total`-byte body, streamed (chunked, or with a Content-Length if `length`)."""

    def handle(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "application/rss+xml")
        if length:
            h.send_header("Content-Length", str(total))
        else:
            h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()
        sent = 0
        while sent < total:
            piece = chunk[: total - sent]
            if length:
                h.wfile.write(piece)
            else:
                h.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            sent += len(piece)
        if not length:
            h.wfile.write(b"0\r\n\r\n")

    return handle
