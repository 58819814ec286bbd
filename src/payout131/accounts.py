"""Settlement accounts the bank keeps for partners (BIK 049205131), and top-ups."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from payout131 import ledger
from payout131.errors import AuthorizationError, NotFound
from payout131.projects import wallet_code
from payout131.protocol import validation
from payout131.storage import raw
from payout131.storage import schema as t
from payout131.storage.raw import Sql

__all__ = [
    "BANK_BIK",
    "lock_accounts",
    "open_settlement_account",
    "owned_settlement_account",
    "settlement_account",
    "topup_wallet",
]

BANK_BIK = "049205131"


def open_settlement_account(
    conn: Connection, project_id: str, now: int, number: str | None = None
) -> str:
    """Open a ruble settlement account; generate a valid ``40702810…`` number if none given."""
    if number is None:
        while True:
            number = validation.generate_account(BANK_BIK, "40702810")
            if ledger.account_id(conn, number) is None:
                break
    else:
        number = validation.check_settlement_account("--number", BANK_BIK, number)
    ledger.open_account(conn, number, "settlement", project_id, now)
    return number


_a = t.ledger_accounts
_SETTLEMENT_ACCOUNT = sa.select(_a.c.id, _a.c.kind, _a.c.project_id, _a.c.balance, _a.c.held).where(
    _a.c.code == sa.bindparam("number"), _a.c.kind == "settlement"
)  # benchmarks: built once


def settlement_account(conn: Connection, project_id: str, number: str, field: str) -> Any:
    """The ledger row of a settlement account that must belong to ``project_id``."""
    # reliability: check the number before the query (PostgreSQL refuses a NUL in a string)
    validation.check_settlement_account(field, BANK_BIK, number)
    row = conn.execute(_SETTLEMENT_ACCOUNT, {"number": number}).one_or_none()
    return owned_settlement_account(row, project_id, number, field)


def owned_settlement_account(row: Any, project_id: str, number: str, field: str) -> Any:
    """``row`` if it is a settlement account of ``project_id``; else the partner's error."""
    if row is None or row.kind != "settlement":
        raise NotFound(f"{field}: no settlement account {number} at Bank 131 (BIK {BANK_BIK})")
    if row.project_id != project_id:
        raise AuthorizationError(f"{field}: account {number} does not belong to this project")
    return row


_LOCK = Sql(
    """SELECT id, code, kind, project_id, balance, held FROM ledger_accounts
    WHERE code = ANY(:codes) ORDER BY id FOR UPDATE"""
)  # benchmarks: every init/payout group runs it; straight to the driver (storage/raw.py)


def lock_accounts(conn: Connection, codes: Iterable[str]) -> dict[str, Any]:
    """The ledger rows of the accounts with these codes, locked in id order, by code."""
    return {row.code: row for row in raw.rows(conn, _LOCK, {"codes": sorted(set(codes))})}


def topup_wallet(conn: Connection, project_id: str, amount: int, now: int) -> int:
    account = ledger.account_id(conn, wallet_code(project_id))
    if account is None:
        raise NotFound(f"no project {project_id!r}")
    return ledger.topup(conn, account, amount, now)


def project_exists_query(project_id: str) -> sa.Select[tuple[str]]:
    return sa.select(t.projects.c.id).where(t.projects.c.id == project_id)
