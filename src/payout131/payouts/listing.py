"""What an operator asks of the payouts: a filtered list, and one payout's whole story.

``payout131 payouts list|show`` runs these queries (and the console will run the same).
A list is newest first and pages by keyset on the payout number (``before``: the cursor
the previous page handed back), so a page costs the same deep in a large store as at its
top. Account and card numbers never leave here: a payout's destination is told by its kind
and its bank (BIK, Faster Payments member or card brand).
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from payout131.payouts import call_record
from payout131.payouts.records import VERIFICATION
from payout131.protocol.wire import payout_id, session_id
from payout131.storage import schema as t

__all__ = ["ERROR_CODE", "Filter", "Line", "Moment", "list_payouts", "parse_id", "story"]

ERROR_CODE = re.compile(r"[a-z0-9_]{1,64}")  # what a filter by error code may name


@dataclass(frozen=True, slots=True)
class Filter:
    project: str | None = None
    status: str | None = None
    error: str | None = None
    since: int | None = None  # created at or after (µs)
    until: int | None = None  # created before (µs)
    amount_min: int | None = None  # kopecks, inclusive
    amount_max: int | None = None
    bank: str | None = None  # the destination's bank: a BIK, an SBP member id, a card brand


@dataclass(frozen=True, slots=True)
class Line:
    """One payout in a list."""

    payout: str
    session: str
    project: str
    status: str
    session_status: str
    amount: int  # kopecks
    fee: int
    destination: str  # account, phone, card or verification
    bank: str | None  # the BIK, the SBP member id, or the card's brand
    error: str | None
    created_at: int
    finished_at: int | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _destination(kind: str, recipient: dict[str, Any]) -> tuple[str, str | None]:
    if kind == VERIFICATION:
        return "verification", recipient.get("bank_id")
    if "card_token" in recipient:
        return "card", recipient.get("brand")
    if recipient.get("phone"):
        return "phone", recipient.get("bank_id")
    return "account", recipient.get("bik")


_COLUMNS = (
    t.payouts.c.n,
    t.payouts.c.session_n,
    t.payouts.c.project_id,
    t.payouts.c.status,
    t.payouts.c.amount,
    t.payouts.c.fee,
    t.payouts.c.kind,
    t.payouts.c.recipient,
    t.payouts.c.error_code,
    t.payouts.c.created_at,
    t.payouts.c.finished_at,
    t.sessions.c.status.label("session_status"),
)


def _line(row: Any) -> Line:
    kind, bank = _destination(row.kind, json.loads(row.recipient))
    return Line(
        payout=payout_id(row.n),
        session=session_id(row.session_n),
        project=row.project_id,
        status=row.status,
        session_status=row.session_status,
        amount=int(row.amount),
        fee=int(row.fee),
        destination=kind,
        bank=bank,
        error=row.error_code,
        created_at=int(row.created_at),
        finished_at=None if row.finished_at is None else int(row.finished_at),
    )


def list_payouts(
    conn: Connection, where: Filter, limit: int = 50, before: int | None = None
) -> tuple[list[Line], int | None]:
    """Up to ``limit`` payouts matching ``where``, newest first, below payout number
    ``before``; and the cursor of the next page (None: this was the last)."""
    p, s = t.payouts, t.sessions
    query = sa.select(*_COLUMNS).join(s, s.c.n == p.c.session_n)
    if where.project is not None:
        query = query.where(p.c.project_id == where.project)
    if where.status is not None:
        query = query.where(p.c.status == where.status)
    if where.error is not None:
        query = query.where(p.c.error_code == where.error)
    if where.since is not None:
        query = query.where(p.c.created_at >= where.since)
    if where.until is not None:
        query = query.where(p.c.created_at < where.until)
    if where.amount_min is not None:
        query = query.where(p.c.amount >= where.amount_min)
    if where.amount_max is not None:
        query = query.where(p.c.amount <= where.amount_max)
    if where.bank is not None:  # the recipient is JSON text: its quoted value, then exactly
        query = query.where(p.c.recipient.contains(json.dumps(where.bank), autoescape=True))
    if before is not None:
        query = query.where(p.c.n < before)
    rows = conn.execute(query.order_by(p.c.n.desc()).limit(limit + 1)).all()
    lines = [_line(row) for row in rows[:limit]]
    if where.bank is not None:
        lines = [line for line in lines if line.bank == where.bank]
    return lines, (rows[limit - 1].n if len(rows) > limit else None)


def parse_id(text: str) -> tuple[str, int]:
    """``("session", n)`` for ``ps_<n>``, ``("payout", n)`` for ``po_<n>``; else ValueError."""
    prefix, _, digits = text.strip().partition("_")
    kinds = {"ps": "session", "po": "payout"}
    if prefix not in kinds or not digits.isascii() or not digits.isdigit() or len(digits) > 18:
        raise ValueError(f"{text[:40]!r}: a session (ps_…) or payout (po_…) id")
    return kinds[prefix], int(digits)


@dataclass(frozen=True, slots=True)
class Moment:
    """One thing that happened to a payout, at ``at`` (µs)."""

    at: int
    what: str  # session.created, payout.created, hold.placed, ledger, webhook, attempt, …
    detail: dict[str, Any] = field(default_factory=dict)


def story(conn: Connection, text: str) -> tuple[Line, list[Moment]] | None:
    """A session's (or payout's) payout and everything that happened to it, in time order;
    None if there is no such payout."""
    kind, n = parse_id(text)
    p, s = t.payouts, t.sessions
    key = p.c.session_n if kind == "session" else p.c.n
    row = conn.execute(
        sa.select(*_COLUMNS, p.c.rail, p.c.rail_reference, s.c.created_at.label("opened_at"))
        .join(s, s.c.n == p.c.session_n)
        .where(key == n)
    ).one_or_none()
    if row is None:
        return None
    line = _line(row)
    moments = [
        Moment(int(row.opened_at), "session.created", {"session": line.session}),
        Moment(
            line.created_at,
            "payout.created",
            {"amount": line.amount, "fee": line.fee, "destination": line.destination},
        ),
    ]
    moments += [
        Moment(
            c.at,
            "call",
            {
                "method": c.method,
                "version": c.version,
                "idempotency_key": c.idempotency_key,
                "status": c.status,
                "error": c.error,
            },
        )
        for c in call_record.for_session(conn, row.session_n)
    ]
    moments += _holds(conn, row.n) + _ledger(conn, row.n) + _webhooks(conn, row.session_n)
    if line.finished_at is not None:
        detail = {
            "status": line.status,
            "error": line.error,
            "rail": row.rail,
            "reference": row.rail_reference,  # the rail's own id of the transfer
        }
        moments.append(Moment(line.finished_at, "payout.finished", detail))
    moments.sort(key=lambda m: m.at)
    return line, moments


def _holds(conn: Connection, n: int) -> list[Moment]:
    h = t.holds
    out: list[Moment] = []
    for hold in conn.execute(sa.select(h).where(h.c.payout_n == n)):
        out.append(Moment(int(hold.created_at), "hold.placed", {"amount": int(hold.amount)}))
        if hold.resolved_at is not None:
            detail = {"amount": int(hold.amount), "status": hold.status}
            out.append(Moment(int(hold.resolved_at), f"hold.{hold.status}", detail))
    return out


def _ledger(conn: Connection, n: int) -> list[Moment]:
    x, e, a = t.ledger_transactions, t.ledger_entries, t.ledger_accounts
    rows = conn.execute(
        sa.select(x.c.id, x.c.kind, x.c.memo, x.c.created_at, a.c.code, e.c.amount)
        .join(e, e.c.transaction_id == x.c.id)
        .join(a, a.c.id == e.c.account_id)
        .where(x.c.payout_n == n)
        .order_by(x.c.id, e.c.id)
    ).all()
    out: dict[int, Moment] = {}
    for row in rows:
        moment = out.setdefault(
            row.id,
            Moment(
                int(row.created_at), "ledger", {"kind": row.kind, "memo": row.memo, "entries": []}
            ),
        )
        moment.detail["entries"].append({"account": row.code, "amount": int(row.amount)})
    return list(out.values())


def _webhooks(conn: Connection, session_n: int) -> list[Moment]:
    ev, at = t.events, t.webhook_attempts
    out: list[Moment] = []
    events = conn.execute(
        sa.select(ev.c.id, ev.c.type, ev.c.status, ev.c.created_at)
        .where(ev.c.session_n == session_n)
        .order_by(ev.c.id)
    ).all()
    for event in events:
        detail = {"event": f"evt_{event.id}", "type": event.type, "status": event.status}
        out.append(Moment(int(event.created_at), "webhook", detail))
    attempts = (
        conn.execute(
            sa.select(at).where(at.c.event_id.in_([event.id for event in events])).order_by(at.c.id)
        ).all()
        if events
        else []
    )
    for attempt in attempts:
        detail = {
            "event": f"evt_{attempt.event_id}",
            "http_status": attempt.http_status,
            "error": attempt.error,
            "latency_ms": None if attempt.duration_us is None else attempt.duration_us / 1000,
            "response": (attempt.response or "")[:200],
        }
        out.append(Moment(int(attempt.started_at), "webhook.attempt", detail))
    return out
