"""The served Now page after a poll: the new stories filed into the sections kept (not
clustered again) until the rule says to cluster again; made ahead when serving starts; its
JSON a page at a time. A real uvicorn server on 127.0.0.1 over a real SQLite database that
another process (`aggregator poll`) writes."""

from __future__ import annotations

import gc
import logging
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from aggregator.config import load_config
from aggregator.core import make_aggregator
from aggregator.dedup import topics
from aggregator.web import server
from aggregator.web.server import serve_in_thread
from tests.conftest import FrozenClock, cli, wait_until
from tests.test_serve import SINCE, make_site

FARMING = '\n[[topics]]\nname = "Farming"\nkeywords = ["farmers", "tractors"]\n'
FILED = "stories filed into the sections kept"
CLUSTERED = "sections clustered again"


class Site:
    """A served site over a frozen clock (its minute never turns by itself)."""

    def __init__(self, folder: Path, clock: FrozenClock) -> None:
        self.folder = folder
        config = load_config(folder / "feeds.toml")
        self.agg = make_aggregator(config, read_only=True, clock=clock)
        # Indexed for search now, so that the server's catch-up changes nothing.
        self.agg.index_search()
        self.served = serve_in_thread(self.agg, "127.0.0.1", 0)
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{self.served.port}", timeout=30)

    def sections(self) -> dict[str, list[str]]:
        """Section -> its stories' headlines, of /api/stories over the seeds' window; each
        story listed once over all of them."""
        data = self.http.get("/api/stories", params={"since": SINCE}).json()
        ids = [s["id"] for t in data["topics"] for s in t["stories"]]
        assert len(ids) == len(set(ids)), "a story listed twice"
        return {t["name"]: [s["headline"] for s in t["stories"]] for t in data["topics"]}

    def poll(self, items: str) -> None:
        """The Wire feed with `items` in place of what it had after the first two, polled
        by another process."""
        wire = self.folder / "wire.xml"
        text = wire.read_text(encoding="utf-8")
        head = text[: text.index("</item>", text.index("<guid>w2</guid>")) + len("</item>")]
        wire.write_text(head + items + "</channel></rss>\n", encoding="utf-8")
        polled = cli("poll", cwd=self.folder)
        assert polled.returncode == 0, polled.stderr

    def close(self) -> None:
        self.http.close()
        self.served.stop()
        self.agg.close()


def item(guid: str, title: str, text: str) -> str:
    return (
        f"<item><title>{title}</title><link>https://wire.example/{guid}</link>"
        f"<guid>{guid}</guid><pubDate>Tue, 11 Feb 2025 09:00:00 GMT</pubDate>"
        f"<description>{text}</description></item>"
    )


def count(caplog: pytest.LogCaptureFixture, text: str) -> int:
    """Records holding `text`, logged since the test's site was set up."""
    records = [*caplog.get_records("setup"), *caplog.records]
    return sum(text in r.getMessage() for r in records)


@pytest.fixture
def clock() -> FrozenClock:
    from datetime import UTC, datetime

    return FrozenClock(datetime(2025, 2, 12, 12, 0, tzinfo=UTC))


@pytest.fixture
def site(tmp_path: Path, clock: FrozenClock, caplog: pytest.LogCaptureFixture) -> Iterator[Site]:
    caplog.set_level(logging.DEBUG, logger="aggregator")
    served = Site(make_site(tmp_path, FARMING), clock)
    yield served
    served.close()


def test_a_new_story_is_filed_into_the_sections_kept_and_moves_when_its_topic_changes(
    site: Site, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A window of a dozen stories: one new story is more than the share that is
    # clustered again; here every change is filed into the sections kept.
    monkeypatch.setattr(topics, "REGROUP_SHARE", 1.0)
    before = site.sections()
    clustered = count(caplog, CLUSTERED)
    assert clustered >= 1 and "Farming" not in before
    headline = "Farmers drive tractors into Brussels"
    site.poll(item("w3", headline, "A protest against cuts to subsidies."))
    wait_until(lambda: headline in site.sections().get("Farming", []), 30, "the new story")
    after = site.sections()
    assert {h for hs in after.values() for h in hs} == {h for hs in before.values() for h in hs} | {
        headline
    }
    assert count(caplog, FILED) >= 1 and count(caplog, CLUSTERED) == clustered
    page = site.http.get("/", params={"since": SINCE, "topic": "Farming"}).text
    assert headline in page
    # Its source retitles it: now about the summit, it joins the summit's story, and the
    # story it leaves (pointing there now) leaves its section.
    retitled = "Delegates of the summit visit Brussels"
    site.poll(item("w3", retitled, "They toured the city."))
    wait_until(lambda: "Farming" not in site.sections(), 30, "the story moved")
    moved = site.sections()
    assert headline not in {h for hs in moved.values() for h in hs}
    assert moved["Summit"] == before["Summit"]
    assert count(caplog, CLUSTERED) == clustered
    page = site.http.get("/", params={"since": SINCE, "topic": "Summit"}).text
    assert retitled in page


def test_the_sections_are_clustered_again_when_many_stories_changed(
    site: Site, caplog: pytest.LogCaptureFixture
) -> None:
    site.sections()
    clustered = count(caplog, CLUSTERED)
    # One story more of a dozen is over `REGROUP_SHARE`.
    headline = "Volcano erupts near Reykjavik airport"
    site.poll(item("w4", headline, "Flights were cancelled."))
    wait_until(lambda: headline in site.sections().get("Other", []), 30, "the new story")
    assert count(caplog, CLUSTERED) > clustered


def test_the_sections_are_clustered_again_after_a_while(
    site: Site,
    clock: FrozenClock,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(topics, "REGROUP_SHARE", 10.0)  # the age alone
    site.sections()
    site.poll(item("w5", "Farmers block roads near Lyon", "A protest."))
    wait_until(lambda: "Farming" in site.sections(), 30, "the story filed")
    assert count(caplog, FILED) >= 1
    clustered = count(caplog, CLUSTERED)
    clock.advance(seconds=topics.REGROUP_AFTER)
    headline = "Tractors fill the square in Lille"
    site.poll(item("w6", headline, "Another one."))
    wait_until(lambda: headline in site.sections().get("Farming", []), 30, "the new story")
    assert count(caplog, CLUSTERED) > clustered


def test_the_first_request_after_start_is_answered_with_the_page_made_ahead(
    tmp_path: Path, clock: FrozenClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="aggregator")
    folder = make_site(tmp_path)
    gc.unfreeze()
    site = Site(folder, clock)
    try:
        wait_until(lambda: count(caplog, "Now made ahead") == 1, 30, "Now made ahead")
        assert count(caplog, "Now page made") == 1
        # What was kept by then is left out of the garbage collections from then on.
        assert gc.get_freeze_count() > 0
        page = site.http.get("/")
        assert page.status_code == 200 and "<h1" in page.text
        # The clock stands still and the database is unchanged: nothing was made again.
        assert count(caplog, "Now page made") == 1
    finally:
        site.close()
        gc.unfreeze()


def test_api_stories_pages_each_section(site: Site) -> None:
    subjects = ["Volcano erupts near Reykjavik", "Orchestra tours Japan", "Marathon record falls"]
    site.poll("".join(item(f"p{n}", title, "") for n, title in enumerate(subjects)))
    wait_until(lambda: len(site.sections().get("Other", [])) >= 3, 30, "the new stories")
    whole = site.http.get("/api/stories", params={"since": SINCE}).json()
    assert "page" not in whole and all("total" not in t for t in whole["topics"])
    stories = {t["name"]: t["stories"] for t in whole["topics"]}
    assert max(len(s) for s in stories.values()) > 1
    seen: dict[str, list[object]] = {name: [] for name in stories}
    for number in (1, 2, 3, 4, 5):
        params = {"since": SINCE, "per_page": "1", "page": str(number)}
        data = site.http.get("/api/stories", params=params).json()
        assert data["page"] == number and data["per_page"] == 1
        assert [t["name"] for t in data["topics"]] == list(stories)
        for topic in data["topics"]:
            assert topic["total"] == len(stories[topic["name"]])
            assert len(topic["stories"]) <= 1
            seen[topic["name"]] += topic["stories"]
    assert seen == {name: s[:5] for name, s in stories.items()}
    for bad in ("0", "x", "1001", "-1", "²", "9" * 5000):  # "²" passes str.isdigit()
        params = {"since": SINCE, "per_page": bad}
        assert site.http.get("/api/stories", params=params).status_code == 400
        params = {"since": SINCE, "per_page": "1", "page": bad.replace("1001", "10001")}
        answer = site.http.get("/api/stories", params=params)
        assert answer.status_code == 400 and "page= takes" in answer.text  # was page 1
    far = site.http.get("/api/stories", params={"since": SINCE, "per_page": "1", "page": "9999"})
    assert far.status_code == 200 and far.json()["page"] == 9999
    assert all(t["stories"] == [] and t["total"] >= 1 for t in far.json()["topics"])


def test_each_window_files_into_sections_of_its_own(
    tmp_path: Path, clock: FrozenClock, caplog: pytest.LogCaptureFixture
) -> None:
    """Now's window and a `?since=` window made in turn: each is clustered once, then filed
    into its own sections (one kept clustering for both clustered them again every time)."""
    from datetime import timedelta

    caplog.set_level(logging.DEBUG, logger="aggregator")
    config = load_config(make_site(tmp_path, FARMING) / "feeds.toml")
    until = clock()
    with make_aggregator(config, read_only=True, clock=clock) as agg:
        for _ in range(3):
            for since in (until - timedelta(days=2), until - timedelta(hours=30)):
                assert agg.stories(since, until)[0].topics
    assert count(caplog, CLUSTERED) == 2
    assert count(caplog, FILED) == 4


def test_what_is_kept_is_frozen_again_after_a_remake_once_the_freeze_is_old(
    tmp_path: Path,
    clock: FrozenClock,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The freeze taken once Now is made ahead holds what was kept then; after a remake at
    most every REFREEZE seconds what is kept now (the window turned over) is frozen in its
    place, the garbage of the old collected first."""
    caplog.set_level(logging.DEBUG, logger="aggregator")
    monkeypatch.setattr(server._Frozen, "REFREEZE", 0.0)
    site = Site(make_site(tmp_path, FARMING), clock)
    try:
        wait_until(lambda: count(caplog, "Now made ahead") == 1, 30, "Now made ahead")
        assert count(caplog, "frozen again") == 0
        site.poll(item("w3", "Farmers drive tractors into Brussels", "A protest."))
        site.http.get("/")  # answered with the last page; the new one made behind it
        wait_until(lambda: count(caplog, "frozen again") >= 1, 30, "a freeze after the remake")
        assert gc.get_freeze_count() > 0
    finally:
        site.close()
        gc.unfreeze()


def test_the_page_cache_keeps_now_and_what_was_used_last() -> None:
    made: list[tuple[object, ...]] = []

    def page(view: tuple[object, ...]) -> str:
        made.append(view)
        return f"page of {view}"

    recent = server._Recent(pinned=[server.NOW_VIEW])
    now_key = (*server.NOW_VIEW, "stamp 1")
    assert recent.get(server.NOW_VIEW, now_key, lambda: page(server.NOW_VIEW))
    other = ("json", None, None, (1, 10))
    recent.get(other, (*other, "stamp 1"), lambda: page(other))
    for n in range(2, 2 + 2 * recent.SIZE):  # a client paging through many views
        view = ("json", None, None, (n, 10))
        recent.get(view, (*view, "stamp 1"), lambda view=view: page(view))  # type: ignore[misc]
        recent.get(other, (*other, "stamp 1"), lambda: page(other))  # used again and again
    made.clear()
    assert recent.get(server.NOW_VIEW, now_key, lambda: page(server.NOW_VIEW)).startswith("page")
    assert recent.get(other, (*other, "stamp 1"), lambda: page(other))
    assert made == []  # both from the cache: Now pinned, the other used last
    first = ("json", None, None, (2, 10))
    recent.get(first, (*first, "stamp 1"), lambda: page(first))
    assert made == [first]  # the oldest unused view was let go
    # The database changed: Now's last page is answered at once, the new one made behind.
    assert recent.get(server.NOW_VIEW, (*server.NOW_VIEW, "stamp 2"), lambda: "new") == (
        f"page of {server.NOW_VIEW}"
    )


def test_the_sections_kept_for_a_window_used_again_and_again_stay(
    site: Site, clock: FrozenClock, caplog: pytest.LogCaptureFixture
) -> None:
    # Each window length keeps its sections (KEPT_WINDOWS of them): Now's, used after
    # every poll, must not be clustered again because other ?since= windows were opened.
    from datetime import timedelta

    from aggregator.dedup.group import group_stories
    from aggregator.publisher import KEPT_WINDOWS

    publisher = site.agg._publisher
    until = clock()
    stories = group_stories(site.agg.storage.entries_between(until - timedelta(days=3), until))
    publisher._filed(stories, timedelta(hours=24))  # Now's window
    clustered = count(caplog, CLUSTERED)
    for days in range(2, 2 + 2 * KEPT_WINDOWS):  # more other windows than are kept
        publisher._filed(stories, timedelta(days=days))
        publisher._filed(stories, timedelta(hours=24))  # Now in between, as a reader reloads
    # Each other window clustered once; Now's sections, used last each time, kept.
    assert count(caplog, CLUSTERED) == clustered + 2 * KEPT_WINDOWS


def test_the_page_cache_holds_one_page_a_view_and_never_fails_a_view_it_let_go() -> None:
    # Now visited minute after minute: one page kept for it, not one a minute (they piled
    # up and pushed every other view's page out as soon as it was made).
    recent = server._Recent(pinned=[server.NOW_VIEW])
    other = ("json", None, None, None)
    made: list[object] = []
    for minute in range(3 * recent.SIZE):
        recent.get(server.NOW_VIEW, (*server.NOW_VIEW, minute), lambda: "now")
    recent.get(other, (*other, 0), lambda: made.append(other) or "other")  # type: ignore[func-returns-value]
    recent.get(other, (*other, 0), lambda: made.append(other) or "other")  # type: ignore[func-returns-value]
    assert made == [other]  # kept: made once
    assert len(recent._latest) == 2  # a page each: Now's last one, and the other
    # A page whose view was let go (its page kept while a remake ran) answers, no KeyError.
    views = [("json", None, None, n) for n in range(recent.SIZE + 2)]
    for n, view in enumerate(views):
        recent.get(view, (*view, 0), lambda n=n: f"page {n}")  # type: ignore[misc]
    for n, view in enumerate(views):
        assert recent.get(view, (*view, 0), lambda n=n: f"page {n}") == f"page {n}"  # type: ignore[misc]
    assert len(recent._latest) <= recent.SIZE  # a page each
