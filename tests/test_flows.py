"""The seeds' flows, end to end through the HTTP API, on SQLite and PostgreSQL."""

from __future__ import annotations

from banking import Onboard, available
from banking import event_bodies as events
from partner import INDIVIDUAL, ORGANISATION, destination, payout_body
from payout131.ledger.accounts import wallet_code
from payout131.runtime import Runtime


def test_two_step_from_settlement_account_confirmed(bank: Runtime, onboard: Onboard) -> None:
    partner = onboard(account=1_000_000)
    session = partner.ok("session/create/rko", {"metadata": "good"})["session"]
    assert session["status"] == "created"
    assert session["id"].startswith("ps_")

    started = partner.ok(
        "session/start/payout/rko",
        {"session_id": session["id"], **partner.rko_body(300_000, ORGANISATION)},
    )["session"]
    assert started["status"] == "in_progress"
    assert started["payments"][0]["status"] == "in_progress"
    assert partner.account is not None
    assert available(bank, partner.account) == 700_000  # held at start

    bank.worker.drain()
    ready = events(bank, session["id"])
    assert [e["type"] for e in ready] == ["ready_to_confirm"]
    body = ready[0]
    assert body["session"]["next_action"] == "confirm"
    assert body["session"]["payments"][0]["status"] == "pending"
    sender = body["confirm_information"]["account_details"]["sender"]
    recipient = body["confirm_information"]["account_details"]["recipient"]
    assert sender["account_number"] == partner.account
    assert sender["bik"] == "049205131"
    assert sender["correspondent_account_number"] == "30101810822029205131"
    assert sender["inn"] == "7707083893"
    assert sender["kpp"] == "773601001"
    assert recipient["account_number"] == ORGANISATION["account"]
    assert recipient["bik"] == "044525974"
    assert recipient["correspondent_account_number"] == "30101810145250000974"
    assert recipient["bank_name"]
    assert recipient["inn"] == "7707083893"

    confirmed = partner.ok(
        "session/confirm",
        {"session_id": session["id"], "confirm_information": body["confirm_information"]},
    )["session"]
    assert "next_action" not in confirmed
    bank.worker.drain()

    finished = events(bank, session["id"])[-1]
    assert finished["type"] == "payment_finished"
    assert finished["session"]["status"] == "accepted"
    assert finished["session"]["payments"][0]["status"] == "succeeded"
    assert "finished_at" in finished["session"]["payments"][0]
    status = partner.ok("session/status", {"session_id": session["id"]})["session"]
    assert status == finished["session"] | {"updated_at": status["updated_at"]}
    assert available(bank, partner.account) == 700_000
    report = partner.ok("report/account_balance", {"account_number": partner.account})
    assert report["balance"]["current_balance"] == 700_000
    assert report["account_currency"] == "RUB"


def test_two_step_from_collateral_wallet_confirmed(bank: Runtime, onboard: Onboard) -> None:
    partner = onboard(wallet=50_000)
    session = partner.ok("session/init/payout", payout_body(20_000))["session"]
    assert session["payments"][0]["amount_details"] == {"amount": 20_000, "currency": "rub"}
    assert partner.ok("wallet/balance", {})["wallets"][0]["amount_details"]["amount"] == 30_000

    bank.worker.drain()
    ready = events(bank, session["id"])[0]
    assert ready["type"] == "ready_to_confirm"
    assert "confirm_information" not in ready  # only /rko payouts carry it

    partner.ok("session/confirm", {"session_id": session["id"]})
    bank.worker.drain()
    assert [e["type"] for e in events(bank, session["id"])] == [
        "ready_to_confirm",
        "payment_finished",
    ]
    balance = partner.ok("wallet/balance", {"request_datetime": "2026-01-01T00:00:00Z"})
    assert balance["wallets"][0]["amount_details"]["amount"] == 30_000
    assert available(bank, wallet_code(partner.project)) == 30_000


def test_single_request_payout(bank: Runtime, onboard: Onboard) -> None:
    partner = onboard(wallet=10_000, single_request=True)
    session = partner.ok("session/init/payout", payout_body(10_000, metadata="good"))["session"]
    bank.worker.drain()
    sent = events(bank, session["id"])
    assert [e["type"] for e in sent] == ["payment_finished"]  # no ready_to_confirm
    payout = sent[0]["session"]["payments"][0]
    assert payout["status"] == "succeeded"
    assert payout["metadata"] == "good"
    assert payout["payment_method"]["bank_account"]["ru"]["account"] == INDIVIDUAL["account"]
    assert available(bank, wallet_code(partner.project)) == 0
    # a single-request payout has nothing to confirm
    partner.error("session/confirm", {"session_id": session["id"]}, 400, "session_wrong_state")


def test_cancel_releases_the_hold(bank: Runtime, onboard: Onboard) -> None:
    partner = onboard(account=100_000)
    session = partner.ok("session/init/payout/rko", partner.rko_body(60_000))["session"]
    bank.worker.drain()
    cancelled = partner.ok("session/cancel", {"session_id": session["id"]})["session"]
    assert cancelled["status"] == "cancelled"
    payout = cancelled["payments"][0]
    assert payout["status"] == "failed"
    assert payout["error"]["code"] == "session_cancelled_by_partner"
    assert partner.account is not None
    assert available(bank, partner.account) == 100_000
    finished = events(bank, session["id"])[-1]
    assert finished["type"] == "payment_finished"
    assert finished["session"]["status"] == "cancelled"
    partner.error("session/confirm", {"session_id": session["id"]}, 400, "session_wrong_state")
    partner.error("session/cancel", {"session_id": session["id"]}, 400, "session_wrong_state")


def test_v2_spelling_and_fields_carried_from_create(bank: Runtime, onboard: Onboard) -> None:
    partner = onboard(wallet=10_000)
    created = partner.ok(
        "session/create",
        {"payout_details": destination(), "amount_details": {"amount": 5_000, "currency": "RUB"}},
        version="v2",
    )["session"]
    assert created["payout_list"] == []
    started = partner.ok("session/start/payout", {"session_id": created["id"]}, version="v2")
    payout = started["session"]["payout_list"][0]
    assert payout["payout_details"]["bank_account"]["ru"]["bik"] == "044525974"
    assert payout["amount_details"] == {"amount": 5_000, "currency": "RUB"}  # echoed as sent
    v1 = partner.ok("session/status", {"session_id": created["id"]})["session"]
    assert "payment_method" in v1["payments"][0]


def test_confirm_timeout_fails_the_payout(bank: Runtime, onboard: Onboard) -> None:
    partner = onboard(wallet=10_000, confirm_timeout_s=60)
    session = partner.ok("session/init/payout", payout_body(10_000))["session"]
    bank.worker.drain()
    bank.clock.advance(59)  # type: ignore[attr-defined]
    bank.worker.drain()
    assert partner.ok("session/status", {"session_id": session["id"]})["session"]["status"] == (
        "in_progress"
    )
    bank.clock.advance(2)  # type: ignore[attr-defined]
    bank.worker.drain()
    final = partner.ok("session/status", {"session_id": session["id"]})["session"]
    assert final["status"] == "cancelled"
    assert final["payments"][0]["error"]["code"] == "confirm_timeout"
    assert available(bank, wallet_code(partner.project)) == 10_000
