"""Who may use the server: the addresses it may listen on without a token, and a request's
credentials checked against the token (pure)."""

from __future__ import annotations

import binascii
import hmac
import ipaddress
import unicodedata
from base64 import b64decode


def is_loopback(host: str) -> bool:
    """Whether `host` is a loopback address or names one (``localhost``): listening there
    needs no token."""
    if host.casefold() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def authorised(header: bytes | None, token: str) -> bool:
    """Whether an Authorization header (its raw bytes) carries the token: ``Bearer
    <token>``, or ``Basic`` with the token as the password (any user name), a token beyond
    ASCII as its UTF-8 bytes in both. Compared in constant time."""
    if not header:
        return False
    scheme, _, value = header.strip().partition(b" ")
    value = value.strip()
    if scheme.lower() == b"bearer":
        given = value
    elif scheme.lower() == b"basic":
        try:
            decoded = b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            return False
        given = decoded.partition(b":")[2]
    else:
        return False
    return hmac.compare_digest(given, token.encode("utf-8", "surrogatepass"))


def token_problem(token: str) -> str | None:
    """Why no client could send this token (None: one can): not UTF-8 text (the
    environment held other bytes), a control character, white space at an end (a header's
    value is trimmed)."""
    try:
        token.encode("utf-8")
    except UnicodeEncodeError:
        return "is not UTF-8 text"
    if any(unicodedata.category(c) == "Cc" for c in token):
        return "holds a control character"
    if token != token.strip():
        return "begins or ends with white space"
    return None
