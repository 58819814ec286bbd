"""Tokenized bank accounts through the API: the seed's token flow, on SQLite and PostgreSQL.

``token`` issues a public token, ``tokenize`` turns a BIK and account into a token,
``token/info`` shows it masked, and payouts accept ``ru.token`` in place of both.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import sqlalchemy as sa

from banking import Onboard, event_bodies
from partner import INDIVIDUAL, ORGANISATION, Partner, destination
from payout131.protocol.validation import generate_account
from payout131.rails import InstantRail, Order, Status
from payout131.runtime import Runtime
from payout131.storage import schema as t

BIK = "044525974"
COMPANY_ACCOUNT = generate_account(BIK, "40702810", sequence=4_242_001)
PERSON_ACCOUNT = generate_account(BIK, "40817810", sequence=4_242_002)
HEX64 = re.compile(r"[0-9a-f]{64}")
RU = "payment_method.bank_account.ru"


class RecordingRail(InstantRail):
    """The instant rail, remembering every order it was handed."""

    def __init__(self) -> None:
        super().__init__()
        self.orders: list[Order] = []

    def submit(self, order: Order) -> Status:
        self.orders.append(order)
        return super().submit(order)


def tokenize(partner: Partner, account: str = COMPANY_ACCOUNT, bik: str = BIK) -> dict[str, Any]:
    body = {"type": "bank_account_ru", "bank_account_ru": {"bik": bik, "account": account}}
    return partner.ok("tokenize", body)


def by_token(token: str, **fields: Any) -> dict[str, Any]:
    """The ``ru`` of a payout to a tokenized organisation account."""
    ru = {k: v for k, v in ORGANISATION.items() if k not in ("bik", "account")}
    return {**ru, "token": token, **fields}


def ru_of(session: dict[str, Any], version: str = "v1") -> dict[str, Any]:
    payouts = session["payout_list" if version == "v2" else "payments"]
    key = "payout_details" if version == "v2" else "payment_method"
    ru: dict[str, Any] = payouts[0][key]["bank_account"]["ru"]
    return ru


def test_public_token_is_single_use_hex_and_stored_hashed(bank: Runtime, onboard: Onboard) -> None:
    partner = onboard()
    issued = partner.ok("token", {"tokenize_widget": {"access": True}})["public_token"]
    assert HEX64.fullmatch(issued)
    other = partner.ok("token", {"tokenize_widget": {"access": True}})["public_token"]
    assert other != issued
    with bank.db.read() as conn:
        rows = conn.execute(sa.select(t.public_tokens)).all()
    assert len(rows) == 2
    assert all(r.project_id == partner.project and r.used_at is None for r in rows)
    assert issued not in {r.token_sha256 for r in rows}
    assert all(r.expires_at - r.created_at == 24 * 3600 * 1_000_000 for r in rows)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "tokenize_widget: must be an object"),
        ({"tokenize_widget": {"access": False}}, "tokenize_widget.access: must be true"),
        ({"tokenize_widget": {}}, "tokenize_widget.access: must be true"),
    ],
)
def test_public_token_request_is_checked(
    onboard: Onboard, body: dict[str, Any], message: str
) -> None:
    assert onboard().error("token", body, 400, "invalid_request").startswith(message)


def test_tokenize_gives_a_token_and_the_mask(bank: Runtime, onboard: Onboard) -> None:
    partner = onboard()
    answer = tokenize(partner)
    assert answer["status"] == "ok"
    assert HEX64.fullmatch(answer["token"])
    assert answer["data"] == {"masked_account": f"40702***{COMPANY_ACCOUNT[-4:]}"}
    assert tokenize(partner)["token"] != answer["token"]  # every call makes a new token


@pytest.mark.parametrize(
    ("bik", "account"),
    [
        ("04452597", COMPANY_ACCOUNT),  # BIK too short
        (44525974, COMPANY_ACCOUNT),  # BIK not a string
        ("049999999", COMPANY_ACCOUNT),  # not in the directory
        (BIK, COMPANY_ACCOUNT[:-1] + str((int(COMPANY_ACCOUNT[-1]) + 1) % 10)),  # control key
        (BIK, "30101810145250000974"),  # a prefix no payout may go to
        (BIK, "4070281050000000000"),  # 19 digits
        (BIK, None),  # missing
    ],
)
def test_tokenize_refuses_what_a_payout_refuses(onboard: Onboard, bik: Any, account: Any) -> None:
    partner = onboard(wallet=10_000)
    fields = {"bik": bik, "account": account}
    refused = partner.error(
        "tokenize",
        {"type": "bank_account_ru", "bank_account_ru": fields},
        400,
        "invalid_request",
    )
    ru = {**INDIVIDUAL, **fields}
    body = {"payment_method": destination(ru), "amount_details": {"amount": 100, "currency": "rub"}}
    payout = partner.error("session/init/payout", body, 400, "invalid_request")
    assert refused == payout.replace(f"{RU}.", "bank_account_ru.")


def test_tokenize_checks_its_type(onboard: Onboard) -> None:
    partner = onboard()
    other = {"type": "sbp", "sbp": {"phone": "79161234567"}}
    refused = partner.error("tokenize", other, 400, "invalid_request")
    assert refused == 'type: must be "bank_account_ru" or "card", got \'sbp\''
    missing = {"type": "bank_account_ru"}
    assert partner.error("tokenize", missing, 400, "invalid_request").startswith(
        "bank_account_ru: must be an object"
    )


def test_token_info_shows_the_mask_bik_and_bank(bank: Runtime, onboard: Onboard) -> None:
    partner = onboard()
    token = tokenize(partner)["token"]
    info = partner.ok(
        "token/info", {"type": "bank_account_ru", "bank_account_ru": {"token": token}}
    )
    bank_entry = bank.directory.get(BIK)
    assert bank_entry is not None
    assert info["info"] == {
        "type": "bank_account_ru",
        "token": token,
        "masked_account": f"40702***{COMPANY_ACCOUNT[-4:]}",
        "bik": BIK,
        "bank_name": bank_entry.name,
    }


def test_a_token_exists_only_for_its_own_project(onboard: Onboard) -> None:
    owner, stranger = onboard("acme"), onboard("globex", wallet=10_000, account=10_000)
    token = tokenize(owner)["token"]
    ask = {"type": "bank_account_ru", "bank_account_ru": {"token": token}}
    made_up = {"type": "bank_account_ru", "bank_account_ru": {"token": "ab" * 32}}
    theirs = stranger.error("token/info", ask, 404, "invalid_request")
    assert theirs == stranger.error("token/info", made_up, 404, "invalid_request")
    pay = stranger.rko_body(100, by_token(token))
    foreign = stranger.error("session/init/payout/rko", pay, 404, "invalid_request")
    unknown = stranger.error(
        "session/init/payout/rko",
        stranger.rko_body(100, by_token("ab" * 32)),
        404,
        "invalid_request",
    )
    assert foreign == unknown == f"{RU}.token: no such token"


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_seed_token_flow_settlement_account(bank: Runtime, onboard: Onboard, version: str) -> None:
    """Seed steps: tokenize → token/info → create/rko → start/payout/rko with the token →
    ready_to_confirm with the real account in confirm_information → confirm → finished."""
    rail = RecordingRail()
    bank.worker.rail = rail
    partner = onboard(account=1_000_000)
    token = tokenize(partner)["token"]
    ask = {"type": "bank_account_ru", "bank_account_ru": {"token": token}}
    masked = partner.ok("token/info", ask)["info"]["masked_account"]

    session = partner.ok("session/create/rko", {"metadata": "good"}, version=version)["session"]
    body = partner.rko_body(300_000, by_token(token))
    if version == "v2":
        body["payout_details"] = body.pop("payment_method")
    started = partner.ok(
        "session/start/payout/rko", {"session_id": session["id"], **body}, version=version
    )["session"]
    shown = ru_of(started, version)
    assert shown["token"] == token
    assert shown["masked_account"] == masked
    assert "account" not in shown
    assert "bik" not in shown

    bank.worker.drain()
    [ready] = event_bodies(bank, session["id"])
    assert ready["type"] == "ready_to_confirm"
    assert ru_of(ready["session"], version) == shown  # webhooks speak the session's version
    recipient = ready["confirm_information"]["account_details"]["recipient"]
    assert recipient["account_number"] == COMPANY_ACCOUNT  # the one place it is shown
    assert recipient["bik"] == BIK
    assert recipient["inn"] == ORGANISATION["inn"]
    assert "token" not in recipient

    partner.ok(
        "session/confirm",
        {"session_id": session["id"], "confirm_information": ready["confirm_information"]},
        version=version,
    )
    bank.worker.drain()
    finished = event_bodies(bank, session["id"])[-1]
    assert finished["type"] == "payment_finished"
    assert finished["session"]["status"] == "accepted"
    assert COMPANY_ACCOUNT not in json.dumps(finished)
    status = partner.ok("session/status", {"session_id": session["id"]}, version=version)
    assert ru_of(status["session"], version)["token"] == token
    assert COMPANY_ACCOUNT not in json.dumps(status)
    [order] = rail.orders
    assert (order.account, order.token, order.bik) == (COMPANY_ACCOUNT, token, BIK)


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_init_payout_by_token_from_the_wallet(
    bank: Runtime, onboard: Onboard, version: str
) -> None:
    rail = RecordingRail()
    bank.worker.rail = rail
    partner = onboard(wallet=50_000, single_request=True)
    token = tokenize(partner, PERSON_ACCOUNT)["token"]
    ru = {"token": token, "full_name": "Иванов Иван Иванович", "description": "Выплата. НДС нет"}
    key = "payout_details" if version == "v2" else "payment_method"
    body = {key: destination(ru), "amount_details": {"amount": 20_000, "currency": "rub"}}
    session = partner.ok("session/init/payout", body, version=version)["session"]
    assert ru_of(session, version)["masked_account"] == f"40817***{PERSON_ACCOUNT[-4:]}"
    bank.worker.drain()
    [finished] = event_bodies(bank, session["id"])
    listed = finished["session"]["payout_list" if version == "v2" else "payments"]
    assert listed[0]["status"] == "succeeded"
    assert [o.account for o in rail.orders] == [PERSON_ACCOUNT]


def test_a_token_or_bik_and_account_not_both(onboard: Onboard) -> None:
    partner = onboard(account=10_000)
    token = tokenize(partner)["token"]
    both = partner.rko_body(100, by_token(token, bik=BIK, account=COMPANY_ACCOUNT))
    message = partner.error("session/init/payout/rko", both, 400, "invalid_request")
    assert message.startswith(f"{RU}: give either token or bik and account, not both")
    bad = partner.rko_body(100, by_token("not-a-token"))
    message = partner.error("session/init/payout/rko", bad, 400, "invalid_request")
    assert message.startswith(f"{RU}.token: must be a token of 64 hex digits")


def test_a_token_to_an_organisation_needs_no_inn_or_kpp(bank: Runtime, onboard: Onboard) -> None:
    """The seed's "to legal entities" request pays a token for a 40702 account with neither:
    the token stands for an account checked when it was made. Given ones are still checked,
    and confirm_information shows only what is known (docs/tokens.md)."""
    partner = onboard(account=10_000)
    token = tokenize(partner)["token"]
    bare = {k: v for k, v in by_token(token).items() if k not in ("inn", "kpp")}
    session = partner.ok("session/init/payout/rko", partner.rko_body(100, bare))["session"]
    bank.worker.drain()
    recipient = event_bodies(bank, session["id"])[0]["confirm_information"]["account_details"][
        "recipient"
    ]
    assert recipient["account_number"] == COMPANY_ACCOUNT
    assert "inn" not in recipient
    assert "kpp" not in recipient  # left out, never null
    bad_inn = by_token(token, inn="7707083894")
    message = partner.error(
        "session/init/payout/rko", partner.rko_body(100, bad_inn), 400, "invalid_request"
    )
    assert message.startswith(f"{RU}.inn: ")
    bad_kpp = by_token(token, kpp="77360100")
    message = partner.error(
        "session/init/payout/rko", partner.rko_body(100, bad_kpp), 400, "invalid_request"
    )
    assert message.startswith(f"{RU}.kpp: ")
    by_number = {k: v for k, v in ORGANISATION.items() if k not in ("inn", "kpp")}
    message = partner.error(  # an account given in full still needs the recipient's INN
        "session/init/payout/rko", partner.rko_body(100, by_number), 400, "invalid_request"
    )
    assert message.startswith(f"{RU}.inn: required for account 40702")


def test_confirm_information_echo_is_checked_against_the_real_account(
    bank: Runtime, onboard: Onboard
) -> None:
    partner = onboard(account=100_000)
    token = tokenize(partner)["token"]
    session = partner.ok("session/init/payout/rko", partner.rko_body(100, by_token(token)))
    session_id = session["session"]["id"]
    bank.worker.drain()
    info = event_bodies(bank, session_id)[0]["confirm_information"]
    info["account_details"]["recipient"]["account_number"] = PERSON_ACCOUNT
    message = partner.error(
        "session/confirm",
        {"session_id": session_id, "confirm_information": info},
        400,
        "invalid_request",
    )
    assert "does not match the payout's recipient account" in message
    info["account_details"]["recipient"]["account_number"] = COMPANY_ACCOUNT
    partner.ok("session/cancel", {"session_id": session_id, "confirm_information": info})


def test_create_then_start_keeps_a_token_given_at_create(bank: Runtime, onboard: Onboard) -> None:
    partner = onboard(account=100_000)
    token = tokenize(partner)["token"]
    body = partner.rko_body(5_000, by_token(token))
    session = partner.ok("session/create/rko", body)["session"]
    started = partner.ok(
        "session/start/payout/rko",
        {"session_id": session["id"], "participant_details": body["participant_details"]},
    )["session"]
    assert ru_of(started)["token"] == token
