"""Alert payloads for the notify tests: one built by hand and a hypothesis strategy."""

from __future__ import annotations

from typing import Literal

from hypothesis import strategies as st

from aggregator.types import AlertPayload, AlertSource

HEADLINE = "刚刚，巴黎AI峰会开幕，百国探讨AI未来，DeepSeek成焦点"


def source(
    feed: str, title: str, link: str | None, published: str = "2025-02-10T08:00:00+00:00"
) -> AlertSource:
    return {"feed": feed, "title": title, "link": link, "published": published}


def payload(
    *,
    watch: str = "summit",
    reason: Literal["new", "grew"] = "new",
    headline: str = HEADLINE,
    sources: list[AlertSource] | None = None,
) -> AlertPayload:
    """The seeds' summit story as five feeds carry it (Simplified and Traditional)."""
    if sources is None:
        sources = [
            source("腾讯新闻", HEADLINE, "https://new.qq.com/rain/a/20250210A08ACT00"),
            source("聯合新聞網", "剛剛，巴黎AI峰會開幕", "https://udn.com/news/story/6811/8535"),
            source(
                "BBC", "AI Action Summit opens in Paris", "https://www.bbc.co.uk/news/ai?x=1&y=2"
            ),
            source("DW 中文", "人工智能峰会——欧洲还有竞争力吗？", "https://www.dw.com/zh/a-71"),
            source("local", "巴黎AI峰会 (undated)", None, "2025-02-10T10:30:00+00:00"),
        ]
    return {
        "watch": watch,
        "reason": reason,
        "story": {
            "id": "4127",
            "headline": headline,
            "topic": "AI",
            "first_seen": "2025-02-10T08:00:00+00:00",
            "sources": sources,
            "link": sources[0]["link"] if sources else None,
        },
    }


_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=300)
_link = st.one_of(
    st.none(),
    st.builds(lambda path: f"https://example.org/{path}", _text),
    st.sampled_from(["javascript:alert(1)", "ftp://x/y", "", "https://a/b>c|d<e"]),
)
_published = st.sampled_from(["2025-02-10T08:00:00+00:00", "2025-02-11T00:00:00Z"])
_source = st.builds(source, _text, _text, _link, _published)
payloads = st.builds(
    payload,
    watch=_text,
    reason=st.sampled_from(["new", "grew"]),
    headline=_text,
    sources=st.lists(_source, max_size=60),
)
