"""Who may use the server: the addresses it may listen on without a token, and a request's
credentials checked against the token (pure)."""

from __future__ import annotations

import binascii
import hmac
import ipaddress
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


def authorised(header: str | None, token: str) -> bool:
    """Whether an Authorization header carries the token: ``Bearer <token>``, or ``Basic``
    with the token as the password (any user name). Compared in constant time."""
    if not header:
        return False
    scheme, _, value = header.strip().partition(" ")
    value = value.strip()
    if scheme.casefold() == "bearer":
        given = value.encode("utf-8", "surrogatepass")
    elif scheme.casefold() == "basic":
        try:
            decoded = b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            return False
        given = decoded.partition(b":")[2]
    else:
        return False
    return hmac.compare_digest(given, token.encode("utf-8", "surrogatepass"))
