"""A throw-away PostgreSQL server for the tests: Debian's binaries, its own data folder,
a free 127.0.0.1 port; one per test process (pytest-xdist worker), a database per test.

PostgreSQL refuses to run as root, so as root (CI, these machines) `initdb` and the server
run as the `postgres` system user, in a folder it owns. Missing binaries fail the tests that
need a server (CI installs Debian's `postgresql`): they are never skipped.
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import psycopg

#: Where Debian's `postgresql` package puts the server binaries (one folder per version).
BIN_GLOB = "/usr/lib/postgresql/*/bin"
#: The superuser the tests connect as (trust, over 127.0.0.1 only).
SUPERUSER = "postgres"
#: A role that must give a password (scram-sha-256): the `password_env` tests.
PASSWORD_USER = "aggregator_pw"
PASSWORD = "s3cret-for-tests"
_MISSING = (
    "PostgreSQL's server binaries (initdb, pg_ctl) were not found under {glob}: install "
    "Debian's package (`apt-get install postgresql`, which .ci/run does) to run the "
    "PostgreSQL tests"
)


def find_bin() -> Path:
    """The newest installed PostgreSQL's bin folder.

    Raises:
        RuntimeError: no server binaries are installed (the message says what to install).
    """
    found = [
        Path(p)
        for p in glob.glob(BIN_GLOB)
        if (Path(p) / "initdb").exists() and (Path(p) / "pg_ctl").exists()
    ]
    if not found:
        raise RuntimeError(_MISSING.format(glob=BIN_GLOB))
    return max(found, key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class PgServer:
    """One running server; `database()` makes a new empty database and returns its URL."""

    def __init__(self, *, durable: bool = False) -> None:
        """Start a server; `durable`: with PostgreSQL's default fsync and synchronous commit
        (a benchmark's), not without (the tests')."""
        self.bin = find_bin()
        self._durable = durable
        self._as_postgres = os.geteuid() == 0
        self.folder = Path(tempfile.mkdtemp(prefix="aggregator-pg-"))
        self.data = self.folder / "data"
        self.log = self.folder / "server.log"
        self._names = itertools.count(1)
        if self._as_postgres:
            user = pwd.getpwnam("postgres")
            os.chown(self.folder, user.pw_uid, user.pw_gid)
        self.port = 0
        try:
            self._run(
                "initdb",
                "-D",
                str(self.data),
                "-U",
                SUPERUSER,
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
                "--auth-local=trust",
                "--auth-host=trust",
            )
            # Trust for the superuser; a password for the role the `password_env` tests use.
            (self.data / "pg_hba.conf").write_text(
                f"local all {SUPERUSER} trust\n"
                f"host all {SUPERUSER} 127.0.0.1/32 trust\n"
                "host all all 127.0.0.1/32 scram-sha-256\n",
                encoding="utf-8",
            )
            self._start()
            self.sql(f"CREATE ROLE {PASSWORD_USER} LOGIN CREATEDB PASSWORD '{PASSWORD}'")
        except BaseException:
            self.stop()
            raise

    def _run(self, program: str, *args: str) -> str:
        command = [str(self.bin / program), *args]
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=120, cwd=self.folder, check=False
        )
        if done.returncode != 0:
            log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise RuntimeError(
                f"{program} failed ({done.returncode}): {done.stderr.strip()}\n{log}".strip()
            )
        return done.stdout

    def _start(self) -> None:
        """Start on a free port (another process may take the port first: try again)."""
        for attempt in range(5):
            self.port = _free_port()
            try:
                self._run(
                    "pg_ctl",
                    "start",
                    "-w",
                    "-t",
                    "60",
                    "-D",
                    str(self.data),
                    "-l",
                    str(self.log),
                    "-o",
                    f"-p {self.port} -c listen_addresses=127.0.0.1 "
                    f"-c unix_socket_directories={self.folder} -c max_connections=200"
                    # Durability is the server's own business, not what the tests prove
                    # (they kill clients, never the server): no fsync, much faster.
                    + (
                        ""
                        if self._durable
                        else " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
                    ),
                )
                return
            except RuntimeError:
                if attempt == 4:
                    raise

    def url(self, database: str = "postgres", user: str = SUPERUSER) -> str:
        return f"postgresql://{user}@127.0.0.1:{self.port}/{database}"

    def sql(self, statement: str, database: str = "postgres") -> list[tuple[Any, ...]]:
        """Run one statement as the superuser, outside a transaction; its rows."""
        with psycopg.connect(self.url(database), autocommit=True) as db:
            cursor = db.execute(statement.encode())
            return cursor.fetchall() if cursor.description else []

    def database(self, owner: str = SUPERUSER) -> str:
        """A new, empty database (its name unique in this server); its URL."""
        name = f"test_{os.getpid()}_{next(self._names)}"
        # A language's collation (ICU's en-US), as most servers' databases have, not byte
        # order: storage must order text as SQLite does whatever the database's locale.
        self.sql(
            f"CREATE DATABASE {name} OWNER {owner} TEMPLATE template0 STRATEGY FILE_COPY "
            "LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C'"
        )
        return self.url(name, owner)

    def stop(self) -> None:
        """Stop the server at once and remove its folder."""
        if (self.data / "postmaster.pid").exists():
            try:
                self._run("pg_ctl", "stop", "-D", str(self.data), "-m", "immediate", "-w")
            except (RuntimeError, subprocess.TimeoutExpired):
                pass
        shutil.rmtree(self.folder, ignore_errors=True)
