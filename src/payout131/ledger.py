"""The double-entry ledger: integer kopecks, append-only entries, holds.

Every movement is a transaction of at least two entries summing to zero. Partner accounts
(settlement accounts and collateral wallets) carry ``balance`` (the sum of their entries,
kept by a database trigger) and ``held`` (the sum of active holds); the database refuses
``balance - held < 0``. A payout places a hold when it starts; success posts it (the money
moves to ``system:payouts``), cancel or failure releases it. Each hold is resolved once.
A hold covers the amount and the bank's fee; posting moves the fee to ``system:fees`` as its
own transaction. A payout the recipient's bank sends back is a ``refund`` transaction from
``system:payouts`` to the paying account (the fee is kept).

All functions run inside the caller's write transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from payout131.errors import InsufficientBalance
from payout131.storage import raw
from payout131.storage import schema as t
from payout131.storage.raw import Sql

__all__ = [
    "FEES",
    "FUNDING",
    "PAYOUTS",
    "Balance",
    "HoldAlreadyResolved",
    "account_id",
    "balance",
    "check",
    "insufficient",
    "open_account",
    "place_hold",
    "place_holds",
    "post_hold",
    "post_holds",
    "release_hold",
    "return_payout",
    "topup",
    "transfer",
]

FUNDING = "system:funding"
PAYOUTS = "system:payouts"
FEES = "system:fees"


class HoldAlreadyResolved(RuntimeError):
    """A hold was posted or released twice: a bug, never a partner's mistake."""


@dataclass(frozen=True, slots=True)
class Balance:
    balance: int
    held: int

    @property
    def available(self) -> int:
        return self.balance - self.held


def open_account(conn: Connection, code: str, kind: str, project_id: str | None, now: int) -> int:
    result = conn.execute(
        sa.insert(t.ledger_accounts)
        .values(code=code, kind=kind, project_id=project_id, created_at=now)
        .returning(t.ledger_accounts.c.id)
    )
    return int(result.scalar_one())


def account_id(conn: Connection, code: str) -> int | None:
    found = conn.execute(
        sa.select(t.ledger_accounts.c.id).where(t.ledger_accounts.c.code == code)
    ).scalar()
    return None if found is None else int(found)


def balance(conn: Connection, account: int) -> Balance:
    row = conn.execute(
        sa.select(t.ledger_accounts.c.balance, t.ledger_accounts.c.held).where(
            t.ledger_accounts.c.id == account
        )
    ).one()
    return Balance(int(row.balance), int(row.held))


def _next_transaction_id(conn: Connection) -> int:
    if conn.dialect.name == "postgresql":
        return int(conn.execute(sa.text("SELECT nextval('ledger_transaction_ids')")).scalar_one())
    # SQLite: the write transaction holds the database lock, so MAX + 1 is ours alone.
    return int(
        conn.execute(
            sa.select(sa.func.coalesce(sa.func.max(t.ledger_transactions.c.id), 0) + 1)
        ).scalar_one()
    )


def transfer(
    conn: Connection,
    kind: str,
    entries: list[tuple[int, int]],
    now: int,
    *,
    payout_n: int | None = None,
    memo: str = "",
) -> int:
    """Write one balanced transaction of ``(account_id, signed amount)`` entries."""
    txn = _next_transaction_id(conn)
    conn.execute(
        sa.insert(t.ledger_entries),
        [{"transaction_id": txn, "account_id": acc, "amount": amt} for acc, amt in entries],
    )
    conn.execute(
        sa.insert(t.ledger_transactions).values(
            id=txn, kind=kind, payout_n=payout_n, memo=memo, created_at=now
        )
    )
    return txn


def topup(conn: Connection, account: int, amount: int, now: int, memo: str = "top-up") -> int:
    """Credit a partner account with money arriving from outside the bank."""
    funding = account_id(conn, FUNDING)
    assert funding is not None, "system accounts are created by the migrations"
    return transfer(conn, "topup", [(funding, -amount), (account, amount)], now, memo=memo)


_a = t.ledger_accounts
# benchmarks: built once (every payout start runs these; building a statement costs more
# than running it)
_HOLD = (
    sa.update(_a)
    .where(_a.c.id == sa.bindparam("account"), _a.c.balance - _a.c.held >= sa.bindparam("total"))
    .values(held=_a.c.held + sa.bindparam("total"))
)
_NEW_HOLD = sa.insert(t.holds)


def place_hold(
    conn: Connection, account: int, payout_n: int, amount: int, now: int, fee: int = 0
) -> None:
    """Reserve ``amount`` plus the bank's ``fee`` for a payout, or raise ``InsufficientBalance``."""
    total = amount + fee
    moved = conn.execute(_HOLD, {"account": account, "total": total})
    if moved.rowcount != 1:
        raise insufficient(amount, fee)
    conn.execute(
        _NEW_HOLD,
        {
            "account_id": account,
            "payout_n": payout_n,
            "amount": total,
            "status": "active",
            "created_at": now,
        },
    )


def insufficient(amount: int, fee: int) -> InsufficientBalance:
    """The refusal of a payout whose amount (and fee) the paying account cannot cover."""
    with_fee = f" plus the fee of {fee}" if fee else ""
    return InsufficientBalance(
        f"amount_details.amount: {amount}{with_fee} exceeds the available balance of the "
        "paying account"
    )


_ADD_HELD = Sql("UPDATE ledger_accounts SET held = held + :total WHERE id = :account")
_NEW_HOLDS = Sql(
    """INSERT INTO holds (account_id, payout_n, amount, created_at, status)
    VALUES (:account_id, :payout_n, :amount, :created_at, 'active')"""
)  # benchmarks: place_holds' statements straight to the driver (storage/raw.py)


def place_holds(conn: Connection, holds: Sequence[tuple[int, int, int, int]]) -> None:
    """``place_hold`` for many ``(account, payout_n, amount + fee, now)`` at once, the caller
    having checked under the accounts' locks that each account covers its holds (the
    database refuses a negative available balance all the same)."""
    totals: dict[int, int] = {}
    for account, _, total, _ in holds:
        totals[account] = totals.get(account, 0) + total
    rows = [
        {"account_id": acc, "payout_n": n, "amount": total, "created_at": now}
        for acc, n, total, now in holds
    ]
    with raw.pipeline(conn):  # benchmarks: both in one round trip
        raw.many(
            conn,
            _ADD_HELD,
            [{"account": acc, "total": total} for acc, total in sorted(totals.items())],
        )
        raw.many(conn, _NEW_HOLDS, rows)


def _resolve_hold(conn: Connection, payout_n: int, status: str, now: int) -> tuple[int, int]:
    resolved = conn.execute(
        sa.update(t.holds)
        .where(t.holds.c.payout_n == payout_n, t.holds.c.status == "active")
        .values(status=status, resolved_at=now)
        .returning(t.holds.c.account_id, t.holds.c.amount)
    ).one_or_none()
    if resolved is None:
        raise HoldAlreadyResolved(f"payout {payout_n} has no active hold")
    account, amount = int(resolved.account_id), int(resolved.amount)
    accounts = t.ledger_accounts
    conn.execute(
        sa.update(accounts).where(accounts.c.id == account).values(held=accounts.c.held - amount)
    )
    return account, amount


def post_hold(conn: Connection, payout_n: int, now: int, fee: int = 0) -> None:
    """The payout succeeded: the held money leaves the account, the ``fee`` (held with the
    amount) as its own transaction to ``system:fees``."""
    account, held = _resolve_hold(conn, payout_n, "posted", now)
    amount = held - fee
    paid_out = account_id(conn, PAYOUTS)
    assert paid_out is not None
    assert amount > 0, "a hold covers the amount and the fee"
    transfer(conn, "payout", [(account, -amount), (paid_out, amount)], now, payout_n=payout_n)
    if fee:
        fees = account_id(conn, FEES)
        assert fees is not None
        transfer(conn, "fee", [(account, -fee), (fees, fee)], now, payout_n=payout_n)


def post_holds(conn: Connection, payouts: Sequence[tuple[int, int]], now: int) -> None:
    """``post_hold`` for many ``(payout_n, fee)`` at once, a statement per step rather than
    per payout (the worker's batches): the same holds, transactions and entries.

    An account's ``held`` goes down once by the sum of its holds, before its entries are
    written, so its available balance never dips below where it started.
    """
    if not payouts:
        return
    fees = dict(payouts)
    count = len(fees) + sum(1 for fee in fees.values() if fee)  # transactions to write
    postgresql = conn.dialect.name == "postgresql"
    statements: list[tuple[Sql, dict[str, Any]]] = [
        (_POSTED, {"numbers": list(fees), "now": now}),
        (_SYSTEM, {"codes": [PAYOUTS, FEES]}),
    ]
    if postgresql:  # their ids too (SQLite: MAX + 1, once the holds are known)
        statements.append((_TRANSACTION_IDS, {"n": count}))
    resolved, found, *numbered = raw.together(conn, statements)  # benchmarks: one round trip
    if len(resolved) != len(fees):
        missing = sorted(set(fees) - {int(r.payout_n) for r in resolved})
        raise HoldAlreadyResolved(f"payouts {missing} have no active hold")
    held: dict[int, int] = {}
    for row in resolved:
        held[int(row.account_id)] = held.get(int(row.account_id), 0) + int(row.amount)
    raw.many(
        conn, _LESS_HELD, [{"account": a, "total": total} for a, total in sorted(held.items())]
    )
    system = {row.code: int(row.id) for row in found}
    paid_out, fee_income = system[PAYOUTS], system[FEES]
    written: list[tuple[str, int, list[tuple[int, int]]]] = []
    for row in sorted(resolved, key=lambda r: int(r.payout_n)):
        n, account, fee = int(row.payout_n), int(row.account_id), fees[int(row.payout_n)]
        amount = int(row.amount) - fee
        assert amount > 0, "a hold covers the amount and the fee"
        written.append(("payout", n, [(account, -amount), (paid_out, amount)]))
        if fee:
            written.append(("fee", n, [(account, -fee), (fee_income, fee)]))
    assert len(written) == count
    if postgresql:
        ids = [int(row[0]) for row in numbered[0]]
    else:  # SQLite: the write lock makes MAX + 1 ours
        first = _next_transaction_id(conn)
        ids = list(range(first, first + count))
    raw.many(
        conn,
        _ENTRY,
        [
            {"transaction_id": txn, "account_id": acc, "amount": amt}
            for txn, (_, _, entries) in zip(ids, written, strict=True)
            for acc, amt in entries
        ],
    )
    raw.many(
        conn,
        _TRANSACTION,
        [
            {"id": txn, "kind": kind, "payout_n": n, "now": now}
            for txn, (kind, n, _) in zip(ids, written, strict=True)
        ],
    )


# benchmarks: post_holds' statements go straight to the driver (storage/raw.py)
_POSTED = Sql(
    """UPDATE holds SET status = 'posted', resolved_at = :now
    WHERE payout_n = ANY(:numbers) AND status = 'active'
    RETURNING payout_n, account_id, amount"""
)
_LESS_HELD = Sql("UPDATE ledger_accounts SET held = held - :total WHERE id = :account")
_SYSTEM = Sql("SELECT code, id FROM ledger_accounts WHERE code = ANY(:codes)")
_ENTRY = Sql(
    """INSERT INTO ledger_entries (transaction_id, account_id, amount)
    VALUES (:transaction_id, :account_id, :amount)"""
)
_TRANSACTION = Sql(
    """INSERT INTO ledger_transactions (id, kind, payout_n, memo, created_at)
    VALUES (:id, :kind, :payout_n, '', :now)"""
)
_TRANSACTION_IDS = Sql("SELECT nextval('ledger_transaction_ids') FROM generate_series(1, :n)")


def release_hold(conn: Connection, payout_n: int, now: int) -> None:
    """The payout was cancelled or failed: the held money is available again."""
    _resolve_hold(conn, payout_n, "released", now)


def return_payout(conn: Connection, payout_n: int, account: int, amount: int, now: int) -> int:
    """A paid-out payout came back from the recipient's bank: credit the paying account."""
    paid_out = account_id(conn, PAYOUTS)
    assert paid_out is not None
    return transfer(
        conn, "refund", [(paid_out, -amount), (account, amount)], now, payout_n=payout_n
    )


def check(conn: Connection) -> list[str]:
    """Recompute every balance from the entries; return each violation found."""
    problems: list[str] = []
    a, e, h, x = t.ledger_accounts, t.ledger_entries, t.holds, t.ledger_transactions
    sums = (
        sa.select(e.c.account_id, sa.func.sum(e.c.amount).label("total"))
        .group_by(e.c.account_id)
        .subquery()
    )
    active = (
        sa.select(h.c.account_id, sa.func.sum(h.c.amount).label("total"))
        .where(h.c.status == "active")
        .group_by(h.c.account_id)
        .subquery()
    )
    rows = conn.execute(
        sa.select(
            a.c.code,
            a.c.kind,
            a.c.balance,
            a.c.held,
            sa.func.coalesce(sums.c.total, 0).label("entries"),
            sa.func.coalesce(active.c.total, 0).label("holds"),
        )
        .outerjoin(sums, sums.c.account_id == a.c.id)
        .outerjoin(active, active.c.account_id == a.c.id)
    )
    for row in rows:
        if int(row.balance) != int(row.entries):
            problems.append(f"{row.code}: balance {row.balance} but entries sum to {row.entries}")
        if int(row.held) != int(row.holds):
            problems.append(f"{row.code}: held {row.held} but active holds sum to {row.holds}")
        if row.kind != "system" and int(row.balance) - int(row.held) < 0:
            problems.append(f"{row.code}: available balance is negative")
    unbalanced = conn.execute(
        sa.select(e.c.transaction_id, sa.func.sum(e.c.amount))
        .group_by(e.c.transaction_id)
        .having(sa.func.sum(e.c.amount) != 0)
    )
    problems.extend(f"transaction {txn}: entries sum to {total}" for txn, total in unbalanced)
    orphans = conn.execute(
        sa.select(sa.func.count()).select_from(e).where(~e.c.transaction_id.in_(sa.select(x.c.id)))
    ).scalar_one()
    if orphans:
        problems.append(f"{orphans} entries belong to no transaction")
    return problems
