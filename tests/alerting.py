"""What the watches' tests share: a webhook receiver on 127.0.0.1 with scripted answers
(the real channels deliver to it: the webhook, and a command that forwards what it reads),
and local feeds syndicating one story."""

from __future__ import annotations

import json
import sys
import threading
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import opencc

#: One wire story: copies of it are carried by many feeds, some in Traditional script.
STORY_TITLE = "巴黎AI峰会开幕，百国探讨AI未来"
STORY_TEXT = (
    "今日，为期两天的法国巴黎AI行动峰会开幕，全球100多个国家的领导人和科技企业代表齐聚巴黎大皇宫，"
    "讨论未来如何安全地拥抱人工智能。峰会主席表示，各国应当在开放与安全之间找到平衡，"
    "欧洲将加大对算力和数据中心的投资。多位与会者认为，开源模型正在改变行业格局，"
    "中小企业也能参与竞争。会议将发表联合声明，呼吁建立包容、可持续的人工智能治理框架。"
)
OTHER_TITLE = "央行宣布下调存款准备金率"
OTHER_TEXT = (
    "中国人民银行今日宣布，下调金融机构存款准备金率零点五个百分点，释放长期资金约一万亿元。"
    "分析人士指出，此举旨在保持流动性合理充裕，支持实体经济发展，降低企业融资成本。"
)


class Receiver:
    """A webhook receiver: records each POST's body and answers the next scripted status
    (then 200); `hold` keeps requests waiting until released."""

    def __init__(self, statuses: list[int] | None = None) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.channels: list[str] = []  # the channel each body came by (X-Channel)
        self.statuses = list(statuses or [])
        self.lock = threading.Lock()
        #: While set, a request is read and held unanswered (and not recorded: the sender
        #: never hears it was taken) until `release` is set; `arrived` says one came.
        self.holding = threading.Event()
        self.arrived = threading.Event()
        self.release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if receiver.holding.is_set():
                    receiver.arrived.set()
                    receiver.release.wait(60)
                    return  # no answer: the connection is dropped
                with receiver.lock:
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                    if status == 200:
                        receiver.bodies.append(json.loads(body))
                        receiver.channels.append(self.headers.get("X-Channel", "webhook"))
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


#: [notify.command]'s program in the tests: POSTs the alert on its standard input to the
#: receiver named by its argument, as channel "command" (exit 1 when that fails).
FORWARD = (
    "import sys, urllib.request as u; u.urlopen(u.Request(sys.argv[1], "
    "data=sys.stdin.buffer.read(), headers={'X-Channel': 'command', "
    "'Content-Type': 'application/json'}), timeout=10)"
)


def write_feed(folder: Path, index: int, items: list[tuple[str, str, str]]) -> Path:
    """feeds/feed<index>.xml, an RSS file of (guid, title, text) items dated 2025-02-11."""
    from datetime import UTC, datetime, timedelta

    when = datetime(2025, 2, 11, 8, 0, tzinfo=UTC)
    body = "".join(
        f"<item><title>{escape(title)}</title><link>https://news{index}.example/{guid}</link>"
        f'<guid isPermaLink="false">{guid}</guid>'
        f"<pubDate>{format_datetime(when + timedelta(minutes=n + index))}</pubDate>"
        f"<description>{escape(text)}</description></item>"
        for n, (guid, title, text) in enumerate(items)
    )
    path = folder / "feeds" / f"feed{index}.xml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
        f"<title>Feed {index}</title><link>https://news{index}.example/</link>{body}"
        "</channel></rss>",
        encoding="utf-8",
    )
    return path


def syndicate(folder: Path, feeds: range, *, feeds_total: int) -> None:
    """Make feeds `feeds` carry the story (every third in Traditional script); the others
    of the `feeds_total` carry only an unrelated story."""
    traditional = opencc.OpenCC("s2t")
    for index in range(feeds_total):
        items = [(f"other-{index}", OTHER_TITLE, OTHER_TEXT)] if index == 0 else []
        if index in feeds:
            title, text = STORY_TITLE, STORY_TEXT
            if index % 3 == 2:
                title, text = traditional.convert(title), traditional.convert(text)
            items.append((f"summit-{index}", title, text))
        write_feed(folder, index, items)


def config_text(receiver_url: str, feeds_total: int, watches: str) -> str:
    feeds = "".join(
        f'[[feeds]]\nurl = "feeds/feed{n}.xml"\nname = "feed {n}"\n'
        + ('tags = ["wire"]\n' if n % 2 else "")
        + "\n"
        for n in range(feeds_total)
    )
    return (
        f'[storage]\npath = "alerts.db"\n\n[dedup]\nworkers = 0\n\n{feeds}'
        '[[topics]]\nname = "AI"\nkeywords = ["AI", "人工智能"]\n\n'
        '[[topics]]\nname = "Economy"\nkeywords = ["央行", "经济"]\n\n'
        f'[notify.webhook]\nurl = "{receiver_url}"\ntimeout = "5s"\n\n'
        f"[notify.command]\nargv = {json.dumps([sys.executable, '-c', FORWARD, receiver_url])}"
        f'\ntimeout = "20s"\n\n{watches}'
    )
