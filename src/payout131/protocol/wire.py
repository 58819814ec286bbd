"""Rendering to Bank 131's wire format: sessions, payouts, events, v1 and v2 spellings.

Everything a partner sees is built here from stored rows, so a field is named in one place.
v1 names the destination ``payment_method`` and lists payouts under ``payments``; v2 says
``payout_details`` and ``payout_list``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from payout131.clock import rfc3339
from payout131.payouts.records import Listed, Payout, Refund

__all__ = [
    "account_balance_answer",
    "destination_key",
    "dumps",
    "event_body",
    "loads_field",
    "payout_id",
    "public_token_answer",
    "refund_id",
    "render_payout",
    "render_refund",
    "render_session",
    "session_answer",
    "session_id",
    "token_info_answer",
    "tokenize_answer",
    "wallet_answer",
]

_encoder = msgspec.json.Encoder()


def dumps(value: Any) -> bytes:
    """Compact JSON, UTF-8, non-ASCII kept as is."""
    return _encoder.encode(value)


def loads_field(text: str | None) -> Any:
    return None if text is None else msgspec.json.decode(text)


def destination_key(version: str) -> str:
    return "payout_details" if version == "v2" else "payment_method"


def session_id(n: int) -> str:
    return f"ps_{n}"


def payout_id(n: int) -> str:
    return f"po_{n}"


def render_payout(payout: Payout, refunds: Sequence[Refund], version: str) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": payout_id(payout.n),
        "status": payout.status,
        "created_at": rfc3339(payout.created_at),
    }
    if payout.finished_at is not None:
        out["finished_at"] = rfc3339(payout.finished_at)
    out[destination_key(version)] = loads_field(payout.destination)
    if payout.moves_money:  # a verification has no amount
        out["amount_details"] = {"amount": payout.amount, "currency": payout.currency}
    outcome = loads_field(payout.outcome) or {}
    if payout.participant_details is not None:
        out["participant_details"] = loads_field(payout.participant_details)
    if "recipient" in outcome:  # a verification found the phone's owner
        party = out.get("participant_details")
        party = dict(party) if isinstance(party, dict) else {}
        given = party.get("recipient")
        party["recipient"] = {**(given if isinstance(given, dict) else {}), **outcome["recipient"]}
        out["participant_details"] = party
    if payout.customer is not None:
        out["customer"] = loads_field(payout.customer)
    metadata = loads_field(payout.metadata)
    if payout.metadata is not None:
        out["metadata"] = metadata
    out["paymentMetadata"] = metadata if isinstance(metadata, dict) else {}
    if payout.error_code is not None:
        out["error"] = {"code": payout.error_code, "description": payout.error_description}
    if payout.fee:  # rails: the bank's fee, in Bank 131's ``amounts.fee`` shape
        fee = {"amount": payout.fee, "currency": payout.currency}
        out["amounts"] = {"fee": {"merchant_fee": fee}}
    if "transaction_info" in outcome and payout.status == "succeeded":  # a card payout's
        out["transaction_info"] = outcome["transaction_info"]
    if refunds and payout.status == "succeeded":
        out["refunds"] = [render_refund(r, payout.currency) for r in refunds]
    return out


def refund_id(n: int) -> str:
    return f"rf_{n}"


def render_refund(refund: Refund, currency: str) -> dict[str, Any]:
    """One entry of a payout's ``refunds``: money the recipient's bank sent back."""
    out: dict[str, Any] = {
        "id": refund_id(refund.n),
        "status": refund.status,
        "created_at": rfc3339(refund.created_at),
    }
    if refund.finished_at is not None:
        out["finished_at"] = rfc3339(refund.finished_at)
    out["amount_details"] = {"amount": refund.amount, "currency": currency}
    return out


def render_session(listed: Listed, version: str | None = None) -> dict[str, Any]:
    """The Session object, in the spelling of ``version`` (default: the session's own)."""
    session = listed.session
    version = version or session.api_version
    out: dict[str, Any] = {
        "id": session_id(session.n),
        "status": session.status,
        "created_at": rfc3339(session.created_at),
        "updated_at": rfc3339(session.updated_at),
    }
    out["payout_list" if version == "v2" else "payments"] = [
        render_payout(payout, refunds, version) for payout, refunds in listed.payouts
    ]
    if any(payout.status == "pending" for payout, _ in listed.payouts):
        out["next_action"] = "confirm"
    if session.error_code is not None:
        out["error"] = {"code": session.error_code, "description": session.error_description}
    metadata = loads_field(session.metadata)
    if session.metadata is not None:
        out["metadata"] = metadata
    out["session_metadata"] = metadata if isinstance(metadata, dict) else {}
    return out


def event_body(kind: str, session: dict[str, Any], **extra: Any) -> bytes:
    """The exact bytes a webhook carries: ``{"type", "session", ...}``."""
    return dumps({"type": kind, "session": session, **extra})


def session_answer(listed: Listed, version: str) -> dict[str, Any]:
    """The answer of every session method: ``{"status": "ok", "session": ...}``."""
    return {"status": "ok", "session": render_session(listed, version)}


def wallet_answer(wallet_id: str, available: int, fee_bps: int, fee_fixed: int) -> dict[str, Any]:
    """``wallet/balance``: the collateral wallet's available balance, and [ours] the fee the
    bank takes on each payout (so a partner can tell what a file of payouts will hold)."""
    amount = {"amount": available, "currency": "rub"}
    fees = {"percent_bps": fee_bps, "fixed": {"amount": fee_fixed, "currency": "rub"}}
    return {
        "status": "ok",
        "wallets": [{"id": wallet_id, "amount_details": amount}],
        "payout_fee": fees,
    }


def account_balance_answer(number: str, balance: int, held: int) -> dict[str, Any]:
    """``report/account_balance``: booked (``current_balance``), available and held."""
    figures = {"current_balance": balance, "available_balance": balance - held, "held": held}
    return {
        "status": "ok",
        "account_number": number,
        "account_currency": "RUB",
        "balance": figures,
    }


def public_token_answer(token: str) -> dict[str, Any]:
    return {"status": "ok", "public_token": token}


def tokenize_answer(token: str, data: dict[str, Any]) -> dict[str, Any]:
    """``data``: what may be shown of what was tokenized (a masked account, or a card's
    brand, BIN and last four digits)."""
    return {"status": "ok", "token": token, "data": data}


def token_info_answer(info: dict[str, Any]) -> dict[str, Any]:
    return {"status": "ok", "info": info}
