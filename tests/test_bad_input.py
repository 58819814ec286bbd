"""Bad input gets the error envelope naming the field and the rule, and writes nothing."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from banking import Onboard
from partner import INDIVIDUAL, ORGANISATION, Partner, destination, payout_body
from payout131.runtime import Runtime
from payout131.storage import schema as t

TABLES = [t.sessions, t.payouts, t.holds, t.ledger_entries, t.events, t.idempotency_keys]


def row_counts(bank: Runtime) -> dict[str, int]:
    with bank.db.read() as conn:
        return {
            table.name: conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
            for table in TABLES
        }


@pytest.fixture
def partner(bank: Runtime, onboard: Onboard) -> Iterator[Partner]:
    funded = onboard(wallet=1_000_000, account=1_000_000)
    before = row_counts(bank)
    yield funded
    assert row_counts(bank) == before, "a rejected request wrote something"


def amount(value: Any) -> dict[str, Any]:
    return {**payout_body(), "amount_details": {"amount": value, "currency": "rub"}}


def ru(**changes: Any) -> dict[str, Any]:
    return {**payout_body(), "payment_method": destination(**changes)}


CASES: list[tuple[str, dict[str, Any], str]] = [
    ("zero amount", amount(0), "amount_details.amount"),
    ("negative amount", amount(-100), "amount_details.amount"),
    ("float amount", amount(1.5), "amount_details.amount"),
    ("string amount", amount("100"), "amount_details.amount"),
    ("boolean amount", amount(True), "amount_details.amount"),
    ("huge amount", amount(2**63), "amount_details.amount"),
    (
        "missing amount",
        {**payout_body(), "amount_details": {"currency": "rub"}},
        "amount_details.amount",
    ),
    ("no amount_details", {"payment_method": destination()}, "amount_details"),
    ("amount_details not an object", {**payout_body(), "amount_details": 5}, "amount_details"),
    (
        "dollars",
        {**payout_body(), "amount_details": {"amount": 1, "currency": "usd"}},
        "amount_details.currency",
    ),
    ("no destination", {"amount_details": {"amount": 1, "currency": "rub"}}, "payment_method"),
    ("destination a string", {**payout_body(), "payment_method": "card"}, "payment_method"),
    ("card", {**payout_body(), "payment_method": {"type": "card"}}, "payment_method.card"),
    (
        "sbp without its fields",
        {
            **payout_body(),
            "payment_method": {
                "type": "bank_account",
                "bank_account": {"system_type": "faster_payment_system"},
            },
        },
        "faster_payment_system",
    ),
    ("short bik", ru(bik="04452597"), "payment_method.bank_account.ru.bik"),
    (
        "bik not in directory",
        ru(bik="044525971", account="40817810500000270411"),
        "payment_method.bank_account.ru.bik",
    ),
    ("bank in liquidation", ru(bik="044525378"), "payment_method.bank_account.ru.bik"),
    ("seed account, wrong key", ru(account="40817810100000270411"), "control key"),
    (
        "19-digit account",
        ru(account="4081781040000386953"),
        "payment_method.bank_account.ru.account",
    ),
    (
        "account kind not payable",
        ru(account="40602810700000000025"),
        "payment_method.bank_account.ru.account",
    ),
    ("no full name", ru(full_name=""), "payment_method.bank_account.ru.full_name"),
    ("purpose with !", ru(description="Выплата!"), "payment_method.bank_account.ru.description"),
    ("purpose too long", ru(description="a" * 211), "payment_method.bank_account.ru.description"),
    (
        "purpose with emoji",
        ru(description="Выплата 😀"),
        "payment_method.bank_account.ru.description",
    ),
    (
        "organisation without INN",
        {**payout_body(), "payment_method": destination({**ORGANISATION, "inn": None})},
        "inn",
    ),
    (
        "organisation without KPP",
        {
            **payout_body(),
            "payment_method": destination({k: v for k, v in ORGANISATION.items() if k != "kpp"}),
        },
        "kpp",
    ),
    (
        "bad INN checksum",
        {**payout_body(), "payment_method": destination({**ORGANISATION, "inn": "7707083894"})},
        "inn",
    ),
    ("token not yet", ru(token="ab" * 32), "payment_method.bank_account.ru"),
]


@pytest.mark.parametrize(("name", "body", "names"), CASES, ids=[c[0] for c in CASES])
def test_invalid_payouts(partner: Partner, name: str, body: dict[str, Any], names: str) -> None:
    description = partner.error("session/init/payout", body, 400, "invalid_request")
    assert names in description, description


def test_control_key_message_names_field_account_and_bik(partner: Partner) -> None:
    description = partner.error(
        "session/init/payout",
        ru(bik="044525974", account="40817810400003869536"),
        400,
        "invalid_request",
    )
    assert description.startswith("payment_method.bank_account.ru.account:")
    assert "40817810400003869536" in description
    assert "044525974" in description


RAW_CASES = [
    ("malformed JSON", b'{"session_id": ', "not valid JSON"),
    ("not an object", b'"hello"', "must be a JSON object"),
    ("a list", b"[1, 2]", "must be a JSON object"),
    ("not UTF-8", b'{"metadata": "\xff\xfe"}', "body"),
]


@pytest.mark.parametrize(("name", "raw", "says"), RAW_CASES, ids=[c[0] for c in RAW_CASES])
def test_bodies_that_are_not_json_objects(
    partner: Partner, name: str, raw: bytes, says: str
) -> None:
    for method in ("session/create", "session/init/payout", "session/status"):
        response = partner.post(method, raw=raw)
        assert response.status_code == 400, (method, response.text)
        assert response.json()["error"]["code"] == "invalid_request"
        assert says in response.json()["error"]["description"]


def test_empty_array_means_empty_object(partner: Partner, bank: Runtime) -> None:
    response = partner.post("session/status", raw=b"[]")
    assert response.status_code == 400
    assert response.json()["error"]["description"] == "session_id: required"


def test_oversize_body_is_refused(partner: Partner, bank: Runtime) -> None:
    raw = b'{"metadata": "' + b"x" * bank.settings.max_body_bytes + b'"}'
    response = partner.post("session/create", raw=raw)
    assert response.status_code == 400
    assert "larger than the limit" in response.json()["error"]["description"]


@pytest.mark.parametrize("ref", ["ps_999999", "ps_x", "po_1", 42, "", "ps_" + "9" * 40])
def test_unknown_sessions(partner: Partner, ref: Any) -> None:
    response = partner.post("session/status", {"session_id": ref})
    assert response.status_code in (400, 404)
    assert response.json()["error"]["code"] == "invalid_request"
    assert response.json()["error"]["description"].startswith("session_id:")


def test_sender_account_rules(partner: Partner) -> None:
    body = payout_body()
    partner.error("session/init/payout/rko", body, 400, "invalid_request")
    unknown = payout_body(participant_details={"sender": {"account": "40702810300200000013"}})
    assert "no settlement account" in partner.error(
        "session/init/payout/rko", unknown, 404, "invalid_request"
    )


def test_wrong_variant_for_the_session(onboard: Onboard) -> None:
    partner = onboard(account=100_000)
    session = partner.ok("session/create", {})["session"]
    description = partner.error(
        "session/start/payout/rko",
        {"session_id": session["id"], **partner.rko_body()},
        400,
        "invalid_request",
    )
    assert "session/start/payout" in description


def test_insufficient_balance_fails_synchronously(bank: Runtime, onboard: Onboard) -> None:
    poor = onboard("poor", wallet=9_999)
    description = poor.error(
        "session/init/payout", payout_body(10_000), 400, "insufficient_wallet_balance"
    )
    assert "amount_details.amount" in description
    with bank.db.read() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(t.payouts)).scalar_one() == 0


def test_unknown_methods_and_verbs(partner: Partner) -> None:
    assert partner.post("session/explode", {}).status_code == 404
    assert partner.post("wallet/balance", {}, version="v2").status_code == 404
    assert partner.post("session/create", {}, version="v3").status_code == 404
    got = partner.http.get("/api/v1/session/create")
    assert got.status_code == 405
    assert got.json()["status"] == "error"
    assert "server" not in got.headers


def test_unknown_fields_are_ignored(onboard: Onboard) -> None:
    partner = onboard(wallet=100_000)
    body = {**payout_body(), "surprise": {"nested": [1, 2]}}
    body["payment_method"]["bank_account"]["ru"]["extra"] = "x"
    partner.ok("session/init/payout", body)
    assert INDIVIDUAL
