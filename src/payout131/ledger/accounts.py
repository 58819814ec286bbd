"""The ledger's accounts: the bank's own, each partner's collateral wallet and settlement
accounts (BIK 049205131), and reading their balances.

An account's ``balance`` and ``held`` are the database's to keep (``book`` writes entries and
holds; triggers keep the two columns): nothing here writes them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from payout131.errors import AuthorizationError, NotFound
from payout131.protocol import validation
from payout131.storage import schema as t
from payout131.storage import sql
from payout131.storage.sql import Sql

__all__ = [
    "BANK_BIK",
    "CODES",
    "FEES",
    "FUNDING",
    "PAYOUTS",
    "Account",
    "Balance",
    "account_id",
    "balance",
    "codes",
    "find",
    "open_account",
    "open_settlement_account",
    "owned_settlement_account",
    "settlement_account",
    "wallet_code",
]

BANK_BIK = "049205131"
FUNDING = "system:funding"  # where top-ups come from
PAYOUTS = "system:payouts"  # where paid-out money goes
FEES = "system:fees"  # the bank's fee income


class Account(NamedTuple):
    """A ledger account as a payout sees it."""

    id: int
    code: str
    kind: str
    project_id: str | None
    balance: int
    held: int


@dataclass(frozen=True, slots=True)
class Balance:
    balance: int
    held: int

    @property
    def available(self) -> int:
        return self.balance - self.held


def wallet_code(project_id: str) -> str:
    """The code of a project's collateral wallet (paid from by payouts without /rko)."""
    return f"wallet:{project_id}"


def open_account(conn: Connection, code: str, kind: str, project_id: str | None, now: int) -> int:
    result = conn.execute(
        sa.insert(t.ledger_accounts)
        .values(code=code, kind=kind, project_id=project_id, created_at=now)
        .returning(t.ledger_accounts.c.id)
    )
    return int(result.scalar_one())


def list_accounts(conn: Connection, project_id: str | None = None) -> list[Account]:
    """Every ledger account (or a project's), the bank's own first, then by code."""
    a = t.ledger_accounts
    query = sa.select(a.c.id, a.c.code, a.c.kind, a.c.project_id, a.c.balance, a.c.held)
    if project_id is not None:
        query = query.where(a.c.project_id == project_id)
    rows = conn.execute(query.order_by(a.c.project_id.is_not(None), a.c.project_id, a.c.code))
    return [Account(*row) for row in rows]


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


_FIND = Sql(
    f"SELECT {sql.columns(Account)} FROM ledger_accounts WHERE code = ANY(:codes)",  # noqa: S608
    make=Account,
)


def find(conn: Connection, codes: Iterable[str]) -> dict[str, Account]:
    """The accounts with these codes, by code (the ones that exist)."""
    return {row.code: row for row in sql.rows(conn, _FIND, {"codes": sorted(set(codes))})}


CODES = Sql("SELECT id, code FROM ledger_accounts WHERE id = ANY(:ids)")
"""The codes (a settlement account's number) of the accounts with ids ``ids``."""


def codes(conn: Connection, ids: Iterable[int]) -> dict[int, str]:
    """The codes of the accounts with these ids, by id."""
    found = sql.rows(conn, CODES, {"ids": sorted(set(ids))})
    return {int(row.id): str(row.code) for row in found}


def open_settlement_account(
    conn: Connection, project_id: str, now: int, number: str | None = None
) -> str:
    """Open a ruble settlement account; generate a valid ``40702810…`` number if none given."""
    if number is None:
        while True:
            number = validation.generate_account(BANK_BIK, "40702810")
            if account_id(conn, number) is None:
                break
    else:
        number = validation.check_settlement_account("--number", BANK_BIK, number)
    open_account(conn, number, "settlement", project_id, now)
    return number


def settlement_account(conn: Connection, project_id: str, number: str, field: str) -> Account:
    """The settlement account ``number``, which must belong to ``project_id``."""
    # reliability: check the number before the query (PostgreSQL refuses a NUL in a string)
    validation.check_settlement_account(field, BANK_BIK, number)
    return owned_settlement_account(find(conn, [number]).get(number), project_id, number, field)


def owned_settlement_account(
    row: Account | None, project_id: str, number: str, field: str
) -> Account:
    """``row`` if it is a settlement account of ``project_id``; else the partner's error."""
    if row is None or row.kind != "settlement":
        raise NotFound(f"{field}: no settlement account {number} at Bank 131 (BIK {BANK_BIK})")
    if row.project_id != project_id:
        raise AuthorizationError(f"{field}: account {number} does not belong to this project")
    return row
