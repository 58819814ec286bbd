"""The audit log: every action an operator takes, in the console or with the CLI.

An entry names who, what, on what, the state before and after (as JSON), when, and from
where (the console's client address; ``cli`` for a command). Entries are only added.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from payout131.storage import schema as t

__all__ = ["Entry", "list_entries", "record"]


@dataclass(frozen=True, slots=True)
class Entry:
    id: int
    at: int
    operator: str
    action: str
    target: str
    before: Any
    after: Any
    address: str | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, sort_keys=True, ensure_ascii=False)


def record(
    conn: Connection,
    *,
    operator: str,
    action: str,
    at: int,
    target: str = "",
    before: Any = None,
    after: Any = None,
    address: str | None = None,
) -> None:
    """Add an entry, in the caller's transaction (so it commits with what it records)."""
    conn.execute(
        t.audit_log.insert().values(
            at=at,
            operator=operator,
            action=action,
            target=target,
            before=_json(before),
            after=_json(after),
            address=address,
        )
    )


def list_entries(
    conn: Connection,
    *,
    limit: int = 50,
    before: int | None = None,
    operator: str | None = None,
    action: str | None = None,
) -> tuple[list[Entry], int | None]:
    """Entries newest first, below id ``before``; and the next page's cursor (None: last)."""
    a = t.audit_log
    query = sa.select(a)
    if before is not None:
        query = query.where(a.c.id < before)
    if operator is not None:
        query = query.where(a.c.operator == operator)
    if action is not None:
        query = query.where(a.c.action == action)
    rows = conn.execute(query.order_by(a.c.id.desc()).limit(limit + 1)).all()
    entries = [
        Entry(
            id=int(row.id),
            at=int(row.at),
            operator=row.operator,
            action=row.action,
            target=row.target,
            before=None if row.before is None else json.loads(row.before),
            after=None if row.after is None else json.loads(row.after),
            address=row.address,
        )
        for row in rows[:limit]
    ]
    return entries, (entries[-1].id if len(rows) > limit else None)
