"""Security checks across the whole API (test_auth.py has the per-rule basics).

- every method, in every version, refuses a missing, malformed, truncated, reused or other
  project's signature, and writes nothing;
- a project can never read or act on another project's sessions or accounts, in any version;
- bodies are capped, chunked or not, before anything else is done with them;
- the logs of a real ``payout131 serve`` never hold a private key, a signature or a
  tokenized account's number; no response names the server software.
"""

from __future__ import annotations

import base64
import json
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from banking import Onboard
from partner import ORGANISATION, Partner, payout_body
from payout131 import projects
from payout131.cli.setup import initialise
from payout131.client import signing
from payout131.clock import SystemClock
from payout131.ledger import accounts, book
from payout131.protocol import methods as api
from payout131.protocol.validation import generate_account
from payout131.runtime import Runtime
from payout131.settings import Settings
from payout131.storage import Database
from payout131.tools.chaos.processes import ServerProcess
from snapshot import snapshot

PATHS = [
    f"/api/{version}/{name}" for name, m in sorted(api.METHODS.items()) for version in m.versions
]
SESSION_METHODS = [
    "session/start/payout",
    "session/start/payout/rko",
    "session/confirm",
    "session/cancel",
    "session/status",
]


def test_every_method_refuses_every_bad_signature(
    bank: Runtime, onboard: Onboard, partner_keys: list[rsa.RSAPrivateKey]
) -> None:
    alice = onboard("alice", wallet=100_000, account=100_000, key_index=0)
    onboard("bob", key_index=1)  # a registered project: its key is a real one, not ours
    raw = json.dumps(payout_body(1_000)).encode()
    good = signing.sign(alice.key, raw)
    earlier = signing.sign(alice.key, json.dumps({"session_id": "ps_1"}).encode())
    cases = {
        "missing": None,
        "empty": "",
        "malformed": "not base64 at all!",
        "url-safe alphabet": good.replace("+", "-").replace("/", "_"),
        "truncated": good[:-4],
        "one byte short": base64.b64encode(base64.b64decode(good)[:-1]).decode(),
        "extended": base64.b64encode(base64.b64decode(good) + b"\x00").decode(),
        "reused from another body": earlier,
        "another project's key": signing.sign(partner_keys[1], raw),
        "signature of the empty body": signing.sign(alice.key, b""),
    }
    if "-" not in cases["url-safe alphabet"] and "_" not in cases["url-safe alphabet"]:
        del cases["url-safe alphabet"]  # this signature has neither character
    before = snapshot(bank)
    for path in PATHS:
        for name, signature in cases.items():
            headers = {"X-PARTNER-PROJECT": alice.project}
            if signature is not None:
                headers["X-PARTNER-SIGN"] = signature
            response = alice.http.post(path, content=raw, headers=headers)
            assert response.status_code == 401, (path, name, response.text)
            assert response.json()["error"]["code"] == "authentication_error", (path, name)
        # bob's header with alice's valid signature: verified against bob's key, refused
        swapped = {"X-PARTNER-PROJECT": "bob", "X-PARTNER-SIGN": good}
        response = alice.http.post(path, content=raw, headers=swapped)
        assert response.status_code == 401, (path, response.text)
    assert snapshot(bank) == before


@pytest.fixture
def strangers(bank: Runtime, onboard: Onboard) -> tuple[Partner, Partner, dict[str, str]]:
    """Alice's sessions in every state, and Mallory, funded, who must not touch them."""
    alice = onboard("alice", wallet=100_000, account=100_000)
    mallory = onboard("mallory", wallet=100_000, account=100_000)
    created = alice.ok("session/create", payout_body(1_000))["session"]["id"]
    created_rko = alice.ok("session/create/rko", alice.rko_body(1_000))["session"]["id"]
    pending = alice.ok("session/init/payout", payout_body(1_000))["session"]["id"]
    bank.worker.drain()
    return alice, mallory, {"created": created, "created_rko": created_rko, "pending": pending}


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_another_projects_sessions_are_out_of_reach(
    bank: Runtime, strangers: tuple[Partner, Partner, dict[str, str]], version: str
) -> None:
    alice, mallory, sessions = strangers
    before = snapshot(bank)
    for method in SESSION_METHODS:
        for state, session_id in sessions.items():
            body: dict[str, Any] = {"session_id": session_id}
            if method.startswith("session/start"):  # a complete payout of mallory's own
                body |= mallory.rko_body(1_000) if method.endswith("rko") else payout_body(1_000)
            description = mallory.error(method, body, 403, "authorization_error", version=version)
            assert "another project" in description, (method, state)
            assert alice.account is not None
            assert alice.account not in description
    assert snapshot(bank) == before
    status = alice.ok("session/status", {"session_id": sessions["pending"]}, version=version)
    assert status["session"]["next_action"] == "confirm"  # untouched


def test_another_projects_accounts_are_out_of_reach(
    bank: Runtime, strangers: tuple[Partner, Partner, dict[str, str]]
) -> None:
    alice, mallory, _ = strangers
    assert alice.account is not None
    before = snapshot(bank)
    theirs = {"participant_details": {"sender": {"account": alice.account}}}
    for version in ("v1", "v2"):
        for method in ("session/init/payout/rko", "session/create/rko"):
            body = payout_body(1_000, **theirs)
            response = mallory.post(method, body, version=version)
            if method == "session/create/rko" and response.status_code == 200:
                # a draft names the account; starting it must be refused
                session_id = response.json()["session"]["id"]
                before = snapshot(bank)
                mallory.error(
                    "session/start/payout/rko",
                    {"session_id": session_id},
                    403,
                    "authorization_error",
                    version=version,
                )
                continue
            assert response.status_code == 403, response.text
    mallory.error(
        "report/account_balance", {"account_number": alice.account}, 403, "authorization_error"
    )
    assert snapshot(bank) == before
    # the wallet answer is always the caller's own
    wallets = mallory.ok("wallet/balance", {})["wallets"]
    assert [w["id"] for w in wallets] == ["mallory"]


def _chunks(raw: bytes, size: int = 4096) -> Iterator[bytes]:
    for start in range(0, len(raw), size):
        yield raw[start : start + size]


def test_body_cap_applies_to_chunked_bodies_and_before_authentication(
    bank: Runtime, http: httpx.Client
) -> None:
    limit = bank.settings.max_body_bytes
    raw = b'{"metadata": "' + b"x" * limit + b'"}'
    before = snapshot(bank)
    for path in ("/api/v1/session/create", "/api/v2/session/init/payout"):
        chunked = http.post(path, content=_chunks(raw), headers={"X-PARTNER-PROJECT": "nobody"})
        assert "content-length" not in chunked.request.headers
        assert chunked.status_code == 400, chunked.text
        assert "larger than the limit" in chunked.json()["error"]["description"]
        declared = http.post(path, content=raw, headers={"X-PARTNER-PROJECT": "nobody"})
        assert declared.status_code == 400
    assert snapshot(bank) == before


# --- a real ``payout131 serve``: its logs and its headers -------------------------------------


def _register(url: str, project_id: str, key: rsa.RSAPrivateKey, webhook_url: str) -> str:
    db = Database(url)
    try:
        now = SystemClock().now()
        with db.write() as conn:
            pem = signing.public_key_pem(key).decode()
            projects.add_project(
                conn, project_id, pem, now, webhook_url=webhook_url,
                legal_name='ООО "Ромашка"', inn="7707083893", kpp="773601001",
            )  # fmt: skip
            number = accounts.open_settlement_account(conn, project_id, now)
            target = accounts.account_id(conn, number)
            assert target is not None
            book.topup(conn, target, 1_000_000, now)
            return number
    finally:
        db.dispose()


def _pem_lines(key: rsa.RSAPrivateKey) -> list[str]:
    """The base64 lines of a private key's PEM, in both usual encodings."""
    lines = []
    for fmt in (serialization.PrivateFormat.PKCS8, serialization.PrivateFormat.TraditionalOpenSSL):
        pem = key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption())
        lines += [line for line in pem.decode().splitlines() if not line.startswith("-----")]
    return lines


CARDS = ["2202012345678905", "4111111111111111", "5555555555554444"]  # valid Luhn digits


def test_served_logs_hold_no_secrets_and_no_banner(
    database_url: str, tmp_path: Path, partner_keys: list[rsa.RSAPrivateKey]
) -> None:
    home = tmp_path / "home"
    initialise(Settings(home=home, database_url=database_url), demo=False)
    key = partner_keys[0]
    sender = _register(database_url, "acme", key, webhook_url="http://127.0.0.1:9/hook")
    env = {"PATH": "/usr/bin:/bin", "PAYOUT131_HOME": str(home), "PAYOUT131_LOG_FORMAT": "json"}
    env |= {"PAYOUT131_DATABASE_URL": database_url, "PAYOUT131_WEBHOOK_SCHEDULE": "0,1s"}
    server = ServerProcess(env, tmp_path / "serve.log")
    server.start()
    secret_account = generate_account("044525974", "40702810", sequence=7_654_321)
    signatures: list[str] = []
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:

            def call(method: str, body: Any, *, sign_with: rsa.RSAPrivateKey = key) -> Any:
                raw = json.dumps(body).encode()
                signature = signing.sign(sign_with, raw)
                signatures.append(signature)
                headers = {"X-PARTNER-PROJECT": "acme", "X-PARTNER-SIGN": signature}
                response = client.post(f"/api/v1/{method}", content=raw, headers=headers)
                assert "server" not in response.headers
                return response

            tokenized = call(
                "tokenize",
                {"type": "bank_account_ru", "bank_account_ru": {
                    "bik": "044525974", "account": secret_account}},
            ).json()  # fmt: skip
            ru = {k: v for k, v in ORGANISATION.items() if k not in ("bik", "account")}
            body = payout_body(10_000, {**ru, "token": tokenized["token"]})
            body["participant_details"] = {"sender": {"account": sender}}
            session = call("session/init/payout/rko", body).json()["session"]["id"]
            _wait_for_next_action(call, session)
            assert call("session/confirm", {"session_id": session}).status_code == 200
            assert call("session/status", {"session_id": "ps_999999"}).status_code == 404
            forged = call("session/status", {"session_id": session}, sign_with=partner_keys[1])
            assert forged.status_code == 401
            bad = call("tokenize", {"bank_account_ru": {"account": secret_account}})
            assert bad.status_code == 400
            # cards (PROTOCOL §9): paid, tokenized, refused, and by the widget's card form
            card = {"type": "bank_card", "bank_card": {"number": CARDS[0]}}
            paid = {"payment_method": {"type": "card", "card": card},
                    "amount_details": {"amount": 1_000, "currency": "rub"},
                    "participant_details": {"sender": {"account": sender},
                                            "recipient": {"full_name": "Ivanov Ivan"}}}  # fmt: skip
            carded = call("session/init/payout/rko", paid).json()["session"]["id"]
            _wait_for_next_action(call, carded)
            assert call("session/confirm", {"session_id": carded}).status_code == 200
            made = call("tokenize", {"type": "card", "card": {"number": CARDS[1]}})
            assert made.status_code == 200
            mistyped = call("tokenize", {"type": "card", "card": {"number": CARDS[1][:-1] + "0"}})
            assert mistyped.status_code == 400
            public = call("token", {"tokenize_widget": {"access": True}}).json()["public_token"]
            widget = client.post(
                "/widget/api/tokenize", json={"public_token": public, "card_number": CARDS[2]}
            )
            assert widget.status_code == 200
            _wait_for_dead_webhooks(call, server.log)
            for path, method in (("/nowhere", "GET"), ("/api/v1/session/status", "GET"),
                                 ("/health", "GET"), ("/openapi.json", "GET"),
                                 ("/metrics", "GET"), ("/widget/", "GET"),
                                 ("/widget/api/bank?bik=044525974", "GET"),
                                 ("/widget/api/tokenize", "POST")):  # fmt: skip
                assert "server" not in client.request(method, path).headers, path
        assert "server:" not in _raw_exchange(server.port, b"NONSENSE\r\n\r\n").lower()
    finally:
        server.stop()
    log = server.log.read_text(encoding="utf-8", errors="replace")
    assert "payout131 listening" in log  # the log was captured
    secrets = {
        "partner key": _pem_lines(key),
        "bank key": _pem_lines(_load_key(home / "bank-private.pem")),
        "vault key": [(home / "vault.key").read_text().strip()],
        "request signature": signatures,
        "tokenized account": [secret_account],
        "card number": [*CARDS, CARDS[1][:-1] + "0"],
    }
    for name, values in secrets.items():
        for value in values:
            assert value
            assert value not in log, f"the log shows a {name}"
    assert not re.search(r"\b\d{20}\b", log.replace(sender, "")), "an account number is logged"
    # any signature, the webhooks' included: RSA-2048 in Base64 is 344 characters
    assert not re.search(r"[A-Za-z0-9+/]{100,}", log), "a signature-like blob is logged"
    _the_lines_an_operator_searches_by(log, session, carded)


def _json_lines(log: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.splitlines() if line.startswith("{")]


def _wait_for_dead_webhooks(call: Any, log: Path) -> None:
    """Until the webhooks to the closed port have used their two attempts (0, 1 s)."""
    for _ in range(200):
        lines = _json_lines(log.read_text(encoding="utf-8", errors="replace"))
        if any(line.get("status") == "dead" for line in lines):
            return
        time.sleep(0.05)
    raise AssertionError("no webhook went dead")


def _the_lines_an_operator_searches_by(log: str, session: str, carded: str) -> None:
    """PAYOUT131_LOG_FORMAT=json: a request line per call with the partner's ids, codes
    and latency; a line per payout state change; webhook failures with their status."""
    lines = _json_lines(log)
    assert lines, "no JSON log lines"
    requests = [line for line in lines if line["event"] == "request"]
    for line in requests:
        assert {"timestamp", "level", "http_method", "path", "status", "latency_ms"} <= set(line)
    confirm = next(
        line
        for line in requests
        if line.get("method") == "session/confirm" and line["session"] == session
    )
    assert (confirm["project"], confirm["version"], confirm["status"]) == ("acme", "v1", 200)
    assert confirm["payout"].startswith("po_")
    assert confirm["error"] is None
    codes = {(line.get("method"), line["status"], line.get("error")) for line in requests}
    assert ("session/status", 404, "invalid_request") in codes  # ps_999999
    assert ("session/status", 401, "authentication_error") in codes
    assert ("tokenize", 400, "invalid_request") in codes
    assert (None, 404, "invalid_request") in codes  # /nowhere
    moves = [line for line in lines if line["event"] == "payout.moved"]
    for wanted in (session, carded):
        made = [line["move"] for line in moves if line["session"] == wanted]
        assert made[:2] == ["check", "confirm"], made
        assert {line["project"] for line in moves if line["session"] == wanted} == {"acme"}
    created = [line for line in lines if line["event"] == "payout.created"]
    assert {line["session"] for line in created} >= {session, carded}
    failed = [line for line in lines if line["event"] == "webhook.failed"]
    assert {line["status"] for line in failed} >= {"failed", "dead"}
    assert all(line["url"] == "http://127.0.0.1:9/hook" for line in failed)


def _wait_for_next_action(call: Any, session: str) -> None:
    for _ in range(200):
        if call("session/status", {"session_id": session}).json()["session"].get("next_action"):
            return
        time.sleep(0.05)
    raise AssertionError(f"{session} never became ready to confirm")


def _load_key(path: Path) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return key


def _raw_exchange(port: int, request: bytes) -> str:
    """Send bytes that are not HTTP and read what the server answers before closing."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(4096):
            answer += chunk
    return answer.decode("latin-1")
