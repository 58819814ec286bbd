"""The partner methods: parse a signed body, run one use case in one transaction, render.

The HTTP layer has already identified the project and verified the signature over the raw
bytes; this module turns the bytes into JSON, applies idempotency, runs the method and
returns the status and exact response bytes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy.engine import Connection

from payout131 import ledger, sessions, sessions_batch
from payout131.accounts import settlement_account
from payout131.errors import ApiError, IdempotencyKeyExists, InvalidRequest
from payout131.projects import Project, wallet_code
from payout131.protocol import wire
from payout131.runtime import Runtime
from payout131.server import idempotency
from payout131.tokens import account_tokens as tokens
from payout131.tokens import public_tokens

__all__ = ["METHODS", "Method", "handle", "handle_grouped", "parse_body"]

Handler = Callable[[Connection, sessions.Call, dict[str, Any]], dict[str, Any]]
Batch = Callable[[Connection, list[Any]], list[Any]]


@dataclass(frozen=True, slots=True)
class Method:
    handler: Handler
    mutating: bool
    rko: bool = False
    versions: tuple[str, ...] = ("v1", "v2")
    wakes_worker: bool = False
    batch: Batch | None = None  # the handler's work for many calls at once (group commit)


def _session(fn: Callable[[Connection, sessions.Call, dict[str, Any]], dict[str, Any]]) -> Handler:
    def handler(conn: Connection, call: sessions.Call, body: dict[str, Any]) -> dict[str, Any]:
        return {"status": "ok", "session": fn(conn, call, body)}

    return handler


def wallet_balance(conn: Connection, call: sessions.Call, body: dict[str, Any]) -> dict[str, Any]:
    stamp = body.get("request_datetime")
    if stamp is not None:
        try:
            datetime.fromisoformat(str(stamp).replace("Z", "+00:00"))
        except ValueError:
            raise InvalidRequest(
                "request_datetime: must be an RFC 3339 date-time like 2025-02-20T08:42:35Z"
            ) from None
    account = ledger.account_id(conn, wallet_code(call.project.id))
    assert account is not None
    money = ledger.balance(conn, account)
    return {
        "status": "ok",
        "wallets": [
            {
                "id": call.project.id,
                "amount_details": {"amount": money.available, "currency": "rub"},
            }
        ],
    }


def account_balance(conn: Connection, call: sessions.Call, body: dict[str, Any]) -> dict[str, Any]:
    number = body.get("account_number")
    if not isinstance(number, str) or not number:
        raise InvalidRequest("account_number: required, the 20-digit settlement account number")
    row = settlement_account(conn, call.project.id, number, "account_number")
    return {
        "status": "ok",
        "account_number": number,
        "account_currency": "RUB",
        "balance": {
            "current_balance": int(row.balance),
            "available_balance": int(row.balance) - int(row.held),
            "held": int(row.held),
        },
    }


def public_token(conn: Connection, call: sessions.Call, body: dict[str, Any]) -> dict[str, Any]:
    public_tokens.parse_public_token_request(body)
    issued = public_tokens.issue_public_token(
        conn, call.project.id, call.now, public_tokens.PUBLIC_TOKEN_TTL_S
    )
    return {"status": "ok", "public_token": issued}


def tokenize(conn: Connection, call: sessions.Call, body: dict[str, Any]) -> dict[str, Any]:
    bik, account = tokens.parse_tokenize_request(body, call.directory)
    assert call.vault is not None
    made = tokens.tokenize(conn, call.vault, call.project.id, bik, account, call.now)
    return {"status": "ok", "token": made.token, "data": {"masked_account": made.masked_account}}


def token_info(conn: Connection, call: sessions.Call, body: dict[str, Any]) -> dict[str, Any]:
    token = tokens.parse_info_request(body)
    return {"status": "ok", "info": tokens.info(conn, call.project.id, token, call.directory)}


def _init_payouts(conn: Connection, calls: list[Any]) -> list[Any]:
    # benchmarks: the init calls of one group commit, a few statements for all of them
    return [
        out if isinstance(out, Exception) else wire.dumps(out)
        for out in sessions_batch.init_payouts(conn, calls)
    ]


def _confirm_many(conn: Connection, calls: list[Any]) -> list[Any]:
    # benchmarks: the confirm calls of one group commit, a few statements for all of them
    return [
        out if isinstance(out, Exception) else wire.dumps(out)
        for out in sessions_batch.confirm_many(conn, calls)
    ]


METHODS: dict[str, Method] = {
    "session/create": Method(_session(sessions.create_session), True),
    "session/create/rko": Method(_session(sessions.create_session), True, rko=True),
    "session/start/payout": Method(_session(sessions.start_payout), True, wakes_worker=True),
    "session/start/payout/rko": Method(
        _session(sessions.start_payout), True, rko=True, wakes_worker=True
    ),
    "session/init/payout": Method(
        _session(sessions.init_payout), True, wakes_worker=True, batch=_init_payouts
    ),
    "session/init/payout/rko": Method(
        _session(sessions.init_payout), True, rko=True, wakes_worker=True, batch=_init_payouts
    ),
    "session/confirm": Method(
        _session(sessions.confirm), True, wakes_worker=True, batch=_confirm_many
    ),
    "session/cancel": Method(_session(sessions.cancel), True),
    "session/status": Method(_session(sessions.status), False),
    "wallet/balance": Method(wallet_balance, False, versions=("v1",)),
    "report/account_balance": Method(account_balance, False, versions=("v1",)),
    "token": Method(public_token, True, versions=("v1",)),
    "tokenize": Method(tokenize, True, versions=("v1",)),
    "token/info": Method(token_info, False, versions=("v1",)),
}


def parse_body(raw: bytes) -> dict[str, Any]:
    """The request's JSON object; ``[]`` and an empty body mean ``{}`` (the PHP SDK's habit)."""
    if not raw.strip():
        return {}
    try:
        value = msgspec.json.decode(raw)
    except msgspec.DecodeError as exc:
        raise InvalidRequest(f"body: not valid JSON ({exc})") from None
    except UnicodeDecodeError as exc:
        raise InvalidRequest(f"body: not valid UTF-8 (byte {exc.start})") from None
    if value == []:
        return {}
    if not isinstance(value, dict):
        raise InvalidRequest("body: must be a JSON object")
    return value


def _run(bank: Runtime, method: Method, call: sessions.Call, body: dict[str, Any]) -> bytes:
    if method.mutating:  # benchmarks: shares a commit with concurrent calls (group_commit.py)
        return bank.group_commit.run(
            lambda conn: wire.dumps(method.handler(conn, call, body)),
            batch=method.batch,
            item=(call, body),
        )
    with bank.db.read() as conn:
        return wire.dumps(method.handler(conn, call, body))


def _run_with_key(
    bank: Runtime,
    name: str,
    method: Method,
    call: sessions.Call,
    body: dict[str, Any],
    key: str,
    raw: bytes,
) -> tuple[int, bytes]:
    project = call.project
    digest = idempotency.body_hash(raw)
    replay = project.idempotency_mode == "replay"

    def keyed(conn: Connection) -> bytes:
        idempotency.claim(conn, project.id, key, name, digest, call.now)
        out = wire.dumps(method.handler(conn, call, body))
        idempotency.record(conn, project.id, key, 200, out)
        return out

    try:
        return 200, bank.group_commit.run(keyed)
    except idempotency.KeyTaken:
        if not replay:
            raise idempotency.already_exists() from None
    with bank.db.read() as conn:
        stored = idempotency.lookup(conn, project.id, key)
    if stored is None or stored.body_sha256 != digest:
        raise IdempotencyKeyExists(
            "X-PARTNER-IDEMPOTENCY-KEY: this key was used with a different request body"
        )
    return stored.status, stored.body


def _call(
    bank: Runtime, project: Project, version: str, method: Method, submerchant: str | None
) -> sessions.Call:
    return sessions.Call(
        project=project,
        version=version,
        rko=method.rko,
        now=bank.clock.now(),
        directory=bank.directory,
        submerchant=submerchant,
        vault=bank.vault,
    )


def _wake(bank: Runtime, method: Method) -> None:
    if method.wakes_worker:
        bank.worker.wakeup.set()
    if method.mutating:  # it may have committed webhook events
        bank.dispatcher.wakeup.set()


def handle(
    bank: Runtime,
    project: Project,
    version: str,
    name: str,
    raw: bytes,
    *,
    idempotency_key: str | None = None,
    submerchant: str | None = None,
) -> tuple[int, bytes]:
    """Run one authenticated method call; the HTTP status and the response bytes."""
    method = METHODS[name]
    try:
        body = parse_body(raw)
        call = _call(bank, project, version, method, submerchant)
        if method.mutating and idempotency_key is not None:
            key = idempotency.validate_key(idempotency_key)
            status, out = _run_with_key(bank, name, method, call, body, key, raw)
        else:
            status, out = 200, _run(bank, method, call, body)
    except ApiError as exc:
        return exc.status, wire.dumps(exc.envelope())
    _wake(bank, method)
    return status, out


async def handle_grouped(
    bank: Runtime,
    project: Project,
    version: str,
    name: str,
    raw: bytes,
    *,
    submerchant: str | None = None,
) -> tuple[int, bytes]:
    """``handle`` for a mutating call without an idempotency key, from the event loop: the
    call waits for its group commit without holding a thread (benchmarks)."""
    method = METHODS[name]
    assert method.mutating
    try:
        body = parse_body(raw)
        call = _call(bank, project, version, method, submerchant)
        out = await bank.group_commit.run_async(
            lambda conn: wire.dumps(method.handler(conn, call, body)),
            batch=method.batch,
            item=(call, body),
        )
    except ApiError as exc:
        return exc.status, wire.dumps(exc.envelope())
    _wake(bank, method)
    return 200, out
