"""The partner's side in the tests: its own project, RSA key and signed HTTP calls."""

from __future__ import annotations

import json
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric import rsa

from payout131.client import signing

INDIVIDUAL = {
    "bik": "044525974",
    "account": "40817810400003869535",
    "full_name": "Иванов Иван Иванович",
    "description": "Выплата по договору № 5015553111. НДС не облагается",
}
ORGANISATION = {
    "bik": "044525974",
    "account": "40702810500000000001",
    "full_name": 'ООО "Вектор"',
    "inn": "7707083893",
    "kpp": "773601001",
    "description": "Transfer of funds under the agreement for December 2025. VAT exempt",
}


def destination(ru: dict[str, Any] | None = None, **changes: Any) -> dict[str, Any]:
    fields = {**(ru or INDIVIDUAL), **changes}
    return {"type": "bank_account", "bank_account": {"system_type": "ru", "ru": fields}}


def payout_body(
    amount: int = 10_000, ru: dict[str, Any] | None = None, **extra: Any
) -> dict[str, Any]:
    return {
        "payment_method": destination(ru),
        "amount_details": {"amount": amount, "currency": "rub"},
        **extra,
    }


class Partner:
    """Signs each body with the partner's key and posts it, as a real integration would."""

    def __init__(self, http: httpx.Client, project: str, key: rsa.RSAPrivateKey) -> None:
        self.http, self.project, self.key = http, project, key
        self.account: str | None = None

    def post(
        self,
        method: str,
        body: Any = None,
        *,
        raw: bytes | None = None,
        version: str = "v1",
        headers: dict[str, str] | None = None,
        key: rsa.RSAPrivateKey | None = None,
    ) -> httpx.Response:
        content = raw if raw is not None else json.dumps(body if body is not None else {}).encode()
        sent = {
            "Content-Type": "application/json",
            "X-PARTNER-PROJECT": self.project,
            "X-PARTNER-SIGN": signing.sign(key or self.key, content),
            **(headers or {}),
        }
        return self.http.post(f"/api/{version}/{method}", content=content, headers=sent)

    def ok(self, method: str, body: Any = None, **options: Any) -> dict[str, Any]:
        response = self.post(method, body, **options)
        assert response.status_code == 200, response.text
        data: dict[str, Any] = response.json()
        assert data["status"] == "ok"
        return data

    def error(self, method: str, body: Any, status: int, code: str, **options: Any) -> str:
        """Post and expect the error envelope; return its description."""
        response = self.post(method, body, **options)
        assert response.status_code == status, response.text
        data = response.json()
        assert data["status"] == "error"
        assert data["error"]["code"] == code, data
        description: str = data["error"]["description"]
        return description

    def rko_body(
        self, amount: int = 10_000, ru: dict[str, Any] | None = None, **extra: Any
    ) -> dict[str, Any]:
        assert self.account, "open a settlement account first"
        return payout_body(
            amount, ru, participant_details={"sender": {"account": self.account}}, **extra
        )
