"""A story's teaser: the first one to three sentences of an article's clean text.

Pure functions. Sentence ends are recognised in Chinese/Japanese (。！？) and in Latin
script (. ! ? followed by a space), without splitting on decimals, domains or common
abbreviations. Lengths are measured in display width (a CJK character counts as two), so
a Chinese and an English summary fill about the same space on the page.
"""

from __future__ import annotations

import re
import unicodedata

from aggregator.dedup.text import is_credit
from aggregator.width import display_width, fit

MAX_SENTENCES = 3
# About three lines of text in the page's column: ~70 Chinese characters or ~140 Latin ones.
WIDTH_BUDGET = 300
ELLIPSIS = "…"

_CJK_END = frozenset("。！？")
_END = re.compile(r"""(?:[。！？]+|[.!?]+|…+|\.\.\.+)[”’」』）)\]】"'»]*""")
_PARAGRAPHS = re.compile(r"\n\s*\n|\r\n\s*\r\n")
# Photo captions and credits: not the story.
_CAPTION = re.compile(r"^(?:[▲△▼▽►◆]|图[为：:]|圖[為：:]|(?:photo|image|picture)\s*:)", re.I)
# A leading dateline such as 【环球时报综合报道】 or （德国之声中文网）.
_DATELINE = re.compile(r"^(?:【[^】]{1,24}】|（[^）]{1,24}）)\s*")
# A Chinese byline before the news, as copy detection's credit lines but on the news's own
# line: "智东西（公众号：zhidxcom）编译 | 程茜编辑 | 云鹏智东西2月10日报道，今日，…". Short
# segments naming a role, each closed by a bar, then the reporter's dateline ("…2月10日报道，",
# "新华社北京2月10日电（记者 …）"). Only at the start of the text, and only these shapes.
_BYLINE_SEGMENTS = re.compile(
    r"^(?:[^|｜。！？\n]{0,30}?(?:编译|编辑|责编|作者|撰文|记者|通讯员|校对|审校|整理|出品|"
    r"来源|公众号|摄影|题图)[^|｜。！？\n]{0,30}?\s*[|｜]\s*)+"
)
_BYLINE_DATELINE = re.compile(
    r"^[^|｜，,。！？\s]{0,24}?\d{1,2}月\d{1,2}日(?:电|讯|报道|消息)"
    r"(?:\s*[（(][^）)]{0,30}[）)]\s*[，,：:]?\s*|\s*[，,：:]\s*|\s+)"
)
# What a credit line shows besides its words ("来源：…", "© 2025 …", "Reporting by …"): a
# short sentence that only mentions subscribing is kept.
_CREDIT_MARK = re.compile(r"[：:©|｜]|\b(?:by|copyright)\b", re.IGNORECASE)
_ABBREVIATIONS = frozenset(
    "mr mrs ms dr prof st jr sr vs etc e.g i.e u.s u.k u.n inc co ltd corp gen gov sen rep".split()
)
# Where a too-long sentence may be cut: after a clause mark, else at a space.
_CLAUSE = re.compile(r"[，、；：,;:]")


def is_cjk(ch: str) -> bool:
    """True for a wide (CJK) character."""
    return unicodedata.east_asian_width(ch) in "WF"


def split_sentences(text: str) -> list[str]:
    """Split one paragraph into sentences, keeping each sentence's closing punctuation.

    Args:
        text: Plain text on one line (whitespace runs are treated as one space).

    Returns:
        The sentences, stripped, in order; text after the last sentence end is the last one.
    """
    text = " ".join(text.split())
    sentences: list[str] = []
    start = 0
    for match in _END.finditer(text):
        end = match.end()
        if not _is_boundary(text, start, match.start(), match.group(), end):
            continue
        sentence = text[start:end].strip()
        if sentence:
            sentences.append(sentence)
        start = end
    tail = text[start:].strip()
    if tail:
        sentences.append(tail)
    return sentences


def _is_boundary(text: str, start: int, at: int, mark: str, end: int) -> bool:
    if mark[0] in _CJK_END:
        return True
    after = text[end : end + 1]
    if mark[0] in "!?":
        # Latin ! and ? also end a sentence directly followed by Chinese text.
        return not after or after.isspace() or is_cjk(after)
    if after and not after.isspace():
        return False  # 3.5, example.com, U.S.A.
    if mark[0] == ".":
        word = text[start:at].rsplit(" ", 1)[-1].lower()
        if word in _ABBREVIATIONS or (len(word) == 1 and word.isalpha()):
            return False  # Mr. Smith, J. Smith
        following = text[end:].lstrip()[:1]
        if following and following.islower():
            return False
    return True


def summarize(text: str, *, max_sentences: int = MAX_SENTENCES, budget: int = WIDTH_BUDGET) -> str:
    """The first sentences of `text` that fit the budget: at least one, at most `max_sentences`.

    Headings, bylines and captions (paragraphs with no sentence end, or starting like
    a caption) are skipped when real paragraphs follow, and so are credit lines before the
    news ("来源：…", see `dedup.text.is_credit`) and a Chinese byline and dateline opening
    it (`strip_byline`). A first sentence longer than the budget is cut at a clause mark or
    a space and ends with an ellipsis.

    Args:
        text: An article's clean text, paragraphs separated by blank lines.
        max_sentences: The most sentences to keep.
        budget: The most display columns to keep (see `display_width`).

    Returns:
        The summary on one line, or "" for empty text.
    """
    paragraphs = [" ".join(p.split()) for p in _PARAGRAPHS.split(text)]
    paragraphs = [p for p in paragraphs if p]
    if not paragraphs:
        return ""
    prose = [p for p in paragraphs if _is_prose(p)] or paragraphs
    # Credit lines before the news ("来源：新华社。", "责任编辑：张三。") are not the news.
    while len(prose) > 1 and is_credit(prose[0]) and _CREDIT_MARK.search(prose[0]):
        prose = prose[1:]
    prose[0] = strip_byline(prose[0])
    chosen: list[str] = []
    width = 0
    for paragraph in prose:
        for sentence in split_sentences(_DATELINE.sub("", paragraph) or paragraph):
            w = display_width(sentence)
            if chosen and width + w > budget:
                return _join(chosen)
            chosen.append(sentence)
            width += w
            if len(chosen) >= max_sentences:
                return _join(chosen)
            if width > budget:
                return _cut(sentence, budget)
    return _join(chosen)


def strip_byline(paragraph: str) -> str:
    """The paragraph without a Chinese byline and dateline before its news.

    Args:
        paragraph: An article's first paragraph.

    Returns:
        The text from the news on, e.g. "今日，为期两天的…" for "智东西（公众号：zhidxcom）编译 |
        程茜编辑 | 云鹏智东西2月10日报道，今日，为期两天的…"; the paragraph itself when it opens
        otherwise, or when nothing would be left.
    """
    segments = _BYLINE_SEGMENTS.match(paragraph)
    rest = paragraph[segments.end() :] if segments else paragraph
    dateline = _BYLINE_DATELINE.match(rest)
    if dateline:
        rest = rest[dateline.end() :]
    return rest if rest.strip() else paragraph


def _is_prose(paragraph: str) -> bool:
    if _CAPTION.match(paragraph):
        return False
    return any(paragraph.rstrip("”’」』）)]】\"' ").endswith(e) for e in "。！？.!?…")


def _join(sentences: list[str]) -> str:
    out = ""
    for sentence in sentences:
        # Chinese sentences follow each other without a space; Latin ones take one.
        if out and not (is_cjk(out[-1]) and is_cjk(sentence[0])):
            out += " "
        out += sentence
    return _tidy_end(out)


def _tidy_end(text: str) -> str:
    # A feed's own truncation ("...") becomes one ellipsis character.
    if text.endswith("..."):
        return text.rstrip(".").rstrip() + ELLIPSIS
    return text


def _cut(sentence: str, budget: int) -> str:
    head = fit(sentence, budget)
    if head == sentence:
        return sentence
    # Prefer ending at a clause mark in the last third, else at a space, else anywhere.
    floor = len(head) * 2 // 3
    clause = max((m.start() for m in _CLAUSE.finditer(head)), default=-1)
    if clause >= floor:
        head = head[:clause]
    elif " " in head[floor:]:
        head = head[: head.rindex(" ")]
    return head.rstrip(" ，、；：,;:") + ELLIPSIS
