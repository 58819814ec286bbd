"""The book: the one place that writes the ledger's transactions, entries and holds.

Every movement is a transaction of at least two entries summing to zero, numbered by the
one numbering of ``storage/numbers.py``; its entries are written first and its header last,
and the database refuses a header whose entries do not balance. A payout places a hold
when it starts (its amount and the bank's fee); success posts it: the amount goes to
``system:payouts`` and the fee to ``system:fees``, each as its own transaction; a cancel,
a failure or a timeout releases it. A payout the recipient's bank sends back is a
``refund`` from ``system:payouts`` to the paying account (the fee is kept).

Every function here works on many at once and writes nothing else; ``balance`` and
``held`` follow from what it writes (database triggers), and the database refuses what
does not add up: a hold its account cannot cover (``Uncovered``), a hold resolved twice,
an entry or header changed. All run inside the caller's write transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Connection

from payout131.errors import NotFound
from payout131.ledger.accounts import FEES, FUNDING, PAYOUTS, account_id, wallet_code
from payout131.protocol.validation import MAX_KOPECKS
from payout131.storage import numbers, sql
from payout131.storage import schema as t
from payout131.storage.refusals import out_of_range, violated_check
from payout131.storage.sql import Sql

__all__ = [
    "BeyondRange",
    "Hold",
    "HoldAlreadyResolved",
    "Posting",
    "Transaction",
    "Uncovered",
    "place_holds",
    "post_holds",
    "release_holds",
    "return_payouts",
    "topup",
    "topup_wallet",
    "write",
]

COVERED = "ck_accounts_available_not_negative"  # the accounts' CHECK: available >= 0


class HoldAlreadyResolved(RuntimeError):
    """A hold was posted or released twice: a bug, never a partner's mistake."""


class Uncovered(Exception):
    """The database refused holds: an account's available balance would fall below zero."""


class BeyondRange(ValueError):
    """A balance would leave what 64 bits hold (more than ``MAX_KOPECKS``): refused."""


@dataclass(frozen=True, slots=True)
class Transaction:
    """A balanced movement: ``(account id, signed amount)`` entries summing to zero."""

    kind: str
    entries: tuple[tuple[int, int], ...]
    payout_n: int | None = None
    memo: str = ""


@dataclass(frozen=True, slots=True)
class Hold:
    """Money reserved for a payout: its amount plus the bank's fee."""

    account: int
    payout_n: int
    amount: int


@dataclass(frozen=True, slots=True)
class Posting:
    """A payout that succeeded: its hold is posted, ``fee`` of it to the bank's fees."""

    payout_n: int
    fee: int


def write(conn: Connection, transactions: Sequence[Transaction], now: int) -> list[int]:
    """Write balanced transactions; their ids, in order."""
    if not transactions:
        return []
    wanted = {"ledger_transactions": len(transactions)}
    ids = numbers.draw(conn, wanted)["ledger_transactions"]
    _write(conn, transactions, ids, now)
    return ids


def _write(conn: Connection, made: Sequence[Transaction], ids: Sequence[int], now: int) -> None:
    """Entries first, headers last (whose insert checks that each balances)."""
    sql.insert(
        conn,
        t.ledger_entries,
        [
            {"transaction_id": txn, "account_id": account, "amount": amount}
            for txn, transaction in zip(ids, made, strict=True)
            for account, amount in transaction.entries
        ],
    )
    sql.insert(
        conn,
        t.ledger_transactions,
        [
            {
                "id": txn,
                "kind": transaction.kind,
                "payout_n": transaction.payout_n,
                "memo": transaction.memo,
                "created_at": now,
            }
            for txn, transaction in zip(ids, made, strict=True)
        ],
    )


_SYSTEM = Sql("SELECT code, id FROM ledger_accounts WHERE code = ANY(:codes)")


def _system(conn: Connection, code: str) -> int:
    (found,) = sql.rows(conn, _SYSTEM, {"codes": [code]})
    return int(found.id)


def topup(conn: Connection, account: int, amount: int, now: int, memo: str = "top-up") -> int:
    """Credit a partner account with money arriving from outside the bank; ``BeyondRange``
    if the account's balance, or all the money the bank holds, would pass ``MAX_KOPECKS``
    (the database refuses it; nothing is written)."""
    if not 0 < amount <= MAX_KOPECKS:
        raise BeyondRange(f"a top-up is 1 to {MAX_KOPECKS} kopecks, not {amount}")
    funding = _system(conn, FUNDING)
    made = Transaction("topup", ((funding, -amount), (account, amount)), memo=memo)
    try:
        (txn,) = write(conn, [made], now)
    except Exception as exc:
        if out_of_range(exc):
            raise BeyondRange(
                f"a top-up of {amount} kopecks would take a balance, or all the money the bank "
                f"holds, beyond {MAX_KOPECKS} kopecks"
            ) from exc
        raise
    return txn


def topup_wallet(conn: Connection, project_id: str, amount: int, now: int) -> int:
    """``topup`` of a project's collateral wallet."""
    account = account_id(conn, wallet_code(project_id))
    if account is None:
        raise NotFound(f"no project {project_id!r}")
    return topup(conn, account, amount, now)


def place_holds(conn: Connection, holds: Sequence[Hold], now: int) -> None:
    """Reserve each hold's amount on its account, or raise ``Uncovered`` (nothing the
    statement wrote stays: the caller's transaction, or savepoint, must be rolled back)."""
    if not holds:
        return
    rows = [
        {
            "account_id": h.account,
            "payout_n": h.payout_n,
            "amount": h.amount,
            "created_at": now,
            "status": "active",
        }
        for h in holds
    ]
    try:
        sql.insert(conn, t.holds, rows)
        sql.flush(conn)  # the refusal is raised here, not by a later statement
    except Exception as exc:
        if violated_check(exc) == COVERED or out_of_range(exc):  # beyond 64 bits: beyond
            raise Uncovered(str(exc)) from exc  # what any account could cover
        raise


_RESOLVE = Sql(
    """UPDATE holds SET status = :status, resolved_at = :now
    WHERE payout_n = ANY(:numbers) AND status = 'active'
    RETURNING payout_n, account_id, amount"""
)


def _resolved(numbers_: Sequence[int], found: Sequence[Any]) -> list[tuple[int, int, int]]:
    """``(payout_n, account, amount)`` of each resolved hold, by payout; every one asked for."""
    if len(found) != len(set(numbers_)):
        missing = sorted(set(numbers_) - {int(row.payout_n) for row in found})
        raise HoldAlreadyResolved(f"payouts {missing} have no active hold")
    return sorted((int(r.payout_n), int(r.account_id), int(r.amount)) for r in found)


def post_holds(conn: Connection, postings: Sequence[Posting], now: int) -> None:
    """The payouts succeeded: each hold's money leaves its account, the amount to
    ``system:payouts``, the fee (held with it) to ``system:fees``."""
    if not postings:
        return
    fees = {p.payout_n: p.fee for p in postings}
    wanted = {"ledger_transactions": len(fees) + sum(1 for fee in fees.values() if fee)}
    resolve = {"numbers": list(fees), "status": "posted", "now": now}
    found, system, *drawn = sql.together(  # benchmarks: one round trip
        conn,
        [(_RESOLVE, resolve), (_SYSTEM, {"codes": [PAYOUTS, FEES]}), *numbers.asks(conn, wanted)],
    )
    codes = {row.code: int(row.id) for row in system}
    paid_out, fee_income = codes[PAYOUTS], codes[FEES]
    made: list[Transaction] = []
    for payout_n, account, held in _resolved(list(fees), found):
        fee = fees[payout_n]
        amount = held - fee
        assert amount > 0, "a hold covers the amount and the fee"
        made.append(Transaction("payout", ((account, -amount), (paid_out, amount)), payout_n))
        if fee:
            made.append(Transaction("fee", ((account, -fee), (fee_income, fee)), payout_n))
    _write(conn, made, numbers.answers(conn, wanted, drawn)["ledger_transactions"], now)


def release_holds(conn: Connection, payouts: Sequence[int], now: int) -> None:
    """The payouts were cancelled or failed: their held money is available again."""
    if payouts:
        release = {"numbers": list(payouts), "status": "released", "now": now}
        _resolved(payouts, sql.rows(conn, _RESOLVE, release))


def return_payouts(
    conn: Connection, returns: Sequence[tuple[int, int, int]], now: int
) -> list[int]:
    """Paid-out payouts came back from the recipients' banks: each ``(payout_n, account,
    amount)`` credits the account that paid."""
    if not returns:
        return []
    paid_out = _system(conn, PAYOUTS)
    return write(
        conn,
        [
            Transaction("refund", ((paid_out, -amount), (account, amount)), payout_n)
            for payout_n, account, amount in returns
        ],
        now,
    )
