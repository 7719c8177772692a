"""Text normalisation for comparison only (the original text is what is shown).

`normalise` is the form keywords, copies and stories are compared in: Unicode NFKC,
Simplified script, case-folded. The script conversion is OpenCC's ``tw2sp`` (Taiwan
Traditional -> Simplified, with phrases: 人工智慧 -> 人工智能, 軟體 -> 软件); plain ``t2s``
maps characters only. ``bench/cluster_quality.py --opencc`` measures the configurations
on the fixture corpus (docs/deduplication.md has the figures).

`comparison_text` also drops credit and copyright lines (a republisher's "来源：…", "责任
编辑：…", "© 2025 …", "Reporting by …"), which say who, not what; `headline` drops the
publisher's name that many feeds append to a title ("… - Reuters", "…｜澎湃新闻") for the
same reason.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from functools import cache
from itertools import islice, product
from typing import TypeVar
from urllib.parse import urlsplit

import opencc

#: The OpenCC configuration used to fold Traditional script into Simplified.
OPENCC_CONFIG = "tw2sp"

# A short paragraph that names a source, an editor, a reporter or a copyright holder: it
# opens with one of these, or contains one of `_CREDIT_WORDS` (`_CREDIT_WORD`).
_CREDIT_START = re.compile(
    r"[\s(（\[【]*(?:来源|來源|转载|轉載|转自|轉自|原标题|原文|本文来自|本文转自|作者|编辑|编者|责任编辑|"
    r"责编|记者|通讯员|校对|审核|监制|图片来源|图源|题图|摄影|"
    r"(?:source|credits?|photo|image)\s*(?:[:：]|by\b)|reporting by|writing by|editing by|"
    r"additional reporting|originally published|"
    r"this (?:article|story) (?:was|first)|republished)",
    re.IGNORECASE,
)
_CREDIT_WORDS = (
    "©", "(c)", "copyright", "版权", "版權", "all rights reserved", "未经授权", "不得转载",
    "禁止转载", "免责声明", "点击关注", "关注我们", "扫码", "二维码", "订阅", "subscribe",
)  # fmt: skip
#: Any of `_CREDIT_WORDS`, found in one search: in a paragraph of Chinese (or any that is
#: not ASCII) faster than a substring test for each word; in an ASCII one, a test for each
#: ASCII word is faster still (`_ASCII_CREDIT_WORDS`: no other can occur there). Measured
#: in docs/speed.md (Seventeenth session).
_CREDIT_WORD = re.compile("|".join(map(re.escape, _CREDIT_WORDS)))
_ASCII_CREDIT_WORDS = tuple(word for word in _CREDIT_WORDS if word.isascii())
#: Paragraphs longer than this are content even when they mention a source.
CREDIT_MAX_CHARS = 120


@cache
def _converter(config: str) -> opencc.OpenCC:
    return opencc.OpenCC(config)


#: A Chinese (Han) character, in the ranges words and tokens are told apart by.
HAN = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")


def has_han(text: str) -> bool:
    """True when `text` holds a `HAN` character."""
    # isascii() is a flag CPython keeps on the string: it spares English text a regular
    # expression scan of its whole length.
    return not text.isascii() and HAN.search(text) is not None


_V = TypeVar("_V")


class Memo(dict[str, _V]):
    """`function(key)`, computed once per distinct key (a word, a token).

    Bounded: past `limit` keys new results are returned but not kept, so a hostile feed of
    random words cannot grow it.
    """

    def __init__(self, function: Callable[[str], _V], limit: int = 1 << 17) -> None:
        super().__init__()
        self._function = function
        self._limit = limit

    def __missing__(self, key: str) -> _V:
        value = self._function(key)
        if len(self) < self._limit:
            self[key] = value
        return value


#: Characters OpenCC may change (CJK ideographs, compatibility ideographs, CJK punctuation).
_HAN = re.compile(r"[\u3000-\u303f\u3400-\u9fff\uf900-\ufaff\U00020000-\U0003134f]")


def to_simplified(text: str, config: str | None = None) -> str:
    """Traditional -> Simplified Chinese (characters, and phrases for ``tw2sp``/``hk2s``)."""
    # Nothing to convert (most non-Chinese text): spare OpenCC (and ASCII the scan).
    if text.isascii() or not _HAN.search(text):
        return text
    converter = _converter(config or OPENCC_CONFIG)
    if "\x00" in text:  # OpenCC stops at a NUL: the rest of the text would be lost
        return "\x00".join(str(converter.convert(part)) for part in text.split("\x00"))
    return str(converter.convert(text))


def normalise(text: str, config: str | None = None) -> str:
    """NFKC, Simplified script, case-folded: the form keywords and copies are compared in."""
    return to_simplified(nfkc(text), config).casefold()


#: Where the compatibility characters `nfkc` replaces itself are (Latin-1's, punctuation,
#: symbols, CJK punctuation and squared forms, the half- and full-width forms).
_COMPATIBILITY_RANGES = ((0x00A0, 0x0100), (0x2000, 0x2C00), (0x3000, 0x3400), (0xFE10, 0xFFF0))


@cache
def _compatibility() -> tuple[re.Pattern[str], dict[str, str]]:
    """The characters of `_COMPATIBILITY_RANGES` whose NFKC form is their full compatibility
    decomposition made of starters only (a full-width comma is ","), and that form."""
    forms: dict[str, str] = {}
    for lo, hi in _COMPATIBILITY_RANGES:
        for code in range(lo, hi):
            char = chr(code)
            form = unicodedata.normalize("NFKC", char)
            if (
                form != char
                and form == unicodedata.normalize("NFKD", char)
                and unicodedata.normalize("NFKD", form) == form
                and not any(unicodedata.combining(c) for c in form)
            ):
                forms[char] = form
    return re.compile("[" + "".join(map(re.escape, forms)) + "]"), forms


def nfkc(text: str) -> str:
    """`unicodedata.normalize("NFKC", text)`, exactly, ~4-6x faster on Chinese text.

    Chinese prose is full of full-width punctuation (，。：), which makes CPython normalise
    the whole text the slow way (~0.2 µs a character, as much as OpenCC's conversion). Those
    characters are replaced first, each by its form (`_compatibility`); if the result is
    then normalised (CPython's quick check), it is NFKC's answer: the replacements are the
    characters' full compatibility decompositions and are starters, so the text's NFKD, and
    with it its NFKC, is unchanged by them. Otherwise it is normalised as before.
    """
    if text.isascii():
        return text
    pattern, forms = _compatibility()
    replaced = pattern.sub(lambda m: forms[m.group()], text)
    if unicodedata.is_normalized("NFKC", replaced):
        return replaced
    return unicodedata.normalize("NFKC", replaced)


#: Keyword spellings tried for one keyword's Traditional characters, at most.
MAX_SPELLINGS = 64


@cache
def _traditional_forms() -> dict[str, tuple[str, ...]]:
    """Simplified character -> the characters `to_simplified` turns into it (one at a time)."""
    chars = [
        chr(c)
        for lo, hi in ((0x3400, 0x4DC0), (0x4E00, 0xA000), (0xF900, 0xFB00))
        for c in range(lo, hi)
    ]
    # One conversion of every character, a line each: a phrase cannot span two lines.
    converted = str(_converter(OPENCC_CONFIG).convert("\n".join(chars))).split("\n")
    forms: dict[str, list[str]] = {}
    for char, simple in zip(chars, converted, strict=True):
        if simple != char and len(simple) == 1:
            forms.setdefault(simple, []).append(char)
    return {simple: tuple(found) for simple, found in forms.items()}


#: Greek and Cyrillic letters: the other alphabets whose words keywords must not be found
#: inside of (`cased_edges`).
CASED_LETTERS = "\u0370-\u03ff\u1f00-\u1fff\u0400-\u052f"
_CASED = re.compile(f"[{CASED_LETTERS}]")


def cased_edges(keyword: str) -> tuple[bool, bool]:
    """Whether a keyword must start a word, and end one, in Greek or Cyrillic text.

    A keyword opening with a Greek or Cyrillic letter must start a word ("ИИ", AI in
    Russian, is not in "России"); one ending with such a letter must end a word only when
    written in capitals, as an acronym ("ЕС" is not in "если"): these languages inflect
    their words' endings, so "Путин" finds "Путину" and "Путина".
    """
    key = keyword.strip()
    return (
        bool(key) and _CASED.match(key) is not None,
        bool(key) and _CASED.match(key[-1]) is not None and key.isupper(),
    )


def spellings(keyword: str) -> set[str]:
    """The ways a text may write `keyword` before `normalise` (case-folded, not otherwise
    changed): the normalised keyword; each Chinese character in any of its Traditional
    forms (at most `MAX_SPELLINGS` combinations); and its Traditional phrasing in Taiwan and
    Hong Kong (OpenCC s2twp, s2hk: 人工智能 is written 人工智慧). Searching a text for these
    finds, without converting the text, what searching `normalise(text)` for the keyword
    finds, but for a phrase OpenCC rewrites in the text and not in the keyword's phrasings.
    """
    key = normalise(keyword)
    found = {key}
    if not has_han(key):
        return found
    for config in ("s2t", "s2twp", "s2hk"):
        found.add(str(_converter(config).convert(key)).casefold())
    forms = _traditional_forms()
    choices = [(char, *forms.get(char, ())) for char in key]
    found.update("".join(p) for p in islice(product(*choices), MAX_SPELLINGS))
    return found


def is_credit(paragraph: str) -> bool:
    """True for a short paragraph that is a credit or copyright line (normalised input)."""
    return _is_credit_line(paragraph.strip(), folded=False)


def _is_credit_line(stripped: str, *, folded: bool) -> bool:
    """`is_credit` of a stripped paragraph (`folded`: it is case-folded already)."""
    if len(stripped) > CREDIT_MAX_CHARS:
        return False
    if _CREDIT_START.match(stripped):
        return True
    text = stripped if folded else stripped.casefold()
    if text.isascii():
        return any(word in text for word in _ASCII_CREDIT_WORDS)
    return _CREDIT_WORD.search(text) is not None


def comparison_text(text: str, config: str | None = None) -> str:
    """The normalised body without credit/copyright paragraphs, spaces collapsed."""
    return " ".join(comparison_words(text, config))  # runs of white space -> one space


def comparison_words(text: str, config: str | None = None) -> list[str]:
    """`comparison_text` cut at its spaces (the chunks `minhash.tokens` cuts it into)."""
    normalised = normalise(text, config)
    kept = []
    dropped = False
    for paragraph in normalised.split("\n"):
        stripped = paragraph.strip()
        if not stripped:
            continue  # holds no words
        # `is_credit`, without its casefold: `normalised` is case-folded already, and case
        # folding is idempotent (tests/test_dedup.py checks every code point).
        if _is_credit_line(stripped, folded=True):
            dropped = True
        else:
            kept.append(paragraph)
    # With no credit line dropped, the words are the whole text's (blank lines hold none).
    return (" ".join(kept) if dropped else normalised).split()


# --- headlines ----------------------------------------------------------------------------

# The last segment of a title after a separator: " - ", " – ", " — ", " | ", " · ", "|",
# "｜" or "丨", and right after Chinese "_", "-", "–" or "—" unspaced (portals write
# "标题_网易新闻", "标题-新华网"). The segment holds no separator itself.
_TAIL = re.compile(
    r"(?P<sep>\s+[-–—|·•]\s+|\s*[|｜丨]\s*|(?<=[\u3400-\u9fff\uff09」》）\]])[-–—_](?=\S))"
    r"(?P<tail>[^-–—|｜丨_·•]+)$"
)
#: The characters `_TAIL` separates a segment by.
_SEPARATORS = "-–—|｜丨_·•"
# A Latin name: up to five words, each capitalised (or a number, or a short joining word).
_NAME_WORD = re.compile(r"(?:[A-Z0-9][\w.&'’+-]*|&|of|the|and|de|la|le|der|die|el|for|on|at)$")
#: Ends of Chinese media names (澎湃新闻, 环球时报, 第一财经, 央视频道, 21世纪经济报道).
_ZH_MEDIA = (
    "新闻", "报道", "财经", "频道", "客户端", "周刊", "杂志", "在线", "资讯", "日报", "晚报",
    "时报", "早报", "电视", "广播", "传媒", "通讯社", "通信社", "新华社", "中央社", "新闻网",
)  # fmt: skip
#: One-character ends (新华网, 人民网, 联合报, 中新社, 东方台): taken after a portal's "_" or
#: "｜" in a short segment, or as a name of three characters after any separator, when it
#: does not end in a common word (`_ZH_NOT_MEDIA`).
_ZH_MEDIA_CHAR = ("网", "报", "社", "台")
_ZH_NOT_MEDIA = (
    "互联网", "物联网", "电网", "落网", "上网", "联网", "平台", "下台", "出台", "上台", "登台",
    "后台", "舞台", "台风", "警报", "预报", "通报", "情报", "举报", "汇报", "简报", "公报",
    "回报", "捷报", "喜报", "申报", "战报", "海报", "画报", "结社", "公社",
)  # fmt: skip
_ZH_PUNCTUATION = re.compile(r"[，。！？：；、,!?:;\s]")
#: A section's name after the publisher's is dropped too ("… | World news | The Guardian"):
#: one or two words, the last of them one of these.
SECTION_WORDS = frozenset(
    "news politics business sport sports world opinion technology tech science health money "
    "markets culture lifestyle entertainment football economy finance environment media "
    "travel education".split()
)
#: Words that tell a name of three words or more as a publisher's.
MEDIA_WORDS = frozenset(
    "news times post journal independent herald tribune telegraph guardian express mail "
    "chronicle gazette observer standard review magazine daily weekly wire press radio tv "
    "network insider today online report economist monitor star sun mirror record english "
    "politics business sport sports finance".split()
)
_ALNUM = re.compile(r"[\W_]+")
#: Host labels that name no publisher (before a public suffix, or subdomains).
_HOST_WORDS = frozenset(
    "www m mobile amp news feeds feed rss com net org co gov edu info biz cn uk us de fr jp "
    "hk tw sg au ca in io tv it es nl ru kr br ch se eu me ai app example test local".split()
)
#: Segments stripped at most (a section and a publisher: "… | World news | The Guardian").
MAX_TAILS = 2
#: A site's domain as a title names it ("Bloomberg.com", "bbc.co.uk"): a lower-case
#: common suffix, so that "Next.js" or "ASP.NET" stay.
_DOMAIN = re.compile(
    r"[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.(?:com|net|org|info|biz|news|io|co|uk|de|fr|jp|cn|in|au|"
    r"ca|us|eu|it|es|nl|ru|br|kr|tw|hk|sg|ch|se|no|fi|dk|pl|il|nz|ie|za|mx|be|at|tv|me|ai)"
)
_CLOSING_QUOTE = tuple("'\"”’»」』")


def _key(text: str) -> str:
    return _ALNUM.sub("", normalise(text))


def _named_by(tail: str, feed: str, sites: list[str]) -> bool:
    """True when the segment is the feed's name or the link's site's, in whole words.

    The feed's: the name itself, a part of it ("BBC News" of "BBC News - World"), or it and
    one short word ("中央社 CNA" of 中央社, "自由時報電子報" of 自由時報). The site's (`sites`:
    its host's labels, the one before the public suffix last): a label itself ("The
    Guardian" of theguardian.com, "ABC News" of abcnews.go.com), or the last label and a
    media word ("BBC News" of bbc.co.uk, "Yahoo Finance" of yahoo.com). Not "April jobs
    report misses" for the feed "AP", nor "BBC apologises for …" for bbc.co.uk.
    """
    words = [w for w in (_key(w) for w in tail.split()) if w]
    key = "".join(words)
    if len(key) < 3 or len(words) > 5:
        return False
    if feed and (key == feed or (len(key) >= 4 and key in feed)):
        return True
    if len(feed) >= 3 and key.startswith(feed) and len(key) - len(feed) <= 4:
        # The feed's words and one short word, or a Chinese name run on (no spaces).
        if (len(words) == 2 and words[0] == feed) or (len(words) == 1 and has_han(feed)):
            return True
    if key in sites:
        return True
    site = sites[-1] if sites else ""
    return bool(site) and words[0] == site and all(w in MEDIA_WORDS for w in words[1:])


def _looks_like_name(tail: str, head: str, separator: str, after_name: bool) -> bool:
    """True for a segment that reads like a publisher's or section's name after a
    headline: a few capitalised words or a Chinese media name; once a name was dropped,
    also a section ("World news")."""
    if has_han(tail):
        simplified = normalise(tail)
        if len(simplified) > 12 or _ZH_PUNCTUATION.search(simplified):
            return False
        if len(normalise(head)) < 6 or simplified.endswith(_ZH_NOT_MEDIA):
            return False
        portal = separator.strip() in ("_", "|", "｜", "丨")
        # After any separator, a name of three characters (新华网, 人民网, 联合报, 中新社).
        return simplified.endswith(_ZH_MEDIA) or (
            (portal and len(simplified) <= 6 or len(simplified) <= 3)
            and simplified.endswith(_ZH_MEDIA_CHAR)
        )
    words = tail.split()
    if len(head.split()) < 3:
        return False
    if after_name:
        return len(words) <= 2 and words[-1].casefold() in SECTION_WORDS
    if head.endswith(_CLOSING_QUOTE):  # a quote, then who said it: "'…' - Guardiola"
        return False
    return (
        # Longer names say what they are ("The Wall Street Journal"); three capitalised
        # words may be the headline's own ("- Trump Wins Pennsylvania").
        (len(words) <= 2 or any(w.casefold() in MEDIA_WORDS for w in words))
        and len(words) <= 5
        and len(tail) <= 40
        and all(_NAME_WORD.match(w) for w in words)
        and any(w[0].isupper() for w in words)
    )


def headline(
    title: str, feed_name: str = "", link: str | None = None, *, guess: bool = True
) -> str:
    """The title without the publisher's (and section's) name a feed appended to it.

    Aggregators and many sites append it ("Nvidia shares plunge 17% - Reuters", "… | World
    news | The Guardian", "英伟达股价暴跌_网易新闻"); it says who published, not what happened,
    and would make headlines of one publisher alike and one headline from two publishers
    differ. A last segment after a separator is dropped when it names the feed or the
    link's site, or is a domain ("bbc.com"), or — with `guess` — reads as a name: one or
    two capitalised words, up to five with a word such as News, Times, Journal
    (`MEDIA_WORDS`), or a Chinese media name (…新闻, …日报, …财经; …网/…报/…社/…台 after a
    portal's "_" or "｜"), after a headline of three words or more (six Chinese
    characters); once one went, a section before it goes too ("World news"). Never
    guessed: a segment next to a digit ("City 1 - 2 Tottenham": a score), nor a speaker
    after a quote. At most `MAX_TAILS` segments go; a title is never emptied; runs of
    white space become one space. For comparison only: the title shown is the
    original. Title-only copies are keyed by the title without guessing (``guess=False``):
    two briefs must not become one article because a place or a name was taken for a
    publisher's.
    """
    head = " ".join(title.split())  # one space per run: the search below backs over one
    hints: tuple[str, list[str]] | None = None
    for n in range(MAX_TAILS):
        found = _last_tail(head)
        if found is None:
            break
        tail, rest = found.group("tail").strip(), head[: found.start()].strip()
        if not rest or not tail:
            break
        if hints is None:
            hints = _hints(feed_name, link)
        # "City 1 - 2 Tottenham" is a score (a Chinese name may open with one: 21世纪经济报道).
        score = not has_han(tail) and (tail[0].isdigit() or rest[-1].isdigit())
        if not (
            _named_by(tail, *hints)
            or (_DOMAIN.fullmatch(tail) and len(rest.split()) >= 3)
            or (guess and not score and _looks_like_name(tail, rest, found.group("sep"), n > 0))
        ):
            break
        head = rest
    return head


def _last_tail(head: str) -> re.Match[str] | None:
    """`_TAIL` in `head`, searched from its last separator (and the space before it) only:
    most titles have none, and a search from the start tries every position (~10 us)."""
    last = max(map(head.rfind, _SEPARATORS))
    if last < 0:
        return None
    if last > 0 and head[last - 1].isspace():
        last -= 1
    return _TAIL.search(head, last)


def _hints(feed_name: str, link: str | None) -> tuple[str, list[str]]:
    """The feed's name and the link's host labels that may name a site (``bbc`` of
    news.bbc.co.uk; ``timesofindia``, ``indiatimes`` of timesofindia.indiatimes.com), as
    `_named_by` compares them."""
    try:
        host = (urlsplit(link).hostname or "") if link else ""
    except ValueError:  # not a URL: no site to name
        host = ""
    labels = [label for label in host.split(".") if len(label) >= 3 and label not in _HOST_WORDS]
    return _key(feed_name), labels
