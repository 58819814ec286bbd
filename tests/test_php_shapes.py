"""The official PHP SDK's own request bytes for Faster Payments, customer verification and
card payouts (PROTOCOL §9), sent through the server as that SDK sends them.

The bodies are what the SDK's ``JsonSerializer`` writes for its builders
(``BankAccountRuFps``, ``FpsVerificationRequest``, ``BankCard`` in ``CardPaymentMethod``):
nulls and empty arrays left out, ``/`` escaped as ``\\/``, UTF-8 as is. Each is signed over
those exact bytes and must be answered as the real bank would; each outcome follows.
"""

from __future__ import annotations

import json

import pytest

from banking import Onboard
from banking import event_bodies as events
from payout131.runtime import Runtime

NAME = "Иванов Иван Иванович"

FPS_PAYOUT = (
    '{"payout_details":{"type":"bank_account","bank_account":{"system_type":'
    '"faster_payment_system","faster_payment_system":{"phone":"79161234567",'
    '"bank_id":"100000000111","description":"Выплата по договору 15\\/2"}}},'
    '"amount_details":{"amount":10000,"currency":"rub"},'
    f'"participant_details":{{"recipient":{{"full_name":"{NAME}"}}}}}}'
)
CARD_PAYOUT = (
    '{"payout_details":{"type":"card","card":{"type":"bank_card","bank_card":'
    '{"number":"2200000000000004"}}},"amount_details":{"amount":10000,"currency":"rub"},'
    f'"participant_details":{{"recipient":{{"full_name":"{NAME}"}}}}}}'
)
VERIFICATION = (
    '{"%s":{"type":"bank_account","bank_account":{"system_type":'
    '"faster_payment_system_verification","faster_payment_system_verification":'
    '{"phone":"79261234567","bank_id":"100000000004"}}},'
    '"participant_details":{"recipient":{"first_name":"Иван","last_name":"Иванов"}}}'
)


def _payout(session: dict[str, object]) -> dict[str, object]:
    listed = session.get("payout_list") or session["payments"]
    assert isinstance(listed, list)
    payout: dict[str, object] = listed[0]
    return payout


@pytest.mark.parametrize("raw", [FPS_PAYOUT, CARD_PAYOUT], ids=["fps", "card"])
def test_the_php_sdks_payout_bodies(bank: Runtime, onboard: Onboard, raw: str) -> None:
    partner = onboard(wallet=1_000_000, single_request=True)
    response = partner.post("session/init/payout", raw=raw.encode(), version="v2")
    assert response.status_code == 200, response.text
    session = response.json()["session"]
    bank.worker.drain()
    (finished,) = events(bank, session["id"])
    assert _payout(finished["session"])["status"] == "succeeded"
    sent = json.loads(raw)["payout_details"]
    shown = _payout(session)["payout_details"]
    if sent["type"] == "card":  # a card shows as its brand, BIN and last four digits only
        assert shown == {"type": "card", "card": {"brand": "mir", "last4": "0004", "bin": "220000"}}
        assert "2200000000000004" not in json.dumps(finished)
    else:
        assert shown == sent  # the description's "\/" read as "/"


@pytest.mark.parametrize(("version", "field"), [("v2", "payout_details"), ("v1", "payment_method")])
def test_the_php_sdks_verification_bodies(
    bank: Runtime, onboard: Onboard, version: str, field: str
) -> None:
    """``fpsV2()`` sends the v2 spelling to /api/v2; ``fps()`` the v1 one to /api/v1."""
    partner = onboard()
    raw = (VERIFICATION % field).encode()
    response = partner.post("fps/customer_verification", raw=raw, version=version)
    assert response.status_code == 200, response.text
    session = response.json()["session"]
    assert session["status"] == "in_progress"
    bank.worker.drain()
    (finished,) = events(bank, session["id"])
    recipient = _payout(finished["session"])["participant_details"]
    assert recipient == {
        "recipient": {"first_name": "Иван", "last_name": "И.", "middle_name": "Иванович"}
    }
