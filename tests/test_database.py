"""The store's two kinds of transaction, on both engines: what a read may see; and how
PostgreSQL connections that died in the pool are found."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from psycopg import pq

from banking import Onboard
from payout131.ledger import accounts, book
from payout131.runtime import Runtime
from payout131.storage import database
from payout131.storage import schema as t
from payout131.storage.database import Database


def test_a_read_sees_one_snapshot_whatever_commits_meanwhile(
    bank: Runtime, onboard: Onboard
) -> None:
    """A read of several statements (the console's pages, the CLI's reports) sees one
    snapshot: a commit landing between two must not show in the second (PostgreSQL's READ
    COMMITTED would)."""
    onboard("acme", wallet=5_000)
    counted = sa.select(sa.func.count()).select_from(t.ledger_accounts)
    with bank.db.read() as conn:
        before = conn.execute(counted).scalar_one()
        wallet = accounts.account_id(conn, "wallet:acme")
        assert wallet is not None
        with bank.db.write() as other:  # another connection commits meanwhile
            accounts.open_account(other, "later", "system", None, 0)
            book.topup(other, wallet, 1_000, 0)
        assert conn.execute(counted).scalar_one() == before
        assert accounts.balance(conn, wallet).balance == 5_000
    with bank.db.read() as conn:
        assert conn.execute(counted).scalar_one() == before + 1
        assert accounts.balance(conn, wallet).balance == 6_000


def test_a_status_read_is_one_statement_outside_a_transaction(
    bank: Runtime, onboard: Onboard, tmp_path: Path
) -> None:
    """``session/status`` reads its session, payout and refund in one statement, which is a
    snapshot by itself: on PostgreSQL it travels alone, no ``BEGIN``, no ``COMMIT``
    (``handlers.ONE_STATEMENT``); what libpq sends is traced."""
    if bank.db.is_sqlite:
        pytest.skip("SQLite's transactions are calls in the process: no round trips to save")
    partner = onboard(account=50_000)
    sid = partner.ok("session/init/payout/rko", partner.rko_body(10_000))["session"]["id"]
    partner.ok("session/status", {"session_id": sid})  # the project is in its cache now
    path = tmp_path / "libpq.trace"
    with path.open("w") as trace:

        def traced(driver: Any, record: Any, proxy: Any) -> None:
            driver.pgconn.trace(trace.fileno())
            driver.pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS)

        def untraced(driver: Any, record: Any) -> None:
            driver.pgconn.untrace()

        sa.event.listen(bank.db.engine, "checkout", traced)
        sa.event.listen(bank.db.engine, "checkin", untraced)
        try:
            read = partner.ok("session/status", {"session_id": sid})
        finally:
            sa.event.remove(bank.db.engine, "checkout", traced)
            sa.event.remove(bank.db.engine, "checkin", untraced)
    assert read["session"]["id"] == sid
    sent = [line.split("\t") for line in path.read_text().splitlines() if line.startswith("F\t")]
    kinds = [fields[2] for fields in sent]
    assert kinds.count("Bind") == 1, kinds  # one statement
    assert "Query" not in kinds, sent  # psycopg's BEGIN and COMMIT are simple queries


def _backend(db: Database) -> int:
    with db.read() as conn:
        return int(conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one())


def _terminate(url: str, pid: int) -> None:
    other = Database(url, pool_size=1)
    try:
        with other.write() as conn:
            conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    finally:
        other.dispose()


@pytest.fixture
def postgresql_url(database_url: str) -> str:
    if database_url.startswith("sqlite"):
        pytest.skip("SQLite has no server connection to lose")
    return database_url


def test_a_pooled_connection_that_sat_idle_is_pinged_and_replaced_if_dead(
    postgresql_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = Database(postgresql_url, pool_size=1)
    try:
        first = _backend(db)
        _terminate(postgresql_url, first)
        monkeypatch.setattr(database, "PING_IDLE_S", 0.0)  # every connection has sat idle
        assert _backend(db) != first  # pinged at checkout, found dead, replaced: no error
    finally:
        db.dispose()


def test_a_connection_back_a_moment_ago_is_not_pinged_and_a_failure_renews_the_pool(
    postgresql_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No round trip before each transaction: a connection that died the moment after it
    came back fails its first statement, and the pool then connects afresh."""
    db = Database(postgresql_url, pool_size=1)
    try:
        first = _backend(db)
        _terminate(postgresql_url, first)
        monkeypatch.setattr(database, "PING_IDLE_S", 3600.0)
        with pytest.raises(sa.exc.DisconnectionError) as failed:  # storage.outages.check
            _backend(db)
        cause = failed.value.__cause__
        assert isinstance(cause, sa.exc.OperationalError)
        assert cause.connection_invalidated
        assert _backend(db) != first
    finally:
        db.dispose()
