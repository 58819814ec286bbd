"""``fps/customer_verification`` (PROTOCOL §9): who owns a phone at a Faster Payments member,
asked before paying. A session whose one payout moves no money, answered ``in_progress``,
ended by the bank's answer with ``payment_finished``; v1 and v2, both engines."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from banking import Onboard, available
from banking import event_bodies as events
from payout131.client import Client
from payout131.clock import ManualClock
from payout131.errors import SessionWrongState
from payout131.ledger import check
from payout131.ledger.accounts import wallet_code
from payout131.rails import scenarios
from payout131.runtime import Runtime
from payout131.sandbox import forcing

KIND = "faster_payment_system_verification"
PHONE, TBANK = "79261234567", "100000000004"
FOUND = {"first_name": "Иван", "last_name": "И.", "middle_name": "Иванович"}


def asked(phone: str = PHONE, bank_id: str = TBANK) -> dict[str, Any]:
    return {
        "type": "bank_account",
        "bank_account": {"system_type": KIND, KIND: {"phone": phone, "bank_id": bank_id}},
    }


def body(version: str = "v2", **fields: Any) -> dict[str, Any]:
    key = "payout_details" if version == "v2" else "payment_method"
    return {key: fields.pop("destination", asked()), **fields}


def payout_of(session: dict[str, Any]) -> dict[str, Any]:
    return (session.get("payments") or session["payout_list"])[0]


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_a_verification_finds_the_owner_and_moves_no_money(
    bank: Runtime, onboard: Onboard, version: str
) -> None:
    partner = onboard()  # no money at all: a verification needs none
    key = "payout_details" if version == "v2" else "payment_method"
    session = partner.ok("fps/customer_verification", body(version), version=version)["session"]
    assert session["status"] == "in_progress"
    payout = payout_of(session)
    assert payout["status"] == "in_progress"
    assert payout[key] == asked()
    assert "amount_details" not in payout
    bank.worker.drain()
    (finished,) = events(bank, session["id"])
    assert finished["type"] == "payment_finished"
    assert finished["session"]["status"] == "accepted"
    payout = payout_of(finished["session"])
    assert payout["status"] == "succeeded"
    assert payout["participant_details"] == {"recipient": FOUND}
    read = partner.ok("session/status", {"session_id": session["id"]}, version=version)
    assert payout_of(read["session"])["participant_details"] == {"recipient": FOUND}
    assert available(bank, wallet_code(partner.project)) == 0
    with bank.db.read() as conn:
        assert check.violations(conn) == []
        holds = conn.exec_driver_sql("SELECT count(*) FROM holds").scalar()
        entries = conn.exec_driver_sql("SELECT count(*) FROM ledger_entries").scalar()
    assert (holds, entries) == (0, 0)


def test_what_the_partner_sent_is_kept_beside_what_was_found(
    bank: Runtime, onboard: Onboard
) -> None:
    partner = onboard()
    party = {"recipient": {"full_name": "Иванов Иван"}, "sender": {"full_name": "ООО Ромашка"}}
    sent = body(participant_details=party, metadata={"order": 7})
    session = partner.ok("fps/customer_verification", sent, version="v2")["session"]
    bank.worker.drain()
    payout = payout_of(events(bank, session["id"])[0]["session"])
    assert payout["participant_details"] == {
        "recipient": {"full_name": "Иванов Иван", **FOUND},
        "sender": {"full_name": "ООО Ромашка"},
    }
    assert payout["metadata"] == {"order": 7}


@pytest.mark.parametrize(
    "magic",
    [m for m in scenarios.DESTINATIONS if m.kind == "verification" and m.value],
    ids=lambda m: m.scenario.name,
)
def test_not_found_and_refused(bank: Runtime, onboard: Onboard, magic: scenarios.Magic) -> None:
    partner = onboard()
    assert magic.value is not None
    sent = body(destination=asked(magic.value))
    session = partner.ok("fps/customer_verification", sent, version="v2")["session"]
    bank.worker.drain()
    (finished,) = events(bank, session["id"])
    assert finished["session"]["status"] == "cancelled"
    payout = payout_of(finished["session"])
    assert payout["status"] == "failed"
    assert payout["error"] == {
        "code": magic.scenario.error_code,
        "description": magic.scenario.description,
    }
    assert "participant_details" not in payout


@pytest.mark.parametrize(
    ("destination", "rule"),
    [
        (asked("89261234567"), f"payout_details.bank_account.{KIND}.phone: 11 digits"),
        (asked(bank_id="100000099999"), f"payout_details.bank_account.{KIND}.bank_id: 1000000"),
        (asked(bank_id="1"), f"payout_details.bank_account.{KIND}.bank_id: a Faster"),
        (
            {"type": "bank_account", "bank_account": {"system_type": "ru"}},
            f"payout_details.bank_account.system_type: must be \"{KIND}\", got 'ru'",
        ),
        ({"type": "card"}, "payout_details.type: must be \"bank_account\", got 'card'"),
        (
            {"type": "bank_account", "bank_account": {"system_type": KIND}},
            f"payout_details.bank_account.{KIND}: must be an object, got null",
        ),
        ("79261234567", "payout_details: must be an object, got a string"),
    ],
)
def test_each_bad_field_is_named(
    bank: Runtime, onboard: Onboard, destination: Any, rule: str
) -> None:
    partner = onboard()
    refused = partner.error(
        "fps/customer_verification",
        body(destination=destination),
        400,
        "invalid_request",
        version="v2",
    )
    assert refused.startswith(rule)
    refused = partner.error("fps/customer_verification", {}, 400, "invalid_request")
    assert refused == "payment_method: required (the phone and the bank to ask)"
    with bank.db.read() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM sessions").scalar() == 0


def test_a_verification_cannot_be_confirmed_cancelled_or_returned(
    bank: Runtime, onboard: Onboard, clock: ManualClock
) -> None:
    partner = onboard()
    session = partner.ok("fps/customer_verification", body(), version="v2")["session"]
    for action in ("session/confirm", "session/cancel"):
        partner.error(action, {"session_id": session["id"]}, 400, "session_wrong_state")
    bank.worker.drain()
    payout_n = int(payout_of(session)["id"][3:])
    with bank.db.write() as conn, pytest.raises(SessionWrongState, match="no return ever"):
        forcing.force(conn, "simulator", payout_n, "return", None, clock.now())
    assert [e["type"] for e in events(bank, session["id"])] == ["payment_finished"]


def test_an_idempotency_key_guards_a_verification(bank: Runtime, onboard: Onboard) -> None:
    partner = onboard()
    key = {"X-PARTNER-IDEMPOTENCY-KEY": "verify-1"}
    partner.ok("fps/customer_verification", body(), version="v2", headers=key)
    partner.error(
        "fps/customer_verification",
        body(),
        400,
        "idempotency_key_already_exists",
        version="v2",
        headers=key,
    )
    with bank.db.read() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM sessions").scalar() == 1


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_the_sdk_verifies_a_customer(
    bank: Runtime, onboard: Onboard, http: httpx.Client, version: str
) -> None:
    partner = onboard()
    with Client(
        base_url=str(http.base_url),
        project=partner.project,
        private_key=partner.key,
        api_version=version,
    ) as client:
        session = client.verify_customer(PHONE, TBANK, metadata={"order": 1})
        assert session.status == "in_progress"
        assert session.payouts[0].destination == asked()
        bank.worker.drain()
        found = client.status(session.id).payouts[0]
        assert found.status == "succeeded"
        assert found.participant_details == {"recipient": FOUND}
        refused = client.verify_customer("79990000001", TBANK)
        bank.worker.drain()
        error = client.status(refused.id).payouts[0].error
        assert error is not None
        assert error.code == "account_not_found"
