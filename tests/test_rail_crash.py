"""A real server is killed (SIGKILL) while 50 payouts are at the rail, then restarted.

Every payout must end in exactly one terminal state with exactly one ``payment_finished``,
the simulator must have received each payout once (its own ``simulator_transfers`` table
counts submissions per reference), and ``payout131 ledger check`` must pass. The operator
commands run in the test's process; the server is the real ``payout131 serve``.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric import rsa

from partner import Partner, payout_body
from payout131 import projects
from payout131.cli import main
from payout131.client import signing
from payout131.ledger import accounts, book
from payout131.ledger.accounts import wallet_code
from payout131.rails import scenarios
from payout131.storage import Database
from payout131.storage import schema as t
from served import stop

BIN = Path(sys.executable).parent / "payout131"
PAYOUTS = 50
FUNDS = 100_000_000
# Outcomes that settle within the simulator's latency: success and the five failures.
ENDINGS = [0, 1, 2, 3, 4, 5, 7, 50, 99]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for(what: str, check: object, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.01)


@contextmanager
def server(env: dict[str, str], log: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    port = free_port()
    with log.open("ab") as out:
        process = subprocess.Popen(
            [str(BIN), "serve", "--port", str(port)], env=env, stdout=out, stderr=out
        )
    try:

        def listening() -> bool:
            assert process.poll() is None, log.read_text()
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            except OSError:
                return False
            return True

        wait_for("the server to listen", listening)
        yield process, f"http://127.0.0.1:{port}"
    finally:
        stop(process, 10)


def run_cli(env: dict[str, str], *args: str) -> str:
    """An operator command, in this process (the server is the process under test)."""
    result = CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def count(db: Database, query: sa.Select[tuple[int]]) -> int:
    with db.read() as conn:
        return int(conn.execute(query).scalar_one())


@pytest.mark.slow
def test_sigkill_while_payouts_are_at_the_rail(
    tmp_path: Path, database_url: str, partner_keys: list[rsa.RSAPrivateKey]
) -> None:
    home = tmp_path / "home"
    env = {
        **os.environ,
        "PAYOUT131_HOME": str(home),
        "PAYOUT131_DATABASE_URL": database_url,
        "PAYOUT131_RAIL": "simulator",
        "PAYOUT131_SIM_LATENCY_MS": "3000",
        "PAYOUT131_SIM_SPREAD_MS": "1000",
        "PAYOUT131_LEASE_S": "2",  # a killed worker's leases run out quickly
    }
    run_cli(env, "init")
    db = Database(database_url)
    key = partner_keys[0]
    with db.write() as conn:
        pem = signing.public_key_pem(key).decode()
        projects.add_project(conn, "crash", pem, 0, single_request=True)
        book.topup_wallet(conn, "crash", FUNDS, 0)
    amounts = [10_000 * (i + 1) + ENDINGS[i % len(ENDINGS)] for i in range(PAYOUTS)]
    log = tmp_path / "server.log"
    sim, payouts = t.simulator_transfers, t.payouts
    try:
        with server(env, log) as (process, url), httpx.Client(base_url=url) as http:
            partner = Partner(http, "crash", key)
            sessions = [
                partner.ok("session/init/payout", payout_body(amount))["session"]["id"]
                for amount in amounts
            ]
            half = sa.select(sa.func.count()).select_from(sim)
            wait_for("the rail to hold half the payouts", lambda: count(db, half) >= PAYOUTS // 2)
            process.send_signal(signal.SIGKILL)
            process.wait()
        unfinished = sa.select(sa.func.count()).where(payouts.c.work.is_not(None))
        assert count(db, unfinished) > 0, "the kill came too late to test anything"

        with server(env, log):
            wait_for("every payout to finish", lambda: count(db, unfinished) == 0)

        with db.read() as conn:
            rows = {
                f"ps_{r.session_n}": r
                for r in conn.execute(sa.select(payouts).where(payouts.c.project_id == "crash"))
            }
            transfers = list(conn.execute(sa.select(sim)))
            finished = conn.execute(
                sa.select(t.events.c.session_n, sa.func.count())
                .where(t.events.c.type == "payment_finished")
                .group_by(t.events.c.session_n)
            ).all()
            wallet = accounts.account_id(conn, wallet_code("crash"))
            assert wallet is not None
            balance = accounts.balance(conn, wallet)
        assert len(rows) == PAYOUTS
        paid = 0
        for session_id, amount in zip(sessions, amounts, strict=True):
            row = rows[session_id]
            scenario = scenarios.by_amount(amount)
            assert (row.status, row.error_code) == (scenario.status, scenario.error_code)
            paid += amount if row.status == "succeeded" else 0
        assert sorted(n for n, _ in finished) == sorted(r.session_n for r in rows.values())
        assert {c for _, c in finished} == {1}  # exactly one payment_finished each
        assert sorted(tr.payout_id for tr in transfers) == sorted(
            f"po_{r.n}" for r in rows.values()
        )
        assert {tr.submissions for tr in transfers} == {1}  # the rail saw each payout once
        assert {tr.reference for tr in transfers} == {r.rail_reference for r in rows.values()}
        assert (balance.balance, balance.held) == (FUNDS - paid, 0)
        assert "ledger ok" in run_cli(env, "ledger", "check")
    finally:
        db.dispose()
    assert "Traceback" not in log.read_text(), log.read_text()
