"""Authentication and authorisation, as PROTOCOL §2 specifies, on every kind of method."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from banking import Onboard
from partner import payout_body
from payout131.client import signing
from payout131.runtime import Runtime

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "signing"
METHODS = ["session/create", "session/init/payout", "session/status", "wallet/balance"]


def test_the_bank131_test_vector_verifies(bank: Runtime, onboard: Onboard) -> None:
    key = signing.load_private_key((FIXTURES / "private.pem").read_bytes())
    expected = (FIXTURES / "expected-signature.txt").read_text().strip()
    assert signing.sign(key, (FIXTURES / "body.json").read_bytes()) == expected
    partner = onboard()
    partner.key = key  # register the fixture key for this project
    with bank.db.write() as conn:
        from payout131.project_keys import replace_keys

        pem = (FIXTURES / "public.pem").read_text()
        replace_keys(conn, partner.project, pem, bank.clock.now())
    bank.projects = type(bank.projects)(bank.db)  # no cached key
    response = partner.http.post(
        "/api/v1/session/create",
        content=b"{}",
        headers={"X-PARTNER-PROJECT": partner.project, "X-PARTNER-SIGN": expected},
    )
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("method", METHODS)
def test_missing_or_unknown_project(method: str, http: httpx.Client, onboard: Onboard) -> None:
    partner = onboard()
    raw = b"{}"
    sign = signing.sign(partner.key, raw)
    missing = http.post(f"/api/v1/{method}", content=raw, headers={"X-PARTNER-SIGN": sign})
    assert missing.status_code == 401
    assert missing.json()["error"]["code"] == "identification_error"
    unknown = http.post(
        f"/api/v1/{method}",
        content=raw,
        headers={"X-PARTNER-PROJECT": "nobody", "X-PARTNER-SIGN": sign},
    )
    assert unknown.status_code == 401
    assert unknown.json()["error"]["code"] == "identification_error"
    assert "nobody" in unknown.json()["error"]["description"]


@pytest.mark.parametrize("method", METHODS)
def test_bad_signatures_are_refused(
    method: str, onboard: Onboard, partner_keys: list[rsa.RSAPrivateKey]
) -> None:
    partner = onboard(wallet=10_000, key_index=0)
    raw = json.dumps(payout_body()).encode()
    good = signing.sign(partner.key, raw)
    other_body = signing.sign(partner.key, raw + b" ")
    cases = {
        "missing": None,
        "empty": "",
        "not base64": "%%%not-base64%%%",
        "truncated": good[:-8],
        "bit flipped": base64.b64encode(
            bytes([base64.b64decode(good)[0] ^ 1]) + base64.b64decode(good)[1:]
        ).decode(),
        "another body": other_body,
        "another key": signing.sign(partner_keys[1], raw),
    }
    for name, signature in cases.items():
        headers = {"X-PARTNER-PROJECT": partner.project}
        if signature is not None:
            headers["X-PARTNER-SIGN"] = signature
        response = partner.http.post(f"/api/v1/{method}", content=raw, headers=headers)
        assert response.status_code == 401, name
        assert response.json()["error"]["code"] == "authentication_error", name


def test_signature_is_over_the_exact_bytes(onboard: Onboard) -> None:
    """The PHP SDK escapes slashes; the bank must verify what was sent, not a re-encoding."""
    partner = onboard()
    raw = b'{"metadata":"a\\/b"}'
    created = partner.ok("session/create", raw=raw)
    assert created["session"]["metadata"] == "a/b"


def test_another_projects_session_is_not_reachable(onboard: Onboard) -> None:
    alice = onboard("alice", wallet=10_000)
    mallory = onboard("mallory", wallet=10_000)
    session = alice.ok("session/init/payout", payout_body())["session"]
    for method in ("session/status", "session/confirm", "session/cancel", "session/start/payout"):
        mallory.error(method, {"session_id": session["id"]}, 403, "authorization_error")


def test_another_projects_account_is_not_reachable(onboard: Onboard) -> None:
    alice = onboard("alice", account=100_000)
    mallory = onboard("mallory", account=100_000)
    assert alice.account is not None
    mallory.error(
        "report/account_balance", {"account_number": alice.account}, 403, "authorization_error"
    )
    body = payout_body(participant_details={"sender": {"account": alice.account}})
    mallory.error("session/init/payout/rko", body, 403, "authorization_error")


def test_disabled_project_is_refused(bank: Runtime, onboard: Onboard) -> None:
    partner = onboard(disabled=True)
    partner.error("session/create", {}, 403, "authorization_error")
