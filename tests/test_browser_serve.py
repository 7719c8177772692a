"""The served pages in a real headless Chromium (Debian's, as tests/test_browser.py): Now, a
story, search and feeds at a phone's width and a desktop's, from a real server on
127.0.0.1. Screenshots go to tests/artifacts/ (docs/serve-*.png are copies of them)."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import quote

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Request

from tests.test_browser import browser, screenshot  # noqa: F401  (the browser fixture)
from tests.test_serve import SINCE, Site, make_site

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    served = Site(make_site(tmp_path_factory.mktemp("browsed")))
    yield served
    served.close()


def pages(site: Site) -> dict[str, str]:
    """Name -> path of each page the test opens."""
    story = site.get("/api/search", q="人工智能").json()["results"][0]["story_id"]
    return {
        "now": f"/?since={SINCE}",
        "story": f"/stories/{story}",
        "search": f"/search?q={quote('峰會 巴黎')}",
        "feeds": "/feeds",
    }


@pytest.mark.parametrize("width", [375, 1280])
@pytest.mark.parametrize("name", ["now", "story", "search", "feeds"])
def test_a_served_page_renders_cleanly(browser: Browser, site: Site, name: str, width: int) -> None:  # noqa: F811
    base = f"http://127.0.0.1:{site.served.port}"
    page = browser.new_page(viewport={"width": width, "height": 812})
    errors: list[str] = []
    requests: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type in ("error", "warning"):
            errors.append(f"console {message.type}: {message.text}")

    def on_request(request: Request) -> None:
        requests.append(request.url)

    page.on("console", on_console)
    page.on("pageerror", lambda error: errors.append(f"page error: {error}"))
    page.on("request", on_request)
    try:
        path = pages(site)[name]
        response = page.goto(base + path, wait_until="load")
        assert response is not None and response.status == 200
        assert errors == []  # a style blocked by the CSP would be an error here
        assert [r for r in requests if not r.startswith(base + "/")] == []
        assert page.evaluate("document.scripts.length") == 0
        # The page's style sheet applied (the CSP's hash let it in): the digest's background.
        background = page.evaluate("getComputedStyle(document.body).backgroundColor")
        assert background == "rgb(246, 247, 249)"
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
        if name == "search":
            assert page.locator("mark").count() >= 1
        screenshot(page, f"serve-{name}-{width}.png", full_page=False)
    finally:
        page.close()


def test_the_search_form_works_without_javascript(browser: Browser, site: Site) -> None:  # noqa: F811
    context = browser.new_context(java_script_enabled=False, viewport={"width": 375, "height": 812})
    page = context.new_page()
    try:
        page.goto(f"http://127.0.0.1:{site.served.port}/search", wait_until="load")
        page.fill("input[name=q]", "人工智慧")
        page.click("button[type=submit]")
        page.wait_for_load_state("load")
        assert "/search?q=" in page.url
        assert page.locator("article.story").count() >= 1
        assert page.locator("mark").first.inner_text() in ("人工智能", "人工智慧")
    finally:
        context.close()
