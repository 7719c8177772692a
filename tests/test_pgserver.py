"""The tests' own PostgreSQL server (tests/pgserver.py): a database per test, and a clear
failure, not a skip, where Debian's binaries are missing."""

from __future__ import annotations

import psycopg
import pytest

from tests import pgserver
from tests.pgserver import PASSWORD, PASSWORD_USER, PgServer


def test_each_test_gets_a_new_empty_database_on_a_loopback_port(pg_server: PgServer) -> None:
    first, second = pg_server.database(), pg_server.database()
    assert first != second and first.startswith(
        f"postgresql://postgres@127.0.0.1:{pg_server.port}/"
    )
    with psycopg.connect(first, autocommit=True) as db:
        db.execute("CREATE TABLE mine (x integer)")
    with psycopg.connect(second) as db:
        tables = db.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone()
    assert tables == (0,)


def test_the_password_role_needs_its_password(pg_server: PgServer) -> None:
    url = pg_server.database(owner=PASSWORD_USER)
    with psycopg.connect(url, password=PASSWORD) as db:
        assert db.execute("SELECT current_user").fetchone() == (PASSWORD_USER,)
    with pytest.raises(psycopg.OperationalError, match="password"):
        psycopg.connect(url, password="wrong").close()


def test_missing_binaries_fail_with_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pgserver, "BIN_GLOB", "/nonexistent/postgresql/*/bin")
    with pytest.raises(RuntimeError, match=r"apt-get install postgresql"):
        pgserver.find_bin()
