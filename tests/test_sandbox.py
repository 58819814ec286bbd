"""Test clocks and forced outcomes on a running server, over HTTP, on both engines.

Each test starts ``payout131 serve`` (sandbox mode, the default), a partner's webhook
endpoint, and projects bound to test clocks made in the database the server uses; the
partner drives it all with the SDK, as a partner's own integration tests would. Clocks
start at 2027-01-15T08:00:00Z, so every time in an answer or a webhook can be checked.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric import rsa

from partner import INDIVIDUAL
from payout131.cli import main
from payout131.client import (
    Amount,
    ApiConnectionError,
    AsyncClient,
    BankAccount,
    Client,
    InvalidRequestError,
    SessionWrongStateError,
)
from payout131.clock import rfc3339
from payout131.rails import scenarios
from payout131.sandbox import clocks
from payout131.settings import Settings
from payout131.storage import Database
from payout131.storage import schema as t
from served import PAYOUT131, Served, _wait_until_up, free_port, serve
from webhook_receiver import Receiver, receiving, status

START = 1_800_000_000 * 1_000_000  # 2027-01-15T08:00:00Z
MINUTE, HOUR, DAY = 60 * 1_000_000, 3600 * 1_000_000, 86400 * 1_000_000
DESTINATION = BankAccount(
    INDIVIDUAL["bik"], INDIVIDUAL["account"], INDIVIDUAL["full_name"], INDIVIDUAL["description"]
)
AMOUNT = {s.name: s.example_amount for s in scenarios.SCENARIOS}


@dataclass
class Sandbox:
    served: Served
    receiver: Receiver
    db: Database
    tmp_path: Path
    clients: list[Client] = field(default_factory=list)

    def clock(self, name: str = "tests") -> int:
        with self.db.write() as conn:
            return clocks.create(conn, name, START, START).n

    def partner(
        self,
        project_id: str,
        key: rsa.RSAPrivateKey,
        clock: int | None,
        *,
        single_request: bool = True,
    ) -> Client:
        """A funded project on ``clock`` (None: wall time), and its SDK client."""
        pem = self.served.register(
            project_id,
            key,
            wallet=10**12,
            webhook_url=self.receiver.url,
            single_request=single_request,
        )
        with self.db.write() as conn:
            clocks.bind(conn, project_id, clock)
        return self.client(project_id, pem.read_bytes())

    def client(self, project_id: str, private_key: Any, url: str | None = None) -> Client:
        made = Client(
            base_url=url or self.served.url,
            project=project_id,
            private_key=private_key,
            bank_public_key=(self.served.home / "bank-public.pem").read_bytes(),
        )
        self.clients.append(made)
        return made

    def close(self) -> None:
        for client in self.clients:
            client.close()
        self.db.dispose()

    def rows(self, query: Any) -> list[Any]:
        with self.db.read() as conn:
            return list(conn.execute(query))

    def events(self, session_id: str) -> list[str]:
        """The types of the webhooks the partner received for a session, in order."""
        return [
            d.json()["type"]
            for d in self.receiver.deliveries
            if d.json()["session"]["id"] == session_id
        ]


@pytest.fixture
def sandbox(tmp_path: Path, database_url: str) -> Iterator[Sandbox]:
    with receiving() as receiver, serve(tmp_path, database_url) as served:
        made = Sandbox(served, receiver, Database(database_url), tmp_path)
        try:
            yield made
        finally:
            made.close()


def _moment(micros: int) -> datetime:
    return datetime.fromtimestamp(micros / 1_000_000, tz=UTC)


def _error(bank: Client, session_id: str) -> str | None:
    """The error code of the session's payout."""
    (payout,) = bank.status(session_id).payouts
    return None if payout.error is None else payout.error.code


def _pay(bank: Client, outcome: str) -> str:
    return bank.init_payout(destination=DESTINATION, amount=Amount(AMOUNT[outcome])).id


def test_every_outcome_of_the_simulator_reaches_its_end_after_advances(
    sandbox: Sandbox, partner_keys: list[rsa.RSAPrivateKey]
) -> None:
    bank = sandbox.partner("acme", partner_keys[0], sandbox.clock())
    sessions = {s.name: _pay(bank, s.name) for s in scenarios.SCENARIOS}
    clock = bank.sandbox.clock()
    assert clock.frozen_time == rfc3339(START)
    waiting = {"slow_success", "error_then_success", "returned"}
    assert {step.session_id for step in clock.pending} >= {sessions[n] for n in waiting}

    clock = bank.sandbox.advance(minutes=1)
    assert (clock.status, clock.frozen_time) == ("ready", rfc3339(START + MINUTE))
    assert bank.status(sessions["error_then_success"]).status == "error"
    assert bank.status(sessions["slow_success"]).status == "in_progress"
    for s in scenarios.SCENARIOS:  # the immediate ones are final, their webhook sent
        if s.name not in waiting - {"returned"}:
            assert bank.status(sessions[s.name]).status == s.session_status, s.name
            assert sandbox.events(sessions[s.name]) == ["payment_finished"], s.name
    assert _error(bank, sessions["account_not_found"]) == "account_not_found"

    bank.sandbox.advance(minutes=28)  # +29 min
    assert bank.status(sessions["error_then_success"]).status == "error"
    bank.sandbox.advance(minutes=1)  # +30 min
    assert bank.status(sessions["error_then_success"]).status == "accepted"
    assert sandbox.events(sessions["error_then_success"]) == ["payment_finished"]
    bank.sandbox.advance(minutes=29)  # +59 min
    assert bank.status(sessions["slow_success"]).status == "in_progress"
    bank.sandbox.advance(minutes=1)  # +1 h
    assert bank.status(sessions["slow_success"]).status == "accepted"

    returned = sessions["returned"]
    assert sandbox.events(returned) == ["payment_finished"]
    bank.sandbox.advance(to=rfc3339(START + 3 * DAY - MINUTE))
    assert sandbox.events(returned) == ["payment_finished"]
    clock = bank.sandbox.advance(days=1)
    assert clock.status == "ready"
    assert clock.pending == []
    assert sandbox.events(returned) == ["payment_finished", "payment_refunded"]
    refunded = next(
        d for d in sandbox.receiver.deliveries if d.json()["type"] == "payment_refunded"
    )
    event = bank.parse_webhook(refunded.body, refunded.signature)  # signed as always
    assert event.type == "payment_refunded"
    # the times in the webhook are the clock's: it came back 3 days after it was paid
    assert refunded.headers["webhook-timestamp"] == str((START + 3 * DAY) // 1_000_000)
    (payout,) = bank.status(returned).payouts
    assert [r.created_at for r in payout.refunds] == [_moment(START + 3 * DAY)]
    assert sandbox.served.ledger_problems() == []


def test_the_confirm_timeout_fires_after_240_minutes(
    sandbox: Sandbox, partner_keys: list[rsa.RSAPrivateKey]
) -> None:
    bank = sandbox.partner("acme", partner_keys[0], sandbox.clock(), single_request=False)
    before = bank.wallet_balance().wallets[0].amount_details.amount
    session = _pay(bank, "success")
    bank.sandbox.advance(seconds=1)
    assert sandbox.events(session) == ["ready_to_confirm"]
    bank.sandbox.advance(minutes=238)
    assert bank.status(session).status == "in_progress"
    bank.sandbox.advance(minutes=1, seconds=59)  # +240 min
    assert bank.status(session).status == "cancelled"
    assert _error(bank, session) == "confirm_timeout"
    assert sandbox.events(session) == ["ready_to_confirm", "payment_finished"]
    assert bank.wallet_balance().wallets[0].amount_details.amount == before  # released


def test_an_endpoint_failing_then_recovering_gets_the_retries_in_schedule_order(
    sandbox: Sandbox, partner_keys: list[rsa.RSAPrivateKey]
) -> None:
    bank = sandbox.partner("acme", partner_keys[0], sandbox.clock())
    sandbox.receiver.script(*[status(500)] * 5)
    first = _pay(bank, "success")
    bank.sandbox.advance(minutes=3)
    second = _pay(bank, "success")  # its retries fall between the first one's
    clock = bank.sandbox.advance(days=1)
    assert clock.status == "ready"
    for session in (first, second):
        assert sandbox.events(session)[-1] == "payment_finished"
    attempts = sandbox.rows(
        sa.select(t.webhook_attempts.c.event_id, t.webhook_attempts.c.started_at).order_by(
            t.webhook_attempts.c.id
        )
    )
    assert len(attempts) == len(sandbox.receiver.deliveries) == 7
    started = [int(a.started_at) for a in attempts]
    assert started == sorted(started), "attempts ran in clock order"
    schedule = Settings().webhook_schedule
    first_event = [int(a.started_at) for a in attempts if a.event_id == attempts[0].event_id]
    gaps = [(b - a) / 1_000_000 for a, b in itertools.pairwise(first_event)]
    for gap, planned in zip(gaps, schedule[1:], strict=False):
        assert planned * 0.89 <= gap <= planned * 1.11 + 1, (gaps, schedule)
    assert started[-1] < START + DAY


def test_two_clocks_and_the_wall_do_not_disturb_each_other(
    sandbox: Sandbox, partner_keys: list[rsa.RSAPrivateKey]
) -> None:
    first = sandbox.partner("first", partner_keys[0], sandbox.clock("first"))
    second = sandbox.partner("second", partner_keys[1], sandbox.clock("second"))
    wall = sandbox.partner("wall", partner_keys[2], None)
    sessions = {bank: _pay(bank, "returned") for bank in (first, second, wall)}
    first.sandbox.advance(days=3, minutes=1)
    assert sandbox.events(sessions[first]) == ["payment_finished", "payment_refunded"]
    for bank in (second, wall):
        assert sandbox.events(sessions[bank]) == ["payment_finished"]
        (payout,) = bank.status(sessions[bank]).payouts
        assert not payout.refunds
    assert second.sandbox.clock().frozen_time == rfc3339(START)
    with pytest.raises(InvalidRequestError, match="runs on wall time"):
        wall.sandbox.advance(days=3)


def test_outcomes_are_forced_on_payouts_waiting_at_the_rail(
    sandbox: Sandbox, partner_keys: list[rsa.RSAPrivateKey]
) -> None:
    bank = sandbox.partner("acme", partner_keys[0], sandbox.clock())
    other = sandbox.partner("other", partner_keys[1], None)
    waiting = [_pay(bank, "slow_success") for _ in range(3)]
    ids = [bank.status(s).payouts[0].id for s in waiting]
    assert bank.sandbox.succeed(ids[0]).outcome == "succeed"
    forced = bank.sandbox.fail(ids[1], "account_not_found")
    assert forced.error_code == "account_not_found"
    bank.sandbox.return_payout(ids[2])
    bank.sandbox.advance(seconds=1)  # the worker runs what is due now, at once
    assert bank.status(waiting[0]).status == "accepted"
    assert bank.status(waiting[1]).status == "cancelled"
    assert _error(bank, waiting[1]) == "account_not_found"
    assert sandbox.events(waiting[2]) == ["payment_finished", "payment_refunded"]
    with pytest.raises(SessionWrongStateError, match="not waiting at the rail"):
        bank.sandbox.succeed(ids[0])
    with pytest.raises(SessionWrongStateError, match="already come back"):
        bank.sandbox.return_payout(ids[2])
    assert bank.status(waiting[0]).payouts[0].refunds == []
    bank.sandbox.return_payout(ids[0])  # a paid payout comes back, even after it was read
    bank.sandbox.advance(seconds=1)
    assert sandbox.events(waiting[0]) == ["payment_finished", "payment_refunded"]
    assert len(bank.status(waiting[0]).payouts[0].refunds) == 1  # no answer kept from before
    with pytest.raises(InvalidRequestError, match="no payout"):
        other.sandbox.succeed(ids[0])  # another project's payout is not found
    with pytest.raises(InvalidRequestError, match="error_code: one of"):
        bank.sandbox.fail(ids[1], "no_such_code")
    assert sandbox.served.ledger_problems() == []


def test_the_async_client_advances_a_clock(
    sandbox: Sandbox, partner_keys: list[rsa.RSAPrivateKey]
) -> None:
    settings = sandbox.partner("acme", partner_keys[0], sandbox.clock()).settings

    async def partner() -> None:
        async with AsyncClient(
            base_url=settings.base_url, project="acme", private_key=settings.private_key
        ) as client:
            session = await client.init_payout(
                destination=DESTINATION, amount=Amount(AMOUNT["slow_success"])
            )
            clock = await client.sandbox.advance(hours=1)
            assert clock.frozen_time == rfc3339(START + HOUR)
            assert (await client.status(session.id)).status == "accepted"
            with pytest.raises(ValueError, match="give a duration"):
                await client.sandbox.advance()

    anyio.run(partner)


def test_the_operator_moves_clocks_with_the_cli(
    sandbox: Sandbox, partner_keys: list[rsa.RSAPrivateKey]
) -> None:
    env = sandbox.served.env

    def cli(*args: str, code: int = 0) -> Any:
        result = CliRunner().invoke(main, list(args), env=env)
        assert result.exit_code == code, result.output
        return json.loads(result.output) if "--json" in args and code == 0 else result.output

    made = cli("clock", "create", "nightly", "--frozen-time", "2027-01-15T08:00:00Z", "--json")
    assert made["id"].startswith("clk_")
    assert made["status"] == "ready"
    assert set(made) >= {"id", "name", "frozen_time", "status", "pending"}
    key = sandbox.tmp_path / "acme.pub.pem"
    from payout131.client import signing

    key.write_bytes(signing.public_key_pem(partner_keys[0]))
    cli("project", "add", "acme", "--public-key", str(key), "--test-clock", made["id"])
    assert json.loads(cli("project", "show", "acme"))["test_clock"] == made["id"]
    assert [c["id"] for c in cli("clock", "list", "--json")["test_clocks"]] == [made["id"]]
    moved = cli("clock", "advance", made["id"], "--by", "90m", "--json")
    assert moved["frozen_time"] == "2027-01-15T09:30:00.000000Z"
    moved = cli("clock", "advance", made["id"], "--to", "2027-01-16T00:00:00+03:00", "--json")
    assert moved["frozen_time"] == "2027-01-15T21:00:00.000000Z"
    assert "nothing is due" in cli("clock", "advance", made["id"], "--next", code=1)
    assert "not after the clock's time" in cli(
        "clock", "advance", made["id"], "--to", "2027-01-01T00:00:00Z", code=1
    )
    assert "not a duration" in cli("clock", "advance", made["id"], "--by", "1x", code=2)
    assert "one of --by, --to or --next" in cli("clock", "advance", made["id"], code=2)
    assert "still runs projects acme" in cli("clock", "delete", made["id"], code=1)
    cli("project", "set", "acme", "--no-test-clock")
    assert cli("clock", "delete", made["id"], "--json") == {"id": made["id"], "deleted": True}
    assert "no test clock" in cli("clock", "show", made["id"], code=1)
    assert "not a test clock id" in cli("clock", "show", "clk_01", code=2)


def test_the_cli_forces_an_outcome(sandbox: Sandbox, partner_keys: list[rsa.RSAPrivateKey]) -> None:
    bank = sandbox.partner("acme", partner_keys[0], None)  # on wall time: forcing works too
    session = _pay(bank, "slow_success")
    (payout,) = bank.status(session).payouts
    db = Database(sandbox.served.database_url)
    try:  # forcing needs the transfer at the simulator: the server's worker sends it there
        x = t.simulator_transfers
        for _ in range(200):
            with db.read() as conn:
                at = conn.execute(sa.select(x.c.reference).where(x.c.payout_id == payout.id))
                if at.first() is not None:
                    break
            time.sleep(0.05)
    finally:
        db.dispose()
    result = CliRunner().invoke(
        main,
        ["simulate", "fail", payout.id, "--code", "operation_rejected", "--json"],
        env=sandbox.served.env,
    )
    assert result.exit_code == 0, result.output
    printed = json.loads(result.output)
    assert printed["forced"]["error_code"] == "operation_rejected"
    assert printed["test_clock"] is None  # the project runs on wall time
    for _ in range(100):
        if bank.status(session).status == "cancelled":
            break
        time.sleep(0.1)
    assert bank.status(session).status == "cancelled"
    again = CliRunner().invoke(main, ["simulate", "succeed", payout.id], env=sandbox.served.env)
    assert again.exit_code == 1
    assert "not waiting at the rail" in again.output


def test_production_mode_refuses_every_sandbox_call(
    tmp_path: Path, database_url: str, partner_keys: list[rsa.RSAPrivateKey]
) -> None:
    production = {"PAYOUT131_MODE": "production"}
    with contextlib.ExitStack() as stack:
        served = stack.enter_context(serve(tmp_path, database_url, env=production))
        assert httpx.get(f"{served.url}/health").json() == {"status": "ok", "mode": "production"}
        pem = served.register("acme", partner_keys[0])
        bank = Client(base_url=served.url, project="acme", private_key=pem.read_bytes())
        stack.callback(bank.close)
        calls = [
            bank.sandbox.clock,
            lambda: bank.sandbox.advance(hours=1),
            lambda: bank.sandbox.succeed("po_1"),
            lambda: bank.sandbox.fail("po_1"),
            lambda: bank.sandbox.return_payout("po_1"),
        ]
        for call in calls:
            with pytest.raises(Exception, match="production mode") as refused:
                call()
            assert getattr(refused.value, "code", None) == "authorization_error"
        env = served.env | production
        for args in (
            ["clock", "list"],
            ["clock", "create", "x"],
            ["simulate", "succeed", "po_1"],
            ["project", "set", "acme", "--test-clock", "clk_1"],
        ):
            result = CliRunner().invoke(main, args, env=env)
            assert result.exit_code == 1, (args, result.output)
            assert result.output.strip().splitlines()[-1].startswith("Error: "), result.output
            assert "sandbox mode" in result.output


@pytest.mark.slow
def test_a_killed_server_loses_nothing_of_an_advance_and_runs_nothing_twice(
    tmp_path: Path, database_url: str, partner_keys: list[rsa.RSAPrivateKey]
) -> None:
    """SIGKILL while an advance runs many steps; the next start finishes it."""
    with receiving() as receiver, serve(tmp_path, database_url) as served:
        sandbox = Sandbox(served, receiver, Database(database_url), tmp_path)
        bank = sandbox.partner("acme", partner_keys[0], sandbox.clock())
        sessions = [_pay(bank, "returned") for _ in range(150)]
        answer = bank.sandbox.advance_call(by="3d", wait=False)
        assert answer.status == "advancing"
        refunds = 0
        for _ in range(2000):  # kill it once the first refunds are written, not all
            refunds = len(sandbox.rows(sa.select(t.refunds.c.n)))
            if refunds:
                break
        os.kill(served.pid, signal.SIGKILL)
    assert refunds < len(sessions), "the advance ended before the kill: a bigger load"
    port = free_port()
    log = tmp_path / "again.log"
    with log.open("wb") as out:
        again = subprocess.Popen(
            [PAYOUT131, "serve", "--port", str(port)], env=served.env, stdout=out, stderr=out
        )
    try:
        with receiving() as receiver2:
            with sandbox.db.write() as conn:
                conn.execute(sa.update(t.projects).values(webhook_url=receiver2.url))
            url = f"http://127.0.0.1:{port}"
            _wait_until_up(url, again, log)
            bank = sandbox.client("acme", bank.settings.private_key, url)
            clock = bank.sandbox.clock()
            for _ in range(600):
                if clock.status != "advancing":
                    break
                time.sleep(0.1)
                clock = bank.sandbox.clock()
            assert clock.status == "ready", clock
            assert clock.frozen_time == rfc3339(START + 3 * DAY)
            assert len(sandbox.rows(sa.select(t.refunds.c.n))) == len(sessions)
            submissions = sandbox.rows(sa.select(t.simulator_transfers.c.submissions))
            assert [int(r.submissions) for r in submissions] == [1] * len(sessions)
            events = sandbox.rows(sa.select(t.events.c.status))
            assert {r.status for r in events} == {"delivered"}
            assert len(events) == 2 * len(sessions)
            assert served.ledger_problems() == []
    finally:
        again.send_signal(signal.SIGTERM)
        again.wait(20)
        sandbox.close()


def test_a_step_that_keeps_failing_leaves_the_clock_failed_and_a_new_advance_retries_it(
    tmp_path: Path, database_url: str, partner_keys: list[rsa.RSAPrivateKey]
) -> None:
    quick = {
        "PAYOUT131_CLOCK_STEP_TIMEOUT": "2s",
        "PAYOUT131_LEASE_S": "1s",
        "PAYOUT131_WEBHOOK_LEASE": "1.5s",
        "PAYOUT131_WEBHOOK_TIMEOUT": "1s",
    }
    with receiving() as receiver, serve(tmp_path, database_url, env=quick) as served:
        sandbox = Sandbox(served, receiver, Database(database_url), tmp_path)
        try:
            bank = sandbox.partner("acme", partner_keys[0], sandbox.clock())
            early, stuck = _pay(bank, "error_then_success"), _pay(bank, "slow_success")
            stuck_payout = bank.status(stuck).payouts[0].id
            bank.sandbox.advance(seconds=1)  # both are at the rail now
            with sandbox.db.write() as conn:  # a fault: its rail is none this server has
                conn.execute(
                    sa.update(t.payouts)
                    .where(t.payouts.c.n == int(stuck_payout[3:]))
                    .values(rail="elsewhere")
                )
            clock = bank.sandbox.advance(hours=2)
            assert clock.status == "failed", clock
            assert clock.frozen_time == rfc3339(START + HOUR)  # where the step was due
            assert clock.failure is not None
            assert clock.failure.startswith(f"{stuck_payout}: asks the rail")
            assert "2027-01-15T09:00:00" in clock.failure
            assert bank.status(early).status == "accepted"  # what came before it ran
            assert bank.status(stuck).status == "in_progress"  # and it is undone
            with sandbox.db.write() as conn:
                conn.execute(sa.update(t.payouts).values(rail="simulator"))
            clock = bank.sandbox.advance(hours=1)
            assert clock.status == "ready"
            assert clock.failure is None
            assert bank.status(stuck).status == "accepted"
            assert sandbox.served.ledger_problems() == []
        finally:
            sandbox.close()


def test_a_public_token_expires_on_its_projects_clock(
    sandbox: Sandbox, partner_keys: list[rsa.RSAPrivateKey]
) -> None:
    bank = sandbox.partner("acme", partner_keys[0], sandbox.clock())
    token = bank.public_token().public_token
    lookup = f"{sandbox.served.url}/widget/api/bank"
    query = {"bik": INDIVIDUAL["bik"], "public_token": token}
    assert httpx.get(lookup, params=query).status_code == 200
    bank.sandbox.advance(hours=23, minutes=59)
    assert httpx.get(lookup, params=query).status_code == 200
    bank.sandbox.advance(minutes=1)  # 24 hours of the clock's time
    expired = httpx.get(lookup, params=query)
    assert expired.status_code == 401
    assert expired.json()["error"]["reason"] == "expired"


def test_a_replayed_event_is_due_at_its_projects_time(
    sandbox: Sandbox, partner_keys: list[rsa.RSAPrivateKey]
) -> None:
    with sandbox.db.write() as conn:  # a clock behind the wall: 2025-01-01
        past = clocks.create(conn, "past", 1_735_689_600_000_000, START).n
    bank = sandbox.partner("acme", partner_keys[0], past)
    session = _pay(bank, "success")
    bank.sandbox.advance(seconds=1)
    assert sandbox.events(session) == ["payment_finished"]
    result = CliRunner().invoke(main, ["webhooks", "replay", "evt_1"], env=sandbox.served.env)
    assert result.exit_code == 0, result.output
    for _ in range(100):  # sent again at once: due at the clock's time, not the wall's
        if len(sandbox.events(session)) == 2:
            break
        time.sleep(0.1)
    assert sandbox.events(session) == ["payment_finished", "payment_finished"]


def test_production_mode_will_not_start_with_projects_on_clocks(
    sandbox: Sandbox, partner_keys: list[rsa.RSAPrivateKey]
) -> None:
    sandbox.partner("acme", partner_keys[0], sandbox.clock())
    env = sandbox.served.env | {"PAYOUT131_MODE": "production"}
    result = CliRunner().invoke(main, ["serve", "--port", str(free_port())], env=env)
    assert result.exit_code == 1, result.output
    assert result.output.strip().splitlines()[-1] == (
        "Error: PAYOUT131_MODE is production but projects acme are bound to test clocks: "
        "unbind them first (payout131 project set ID --no-test-clock with "
        "PAYOUT131_MODE=sandbox)"
    )


def test_an_advance_asked_for_while_one_runs_extends_it(
    sandbox: Sandbox, partner_keys: list[rsa.RSAPrivateKey]
) -> None:
    bank = sandbox.partner("acme", partner_keys[0], sandbox.clock())
    session = _pay(bank, "returned")
    first = bank.sandbox.advance_call(by="1h", wait=False)
    bank.sandbox.advance_call(by="1h", wait=False)  # from where the first goes, or went
    for _ in range(100):
        clock = bank.sandbox.clock()
        if clock.status == "ready":
            break
        time.sleep(0.05)
    assert (clock.status, clock.frozen_time) == ("ready", rfc3339(START + 2 * HOUR))
    with sandbox.db.write() as conn:  # an advance under way: the clock is not deleted
        conn.execute(sa.update(t.test_clocks).values(status="advancing", advance_to=START))
        with pytest.raises(ValueError, match="is advancing"):
            clocks.delete(conn, int(first.id[4:]))
        conn.execute(sa.update(t.test_clocks).values(status="ready", advance_to=None))
    clock = bank.sandbox.advance(to=rfc3339(START + 3 * DAY))
    assert (clock.status, clock.frozen_time) == ("ready", rfc3339(START + 3 * DAY))
    assert sandbox.events(session) == ["payment_finished", "payment_refunded"]
    result = CliRunner().invoke(
        main, ["simulate", "return", bank.status(session).payouts[0].id], env=sandbox.served.env
    )
    assert result.exit_code == 1
    assert "already come back" in result.output


def test_the_sdk_never_sends_a_move_twice() -> None:
    """An advance or a forced outcome whose answer is lost is not sent again (a second
    advance would move the clock further); a read is."""
    seen: list[str] = []

    def bank(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        raise httpx.ReadTimeout("no answer", request=request)

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with Client(
        base_url="http://bank.test",
        project="acme",
        private_key=key,
        transport=httpx.MockTransport(bank),
        max_retries=3,
        sleep=lambda _: None,
    ) as client:
        for move in (
            lambda: client.sandbox.advance(hours=1),
            lambda: client.sandbox.succeed("po_1"),
            lambda: client.sandbox.fail("po_1"),
            lambda: client.sandbox.return_payout("po_1"),
        ):
            with pytest.raises(ApiConnectionError):
                move()
        with pytest.raises(ApiConnectionError):
            client.sandbox.clock()
    moves = ["/api/sandbox/clock/advance"] + [
        f"/api/sandbox/payout/{o}" for o in ("succeed", "fail", "return")
    ]
    assert seen == [*moves, *["/api/sandbox/clock"] * 4]


def test_the_partner_cli_moves_its_clock_and_forces_outcomes(
    sandbox: Sandbox, partner_keys: list[rsa.RSAPrivateKey]
) -> None:
    bank = sandbox.partner("acme", partner_keys[0], sandbox.clock())
    slow = [_pay(bank, "slow_success") for _ in range(2)]
    payouts = [bank.status(s).payouts[0].id for s in slow]
    env = sandbox.served.env | {
        "PAYOUT131_BASE_URL": sandbox.served.url,
        "PAYOUT131_PROJECT": "acme",
        "PAYOUT131_PRIVATE_KEY": str(sandbox.tmp_path / "acme.pem"),
    }

    def partner(*args: str, code: int = 0) -> str:
        result = CliRunner().invoke(main, ["partner", "sandbox", *args], env=env)
        assert result.exit_code == code, result.output
        return result.output

    shown = json.loads(partner("clock", "--json"))
    assert shown["status"] == "ok"
    assert shown["test_clock"]["frozen_time"] == rfc3339(START)
    assert "asks the rail how the payout stands" in partner("clock")
    forced = json.loads(partner("fail", payouts[0], "--code", "provider_timeout", "--json"))
    assert forced["forced"]["error_code"] == "provider_timeout"
    assert partner("advance", "--by", "30m").startswith("clk_")
    assert bank.status(slow[0]).status == "cancelled"
    moved = json.loads(partner("advance", "--next", "--json"))["test_clock"]
    assert moved["frozen_time"] == rfc3339(START + HOUR)
    assert bank.status(slow[1]).status == "accepted"
    assert "session_wrong_state" in partner("succeed", payouts[1], code=1)
    assert "give one of --by, --to or --next" in partner("advance", code=2)
    assert "not a duration" in partner("advance", "--by", "soon", code=1)


def test_a_partner_paying_all_the_time_does_not_stop_its_clock(
    sandbox: Sandbox, partner_keys: list[rsa.RSAPrivateKey]
) -> None:
    bank = sandbox.partner("acme", partner_keys[0], sandbox.clock())
    slow = _pay(bank, "slow_success")
    settings = bank.settings
    paid_during: list[str] = []
    advanced = threading.Event()

    def pay() -> None:  # another of the partner's processes, paying until the advance ends
        with Client(
            base_url=settings.base_url, project="acme", private_key=settings.private_key
        ) as payer:
            deadline = time.monotonic() + 60
            while not advanced.is_set() and time.monotonic() < deadline:
                paid_during.append(_pay(payer, "success"))

    payer = threading.Thread(target=pay)
    payer.start()
    try:
        while len(paid_during) < 5:  # it is paying
            time.sleep(0.05)
        clock = bank.sandbox.advance(hours=1, wait_s=50)
    finally:
        advanced.set()
        payer.join()
    assert (clock.status, clock.frozen_time) == ("ready", rfc3339(START + HOUR))
    assert bank.status(slow).status == "accepted"
    last = bank.status(paid_during[-1])
    for _ in range(100):  # what was paid meanwhile ends too, at the clock's time then
        if last.status == "accepted":
            break
        time.sleep(0.05)
        last = bank.status(paid_during[-1])
    assert last.status == "accepted"


def test_the_server_finishes_advances_nobody_waits_for_on_every_clock(
    sandbox: Sandbox, partner_keys: list[rsa.RSAPrivateKey]
) -> None:
    banks = [sandbox.partner(f"p{i}", partner_keys[i], sandbox.clock(f"c{i}")) for i in range(2)]
    sessions = [_pay(bank, "returned") for bank in banks]
    for bank in banks:
        assert bank.sandbox.advance_call(by="3d", wait=False).id.startswith("clk_")
    for _ in range(400):
        clocks_now = [bank.sandbox.clock() for bank in banks]
        if all(clock.status == "ready" for clock in clocks_now):
            break
        time.sleep(0.05)
    assert [c.frozen_time for c in clocks_now] == [rfc3339(START + 3 * DAY)] * 2
    for session in sessions:
        assert sandbox.events(session) == ["payment_finished", "payment_refunded"]
