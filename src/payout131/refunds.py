"""Refunds: payouts the recipient's bank sent back (``rf_<n>``), listed in the payout.

A refund is recorded once per payout (the table refuses a second), in the transaction that
credits the money back and writes the ``payment_refunded`` event (``sessions.refund_payout``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from payout131.storage import raw
from payout131.storage import schema as t
from payout131.storage.raw import Sql

__all__ = ["attach", "attach_found", "record"]


def record(conn: Connection, payout_n: int, amount: int, now: int) -> int | None:
    """Record the payout's refund and return its number; None if it already has one."""
    exists = conn.execute(sa.select(t.refunds.c.n).where(t.refunds.c.payout_n == payout_n)).scalar()
    if exists is not None:
        return None
    return int(
        conn.execute(
            sa.insert(t.refunds)
            .values(
                payout_n=payout_n, amount=amount, status="accepted", created_at=now, finished_at=now
            )
            .returning(t.refunds.c.n)
        ).scalar_one()
    )


_OF_PAYOUTS = Sql("SELECT * FROM refunds WHERE payout_n = ANY(:numbers) ORDER BY n")


def attach(conn: Connection, payouts: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The payouts, each with its refund rows under ``refunds`` when it has any."""
    numbers = [p["n"] for p in payouts if p["status"] == "succeeded"]
    if not numbers:
        return list(payouts)
    return attach_found(raw.rows(conn, _OF_PAYOUTS, {"numbers": numbers}), payouts)


def attach_found(
    rows: Sequence[Any], payouts: Sequence[Mapping[str, Any]]
) -> list[Mapping[str, Any]]:
    """``attach`` with the refund rows already read (any superset of the payouts' own)."""
    found: dict[int, list[dict[str, Any]]] = {}
    for row in rows:
        found.setdefault(int(row.payout_n), []).append(dict(row._mapping))
    return [{**p, "refunds": found[p["n"]]} if p["n"] in found else p for p in payouts]
