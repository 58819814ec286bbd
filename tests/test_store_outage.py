"""The store out of reach (a failover, a restart): a clear 503 the partner can act on, one
log line instead of a traceback, and the server back on its own once the database is."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import exc as sa_exc

from payout131.client import signing
from payout131.storage.outages import unavailable
from payout131.tools.chaos.processes import PostgresCluster
from served import serve


def _call(url: str, key: rsa.RSAPrivateKey, idempotency_key: str | None) -> httpx.Response:
    raw = json.dumps({"metadata": {"try": idempotency_key}}).encode()
    headers = {
        "Content-Type": "application/json",
        "X-PARTNER-PROJECT": "outage",
        "X-PARTNER-SIGN": signing.sign(key, raw),
    }
    if idempotency_key is not None:
        headers["X-PARTNER-IDEMPOTENCY-KEY"] = idempotency_key
    return httpx.post(f"{url}/api/v1/session/create", content=raw, headers=headers, timeout=30)


@pytest.mark.timeout(180)
def test_a_call_while_the_database_is_down_is_answered_503(tmp_path: Path) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with PostgresCluster() as cluster, serve(tmp_path, cluster.url()) as served:
        served.register("outage", key)
        assert _call(served.url, key, "before").status_code == 200
        cluster.crash()
        try:
            answer = _call(served.url, key, "during")
            keyless = _call(served.url, key, None)
        finally:
            cluster.start()
        assert answer.status_code == 503
        assert answer.headers["retry-after"] == "1"
        error = answer.json()["error"]
        assert error["code"] == "internal_error"
        assert "database is unavailable" in error["description"]
        assert "same X-PARTNER-IDEMPOTENCY-KEY" in error["description"]
        # without a key, sending it again could do it twice: the answer says to check first
        assert keyless.status_code == 503
        assert "before sending it again" in keyless.json()["error"]["description"]
        deadline = time.monotonic() + 30  # back on its own: the same call, the same key
        while (again := _call(served.url, key, "during")).status_code != 200:
            assert time.monotonic() < deadline, again.text
            time.sleep(0.2)
        log = served.log.read_text(encoding="utf-8")
    assert "/api/v1/session/create: the database is unavailable" in log
    assert "Traceback" not in log


def _refused_connection() -> psycopg.OperationalError:
    try:
        psycopg.connect("host=127.0.0.1 port=1 connect_timeout=2")
    except psycopg.OperationalError as refused:
        return refused
    raise AssertionError("something listens on port 1")


def _psycopg(sqlstate: str) -> psycopg.Error:
    error: Any = psycopg.errors.lookup(sqlstate)
    return error("")  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (_refused_connection(), True),  # libpq could not connect
        # the same kind of error raised on a connection in use says nothing by itself:
        # storage.outages.check looks at the connection (tests/test_group_commit.py)
        (psycopg.OperationalError("another command is already in progress"), False),
        (psycopg.InterfaceError("the cursor is closed"), False),  # a misuse, not an outage
        (_psycopg("08006"), True),  # connection failure
        (_psycopg("08P01"), False),  # a protocol violation: a bug of ours
        (_psycopg("53300"), True),  # too many connections: everyone reconnecting at once
        (_psycopg("57P01"), True),  # admin shutdown (a switchover's fast stop)
        (_psycopg("57P03"), True),  # cannot connect now (starting up)
        (_psycopg("25006"), True),  # read-only transaction: an old primary, now a replica
        (sa_exc.TimeoutError("the pool found no connection"), True),
        (_psycopg("40P01"), False),  # a deadlock is about the call
        (_psycopg("57014"), False),  # a cancelled statement
        (_psycopg("23505"), False),  # a unique violation
        (sqlite3.OperationalError("database is locked"), False),
        (ValueError("not the database"), False),
    ],
)
def test_what_counts_as_the_store_being_out_of_reach(error: BaseException, expected: bool) -> None:
    assert unavailable(error) is expected
    if isinstance(error, psycopg.Error | sqlite3.Error):  # as SQLAlchemy raises it
        assert unavailable(sa_exc.OperationalError("SELECT 1", None, error)) is expected
