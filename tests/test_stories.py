"""Stories on real news: the seeds are one story, headlines are held close in time, and a
story keeps its id through merges."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, date, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from xml.sax.saxutils import escape

import pytest

from aggregator.config import Config, load_config
from aggregator.core import Window, make_aggregator
from aggregator.digest.render import render
from aggregator.notify.shape import headline_link
from aggregator.types import DedupSettings, EntryData, Feed, Format, Outcome
from tests.alerting import Receiver
from tests.conftest import FrozenClock, RunCli, write_config
from tests.feedserver import FeedServer, static
from tests.test_dedup import _stored_polls

T0 = datetime(2025, 3, 10, 8, 0, tzinfo=UTC)
H3 = timedelta(hours=3)
WINDOW = Window(date(2025, 2, 9), date(2025, 2, 13))
SUMMIT = "Paris AI Action Summit"


def _sections(workdir: Path, clock: FrozenClock) -> list[tuple[str, list[list[str]]]]:
    """Poll the folder's feeds.toml; each section's stories, as their copies' titles."""
    with make_aggregator(load_config(workdir / "feeds.toml"), clock=clock) as agg:
        assert sum(r.new for r in agg.poll()) == 4
        data = json.loads(render(agg.make_digest(WINDOW), Format.JSON))
    return [
        (
            topic["name"],
            [[c["title"] for a in s["articles"] for c in a["copies"]] for s in topic["stories"]],
        )
        for topic in data["topics"]
    ]


@pytest.mark.parametrize("topics", [True, False], ids=["feeds.toml", "no-topics"])
def test_the_four_seeds_are_one_story_in_one_section(
    workdir: Path, clock: FrozenClock, topics: bool
) -> None:
    """All four seeds report the Paris AI Action Summit of 10-11 February 2025: two of them
    a day and a half apart, one undated. One story, under the summit topic when the shipped
    topics are configured, and under one section without them."""
    if not topics:
        config = workdir / "feeds.toml"
        text = config.read_text(encoding="utf-8")
        config.write_text(text[: text.index("[[topics]]")] + text[text.index("[digest]") :])
    sections = _sections(workdir, clock)
    assert len(sections) == 1, sections
    name, stories = sections[0]
    assert len(stories) == 1 and len(stories[0]) == 4
    if topics:
        assert name == SUMMIT
    else:
        assert name != "Other"


def _place(
    tmp_path: Path,
    items: list[tuple[str, str, datetime]],
    *,
    one_pass: bool = False,
    **settings: object,
) -> dict[str, int]:
    """Entries (guid, title, published), one poll each: guid -> story id. A title holding
    "\n\n" is a title and a text. Each is placed as it is stored, or with `one_pass` all
    together once stored (a first poll of feeds holding months of entries)."""
    config = Config(
        path=tmp_path / "feeds.toml",
        storage_path=tmp_path / "t.db",
        dedup=DedupSettings(**settings),  # type: ignore[arg-type]
    )
    with make_aggregator(config) as aggregator:
        last = max(published for _, _, published in items)
        for n, (guid, title, published) in enumerate(items):
            feed = Feed(url=f"https://pub{n}.example/rss", name=f"pub{n}")
            title, _, text = title.partition("\n\n")
            entry = EntryData(guid=guid, title=title, link=f"https://pub{n}.example/{guid}",
                              published=published, text=text)  # fmt: skip
            now = last if one_pass else published
            aggregator.storage.sync_feeds([feed], now)
            aggregator.storage.save_poll(feed, [entry], now=now, seconds=0)
            if not one_pass:
                aggregator.group_stored()
        aggregator.group_stored()
        stored = aggregator.storage.entries_between(
            T0 - timedelta(days=30), T0 + timedelta(days=30)
        )
    return {e.guid: e.story_id for e in stored if e.story_id is not None}


#: Real headlines of one story (UCI News Aggregator data set, F. Gasparetti, CC BY 4.0: see
#: ../shared/data/uci-news-dev/README.md): their cosine in a young database is ~0.32
#: (0.29 while "Pobre", a Spanish word, weighed as a name no list knows).
KEIBLER = [
    ("a", "Stacy Keibler marries Jared Pobre in an intimate beach ceremony in Mexico", T0),
    ("b", "Stacy Keibler Married! George Clooney's Ex Ties Knot With Entrepreneur", T0 + H3),
]
#: The same wedding in other words: the subject again (a return, or a third report).
KEIBLER_AGAIN = "Stacy Keibler marries Jared Pobre in Mexico"


def test_headlines_of_one_event_join_at_the_headline_threshold(tmp_path: Path) -> None:
    """Reports of one wedding in their own words: their few words meet at a cosine of ~0.32,
    so at a threshold above it they stay apart; at the headline threshold they are one
    story."""
    apart = _place(tmp_path / "a", KEIBLER, headline_threshold=0.35)
    together = _place(tmp_path / "b", KEIBLER)
    assert len(set(apart.values())) > 1
    assert len(set(together.values())) == 1


def test_a_subject_that_comes_back_days_later_is_another_story(tmp_path: Path) -> None:
    """The same words two days later are a new story for headlines (an aggregator files the
    return of a subject anew), within the window they join."""
    back = ("d", KEIBLER_AGAIN, T0 + timedelta(days=2))
    later = [*KEIBLER, back]
    placed = _place(tmp_path / "a", later)
    assert placed["a"] == placed["b"] != placed["d"]
    wide = _place(tmp_path / "b", later, headline_window=timedelta(days=3))
    assert len(set(wide.values())) == 1


@pytest.mark.parametrize("one_pass", [False, True])
def test_a_story_told_in_headlines_spans_at_most_the_window(tmp_path: Path, one_pass: bool) -> None:
    """Headlines join a story of headlines only within the window of its first report as
    well as its last: each 16 hours after the one before, the third report (32 hours after
    the first) starts another story instead of stretching the first over two days. The
    labelled real headlines hold a story to a day (docs/stories.md, eleventh session)."""
    chained = [
        KEIBLER[0],
        ("b", KEIBLER[1][1], T0 + timedelta(hours=16)),
        ("e", KEIBLER_AGAIN, T0 + timedelta(hours=32)),
    ]
    placed = _place(tmp_path / "a", chained, one_pass=one_pass)
    assert placed["a"] == placed["b"] != placed["e"]
    wide = _place(tmp_path / "b", chained, one_pass=one_pass, headline_window=timedelta(days=2))
    assert len(set(wide.values())) == 1


def test_copies_of_headlines_do_not_stretch_a_story_of_headlines_past_the_window(
    tmp_path: Path,
) -> None:
    """A copy widens a story of headlines only as far as a headline of its date could join
    it: a republication of its latest report a day later does not stretch the story to two
    days, which would shut out a report from between its first two."""
    items = [
        KEIBLER[0],
        ("b", KEIBLER[1][1], T0 + timedelta(hours=20)),
        ("c", KEIBLER[1][1], T0 + timedelta(hours=44)),  # another feed's copy of b
        ("e", KEIBLER_AGAIN, T0 + timedelta(hours=10)),
    ]
    placed = _place(tmp_path, items)
    assert len(set(placed.values())) == 1


def test_headlines_join_a_story_with_a_full_report_within_the_window_of_its_span(
    tmp_path: Path,
) -> None:
    """A story holding a full report is not one told in headlines: a headline joins it
    within the window of its latest report, however long ago its first was."""
    items = [
        ("r", REPORT, T0),
        ("h", HEADLINE, T0 + timedelta(hours=20)),
        (
            "k",
            "Toyota recall of 6.4 million vehicles: steering and airbag faults",
            T0 + timedelta(hours=40),
        ),
    ]
    placed = _place(tmp_path, items)
    assert placed["r"] == placed["h"] == placed["k"]


@pytest.mark.parametrize("one_pass", [False, True])
def test_a_copy_published_long_after_does_not_stretch_its_story_over_the_months_between(
    tmp_path: Path, one_pass: bool
) -> None:
    """A copy of a headline republished weeks later joins its article, but a story's time
    span grows only as far as an article's could (its window): stretched to the copy's
    date, the story of the first report swallowed the subject's return between them,
    whenever months of headlines were placed together (a first poll)."""
    copy = ("c", KEIBLER[0][1], T0 + timedelta(days=20))
    back = ("d", KEIBLER_AGAIN, T0 + timedelta(days=10))
    placed = _place(tmp_path, [*KEIBLER, copy, back], one_pass=one_pass)
    assert placed["a"] == placed["b"] == placed["c"] != placed["d"]


def test_a_copy_widens_its_storys_span_only_within_the_window() -> None:
    """A copy's date widens the span as an article's could: within ``headline_window`` of a
    story of headlines, or for a headline copy, ``story_window`` of full texts; past it, on
    either side, not at all."""
    from aggregator.dedup.stories import _Stories
    from aggregator.types import StoryState

    settings = DedupSettings()
    day, hour = settings.headline_window, timedelta(hours=1)
    within = _Stories(
        [StoryState(1, T0, T0, 1, {"keibler": 1.0}, short=True),
         StoryState(2, T0, T0, 1, {"summit": 1.0}, short=False),
         StoryState(3, T0, T0, 1, {"summit": 1.0}, short=False)],
        settings,
    )  # fmt: skip
    for sid in (1, 2, 3):
        within.touch(sid, T0 + settings.story_window * 2, False)  # far later
        within.touch(sid, T0 - settings.story_window * 2, False)  # far earlier
    assert all((within.state[s].first, within.state[s].last) == (T0, T0) for s in (1, 2, 3))
    within.touch(1, T0 - hour, True)
    within.touch(1, T0 + day / 2, True)
    within.touch(1, T0 + day * 2, False)  # a full text's copy, but the story is of headlines
    within.touch(2, T0 + settings.story_window, False)
    within.touch(3, T0 + day * 2, True)  # a headline's copy: held to the headline window
    assert (within.state[1].first, within.state[1].last) == (T0 - hour, T0 + day / 2)
    assert within.state[2].last == T0 + settings.story_window
    assert within.state[3].last == T0


def test_a_headline_republished_every_day_does_not_keep_its_story_open(tmp_path: Path) -> None:
    """Copies less than a window apart, each of the first headline: each is within the
    window of the span the one before widened, but only the first is within the window of
    the headline it copies; the subject's return on the third day is another story."""
    title = KEIBLER[0][1]
    copies = [(f"c{n}", title, T0 + timedelta(hours=20 * n)) for n in (1, 2, 3)]
    back = ("d", KEIBLER_AGAIN, T0 + timedelta(hours=70))
    placed = _place(tmp_path, [("a", title, T0), *copies, back])
    assert placed["a"] == placed["c1"] == placed["c2"] == placed["c3"] != placed["d"]


def test_a_copy_joining_two_articles_weeks_apart_does_not_stretch_their_story(
    tmp_path: Path,
) -> None:
    """An entry copying two articles (one by its title, the other by its link) joins them;
    the story of the later one, emptied, merges into the earlier one's, but its date weeks
    later does not widen that story's span: the subject's return in the weeks between,
    placed after, is another story."""
    config = Config(path=tmp_path / "feeds.toml", storage_path=tmp_path / "t.db")
    later = T0 + timedelta(days=20)
    title, link = KEIBLER[0][1], "https://pub1.example/photos"
    polls = [
        ("a", title, "https://pub0.example/a", T0),
        ("b", "Stacy Keibler's wedding album: the photos", link, later),
        ("c", title, link, later),  # a's title, b's link: a copy of both
        ("d", KEIBLER_AGAIN, "https://pub3.example/d",
         T0 + timedelta(days=10)),
    ]  # fmt: skip
    with make_aggregator(config) as aggregator:
        for n, (guid, text, url, published) in enumerate(polls):
            feed = Feed(url=f"https://pub{n}.example/rss", name=f"pub{n}")
            aggregator.storage.sync_feeds([feed], later)
            entry = EntryData(guid=guid, title=text, link=url, published=published)
            aggregator.storage.save_poll(feed, [entry], now=later, seconds=0)
            aggregator.group_stored()
        stored = {e.guid: e for e in aggregator.storage.entries_between(T0, later + H3)}
    assert stored["a"].article_id == stored["b"].article_id == stored["c"].article_id
    assert stored["a"].story_id == stored["b"].story_id == stored["c"].story_id
    assert stored["d"].story_id != stored["a"].story_id


def test_merged_stories_keep_the_oldest_id_and_the_others_point_to_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Alerts and pages link to a story by id: when `settle` merges stories, the oldest id
    survives, and `story_id` resolves every absorbed id to the story holding its entries."""
    from aggregator.dedup import assign as assign_module
    from bench.cluster_scale import Corpus

    merged: dict[int, int] = {}
    real = assign_module.assign

    def recording(*args: object, **kwargs: object) -> Outcome:
        outcome = real(*args, **kwargs)  # type: ignore[arg-type]
        merged.update(outcome.merged)
        return outcome

    monkeypatch.setattr(assign_module, "assign", recording)
    entries, _ = Corpus(seed=3, per_day=300).entries(900)
    config = Config(path=tmp_path / "feeds.toml", storage_path=tmp_path / "t.db")
    with make_aggregator(config) as aggregator:
        storage = aggregator.storage
        for _ in _stored_polls(aggregator, entries, 300):
            aggregator.group_stored()
        assert merged, "the corpus makes settle merge stories"
        assert all(into < gone for gone, into in merged.items())
        with sqlite3.connect(tmp_path / "t.db") as db:
            used = {r[0] for r in db.execute("SELECT DISTINCT story_id FROM entries")}
        for gone in merged:
            final = gone
            while final in merged:  # merged again in a later batch
                final = merged[final]
            assert gone not in used
            assert storage.story_id(gone) == final and final in used
        some = min(used)
        assert storage.story_id(some) == some
        assert storage.story_id(max(used | set(merged)) + 1000) is None


#: A headline and a full report of one event two days apart (beyond the headline window,
#: within the full texts' one).
REPORT = (
    "Toyota recalls 6.4 million vehicles over faulty steering and airbags\n\n"
    + "Toyota Motor said on Wednesday it would recall 6.4 million vehicles worldwide to fix "
    "faulty steering columns, seat rails, airbags and engine starters, the largest recall "
    "the Japanese carmaker has announced since 2009. The recall covers 27 models sold in "
    "Japan, North America, Europe and China, including the RAV4, Yaris and Corolla. "
    "Toyota said it knew of no deaths linked to the faults but of several injuries, and "
    "that dealers would replace the parts free of charge. Shares of Toyota fell 1.2 percent "
    "in Tokyo after the announcement, as analysts estimated the cost of the repairs."
)
HEADLINE = "Toyota recalls 6.4 million vehicles over steering and airbag faults"


def test_a_headline_and_a_full_report_group_alike_in_either_order(tmp_path: Path) -> None:
    """The weaker side decides (`_evidence`): a full report joining a story of headlines is
    held to the headline's window, as a headline joining a full report's story is, so the
    order they arrive in makes no difference."""
    later = T0 + timedelta(days=2)
    first = _place(tmp_path / "a", [("h", HEADLINE, T0), ("r", REPORT, later)])
    second = _place(tmp_path / "b", [("r", REPORT, T0), ("h", HEADLINE, later)])
    assert (first["h"] == first["r"]) == (second["h"] == second["r"])
    assert first["h"] != first["r"]  # two days apart: beyond a headline's window
    near = _place(tmp_path / "c", [("r", REPORT, T0), ("h", HEADLINE, T0 + H3)])
    assert near["h"] == near["r"]


def test_an_edited_entry_keeps_its_story_id_and_an_emptied_story_points_on(
    tmp_path: Path,
) -> None:
    """An entry its feed rewrites stays in its story of one under the same id; moved by an
    edit to another story, it leaves its old id pointing there (`story_id`)."""
    config = Config(path=tmp_path / "feeds.toml", storage_path=tmp_path / "t.db")
    feed = Feed(url="https://pub.example/rss", name="pub")
    other = Feed(url="https://other.example/rss", name="other")

    def poll(source: Feed, guid: str, title: str, when: datetime) -> None:
        entry = EntryData(guid=guid, title=title, link=f"{source.url}/{guid}", published=T0)
        aggregator.storage.sync_feeds([feed, other], when)
        saved = aggregator.storage.save_poll(source, [entry], now=when, seconds=0)
        aggregator.assign(saved.updated_ids)  # as a poll hands its edited entries on

    def story_of(guid: str) -> int | None:
        stored = aggregator.storage.entries_between(T0 - H3, T0 + H3)
        return next(e.story_id for e in stored if e.guid == guid)

    with make_aggregator(config) as aggregator:
        poll(feed, "x", KEIBLER[0][1], T0)
        alone = story_of("x")
        poll(feed, "x", KEIBLER[0][1] + " as friends look on", T0 + H3)
        assert story_of("x") == alone  # rewritten, still its story of one
        poll(other, "y", "Nvidia shares plunge as DeepSeek rattles chip investors", T0 + H3)
        nvidia = story_of("y")
        poll(feed, "x", "Nvidia shares plunge 17% as DeepSeek rattles investors", T0 + 2 * H3)
        assert story_of("x") == nvidia != alone  # the edit moved it
        assert aggregator.storage.story_id(alone) == nvidia


#: Headlines of unrelated events, one language each (written for these tests: no labelled
#: French or Spanish news is at hand), an hour apart: each its own story.
UNRELATED = {
    "fr": [
        "Le président de la République reçoit les syndicats à l'Élysée pour une réunion sur "
        "les retraites",
        "Les agriculteurs bloquent les routes dans le sud de la France pour protester contre "
        "les prix",
        "La Banque centrale européenne maintient ses taux pour le troisième mois consécutif",
        "Des inondations dans le nord de l'Italie font plusieurs morts et des milliers de "
        "sinistrés",
        "Le gouvernement présente son budget pour l'année prochaine",
        "Le gouvernement allemand annonce des mesures contre l'inflation",
    ],
    "es": [
        "El presidente del Gobierno se reúne con los sindicatos para hablar de las pensiones",
        "Los agricultores cortan las carreteras en el sur de España para protestar por los precios",
        "El Banco Central Europeo mantiene los tipos de interés por tercer mes consecutivo",
        "El presidente de Argentina viaja a Washington para reunirse con el FMI",
        "El presidente de Colombia anuncia una reforma de la salud",
        "Elecciones en México: la candidata oficialista lidera las encuestas",
        "Elecciones en Venezuela: la oposición denuncia fraude",
    ],
}
#: Two reports of one event in each language, in their own words.
SAME_EVENT = {
    "fr": [
        "Sommet de Paris sur l'intelligence artificielle : Macron annonce 109 milliards "
        "d'euros d'investissements",
        "Intelligence artificielle : Emmanuel Macron promet 109 milliards d'euros lors du "
        "sommet de Paris",
    ],
    "es": [
        "Los agricultores cortan las carreteras en el sur de España para protestar por los precios",
        "Protesta de los agricultores: cortes de carreteras en el sur de España",
    ],
}


@pytest.mark.parametrize("language", ["fr", "es"])
def test_french_and_spanish_headlines_join_by_their_event_not_their_function_words(
    tmp_path: Path, language: str
) -> None:
    """Unrelated headlines shared "de", "la", "les", "pour", "dans" ("los", "para", "por"),
    weighed as rare words by English's frequencies: all of them were one story. And a word
    English does not know ("gouvernement", "presidente") weighed as a name: two headlines
    sharing it were one story. Now each is its own, and two reports of one event still join."""
    items = [(f"{language}{n}", title, T0 + n * H3 / 3) for n, title in
             enumerate(UNRELATED[language])]  # fmt: skip
    placed = _place(tmp_path / "unrelated", items)
    assert len(set(placed.values())) == len(items)
    pair = [(f"s{n}", title, T0 + n * H3) for n, title in enumerate(SAME_EVENT[language])]
    assert len(set(_place(tmp_path / "same", pair).values())) == 1


#: Real headlines of one story, Twitter's outage of 11 March 2014 (UCI News Aggregator data
#: set, F. Gasparetti, CC BY 4.0: ../shared/data/uci-news-dev/README.md), with their
#: publication times: the earliest is cut short by its feed, the next says little.
TWITTER_DOWN = [
    (1394541255351, "UPDATE: Is Twitter Down Or Offline? Computer & Mobile Users Experience  ..."),
    (1394545449344, "Twitter back up"),
    (1394548198458, "Twitter blames software glitch for latest crash"),
    (1394549390129, "Twitter Goes Down On Web and Mobile – What We Know About the Outage"),
    (1394562652890, "Twitter crashes for a second time in nine days"),
    (1394571216634, "Twitter blames software glitch for lengthy crash"),
    (1394580603140, "Twitter crashes second time in nine days, blames software glitch"),
]


def test_a_story_polled_from_many_feeds_is_headed_by_the_title_they_agree_on(
    tmp_path: Path, feed_server: FeedServer, run_cli: RunCli
) -> None:
    """Seven publishers' headlines of one event, each from its own feed over HTTP: the
    digest heads the story with the title most of them share words with, links it to that
    article and lists the others by date; the alert a webhook receives and `watches test`
    name it by the same headline, and the alert's headline opens the same article."""
    feeds = ""
    for n, (ms, title) in enumerate(TWITTER_DOWN):
        when = format_datetime(datetime.fromtimestamp(ms / 1000, UTC), usegmt=True)
        feed_server.routes[f"/{n}.xml"] = static(
            '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
            f"<title>Publisher {n}</title><link>https://p{n}.example/</link><item>"
            f"<title>{escape(title)}</title><link>https://p{n}.example/twitter</link>"
            f"<pubDate>{when}</pubDate></item></channel></rss>"
        )
        feeds += f'[[feeds]]\nurl = "{feed_server.url(f"/{n}.xml")}"\nname = "Publisher {n}"\n'
    receiver = Receiver()
    try:
        watch = (
            '[[watches]]\nname = "twitter"\nkeywords = ["Twitter"]\nnotify = ["webhook"]\n'
            f'[notify.webhook]\nurl = "{receiver.url}"\n'
        )
        write_config(tmp_path, feeds + watch)
        polled = run_cli("poll", cwd=tmp_path)
        assert polled.returncode == 0, polled.stderr
        (alert,) = receiver.bodies
    finally:
        receiver.close()
    made = run_cli("digest", "--since", "2014-03-10", "--until", "2014-03-12",
                   "--format", "json", "--output", "-", cwd=tmp_path)  # fmt: skip
    assert made.returncode == 0, made.stderr
    (story,) = [s for t in json.loads(made.stdout)["topics"] for s in t["stories"]]
    lead = TWITTER_DOWN[6][1]
    assert story["headline"] == lead
    links = [a["link"] for a in story["articles"]]
    assert links == [f"https://p{n}.example/twitter" for n in (6, 0, 1, 2, 3, 4, 5)]
    assert alert["story"]["headline"] == lead
    assert headline_link(alert) == "https://p6.example/twitter"
    tested = run_cli("watches", "test", "twitter", "--since", "2014-03-10", cwd=tmp_path)
    assert tested.returncode == 0, tested.stderr
    assert tested.stdout.split("\t")[-1] == f"{lead}\n"


def test_a_digest_lists_the_stories_most_feeds_carry_first(
    tmp_path: Path, feed_server: FeedServer, run_cli: RunCli
) -> None:
    """Within a section a digest lists first the story three feeds carried, though a story
    one feed carried is newer; among equals, the newer first."""
    paris = "Leaders in Paris sign the AI declaration"
    items = {  # feed: (title, hour of 11 February 2025)
        "a": [(paris, 8)],
        "b": [(paris, 9)],
        "c": [(paris, 9), ("Everest closes to climbers for the season", 11)],
        "d": [("Weather station records its coldest night", 10)],
    }
    config = '[storage]\npath = "test.db"\n\n[[topics]]\nname = "Places"\n'
    config += 'keywords = ["Paris", "Everest", "weather"]\n\n'
    for name, posts in items.items():
        body = "".join(
            f"<item><title>{title}</title><link>https://{name}.example/{hour}</link>"
            f"<pubDate>Tue, 11 Feb 2025 {hour:02d}:00:00 GMT</pubDate></item>"
            for title, hour in posts
        )
        feed_server.routes[f"/{name}"] = static(
            '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
            f"<title>{name}</title><link>https://{name}.example/</link>{body}</channel></rss>"
        )
        config += f'[[feeds]]\nurl = "{feed_server.url(f"/{name}")}"\nname = "{name}"\n\n'
    (tmp_path / "feeds.toml").write_text(config, encoding="utf-8")
    assert run_cli("poll", cwd=tmp_path).returncode == 0
    made = run_cli("digest", "--date", "2025-02-11", "--format", "json", "--output", "-",
                   cwd=tmp_path)  # fmt: skip
    assert made.returncode == 0, made.stderr
    (places,) = json.loads(made.stdout)["topics"]
    assert [s["headline"] for s in places["stories"]] == [
        paris,  # 3 feeds, 08:00
        "Everest closes to climbers for the season",  # 1 feed, 11:00
        "Weather station records its coldest night",  # 1 feed, 10:00
    ]
