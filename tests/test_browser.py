"""The seeds' HTML digest in a real headless Chromium (Debian's, driven by Playwright).

No browser is downloaded: Playwright launches `chromium` from PATH (Debian packages
`chromium` and `fonts-noto-cjk`, which .ci/run installs). Screenshots are saved under
tests/artifacts/ (git-ignored) for people to look at.
"""

from __future__ import annotations

import shutil
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, Request, sync_playwright

from aggregator.config import load_config
from aggregator.core import Window, make_aggregator
from aggregator.digest.email import inline_css
from aggregator.digest.render import render
from aggregator.types import Article, Digest, Entry, Format, Story, TopicGroup
from tests.builders import stored_entry
from tests.conftest import ROOT, FrozenClock

pytestmark = pytest.mark.browser

ARTIFACTS = ROOT / "tests" / "artifacts"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# All four seeds: two dated the 10th, one the 12th, and the undated one first seen on the
# 12th (the frozen clock's day).
WINDOW = Window(date(2025, 2, 10), date(2025, 2, 12))
CJK_FONTS = ("Noto Sans CJK", "Noto Serif CJK", "Source Han", "WenQuanYi", "Droid Sans Fallback")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    executable = shutil.which("chromium")
    assert executable, "Debian's chromium is needed: apt-get install chromium fonts-noto-cjk"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def seeds_digest(workdir: Path, clock: FrozenClock) -> Path:
    """The seeds polled and their digest published into the archive, as the CLI does."""
    with make_aggregator(load_config(workdir / "feeds.toml"), clock=clock) as agg:
        assert sum(r.new for r in agg.poll()) == 4
        digest = agg.make_digest(WINDOW)
        assert digest.entry_count == 4
        agg.write_digest_files(WINDOW, digest)
        return agg.digest_path(WINDOW, Format.HTML)


@dataclass
class Visit:
    page: Page
    errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)


def open_page(browser: Browser, path: Path, width: int, scheme: str = "light") -> Visit:
    page = browser.new_page(
        viewport={"width": width, "height": 812},
        color_scheme=scheme,  # type: ignore[arg-type]
    )
    visit = Visit(page)

    def on_console(message: ConsoleMessage) -> None:
        if message.type in ("error", "warning"):
            visit.errors.append(f"console {message.type}: {message.text}")

    def on_request(request: Request) -> None:
        visit.requests.append(request.url)

    page.on("console", on_console)
    page.on("pageerror", lambda error: visit.errors.append(f"page error: {error}"))
    page.on("request", on_request)
    page.goto(path.as_uri(), wait_until="load")
    return visit


def assert_fits(page: Page) -> None:
    """No horizontal scrolling: the page and every element within the viewport's width."""
    overflow = page.evaluate(
        """() => {
            const root = document.documentElement;
            const wide = [...document.body.querySelectorAll("*")]
                .filter(e => e.getBoundingClientRect().right > root.clientWidth + 0.5)
                .map(e => e.tagName + "." + e.className);
            return [root.scrollWidth, root.clientWidth, wide];
        }"""
    )
    scroll_width, client_width, too_wide = overflow
    assert scroll_width <= client_width, (scroll_width, client_width, too_wide)
    assert too_wide == []


def screenshot(page: Page, name: str, *, full_page: bool = True) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=full_page)
    assert path.stat().st_size > 10_000
    return path


def platform_fonts(page: Page, selector: str) -> dict[str, int]:
    """The fonts Chromium really drew `selector`'s text with: family -> glyph count."""
    cdp = page.context.new_cdp_session(page)
    try:
        root = cdp.send("DOM.getDocument")["root"]["nodeId"]
        node = cdp.send("DOM.querySelector", {"nodeId": root, "selector": selector})["nodeId"]
        assert node, selector
        cdp.send("CSS.enable")
        fonts = cdp.send("CSS.getPlatformFontsForNode", {"nodeId": node})["fonts"]
    finally:
        cdp.detach()
    return {f["familyName"]: int(f["glyphCount"]) for f in fonts}


def text_width(page: Page, selector: str, text: str) -> tuple[float, float]:
    """The width of `text` on one line in `selector`'s font, and that font's size in px."""
    width, size = page.evaluate(
        """([selector, text]) => {
                const model = document.querySelector(selector);
                const probe = document.createElement("span");
                probe.style.whiteSpace = "nowrap";
                probe.style.font = getComputedStyle(model).font;
                probe.textContent = text;
                model.parentNode.appendChild(probe);
                const width = probe.getBoundingClientRect().width;
                probe.remove();
                return [width, parseFloat(getComputedStyle(model).fontSize)];
            }""",
        [selector, text],
    )
    return float(width), float(size)


def cjk_run(text: str) -> str:
    """The longest run of wide (CJK) characters in `text`."""
    runs, current = [], ""
    for ch in text:
        if unicodedata.east_asian_width(ch) in "WF":
            current += ch
        else:
            runs.append(current)
            current = ""
    runs.append(current)
    return max(runs, key=len)


@pytest.mark.parametrize("width", [1280, 375])
def test_digest_renders_cleanly(browser: Browser, seeds_digest: Path, width: int) -> None:
    visit = open_page(browser, seeds_digest, width)
    page = visit.page
    try:
        assert visit.errors == []
        # No external assets: the page itself is the only thing loaded.
        assert visit.requests == [seeds_digest.as_uri()]
        assert page.evaluate("document.scripts.length") == 0
        # The four seeds, grouped into stories by dedup (all summit coverage).
        assert 1 <= page.locator("article.story").count() <= 4
        assert page.locator("nav a").count() >= 1
        screenshot(page, f"digest-{width}.png")
        # The first screen, as a phone shows it (docs/digest-375.png is a copy of it).
        screenshot(page, f"digest-{width}-screen.png", full_page=False)
        assert_fits(page)
    finally:
        page.close()


def test_no_horizontal_scrolling_at_375_in_dark_mode(browser: Browser, seeds_digest: Path) -> None:
    visit = open_page(browser, seeds_digest, 375, scheme="dark")
    page = visit.page
    try:
        assert visit.errors == []
        assert page.evaluate(
            "document.documentElement.scrollWidth <= document.documentElement.clientWidth"
        )
        background = page.evaluate("getComputedStyle(document.body).backgroundColor")
        assert background == "rgb(13, 17, 23)"  # the dark scheme applies
        screenshot(page, "digest-375-dark.png")
    finally:
        page.close()


def test_cjk_headlines_render_real_glyphs(browser: Browser, seeds_digest: Path) -> None:
    visit = open_page(browser, seeds_digest, 375)
    page = visit.page
    try:
        headline = page.locator("#story-1 h3").inner_text()
        run = cjk_run(headline)
        assert len(run) >= 6, headline
        width, size = text_width(page, "#story-1 h3", run)
        # A CJK glyph is one em wide; the missing-glyph box is much narrower.
        assert width >= len(run) * size * 0.8, (run, width, size)
        tofu, _ = text_width(page, "#story-1 h3", "\u0378" * len(run))
        assert abs(width - tofu) > len(run) * size * 0.2
        used = platform_fonts(page, "#story-1 h3")
        assert any(family.startswith(CJK_FONTS) and n > 0 for family, n in used.items()), used
        # The Traditional-script article is drawn with a Traditional Chinese font (dedup
        # files it under the summit story, as one of its articles' titles).
        traditional = platform_fonts(page, '[lang="zh-Hant"]')
        assert any("TC" in family or "Hant" in family for family in traditional), traditional
    finally:
        page.close()


def test_archive_pages_render_cleanly(browser: Browser, seeds_digest: Path) -> None:
    index = seeds_digest.parent / "index.html"
    visit = open_page(browser, index, 375)
    page = visit.page
    try:
        assert visit.errors == []
        assert page.evaluate(
            "document.documentElement.scrollWidth <= document.documentElement.clientWidth"
        )
        page.locator(f'a.day[href="{seeds_digest.name}"]').click()
        page.wait_for_url(seeds_digest.as_uri())
        assert page.title() == "Digest 2025-02-10 – 2025-02-12"
    finally:
        page.close()


def test_email_html_part_fits_a_phone(browser: Browser, seeds_digest: Path, tmp_path: Path) -> None:
    """The email's HTML (CSS inlined, as mail clients get it) renders cleanly at 375 px."""
    html = inline_css(seeds_digest.read_text(encoding="utf-8"))
    assert "<style" in html  # the @media rules (dark, narrow) stay
    page_path = tmp_path / "email.html"
    page_path.write_text(html, encoding="utf-8")
    visit = open_page(browser, page_path, 375)
    page = visit.page
    try:
        assert visit.errors == []
        assert visit.requests == [page_path.as_uri()]
        assert page.evaluate(
            "document.documentElement.scrollWidth <= document.documentElement.clientWidth"
        )
        # The four seeds, grouped into stories by dedup (all summit coverage).
        assert 1 <= page.locator("article.story").count() <= 4
        assert "border" in (page.locator("article.story").first.get_attribute("style") or "")
        screenshot(page, "email-375.png")
    finally:
        page.close()


def test_a_report_many_feeds_carried_is_one_line_at_375(browser: Browser, tmp_path: Path) -> None:
    """A wire report forty feeds carried is one line naming them (each its own link), as a
    phone shows it in light and dark, and the story's other reports stay in sight."""
    at = datetime(2025, 2, 10, 9, tzinfo=UTC)

    def copy(n: int, title: str) -> Article:
        return Article(title, f"https://e.example/{n}", at, "en", "", (one(n, title),))

    def one(n: int, title: str) -> Entry:
        return stored_entry(
            n,
            title,
            published=at + timedelta(minutes=n),
            feed_url=f"https://feeds.example/{n}.xml",
            feed_name=f"The Example Evening Chronicle {n}",
            link=f"https://e.example/{n}",
        )

    wire = [one(n, "Summit opens in Paris") for n in range(40)]
    story = Story(
        "Summit opens in Paris",
        (
            Article("Summit opens in Paris", wire[0].link, at, "en", "", tuple(wire)),
            *(copy(n, f"Other report {n}") for n in range(40, 44)),
        ),
    )
    digest = Digest(at, at + timedelta(days=1), at, "UTC", (TopicGroup("News", (story,)),))
    path = tmp_path / "wire.html"
    path.write_text(render(digest, Format.HTML), encoding="utf-8")
    for scheme in ("light", "dark"):
        visit = open_page(browser, path, 375, scheme=scheme)
        page = visit.page
        try:
            assert visit.errors == []
            assert_fits(page)
            items = page.locator("article.story ul.sources > li")
            assert items.count() == 5  # the wire report and the four others, none folded
            carried = items.first.locator(".carried")
            assert carried.is_visible()
            assert carried.locator("a").count() == 39
            assert carried.locator("a").last.get_attribute("href") == "https://e.example/39"
            assert items.nth(4).is_visible() and "Other report 43" in items.nth(4).inner_text()
            color = carried.evaluate("e => getComputedStyle(e).color")
            assert color == ("rgb(145, 152, 161)" if scheme == "dark" else "rgb(89, 99, 110)")
            screenshot(page, f"digest-carried-375-{scheme}.png")
        finally:
            page.close()
