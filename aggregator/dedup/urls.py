"""Canonical URLs: one spelling for every way a portal links the same page.

Rule (applied in this order):

1. Only absolute http(s) URLs with a host are canonicalised; anything else gives None
   (a ``file:`` guid or a bare hash says nothing about which page it is).
2. Scheme and host are lower-cased, a trailing dot on the host and a default port
   (80 or 443) are dropped, and ``http`` becomes ``https``: portals serve
   both and link either.
3. The fragment is dropped: it points inside the page.
4. Tracking parameters are dropped: any name starting with ``utm_``, and the names in
   `TRACKING_PARAMS` plus those configured (``[dedup] tracking_params``), compared
   case-insensitively. The other parameters keep their values and are sorted, so their
   order does not matter.
5. Percent-escapes are normalised (``%7e`` and ``~`` are one spelling), empty path
   segments are collapsed and a trailing slash is dropped (``/a/`` is ``/a``; the root
   path is the empty path).
6. The mobile, AMP and ``www`` spellings of a site are the site: a leading ``www.``,
   ``m.``, ``mobile.`` or ``amp.`` label is dropped from a host that keeps two labels
   (``m.example.com`` is ``example.com``), and so are an AMP page's marks (lower case):
   last path segments ``amp`` (WordPress: ``/my-post/amp/``), ``.amp`` before the
   extension or at the end (``a.amp.html`` is ``a.html``, ``a.amp`` is ``a``), unless no
   page name would remain, and the parameters ``amp`` and ``outputType=amp``. Portals
   link their AMP or mobile page in one feed and the desktop page in another.

Canonical URLs are for comparison only: the link shown is the feed's.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

#: Query parameters that only say who shared a link or which campaign it came from.
TRACKING_PARAMS: frozenset[str] = frozenset(
    {
        "spm",
        "from",
        "share",
        "share_token",
        "share_source",
        "fbclid",
        "gclid",
        "dclid",
        "msclkid",
        "yclid",
        "igshid",
        "mc_cid",
        "mc_eid",
        "_ga",
        "ref",
        "ref_src",
        "ref_url",
        "src",
        "scene",
        "sharer_shareinfo",
        "sharer_shareinfo_first",
        "wfr",
        "isappinstalled",
        "cmpid",
        "ocid",
        "smid",
    }
)
TRACKING_PREFIXES: tuple[str, ...] = ("utm_",)

#: Leading host labels that name a site's mobile, AMP or www spelling, not another site.
SITE_PREFIXES: tuple[str, ...] = ("www.", "m.", "mobile.", "amp.")
#: An AMP page's marks at the end of its path: "/amp" segments, or ".amp" before the
#: extension or at the end (bbc.co.uk/news/world-123.amp). Lower case only: "/wiki/AMP".
_AMP_PATH = re.compile(r"(?:/amp|\.amp)+(?=\.[a-z0-9]+$|$)")
_DEFAULT_PORTS = {"http": 80, "https": 443}
_SLASHES = re.compile(r"/{2,}")
# Characters a path or query may carry unescaped; everything else is percent-encoded.
_PATH_SAFE = "/:@!$&'()*+,;=-._~"
# The common link (an http(s) host and a path of unreserved characters: no query, fragment,
# port, user, percent-escape or upper-case host) is already canonical but for its scheme and
# slashes. Spelling it out spares urlsplit/quote/urlunsplit (~20 µs a link);
# tests/test_dedup.py checks that both ways agree.
_SIMPLE = re.compile(r"https?://([a-z0-9][a-z0-9.-]*)(/[A-Za-z0-9._~/-]*)?")


def canonical_url(url: str | None, tracking: Iterable[str] = ()) -> str | None:
    """The canonical spelling of `url`, or None when it is not an http(s) URL.

    Args:
        url: A link or guid as a feed gave it.
        tracking: Query parameter names to drop besides `TRACKING_PARAMS` and ``utm_*``.

    Returns:
        The canonical URL (see the module docstring for the rule), or None.
    """
    if not url or ":" not in url:  # no scheme (a bare guid): urlsplit would find none
        return None
    simple = _SIMPLE.fullmatch(url.strip())
    if simple:
        host, path = simple.groups()
        return "https://" + _site(host.rstrip(".")) + _page(_SLASHES.sub("/", path or ""))
    return _canonical_url(url, tracking)


def _site(host: str) -> str:
    """The host without its leading mobile/AMP/www labels (as long as two labels remain)."""
    stripped = True
    while stripped:
        stripped = False
        for prefix in SITE_PREFIXES:
            if host.startswith(prefix) and host.count(".") >= 2:
                host, stripped = host[len(prefix) :], True
    return host


def _page(path: str) -> str:
    """The path without its trailing slash and an AMP page's marks (to the end: applied
    again it changes nothing), unless nothing of a page's name would remain ("/amp" is a
    front page, "/.amp" no page)."""
    path = path.rstrip("/")
    if "amp" not in path:
        return path
    page = path
    while (shorter := _AMP_PATH.sub("", page).rstrip("/")) != page:
        page = shorter
    return page if page and not page.rpartition("/")[2].startswith(".") else path


def article_url(url: str | None, tracking: Iterable[str] = ()) -> str | None:
    """`canonical_url`, or None also for a site's front page (no path): it is no article."""
    canonical = canonical_url(url, tracking)
    if canonical is None:
        return None
    # A canonical URL has no fragment and its host no "/" or "?": it has a path when a "/"
    # comes after the host, before any query (urlsplit's answer, without its cost).
    after_host = canonical.partition("://")[2].partition("?")[0]
    return canonical if "/" in after_host else None


def _canonical_url(url: str, tracking: Iterable[str]) -> str | None:
    """`canonical_url` by the general rule, for any URL."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").rstrip(".")
    if scheme not in _DEFAULT_PORTS or not host:
        return None
    # Both schemes become https, so either default port is no port.
    host = f"[{host}]" if ":" in host else _site(host)  # an IPv6 address keeps its brackets
    netloc = host if port in (None, *_DEFAULT_PORTS.values()) else f"{host}:{port}"
    path = _page(_SLASHES.sub("/", quote(unquote(parts.path), safe=_PATH_SAFE)))
    drop = TRACKING_PARAMS | {t.lower() for t in tracking}
    query = sorted(
        (name, value)
        for name, value in parse_qsl(parts.query, keep_blank_values=True)
        if name.lower() not in drop
        and not name.lower().startswith(TRACKING_PREFIXES)
        and not _amp_mark(name, value)
    )
    return urlunsplit(("https", netloc, path, urlencode(query, quote_via=quote), ""))


def _amp_mark(name: str, value: str) -> bool:
    """True for a query parameter that only asks for the AMP page (``amp``, ``amp=1``,
    ``outputType=amp``)."""
    name = name.lower()
    return (name == "amp" and value.lower() in ("", "1", "true")) or (
        name == "outputtype" and value.lower() == "amp"
    )
