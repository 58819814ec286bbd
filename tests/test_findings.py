"""Regression tests for what the reliability harnesses found (docs/reliability.md, "Findings").

Each test reproduces one finding in miniature, on the engines where it can happen.
"""

from __future__ import annotations

import time
from typing import Any

import anyio
import httpx
import pytest
import sqlalchemy as sa
from psycopg import sql

from banking import Onboard
from partner import payout_body
from payout131.errors import InvalidRequest
from payout131.protocol.validation import check_full_name
from payout131.runtime import Runtime
from payout131.storage import schema as t
from pgcluster import PgCluster


def _database_name(bank: Runtime) -> str:
    name = bank.db.engine.url.database
    assert name is not None
    return name


def _payout_status(bank: Runtime, session_id: str) -> str:
    n = int(session_id.removeprefix("ps_"))
    with bank.db.read() as conn:
        return str(
            conn.execute(sa.select(t.payouts.c.status).where(t.payouts.c.session_n == n)).scalar()
        )


def test_the_worker_outlives_a_database_outage(
    bank: Runtime, onboard: Onboard, request: pytest.FixtureRequest
) -> None:
    """Finding 1: a PostgreSQL restart killed the worker loop for good (and with it the
    server's webhook dispatcher); the API kept taking payouts that were never processed."""
    if bank.db.is_sqlite:
        pytest.skip("a database outage is a PostgreSQL event; SQLite is a file in the process")
    cluster: PgCluster = request.getfixturevalue("pg_cluster")
    name = sql.Identifier(_database_name(bank))
    partner = onboard(wallet=100_000)

    def outage(allowed: bool) -> None:
        cluster.admin_execute(
            sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS {}").format(
                name, sql.SQL("true" if allowed else "false")
            )
        )
        if not allowed:  # cut every open connection, as a restart does
            cluster.admin_execute(
                sql.SQL(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = {} AND pid <> pg_backend_pid()"
                ).format(sql.Literal(_database_name(bank)))
            )

    async def scenario() -> str:
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(bank.worker.run)
            await anyio.to_thread.run_sync(outage, False)
            await anyio.sleep(1.0)  # several polls fail while the database refuses us
            await anyio.to_thread.run_sync(outage, True)
            session = await anyio.to_thread.run_sync(
                lambda: partner.ok("session/init/payout", payout_body(1_000))["session"]["id"]
            )
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                status = await anyio.to_thread.run_sync(_payout_status, bank, session)
                if status == "pending":
                    break
                bank.worker.wakeup.set()
                await anyio.sleep(0.1)
            tasks.cancel_scope.cancel()
        return status

    assert anyio.run(scenario) == "pending"  # the worker checked the payout after the outage


@pytest.mark.parametrize(
    ("verb", "path", "allowed"),
    [
        ("GET", "/api/v1/session/status", "POST"),
        ("PUT", "/api/v2/session/create", "POST"),
        ("POST", "/health", "GET"),
        ("DELETE", "/openapi.json", "GET"),
    ],
)
def test_a_wrong_verb_names_the_right_one(
    http: httpx.Client, verb: str, path: str, allowed: str
) -> None:
    """Finding 2: a 405 had no Allow header (RFC 9110 requires one), and every 405 said
    "use POST", also to a POST on a GET-only route."""
    response = http.request(verb, path)
    assert response.status_code == 405
    assert allowed in response.headers["allow"].split(", ")
    assert response.json()["error"]["description"].endswith(f"use {response.headers['allow']}")


def _with_nul(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[tuple[Any, ...], Any]]:
    """Every variant of ``value`` with one of its strings given a NUL character."""
    if isinstance(value, str):
        return [(path, value[:3] + "\x00" + value[3:])]
    if isinstance(value, dict):
        found = []
        for key, inner in value.items():
            for where, changed in _with_nul(inner, (*path, key)):
                found.append((where, changed))
        return found
    return []


def _put(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    return new if not path else {**value, path[0]: _put(value[path[0]], path[1:], new)}


def test_a_nul_in_any_string_is_refused_not_a_server_error(bank: Runtime, onboard: Onboard) -> None:
    """Finding 3 (schemathesis, PostgreSQL): a NUL character in ``account_number`` reached
    a query, and PostgreSQL refuses NUL in text: a 500. Now every string of every kind of
    request may carry one and the answer is a 4xx, on both engines."""
    partner = onboard(wallet=100_000, account=100_000)
    assert partner.account is not None
    created = partner.ok("session/create", {})["session"]["id"]
    bodies = {
        "report/account_balance": {"account_number": partner.account},
        "session/init/payout/rko": partner.rko_body(1_000),
        "session/start/payout": {"session_id": created, **payout_body(1_000)},
        "session/status": {"session_id": created},
        "wallet/balance": {"request_datetime": "2026-01-01T00:00:00Z"},
        "tokenize": {
            "type": "bank_account_ru",
            "bank_account_ru": {"bik": "044525974", "account": "40817810400003869535"},
        },
        "token/info": {"type": "bank_account_ru", "bank_account_ru": {"token": "ab" * 32}},
    }
    for method, body in bodies.items():
        for path, changed in _with_nul(body):
            response = partner.post(method, _put(body, path, changed))
            assert response.status_code in (400, 404), (method, path, response.text)


@pytest.mark.parametrize(
    "name", ["Иванов\x00Иван", "Ivan\tIvanov", "Иван\nИванов", "Ivan\u200bIvanov"]
)
def test_a_recipients_name_has_no_control_characters(name: str) -> None:
    """Finding 4 (the NUL test above): a recipient's full name could hold NUL, tabs, line
    breaks and invisible format characters, which no payment order can carry."""
    with pytest.raises(InvalidRequest, match="is not allowed"):
        check_full_name("full_name", name)


@pytest.mark.parametrize("name", ['ООО "Вектор"', "ИП Петров П. П.", "O'Brien-Smith Ánne"])
def test_ordinary_names_still_pass(name: str) -> None:
    assert check_full_name("full_name", f"  {name} ") == name


def test_an_unexpected_failure_is_answered_and_logged_once(
    bank: Runtime, onboard: Onboard, caplog: pytest.LogCaptureFixture
) -> None:
    """A partner call that fails for a reason of ours (here a table gone from the store) gets
    the error envelope; its traceback is logged once, by the server, not a second time by
    the ASGI server as an exception that escaped the app."""
    partner = onboard("acme", wallet=10_000)
    session = partner.ok("session/init/payout", payout_body(1_000))["session"]
    with bank.db.write() as conn:
        conn.execute(sa.text("DROP TABLE refunds"))
    caplog.clear()
    with caplog.at_level("ERROR"):
        answer = partner.post("session/status", {"session_id": session["id"]})
        time.sleep(0.2)  # the ASGI server logs after the answer is sent
    assert answer.status_code == 500
    assert answer.json()["error"]["code"] == "internal_error"
    tracebacks = [r for r in caplog.records if r.exc_info]
    assert [r.name for r in tracebacks] == ["payout131.server"], [
        (r.name, r.getMessage()) for r in tracebacks
    ]
