"""Rendering to Bank 131's wire format: sessions, payouts, events, v1 and v2 spellings.

Everything a partner sees is built here from stored rows, so a field is named in one place.
v1 names the destination ``payment_method`` and lists payouts under ``payments``; v2 says
``payout_details`` and ``payout_list``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from payout131.clock import rfc3339

__all__ = [
    "destination_key",
    "dumps",
    "event_body",
    "loads_field",
    "payout_id",
    "refund_id",
    "render_payout",
    "render_refund",
    "render_session",
    "session_id",
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


def render_payout(row: Mapping[str, Any], version: str) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": payout_id(row["n"]),
        "status": row["status"],
        "created_at": rfc3339(row["created_at"]),
    }
    if row["finished_at"] is not None:
        out["finished_at"] = rfc3339(row["finished_at"])
    out[destination_key(version)] = loads_field(row["destination"])
    out["amount_details"] = {"amount": row["amount"], "currency": row["currency"]}
    for field in ("participant_details", "customer"):
        if row[field] is not None:
            out[field] = loads_field(row[field])
    metadata = loads_field(row["metadata"])
    if row["metadata"] is not None:
        out["metadata"] = metadata
    out["paymentMetadata"] = metadata if isinstance(metadata, dict) else {}
    if row["error_code"] is not None:
        out["error"] = {"code": row["error_code"], "description": row["error_description"]}
    if row.get("fee"):  # rails: the bank's fee, in Bank 131's ``amounts.fee`` shape
        fee = {"amount": row["fee"], "currency": row["currency"]}
        out["amounts"] = {"fee": {"merchant_fee": fee}}
    if row.get("refunds"):
        out["refunds"] = [render_refund(r, row["currency"]) for r in row["refunds"]]
    return out


def refund_id(n: int) -> str:
    return f"rf_{n}"


def render_refund(row: Mapping[str, Any], currency: str) -> dict[str, Any]:
    """One entry of a payout's ``refunds``: money the recipient's bank sent back."""
    out: dict[str, Any] = {
        "id": refund_id(row["n"]),
        "status": row["status"],
        "created_at": rfc3339(row["created_at"]),
    }
    if row["finished_at"] is not None:
        out["finished_at"] = rfc3339(row["finished_at"])
    out["amount_details"] = {"amount": row["amount"], "currency": currency}
    return out


def render_session(
    row: Mapping[str, Any], payouts: list[Mapping[str, Any]], version: str | None = None
) -> dict[str, Any]:
    """The Session object, in the spelling of ``version`` (default: the session's own)."""
    version = version or row["api_version"]
    out: dict[str, Any] = {
        "id": session_id(row["n"]),
        "status": row["status"],
        "created_at": rfc3339(row["created_at"]),
        "updated_at": rfc3339(row["updated_at"]),
    }
    out["payout_list" if version == "v2" else "payments"] = [
        render_payout(p, version) for p in payouts
    ]
    if any(p["status"] == "pending" for p in payouts):
        out["next_action"] = "confirm"
    if row["error_code"] is not None:
        out["error"] = {"code": row["error_code"], "description": row["error_description"]}
    metadata = loads_field(row["metadata"])
    if row["metadata"] is not None:
        out["metadata"] = metadata
    out["session_metadata"] = metadata if isinstance(metadata, dict) else {}
    return out


def event_body(kind: str, session: dict[str, Any], **extra: Any) -> bytes:
    """The exact bytes a webhook carries: ``{"type", "session", ...}``."""
    return dumps({"type": kind, "session": session, **extra})
