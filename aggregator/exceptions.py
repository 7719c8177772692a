"""The project's one error tree; callers see only these, the CLI turns them into words.

AggregatorError
 ├── ConfigError(path, key, line)   bad feeds.toml or CLI input      exit 2
 ├── FetchError(url)                network, HTTP status, limits
 │    └── FeedGoneError(url)        410 Gone: the feed is disabled
 ├── ParseError(url)                bytes that are not a usable feed/article
 │    └── HtmlPageError(url)        an HTML page instead of a feed (with the feeds it links to)
 ├── StorageError(path)             the database cannot be read or written (a full disk,
 │    │                             an I/O error)                    exit 1
 │    ├── CorruptDatabaseError      the file is damaged ("malformed"): recover it (docs/storage.md)
 │    ├── DatabasePathError         [storage] path is no usable database (not SQLite, its
 │    │                             folder cannot be created, `run` cannot make its lock
 │    │                             file there)                      exit 2
 │    ├── SchemaVersionError        database newer than this code    exit 2
 │    └── DaemonRunningError        another `aggregator run` holds the database  exit 2
 ├── SendError                      email could not be sent
 │    └── SmtpFailure(permanent)    (digest/email.py) the SMTP server refused or was unreachable
 └── AlertError(retryable)          an alert not delivered on one channel (notify/)
"""

from __future__ import annotations


class AggregatorError(Exception):
    """Base of every error this package raises on purpose."""

    exit_code = 1


class ConfigError(AggregatorError):
    """feeds.toml (or a CLI argument standing for it) is wrong.

    Carries the file, the key and the line when known, so the message says where.
    """

    exit_code = 2

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        key: str | None = None,
        line: int | None = None,
    ) -> None:
        self.message = message
        self.path = path
        self.key = key
        self.line = line
        super().__init__(str(self))

    def __str__(self) -> str:
        where = self.path or ""
        if self.line is not None:
            where += f":{self.line}"
        if self.key:
            where += f" [{self.key}]" if where else f"[{self.key}]"
        return f"{where}: {self.message}" if where else self.message


class FetchError(AggregatorError):
    """A feed could not be fetched (network error, HTTP error status, a limit)."""

    def __init__(
        self,
        url: str,
        message: str,
        *,
        status: int | None = None,
        retry_after: str | None = None,
    ) -> None:
        self.url = url
        self.message = message
        self.status = status
        self.retry_after = retry_after  # the raw Retry-After header of a 429/503
        #: How long the failed fetch took (not counting its wait for a slot), if it began.
        self.seconds: float | None = None
        super().__init__(f"{url}: {message}")


class FeedGoneError(FetchError):
    """The server says the feed is gone for good (HTTP 410)."""


class ParseError(AggregatorError):
    """Bytes from a source could not be read as a feed or an article."""

    def __init__(self, url: str, message: str) -> None:
        self.url = url
        self.message = message
        super().__init__(f"{url}: {message}")


class HtmlPageError(ParseError):
    """The URL serves an HTML page, not a feed; `feed_links` are the feeds the page names."""

    def __init__(self, url: str, message: str, feed_links: tuple[str, ...] = ()) -> None:
        self.feed_links = feed_links
        super().__init__(url, message)


class StorageError(AggregatorError):
    """The database cannot be read or written: an operational failure (exit 1)."""

    def __init__(self, message: str, *, path: str | None = None) -> None:
        self.path = path
        self.message = message
        super().__init__(f"{path}: {message}" if path else message)


class CorruptDatabaseError(StorageError):
    """The database file is damaged (SQLite: "database disk image is malformed")."""


class DatabasePathError(StorageError):
    """The configured [storage] path is not a usable database, or `run` cannot make its
    lock file beside it: a configuration error."""

    exit_code = 2


class SchemaVersionError(StorageError):
    """The database was written by a newer version of aggregator."""

    exit_code = 2


class DaemonRunningError(StorageError):
    """Another `aggregator run` already holds this database's lock."""

    exit_code = 2


class SendError(AggregatorError):
    """A digest could not be sent by email."""


class AlertError(AggregatorError):
    """An alert could not be delivered on one channel.

    `retryable`: the receiver may take it later (a 5xx, a network error, a timeout), so
    it is tried again with backoff; otherwise it was refused for good (a 4xx, a bad address).
    """

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable
