"""Every SDK method on the wire: path, body and headers sent; answers and errors read.

``httpx.MockTransport`` plays the remote bank, answering with Bank 131's documented JSON.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest

from payout131.client import (
    Amount,
    AuthenticationError,
    AuthorizationError,
    Bank131Error,
    BankAccount,
    Client,
    ConfirmInformation,
    IdempotencyConflict,
    IdentificationError,
    InsufficientBalanceError,
    InternalServerError,
    InvalidRequestError,
    NotFoundError,
    Recipient,
    Sender,
    SessionWrongStateError,
    TokenizedAccount,
    UnexpectedResponseError,
)
from payout131.client.params import payout_fields

PRIVATE_PEM = (Path(__file__).parents[2] / "shared/fixtures/signing/private.pem").read_bytes()
ACCOUNT = BankAccount(
    bik="044525974",
    account="40702810500000000001",
    full_name="Vector LLC",
    description="Transfer under the agreement for December 2025. VAT exempt",
    inn="1111111111",
    kpp="156605101",
)
DESTINATION = {
    "type": "bank_account",
    "bank_account": {
        "system_type": "ru",
        "ru": {
            "bik": "044525974",
            "account": "40702810500000000001",
            "full_name": "Vector LLC",
            "description": "Transfer under the agreement for December 2025. VAT exempt",
            "inn": "1111111111",
            "kpp": "156605101",
        },
    },
}
CONFIRM_INFORMATION = {
    "account_details": {
        "sender": {
            "account_number": "40702810300200000013",
            "name": "ABC LLC",
            "bank_name": "Bank 131",
            "bik": "049205131",
            "correspondent_account_number": "30101810822029205131",
            "inn": "3316004790",
            "kpp": "156667101",
        },
        "recipient": {"account_number": "40702810500000000001", "name": "Vector LLC"},
    },
    "a_field_from_the_future": 1,
}
SESSION = {
    "id": "ps_2643",
    "status": "in_progress",
    "created_at": "2025-02-20T08:42:35.905869Z",
    "updated_at": "2025-02-20T08:42:36.382627Z",
    "next_action": "confirm",
    "session_metadata": {},
    "payments": [
        {
            "id": "po_513",
            "status": "pending",
            "created_at": "2025-02-20T08:42:35.965210Z",
            "payment_method": DESTINATION,
            "amount_details": {"amount": 300000, "currency": "RUB"},
            "paymentMetadata": {},
            "participant_details": {"sender": {"account": "40702810300200000013"}},
            "a_field_from_the_future": True,
        }
    ],
}


class Bank:
    """Records each request and answers with ``body`` (status 200 unless told)."""

    def __init__(self, body: Any, status: int = 200) -> None:
        self.body, self.status = body, status
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if isinstance(self.body, bytes):
            return httpx.Response(self.status, content=self.body)
        return httpx.Response(self.status, json=self.body)

    @property
    def sent(self) -> dict[str, Any]:
        body: dict[str, Any] = json.loads(self.requests[-1].content)
        return body

    @property
    def path(self) -> str:
        return self.requests[-1].url.path


def client_for(bank: Bank, api_version: str = "v1", **options: Any) -> Client:
    return Client(
        base_url="https://bank.example/",
        project="partner",
        private_key=PRIVATE_PEM,
        api_version=api_version,  # type: ignore[arg-type]
        transport=httpx.MockTransport(bank),
        sleep=lambda _: None,
        env={},
        **options,
    )


def session_bank() -> Bank:
    return Bank({"status": "ok", "session": SESSION})


# -- what is sent ------------------------------------------------------------------------

PAYOUT = {"destination": ACCOUNT, "amount": Amount(300000)}
SESSION_CALLS: list[tuple[str, Callable[[Client], object], str, dict[str, Any]]] = [
    ("create", lambda c: c.create_session(metadata="good"), "session/create", {"metadata": "good"}),
    (
        "create/rko",
        lambda c: c.create_session(rko=True, **PAYOUT),  # type: ignore[arg-type]
        "session/create/rko",
        {"DEST": DESTINATION, "amount_details": {"amount": 300000, "currency": "rub"}},
    ),
    (
        "start",
        lambda c: c.start_payout("ps_1", **PAYOUT),  # type: ignore[arg-type]
        "session/start/payout",
        {
            "session_id": "ps_1",
            "DEST": DESTINATION,
            "amount_details": {"amount": 300000, "currency": "rub"},
        },
    ),
    (
        "start/rko",
        lambda c: c.start_payout("ps_1", rko=True, sender=Sender("40702810300200000013")),
        "session/start/payout/rko",
        {
            "session_id": "ps_1",
            "participant_details": {"sender": {"account": "40702810300200000013"}},
        },
    ),
    (
        "init",
        lambda c: c.init_payout(**PAYOUT, customer={"reference": "user123"}),  # type: ignore[arg-type]
        "session/init/payout",
        {
            "DEST": DESTINATION,
            "amount_details": {"amount": 300000, "currency": "rub"},
            "customer": {"reference": "user123"},
        },
    ),
    (
        "init/rko",
        lambda c: c.init_payout(
            destination=TokenizedAccount("ab" * 32, "Ivanov Ivan Ivanovich", "Wire. VAT exempt"),
            amount=Amount(100, "RUB"),
            rko=True,
            sender=Sender("40702810300200000013"),
            recipient=Recipient(full_name="Ivanov Ivan Ivanovich"),
        ),
        "session/init/payout/rko",
        {
            "DEST": {
                "type": "bank_account",
                "bank_account": {
                    "system_type": "ru",
                    "ru": {
                        "token": "ab" * 32,
                        "full_name": "Ivanov Ivan Ivanovich",
                        "description": "Wire. VAT exempt",
                    },
                },
            },
            "amount_details": {"amount": 100, "currency": "RUB"},
            "participant_details": {
                "sender": {"account": "40702810300200000013"},
                "recipient": {"full_name": "Ivanov Ivan Ivanovich"},
            },
        },
    ),
    ("confirm", lambda c: c.confirm("ps_1"), "session/confirm", {"session_id": "ps_1"}),
    ("cancel", lambda c: c.cancel("ps_1"), "session/cancel", {"session_id": "ps_1"}),
    ("status", lambda c: c.status("ps_1"), "session/status", {"session_id": "ps_1"}),
]


@pytest.mark.parametrize("version", ["v1", "v2"])
@pytest.mark.parametrize(
    ("name", "call", "path", "body"), SESSION_CALLS, ids=[row[0] for row in SESSION_CALLS]
)
def test_session_methods_use_the_version_s_path_and_destination_name(
    version: str, name: str, call: Callable[[Client], object], path: str, body: dict[str, Any]
) -> None:
    bank = session_bank()
    with client_for(bank, version) as sdk:
        call(sdk)
    destination_key = {"v1": "payment_method", "v2": "payout_details"}[version]
    expected = {(destination_key if k == "DEST" else k): v for k, v in body.items()}
    assert bank.path == f"/api/{version}/{path}"
    assert bank.sent == expected


def test_a_request_carries_the_partner_headers() -> None:
    bank = session_bank()
    with client_for(bank) as sdk:
        sdk.create_session(idempotency_key="my-key")
    headers = bank.requests[0].headers
    assert headers["X-PARTNER-PROJECT"] == "partner"
    assert headers["Content-Type"] == "application/json"
    assert headers["X-PARTNER-SIGN"]
    assert headers["X-PARTNER-IDEMPOTENCY-KEY"] == "my-key"
    assert bank.requests[0].method == "POST"


OTHER_CALLS: list[tuple[str, Callable[[Client], object], Any, str, dict[str, Any], bool]] = [
    (
        "wallet_balance",
        lambda c: c.wallet_balance(
            datetime(2025, 2, 20, 11, 42, 35, 905869, timezone(timedelta(hours=3)))
        ),
        {
            "status": "ok",
            "wallets": [{"id": "w1", "amount_details": {"amount": 0, "currency": "rub"}}],
        },
        "wallet/balance",
        {"request_datetime": "2025-02-20T08:42:35.905869Z"},
        False,
    ),
    (
        "account_balance",
        lambda c: c.account_balance("40702810300200000013"),
        {
            "status": "ok",
            "account_number": "40702810300200000013",
            "account_currency": "RUB",
            "balance": {"current_balance": 123456},
        },
        "report/account_balance",
        {"account_number": "40702810300200000013"},
        False,
    ),
    (
        "public_token",
        lambda c: c.public_token(),
        {"status": "ok", "public_token": "f" * 64},
        "token",
        {"tokenize_widget": {"access": True}},
        True,
    ),
    (
        "tokenize",
        lambda c: c.tokenize("049205131", "40702810200000000025"),
        {"status": "ok", "token": "a" * 64, "data": {"masked_account": "40702***0025"}},
        "tokenize",
        {
            "type": "bank_account_ru",
            "bank_account_ru": {"bik": "049205131", "account": "40702810200000000025"},
        },
        True,
    ),
    (
        "token_info",
        lambda c: c.token_info("a" * 64),
        {
            "status": "ok",
            "info": {
                "type": "bank_account_ru",
                "token": "a" * 64,
                "masked_account": "40702***0025",
                "bik": "049205131",
                "bank_name": "Bank 131",
            },
        },
        "token/info",
        {"type": "bank_account_ru", "bank_account_ru": {"token": "a" * 64}},
        False,
    ),
]


@pytest.mark.parametrize("version", ["v1", "v2"])
@pytest.mark.parametrize(
    ("name", "call", "answer", "path", "body", "mutating"),
    OTHER_CALLS,
    ids=[row[0] for row in OTHER_CALLS],
)
def test_wallet_report_and_token_methods_stay_on_v1(
    version: str,
    name: str,
    call: Callable[[Client], Any],
    answer: Any,
    path: str,
    body: dict[str, Any],
    mutating: bool,
) -> None:
    bank = Bank(answer)
    with client_for(bank, version) as sdk:
        result = call(sdk)
    assert bank.path == f"/api/v1/{path}"
    assert bank.sent == body
    assert ("X-PARTNER-IDEMPOTENCY-KEY" in bank.requests[0].headers) is mutating
    assert result.raw == (answer["info"] if name == "token_info" else answer)


def test_wallet_balance_defaults_to_now_and_refuses_naive_datetimes() -> None:
    bank = Bank({"status": "ok", "wallets": []})
    with client_for(bank) as sdk:
        before = datetime.now(UTC)
        sdk.wallet_balance()
        sent = datetime.fromisoformat(bank.sent["request_datetime"])
        assert before <= sent <= datetime.now(UTC)
        assert bank.sent["request_datetime"].endswith("Z")
        with pytest.raises(ValueError, match="timezone-aware"):
            sdk.wallet_balance(datetime(2025, 1, 1))  # naive on purpose


def test_confirm_sends_confirm_information_back_as_the_webhook_delivered_it() -> None:
    from payout131.client.types import read

    typed = read(CONFIRM_INFORMATION, ConfirmInformation)
    bank = session_bank()
    with client_for(bank) as sdk:
        sdk.confirm("ps_2643", typed)
        assert bank.sent["confirm_information"] == CONFIRM_INFORMATION
        sdk.cancel("ps_2643", CONFIRM_INFORMATION)
        assert bank.sent == {"session_id": "ps_2643", "confirm_information": CONFIRM_INFORMATION}


def test_a_misspelt_payout_field_fails_at_run_time_too() -> None:
    with pytest.raises(TypeError, match="ammount"):
        payout_fields("v1", ammount=Amount(1))  # type: ignore[call-arg]


def test_money_is_an_int_of_minor_units() -> None:
    with pytest.raises(TypeError, match="minor units"):
        Amount(100.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Amount(True)


# -- what is read ------------------------------------------------------------------------


def test_a_v1_session_is_typed_and_keeps_its_raw_json() -> None:
    bank = session_bank()
    with client_for(bank) as sdk:
        session = sdk.status("ps_2643")
    assert session.id == "ps_2643"
    assert session.next_action == "confirm"
    assert session.created_at == datetime(2025, 2, 20, 8, 42, 35, 905869, UTC)
    [payout] = session.payouts
    assert payout.status == "pending"
    assert payout.amount_details == Amount(300000, "RUB")
    assert payout.destination == DESTINATION
    assert payout.payment_metadata == {}
    assert session.raw == SESSION
    assert payout.raw["a_field_from_the_future"] is True


def test_a_v2_session_lists_its_payouts_under_payout_list() -> None:
    payout = {"id": "po_1", "status": "failed", "error": {"code": "confirm_timeout"}}
    bank = Bank(
        {"status": "ok", "session": {"id": "ps_1", "status": "error", "payout_list": [payout]}}
    )
    with client_for(bank, "v2") as sdk:
        session = sdk.status("ps_1")
    assert [p.id for p in session.payouts] == ["po_1"]
    assert session.payouts[0].error is not None
    assert session.payouts[0].error.code == "confirm_timeout"


def test_balances_and_tokens_are_typed() -> None:
    answers = {name: answer for name, _, answer, *_ in OTHER_CALLS}
    with client_for(Bank(answers["account_balance"])) as sdk:
        assert sdk.account_balance("40702810300200000013").current_balance == 123456
    with client_for(Bank(answers["tokenize"])) as sdk:
        assert sdk.tokenize("049205131", "40702810200000000025").masked_account == "40702***0025"
    with client_for(Bank(answers["token_info"])) as sdk:
        assert sdk.token_info("a" * 64).bank_name == "Bank 131"
    with client_for(Bank(answers["wallet_balance"])) as sdk:
        assert sdk.wallet_balance().wallets[0].amount_details.amount == 0


# -- errors ------------------------------------------------------------------------------

ERRORS = [
    (400, "invalid_request", InvalidRequestError),
    (404, "invalid_request", NotFoundError),
    (401, "identification_error", IdentificationError),
    (401, "authentication_error", AuthenticationError),
    (403, "authorization_error", AuthorizationError),
    (400, "session_wrong_state", SessionWrongStateError),
    (400, "idempotency_key_already_exists", IdempotencyConflict),
    (400, "insufficient_wallet_balance", InsufficientBalanceError),
    (500, "internal_error", InternalServerError),
    (400, "a_code_from_the_future", Bank131Error),
]


@pytest.mark.parametrize(("status", "code", "cls"), ERRORS, ids=[row[1] for row in ERRORS])
def test_each_error_code_raises_its_class(status: int, code: str, cls: type[Bank131Error]) -> None:
    body = {"status": "error", "error": {"code": code, "description": "session_id: not found"}}
    with client_for(Bank(body, status), max_retries=0) as sdk, pytest.raises(cls) as caught:
        sdk.confirm("ps_1", idempotency_key="k")
    assert type(caught.value) is cls
    assert (caught.value.code, caught.value.http_status) == (code, status)
    assert caught.value.description == "session_id: not found"
    assert caught.value.idempotency_key == "k"
    assert caught.value.raw == body


def test_an_error_envelope_with_status_200_is_still_an_error() -> None:
    body = {"status": "error", "error": {"code": "session_wrong_state", "description": "x"}}
    with client_for(Bank(body)) as sdk, pytest.raises(SessionWrongStateError):
        sdk.confirm("ps_1")


@pytest.mark.parametrize(
    ("status", "content", "cls"),
    [
        (502, b"<html>bad gateway</html>", InternalServerError),
        (403, b"<html>forbidden by a proxy</html>", UnexpectedResponseError),
        (200, b"not json", UnexpectedResponseError),
        (200, b'{"status": "ok", "session": {"id": 5}}', UnexpectedResponseError),
        (200, b'{"status": "ok"}', UnexpectedResponseError),
    ],
)
def test_an_answer_without_the_envelope_is_reported_not_crashed_on(
    status: int, content: bytes, cls: type[Bank131Error]
) -> None:
    with client_for(Bank(content, status), max_retries=0) as sdk, pytest.raises(cls) as caught:
        sdk.status("ps_1")
    assert caught.value.http_status == status
