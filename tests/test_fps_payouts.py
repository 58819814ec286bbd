"""Payouts to a phone through the Faster Payments System (PROTOCOL §9), through the same path
as payouts to bank accounts: v1 and v2, create+start and init, from the wallet and from a
settlement account (``/rko``), on both engines; each bad field named; no return follows."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from banking import Onboard, available
from banking import event_bodies as events
from payout131.client import Amount, Client, FasterPayment, Recipient
from payout131.client.params import payout_fields
from payout131.client.types import read
from payout131.client.webhooks import ReadyToConfirm
from payout131.clock import ManualClock
from payout131.errors import SessionWrongState
from payout131.ledger.accounts import wallet_code
from payout131.rails import scenarios
from payout131.runtime import Runtime
from payout131.sandbox import forcing

PHONE, TBANK = "79161234567", "100000000004"
NAME = "Иванов Иван Иванович"


def fps(phone: str = PHONE, bank_id: str = TBANK, **changes: Any) -> dict[str, Any]:
    fields = {"phone": phone, "bank_id": bank_id, "description": "Выплата по договору 15"}
    fields.update(changes)
    return {
        "type": "bank_account",
        "bank_account": {"system_type": "faster_payment_system", "faster_payment_system": fields},
    }


def body(amount: int = 10_000, version: str = "v1", **extra: Any) -> dict[str, Any]:
    key = "payment_method" if version == "v1" else "payout_details"
    return {
        key: fps(),
        "amount_details": {"amount": amount, "currency": "rub"},
        "participant_details": {"recipient": {"full_name": NAME}},
        **extra,
    }


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_a_single_request_payout_to_a_phone(bank: Runtime, onboard: Onboard, version: str) -> None:
    partner = onboard(wallet=1_000_000, single_request=True)
    session = partner.ok("session/init/payout", body(version=version), version=version)
    session = session["session"]
    payouts = session["payments" if version == "v1" else "payout_list"]
    shown = payouts[0]["payment_method" if version == "v1" else "payout_details"]
    assert shown == fps()
    bank.worker.drain()
    finished = events(bank, session["id"])
    assert [e["type"] for e in finished] == ["payment_finished"]
    assert finished[0]["session"]["status"] == "accepted"
    assert available(bank, wallet_code(partner.project)) == 1_000_000 - 10_000


def test_a_two_step_payout_to_a_phone_from_a_settlement_account(
    bank: Runtime, onboard: Onboard
) -> None:
    partner = onboard(account=1_000_000)
    created = partner.ok("session/create/rko", {})["session"]
    sender = {"sender": {"account": partner.account}, "recipient": {"full_name": NAME}}
    started = partner.ok(
        "session/start/payout/rko",
        {"session_id": created["id"], **body(participant_details=sender)},
    )["session"]
    assert started["status"] == "in_progress"
    bank.worker.drain()
    (ready,) = events(bank, created["id"])
    recipient = ready["confirm_information"]["account_details"]["recipient"]
    assert recipient == {
        "phone": PHONE,
        "bank_id": TBANK,
        "name": NAME,
        "bank_name": "Т-Банк",
    }  # no account number: the money goes to a phone
    event = read(ready, ReadyToConfirm)  # the SDK reads it as a partner's app would
    assert event.confirm_information is not None
    shown = event.confirm_information.account_details.recipient
    assert (shown.phone, shown.bank_id, shown.account_number) == (PHONE, TBANK, None)
    echoed = {"account_details": {"recipient": {**recipient, "phone": "79990000000"}}}
    refused = partner.error(
        "session/confirm",
        {"session_id": created["id"], "confirm_information": echoed},
        400,
        "invalid_request",
    )
    assert refused.startswith("confirm_information.account_details.recipient.phone: does not")
    partner.ok(
        "session/confirm",
        {"session_id": created["id"], "confirm_information": ready["confirm_information"]},
    )
    bank.worker.drain()
    assert [e["type"] for e in events(bank, created["id"])][-1] == "payment_finished"
    assert partner.ok("session/status", {"session_id": created["id"]})["session"]["status"] == (
        "accepted"
    )


def test_no_return_follows_a_payout_to_a_phone(
    bank: Runtime, onboard: Onboard, clock: ManualClock
) -> None:
    partner = onboard(wallet=1_000_000, single_request=True)
    returned = scenarios.by_name("returned").example_amount  # comes back from an account
    session = partner.ok("session/init/payout", body(amount=returned))["session"]
    bank.worker.drain()
    clock.advance(4 * 86400)
    bank.worker.drain()
    assert [e["type"] for e in events(bank, session["id"])] == ["payment_finished"]
    assert available(bank, wallet_code(partner.project)) == 1_000_000 - returned


@pytest.mark.parametrize(
    ("change", "field", "rule"),
    [
        ({"phone": "89161234567"}, "faster_payment_system.phone", "11 digits starting with 7"),
        ({"phone": "7916123456"}, "faster_payment_system.phone", "11 digits starting with 7"),
        ({"phone": 79161234567}, "faster_payment_system.phone", "11 digits starting with 7"),
        ({"bank_id": "1000000000"}, "faster_payment_system.bank_id", "12 digits"),
        ({"bank_id": "100000099999"}, "faster_payment_system.bank_id", "not a Faster Payments"),
        ({"description": "x" * 141}, "faster_payment_system.description", "140"),
    ],
)
def test_each_bad_field_is_named(
    bank: Runtime, onboard: Onboard, change: dict[str, Any], field: str, rule: str
) -> None:
    partner = onboard(wallet=1_000_000)
    sent = body()
    sent["payment_method"]["bank_account"]["faster_payment_system"].update(change)
    refused = partner.error("session/init/payout", sent, 400, "invalid_request")
    assert f"payment_method.bank_account.{field}" in refused
    assert rule in refused


def test_the_recipients_name_and_the_description_are_required(
    bank: Runtime, onboard: Onboard
) -> None:
    partner = onboard(wallet=1_000_000)
    nameless = body(participant_details={})
    refused = partner.error("session/init/payout", nameless, 400, "invalid_request")
    assert refused.startswith("participant_details.recipient.full_name: required")
    undescribed = body()
    del undescribed["payment_method"]["bank_account"]["faster_payment_system"]["description"]
    refused = partner.error("session/init/payout", undescribed, 400, "invalid_request")
    assert "faster_payment_system.description: required" in refused
    split = body(participant_details={"recipient": {"first_name": "Иван", "last_name": "Иванов"}})
    partner.ok("session/init/payout", split)  # a name in parts does too
    listed = body(participant_details={"recipient": ["Иванов"]})
    refused = partner.error("session/init/payout", listed, 400, "invalid_request")
    assert refused.startswith("participant_details.recipient: must be an object")


def test_a_payout_to_a_phone_cannot_be_made_to_come_back(
    bank: Runtime, onboard: Onboard, clock: ManualClock
) -> None:
    partner = onboard(wallet=1_000_000, single_request=True)
    session = partner.ok("session/init/payout", body())["session"]
    bank.worker.drain()
    payout_n = int(session["payments"][0]["id"][3:])
    with bank.db.write() as conn, pytest.raises(SessionWrongState, match="no return ever"):
        forcing.force(conn, "simulator", payout_n, "return", None, clock.now())


def test_the_sdk_pays_a_phone_as_the_php_sdk_would(
    bank: Runtime, onboard: Onboard, http: httpx.Client
) -> None:
    partner = onboard(wallet=1_000_000, single_request=True)
    destination = FasterPayment(PHONE, TBANK, "Выплата по договору 15")
    fields = payout_fields(
        "v2",
        destination=destination,
        amount=Amount(10_000),
        recipient=Recipient(full_name=NAME),
    )
    # the PHP SDK's serialisation of the same payout (PROTOCOL §9), in the v2 spelling
    assert fields == {
        "payout_details": fps(),
        "amount_details": {"amount": 10_000, "currency": "rub"},
        "participant_details": {"recipient": {"full_name": NAME}},
    }
    with Client(
        base_url=str(http.base_url), project=partner.project, private_key=partner.key
    ) as client:
        session = client.init_payout(
            destination=destination, amount=Amount(10_000), recipient=Recipient(full_name=NAME)
        )
        bank.worker.drain()
        assert client.status(session.id).status == "accepted"
        assert session.payouts[0].payment_method == fps()
