"""The outbox: each webhook is written as a row in the transaction of the change it announces."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from payout131.storage import schema as t

__all__ = ["emit"]


def emit(
    conn: Connection, project_id: str, session_n: int, kind: str, body: bytes, now: int
) -> int:
    """Store one event with the exact bytes its webhook will carry; due at once."""
    result = conn.execute(
        sa.insert(t.events)
        .values(
            project_id=project_id,
            session_n=session_n,
            type=kind,
            body=body,
            status="pending",
            next_attempt_at=now,
            created_at=now,
        )
        .returning(t.events.c.id)
    )
    return int(result.scalar_one())
