"""A local feed farm on 127.0.0.1, for tests and benchmarks (`bench/feedfarm.py` serves one).

N feeds x E entries, mixed RSS 2.0 / Atom, Chinese (Simplified and Traditional) and
English text of realistic length, deterministic from a seed. Honours ETag and
Last-Modified (304). Optional per-request latency. A configurable share of broken
feeds: 500, 404, malformed XML, slow past any sane timeout, and 301 redirects. Or real
headlines instead (`load_headlines`: title only, with their publication times).
"""

from __future__ import annotations

import csv
import hashlib
import random
import re
import sys
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime, parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from xml.sax.saxutils import escape

import opencc

SEEDS = Path(__file__).resolve().parent.parent / "seeds"
BROKEN_KINDS = ("500", "404", "malformed", "slow", "redirect")
EN_WORDS = (
    "summit leaders artificial intelligence investment europe paris regulation open models "
    "startup compute energy chips researchers government policy safety market growth billion "
    "announced agreement declaration countries companies data centre nuclear power talent "
    "innovation competition china united states france india minister president week"
).split()


def _chinese_sentences() -> list[str]:
    sentences: list[str] = []
    for path in sorted(SEEDS.glob("*.txt")):
        text = re.sub(
            r"<[^>]+>|!\[[^\]]*\]\([^)]*\)|\[[^\]]*\]\([^)]*\)", "", path.read_text("utf-8")
        )
        for part in re.split(r"(?<=[。！？])", text):
            part = part.strip()
            if (
                15 <= len(part) <= 200
                and not part.startswith(("---", "#", "-"))
                and ":" not in part
            ):
                sentences.append(part)
    return sentences or ["人工智能行动峰会在巴黎举行。"]


class _Server(ThreadingHTTPServer):
    """The farm's HTTP server. Its listen backlog is set before `listen` is called (set on
    an instance after construction, it came too late: Python's default of 5 made
    clients that open 32 connections at once wait ~1 s for SYN retransmits)."""

    daemon_threads = True
    request_queue_size = 1024

    def handle_error(self, request: object, client_address: object) -> None:
        """A client closing its kept-alive connection is no error (the stdlib printed a
        traceback for each when a poller exited)."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)  # type: ignore[arg-type]


@dataclass(frozen=True)
class FarmFeed:
    """One feed of the farm: its path, format, language and whether/how it is broken."""

    index: int
    fmt: str  # "rss" | "atom"
    language: str  # "zh-Hans" | "zh-Hant" | "en"
    broken: str | None

    @property
    def path(self) -> str:
        return f"/feed/{self.index}.xml"


class Farm:
    """Generates the feeds once (bytes cached) and serves them from a threaded HTTP server."""

    def __init__(
        self,
        *,
        feeds: int = 200,
        entries: int = 50,
        seed: int = 1,
        broken: float = 0.0,
        latency: float = 0.0,
        slow_seconds: float = 30.0,
        port: int = 0,
        headlines: list[tuple[str, datetime]] | None = None,
        copies: float = 0.0,
    ) -> None:
        self.rng = random.Random(seed)
        #: Real (title, published) rows served instead of generated text (`load_headlines`).
        self.headlines = headlines
        self.latency = latency
        self.slow_seconds = slow_seconds
        self.entries = entries
        self.modified = datetime(2025, 2, 12, 8, 0, tzinfo=UTC)
        self._zh = _chinese_sentences()
        self._t = opencc.OpenCC("s2t")
        n_broken = round(feeds * broken)
        kinds = [BROKEN_KINDS[i % len(BROKEN_KINDS)] for i in range(n_broken)]
        broken_at = set(self.rng.sample(range(feeds), n_broken))
        kind_iter = iter(kinds)
        self.feeds = [
            FarmFeed(
                i,
                "rss" if i % 2 == 0 else "atom",
                ("zh-Hans", "zh-Hant", "en")[i % 3],
                next(kind_iter) if i in broken_at else None,
            )
            for i in range(feeds)
        ]
        #: A share of the feeds (`copies`) carry the next lower feed's articles (its texts
        #: and dates, their own guids and links): copies for deduplication to find.
        copying = self.rng.sample(range(1, feeds), round((feeds - 1) * copies)) if feeds else []
        self.copy_of = {index: index - 1 for index in copying}
        self.bodies = {f.path: self._render(f) for f in self.feeds}
        self.requests = 0
        self.not_modified = 0
        #: Every request answered: (time.time() when it came, path, HTTP status).
        self.log: list[tuple[float, str, int]] = []
        self._lock = threading.Lock()
        self.server = _Server(("127.0.0.1", port), self._handler())
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        port = self.server.server_address[1]
        return f"http://127.0.0.1:{port}"

    def url(self, feed: FarmFeed) -> str:
        return self.base_url + feed.path

    @property
    def good_feeds(self) -> list[FarmFeed]:
        return [f for f in self.feeds if f.broken is None]

    # --- content ----------------------------------------------------------------------------

    def _text(self, language: str, rng: random.Random) -> tuple[str, str]:
        if language == "en":
            words = [rng.choice(EN_WORDS) for _ in range(rng.randint(150, 400))]
            sentences = [
                " ".join(words[i : i + 15]).capitalize() + "." for i in range(0, len(words), 15)
            ]
            title = " ".join(rng.choice(EN_WORDS) for _ in range(rng.randint(5, 10))).capitalize()
            return title, " ".join(sentences)
        body = "".join(rng.choice(self._zh) for _ in range(rng.randint(6, 20)))
        title = rng.choice(self._zh)[: rng.randint(12, 28)]
        if language == "zh-Hant":
            body, title = self._t.convert(body), self._t.convert(title)
        return title, body

    def _render(self, feed: FarmFeed) -> bytes:
        if self.headlines is not None:
            return self._render_headlines(feed)
        source = self.feeds[self.copy_of.get(feed.index, feed.index)]
        rng = random.Random(f"{source.index}")
        items = []
        for j in range(self.entries):
            title, body = self._text(source.language, rng)
            when = self.modified - timedelta(minutes=37 * j + source.index)
            link = f"https://news.example/{feed.index}/{j}"
            paragraphs = "".join(f"<p>{escape(p)}</p>" for p in re.split(r"(?<=[。.])", body) if p)
            if feed.fmt == "rss":
                items.append(
                    f"<item><title>{escape(title)}</title><link>{link}</link>"
                    f'<guid isPermaLink="false">farm-{feed.index}-{j}</guid>'
                    f"<pubDate>{format_datetime(when)}</pubDate>"
                    f"<description>{escape(paragraphs)}</description></item>"
                )
            else:
                items.append(
                    f'<entry><title>{escape(title)}</title><link href="{link}"/>'
                    f"<id>urn:farm:{feed.index}:{j}</id><updated>{when.isoformat()}</updated>"
                    f'<content type="html">{escape(paragraphs)}</content></entry>'
                )
        if feed.fmt == "rss":
            doc = (
                f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
                f"<title>Farm feed {feed.index}</title><link>https://news.example/{feed.index}</link>"
                f"<description>farm</description><language>{feed.language}</language>"
                f"{''.join(items)}</channel></rss>"
            )
        else:
            doc = (
                f'<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom" '
                f'xml:lang="{feed.language}"><title>Farm feed {feed.index}</title>'
                f"<id>urn:farm:{feed.index}</id><updated>{self.modified.isoformat()}</updated>"
                f"{''.join(items)}</feed>"
            )
        data = doc.encode("utf-8")
        if feed.broken == "malformed":
            data = data[: len(data) * 2 // 3]  # cut mid-document: unclosed tags
        return data

    def _render_headlines(self, feed: FarmFeed) -> bytes:
        """An RSS feed of the headlines whose row number is the feed's index mod the feeds."""
        assert self.headlines is not None
        items = "".join(
            f"<item><title>{escape(title)}</title>"
            f"<link>https://news.example/{feed.index}/{n}</link>"
            f'<guid isPermaLink="false">uci-{feed.index}-{n}</guid>'
            f"<pubDate>{format_datetime(when)}</pubDate></item>"
            for n, (title, when) in enumerate(self.headlines[feed.index :: len(self.feeds)])
        )
        return (
            f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
            f"<title>Headlines {feed.index}</title><link>https://news.example/{feed.index}</link>"
            f"<description>farm</description><language>en</language>{items}</channel></rss>"
        ).encode()

    # --- serving ----------------------------------------------------------------------------

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        farm = self
        by_path = {f.path: f for f in self.feeds}
        last_modified = format_datetime(self.modified, usegmt=True)

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            came = 0.0  # when the request being answered came (time.time())

            def log_message(self, format: str, *args: object) -> None:  # quiet
                pass

            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                came = time.time()
                with farm._lock:
                    farm.requests += 1
                self.came = came
                if farm.latency:
                    time.sleep(farm.latency)
                feed = by_path.get(self.path)
                if feed is None:
                    return self._send(404, b"not found", "text/plain")
                if feed.broken == "500":
                    return self._send(500, b"internal error", "text/plain")
                if feed.broken == "404":
                    return self._send(404, b"not found", "text/plain")
                if feed.broken == "slow":
                    time.sleep(farm.slow_seconds)
                if feed.broken == "redirect":
                    target = farm.feeds[(feed.index + 1) % len(farm.feeds)]
                    with farm._lock:
                        farm.log.append((came, self.path, 301))
                    self.send_response(301)
                    self.send_header("Location", target.path)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return None
                body = farm.bodies[feed.path]
                etag = '"' + hashlib.sha1(body).hexdigest()[:16] + '"'
                since = self.headers.get("If-Modified-Since")
                fresh = self.headers.get("If-None-Match") == etag
                if not fresh and since and self.headers.get("If-None-Match") is None:
                    try:
                        fresh = parsedate_to_datetime(since) >= farm.modified
                    except (TypeError, ValueError):
                        fresh = False
                if fresh:
                    with farm._lock:
                        farm.not_modified += 1
                        farm.log.append((came, self.path, 304))
                    self.send_response(304)
                    self.send_header("ETag", etag)
                    self.end_headers()
                    return None
                ctype = "application/rss+xml" if feed.fmt == "rss" else "application/atom+xml"
                return self._send(
                    200,
                    body,
                    ctype + "; charset=utf-8",
                    {"ETag": etag, "Last-Modified": last_modified},
                )

            def _send(
                self, status: int, body: bytes, ctype: str, headers: dict[str, str] | None = None
            ) -> None:
                with farm._lock:
                    farm.log.append((self.came, self.path, status))
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                try:
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        return Handler

    def start(self) -> Farm:
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def write_config(self, path: Path, *, extra: str = "") -> Path:
        """A feeds.toml listing every farm feed (for `aggregator --config PATH poll`)."""
        lines = ["[storage]", 'path = "farm.db"', "", extra, ""]
        for feed in self.feeds:
            lines += ["[[feeds]]", f'url = "{self.url(feed)}"', f'name = "farm {feed.index}"', ""]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(lines), encoding="utf-8")
        return path


def load_headlines(path: Path) -> list[tuple[str, datetime]]:
    """(title, published) of each row of a CSV with `title` and `timestamp_ms` columns
    (`../shared/data/uci-news-dev/headlines.csv`: UCI News Aggregator, CC BY 4.0)."""
    with path.open(encoding="utf-8", newline="") as handle:
        return [
            (row["title"], datetime.fromtimestamp(int(row["timestamp_ms"]) / 1000, UTC))
            for row in csv.DictReader(handle)
        ]
