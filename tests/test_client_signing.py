"""Request signatures: the cross-language vector, and the SDK signing exactly what it sends."""

from __future__ import annotations

from pathlib import Path

import httpx

from payout131.client import Amount, BankAccount, Client
from payout131.client.signing import load_private_key, load_public_key, sign, verify

FIXTURES = Path(__file__).parents[2] / "shared/fixtures/signing"


def test_signing_the_empty_object_gives_the_shared_vector() -> None:
    body = (FIXTURES / "body.json").read_bytes()
    assert body == b"{}"
    key = load_private_key((FIXTURES / "private.pem").read_bytes())
    expected = (FIXTURES / "expected-signature.txt").read_text().strip()
    assert sign(key, body) == expected
    assert verify(load_public_key((FIXTURES / "public.pem").read_bytes()), body, expected)


def test_the_sdk_signs_the_exact_utf8_bytes_it_sends() -> None:
    sent: list[httpx.Request] = []

    def bank(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(
            200, json={"status": "ok", "session": {"id": "ps_1", "status": "created"}}
        )

    destination = BankAccount(
        "044525974",
        "40817810400003869535",
        "Иванов Иван Иванович",
        "Выплата по договору № 5015553111 от 01.02.2026. НДС не облагается",
    )
    with Client(
        base_url="https://bank.example",
        project="partner",
        private_key=FIXTURES / "private.pem",
        transport=httpx.MockTransport(bank),
        env={},
    ) as sdk:
        sdk.init_payout(destination=destination, amount=Amount(10000))
    [request] = sent
    assert "Иванов".encode() in request.content
    public = load_public_key((FIXTURES / "public.pem").read_bytes())
    assert verify(public, request.content, request.headers["X-PARTNER-SIGN"])
    assert not verify(public, request.content + b" ", request.headers["X-PARTNER-SIGN"])
