"""Many rows into one table in one go, straight through the driver (the hot paths' inserts).

SQLAlchemy writes a multi-row ``INSERT ... RETURNING`` as one ``VALUES`` list per batch
size, so a group of 7 and a group of 9 are two statements for it, for psycopg's query cache
and for PostgreSQL's prepared statements, and building each costs milliseconds. Here the
statement is one row's ``INSERT``, the same text whatever the number of rows: psycopg sends
them all in one pipeline (``executemany(..., returning=True)``), SQLite runs them in
process. The rows come back as dicts, in the order given, typed as the table declares
(SQLite keeps booleans as integers).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

__all__ = ["insert_returning"]


@cache
def _statement(table: sa.Table, columns: tuple[str, ...], postgresql: bool) -> str:
    names = ", ".join(columns)
    marks = ", ".join(f"%({c})s" if postgresql else f":{c}" for c in columns)
    return f"INSERT INTO {table.name} ({names}) VALUES ({marks}) RETURNING *"  # noqa: S608


@cache
def _booleans(table: sa.Table) -> frozenset[str]:
    return frozenset(c.name for c in table.columns if isinstance(c.type, sa.Boolean))


def insert_returning(
    conn: Connection, table: sa.Table, rows: Sequence[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Insert ``rows`` (each with the same keys) and return each row as stored, in order."""
    if not rows:
        return []
    postgresql = conn.dialect.name == "postgresql"
    sql = _statement(table, tuple(rows[0]), postgresql)
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        stored: list[tuple[Any, ...]] = []
        if postgresql:
            cursor.executemany(sql, rows, returning=True)
            while True:
                stored.extend(cursor.fetchall())
                if not cursor.nextset():
                    break
        else:
            for row in rows:
                stored.extend(cursor.execute(sql, row).fetchall())
        names = [d[0] for d in cursor.description]
    finally:
        cursor.close()
    flags = _booleans(table)
    out = []
    for values in stored:
        record = dict(zip(names, values, strict=True))
        for name in flags:
            if record.get(name) is not None:
                record[name] = bool(record[name])
        out.append(record)
    return out
