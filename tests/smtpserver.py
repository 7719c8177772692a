"""A real SMTP server on 127.0.0.1 (aiosmtpd) that keeps what it receives or answers with
scripted errors: the `smtp` fixture of conftest.py, for the digest's and the alerts' email."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


class Inbox:
    """An aiosmtpd handler that keeps what it receives, or answers with a scripted error."""

    def __init__(self) -> None:
        self.received: list[tuple[list[str], bytes]] = []
        self.replies: list[str] = []  # errors to answer the next DATA commands with, in order
        self.logins: list[tuple[str, str]] = []
        #: How QUIT is answered: None "221 Bye"; "drop" closes the connection unanswered;
        #: otherwise this reply (the message was taken already: DATA's 250 came first).
        self.quit_reply: str | None = None

    async def handle_QUIT(self, server: Any, session: Any, envelope: Any) -> Any:
        if self.quit_reply == "drop":
            server.transport.abort()  # a reset, not even a goodbye
            return "221 Bye"  # pushed to a closed transport: never sent
        return self.quit_reply or "221 Bye"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.replies:
            return self.replies.pop(0)
        self.received.append((list(envelope.rcpt_tos), bytes(envelope.original_content)))
        return "250 OK"

    def messages(self) -> list[EmailMessage]:
        return [message_from_bytes(raw, policy=policy.default) for _, raw in self.received]  # type: ignore[misc]


class Server:
    def __init__(self, inbox: Inbox, port: int) -> None:
        self.inbox = inbox
        self.port = port


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def smtp_server() -> Iterator[Server]:
    """An SMTP server on a free port; it accepts the login (any user) with password s3cret."""
    inbox = Inbox()

    def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
        if isinstance(data, LoginPassword):
            login, password = (
                v.decode() if isinstance(v, bytes) else str(v) for v in (data.login, data.password)
            )
            inbox.logins.append((login, password))
            # handled=False: aiosmtpd then answers 535 itself on failure.
            return AuthResult(success=password == "s3cret", handled=False)
        return AuthResult(success=False, handled=False)

    # A free port may be taken by another test process before the server binds it (the
    # suite runs on every core): then take another.
    for attempt in range(5):
        port = free_port()
        controller = Controller(
            inbox,
            hostname="127.0.0.1",
            port=port,
            authenticator=authenticate,
            auth_require_tls=False,
        )
        try:
            controller.start()
            break
        except OSError:  # the port was taken meanwhile
            if attempt == 4:
                raise
    try:
        yield Server(inbox, port)
    finally:
        controller.stop()
