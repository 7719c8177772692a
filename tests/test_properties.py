"""Property tests (hypothesis) for the seed-format reader and the config parser."""

from __future__ import annotations

import tempfile
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import tomlkit
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aggregator.config import config_from_dict
from aggregator.exceptions import ConfigError
from aggregator.sources.files import read_source

SHANGHAI = ZoneInfo("Asia/Shanghai")
# Words of real text: CJK (both scripts), Latin, digits; no markup characters.
_alphabet = st.sampled_from(
    list("人工智能峰会巴黎開源共享智慧法國总统欧洲投资模型")
    + list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
)
words = st.text(_alphabet, min_size=1, max_size=12)
sentences = st.lists(words, min_size=1, max_size=12).map(lambda ws: " ".join(ws) + "。")
paragraphs = st.lists(sentences, min_size=1, max_size=4).map("".join)
titles = st.lists(words, min_size=1, max_size=6).map(" ".join)
moments = st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2090, 1, 1)).map(
    lambda d: d.replace(microsecond=0)
)
urls = st.builds(lambda a, b: f"https://news.example/{a}/{b}", st.integers(0, 10**6), words)

relaxed = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _read_one(name: str, content: str) -> tuple[str, list[object]]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        path.write_text(content, encoding="utf-8")
        parsed = read_source(path, default_tz=SHANGHAI)
    assert len(parsed.entries) == 1
    return parsed.entries[0], parsed.warnings  # type: ignore[return-value]


@relaxed
@given(title=titles, when=moments, body=st.lists(paragraphs, min_size=1, max_size=4), link=urls)
def test_front_matter_articles_read_back(
    title: str, when: datetime, body: list[str], link: str
) -> None:
    meta = yaml.safe_dump(
        {"title": title, "date": when.strftime("%Y-%m-%d %H:%M:%S"), "lang": ["zh-CN"]},
        allow_unicode=True,
    )
    content = f"---\n{meta}---\n\n" + "\n\n".join(body) + f"\n\n[site]({link})\n"
    entry, _ = _read_one("a.md", content)
    assert entry.title == title.strip()  # type: ignore[attr-defined]
    assert entry.published == when.replace(tzinfo=SHANGHAI)  # type: ignore[attr-defined]
    assert entry.link == link  # type: ignore[attr-defined]
    for paragraph in body:
        assert paragraph.strip() in entry.text  # type: ignore[attr-defined]
    assert "](" not in entry.text and link not in entry.text  # type: ignore[attr-defined]


@relaxed
@given(title=titles, before=paragraphs, after=st.lists(paragraphs, min_size=1, max_size=3))
def test_plain_markdown_title_is_the_one_top_level_heading(
    title: str, before: str, after: list[str]
) -> None:
    content = f"\n\n{before}\n\n### {before[:5]}\n\n# {title}\n\n" + "\n\n".join(after) + "\n"
    entry, _ = _read_one("b.txt", content)
    assert entry.title == title.strip()  # type: ignore[attr-defined]
    assert entry.published is None and entry.link is None  # type: ignore[attr-defined]
    assert after[-1].strip() in entry.text  # type: ignore[attr-defined]


@relaxed
@given(title=titles, millis=st.integers(0, 4102444800000), link=urls, body=paragraphs)
def test_feed_export_reads_epoch_title_and_link(
    title: str, millis: int, link: str, body: str
) -> None:
    content = f"<!--{millis}-->\n[{title}]({link})\n------\n\n<p>{body}</p>"
    entry, _ = _read_one("c.txt", content)
    assert entry.title == title.strip()  # type: ignore[attr-defined]
    assert entry.link == link  # type: ignore[attr-defined]
    expected = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=millis)
    assert entry.published == expected  # type: ignore[attr-defined]
    assert body.strip() in entry.text and "<p>" not in entry.text  # type: ignore[attr-defined]


# --- config: any document either loads or raises ConfigError, never anything else -----------

toml_scalars = st.one_of(
    st.text(max_size=20),
    st.integers(-(2**31), 2**31),
    st.booleans(),
    st.floats(allow_nan=False),
    st.lists(st.text(max_size=8), max_size=3),
)
keys = st.sampled_from(
    [
        "url",
        "name",
        "interval",
        "timezone",
        "language",
        "path",
        "keywords",
        "time",
        "output",
        "to",
        "from",
        "port",
        "security",
        "nmae",
        "intervall",
        "x",
    ]
)
tables = st.dictionaries(keys, toml_scalars, max_size=5)
documents = st.fixed_dictionaries(
    {},
    optional={
        "storage": tables,
        "feeds": st.lists(tables, max_size=3),
        "topics": st.lists(tables, max_size=2),
        "digest": tables,
        "extra": toml_scalars,
    },
)


@settings(max_examples=300, deadline=None)
@given(documents)
def test_config_parser_accepts_or_says_what_is_wrong(document: dict[str, object]) -> None:
    text = tomlkit.dumps(document)
    data = tomllib.loads(text)
    try:
        config = config_from_dict(data, Path("/tmp/prop/feeds.toml"), text)
    except ConfigError as e:
        assert e.key, e  # every rejection names the key it is about
        assert "/tmp/prop/feeds.toml" in str(e)
    else:
        assert all(f.url and f.name for f in config.feeds)
        assert all(t.keywords for t in config.topics)
