"""What a reader using a screen reader, the keyboard alone, high zoom or dark mode meets on
the served pages, the digest and its email, measured in a real headless Chromium (Debian's,
as tests/test_browser.py): colours as Chromium computes them, the accessibility tree, focus
and layout at 320 px (400% zoom of 1280). WCAG 2.2 AA where it applies to a news page.

The site: the seeds (Chinese) and English feeds that carry each other's reports (so the
pages are English with a Chinese story, and articles are "also in" other feeds), and a feed
that fails."""

# ruff: noqa: F811  (tests take the imported `browser` fixture by name)
from __future__ import annotations

import shutil
from collections.abc import Iterator
from urllib.parse import quote

import pytest
from playwright.sync_api import Browser, Page

from tests.conftest import SEEDS, cli, write_config
from tests.test_browser import assert_fits, browser  # noqa: F401  (the fixture)
from tests.test_serve import SINCE, Site

pytestmark = pytest.mark.browser

SCHEMES = ("light", "dark")
# (feed, [(title, link, hour)]): reports that several feeds carry under one link.
ENGLISH = {
    "Reuters": [
        ("Central bank holds interest rates steady", "https://r.example/rates", 1),
        ("Storm closes airports across the north", "https://r.example/storm", 2),
        ("Chip maker reports record quarterly profit", "https://r.example/chips", 3),
    ],
    "AP": [
        ("Central bank holds interest rates steady", "https://r.example/rates", 1),
        ("Museum reopens its doors after long renovation", "https://ap.example/museum", 4),
    ],
    "BBC News": [
        ("Central bank holds interest rates steady", "https://r.example/rates", 1),
        ("Storm closes airports across the north", "https://r.example/storm", 2),
        ("Football club appoints a new head coach", "https://bbc.example/coach", 5),
    ],
    # Six more reports of the storm: a story of more than five articles folds the rest.
    "Storm Desk": [
        ("Storm closes airports across the north, flights cancelled", "https://s.example/1", 3),
        ("Airports across the north closed as storm brings snow", "https://s.example/2", 4),
        ("Northern airports shut by storm; travellers stranded", "https://s.example/3", 5),
        ("Storm in the north: airports closed, trains delayed", "https://s.example/4", 6),
        ("Flights cancelled as storm closes northern airports", "https://s.example/5", 7),
        ("Storm closes airports in the north for a second day", "https://s.example/6", 8),
    ],
}


def rss(name: str, items: list[tuple[str, str, int]]) -> str:
    body = "".join(
        f"<item><title>{title}</title><link>{link}</link><guid>{link}</guid>"
        f"<pubDate>Mon, 10 Feb 2025 0{hour}:00:00 GMT</pubDate>"
        f"<description>{title}. The report gives the details, and reactions.</description></item>"
        for title, link, hour in items
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
        f"<title>{name}</title><link>https://news.example/</link><language>en</language>"
        f"{body}</channel></rss>"
    )


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    folder = tmp_path_factory.mktemp("a11y")
    shutil.copytree(SEEDS, folder / "seeds")
    feeds = '[[feeds]]\nurl = "seeds"\nname = "Seeds"\n\n'
    for n, (name, items) in enumerate(ENGLISH.items()):
        (folder / f"en{n}.xml").write_text(rss(name, items), encoding="utf-8")
        feeds += f'[[feeds]]\nurl = "en{n}.xml"\nname = "{name}"\n\n'
    # Refused at once: a feed failing from its first poll (failure_threshold 1).
    feeds += '[[feeds]]\nurl = "http://127.0.0.1:9/feed.xml"\nname = "Broken"\n\n'
    write_config(folder, feeds, "\n[poll]\nfailure_threshold = 1\n")
    for args in (("poll",), ("digest", "--since", SINCE)):
        done = cli(*args, cwd=folder)
        assert done.returncode == 0, done.stderr
    served = Site(folder)
    yield served
    served.close()


def open_served(
    browser: Browser, site: Site, path: str, *, scheme: str = "light", width: int = 1280
) -> Page:
    page = browser.new_page(
        viewport={"width": width, "height": 800},
        color_scheme=scheme,  # type: ignore[arg-type]
    )
    response = page.goto(f"http://127.0.0.1:{site.served.port}{path}", wait_until="load")
    assert response is not None and response.status == 200, path
    return page


# The WCAG contrast ratio of `fg` on `bg` (computed colours, "rgb(…)" or "rgba(…)"); a
# translucent background is laid over its ancestors' until an opaque one.
CONTRAST_JS = """
const parse = c => {
  const m = c.match(/rgba?\\(([^)]+)\\)/);
  const p = m[1].split(/[ ,\\/]+/).filter(Boolean).map(Number);
  return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1];
};
const luminance = ([r, g, b]) => {
  const f = v => (v /= 255) <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4);
  return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
};
const over = (top, under) => under.map((v, i) => v * (1 - top[3]) + top[i] * top[3]);
const background = el => {
  const layers = [];
  for (let e = el; e; e = e.parentElement) {
    const c = parse(getComputedStyle(e).backgroundColor);
    if (c[3] > 0) { layers.push(c); if (c[3] >= 1) break; }
  }
  let base = [255, 255, 255];
  for (const layer of layers.reverse()) base = over(layer, base);
  return base;
};
const ratio = (a, b) => {
  const [x, y] = [luminance(a), luminance(b)].sort((p, q) => q - p);
  return (x + 0.05) / (y + 0.05);
};
"""


def text_contrasts(page: Page, selector: str = "body") -> list[dict[str, object]]:
    """Each visible text's contrast with what is behind it, once per element and colour:
    [{"where", "text", "ratio", "needed"}] (needed: 4.5, or 3 for large text)."""
    found: list[dict[str, object]] = page.evaluate(
        "(selector) => {"
        + CONTRAST_JS
        + """
        const out = new Map();
        for (const root of document.querySelectorAll(selector)) {
          const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
          for (let n = walker.nextNode(); n; n = walker.nextNode()) {
            const el = n.parentElement;
            const style = getComputedStyle(el);
            if (!n.textContent.trim() || !el.getClientRects().length) continue;
            if (style.visibility === "hidden") continue;
            const back = background(el);
            const fg = parse(style.color);
            const size = parseFloat(style.fontSize);
            const large = size >= 24 || (parseInt(style.fontWeight) >= 700 && size >= 18.66);
            let where = [];
            for (let e = el; e && e !== document.body; e = e.parentElement)
              where.unshift(e.tagName.toLowerCase() + (e.className ? "." + e.className : ""));
            where = where.slice(-3).join(" > ");
            const key = where + style.color + back;
            if (!out.has(key)) out.set(key, {
              where, text: n.textContent.trim().slice(0, 40),
              ratio: Math.round(ratio(over(fg, back), back) * 100) / 100,
              needed: large ? 3 : 4.5,
            });
          }
        }
        return [...out.values()];
      }""",
        selector,
    )
    return found


def too_faint(page: Page, selector: str = "body") -> list[dict[str, object]]:
    return [t for t in text_contrasts(page, selector) if float(t["ratio"]) < float(t["needed"])]  # type: ignore[arg-type]


@pytest.mark.parametrize("scheme", SCHEMES)
def test_marked_words_in_search_results_are_readable(
    browser: Browser, site: Site, scheme: str
) -> None:
    """The words a search marks, in a result's title link and in its snippet, keep 4.5:1."""
    page = open_served(browser, site, f"/search?q={quote('central OR 峰会')}", scheme=scheme)
    try:
        assert page.locator("a mark").count() >= 1 and page.locator(".summary mark").count() >= 1
        assert too_faint(page, "mark") == []
    finally:
        page.close()


def served_pages(site: Site) -> dict[str, str]:
    """Name -> path of every kind of served page, the digest file among them."""
    story = site.get("/api/search", q="人工智能").json()["results"][0]["story_id"]
    digest = next(p.name for p in (site.folder / "digests").glob("*.html") if p.stem != "index")
    return {
        "now": f"/?since={SINCE}",
        "story": f"/stories/{story}",
        "search": f"/search?q={quote('central OR 峰会')}",
        "digests": "/digests/",
        "feeds": "/feeds",
        "digest": f"/digests/{digest}",
    }


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("name", ["now", "story", "search", "digests", "feeds", "digest"])
def test_every_text_keeps_its_contrast(
    browser: Browser, site: Site, name: str, scheme: str
) -> None:
    """Body, muted feed names and times, links, the folded articles' summary line, marks,
    a failing feed's name and error: 4.5:1 (3:1 for large text), light and dark."""
    page = open_served(browser, site, served_pages(site)[name], scheme=scheme)
    try:
        assert too_faint(page) == []
    finally:
        page.close()


def control_edges(page: Page) -> list[dict[str, object]]:
    """Each form control's edge against the page around it: its border's contrast, and its
    own background's (a control stands out by either), WCAG 1.4.11's 3:1."""
    found: list[dict[str, object]] = page.evaluate(
        "() => {"
        + CONTRAST_JS
        + """
        return [...document.querySelectorAll("input:not([type=hidden]), select, button")]
          .map(el => {
            const style = getComputedStyle(el);
            const around = background(el.parentElement);
            const border = over(parse(style.borderTopColor), background(el));
            return {
              control: el.tagName.toLowerCase() + (el.name ? "[" + el.name + "]" : ""),
              border: Math.round(ratio(border, around) * 100) / 100,
              fill: Math.round(ratio(background(el), around) * 100) / 100,
            };
          });
      }"""
    )
    return found


@pytest.mark.parametrize("scheme", SCHEMES)
def test_form_controls_stand_out_from_the_page(browser: Browser, site: Site, scheme: str) -> None:
    """The search box, the filters' menus and the buttons: a low-vision reader sees where
    each is (non-text contrast 3:1, of its border or its fill, against the page)."""
    for path in (f"/?since={SINCE}", "/search?q=central"):
        page = open_served(browser, site, path, scheme=scheme)
        try:
            edges = control_edges(page)
            assert len(edges) >= 2, path
            faint = [e for e in edges if max(float(e["border"]), float(e["fill"])) < 3]  # type: ignore[arg-type]
            assert faint == [], (path, faint)
        finally:
            page.close()


@pytest.mark.parametrize("width", [320, 1280])
def test_feed_health_names_each_value_at_any_width(
    browser: Browser, site: Site, width: int
) -> None:
    """At 320 px (400% zoom) the table's rows stack and its header row is hidden: each
    value still says what it is (last success, next poll, fails…), as the header does wide."""
    page = open_served(browser, site, "/feeds", width=width)
    try:
        headers = page.locator("table.feeds thead th").all_inner_texts()
        assert headers[1:] == ["last success", "last attempt", "next poll", "fails", "entries"]
        header_shown = page.locator("table.feeds thead").is_visible()
        assert header_shown == (width > 480)
        rows = page.locator("table.feeds tbody tr:has(td:nth-child(6))")
        assert rows.count() == len(ENGLISH) + 2  # and the seeds, and the broken feed
        for row in rows.all():
            values = row.locator("td").all_inner_texts()[1:]
            for header, value in zip(headers[1:], values, strict=True):
                if header_shown:
                    assert not value.startswith(header), (header, value)
                else:
                    assert value.startswith(header), (header, value)
        assert_fits(page)
    finally:
        page.close()


@pytest.mark.parametrize("name", ["now", "search", "digest"])
def test_a_chinese_story_in_an_english_page_is_read_in_both_languages(
    browser: Browser, site: Site, name: str
) -> None:
    """A screen reader speaks each text in its language (`:lang()`, as Chromium resolves
    it): a Chinese story's headline, summary and titles in Chinese; the page's own words
    around them (the time, "first seen", "also in", "+N more articles") in English."""
    page = open_served(browser, site, served_pages(site)[name])
    try:
        assert page.evaluate("document.documentElement.lang") == "en"
        chinese = page.locator("article.story:has(h3:lang(zh))")
        assert chinese.count() >= 1
        for story in chinese.all():
            assert story.locator(".summary:not(:lang(zh))").count() == 0
            interface = story.locator("time, .carried, details > summary")
            assert interface.count() >= 1
            wrong = [
                e.inner_text()
                for e in interface.all()
                if e.evaluate("e => !e.matches(':lang(en)')")
            ]
            assert wrong == []
    finally:
        page.close()


def test_a_chinese_storys_own_page_speaks_its_words_in_english(
    browser: Browser, site: Site
) -> None:
    """The page of a story whose every article is Chinese (the seeds') was `lang="zh"` as a
    whole: a screen reader spoke "Story", "Articles", "Timeline" and the times with a
    Chinese voice. Its words are English now; the headline, titles, summaries and Chinese
    feed names Chinese."""
    page = open_served(browser, site, served_pages(site)["story"])
    try:
        assert page.evaluate("document.documentElement.lang") == "en"
        assert page.locator("h1:lang(zh)").count() == 1
        assert page.locator("article.story h3").count() >= 2
        assert page.locator("article.story h3:not(:lang(zh))").count() == 0
        assert page.locator(".summary:not(:lang(zh))").count() == 0
        interface = page.locator("h2, time, .counts, footer")
        assert interface.count() >= 4
        wrong = [
            e.inner_text() for e in interface.all() if not e.evaluate("e => e.matches(':lang(en)')")
        ]
        assert wrong == []
    finally:
        page.close()


def landmarks(page: Page) -> list[tuple[str, str, tuple[str, ...]]]:
    """Chromium's accessibility tree's landmarks and headings of level 1: (role, name, the
    landmark roles around it, outermost first)."""
    cdp = page.context.new_cdp_session(page)
    try:
        nodes = cdp.send("Accessibility.getFullAXTree")["nodes"]
    finally:
        cdp.detach()
    by_id = {n["nodeId"]: n for n in nodes}
    parent = {c: n["nodeId"] for n in nodes for c in n.get("childIds", [])}
    roles = {"banner", "main", "contentinfo", "navigation", "search"}

    def role(n: dict) -> str:  # type: ignore[type-arg]
        return str(n.get("role", {}).get("value", ""))

    found = []
    for n in nodes:
        level = [p["value"]["value"] for p in n.get("properties", []) if p["name"] == "level"]
        if role(n) in roles or (role(n) == "heading" and level == [1]):
            around: list[str] = []
            at = parent.get(n["nodeId"])
            while at is not None:
                if role(by_id[at]) in roles:
                    around.insert(0, role(by_id[at]))
                at = parent.get(at)
            found.append((role(n), str(n.get("name", {}).get("value", "")), tuple(around)))
    return found


@pytest.mark.parametrize("name", ["now", "story", "search", "digests", "feeds"])
def test_a_served_page_has_landmarks_and_a_skip_link(
    browser: Browser, site: Site, name: str
) -> None:
    """The site bar is the banner, the page's own content (its one h1) the main landmark, the
    footer the contentinfo; the first Tab reaches a visible "Skip to content" link that
    takes the keyboard past the site bar into main."""
    page = open_served(browser, site, served_pages(site)[name])
    try:
        found = landmarks(page)
        assert [r for r, _, around in found if not around] == ["banner", "main", "contentinfo"]
        assert ("navigation", "Site", ("banner",)) in found
        assert [around for r, _, around in found if r == "heading"] == [("main",)]
        page.keyboard.press("Tab")
        skip = page.locator(":focus")
        assert skip.inner_text() == "Skip to content"
        box = skip.bounding_box()
        assert box is not None and box["y"] >= 0 and box["x"] >= 0 and box["height"] > 10
        assert too_faint(page, ".skip") == []
        page.keyboard.press("Enter")
        page.keyboard.press("Tab")
        assert page.evaluate("!!document.activeElement.closest('main')")
    finally:
        page.close()
