"""The delivery history as operators read it: events, their attempts, what holds them up."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from payout131.protocol.validation import id_number
from payout131.storage import schema as t
from payout131.webhooks.outbox import WAITING

__all__ = ["STATUSES", "attempts", "blocker", "get_event", "list_events", "parse_event_id"]

STATUSES = ("pending", "failed", "delivered", "dead")

e = t.events


def parse_event_id(text: str) -> int:
    """``evt_12`` or ``12``; ValueError for anything else."""
    n = id_number(text.removeprefix("evt_"))
    if n is None:
        raise ValueError(f"{text[:64]!r} is not an event id like evt_12")
    return n


def _columns() -> list[Any]:
    return [
        e.c.id,
        e.c.project_id,
        e.c.session_n,
        e.c.type,
        e.c.status,
        e.c.attempts,
        e.c.next_attempt_at,
        e.c.lease_owner,
        e.c.lease_until,
        e.c.created_at,
        e.c.delivered_at,
        e.c.replayed_at,
        t.projects.c.webhook_url,
    ]


def list_events(
    conn: Connection, project_id: str | None, status: str | None, limit: int
) -> list[Any]:
    """The newest ``limit`` events, optionally of one project and one status."""
    query = sa.select(*_columns()).join(t.projects, t.projects.c.id == e.c.project_id)
    if project_id is not None:
        query = query.where(e.c.project_id == project_id)
    if status is not None:
        query = query.where(e.c.status == status)
    return list(conn.execute(query.order_by(e.c.id.desc()).limit(limit)).all())


def get_event(conn: Connection, event_id: int) -> Any:
    """The event (with its body and its project's URL), or None."""
    query = (
        sa.select(*_columns(), e.c.body, e.c.body_key_id)  # tokens: key id of a sealed body
        .join(t.projects, t.projects.c.id == e.c.project_id)
        .where(e.c.id == event_id)
    )
    return conn.execute(query).one_or_none()


def session_events(conn: Connection, session_n: int) -> list[Any]:
    """A session's events, oldest first, each as ``get_event`` gives it."""
    query = (
        sa.select(*_columns(), e.c.body, e.c.body_key_id)
        .join(t.projects, t.projects.c.id == e.c.project_id)
        .where(e.c.session_n == session_n)
        .order_by(e.c.id)
    )
    return list(conn.execute(query).all())


def attempts(conn: Connection, event_id: int) -> list[Any]:
    """Every attempt to deliver the event, oldest first."""
    a = t.webhook_attempts
    query = sa.select(a).where(a.c.event_id == event_id).order_by(a.c.id)
    return list(conn.execute(query).all())


def blocker(conn: Connection, event_id: int) -> int | None:
    """The earliest earlier event of the same session that still waits, if any."""
    earlier = e.alias("earlier")
    query = (
        sa.select(sa.func.min(earlier.c.id))
        .select_from(e.join(earlier, earlier.c.session_n == e.c.session_n))
        .where(e.c.id == event_id, earlier.c.id < e.c.id, earlier.c.status.in_(WAITING))
    )
    found = conn.execute(query).scalar()
    return None if found is None else int(found)
