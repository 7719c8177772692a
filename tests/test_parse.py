"""Tests for sources/: feeds, HTML to text, feed autodiscovery, language guessing."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aggregator.exceptions import ParseError
from aggregator.sources.discover import find_feed_links
from aggregator.sources.entries import entry_guid
from aggregator.sources.excerpt import excerpt
from aggregator.sources.html_text import html_to_text
from aggregator.sources.language import detect_language, normalize_language
from aggregator.sources.parse import parse_feed

DATA = Path(__file__).parent / "data"
SHANGHAI = ZoneInfo("Asia/Shanghai")


def read(name: str) -> bytes:
    return (DATA / name).read_bytes()


def rss(items: str, *, channel: str = "") -> bytes:
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
        f"<title>T</title><link>https://example.com/</link>{channel}{items}</channel></rss>"
    ).encode()


# --- parse_feed -------------------------------------------------------------------------


def test_rss_chinese_feed() -> None:
    feed = parse_feed(read("src_rss_zh.xml"), "https://news.example.cn/rss", default_tz=SHANGHAI)
    assert feed.title == "科技新闻"
    assert feed.warnings == []
    first, second = feed.entries
    assert first.guid == "news-example-20250210-001"
    assert first.title == "巴黎人工智能行动峰会开幕"
    assert first.link == "https://news.example.cn/2025/02/10/paris-ai-summit.html"
    assert first.published == datetime(2025, 2, 10, 13, 0, 1, tzinfo=UTC)
    assert first.author == "程茜"
    assert first.language == "zh-CN"
    assert first.summary == "为期两天的巴黎人工智能行动峰会今日开幕。"
    assert first.text == (
        "为期两天的巴黎人工智能行动峰会今日开幕，全球100多个国家的代表参会。\n\n"
        "峰会讨论了DeepSeek的影响。"
    )
    assert "track" not in first.text


def test_entry_without_guid_uses_link() -> None:
    entry = parse_feed(read("src_rss_zh.xml"), "u").entries[1]
    assert entry.guid == entry.link == "https://news.example.cn/2025/02/11/no-guid.html"


def test_entry_without_guid_or_link_uses_hash_of_title_and_text() -> None:
    data = rss("<item><title>Hello</title><description>World</description></item>")
    entry = parse_feed(data, "u").entries[0]
    assert entry.guid == entry_guid(None, None, "Hello", "World")
    assert re.fullmatch(r"sha1:[0-9a-f]{40}", entry.guid)
    assert parse_feed(data, "u").entries[0].guid == entry.guid  # stable


def test_date_without_timezone_uses_default_tz() -> None:
    entry = parse_feed(read("src_rss_zh.xml"), "u", default_tz=SHANGHAI).entries[1]
    assert entry.published == datetime(2025, 2, 11, 8, 30, tzinfo=SHANGHAI)
    assert entry.published.utcoffset() is not None
    in_utc = parse_feed(read("src_rss_zh.xml"), "u").entries[1]
    assert in_utc.published == datetime(2025, 2, 11, 8, 30, tzinfo=UTC)


def test_iso_date_without_timezone_uses_default_tz() -> None:
    data = rss(
        "<item><title>a</title><link>https://e.com/a</link>"
        "<pubDate>2025-02-10T21:00:01</pubDate></item>"
    )
    entry = parse_feed(data, "u", default_tz=SHANGHAI).entries[0]
    assert entry.published == datetime(2025, 2, 10, 21, 0, 1, tzinfo=SHANGHAI)


@pytest.mark.parametrize(
    "date",
    [
        "Fri, 31 Dec 9999 23:59:59 GMT",
        "0000-01-01T00:00:00Z",
        "Mon, 01 Jan 1900 00:00:00 GMT",
        "not a date",
        "31/31/2025",
    ],
)
def test_absurd_or_unreadable_dates_become_none(date: str) -> None:
    data = rss(
        f"<item><title>a</title><link>https://e.com/a</link><pubDate>{date}</pubDate></item>"
    )
    assert parse_feed(data, "u").entries[0].published is None


def test_atom_feed() -> None:
    feed = parse_feed(read("src_atom.xml"), "https://blog.example.com/atom.xml")
    assert feed.title == "Example Engineering Blog"
    first, second = feed.entries
    assert first.guid == "tag:blog.example.com,2025:sqlite"
    assert first.title == "Why we moved to SQLite"
    assert first.published == datetime(2025, 2, 10, 15, 2, 43, tzinfo=UTC)
    assert first.updated == datetime(2025, 2, 11, 8, 0, tzinfo=UTC)
    assert first.author == "Ada Lovelace"
    assert first.summary == "A short story about a small database."
    assert first.text == (
        "Background\n\nWe used a server database for years.\n\nThen we measured it & moved."
    )
    assert first.language == "en"
    # Without a published date, the updated date stands in.
    assert second.published == datetime(2025, 2, 9, 17, 0, tzinfo=UTC)
    assert second.text == "Plain text content, no markup at all."


def test_rdf_feed() -> None:
    feed = parse_feed(read("src_rdf.xml"), "https://science.example.org/rss")
    assert feed.title == "Science Example"
    (entry,) = feed.entries
    assert entry.guid == "https://science.example.org/articles/42"
    assert entry.title == "A new catalyst splits water"
    assert entry.published == datetime(2025, 2, 8, 1, 0, tzinfo=UTC)
    assert entry.author == "R. Feynman"
    assert entry.language == "en"


def test_malformed_feed_keeps_recovered_entries_with_a_warning() -> None:
    feed = parse_feed(read("src_malformed.xml"), "https://broken.example.com/rss")
    assert [e.title for e in feed.entries][:1] == ["First entry survives"]
    assert all(e.title or e.link or e.text for e in feed.entries)
    (warning,) = feed.warnings
    assert "malformed" in warning and "mismatched tag" in warning


def test_html_page_is_not_a_feed() -> None:
    with pytest.raises(ParseError, match="HTML page, not a feed") as info:
        parse_feed(read("src_page.html"), "https://www.example.com/")
    assert info.value.url == "https://www.example.com/"
    with pytest.raises(ParseError, match="HTML"):
        parse_feed(b"<div>hello</div>", "u", content_type="text/html; charset=utf-8")


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"   \n",
        b"just some words",
        b"\x89PNG\r\n\x1a\n\x00\x00",
        b"/etc/passwd",
        b"https://example.com/feed.xml",
        b"<?xml version='1.0'?><root><a/></root>",
    ],
)
def test_not_a_feed(data: bytes) -> None:
    with pytest.raises(ParseError) as info:
        parse_feed(data, "https://example.com/x")
    assert info.value.url == "https://example.com/x"


def test_empty_but_valid_feed_has_no_entries() -> None:
    feed = parse_feed(rss(""), "u")
    assert feed.entries == [] and feed.warnings == [] and feed.title == "T"


@pytest.mark.parametrize(
    ("name", "title", "language"),
    [
        ("src_gb2312.xml", "中国人工智能企业发布开源模型", "zh-Hans"),
        ("src_big5.xml", "開源惠及全球 外交部：共享智能紅利", "zh-Hant"),
    ],
)
def test_non_utf8_feeds_are_decoded(name: str, title: str, language: str) -> None:
    data = read(name)
    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-8")
    feed = parse_feed(data, "u")
    assert feed.entries[0].title == title
    assert feed.entries[0].language == language


def test_language_falls_back_to_default_then_detection() -> None:
    data = rss(
        "<item><title>Hello there</title><link>https://e.com/1</link>"
        "<description>An English sentence about things.</description></item>"
    )
    assert parse_feed(data, "u", default_language="fr").entries[0].language == "fr"
    assert parse_feed(data, "u").entries[0].language == "en"
    declared = rss(
        "<item><title>a</title><link>https://e.com/1</link></item>",
        channel="<language>ZH_tw</language>",
    )
    assert parse_feed(declared, "u", default_language="fr").entries[0].language == "zh-TW"


def test_an_undeclared_latin_script_entry_is_labelled_with_the_language_it_reads_as() -> None:
    """Not every Latin-script text is English: a French or Spanish item of a feed that
    declares no language is labelled so (its function words: `wordlists`)."""
    data = rss(
        "<item><title>Les agriculteurs bloquent les routes</title><link>https://e.com/1</link>"
        "<description>La colère monte dans le sud de la France contre les prix.</description>"
        "</item><item><title>Los agricultores cortan las carreteras</title>"
        "<link>https://e.com/2</link><description>Protestan por los precios en el sur de "
        "España.</description></item><item><title>Farmers block roads</title>"
        "<link>https://e.com/3</link><description>Anger is rising in the south of France "
        "over prices.</description></item>"
    )
    assert [e.language for e in parse_feed(data, "u").entries] == ["fr", "es", "en"]


def test_summary_is_cut_from_long_text() -> None:
    body = "".join(f"<p>This is sentence number {i} of a long article.</p>" for i in range(40))
    data = rss(
        f"<item><title>Long</title><link>https://e.com/l</link>"
        f"<description>{html.escape(body)}</description></item>"
    )
    entry = parse_feed(data, "u").entries[0]
    assert len(entry.summary) <= 200
    assert entry.summary.endswith(".")
    assert entry.text.count("\n\n") == 39


def test_a_summary_is_read_as_its_own_type_also_when_it_repeats_the_content() -> None:
    # The same characters as HTML and as plain text: "&amp;" is "&" in one, kept in the other.
    data = (
        b'<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom">'
        b"<title>t</title><entry><id>urn:1</id><title>x</title>"
        b'<summary type="text">Tom &amp;amp; Jerry</summary>'
        b'<content type="html">Tom &amp;amp; Jerry</content></entry></feed>'
    )
    (entry,) = parse_feed(data, "https://example.com/feed").entries
    assert (entry.text, entry.summary) == ("Tom & Jerry", "Tom &amp; Jerry")


# --- html_to_text -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("markup", "expected"),
    [
        ("", ""),
        ("plain   words\nhere", "plain words here"),
        ("<p>One</p><p>Two</p>", "One\n\nTwo"),
        ("line one<br>line two<br/>three", "line one\n\nline two\n\nthree"),
        ("<h1>Title</h1><div>Body  text\n  wraps</div>", "Title\n\nBody text wraps"),
        ("<ul><li>a</li><li>b</li></ul>", "a\n\nb"),
        ("<p>Tom &amp; Jerry &lt;3 &#8212; &eacute;t&eacute;</p>", "Tom & Jerry <3 — été"),
        ('<p>Read <a href="https://e.com/x">the report</a>.</p>', "Read the report."),
        ("<script>alert(1)</script><style>p{}</style><p>kept</p>", "kept"),
        ('<p><img src="https://e.com/i.jpg" alt="pic">text</p>', "text"),
        ("<figure><img src='a.jpg'><figcaption>A caption</figcaption></figure><p>x</p>", "x"),
        ("<img src='a.jpg'><div><small>Caption</small></div><p>Body</p>", "Body"),
        ("<html><head><title>Page</title></head><body><p>Body</p></body></html>", "Body"),
        ("<p>a<!-- comment -->b</p>", "ab"),
        ("<p>&nbsp;</p><p>\u3000</p><p>x</p>", "x"),
    ],
)
def test_html_to_text(markup: str, expected: str) -> None:
    assert html_to_text(markup) == expected


def test_html_to_text_emits_no_bs4_warnings() -> None:
    # Looks like a URL or a file name, or is XML: bs4 would warn (and warnings are errors).
    assert html_to_text("https://example.com/?a=1&b=2") == "https://example.com/?a=1&b=2"
    assert html_to_text("<?xml version='1.0'?><rss><item>x</item></rss>") == "x"


_TAGS = st.sampled_from(["p", "div", "span", "b", "i", "em", "a", "li", "h2", "td", "small"])
_TEXT = st.text(st.characters(blacklist_categories=("Cs", "Cc", "Co", "Cn")), max_size=80)


@given(text=_TEXT, tags=st.lists(_TAGS, min_size=1, max_size=5))
def test_html_to_text_keeps_escaped_text_and_leaves_no_markup(text: str, tags: list[str]) -> None:
    markup = html.escape(text)
    for tag in tags:
        markup = f"<{tag}>{markup}</{tag}>"
    result = html_to_text(markup)
    assert result == " ".join(text.split())
    if not re.search(r"<[A-Za-z]", text):
        assert not re.search(r"<[A-Za-z]", result)


def test_excerpt() -> None:
    assert excerpt("Short text.") == "Short text."
    long = "第一句话很长很长。" * 40
    cut = excerpt(long)
    assert len(cut) <= 200 and cut.endswith("。")
    words = excerpt("word " * 100)
    assert words.endswith("…") and len(words) <= 201


# --- find_feed_links --------------------------------------------------------------------


def test_find_feed_links_with_base_href() -> None:
    links = find_feed_links(read("src_page.html"), "https://www.example.com/index.html")
    assert links == [
        "https://www.example.com/news/feed.xml",
        "https://www.example.com/atom.xml",
        "https://cdn.example.com/feed.json",
    ]


def test_find_feed_links_relative_to_page_url() -> None:
    page = """<html><head>
      <link rel="alternate" type="application/rdf+xml" href="rdf">
      <link rel="alternate feed" type="application/json" href="../feed.json">
      <link rel="alternate" type="text/html" href="/other">
    </head></html>"""
    assert find_feed_links(page, "https://e.com/blog/post/") == [
        "https://e.com/blog/post/rdf",
        "https://e.com/blog/feed.json",
    ]
    assert find_feed_links("<p>no head</p>", "https://e.com/") == []


# --- detect_language --------------------------------------------------------------------


#: Reports long enough that one letter of another language in them says nothing.
RUSSIAN_REPORT = "Правительство заявило в понедельник, что рынок откроется как обычно. " * 12
ARABIC_REPORT = "أعلنت الحكومة يوم الاثنين أن السوق ستفتح كالمعتاد رغم العاصفة " * 12


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("中国积极拥抱智能变革，大力推进人工智能创新发展。", "zh-Hans"),
        ("中國積極擁抱智能變革，大力推進人工智能創新發展。", "zh-Hant"),
        ("DeepSeek開源惠及全球 外交部：共享智能紅利", "zh-Hant"),
        ("人工智能峰会——欧洲还有竞争力吗？", "zh-Hans"),
        ("人工知能の国際会議がパリで開かれました。", "ja"),
        ("파리에서 인공지능 정상회의가 열렸다.", "ko"),
        ("The summit opened in Paris on Monday.", "en"),
        ("Le sommet s'est ouvert lundi à Paris, avec les chefs d'État.", "fr"),
        ("La cumbre se abrió el lunes en París con los jefes de Estado.", "es"),
        ("Der Gipfel wurde am Montag in Paris mit den Staatschefs eröffnet.", "de"),
        ("Bon-Ton CEO to resign as the retailer's losses narrow", "en"),
        ("", None),
        ("12345 !!! 2025-02-10", None),
        # Scripts of their own: their letters tell the language (in the JSON digest's
        # `language` and the pages' `lang` these were left blank).
        ("Землетрясение магнитудой 7,1 произошло у берегов Японии.", "ru"),
        ("Землетрус магнітудою 7,1 стався біля узбережжя Японії, повідомляє агентство.", "uk"),
        ("Земетресение с магнитуд 7,1 разтърси Япония, съобщи агенцията.", "bg"),
        ("Земљотрес јачине 7,1 погодио је Јапан.", "sr"),
        ("زلزال بقوة 7.1 درجات يضرب شمال شرق اليابان.", "ar"),
        ("زلزله‌ای به بزرگی ۷.۱ ریشتر شمال شرق ژاپن را لرزاند.", "fa"),
        ("جاپان کے شمال مشرق میں 7.1 شدت کا زلزلہ آیا ہے۔", "ur"),
        ("רעידת אדמה בעוצמה 7.1 פקדה את צפון-מזרח יפן.", "he"),
        ("जापान के उत्तर-पूर्व में 7.1 तीव्रता का भूकंप आया है।", "hi"),
        ("Σεισμός 7,1 Ρίχτερ στη βορειοανατολική Ιαπωνία.", "el"),
        ("แผ่นดินไหวขนาด 7.1 ที่ญี่ปุ่น", "th"),
        ("জাপানে ৭.১ মাত্রার ভূমিকম্প", "bn"),
        ("ஜப்பானில் 7.1 ரிக்டர் நிலநடுக்கம்", "ta"),
        ("В Москве прошёл саммит ИИ, OpenAI и DeepSeek", "ru"),  # Latin names in Russian
        ("Путин объявил о переговорах", "ru"),  # Russian's ъ before я, not Bulgarian's
        ("Путин", "ru"),  # no other language's letter: the commonest Cyrillic one
        # One quoted word or foreign name does not make a long text another language's.
        (RUSSIAN_REPORT + " Қазақстан", "ru"),
        (ARABIC_REPORT + " گوگل", "ar"),
        ("Қазақстан Республикасының Президенті Астанада мәлімдеме жасады", "kk"),
    ],
)
def test_detect_language(text: str, expected: str | None) -> None:
    assert detect_language(text) == expected


@pytest.mark.parametrize(
    ("tag", "canonical"),
    [
        ("zh-cn", "zh-CN"),
        ("ZH_hant", "zh-Hant"),
        ("zh-hant-tw", "zh-Hant-TW"),
        ("EN-us", "en-US"),
        ("es-419", "es-419"),
        ("zh-YUE", "zh-yue"),  # an extended language subtag, not a region
        ("x-pig-latin", "x-pig-latin"),
        ("en-US-x-TWAIN", "en-US-x-twain"),
        ("de-DE-u-co-PHONEBK", "de-DE-u-co-phonebk"),
        ("  ", None),
    ],
)
def test_language_tags_are_cased_as_bcp47_says(tag: str, canonical: str | None) -> None:
    assert normalize_language(tag) == canonical
