"""The served routes (Starlette) and the server that runs them (uvicorn): the one module that
imports either.

Read-only (GET and HEAD); every response carries a strict Content-Security-Policy (no
script; the one style element allowed by its hash) and X-Content-Type-Options; with a
token, every route but /healthz needs it.
"""

from __future__ import annotations

import gc
import hashlib
import html
import json
import logging
import re
import signal
import socket
import threading
import time as _time
from base64 import b64encode
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from aggregator.core import Aggregator, Filters
from aggregator.exceptions import StorageError
from aggregator.types import Digest
from aggregator.web.access import authorised, is_loopback
from aggregator.web.metrics import CONTENT_TYPE, Reading, exposition

log = logging.getLogger("aggregator")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: What Now shows without ?since=.
NOW_WINDOW = timedelta(hours=24)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: Stories a section lists at most in a page of /api/stories (?per_page=).
MAX_PER_PAGE = 1000
#: The last page number a page= may ask for (a page past a section's end lists none of it).
MAX_PAGE = 10_000
#: The Now page's view in the page cache (`_Recent`): HTML, no filter, no ?since=, page 1.
NOW_VIEW: tuple[object, ...] = ("html", Filters(), None, 1)
#: Story ids are SQLite integers: a larger number names no story.
MAX_ID = 2**63 - 1
#: The digest folder's files served, by extension, and their media types.
_MEDIA = {
    ".html": "text/html; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
    ".json": "application/json",
    ".xml": "application/atom+xml",
}
_FILE_NAME = re.compile(r"^[\w][\w.-]*$")
_STYLE = re.compile(r"<style[^>]*>(.*?)</style>", re.DOTALL)
_POLICY = (
    "default-src 'none'; style-src {styles}; img-src 'self'; form-action 'self'; "
    "base-uri 'none'; frame-ancestors 'none'"
)


def _style_sources(page: str) -> str:
    """The CSP sources that allow exactly the style elements of `page` (none: 'none')."""
    hashes = {
        "'sha256-" + b64encode(hashlib.sha256(css.encode("utf-8")).digest()).decode() + "'"
        for css in _STYLE.findall(page)
    }
    return " ".join(sorted(hashes)) or "'none'"


def _html(page: str, status: int = 200) -> HTMLResponse:
    policy = _POLICY.format(styles=_style_sources(page))
    return HTMLResponse(page, status, headers={"Content-Security-Policy": policy})


def _since(value: str | None, now: datetime, tz: ZoneInfo) -> datetime:
    """?since=: a date (midnight in the digest timezone) or a time; default 24 h ago.

    Raises:
        ValueError: it is neither.
    """
    if not value:
        return now - NOW_WINDOW
    try:
        day = date.fromisoformat(value)
    except ValueError:
        moment = datetime.fromisoformat(value)
        moment = moment if moment.tzinfo else moment.replace(tzinfo=tz)
    else:
        moment = datetime.combine(day, time.min, tz)
    # Nothing is dated before 1970, and a time near year 1 cannot be moved into UTC.
    return max(moment, EPOCH)


class _Frozen:
    """What the server keeps, out of the garbage collections: each remake of Now allocates
    thousands of objects and set off full collections that walked every kept text and story
    again (docs/serve.md). Frozen once Now is made ahead, and again after a remake at most
    every `REFREEZE` seconds: the window turns over (a day), and what is kept then is new."""

    REFREEZE = 600.0

    def __init__(self) -> None:
        self._at: float | None = None
        self._lock = threading.Lock()

    def freeze(self) -> None:
        """Collect what the last freeze kept and is garbage now, then freeze what is left
        (garbage frozen would never be freed). ~0.2 s of this process at 100,000 entries."""
        with self._lock:
            gc.unfreeze()
            gc.collect()
            gc.freeze()
            self._at = _time.monotonic()

    def refresh(self) -> None:
        """After a remake: freeze again if the last freeze is `REFREEZE` seconds old."""
        with self._lock:
            due = self._at is not None and _time.monotonic() - self._at >= self.REFREEZE
        if due:
            self.freeze()
            log.debug("serve: what is kept frozen again")


class _Made(NamedTuple):
    """A view's last page, what it was made of (`_Recent.get`'s key) and when."""

    key: tuple[object, ...]
    page: str
    at: float  # time.monotonic()


class _Recent:
    """The last few Now pages made (HTML or JSON), by what they were made of: the window
    (to the minute), the filters and the database's change stamp; making one at 100,000
    entries takes seconds (the digest's grouping of ~3,000 stories: docs/serve.md).

    A page asked for again after the database changed (or the minute turned) is answered
    with the last one made for that view, if it is younger than STALE seconds, while the
    new one is made in the background: a reader waits for a page only the first time.
    One page a view is kept (an older key, of another minute or change stamp, is never
    asked for again): those of the SIZE views used last, and of the `pinned` ones (Now
    itself) always: a client paging through many views no longer pushes Now out.
    """

    SIZE = 16
    STALE = 300.0
    #: Seconds a request waits for the same page another is making, before making it.
    WAIT = 60.0

    def __init__(
        self, remade: Callable[[], None] = lambda: None, pinned: Iterable[tuple[object, ...]] = ()
    ) -> None:
        #: Called after each page made in the background (`_Frozen.refresh`).
        self._remade = remade
        self._pinned = frozenset(pinned)
        #: view -> its last page, used last at the end (a view is what a request's query
        #: names: any number of them).
        self._latest: OrderedDict[tuple[object, ...], _Made] = OrderedDict()
        self._making: set[tuple[object, ...]] = set()
        #: Pages being made with none to answer meanwhile, and when each is done.
        self._first: dict[tuple[object, ...], threading.Event] = {}
        self._lock = threading.Lock()

    def get(
        self, view: tuple[object, ...], key: tuple[object, ...], make: Callable[[], str]
    ) -> str:
        with self._lock:
            latest = self._latest.get(view)
            if latest is not None:
                self._latest.move_to_end(view)
                if latest.key == key:
                    return latest.page
                if _time.monotonic() - latest.at < self.STALE:
                    if view not in self._making:
                        self._making.add(view)
                        threading.Thread(
                            target=self._remake, args=(view, key, make), daemon=True
                        ).start()
                    return latest.page
            # A page being made (by another request, or the warm-up) is waited for.
            first = key not in self._first
            done = self._first.setdefault(key, threading.Event())
        if not first:
            done.wait(self.WAIT)
            with self._lock:
                latest = self._latest.get(view)
            if latest is not None and latest.key == key:
                return latest.page
        try:
            return self._made(view, key, make())  # outside the lock: others can be made
        finally:
            if first:
                with self._lock:
                    self._first.pop(key, None)
                done.set()

    def _made(self, view: tuple[object, ...], key: tuple[object, ...], page: str) -> str:
        with self._lock:
            self._latest[view] = _Made(key, page, _time.monotonic())
            self._latest.move_to_end(view)
            excess = len(self._latest) - self.SIZE
            if excess > 0:  # the views used longest ago go; pinned ones stay
                for gone in [v for v in self._latest if v not in self._pinned][:excess]:
                    del self._latest[gone]
        return page

    def _remake(
        self, view: tuple[object, ...], key: tuple[object, ...], make: Callable[[], str]
    ) -> None:
        try:
            self._made(view, key, make())
        except Exception as e:  # the next request tries again (and shows the error)
            log.warning("serve: making a page again failed: %s", e)
        finally:
            with self._lock:
                self._making.discard(view)
        self._remade()


def _paged_json(digest: Digest, page: int, per_page: int) -> str:
    """/api/stories with ?per_page=: each section's page of stories (newest first), its
    `total`, and the page asked for (docs/serve.md)."""
    from aggregator.digest.render import digest_to_dict

    start = (page - 1) * per_page
    sliced = [replace(g, stories=g.stories[start : start + per_page]) for g in digest.topics]
    body = digest_to_dict(replace(digest, topics=tuple(sliced)))
    for topic, group in zip(body["topics"], digest.topics, strict=True):
        topic["total"] = len(group.stories)
    body.update(page=page, per_page=per_page)
    return json.dumps(body, ensure_ascii=False, indent=2) + "\n"


def _minute(moment: datetime, *, up: bool = False) -> datetime:
    floor = moment.replace(second=0, microsecond=0)
    return floor + timedelta(minutes=1) if up and floor != moment else floor


def _page_number(value: str | None) -> int:
    try:
        return max(1, min(int(value or 1), MAX_PAGE))
    except ValueError:
        return 1


def make_app(
    agg: Aggregator,
    *,
    token: str | None = None,
    scheduler: Callable[[], str | None] | None = None,
    warm: bool = False,
) -> ASGIApp:
    """The served application over `agg` (read only), behind the token if one is given.

    Args:
        agg: The aggregator whose storage is read.
        token: What a client must send (see access.authorised); None: nothing.
        scheduler: Under `run --serve`, says why the daemon's scheduler is not running
            (None: it is); /healthz answers 503 then.
        warm: Make the Now page in the background at once, as the first visit would (a
            request for it meanwhile waits for that one).
    """
    from aggregator.digest import pages
    from aggregator.digest.archive import scan_archive
    from aggregator.digest.render import render_json

    def now() -> datetime:
        """Now as the pages show it, in the digest timezone: to show, not to reckon with
        (aware arithmetic on a zone's time is on the clock's face: 24 hours back on a day
        the clocks change would be 23 or 25, and its minute after 02:30 in the hour passed
        twice would be the first pass's). Windows are reckoned in UTC."""
        return agg.clock().astimezone(agg.tz)

    def timezone() -> str:
        return agg.config.digest.timezone

    def error(status: int, title: str, message: str) -> HTMLResponse:
        page = pages.render_error(status, title, message, timezone=timezone(), now=now())
        return _html(page, status)

    frozen = _Frozen()
    recent = _Recent(frozen.refresh, pinned=[NOW_VIEW])

    def window(request: Request) -> tuple[datetime, datetime, Filters] | HTMLResponse:
        """?since= (to the minute) to now (the next minute), and the filters."""
        query = request.query_params
        until = _minute(agg.clock().astimezone(UTC), up=True)
        try:
            since = _minute(min(_since(query.get("since"), until, agg.tz), until))
        except (ValueError, OverflowError):  # OverflowError: a time past year 9999 in UTC
            return error(400, "Bad request", "since= takes a date (2025-02-10) or a time.")
        filters = Filters(*(query.get(key) or None for key in ("topic", "feed", "tag", "language")))
        return since, until, filters

    def now_page(
        since: datetime, until: datetime, filters: Filters, since_text: str | None, number: int
    ) -> str:
        def make() -> str:
            digest, choices = agg.stories(since, until, filters)
            log.debug("serve: Now page made: %s", view)
            return pages.render_now(
                digest, choices, filters, since=since_text, now=now(), page=number
            )

        view = ("html", filters, since_text, number)  # NOW_VIEW: Now itself
        return recent.get(view, (*view, since, until, agg.change_stamp()), make)

    def home(request: Request) -> Response:
        asked = window(request)
        if isinstance(asked, Response):
            return asked
        since, until, filters = asked
        # Pages of a section alone (?topic=); Now itself shows each section's newest.
        number = _page_number(request.query_params.get("page")) if filters.topic else 1
        return _html(now_page(since, until, filters, request.query_params.get("since"), number))

    def warm_up() -> None:
        """Make Now as a first visit would (the stories' texts, words and teasers are then
        kept too: docs/serve.md), so that it need not wait for it."""
        until = _minute(agg.clock().astimezone(UTC), up=True)
        try:
            now_page(_minute(until - NOW_WINDOW), until, Filters(), None, 1)
        except Exception as e:  # the first request tries again (and shows the error)
            log.warning("serve: making Now ahead failed: %s", e)
        else:
            # What is kept by now (texts, words, the grouping) lives long: the full garbage
            # collections each remake sets off need not walk it again (docs/serve.md).
            frozen.freeze()
            log.debug("serve: Now made ahead")  # and frozen: what the log says is done

    def api_stories(request: Request) -> Response:
        asked = window(request)
        if isinstance(asked, Response):
            return asked
        per_page = request.query_params.get("per_page")
        # ASCII digits only: str.isdigit() takes "²", which int() refuses (a 500).
        if per_page is not None and not (
            re.fullmatch(r"[0-9]{1,4}", per_page) and 0 < int(per_page) <= MAX_PER_PAGE
        ):
            message = f"per_page= takes a whole number from 1 to {MAX_PER_PAGE}."
            return error(400, "Bad request", message)
        page = request.query_params.get("page")
        if page is not None and not (
            re.fullmatch(r"0*[0-9]{1,5}", page) and 0 < int(page) <= MAX_PAGE
        ):
            return error(400, "Bad request", f"page= takes a whole number from 1 to {MAX_PAGE}.")
        shown = None
        if per_page is not None:
            shown = (int(page or 1), int(per_page))
        view = ("json", asked[2], request.query_params.get("since"), shown)

        def make() -> str:
            digest = agg.stories(*asked)[0]
            return render_json(digest) if shown is None else _paged_json(digest, *shown)

        page = recent.get(view, (*view, *asked, agg.change_stamp()), make)
        return Response(page, media_type="application/json")

    def story(request: Request) -> Response:
        number = request.path_params["story_id"]
        current = agg.current_story_id(number) if 0 < number <= MAX_ID else None
        if current is not None and current != number:  # merged into another: its page
            return RedirectResponse(f"/stories/{current}", status_code=301)
        page = agg.story(number) if current is not None else None
        if page is None:
            return error(404, "Not found", f"There is no story {number}.")
        return _html(pages.render_story(page, timezone=timezone(), now=now()))

    def search(request: Request) -> Response:
        query = request.query_params.get("q", "")
        number = _page_number(request.query_params.get("page"))
        if not query.strip():
            found = agg.search("", number)
            results = found.results._replace(message=None)
            return _html(pages.render_search(results, [], timezone=timezone(), now=now()))
        found = agg.search(query, number)
        headlines = [f.headline for f in found.found]
        return _html(pages.render_search(found.results, headlines, timezone=timezone(), now=now()))

    def api_search(request: Request) -> Response:
        found = agg.search(
            request.query_params.get("q", ""), _page_number(request.query_params.get("page"))
        )
        tz = agg.tz
        body = {
            "query": found.results.query,
            "total": found.results.total,
            "results": [
                {
                    "story_id": None if f.hit.story_id is None else str(f.hit.story_id),
                    "headline": f.headline,
                    "title": f.hit.entry.title,
                    "link": f.hit.entry.link,
                    "feed": f.hit.entry.feed_name,
                    "published": f.hit.entry.published.astimezone(tz).isoformat(),
                    "snippet": "".join(
                        f"<mark>{html.escape(p.text)}</mark>" if p.hit else html.escape(p.text)
                        for p in f.hit.snippet
                    ),
                }
                for f in found.found
            ],
            "page": found.results.page,
            "message": found.results.message,
            "exact": found.results.exact,
            "order": "newest" if found.results.newest else "rank",
        }
        return Response(
            json.dumps(body, ensure_ascii=False, indent=2) + "\n", media_type="application/json"
        )

    def digests(request: Request) -> Response:
        items = scan_archive(agg.config.digest.output)
        return _html(pages.render_digests(items, timezone=timezone(), now=now()))

    def digest_file(request: Request) -> Response:
        name = request.path_params["name"]
        folder = agg.config.digest.output
        path = folder / name
        media = _MEDIA.get(Path(name).suffix)
        # A plain name of a file right in the folder: no separators, no dot files, no links.
        if (
            media is None
            or not _FILE_NAME.match(name)
            or path.is_symlink()
            or not path.is_file()
            or path.resolve().parent != folder.resolve()
        ):
            return error(404, "Not found", f"There is no digest file {name!r}.")
        data = path.read_bytes()
        if media.startswith("text/html"):
            return _html(data.decode("utf-8", "replace"))
        return Response(data, media_type=media)

    def feeds(request: Request) -> Response:
        report = agg.daemon_report()
        problem = None
        if report is not None and report.storage_error:
            problem = f"the daemon cannot write the database: {report.storage_error}"
        page = pages.render_feeds(
            agg.status(),
            agg.recent_errors(),
            storage_error=problem,
            timezone=timezone(),
            now=now(),
        )
        return _html(page)

    down = threading.Event()  # the database was unreadable at the last probe

    def healthz(request: Request) -> Response:
        unreadable = agg.unreadable()
        if unreadable is None:
            down.clear()
        elif not down.is_set():
            # The detail that what is said may leave out, logged when the database goes
            # (not at every probe while it stays away).
            down.set()
            log.warning("healthz: the database cannot be read: %s", unreadable.detail)
        problem = unreadable.said if unreadable else None
        if problem is None and scheduler is not None:
            problem = scheduler()
        if problem is not None:
            return PlainTextResponse(f"unavailable: {problem}\n", 503)
        return PlainTextResponse("ok\n")

    render_metrics = exposition(lambda: Reading(agg.tallies(), agg.status()))

    def metrics(request: Request) -> Response:
        return Response(render_metrics(), media_type=CONTENT_TYPE)

    def unavailable(request: Request, exc: Exception) -> Response:
        log.warning("serve: %s %s: %s", request.method, request.url.path, exc)
        return error(503, "Unavailable", f"The database cannot be read: {exc}")

    def not_found(request: Request, exc: Exception) -> Response:
        return error(404, "Not found", f"There is no page {request.url.path}.")

    def method_not_allowed(request: Request, exc: Exception) -> Response:
        response = error(405, "Method not allowed", "This server only reads: GET and HEAD.")
        response.headers["Allow"] = "GET, HEAD"
        return response

    get = ["GET", "HEAD"]
    app = Starlette(
        routes=[
            Route("/", home, methods=get),
            Route("/stories/{story_id:int}", story, methods=get),
            Route("/search", search, methods=get),
            Route("/digests/", digests, methods=get),
            Route("/digests/{name}", digest_file, methods=get),
            Route("/feeds", feeds, methods=get),
            Route("/healthz", healthz, methods=get),
            Route("/metrics", metrics, methods=get),
            Route("/api/stories", api_stories, methods=get),
            Route("/api/search", api_search, methods=get),
        ],
        exception_handlers={
            StorageError: unavailable,
            404: not_found,
            405: method_not_allowed,
        },
    )
    if warm:
        threading.Thread(target=warm_up, name="aggregator-warm-up", daemon=True).start()
    return _guard(app, token)


_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cache-control", b"no-store"),
]
_DEFAULT_POLICY = _POLICY.format(styles="'none'").encode()


def _loopback_host(header: bytes | None) -> bool:
    """Whether a Host header names this machine's loopback (port aside); none: HTTP/1.0."""
    if header is None:
        return True
    host = header.decode("latin-1").strip()
    if host.startswith("["):  # [::1]:8080
        name = host.split("]", 1)[0] + "]"
    else:
        name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    return is_loopback(name)


def _guard(app: ASGIApp, token: str | None) -> ASGIApp:
    """The security rules around every response: the token (but for /healthz), the
    headers, and a Content-Security-Policy on a response that has none."""

    async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {name.lower() for name, _ in headers}
                headers += [h for h in _HEADERS if h[0] not in names]
                if b"content-security-policy" not in names:
                    headers.append((b"content-security-policy", _DEFAULT_POLICY))
                message["headers"] = headers
            await send(message)

        if token is None and not _loopback_host(dict(scope.get("headers", [])).get(b"host")):
            # Without a token the server listens on loopback only; a page elsewhere could
            # still reach it through DNS rebinding (its own name resolving to 127.0.0.1):
            # such a request names that other host.
            response = PlainTextResponse("this server answers only to a loopback host name\n", 421)
            await response(scope, receive, send_with_headers)
            return
        if token is not None and scope["path"] != "/healthz":
            header = dict(scope.get("headers", [])).get(b"authorization")
            if not authorised(header, token):
                response = PlainTextResponse(
                    "a token is needed: Authorization: Bearer <token>, or Basic with it as "
                    "the password\n",
                    401,
                    headers={"WWW-Authenticate": 'Basic realm="aggregator", charset="UTF-8"'},
                )
                await response(scope, receive, send_with_headers)
                return
        await app(scope, receive, send_with_headers)

    return guarded


#: Seconds between the background catch-ups of the search index while serving, and the
#: entries indexed per round (a stop waits for one round at most).
INDEX_EVERY = 5.0
INDEX_ROUND = 1000


class Indexer:
    """Keeps the search index caught up while serving: polls only queue their entries for
    it (storage/schema.py), and a search would otherwise wait for a big poll's backlog."""

    def __init__(self, agg: Aggregator, every: float | None = None) -> None:
        self._agg = agg
        self._every = INDEX_EVERY if every is None else every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="aggregator-index", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                indexed = self._agg.index_search(INDEX_ROUND)
            except StorageError as e:  # a locked or unreadable database: try again later
                log.warning("search index: %s", e)
                indexed = 0
            if indexed < INDEX_ROUND:
                self._stop.wait(self._every)


class Served:
    """A running server (in a thread of this process), for `run --serve` and tests."""

    def __init__(
        self, server: uvicorn.Server, thread: threading.Thread, port: int, indexer: Indexer
    ) -> None:
        self._server = server
        self._thread = thread
        self._indexer = indexer
        self.port = port

    def stop(self) -> None:
        """Stop serving and wait for the thread to end."""
        self._server.should_exit = True
        self._indexer.stop()
        self._thread.join(timeout=10)


def _config(app: ASGIApp, host: str, port: int) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        lifespan="off",
        log_config=None,  # our logging, as the CLI set it up
        access_log=False,
        server_header=False,
        proxy_headers=False,
    )


def _listen(host: str, port: int) -> socket.socket:
    """A socket bound to the address (before any server runs: uvicorn binding it itself
    ends the process with its own exit code, 3, on a busy port).

    Raises:
        OSError: the address cannot be listened on.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP named: asyncio sets TCP_NODELAY only on such sockets (else each kept-alive
    # response's body waited ~40 ms for the client's delayed ACK).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def serve(agg: Aggregator, host: str, port: int, *, token: str | None = None) -> None:
    """Serve until interrupted (SIGINT, SIGTERM): `aggregator serve`.

    Raises:
        OSError: the address cannot be listened on (a port in use, say).
    """
    sock = _listen(host, port)
    server = uvicorn.Server(_config(make_app(agg, token=token, warm=True), host, port))
    log.info("serving on http://%s:%d/", host if ":" not in host else f"[{host}]", port)
    # uvicorn stops on SIGINT/SIGTERM, then raises the signal again for the handler it
    # found: this one lets the process end cleanly (exit 0) rather than die of it.
    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, lambda *_: None)
    indexer = Indexer(agg)
    indexer.start()
    try:
        server.run(sockets=[sock])
    finally:
        indexer.stop()
        sock.close()


def serve_in_thread(
    agg: Aggregator,
    host: str,
    port: int,
    *,
    token: str | None = None,
    scheduler: Callable[[], str | None] | None = None,
) -> Served:
    """Start serving in a thread of this process; returns once the socket listens (port 0:
    a free one, see `Served.port`).

    Raises:
        OSError: the address cannot be listened on.
    """
    sock = _listen(host, port)
    bound = sock.getsockname()[1]
    app = make_app(agg, token=token, scheduler=scheduler, warm=True)
    server = uvicorn.Server(_config(app, host, bound))
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="aggregator-serve", daemon=True
    )
    thread.start()
    while not server.started and thread.is_alive():
        threading.Event().wait(0.01)
    indexer = Indexer(agg)
    indexer.start()
    return Served(server, thread, bound, indexer)


__all__ = ["Served", "make_app", "serve", "serve_in_thread"]
