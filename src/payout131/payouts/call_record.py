"""The calls that touched a session: each partner call that made, started, confirmed or
cancelled it, or that it refused, with its method, idempotency key and answer.

A call's row is written by the group that runs it, in the same transaction as what it
changed (a refused call's too: the group commits the others), so the record is never ahead
of or behind the session. Reads (``session/status``) change nothing and are not recorded.
Rows are kept as long as idempotency keys (``PAYOUT131_RETAIN_KEYS``; ``payout131 purge``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from payout131.errors import ApiError
from payout131.payouts.calls import PartnerCall
from payout131.payouts.records import Listed
from payout131.protocol.requests import given
from payout131.protocol.validation import id_number
from payout131.storage import schema as t
from payout131.storage import sql
from payout131.storage.sql import Sql

__all__ = ["Call", "for_session", "purge", "record"]

_INSERT = Sql(
    """INSERT INTO session_calls (session_n, project_id, method, version, idempotency_key,
    status, error_code, at) VALUES (:session_n, :project_id, :method, :version, :key,
    :status, :error, :at)"""
)
_OLD = Sql(
    """DELETE FROM session_calls WHERE id IN (SELECT id FROM session_calls WHERE at < :before
    AND project_id NOT IN (SELECT id FROM projects WHERE test_clock IS NOT NULL)
    ORDER BY id LIMIT :limit)"""
)  # a project on a test clock keeps them: their times are its clock's, not the wall's


@dataclass(frozen=True, slots=True)
class Call:
    at: int
    method: str
    version: str
    idempotency_key: str | None
    status: int
    error: str | None


def _named(call: PartnerCall[Any]) -> int | None:
    """The session a call's body names (``session_id``), if any."""
    text = given(getattr(call.body, "session_id", None))
    if not isinstance(text, str) or not text.startswith("ps_"):
        return None
    return id_number(text[3:])


def record(
    conn: Connection, method: str, calls: Sequence[PartnerCall[Any]], answers: Sequence[Any]
) -> None:
    """Write down each call of a group that reached a session: one answered with the
    session, or refused by a session of the calling project that its body names (a group
    may hold several projects' calls: each refusal is matched to its own project)."""
    rows: list[dict[str, Any]] = []
    refused: list[tuple[int, PartnerCall[Any], ApiError]] = []
    for call, answer in zip(calls, answers, strict=True):
        if isinstance(answer, Listed):
            rows.append(_row(answer.session.n, method, call, 200, None))
        elif isinstance(answer, ApiError) and (n := _named(call)) is not None:
            refused.append((n, call, answer))
    if refused:
        s = t.sessions
        owners = dict(
            conn.execute(
                sa.select(s.c.n, s.c.project_id).where(s.c.n.in_({n for n, _, _ in refused}))
            ).all()
        )
        for n, call, error in refused:
            if owners.get(n) == call.project.id:
                rows.append(_row(n, method, call, error.status, error.code))
    sql.many(conn, _INSERT, rows)


def _row(
    n: int, method: str, call: PartnerCall[Any], status: int, error: str | None
) -> dict[str, Any]:
    return {
        "session_n": n,
        "project_id": call.project.id,
        "method": method,
        "version": call.version,
        "key": call.idempotency_key,
        "status": status,
        "error": error,
        "at": call.now,
    }


def for_session(conn: Connection, session_n: int) -> list[Call]:
    c = t.session_calls
    rows = conn.execute(sa.select(c).where(c.c.session_n == session_n).order_by(c.c.id))
    return [
        Call(int(r.at), r.method, r.version, r.idempotency_key, int(r.status), r.error_code)
        for r in rows
    ]


def purge(conn: Connection, before: int, limit: int) -> int:
    """Forget up to ``limit`` call rows written before ``before``; how many."""
    return sql.run(conn, _OLD, {"before": before, "limit": limit})
