"""Table locks a few writers agree on, where row locks do not say enough.

A vault rotation must not retire a key while a transaction is sealing with it: every
sealing transaction takes ``SEALING`` (shared with other sealers) and the rotation's last
step takes ``RETIRING`` (which waits for the sealers and keeps new ones out). On PostgreSQL
these are table locks on ``account_tokens``; on SQLite the write lock, taken when a write
transaction begins, already keeps every other writer out, so there is nothing to take.
"""

from __future__ import annotations

from sqlalchemy.engine import Connection

from payout131.storage import sql
from payout131.storage.sql import Sql, is_postgresql

__all__ = ["RETIRING", "SEALING", "take"]

SEALING = Sql("LOCK TABLE account_tokens IN ROW EXCLUSIVE MODE")
RETIRING = Sql("LOCK TABLE account_tokens IN SHARE MODE")


def take(conn: Connection, lock: Sql[object]) -> None:
    """Take ``lock`` for the rest of the transaction (nothing to take on SQLite)."""
    if is_postgresql(conn):
        sql.run(conn, lock)
