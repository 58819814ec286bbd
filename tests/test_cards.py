"""Payouts to bank cards (PROTOCOL §9) through the same path as every payout: a card by its
number, by a token from ``tokenize`` (``tokenized_card``) or by the widget's hash
(``encrypted_card``); v1 and v2, create+start and init, wallet and ``/rko``, both engines.

A card shows only as its brand, BIN and last four digits; its number is sealed by the vault
before anything is written, so the database (files or dump) never holds it in clear.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from banking import Onboard, available
from banking import event_bodies as events
from payout131.client import Amount, Card, Client, Recipient, TokenizedCard
from payout131.client.params import payout_fields
from payout131.clock import ManualClock
from payout131.ledger.accounts import wallet_code
from payout131.protocol import cards
from payout131.protocol.cards import brand_of, luhn_ok, with_check_digit
from payout131.rails import scenarios
from payout131.runtime import Runtime
from test_vault import _database_bytes

MIR = "2200000000000004"  # not a magic card: it succeeds
VISA = with_check_digit("411111111111111")
NAME = "Ivanov Ivan"
SHOWN = {"brand": "mir", "last4": "0004", "bin": "220000"}


def bank_card(number: str = MIR) -> dict[str, Any]:
    return {"type": "card", "card": {"type": "bank_card", "bank_card": {"number": number}}}


def by_token(token: str, kind: str = "tokenized_card") -> dict[str, Any]:
    key = "token" if kind == "tokenized_card" else "number_hash"
    return {"type": "card", "card": {"type": kind, kind: {key: token}}}


def body(
    destination: dict[str, Any] | None = None,
    amount: int = 10_000,
    version: str = "v1",
    **extra: Any,
) -> dict[str, Any]:
    key = "payment_method" if version == "v1" else "payout_details"
    return {
        key: destination or bank_card(),
        "amount_details": {"amount": amount, "currency": "rub"},
        "participant_details": {"recipient": {"full_name": NAME}},
        **extra,
    }


def payout_of(session: dict[str, Any]) -> dict[str, Any]:
    return (session.get("payments") or session["payout_list"])[0]


def test_the_card_rules() -> None:
    assert luhn_ok(MIR)
    assert luhn_ok(VISA)
    assert not luhn_ok("2200000000000005")
    assert [brand_of(n) for n in (MIR, VISA, "5555555555554444", "2221000000000009")] == [
        "mir",
        "visa",
        "mastercard",
        "mastercard",
    ]
    assert brand_of("6200000000000005") == "unionpay"
    assert brand_of("378282246310005") is None  # not a brand the bank pays to


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_a_single_request_payout_to_a_card(bank: Runtime, onboard: Onboard, version: str) -> None:
    partner = onboard(wallet=1_000_000, single_request=True)
    sent = body(version=version)
    session = partner.ok("session/init/payout", sent, version=version)["session"]
    key = "payment_method" if version == "v1" else "payout_details"
    assert payout_of(session)[key] == {"type": "card", "card": SHOWN}
    assert "transaction_info" not in payout_of(session)
    bank.worker.drain()
    (finished,) = events(bank, session["id"])
    assert finished["type"] == "payment_finished"
    payout = payout_of(finished["session"])
    assert payout["status"] == "succeeded"
    info = payout["transaction_info"]
    assert len(info["rrn"]) == 12
    assert info["rrn"].isdigit()
    assert len(info["auth_code"]) == 6
    assert info["auth_code"].isdigit()
    status = partner.ok("session/status", {"session_id": session["id"]}, version=version)
    assert payout_of(status["session"])["transaction_info"] == info  # the same on every read
    assert MIR not in json.dumps(finished)
    assert MIR not in json.dumps(status)
    assert available(bank, wallet_code(partner.project)) == 1_000_000 - 10_000


def test_a_two_step_payout_to_a_card_given_at_create(bank: Runtime, onboard: Onboard) -> None:
    partner = onboard(account=1_000_000)
    sender = {"sender": {"account": partner.account}, "recipient": {"full_name": NAME}}
    created = partner.ok(
        "session/create/rko", {"payment_method": bank_card(VISA), "participant_details": sender}
    )["session"]
    partner.ok(
        "session/start/payout/rko",
        {"session_id": created["id"], "amount_details": {"amount": 5_000, "currency": "rub"}},
    )
    bank.worker.drain()
    (ready,) = events(bank, created["id"])
    recipient = ready["confirm_information"]["account_details"]["recipient"]
    assert recipient == {
        "name": NAME,
        "brand": "visa",
        "bin": VISA[:6],
        "last4": VISA[-4:],
        "masked_number": f"{VISA[:6]}******{VISA[-4:]}",
    }
    other = {"account_details": {"recipient": {**recipient, "last4": "0004"}}}
    refused = partner.error(
        "session/confirm",
        {"session_id": created["id"], "confirm_information": other},
        400,
        "invalid_request",
    )
    assert refused.startswith("confirm_information.account_details.recipient.last4: does not")
    partner.ok(
        "session/confirm",
        {"session_id": created["id"], "confirm_information": ready["confirm_information"]},
    )
    bank.worker.drain()
    finished = events(bank, created["id"])[-1]
    assert payout_of(finished["session"])["status"] == "succeeded"
    assert available(bank, partner.account) == 1_000_000 - 5_000


def test_tokenize_a_card_and_pay_its_token_by_either_name(bank: Runtime, onboard: Onboard) -> None:
    partner = onboard(wallet=1_000_000, single_request=True)
    made = partner.ok("tokenize", {"type": "card", "card": {"number": VISA}})
    token = made["token"]
    assert made["data"] == {"brand": "visa", "last4": VISA[-4:], "bin": VISA[:6]}
    info = partner.ok("token/info", {"type": "card", "card": {"token": token}})["info"]
    assert info == {"type": "card", "token": token, **made["data"]}
    for kind in ("tokenized_card", "encrypted_card"):
        session = partner.ok("session/init/payout", body(by_token(token, kind)))["session"]
        assert payout_of(session)["payment_method"] == {"type": "card", "card": made["data"]}
    bank.worker.drain()
    assert available(bank, wallet_code(partner.project)) == 1_000_000 - 20_000
    other = onboard("other", wallet=1_000_000)  # a token is its project's alone
    refused = other.error("session/init/payout", body(by_token(token)), 404, "invalid_request")
    assert "tokenized_card.token: no such card token" in refused
    other.error("token/info", {"type": "card", "card": {"token": token}}, 404, "invalid_request")


@pytest.mark.parametrize(
    ("card", "field", "rule"),
    [
        ({"type": "bank_card", "bank_card": {"number": "2200000000000005"}}, "number", "Luhn"),
        ({"type": "bank_card", "bank_card": {"number": "2200000004"}}, "number", "14 to 19"),
        ({"type": "bank_card", "bank_card": {"number": 2200000000000004}}, "number", "string"),
        ({"type": "bank_card", "bank_card": {"number": "378282246310005"}}, "number", "brand"),
        ({"type": "bank_card", "bank_card": {}}, "number", "string"),
        ({"type": "bank_card", "bank_card": "2200000000000004"}, "bank_card", "object"),
        ({"type": "tokenized_card", "tokenized_card": {"token": "abc"}}, "token", "64 hex"),
        ({"type": "encrypted_card", "encrypted_card": {}}, "number_hash", "64 hex"),
        ({"type": "virtual_card"}, "type", "bank_card, tokenized_card, encrypted_card"),
    ],
)
def test_each_bad_card_field_is_named(
    bank: Runtime, onboard: Onboard, card: dict[str, Any], field: str, rule: str
) -> None:
    partner = onboard(wallet=1_000_000)
    sent = body({"type": "card", "card": card})
    refused = partner.error("session/init/payout", sent, 400, "invalid_request")
    assert refused.startswith("payment_method.card.")
    assert field in refused
    assert rule in refused
    with bank.db.read() as conn:  # nothing was written
        assert conn.exec_driver_sql("SELECT count(*) FROM card_tokens").scalar() == 0
        assert conn.exec_driver_sql("SELECT count(*) FROM sessions").scalar() == 0


def test_a_card_payout_needs_the_recipients_full_name(bank: Runtime, onboard: Onboard) -> None:
    partner = onboard(wallet=1_000_000)
    for party in ({}, {"recipient": {"first_name": "Ivan", "last_name": "Ivanov"}}):
        refused = partner.error(
            "session/init/payout", body(participant_details=party), 400, "invalid_request"
        )
        assert refused == "participant_details.recipient.full_name: required for a card payout"
    refused = partner.error(
        "session/create", {"payment_method": bank_card("4111")}, 400, "invalid_request"
    )
    assert refused.startswith("payment_method.card.bank_card.number: must be 14 to 19 digits")
    refused = partner.error(
        "tokenize", {"type": "card", "card": {"number": "2200000000000005"}}, 400, "invalid_request"
    )
    assert refused.startswith("card.number: fails the Luhn check digit")
    refused = partner.error("tokenize", {"type": "card"}, 400, "invalid_request")
    assert refused == "card: must be an object, got null"


@pytest.mark.parametrize(
    "magic",
    [m for m in scenarios.DESTINATIONS if m.kind in ("phone", "card")],
    ids=lambda m: m.scenario.name,
)
def test_each_magic_phone_and_card_plays_its_outcome(
    bank: Runtime, onboard: Onboard, magic: scenarios.Magic
) -> None:
    partner = onboard(wallet=1_000_000, single_request=True)
    if magic.kind == "card":
        destination = bank_card(magic.value)
    else:
        fps = {"phone": magic.value, "bank_id": "100000000004", "description": "Выплата"}
        destination = {
            "type": "bank_account",
            "bank_account": {"system_type": "faster_payment_system", "faster_payment_system": fps},
        }
    session = partner.ok("session/init/payout", body(destination))["session"]
    bank.worker.drain()
    (finished,) = events(bank, session["id"])
    payout = payout_of(finished["session"])
    assert (payout["status"], finished["session"]["status"]) == (
        magic.scenario.status,
        magic.scenario.session_status,
    )
    assert payout["error"] == {
        "code": magic.scenario.error_code,
        "description": magic.scenario.description,
    }
    assert "transaction_info" not in payout
    assert available(bank, wallet_code(partner.project)) == 1_000_000  # the hold came back


def test_the_amount_rule_holds_for_cards_too(
    bank: Runtime, onboard: Onboard, clock: ManualClock
) -> None:
    partner = onboard(wallet=1_000_000, single_request=True)
    rejected = scenarios.by_name("operation_rejected").example_amount
    session = partner.ok("session/init/payout", body(amount=rejected))["session"]
    bank.worker.drain()
    assert payout_of(events(bank, session["id"])[0]["session"])["error"]["code"] == (
        "operation_rejected"
    )


def test_no_card_number_in_the_database_or_its_dump(
    bank: Runtime, onboard: Onboard, database_url: str
) -> None:
    numbers = [with_check_digit(f"22020123456789{n}") for n in range(10, 14)]
    partner = onboard(account=1_000_000, wallet=1_000_000)
    partner.ok("session/init/payout", body(bank_card(numbers[0])))
    sender = {"sender": {"account": partner.account}, "recipient": {"full_name": NAME}}
    created = partner.ok(
        "session/create/rko",
        {"payout_details": bank_card(numbers[1]), "participant_details": sender},
        version="v2",
    )["session"]
    partner.ok(
        "session/start/payout/rko",
        {"session_id": created["id"], "amount_details": {"amount": 1_000, "currency": "rub"}},
        version="v2",
    )
    partner.ok("tokenize", {"type": "card", "card": {"number": numbers[2]}})
    partner.ok("session/create", {"payment_method": bank_card(numbers[3])})  # never started
    bank.worker.drain()
    ready = events(bank, created["id"])[0]
    partner.ok("session/confirm", {"session_id": created["id"]}, version="v2")
    assert ready["type"] == "ready_to_confirm"
    bank.worker.drain()
    stored = _database_bytes(database_url)
    for number in numbers:
        assert number.encode() not in stored
        assert number[-4:].encode() in stored  # what may be shown is kept


def test_the_sdk_pays_a_card_as_the_php_sdk_would(
    bank: Runtime, onboard: Onboard, http: httpx.Client
) -> None:
    partner = onboard(wallet=1_000_000, single_request=True)
    fields = payout_fields(
        "v2", destination=Card(MIR), amount=Amount(10_000), recipient=Recipient(full_name=NAME)
    )
    # the PHP SDK's serialisation of the same payout (PROTOCOL §9), in the v2 spelling
    assert fields == {
        "payout_details": bank_card(),
        "amount_details": {"amount": 10_000, "currency": "rub"},
        "participant_details": {"recipient": {"full_name": NAME}},
    }
    with Client(
        base_url=str(http.base_url), project=partner.project, private_key=partner.key
    ) as client:
        made = client.tokenize_card(VISA)
        assert (made.data.brand, made.data.last4) == ("visa", VISA[-4:])
        assert client.card_token_info(made.token).bin == VISA[:6]
        paid_to = (Card(MIR), TokenizedCard(made.token), TokenizedCard(made.token, widget=True))
        sessions = [
            client.init_payout(destination=to, amount=Amount(10_000), recipient=Recipient(NAME))
            for to in paid_to
        ]
        bank.worker.drain()
        for session in sessions:
            payout = client.status(session.id).payouts[0]
            assert payout.status == "succeeded"
            assert payout.transaction_info is not None
            assert payout.transaction_info.rrn is not None
        assert sessions[0].payouts[0].destination == {"type": "card", "card": SHOWN}


def test_a_card_bearing_idempotency_record_cannot_be_brute_forced(
    bank: Runtime, onboard: Onboard, database_url: str
) -> None:
    """The body of a keyed call is kept as a digest beside the answer; the answer shows the
    card's BIN and last four digits, so a plain SHA-256 would give the number away to 10^5
    guesses. A body is kept as a fingerprint under the vault's key instead, and a replay
    (replay mode) still finds it, as it finds a SHA-256 an earlier version kept."""
    partner = onboard(wallet=1_000_000, idempotency_mode="replay")
    raw = json.dumps(body(), ensure_ascii=False).encode()
    key = {"X-PARTNER-IDEMPOTENCY-KEY": "card-1"}
    first = partner.post("session/init/payout", raw=raw, headers=key)
    again = partner.post("session/init/payout", raw=raw, headers=key)
    assert first.status_code == again.status_code == 200
    assert again.content == first.content  # the stored answer, byte for byte
    other = raw.replace(MIR.encode(), VISA.encode())
    refused = partner.post("session/init/payout", raw=other, headers=key)
    assert refused.json()["error"]["description"].endswith("with a different request body")
    plain = json.dumps({"tokenize_widget": {"access": True}}).encode()  # no card in it
    partner.post("token", raw=plain, headers={"X-PARTNER-IDEMPOTENCY-KEY": "plain-1"})
    with bank.db.read() as conn:
        kept, no_card = conn.exec_driver_sql(
            "SELECT body_sha256 FROM idempotency_keys ORDER BY key"
        ).scalars()
    assert no_card == hashlib.sha256(plain).hexdigest()  # survives any vault rotation
    assert kept != hashlib.sha256(raw).hexdigest()
    assert kept == bank.vault.fingerprints(raw, b"idempotency body")[0]
    with bank.db.write() as conn:  # as an earlier version kept it: still replayed
        conn.exec_driver_sql(
            "UPDATE idempotency_keys SET body_sha256 = ? WHERE key = 'card-1'"
            if database_url.startswith("sqlite")
            else "UPDATE idempotency_keys SET body_sha256 = %s WHERE key = 'card-1'",
            (hashlib.sha256(raw).hexdigest(),),
        )
    assert partner.post("session/init/payout", raw=raw, headers=key).content == first.content


def test_the_widget_knows_the_card_rules_the_server_applies() -> None:
    """The widget's card form checks a number as it is typed with its own copy of the Luhn
    check and the brand table (it runs in the browser); the copy must say what the server's
    rules say."""
    script = (Path(__file__).resolve().parents[1] / "src/payout131/widget/widget.js").read_text()
    table = re.search(r"var BRANDS = \[(.*?)\];", script, re.DOTALL)
    assert table is not None
    rows = re.findall(r'\["(\w+)", (\d+), (\d+), (\d+)\]', table.group(1))
    assert [(b, int(lo), int(hi), int(n)) for b, lo, hi, n in rows] == list(cards._RANGES)
