"""verify_and_parse: signed webhooks become typed events; anything else is refused.

The fixture key pair plays the bank's key pair here; a fresh key plays a stranger's.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from payout131.client import (
    Client,
    Event,
    PaymentFinished,
    PaymentRefunded,
    ReadyToConfirm,
    SignatureError,
    WebhookError,
    verify_and_parse,
)
from payout131.client.signing import load_private_key, load_public_key, sign

FIXTURES = Path(__file__).parents[2] / "shared/fixtures/signing"
BANK_PRIVATE = load_private_key((FIXTURES / "private.pem").read_bytes())
BANK_PUBLIC = load_public_key((FIXTURES / "public.pem").read_bytes())

READY_TO_CONFIRM: dict[str, Any] = {
    "type": "ready_to_confirm",
    "session": {
        "id": "ps_2643",
        "status": "in_progress",
        "created_at": "2025-02-20T08:42:35.905869Z",
        "updated_at": "2025-02-20T08:42:36.382627Z",
        "payments": [
            {
                "id": "po_513",
                "status": "pending",
                "created_at": "2025-02-20T08:42:35.965210Z",
                "payment_method": {
                    "type": "bank_account",
                    "bank_account": {
                        "system_type": "ru",
                        "ru": {
                            "token": "3f03ee2580046153bb0aa859558e7ada" * 2,
                            "full_name": "Vector LLC",
                            "description": "Transfer of funds under the agreement. VAT exempt",
                        },
                    },
                },
                "amount_details": {"amount": 300000, "currency": "RUB"},
                "paymentMetadata": {},
                "participant_details": {"sender": {"account": "40702810300200000013"}},
            }
        ],
        "next_action": "confirm",
        "session_metadata": {},
    },
    "confirm_information": {
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
            "recipient": {
                "account_number": "40702810500000000001",
                "name": "Vector LLC",
                "bank_name": "Bank 131",
                "bik": "044525974",
                "correspondent_account_number": "30101810822000000974",
                "inn": "1111111111",
                "kpp": "156605101",
            },
        }
    },
}
PAYMENT_FINISHED: dict[str, Any] = {
    "type": "payment_finished",
    "session": {
        "id": "ps_3230",
        "status": "accepted",
        "created_at": "2025-05-27T02:03:00.000000Z",
        "updated_at": "2025-05-27T02:03:00.000000Z",
        "payout_list": [
            {
                "id": "po_2025",
                "status": "succeeded",
                "customer": {"reference": "user123", "contacts": [{"email": "user@gmail.com"}]},
                "amount_details": {"amount": 10000, "currency": "rub"},
                "metadata": "good",
            }
        ],
    },
}


def signed(
    body: dict[str, Any] | bytes, key: rsa.RSAPrivateKey = BANK_PRIVATE
) -> tuple[bytes, str]:
    raw = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode()
    return raw, sign(key, raw)


def test_ready_to_confirm_carries_the_session_and_what_will_be_paid() -> None:
    event = verify_and_parse(*signed(READY_TO_CONFIRM), BANK_PUBLIC)
    assert isinstance(event, ReadyToConfirm)
    assert event.session.next_action == "confirm"
    assert [p.status for p in event.session.payouts] == ["pending"]
    assert event.confirm_information is not None
    recipient = event.confirm_information.account_details.recipient
    assert recipient.account_number == "40702810500000000001"
    assert event.confirm_information.raw == READY_TO_CONFIRM["confirm_information"]
    assert event.raw == READY_TO_CONFIRM


def test_payment_finished_reads_v2_payout_list() -> None:
    event = verify_and_parse(*signed(PAYMENT_FINISHED), BANK_PUBLIC)
    assert isinstance(event, PaymentFinished)
    [payout] = event.session.payouts
    assert (payout.status, payout.metadata, payout.customer["reference"]) == (
        "succeeded",
        "good",
        "user123",
    )


def test_payment_refunded_shows_the_refunds() -> None:
    refund = {
        "id": "rf_1",
        "status": "succeeded",
        "amount_details": {"amount": 10000, "currency": "rub"},
    }
    body = json.loads(json.dumps(PAYMENT_FINISHED))
    body["type"] = "payment_refunded"
    body["session"]["payout_list"][0]["refunds"] = [refund]
    event = verify_and_parse(*signed(body), BANK_PUBLIC)
    assert isinstance(event, PaymentRefunded)
    assert [r.id for r in event.session.payouts[0].refunds] == ["rf_1"]


def test_an_unknown_type_is_a_plain_event_not_an_error() -> None:
    event = verify_and_parse(*signed({"type": "payout_reversed", "novelty": [1]}), BANK_PUBLIC)
    assert type(event) is Event
    assert event.type == "payout_reversed"
    assert event.session is None
    assert event.raw["novelty"] == [1]


def test_the_received_bytes_are_verified_never_re_serialised() -> None:
    # PHP escapes "/" as "\/": a re-serialised body would not match the signature.
    body = b'{"type":"payment_finished","session":{"id":"ps_1","status":"accepted",' + (
        b'"metadata":"a\\/b"}}'
    )
    event = verify_and_parse(*signed(body), BANK_PUBLIC)
    assert event.session is not None
    assert event.session.metadata == "a/b"


def test_the_key_may_be_given_as_pem_or_path() -> None:
    for key in ((FIXTURES / "public.pem").read_bytes(), FIXTURES / "public.pem"):
        assert verify_and_parse(*signed(PAYMENT_FINISHED), key).type == "payment_finished"


def test_a_client_parses_with_its_configured_bank_key() -> None:
    with Client(
        base_url="http://bank",
        project="p",
        private_key=BANK_PRIVATE,
        bank_public_key=BANK_PUBLIC,
        env={},
    ) as sdk:
        assert isinstance(sdk.parse_webhook(*signed(READY_TO_CONFIRM)), ReadyToConfirm)


def test_a_signature_by_another_key_is_refused() -> None:
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(SignatureError):
        verify_and_parse(*signed(READY_TO_CONFIRM, stranger), BANK_PUBLIC)


def test_a_tampered_body_is_refused() -> None:
    body, signature = signed(PAYMENT_FINISHED)
    tampered = body.replace(b"10000", b"99999")
    with pytest.raises(SignatureError):
        verify_and_parse(tampered, signature, BANK_PUBLIC)


@pytest.mark.parametrize("signature", [None, "", "not base64!", "c2lnbmF0dXJl"])
def test_a_missing_or_garbled_signature_is_refused(signature: str | None) -> None:
    with pytest.raises(SignatureError):
        verify_and_parse(json.dumps(PAYMENT_FINISHED).encode(), signature, BANK_PUBLIC)


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'{"no": "type"}',
        b'{"type": 7}',
        b'{"type": "ready_to_confirm"}',
        b'{"type": "payment_finished", "session": {"id": "ps_1"}}',
    ],
)
def test_a_signed_body_that_is_not_an_event_is_a_webhook_error(body: bytes) -> None:
    with pytest.raises(WebhookError) as caught:
        verify_and_parse(*signed(body), BANK_PUBLIC)
    assert not isinstance(caught.value, SignatureError)
