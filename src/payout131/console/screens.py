"""What the console's screens show, beyond the payout lists and stories (``listing.py``):
the overview's figures, an account's statement with its running balance, an event's body.

Every query here is one the console runs as the operator opens a page, so each reads a
bounded number of rows through an index (docs/console.md gives their times on a store of
1,000,000 payouts).
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from payout131.storage import schema as t
from payout131.tokens.vault import Vault, VaultError
from payout131.webhooks import outbox
from payout131.webhooks.events import open_body

__all__ = [
    "Entry",
    "Queue",
    "entries",
    "event_body",
    "payouts_since",
    "queue",
]


def payouts_since(conn: Connection, since: int) -> list[tuple[str, str | None, int, int]]:
    """``(status, error code, count, kopecks)`` of the payouts created at or after ``since``.

    The payouts are found newest first by number and the walk stops at the first one
    created before ``since`` (payout numbers grow with time), so it reads only today's.
    """
    p = t.payouts
    first = conn.execute(
        sa.select(sa.func.min(p.c.n)).where(p.c.n > _last_before(conn, since))
    ).scalar()
    if first is None:
        return []
    rows = conn.execute(
        sa.select(p.c.status, p.c.error_code, sa.func.count(), sa.func.sum(p.c.amount))
        .where(p.c.n >= first, p.c.created_at >= since)
        .group_by(p.c.status, p.c.error_code)
        .order_by(p.c.status, p.c.error_code)
    ).all()
    return [(row[0], row[1], int(row[2]), int(row[3] or 0)) for row in rows]


def _last_before(conn: Connection, since: int) -> int:
    """The number of a payout created before ``since`` with none but later ones after it,
    found by bisecting the payout numbers (each probe one primary-key read); 0 if none."""
    p = t.payouts
    top = conn.execute(sa.select(sa.func.max(p.c.n))).scalar()
    if top is None:
        return 0
    low, high = 0, int(top)  # low: created before since (or 0); high: not known to be
    while high - low > 1:
        middle = (low + high) // 2
        row = conn.execute(
            sa.select(p.c.n, p.c.created_at).where(p.c.n >= middle).order_by(p.c.n).limit(1)
        ).first()
        if row is None or row.n >= high:
            high = middle
        elif row.created_at < since:
            low = int(row.n)
        else:
            high = int(row.n)
    return low


@dataclass(frozen=True, slots=True)
class Queue:
    """The webhook queue: events waiting (pending, failed and retrying) and dead."""

    waiting: int
    oldest: int | None  # created_at of the oldest waiting event
    dead: int


def queue(conn: Connection) -> Queue:
    e = t.events
    rows = conn.execute(
        sa.select(e.c.status, sa.func.count(), sa.func.min(e.c.created_at))
        .where(e.c.status.in_(("pending", "failed", "dead")))
        .group_by(e.c.status)
    ).all()
    found = {row[0]: (int(row[1]), row[2]) for row in rows}
    waiting = [found[s] for s in ("pending", "failed") if s in found]
    oldest = min((w[1] for w in waiting), default=None)
    return Queue(
        waiting=sum(w[0] for w in waiting),
        oldest=None if oldest is None else int(oldest),
        dead=found.get("dead", (0, None))[0],
    )


@dataclass(frozen=True, slots=True)
class Entry:
    """One ledger entry of an account, with the account's balance just after it."""

    id: int
    at: int
    kind: str  # the transaction's: topup, hold, payout, fee, return, ...
    memo: str
    payout_n: int | None
    amount: int
    balance_after: int


def entries(
    conn: Connection,
    account: int,
    *,
    since: int | None = None,
    until: int | None = None,
    limit: int = 100,
    before: int | None = None,
) -> tuple[list[Entry], int | None]:
    """The account's entries newest first (created in ``[since, until)``, below entry id
    ``before``), each with the running balance; and the next page's cursor."""
    e, x, a = t.ledger_entries, t.ledger_transactions, t.ledger_accounts
    query = (
        sa.select(e.c.id, e.c.amount, x.c.kind, x.c.memo, x.c.payout_n, x.c.created_at)
        .join(x, x.c.id == e.c.transaction_id)
        .where(e.c.account_id == account)
    )
    if before is not None:
        query = query.where(e.c.id < before)
    if since is not None:
        query = query.where(x.c.created_at >= since)
    if until is not None:
        query = query.where(x.c.created_at < until)
    rows = conn.execute(query.order_by(e.c.id.desc()).limit(limit + 1)).all()
    if not rows:
        return [], None
    balance = conn.execute(sa.select(a.c.balance).where(a.c.id == account)).scalar_one()
    newer = conn.execute(  # what the entries after the page's first moved
        sa.select(sa.func.coalesce(sa.func.sum(e.c.amount), 0)).where(
            e.c.account_id == account, e.c.id > rows[0].id
        )
    ).scalar_one()
    running = int(balance) - int(newer)
    out = []
    for row in rows[:limit]:
        out.append(
            Entry(
                id=int(row.id),
                at=int(row.created_at),
                kind=row.kind,
                memo=row.memo,
                payout_n=row.payout_n,
                amount=int(row.amount),
                balance_after=running,
            )
        )
        running -= int(row.amount)
    return out, (out[-1].id if len(rows) > limit else None)


def event_body(conn: Connection, vault: Vault, event: Any) -> str:
    """An event's body as the partner received it, every long number masked but its last
    four digits (account and card numbers)."""
    try:
        raw = open_body(
            vault, event.body, event.body_key_id, event.project_id, event.session_n, event.type
        )
    except VaultError as exc:
        return f"(sealed, and cannot be opened here: {exc})"
    text = raw.decode("utf-8", "replace")
    with contextlib.suppress(ValueError):  # else shown as it was sent
        text = json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    return outbox.mask_numbers(text)
