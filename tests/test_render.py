"""Rendering digests as html, text and json, through the real templates."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser

import pytest

from aggregator.digest.render import (
    anchor_ids,
    digest_to_dict,
    format_localtime,
    render,
    render_json,
    safe_url,
)
from aggregator.digest.summary import display_width
from aggregator.types import Article, Digest, Entry, Format, Story, TopicGroup
from tests.builders import stored_entry

SINCE = datetime(2025, 2, 9, 0, 0, tzinfo=UTC)
UNTIL = datetime(2025, 2, 10, 0, 0, tzinfo=UTC)
T0 = datetime(2025, 2, 10, 13, 0, 1, tzinfo=UTC)  # 21:00:01 in Shanghai
XSS = "<script>alert(1)</script>"


def entry(n: int, feed: str, title: str, link: str | None, *, language: str | None = None) -> Entry:
    return stored_entry(
        n,
        title,
        published=T0 + timedelta(minutes=n),
        feed_url=f"https://feeds.example/{n}.xml",
        feed_name=feed,
        link=link,
        language=language,
    )


def article(*copies: Entry, summary: str = "", language: str | None = None) -> Article:
    lead = copies[0]
    return Article(
        title=lead.title,
        link=lead.link,
        published=lead.published,
        language=language,
        summary=summary,
        copies=copies,
    )


def make_digest(*topics: TopicGroup, timezone: str = "Asia/Shanghai") -> Digest:
    return Digest(since=SINCE, until=UNTIL, generated_at=UNTIL, timezone=timezone, topics=topics)


@pytest.fixture
def digest() -> Digest:
    chinese = Story(
        headline="央行宣布降息",
        articles=(
            article(
                entry(1, "新华网", "央行宣布降息25个基点", "https://news.example/cn/1"),
                entry(2, "中央日報", "央行宣佈降息 市場反應熱烈", "https://tw.example/2"),
                summary="中国人民银行周一宣布下调贷款市场报价利率。",
                language="zh",
            ),
            article(
                entry(3, "Reuters", "China's central bank cuts rates", "https://reuters.example/3"),
                summary="The People's Bank of China cut its benchmark rate.",
                language="en",
            ),
        ),
    )
    hostile = Story(
        headline=XSS,
        articles=(
            article(
                entry(4, "Evil <b>Feed</b>", XSS, "javascript:alert(1)"),
                summary=f"Summary with {XSS}",
            ),
            article(entry(5, "Quoter", "Quote breaker", 'https://evil.example/a"onmouseover="x()')),
            article(
                entry(6, "Angler", "Angle breaker", "https://evil.example/b><script>x()</script>")
            ),
            article(entry(7, "No link", "Linkless title", None)),
            # A copy of the article above carried by another feed, under a hostile link: it
            # is named beside that article, its link as safe as a title's.
            article(
                entry(8, "Neat", "Neat title", "https://neat.example/8"),
                entry(9, "Copier <i>", "Copied title", "javascript:alert(2)"),
            ),
        ),
    )
    return make_digest(
        TopicGroup("科技", (chinese,)),
        TopicGroup("World News", (hostile,)),
    )


def all_copies(digest: Digest) -> list[Entry]:
    return [c for t in digest.topics for s in t.stories for a in s.articles for c in a.copies]


class PageParser(HTMLParser):
    """Collects ids, hrefs, and whether any <script> element appears."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.hrefs: list[str] = []
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        for name, value in attrs:
            self.attrs.append((tag, name, value))
            if name == "id" and value:
                self.ids.add(value)
            if name == "href" and value is not None:
                self.hrefs.append(value)


def parse(html: str) -> PageParser:
    parser = PageParser()
    parser.feed(html)
    parser.close()
    return parser


# --- json -------------------------------------------------------------------


def test_json_has_exactly_the_contract_keys(digest: Digest) -> None:
    data = json.loads(render(digest, Format.JSON))
    assert list(data) == ["since", "until", "generated_at", "late_since", "topics"]
    assert data["late_since"] is None  # a digest of its window alone
    for topic in data["topics"]:
        assert list(topic) == ["name", "stories"]
        for story in topic["stories"]:
            assert list(story) == ["id", "headline", "articles"]
            for art in story["articles"]:
                assert list(art) == ["title", "link", "published", "dated", "language", "copies"]
                assert isinstance(art["language"], str)
                assert art["dated"] is True
                for copy in art["copies"]:
                    assert list(copy) == [
                        "feed", "title", "link", "published", "dated", "late", "arrived_late"
                    ]  # fmt: skip
                    assert copy["dated"] is True and copy["late"] is False
                    assert copy["arrived_late"] is False


def test_json_times_carry_the_digest_offset(digest: Digest) -> None:
    data = json.loads(render_json(digest))
    assert data["since"] == "2025-02-09T08:00:00+08:00"
    assert data["until"] == "2025-02-10T08:00:00+08:00"
    assert data["generated_at"] == "2025-02-10T08:00:00+08:00"
    first = data["topics"][0]["stories"][0]["articles"][0]
    assert first["published"] == "2025-02-10T21:01:01+08:00"
    assert first["copies"][0]["published"] == "2025-02-10T21:01:01+08:00"
    stamps = [
        c["published"]
        for t in data["topics"]
        for s in t["stories"]
        for a in s["articles"]
        for c in a["copies"]
    ]
    assert all(s.endswith("+08:00") for s in stamps)


def test_json_keeps_every_copy_and_unicode(digest: Digest) -> None:
    text = render_json(digest)
    assert "央行宣佈降息" in text  # ensure_ascii=False: no \u escapes
    data = json.loads(text)
    copies = [
        (c["feed"], c["title"], c["link"])
        for t in data["topics"]
        for s in t["stories"]
        for a in s["articles"]
        for c in a["copies"]
    ]
    assert copies == [(c.feed_name, c.title, c.link) for c in all_copies(digest)]
    assert data["topics"][1]["stories"][0]["articles"][0]["language"] == ""
    assert data == digest_to_dict(digest)


def test_json_converts_to_other_zones(digest: Digest) -> None:
    ny = make_digest(*digest.topics, timezone="America/New_York")
    data = digest_to_dict(ny)
    assert data["since"] == "2025-02-08T19:00:00-05:00"


#: When the daily digest before `SINCE`'s was made: its late arrivals were stored since.
LATE_SINCE = SINCE + timedelta(hours=7)


def late_digest(*, late_since: datetime | None = LATE_SINCE) -> Digest:
    """A daily digest whose story has a report of the window and two late arrivals (first
    stored after the previous daily digest was made, dated before the window): a copy of
    the window's report from another feed, and a report of its own."""
    seen = LATE_SINCE + timedelta(hours=2)

    def report(n: int, title: str, feed: str, hours: int) -> Entry:
        """Published `hours` after the window's start; stored late when before it."""
        published = SINCE + timedelta(hours=hours)
        link = f"https://{feed.split()[0].lower()}.example/{n}"
        first_seen = seen if hours < 0 else None
        return stored_entry(
            n, title, published=published, first_seen=first_seen, feed_name=feed, link=link
        )

    in_window = report(1, "Summit opens", "Reuters", 3)
    late_copy = report(2, "Summit opens", "Copier", -1)
    late = report(3, "Summit opens, says host", "Late Wire", -2)
    story = Story("Summit opens", (article(in_window, late_copy), article(late)))
    return replace(make_digest(TopicGroup("News", (story,))), late_since=late_since)


def test_json_marks_a_daily_digests_late_arrivals() -> None:
    data = digest_to_dict(late_digest())
    assert data["late_since"] == "2025-02-09T15:00:00+08:00"
    (story,) = data["topics"][0]["stories"]
    assert [[c["late"] for c in a["copies"]] for a in story["articles"]] == [[False, True], [True]]
    arrived = [[c["arrived_late"] for c in a["copies"]] for a in story["articles"]]
    assert arrived == [[False, True], [True]]  # stored after their day's digest was made
    # The previous digest's day two days before: the day between was missed (the daemon
    # was down), and its entries are late, not "arrived late".
    missed = digest_to_dict(replace(late_digest(), missed_since=SINCE - timedelta(hours=1)))
    (story,) = missed["topics"][0]["stories"]
    assert [[c["late"] for c in a["copies"]] for a in story["articles"]] == [[False, True], [True]]
    arrived = [[c["arrived_late"] for c in a["copies"]] for a in story["articles"]]
    assert arrived == [[False, False], [True]]  # the copy of the missed day: late only
    assert data["topics"][0]["stories"][0]["articles"][1]["copies"][0]["feed"] == "Late Wire"


def test_a_digest_without_late_arrivals_by_rule_marks_none() -> None:
    """A digest asked for by its window (or a store's first daily digest) has none:
    `late_since` is null, and no copy is late, whatever its date."""
    digest = late_digest(late_since=None)
    data = digest_to_dict(digest)
    assert data["late_since"] is None
    copies = [c for a in data["topics"][0]["stories"][0]["articles"] for c in a["copies"]]
    assert [c["late"] for c in copies] == [False, False, False]
    assert [c["arrived_late"] for c in copies] == [False, False, False]
    assert "arrived late" not in render(digest, Format.HTML)
    assert "arrived late" not in render(digest, Format.TEXT)


def test_html_and_text_say_which_copies_arrived_late() -> None:
    html = render(late_digest(), Format.HTML)
    assert (
        '<time datetime="2025-02-09T06:00:00+08:00">2025-02-09 06:00 +08:00 · arrived late</time>'
        in html
    )
    assert 'also in <a href="https://copier.example/2">Copier</a> (arrived late)' in html
    assert "2025-02-09 11:00 +08:00</time>" in html  # the window's report: on time
    assert html.count("arrived late") == 2
    assert "1 story · 2 articles · 3 sources" in html  # the late arrivals counted
    text = render(late_digest(), Format.TEXT)
    assert (
        "  - Late Wire: Summit opens, says host <https://late.example/3> "
        "(2025-02-09 06:00 +08:00 · arrived late)" in text
    )
    assert "    also in Copier (arrived late)" in text
    assert "<https://reuters.example/1> (2025-02-09 11:00 +08:00)" in text
    assert "1 story, 2 articles, 3 sources" in text


# --- html -------------------------------------------------------------------


def test_html_is_a_standalone_page(digest: Digest) -> None:
    html = render(digest, Format.HTML)
    assert html.lstrip().lower().startswith("<!doctype html>")
    assert '<meta charset="utf-8">' in html
    assert 'name="viewport"' in html
    assert "prefers-color-scheme" in html
    assert "overflow-wrap: anywhere" in html
    assert '"PingFang SC"' in html
    page = parse(html)
    assert ("html", "lang", "en") in page.attrs  # the page's own words; its Chinese marked
    assert "script" not in page.tags
    assert not any(tag == "link" for tag in page.tags)  # no external stylesheets
    assert "2 stories · 7 articles · 9 sources" in html


def test_a_chinese_digest_keeps_its_own_words_english_and_marks_its_chinese() -> None:
    """A digest of Chinese stories only (the Quick start's) was `lang="zh"` as a whole, its
    English words ("Daily digest", "also in", "Topics") read with a Chinese voice. The page
    is English; each Chinese text is marked: declared, or as it reads (a topic named by its
    words, a feed's name, a title of no declared language)."""
    declared = entry(1, "新华网", "巴黎AI峰会开幕", "https://x.example/1", language="zh-CN")
    undeclared = entry(2, "中央日報", "巴黎峰會開幕", "https://t.example/2")
    english = entry(3, "Reuters", "Summit opens in Paris", "https://r.example/3")
    story = Story("巴黎AI峰会开幕", (article(declared, undeclared), article(english)))
    html = render(make_digest(TopicGroup("峰会", (story,))), Format.HTML)
    page = parse(html)
    assert ("html", "lang", "en") in page.attrs
    assert '<a href="#' in html and '" lang="zh-Hans">峰会</a>' in html  # the table of contents
    assert '<h2><span lang="zh-Hans">峰会</span> <span class="n">1 story</span></h2>' in html
    assert '<span class="feed" lang="zh-Hans">新华网</span>' in html
    assert 'lang="zh-CN">巴黎AI峰会开幕</a>' in html  # declared: as the feed says
    assert 'also in <a href="https://t.example/2" lang="zh-Hant">中央日報</a>' in html
    assert '<span class="feed">Reuters</span>' in html  # English: the page's own
    assert 'lang="en"' not in html.split("<body", 1)[1]  # nothing marked English twice


def test_a_japanese_pages_kanji_names_are_marked_japanese_not_chinese() -> None:
    """Kanji alone read as Chinese; on a page whose articles are mostly Japanese, a feed's
    name or a topic of no declared language written in them is Japanese (a Chinese voice
    and Traditional fonts for 日本経済新聞 before). A declared English text is the page's."""
    nikkei = entry(1, "日本経済新聞", "日銀が利上げを決定", "https://n.example/1", language="ja")
    asahi = entry(2, "朝日新聞", "日銀、利上げ", "https://a.example/2", language="ja-JP")
    reuters = entry(3, "Reuters", "BOJ raises rates", "https://r.example/3", language="en-US")
    bbc = entry(4, "BBC", "Japan raises rates", "https://b.example/4", language="en-GB")
    story = Story(
        "日銀が利上げを決定",
        (  # Japanese counted as one language whatever its region: more than English
            article(nikkei, language="ja"),
            article(asahi, language="ja-JP"),
            article(reuters, language="en-US"),
            article(bbc, language="en-GB"),
            article(entry(5, "Kyodo", "日銀", "https://k.example/5"), language="ja-JP"),
        ),
    )
    html = render(make_digest(TopicGroup("経済", (story,))), Format.HTML)
    assert '<h2><span lang="ja">経済</span>' in html
    assert '<span class="feed" lang="ja">日本経済新聞</span>' in html
    assert '<span class="feed" lang="ja">朝日新聞</span>' in html
    assert '<a href="https://r.example/3" dir="auto">BOJ raises rates</a>' in html  # en-US
    body = html.split("<body", 1)[1]
    assert "zh-" not in body and 'lang="en' not in body


def test_html_escapes_feed_markup(digest: Digest) -> None:
    html = render(digest, Format.HTML)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script" not in html.lower()
    assert "<b>Feed</b>" not in html
    assert "Evil &lt;b&gt;Feed&lt;/b&gt;" in html


def test_html_never_links_unsafe_urls(digest: Digest) -> None:
    html = render(digest, Format.HTML)
    page = parse(html)
    assert "javascript:" not in html  # not even as text: only titles are shown, not links
    for href in page.hrefs:
        assert href.startswith(("#", "https://", "http://")), href
    assert "Linkless title" in html


def test_html_link_cannot_break_out_of_its_attribute(digest: Digest) -> None:
    page = parse(render(digest, Format.HTML))
    # The parser sees each hostile link as one whole href value, and no extra attributes.
    assert 'https://evil.example/a"onmouseover="x()' in page.hrefs
    assert "https://evil.example/b><script>x()</script>" in page.hrefs
    assert not any(name.startswith("on") for _, name, _ in page.attrs)


def test_html_lists_every_copy_with_local_time(digest: Digest) -> None:
    html = render(digest, Format.HTML)
    for copy in all_copies(digest):
        assert copy.feed_name.replace("<", "&lt;").replace(">", "&gt;") in html
    # The Traditional copy of the first article: named beside it, linked to its own page.
    # A Chinese feed name in the English "also in": marked as the language it reads as.
    assert 'also in <a href="https://tw.example/2" lang="zh-Hant">中央日報</a>' in html
    assert "央行宣佈降息 市場反應熱烈" not in html
    assert "also in Copier &lt;i&gt;</span>" in html  # its link unsafe: the name alone
    assert "2025-02-10 21:01 +08:00" in html
    assert 'href="https://news.example/cn/1">央行宣布降息</a>' in html  # headline → lead link


def test_html_toc_links_to_existing_sections(digest: Digest) -> None:
    page = parse(render(digest, Format.HTML))
    fragments = [href[1:] for href in page.hrefs if href.startswith("#")]
    assert len(fragments) == len(digest.topics)
    assert all(fragment in page.ids for fragment in fragments)
    assert "topic-科技" in fragments


def wire_story() -> Story:
    """A wire report six feeds carried, then six other reports of the event."""
    wire = [entry(n, f"Feed {n}", "Wire report", f"https://e.example/{n}") for n in range(6)]
    others = [
        article(entry(n, f"Feed {n}", f"Title {n}", f"https://e.example/{n}")) for n in range(6, 12)
    ]
    return Story("Wire report", (article(*wire), *others))


def test_html_lists_each_article_once_and_folds_beyond_five() -> None:
    html = render(make_digest(TopicGroup("News", (wire_story(),))), Format.HTML)
    page = parse(html)
    shown, folded = html.split("<details>")
    # The wire report is one line naming the other feeds that carried it, each linked to
    # its copy: its copies do not crowd the story's other reports out of sight.
    assert shown.count('dir="auto">Wire report</a>') == 1
    assert 'also in <a href="https://e.example/1">Feed 1</a>, ' in shown
    assert all(f"https://e.example/{n}" in page.hrefs for n in range(12))
    assert all(f"Title {n}" in shown for n in range(6, 10))
    assert "+2 more articles" in folded
    assert "Title 10" in folded and "Title 11" in folded and "Title 9" not in folded


def test_html_does_not_fold_five_articles() -> None:
    story = Story(
        "S", tuple(article(entry(n, f"F{n}", f"T{n}", f"https://e.example/{n}")) for n in range(5))
    )
    html = render(make_digest(TopicGroup("News", (story,))), Format.HTML)
    assert "<details>" not in html
    assert "also in" not in html


# --- text -------------------------------------------------------------------


def test_text_lists_each_source_line(digest: Digest) -> None:
    text = render(digest, Format.TEXT)
    assert "Digest: 2025-02-09 08:00 +08:00 – 2025-02-10 08:00 +08:00" in text
    assert "== 科技 ==" in text
    assert "== World News ==" in text
    assert "1. 央行宣布降息" in text
    assert (
        "  - 新华网: 央行宣布降息25个基点 <https://news.example/cn/1> (2025-02-10 21:01 +08:00)"
        in text
    )
    lines = text.splitlines()
    # The Traditional copy of the first article is named on the line after it.
    at = lines.index(
        "  - 新华网: 央行宣布降息25个基点 <https://news.example/cn/1> (2025-02-10 21:01 +08:00)"
    )
    assert lines[at + 1] == "    also in 中央日報"
    assert "央行宣佈降息 市場反應熱烈" not in text
    assert "  - No link: Linkless title (2025-02-10 21:07 +08:00)" in lines
    assert "    also in Copier <i>" in lines
    assert "javascript:" not in text
    for story in (s for t in digest.topics for s in t.stories):
        for a in story.articles:
            assert f"  - {a.copies[0].feed_name}: {a.copies[0].title}" in text


def test_text_wraps_long_summaries() -> None:
    long = " ".join(["word"] * 60)
    story = Story("S", (article(entry(1, "F", "T", None), summary=long),))
    text = render(make_digest(TopicGroup("News", (story,))), Format.TEXT)
    assert all(len(line) <= 78 for line in text.splitlines() if "word" in line)
    assert sum("word" in line for line in text.splitlines()) > 1


def test_text_strips_control_characters() -> None:
    story = Story("S", (article(entry(1, "F", "evil\x1b[2Jtitle\nsecond line", None)),))
    text = render(make_digest(TopicGroup("News", (story,))), Format.TEXT)
    assert "\x1b" not in text
    assert "  - F: evil[2Jtitle second line" in text


@pytest.mark.parametrize("fmt", [Format.HTML, Format.TEXT])
def test_a_titles_direction_override_stays_out_of_the_page(fmt: Format) -> None:
    """A title carrying U+202E (right-to-left override) showed the rest of its line, the
    source's time included, backwards ("00:80+ 10:12 01-20-5202"): a feed could garble or
    spoof what follows its title. The explicit direction controls are dropped; the marks
    (U+200F) that right-to-left titles need are kept."""
    title = "evil\u202egnp.exe\u2066 isolated\u2069 \u202bembedded\u202c \u200fmark"
    story = Story(title, (article(entry(1, "F\u202e", title, "https://x.example/a")),))
    page = render(make_digest(TopicGroup("News", (story,))), fmt)
    for control in "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069":
        assert control not in page
    assert "evilgnp.exe isolated embedded \u200fmark" in page
    assert "2025-02-10 21:01 +08:00" in page


# --- empty ------------------------------------------------------------------


@pytest.mark.parametrize("fmt", [Format.HTML, Format.TEXT])
def test_empty_digest_says_nothing_new(fmt: Format) -> None:
    out = render(make_digest(), fmt)
    assert "Nothing new between 2025-02-09 08:00 +08:00 and 2025-02-10 08:00 +08:00." in out


def test_empty_digest_json() -> None:
    data = json.loads(render(make_digest(), Format.JSON))
    assert data["topics"] == []


# --- helpers ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://example.com/a?b=1", "https://example.com/a?b=1"),
        ("  http://example.com/  ", "http://example.com/"),
        ("HTTPS://EXAMPLE.COM/", "HTTPS://EXAMPLE.COM/"),
        ("javascript:alert(1)", None),
        ("JavaScript:alert(1)", None),
        (" java\tscript:alert(1)", None),
        ("data:text/html,<script>alert(1)</script>", None),
        ("vbscript:msgbox", None),
        ("//example.com/x", None),
        ("/relative", None),
        ("https://", None),
        ("https://exa mple.com", None),
        ("", None),
        (None, None),
    ],
)
def test_safe_url(url: str | None, expected: str | None) -> None:
    assert safe_url(url) == expected


def test_format_localtime() -> None:
    assert format_localtime(T0, "Asia/Shanghai") == "2025-02-10 21:00 +08:00"
    assert format_localtime(T0, "Asia/Kolkata") == "2025-02-10 18:30 +05:30"
    assert format_localtime(T0, "America/St_Johns") == "2025-02-10 09:30 -03:30"
    assert format_localtime(T0.replace(tzinfo=None), "UTC") == "2025-02-10 13:00 +00:00"


def test_anchor_ids_are_unique_and_safe() -> None:
    ids = anchor_ids(["World News", "world news", "科技", "???", "", "a b/c"])
    assert ids == [
        "topic-world-news",
        "topic-world-news-2",
        "topic-科技",
        "topic",
        "topic-2",
        "topic-a-b-c",
    ]


# --- content ----------------------------------------------------------------


def test_summary_comes_from_the_primary_copys_text() -> None:
    lead = entry(1, "F", "T", "https://e.example/1")
    lead = Entry(**{**lead.__dict__, "text": "第一句。第二句！第三句？第四句。\n\n第二段。"})
    story = Story("S", (article(lead, summary="feed summary cut mid-sente..."),))
    html = render(make_digest(TopicGroup("News", (story,))), Format.HTML)
    # No declared language: the one the text reads as, not the page's English.
    assert '<p class="summary" dir="auto" lang="zh-Hans">第一句。第二句！第三句？</p>' in html
    assert "feed summary" not in html


def test_summary_falls_back_to_the_feed_summary() -> None:
    story = Story("S", (article(entry(1, "F", "T", None), summary="Short one. Two... "),))
    text = render(make_digest(TopicGroup("News", (story,))), Format.TEXT)
    assert "   Short one. Two…" in text


def test_header_counts_new_feeds_and_names_them(digest: Digest) -> None:
    with_new = Digest(**{**digest.__dict__, "new_feeds": ("新华网", "Reuters")})
    html = render(with_new, Format.HTML)
    assert "2 stories · 7 articles · 9 sources · 2 new feeds" in html
    assert "New: 新华网, Reuters" in html
    assert "2 stories, 7 articles, 9 sources, 2 new feeds" in render(with_new, Format.TEXT)
    assert "new feed" not in render(digest, Format.HTML)


def test_title_names_the_day_or_the_range(digest: Digest) -> None:
    html = render(digest, Format.HTML)  # 2025-02-09 08:00 to 2025-02-10 08:00 in Shanghai
    assert "<title>Digest 2025-02-09 – 2025-02-10</title>" in html
    day = Digest(
        since=datetime(2025, 2, 9, 16, 0, tzinfo=UTC),  # midnight to midnight, Shanghai
        until=datetime(2025, 2, 10, 16, 0, tzinfo=UTC),
        generated_at=UNTIL,
        timezone="Asia/Shanghai",
    )
    assert "<title>Digest 2025-02-10</title>" in render(day, Format.HTML)
    assert "Daily digest" in render(day, Format.HTML)
    assert render(day, Format.TEXT).startswith("Daily digest 2025-02-10\n")


def test_toc_and_story_anchors(digest: Digest) -> None:
    page = parse(render(digest, Format.HTML))
    assert {"story-1", "story-2"} <= page.ids


def test_links_to_the_archive_and_the_web_copy(digest: Digest) -> None:
    html = render(
        digest,
        Format.HTML,
        web_url="https://digests.example/2025-02-10.html",
        archive_url="index.html",
        feed_url="feed.xml",
    )
    page = parse(html)
    assert {"https://digests.example/2025-02-10.html", "index.html", "feed.xml"} <= set(page.hrefs)
    hostile = render(digest, Format.HTML, web_url="javascript:alert(1)")
    assert "View in a browser" not in hostile and "javascript:" not in hostile
    text = render(
        digest, Format.TEXT, web_url="https://d.example/x.html", archive_url="https://d.example/"
    )
    assert "View in a browser: <https://d.example/x.html>" in text
    assert "All digests: https://d.example/" in text


def test_text_wraps_chinese_by_display_width() -> None:
    summary = "巴黎人工智能行动峰会开幕，" * 10 + "完。"
    story = Story("S", (article(entry(1, "F", "T", None), summary=summary),))
    text = render(make_digest(TopicGroup("News", (story,))), Format.TEXT)
    lines = [line for line in text.splitlines() if "峰会" in line and line.startswith("   ")]
    assert len(lines) > 2
    assert all(display_width(line) <= 78 for line in lines)
    assert not any(line.lstrip().startswith(("，", "。")) for line in lines)  # kinsoku
    assert "".join(line.strip() for line in lines) == summary


def test_text_lists_each_article_once_and_folds_beyond_five() -> None:
    text = render(make_digest(TopicGroup("News", (wire_story(),))), Format.TEXT)
    lines = text.splitlines()
    at = lines.index("  - Feed 0: Wire report <https://e.example/0> (2025-02-10 21:00 +08:00)")
    assert lines[at + 1] == "    also in Feed 1, Feed 2, Feed 3, Feed 4, Feed 5"
    assert lines[at + 2].startswith("  - Feed 6: Title 6 ")
    assert text.count("Wire report <") == 1
    assert "Title 9" in text and "Title 10" not in text
    assert "  + 2 more articles: Feed 10, Feed 11" in lines


def test_text_wraps_the_feeds_of_folded_articles() -> None:
    story = Story(
        "S",
        tuple(
            article(entry(n, f"The Daily Example {n}", f"T{n}", f"https://e.example/{n}"))
            for n in range(20)
        ),
    )
    lines = render(make_digest(TopicGroup("News", (story,))), Format.TEXT).splitlines()
    start = lines.index("  + 15 more articles: The Daily Example 5, The Daily Example 6,")
    rest = lines[start + 1 :]
    assert all(line.startswith("    ") and display_width(line) <= 78 for line in rest)
    assert rest[-1] == "    The Daily Example 19"


def test_text_wraps_the_feeds_of_a_copy_between_names() -> None:
    names = [f"The Daily Example {n}" for n in range(12)]
    copies = [entry(n, name, "Wire", f"https://e.example/{n}") for n, name in enumerate(names)]
    text = render(make_digest(TopicGroup("News", (Story("S", (article(*copies),)),))), Format.TEXT)
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("    also in "))
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("    ")), len(lines))
    carried = lines[start:end]
    assert len(carried) > 2
    assert all(line.startswith("    ") and display_width(line) <= 78 for line in carried)
    joined = " ".join(line.strip() for line in carried)
    assert joined == "also in " + ", ".join(names[1:])
    assert not any(line.rstrip().endswith("Example") for line in carried)  # no name cut


def test_now_links_an_also_story_to_its_place_or_its_page(monkeypatch: pytest.MonkeyPatch) -> None:
    """Now shows a section's newest stories; an "also" line points into the page when the
    story is shown there, else to the story's page."""
    from aggregator.digest import pages
    from aggregator.types import Choices, Filters

    monkeypatch.setattr(pages, "NOW_SECTION_STORIES", 1)
    stories = [
        Story(f"Story {n}", (article(entry(n, "Wire", f"Story {n}", None)),), id=n)
        for n in range(1, 4)
    ]
    # Newest first: story 3 and 2 under Markets (2 cut), 1 under Chips, which also lists both.
    markets = TopicGroup("Markets", (stories[2], stories[1]))
    chips = TopicGroup("Chips", (stories[0],), also=(stories[2], stories[1]))
    page = pages.render_now(
        make_digest(markets, chips), Choices((), (), (), ()), Filters(), since=None, now=UNTIL
    )
    assert '/stories/3">Story 3</a></h' in page and '/stories/2">Story 2</a></h' not in page
    assert '<a href="#story-1">Story 3</a> <span class="n">(under Markets)</span>' in page
    assert '<a href="/stories/2">Story 2</a> <span class="n">(under Markets)</span>' in page
    assert 'href="/?topic=Markets">All 2 stories in Markets</a>' in page
    assert 'Markets</a> <span class="n">(2)</span>' in page  # the table of contents counts all


class DirectionParser(HTMLParser):
    """Each text's nearest enclosing `dir` (None: the page's, left to right)."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[tuple[str, str | None]] = []
        self.texts: list[tuple[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in ("meta", "link", "br", "img", "input"):
            self.stack.append((tag, dict(attrs).get("dir")))

    def handle_endtag(self, tag: str) -> None:
        while self.stack and self.stack.pop()[0] != tag:
            pass

    def handle_data(self, data: str) -> None:
        if data.strip():
            shown = next((d for _, d in reversed(self.stack) if d), None)
            self.texts.append((data.strip(), shown))


def test_html_right_to_left_titles_and_summaries_take_their_own_direction() -> None:
    """An Arabic or Hebrew headline in the page's left-to-right flow put its final full
    stop or ellipsis at its start, and drew the source's time into its run (the time shown
    before the title): each headline, summary and source title takes the direction of its
    own text (dir="auto"), isolated from the feed name and the time beside it."""
    arabic = "زلزال بقوة 7.1 درجات يضرب شمال شرق اليابان…"
    hebrew = "רעידת אדמה בעוצמה 7.1 פקדה את צפון-מזרח יפן."
    story = Story(
        arabic,
        (
            article(entry(1, "Al Jazeera", arabic, "https://aj.example/1"), summary=arabic),
            article(entry(2, "Ynet", hebrew, None)),
        ),
    )
    parser = DirectionParser()
    parser.feed(render(make_digest(TopicGroup("Quake", (story,))), Format.HTML))
    shown = [(text, direction) for text, direction in parser.texts if text in (arabic, hebrew)]
    assert len(shown) == 4  # the headline, the summary, and each source's title
    assert all(direction == "auto" for _, direction in shown), shown
    assert ("2025-02-10 21:02 +08:00", None) in parser.texts  # the time keeps the page's
