"""The partner API's methods: their names, the versions and variants they exist in, their
bodies. What each one does is the server's (``server/methods.py``); this is the contract
both the server and the OpenAPI description are built from (PROTOCOL §3)."""

from __future__ import annotations

from dataclasses import dataclass

from payout131.protocol.requests import (
    AccountBalanceBody,
    AnswerBody,
    Body,
    Draft,
    SessionRef,
    StartBody,
    TokenBody,
    TokenInfoBody,
    TokenizeBody,
    WalletBalanceBody,
)

__all__ = ["METHODS", "Method"]


@dataclass(frozen=True, slots=True)
class Method:
    body: type[Body]  # what the request body is decoded into
    mutating: bool  # changes something: it may carry an idempotency key
    rko: bool = False  # pays from a settlement account (the ``/rko`` variant)
    versions: tuple[str, ...] = ("v1", "v2")


METHODS: dict[str, Method] = {
    "session/create": Method(Draft, True),
    "session/create/rko": Method(Draft, True, rko=True),
    "session/start/payout": Method(StartBody, True),
    "session/start/payout/rko": Method(StartBody, True, rko=True),
    "session/init/payout": Method(Draft, True),
    "session/init/payout/rko": Method(Draft, True, rko=True),
    "session/confirm": Method(AnswerBody, True),
    "session/cancel": Method(AnswerBody, True),
    "session/status": Method(SessionRef, False),
    "wallet/balance": Method(WalletBalanceBody, False, versions=("v1",)),
    "report/account_balance": Method(AccountBalanceBody, False, versions=("v1",)),
    "token": Method(TokenBody, True, versions=("v1",)),
    "tokenize": Method(TokenizeBody, True, versions=("v1",)),
    "token/info": Method(TokenInfoBody, False, versions=("v1",)),
    # PROTOCOL §9: who owns a phone at a Faster Payments member; answered as a session
    "fps/customer_verification": Method(Draft, True),
}
