"""Numbers for new rows, drawn before the rows are written: the one way rows are numbered.

A use case that writes a session, its payout and the payout's hold in one go needs each
row's number before any of them is sent, so that all the statements travel together. On
PostgreSQL the numbers come from the table's sequence (``nextval``: never handed out twice,
even across processes; a number drawn by a transaction that rolls back is skipped, as with
any sequence); on SQLite they follow the largest number in the table, which the write
transaction's lock makes ours alone until it commits.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy.engine import Connection

from payout131.storage.sql import Sql, is_postgresql, together

__all__ = ["SEQUENCES", "answers", "asks", "draw"]

# table -> (its numbered column, the PostgreSQL sequence that numbers it)
SEQUENCES = {
    "sessions": ("n", "sessions_n_seq"),
    "payouts": ("n", "payouts_n_seq"),
    "refunds": ("n", "refunds_n_seq"),
    "ledger_transactions": ("id", "ledger_transaction_ids"),
}


def _postgresql(table: str) -> Sql[tuple[int]]:
    _, sequence = SEQUENCES[table]
    return Sql(f"SELECT nextval('{sequence}') AS n FROM generate_series(1, :count)")  # noqa: S608


def _sqlite(table: str) -> Sql[tuple[int]]:
    column, _ = SEQUENCES[table]
    return Sql(f"SELECT COALESCE(MAX({column}), 0) AS last FROM {table}")  # noqa: S608


_DRAW = {table: (_postgresql(table), _sqlite(table)) for table in SEQUENCES}


def asks(conn: Connection, wanted: Mapping[str, int]) -> list[tuple[Sql[Any], dict[str, int]]]:
    """The statements that draw ``wanted[table]`` numbers for each table, to run in a
    ``sql.together`` with others; ``answers`` reads their rows."""
    postgresql = is_postgresql(conn)
    return [
        (_DRAW[table][0], {"count": count}) if postgresql else (_DRAW[table][1], {})
        for table, count in wanted.items()
    ]


def answers(
    conn: Connection, wanted: Mapping[str, int], found: Sequence[Sequence[Any]]
) -> dict[str, list[int]]:
    """The numbers drawn, by table, in ascending order, from the rows of ``asks``."""
    drawn: dict[str, list[int]] = {}
    postgresql = is_postgresql(conn)
    for (table, count), rows in zip(wanted.items(), found, strict=True):
        if postgresql:
            drawn[table] = [int(row[0]) for row in rows]
        else:
            last = int(rows[0][0])
            drawn[table] = list(range(last + 1, last + 1 + count))
    return drawn


def draw(conn: Connection, wanted: Mapping[str, int]) -> dict[str, list[int]]:
    """``wanted[table]`` new numbers for each table, in ascending order (one round trip).

    On SQLite the numbers follow the table's rows: write them before drawing again."""
    return answers(conn, wanted, together(conn, asks(conn, wanted)))
