"""Regression tests for what the reliability harnesses found (docs/reliability.md, "Findings").

Each test reproduces one finding in miniature, on the engines where it can happen.
"""

from __future__ import annotations

import time

import anyio
import httpx
import pytest
import sqlalchemy as sa
from psycopg import sql

from banking import Onboard
from partner import payout_body
from payout131.bank import Bank
from payout131.storage import schema as t
from pgcluster import PgCluster


def _database_name(bank: Bank) -> str:
    name = bank.db.engine.url.database
    assert name is not None
    return name


def _payout_status(bank: Bank, session_id: str) -> str:
    n = int(session_id.removeprefix("ps_"))
    with bank.db.read() as conn:
        return str(
            conn.execute(sa.select(t.payouts.c.status).where(t.payouts.c.session_n == n)).scalar()
        )


def test_the_worker_outlives_a_database_outage(
    bank: Bank, onboard: Onboard, request: pytest.FixtureRequest
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
