"""Entries without a date of their own: digests label their first-seen time as such."""

from __future__ import annotations

import dataclasses
import json
import re
from datetime import date, timedelta
from pathlib import Path

from aggregator.config import load_config
from aggregator.core import Window, make_aggregator
from aggregator.digest.render import digest_to_dict, render
from aggregator.types import Digest, Format, Story, TopicGroup
from tests.conftest import FrozenClock, write_config
from tests.feedserver import FeedServer, static
from tests.test_render import article, entry, make_digest

# The Ta Kung Pao seed is plain Markdown without a date: it is dated when first seen.
UNDATED = "DeepSeek開源惠及全球 外交部：共享智能紅利"
# The frozen clock (2025-02-12 12:00 UTC) in the digest timezone: when it was first seen.
FIRST_SEEN = "2025-02-12 20:00 +08:00"
WINDOW = Window(date(2025, 2, 10), date(2025, 2, 12))


def seeds_digest(workdir: Path, clock: FrozenClock) -> Digest:
    with make_aggregator(load_config(workdir / "feeds.toml"), clock=clock) as agg:
        assert sum(r.new for r in agg.poll()) == 4
        return agg.make_digest(WINDOW)


def test_json_says_which_seed_is_undated(workdir: Path, clock: FrozenClock) -> None:
    data = json.loads(render(seeds_digest(workdir, clock), Format.JSON))
    copies = {}
    for topic in data["topics"]:
        for story in topic["stories"]:
            for art in story["articles"]:
                assert art["dated"] is art["copies"][0]["dated"]
                for copy in art["copies"]:
                    copies[copy["title"]] = copy
    assert len(copies) == 4
    assert {title: copy["dated"] for title, copy in copies.items() if not copy["dated"]} == {
        UNDATED: False
    }
    assert copies[UNDATED]["published"] == "2025-02-12T20:00:00+08:00"


def test_text_and_html_label_only_the_undated_seed_first_seen(
    workdir: Path, clock: FrozenClock
) -> None:
    digest = seeds_digest(workdir, clock)
    text = render(digest, Format.TEXT)
    labelled = [line for line in text.splitlines() if "first seen" in line]
    assert len(labelled) == 1
    assert UNDATED in labelled[0] and f"(first seen {FIRST_SEEN})" in labelled[0]
    # The dated seeds keep their plain publication time.
    assert re.search(r"刚刚，巴黎AI峰会开幕.*\(2025-02-10 21:00 \+08:00\)", text)

    html = render(digest, Format.HTML)
    assert html.count("first seen") == 1
    assert f">first seen {FIRST_SEEN}</time>" in html
    assert ">2025-02-10 21:00 +08:00</time>" in html


def test_an_article_is_as_dated_as_the_copy_it_is_shown_as() -> None:
    undated = dataclasses.replace(entry(1, "Undated feed", "No date", None), dated=False)
    dated = entry(2, "Dated feed", "With a date", "https://news.example/2")
    digest = make_digest(
        TopicGroup("Mixed", (Story("No date", (article(undated, dated), article(dated))),))
    )
    arts = digest_to_dict(digest)["topics"][0]["stories"][0]["articles"]
    assert [a["dated"] for a in arts] == [False, True]
    assert [c["dated"] for c in arts[0]["copies"]] == [False, True]
    text = render(digest, Format.TEXT)
    assert "Undated feed: No date (first seen 2025-02-10 21:01 +08:00)" in text
    assert "Dated feed: With a date <https://news.example/2> (2025-02-10 21:02 +08:00)" in text
    assert render(digest, Format.HTML).count("first seen") == 1


def test_an_entry_dated_in_the_future_is_dated_when_first_seen(
    tmp_path: Path, clock: FrozenClock, feed_server: FeedServer
) -> None:
    """A publisher's wrong year (2099) would keep an entry out of every digest until that
    day comes: past a day ahead of the poll, an entry is undated (first seen), with a
    warning on the poll; an hour ahead (a clock a little off) keeps its date."""
    items = "".join(
        f"<item><title>{title}</title><link>https://news.example/{n}</link>"
        f"<pubDate>{when}</pubDate></item>"
        for n, (title, when) in enumerate(
            [
                ("Humans land on Mars", "Thu, 01 Jan 2099 00:00:00 GMT"),
                ("Summit opens in Paris", "Wed, 12 Feb 2025 13:00:00 GMT"),  # an hour ahead
            ]
        )
    )
    feed_server.routes["/rss"] = static(
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>T</title>'
        f"{items}</channel></rss>"
    )
    write_config(tmp_path, f'[[feeds]]\nurl = "{feed_server.url("/rss")}"\nname = "Future"\n')
    with make_aggregator(load_config(tmp_path / "feeds.toml"), clock=clock) as agg:
        (result,) = agg.poll()
        assert result.new == 2
        assert result.error is not None and "1 entry dated in the future" in result.error
        digest = agg.make_digest(Window(date(2025, 2, 12), date(2025, 2, 12)))
        copies = {
            c.title: c
            for t in digest.topics
            for s in t.stories
            for a in s.articles
            for c in a.copies
        }
    assert set(copies) == {"Humans land on Mars", "Summit opens in Paris"}
    mars, summit = copies["Humans land on Mars"], copies["Summit opens in Paris"]
    assert not mars.dated and mars.published == clock()  # first seen
    assert summit.dated and summit.published == clock() + timedelta(hours=1)
