"""Decoding documents as browsers do: byte-order marks, declared charsets, detection.

This is the only module that imports charset_normalizer.
"""

from __future__ import annotations

import codecs
from collections.abc import Sequence
from typing import NamedTuple

import charset_normalizer

from aggregator.grammar import counted
from aggregator.sources.language import base_language

__all__ = ["Decoded", "decode", "http_charset"]


_BOMS = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
# Labels naming a subset of what such documents really hold, read as browsers read them.
_SUPERSETS = {"gb2312": "gb18030", "gbk": "gb18030"}

# UTF-8 with this many valid non-ASCII characters per undecodable sequence, or more, is
# UTF-8 with stray bytes (a Latin-1 byte pasted in), not a document in another encoding.
_MOSTLY_UTF8 = 10


class Decoded(NamedTuple):
    """A document's text, the encoding it was read in, and what was wrong, if anything."""

    text: str
    encoding: str
    warning: str | None


def decode(data: bytes, declared: Sequence[str | None], language: str | None = None) -> Decoded:
    """Decode a document as browsers do, never failing.

    A byte-order mark wins. Then each declared charset (e.g. the HTTP header's, then
    the document's own) is tried strictly, then UTF-8. When none fits the bytes, a
    document that is mostly valid UTF-8 is read as UTF-8 with its stray bytes replaced
    (so one Latin-1 byte does not turn all its Chinese into mojibake); any other is
    read in the encoding charset-normalizer detects.

    Args:
        data: The document's bytes.
        declared: Charset labels in order of precedence; None and unknown labels are
            skipped.
        language: The document's language if known (e.g. "zh-CN"): it decides between
            encodings that fit the bytes equally well, as GBK and EUC-KR do for a short
            Chinese title.

    Returns:
        The text, the encoding used, and a warning when no declared charset fitted
        (or a label was unknown), else None.
    """
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            body = data[len(bom) :]
            try:
                return Decoded(body.decode(encoding), encoding, None)
            except UnicodeDecodeError as e:
                warning = (
                    f"not {encoding} despite its byte-order mark ({e.reason} at byte "
                    f"{e.start}): undecodable bytes replaced"
                )
                return Decoded(body.decode(encoding, errors="replace"), encoding, warning)
    problems: list[str] = []
    candidates: list[str] = []
    for label in declared:
        if not label or not label.strip():
            continue
        try:
            name = codecs.lookup(label.strip()).name
        except LookupError:
            problems.append(f"unknown charset {label.strip()!r}")
            continue
        if name.startswith(("utf-16", "utf-32")) and b"\x00" not in data[:4]:
            continue  # a label left from a UTF-16 original: browsers read such bytes as UTF-8
        if name not in candidates:
            candidates.append(name)
    for name in candidates if "utf-8" in candidates else [*candidates, "utf-8"]:
        try:
            text = data.decode(_SUPERSETS.get(name, name))
        except UnicodeDecodeError:
            if name in candidates:
                problems.append(f"the bytes are not {name}")
            continue
        return Decoded(text, name, _charset_warning(problems, name) if problems else None)
    problems = problems or ["the bytes are not utf-8"]
    text = data.decode("utf-8", errors="replace")
    replaced = text.count("\ufffd") - data.count(b"\xef\xbf\xbd")
    valid = len(text) - len(text.encode("ascii", "ignore")) - text.count("\ufffd")
    best = None if valid >= _MOSTLY_UTF8 * replaced else _detect(data, language)
    if best is None:
        how = f"utf-8, {counted(replaced, 'undecodable byte sequence')} replaced"
        return Decoded(text, "utf-8", _charset_warning(problems, how))
    how = f"{best.encoding} (detected)"
    return Decoded(str(best), best.encoding, _charset_warning(problems, how))


_DETECTED_LANGUAGES = {"zh": "Chinese", "ja": "Japanese", "ko": "Korean"}
# Between encodings that fit a short text equally well (cp1250 and cp1252 for "Café", GBK
# and EUC-KR for a Chinese title), the one more of the web and of our feeds is written in.
_COMMON = ("utf_8", "cp1252", "gb18030", "big5", "cp932", "shift_jis", "cp949", "euc_kr")


def _detect(data: bytes, language: str | None) -> charset_normalizer.CharsetMatch | None:
    """charset-normalizer's best match; among equally good ones, one in `language`."""
    matches = list(charset_normalizer.from_bytes(data))
    if not matches:
        return None
    wanted = _DETECTED_LANGUAGES.get(base_language(language or ""))
    ties = [m for m in matches if m.chaos <= matches[0].chaos + 0.01]
    return min(
        ties,
        key=lambda m: (
            m.language != wanted if wanted else False,
            _COMMON.index(m.encoding) if m.encoding in _COMMON else len(_COMMON),
        ),
    )


def _charset_warning(problems: list[str], how: str) -> str:
    return f"wrong charset ({'; '.join(problems)}): read as {how}"


def http_charset(content_type: str | None) -> str | None:
    for param in (content_type or "").split(";")[1:]:
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset":
            return value.strip().strip("\"'") or None
    return None
