"""Statuses are StrEnums whose values are what the database stores and the output shows."""

from __future__ import annotations

import json
import re
import sqlite3

from aggregator.storage.schema import migrate
from aggregator.types import DeliveryStatus, PollStatus, SendStatus


def test_delivery_statuses_are_those_the_schema_allows() -> None:
    db = sqlite3.connect(":memory:")
    migrate(db, ":memory:")
    (sql,) = db.execute(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'email_deliveries'"
    ).fetchone()
    allowed = re.search(r"CHECK \(status IN \(([^)]*)\)\)", sql)
    assert allowed is not None
    assert {v.strip(" '") for v in allowed.group(1).split(",")} == set(DeliveryStatus)


def test_statuses_are_stored_and_printed_as_their_plain_values() -> None:
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE t (status TEXT)")
    for status in (*PollStatus, *DeliveryStatus, *SendStatus):
        db.execute("INSERT INTO t VALUES (?)", (status,))
        assert f"{status}" == status.value and json.dumps(status) == json.dumps(status.value)
    stored = [r[0] for r in db.execute("SELECT status FROM t")]
    assert stored == ["ok", "not_modified", "error", "gone", "skipped"] + [
        "sending", "sent", "failed", "sent", "already sent", "failed"
    ]  # fmt: skip
    assert all(type(s) is str for s in stored)
