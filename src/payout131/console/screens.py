"""What the console's screens show, beyond the payout lists and stories (``listing.py``):
the overview's figures, an account's statement with its running balance, an event's body.

Every query here is one the console runs as the operator opens a page: each reads through
an index, most of them a page's rows and no more (docs/console.md, "How fast", gives their
times on a store of 1,000,000 payouts).
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
    """``(status, error code, count, kopecks)`` of the payouts created in the day from
    ``since``, of projects on wall time (a test clock's payouts carry its own times).

    Payout numbers grow with wall time, so the first of the day is found by bisecting the
    numbers (each probe one primary-key read) and only the day's payouts are read."""
    p = t.payouts
    clocked = sa.select(t.projects.c.id).where(t.projects.c.test_clock.is_not(None))
    first = _first_since(conn, since, clocked)
    rows = conn.execute(
        sa.select(p.c.status, p.c.error_code, sa.func.count(), sa.func.sum(p.c.amount))
        .where(
            p.c.n >= first,
            p.c.created_at >= since,
            p.c.created_at < since + 86_400_000_000,
            p.c.project_id.not_in(clocked),
        )
        .group_by(p.c.status, p.c.error_code)
        .order_by(p.c.status, p.c.error_code)
    ).all()
    return [(row[0], row[1], int(row[2]), int(row[3] or 0)) for row in rows]


def _first_since(conn: Connection, since: int, clocked: Any) -> int:
    """A payout number at or below the first wall-time payout created at or after
    ``since``: the bisection keeps ``low`` created before it, and probes skip payouts of
    projects on test clocks."""
    p = t.payouts
    top = conn.execute(sa.select(sa.func.max(p.c.n))).scalar()
    low, high = 0, int(top or 0) + 1  # low: before since (or 0); high: at or after, or past
    while high - low > 1:
        middle = (low + high) // 2
        row = conn.execute(
            sa.select(p.c.n, p.c.created_at)
            .where(p.c.n >= middle, p.c.n < high, p.c.project_id.not_in(clocked))
            .order_by(p.c.n)
            .limit(1)
        ).first()
        if row is None:
            high = middle
        elif row.created_at < since:
            low = int(row.n)
        else:  # none in [middle, row.n), and from row.n on all at or after since
            high = middle
    return low + 1


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
    oldest_first: bool = False,
) -> tuple[list[Entry], int | None]:
    """The account's entries created in ``[since, until)``, newest first below entry id
    ``before`` (or, ``oldest_first``, the first ``limit``), each with the account's balance
    just after it; and the next page's cursor (None: no more).

    The balance after an entry is the account's balance less every later entry: the sum
    of those after the page (one indexed sum, which grows with how far back the page is)
    and, within the page, of every entry between its rows, those the time filter left
    out included."""
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
    order = e.c.id.asc() if oldest_first else e.c.id.desc()
    rows = conn.execute(query.order_by(order).limit(limit + 1)).all()
    more = len(rows) > limit
    rows = sorted(rows[:limit], key=lambda row: row.id, reverse=True)
    if not rows:
        return [], None
    top, bottom = rows[0].id, rows[-1].id
    balance = conn.execute(sa.select(a.c.balance).where(a.c.id == account)).scalar_one()
    later = conn.execute(
        sa.select(sa.func.coalesce(sa.func.sum(e.c.amount), 0)).where(
            e.c.account_id == account, e.c.id > top
        )
    ).scalar_one()
    # what the entries after each of the page's rows moved, within the page's span: every
    # entry there counts, those the time filter left out included; only the page's rows
    # come back
    moved = (
        sa.func.coalesce(sa.func.sum(e.c.amount).over(order_by=e.c.id.desc(), rows=(None, -1)), 0)
    ).label("moved")
    span = (
        sa.select(e.c.id, moved)
        .where(e.c.account_id == account, e.c.id >= bottom, e.c.id <= top)
        .subquery()
    )
    shown = [int(row.id) for row in rows]
    after = {
        int(entry_id): int(balance) - int(later) - int(total)
        for entry_id, total in conn.execute(
            sa.select(span.c.id, span.c.moved).where(span.c.id.in_(shown))
        )
    }
    out = [
        Entry(
            id=int(row.id),
            at=int(row.created_at),
            kind=row.kind,
            memo=row.memo,
            payout_n=row.payout_n,
            amount=int(row.amount),
            balance_after=after[int(row.id)],
        )
        for row in rows
    ]
    if oldest_first:
        out.reverse()
    return out, (out[-1].id if more else None)


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
