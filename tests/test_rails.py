"""The simulator rail plays every row of its magic-value table, through the HTTP API.

Each row is a worked example: a partner pays the row's amount, the bank's worker takes the
payout to the simulator, the test moves the clock through the row's delays, and the partner
sees the outcome in ``session/status`` and in the webhook events the bank wrote. The
ledger must add up after every step.
"""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from banking import Onboard, available
from banking import event_bodies as events
from partner import Partner, payout_body
from payout131.clock import ManualClock
from payout131.ledger.accounts import wallet_code
from payout131.ledger.check import violations
from payout131.rails import scenarios
from payout131.runtime import Runtime
from payout131.storage import schema as t

FUNDS = 1_000_000


def assert_ledger_balances(bank: Runtime) -> None:
    with bank.db.read() as conn:
        assert violations(conn) == []


def status(partner: Partner, session_id: str) -> dict[str, Any]:
    session: dict[str, Any] = partner.ok("session/status", {"session_id": session_id})["session"]
    return session


def kinds(bank: Runtime, session_id: str) -> list[str]:
    return [e["type"] for e in events(bank, session_id)]


def still_working(bank: Runtime, partner: Partner, session_id: str, session_status: str) -> None:
    session = status(partner, session_id)
    assert session["status"] == session_status
    assert session["payments"][0]["status"] == "in_progress"
    assert "payment_finished" not in kinds(bank, session_id)
    assert (
        available(bank, wallet_code(partner.project))
        == FUNDS - session["payments"][0]["amount_details"]["amount"]
    )
    assert_ledger_balances(bank)


@pytest.mark.parametrize("scenario", scenarios.SCENARIOS, ids=lambda s: s.name)
def test_each_magic_value_plays_its_outcome(
    bank: Runtime, clock: ManualClock, onboard: Onboard, scenario: scenarios.Scenario
) -> None:
    partner = onboard(wallet=FUNDS)
    amount = scenario.example_amount
    assert scenarios.by_amount(amount) is scenario
    session_id = partner.ok("session/init/payout", payout_body(amount))["session"]["id"]
    bank.worker.drain()
    partner.ok("session/confirm", {"session_id": session_id})
    bank.worker.drain()

    if scenario.delay_s:
        still_working(bank, partner, session_id, "in_progress")
        clock.advance(scenario.delay_s - 1)
        bank.worker.drain()
        still_working(bank, partner, session_id, "in_progress")
        clock.advance(1)
        bank.worker.drain()
    if scenario.error_s:
        still_working(bank, partner, session_id, "error")
        assert status(partner, session_id)["error"]["code"] == scenarios.TROUBLE[0]
        clock.advance(scenario.error_s - 1)
        bank.worker.drain()
        still_working(bank, partner, session_id, "error")
        clock.advance(1)
        bank.worker.drain()

    final = status(partner, session_id)
    payout = final["payments"][0]
    assert final["status"] == scenario.session_status
    assert "error" not in final  # the session's passing error is gone
    assert payout["status"] == scenario.status
    assert "finished_at" in payout
    if scenario.error_code:
        assert payout["error"]["code"] == scenario.error_code
        assert payout["error"]["description"]
    else:
        assert "error" not in payout
    finished = [e for e in events(bank, session_id) if e["type"] == "payment_finished"]
    assert len(finished) == 1
    assert finished[0]["session"]["status"] == scenario.session_status
    assert finished[0]["session"]["payments"][0]["status"] == scenario.status
    paid = 0 if scenario.error_code else amount
    assert available(bank, wallet_code(partner.project)) == FUNDS - paid
    assert_ledger_balances(bank)

    if scenario.return_after_s is None:
        clock.advance(30 * scenarios.DAY)  # nothing more happens, however long one waits
        bank.worker.drain()
        assert kinds(bank, session_id) == ["ready_to_confirm", "payment_finished"]
        assert "refunds" not in status(partner, session_id)["payments"][0]
        return
    clock.advance(scenario.return_after_s - 1)
    bank.worker.drain()
    assert "refunds" not in status(partner, session_id)["payments"][0]
    clock.advance(1)
    bank.worker.drain()
    assert kinds(bank, session_id) == ["ready_to_confirm", "payment_finished", "payment_refunded"]
    refunded = events(bank, session_id)[-1]["session"]
    payout = refunded["payments"][0]
    assert refunded["status"] == "accepted"
    assert payout["status"] == "succeeded"  # a returned payout stays succeeded
    (refund,) = payout["refunds"]
    assert refund["id"].startswith("rf_")
    assert refund["amount_details"] == {"amount": amount, "currency": "rub"}
    assert refund["status"] == "accepted"
    assert refund["created_at"].endswith("Z")
    assert status(partner, session_id)["payments"][0]["refunds"] == [refund]
    assert available(bank, wallet_code(partner.project)) == FUNDS  # the money is back
    assert_ledger_balances(bank)
    clock.advance(30 * scenarios.DAY)
    bank.worker.drain()
    assert len(kinds(bank, session_id)) == 3  # returned once


def test_settlement_account_payout_is_refunded_to_that_account(
    bank: Runtime, clock: ManualClock, onboard: Onboard
) -> None:
    partner = onboard(account=50_000, single_request=True)
    amount = scenarios.by_name("returned").example_amount
    session_id = partner.ok("session/init/payout/rko", partner.rko_body(amount))["session"]["id"]
    bank.worker.drain()
    assert partner.account is not None
    assert available(bank, partner.account) == 50_000 - amount
    clock.advance(3 * scenarios.DAY)
    bank.worker.drain()
    assert available(bank, partner.account) == 50_000
    assert kinds(bank, session_id) == ["payment_finished", "payment_refunded"]
    with bank.db.read() as conn:
        kinds_posted = conn.execute(
            sa.select(t.ledger_transactions.c.kind).order_by(t.ledger_transactions.c.id)
        ).scalars()
        assert list(kinds_posted)[-2:] == ["payout", "refund"]


def test_ordinary_amounts_succeed(bank: Runtime, onboard: Onboard) -> None:
    partner = onboard(wallet=FUNDS, single_request=True)
    magic = {int(s.kopecks) for s in scenarios.SCENARIOS if s.kopecks}
    ids = []
    for amount in (7, 99, 100, 12_345, 50_050, 10_007):
        assert amount % 100 not in magic
        ids.append(partner.ok("session/init/payout", payout_body(amount))["session"]["id"])
    bank.worker.drain()
    assert {status(partner, i)["payments"][0]["status"] for i in ids} == {"succeeded"}
