"""Payout sessions and their state machine: the use cases behind the session methods.

    session  created ──start──▶ in_progress ──▶ accepted      (payout succeeded)
                                    │       └─▶ cancelled     (payout failed or cancelled)
                                    └─▶ error ──▶ accepted | cancelled   (not final: a rail trouble)
    payout   in_progress ──check──▶ pending ──confirm──▶ in_progress ──rail──▶ succeeded | failed
                                        └──cancel / confirm timeout──▶ failed
    a succeeded payout the recipient's bank sends back stays ``succeeded`` and gains a refund

Single-request projects skip ``pending``: a started payout goes straight to the rail.
Every function runs inside one write transaction handed in by the caller, so a state change,
its ledger entries and its webhook event commit together or not at all.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from payout131 import fees, ledger, refunds
from payout131.accounts import BANK_BIK, settlement_account
from payout131.directory.bik import BikDirectory
from payout131.errors import AuthorizationError, InvalidRequest, NotFound, SessionWrongState
from payout131.projects import Project, wallet_code
from payout131.protocol import wire
from payout131.protocol.payout_request import (
    DRAFT_FIELDS,
    PayoutRequest,
    parse_payout,
    require_object,
)
from payout131.storage import raw
from payout131.storage import schema as t
from payout131.storage.raw import Sql
from payout131.tokens import account_tokens as tokens
from payout131.tokens.vault import Vault
from payout131.webhooks import events

__all__ = [
    "Call",
    "cancel",
    "confirm",
    "create_session",
    "init_payout",
    "load_session",
    "render",
    "start_payout",
    "status",
]


@dataclass(frozen=True, slots=True)
class Call:
    """An authenticated partner call: who, which API version, which variant."""

    project: Project
    version: str
    rko: bool
    now: int
    directory: BikDirectory
    submerchant: str | None = None
    vault: Vault | None = None  # opens tokenized accounts (confirm_information checks)


def _json(value: Any) -> str:
    return wire.dumps(value).decode()


def parse_session_ref(body: dict[str, Any]) -> int:
    value = body.get("session_id")
    if value is None:
        raise InvalidRequest("session_id: required")
    if not isinstance(value, str):
        raise InvalidRequest('session_id: must be a string like "ps_123"')
    digits = value[3:]
    if not value.startswith("ps_") or not digits.isdigit() or len(digits) > 18:
        raise NotFound(f"session_id: no session {value[:64]!r}")
    return int(digits)


def load_session(conn: Connection, call: Call, body: dict[str, Any]) -> Any:
    """The session named by ``session_id``, locked for the rest of the transaction."""
    n = parse_session_ref(body)
    query = sa.select(t.sessions).where(t.sessions.c.n == n).with_for_update()
    row = conn.execute(query).one_or_none()
    return owned_session(row, n, call)


def owned_session(row: Any, n: int, call: Call) -> Any:
    """``row``, session ``n``, if it exists and is the calling project's; else the error."""
    _check_owner(None if row is None else row.project_id, n, call)
    return row


def _check_owner(project_id: str | None, n: int, call: Call) -> None:
    if project_id is None:
        raise NotFound(f"session_id: no session ps_{n}")
    if project_id != call.project.id:
        raise AuthorizationError(f"session_id: session ps_{n} belongs to another project")


def lock_payout(conn: Connection, payout_n: int) -> Any:
    """A payout row, locked, its session locked first: every transaction that changes both
    takes the session before the payout (as ``load_session`` does), so a background step
    and a partner's confirm or cancel never deadlock on PostgreSQL."""
    p, s = t.payouts, t.sessions
    owner = sa.select(p.c.session_n).where(p.c.n == payout_n).scalar_subquery()
    conn.execute(sa.select(s.c.n).where(s.c.n == owner).with_for_update())
    return conn.execute(sa.select(p).where(p.c.n == payout_n).with_for_update()).one_or_none()


def _payouts(conn: Connection, session_n: int) -> list[Any]:
    rows = conn.execute(
        sa.select(t.payouts).where(t.payouts.c.session_n == session_n).order_by(t.payouts.c.n)
    )
    return refunds.attach(conn, [dict(r._mapping) for r in rows])


_SESSIONS = Sql("SELECT * FROM sessions WHERE n = ANY(:numbers) ORDER BY n", booleans=["rko"])
_THEIR_PAYOUTS = Sql("SELECT * FROM payouts WHERE session_n = ANY(:numbers) ORDER BY n")
_THEIR_REFUNDS = Sql(
    """SELECT * FROM refunds
    WHERE payout_n IN (SELECT n FROM payouts WHERE session_n = ANY(:numbers)) ORDER BY n"""
)


def sessions_with_payouts(conn: Connection, numbers: Sequence[int]) -> list[tuple[Any, list[Any]]]:
    """Sessions ``numbers`` (in number order), each with its payouts as rendering wants them:
    a batch's answers and webhook bodies."""
    wanted = {"numbers": list(numbers)}
    rows, found, refunded = raw.together(  # benchmarks: one round trip
        conn, [(_SESSIONS, wanted), (_THEIR_PAYOUTS, wanted), (_THEIR_REFUNDS, wanted)]
    )
    listed: dict[int, list[Any]] = {int(row.n): [] for row in rows}
    for payout in refunds.attach_found(refunded, [r._mapping for r in found]):
        listed[int(payout["session_n"])].append(payout)
    return [(row, listed[int(row.n)]) for row in rows]


def render(conn: Connection, session_n: int, version: str | None = None) -> dict[str, Any]:
    row = conn.execute(sa.select(t.sessions).where(t.sessions.c.n == session_n)).one()
    return wire.render_session(dict(row._mapping), _payouts(conn, session_n), version)


def _new_session(conn: Connection, call: Call, body: dict[str, Any], status: str) -> int:
    return int(_new_session_row(conn, call, body, status).n)


def _new_session_row(conn: Connection, call: Call, body: dict[str, Any], status: str) -> Any:
    return conn.execute(NEW_SESSION, session_values(call, body, status)).one()


def session_values(call: Call, body: dict[str, Any], status: str) -> dict[str, Any]:
    """The ``sessions`` row a call opens, its draft taken from ``body``."""
    draft = {k: body[k] for k in DRAFT_FIELDS if k in body}
    return {
        "project_id": call.project.id,
        "api_version": call.version,
        "rko": call.rko,
        "status": status,
        "submerchant": call.submerchant,
        "metadata": _json(body["metadata"]) if "metadata" in body else None,
        "draft": _json(draft),
        "created_at": call.now,
        "updated_at": call.now,
    }


# benchmarks: built once (building a statement costs more than running it)
# (``sort_by_parameter_order``: many rows in one statement come back in the given order)
NEW_SESSION = sa.insert(t.sessions).returning(t.sessions, sort_by_parameter_order=True)
NEW_PAYOUT = sa.insert(t.payouts).returning(t.payouts, sort_by_parameter_order=True)


def _check_draft(body: dict[str, Any], call: Call) -> None:
    """At create every field is optional, but a field that is given must be right."""
    if "amount_details" in body:
        require_object("amount_details", body["amount_details"])
    for name in ("participant_details", "payment_method", "payout_details"):
        if name in body and body[name] is not None:
            require_object(name, body[name])


def create_session(conn: Connection, call: Call, body: dict[str, Any]) -> dict[str, Any]:
    _check_draft(body, call)
    n = _new_session(conn, call, body, "created")
    return render(conn, n, call.version)


def _merged(draft_text: str, body: dict[str, Any], version: str) -> dict[str, Any]:
    merged: dict[str, Any] = msgspec.json.decode(draft_text)
    given = {k: body[k] for k in DRAFT_FIELDS if k in body}
    if "payment_method" in given or "payout_details" in given:
        merged.pop("payment_method", None)
        merged.pop("payout_details", None)
    merged.update(given)
    if "metadata" in body:  # the payout's own metadata comes only from this call
        merged["metadata"] = body["metadata"]
    return merged


def _paying_account(conn: Connection, call: Call, request: PayoutRequest) -> int:
    if call.rko:
        assert request.sender_account is not None
        row = settlement_account(
            conn, call.project.id, request.sender_account, "participant_details.sender.account"
        )
        return int(row.id)
    account = ledger.account_id(conn, wallet_code(call.project.id))
    assert account is not None, "every project has a wallet"
    return account


def _recipient(call: Call, request: PayoutRequest) -> dict[str, Any]:
    dest = request.destination
    bank = call.directory.get(dest.bik)
    return {
        "account_number": dest.account,
        "token": dest.token,
        "name": dest.full_name,
        "bank_name": bank.name if bank else None,
        "bik": dest.bik,
        "correspondent_account_number": bank.correspondent_account if bank else None,
        "inn": dest.inn,
        "kpp": dest.kpp,
    }


def parse_start(conn: Connection, call: Call, draft: str, body: dict[str, Any]) -> PayoutRequest:
    """The payout a start or init call asks for: the session's draft with the call's fields."""
    return parse_payout(
        _merged(draft, body, call.version),
        call.version,
        call.rko,
        call.directory,
        lambda token: tokens.lookup(conn, call.project.id, token),
    )


def payout_values(
    call: Call, session_n: int, request: PayoutRequest, account: int, fee: int
) -> dict[str, Any]:
    """The ``payouts`` row a started payout begins as, its first step due now."""
    return {
        "session_n": session_n,
        "project_id": call.project.id,
        "status": "in_progress",
        "amount": request.amount,
        "currency": request.currency,
        "account_id": account,
        "destination": _json(request.destination.echo),
        "recipient": _json(_recipient(call, request)),
        "participant_details": _nullable_json(request.participant_details),
        "customer": _nullable_json(request.customer),
        "metadata": _json(request.metadata) if request.has_metadata else None,
        "work": "execute" if call.project.single_request else "check",
        "work_at": call.now,
        "created_at": call.now,
        "updated_at": call.now,
        "fee": fee,
    }


def _start(
    conn: Connection, call: Call, session: Any, body: dict[str, Any], mark: bool = True
) -> Any:
    """Check the payout, hold the money and queue the next step: the core of start/init.

    The new payout's row; ``mark`` moves the session to ``in_progress`` (init makes its
    session ``in_progress`` from the start)."""
    if session.rko != call.rko:
        used, wanted = ("session/create/rko", "/rko") if session.rko else ("session/create", "")
        raise InvalidRequest(
            f"session_id: ps_{session.n} was opened with {used}; "
            f"start it with session/start/payout{wanted}"
        )
    request = parse_start(conn, call, session.draft, body)
    account = _paying_account(conn, call, request)
    fee = fees.payout_fee(request.amount, call.project.fee_bps, call.project.fee_fixed)
    values = payout_values(call, int(session.n), request, account, fee)
    payout = conn.execute(NEW_PAYOUT, values).one()
    ledger.place_hold(conn, account, int(payout.n), request.amount, call.now, fee)
    if mark:
        conn.execute(
            sa.update(t.sessions)
            .where(t.sessions.c.n == session.n)
            .values(status="in_progress", updated_at=call.now)
        )
    return payout


def _nullable_json(value: Any) -> str | None:
    return None if value is None else _json(value)


def start_payout(conn: Connection, call: Call, body: dict[str, Any]) -> dict[str, Any]:
    session = load_session(conn, call, body)
    if session.status != "created":
        raise SessionWrongState(
            f"session_id: ps_{session.n} is {session.status}; a payout starts only in a "
            "created session"
        )
    _start(conn, call, session, body)
    return render(conn, session.n, call.version)


def init_payout(conn: Connection, call: Call, body: dict[str, Any]) -> dict[str, Any]:
    # benchmarks: the session is in_progress from its insert (a refused payout rolls it
    # back), and the answer is rendered from the rows written rather than read back
    session = _new_session_row(conn, call, body, "in_progress")
    payout = _start(conn, call, session, body, mark=False)
    listed = refunds.attach(conn, [dict(payout._mapping)])
    return wire.render_session(dict(session._mapping), listed, call.version)


def _pending_payout(conn: Connection, session: Any, action: str) -> Any:
    payout = conn.execute(
        sa.select(t.payouts).where(t.payouts.c.session_n == session.n).with_for_update()
    ).one_or_none()
    if payout is None or payout.status != "pending":
        raise not_pending(session, payout, action)
    return payout


def not_pending(session: Any, payout: Any, action: str) -> SessionWrongState:
    """The refusal of a confirm or cancel whose session has no payout waiting for it."""
    state = "has no payout" if payout is None else f"has a payout {payout.status}"
    return SessionWrongState(
        f"session_id: ps_{session.n} is {session.status} and {state}; "
        f"{action} needs a payout waiting for confirmation (next_action: confirm)"
    )


def check_confirm_information(
    conn: Connection, body: dict[str, Any], payout: Any, call: Call
) -> None:
    """If the partner echoes ``confirm_information``, its account numbers must be the payout's."""
    info = body.get("confirm_information")
    if info is None:
        return
    details = require_object("confirm_information", info).get("account_details")
    if not isinstance(details, dict):
        return
    given = details.get("recipient")
    if not isinstance(given, dict) or "account_number" not in given:
        return
    if given["account_number"] != tokens.payout_account(conn, call.vault, payout):
        raise InvalidRequest(
            "confirm_information.account_details.recipient.account_number: does not match "
            "the payout's recipient account"
        )


def confirm(conn: Connection, call: Call, body: dict[str, Any]) -> dict[str, Any]:
    session = load_session(conn, call, body)
    payout = _pending_payout(conn, session, "confirm")
    check_confirm_information(conn, body, payout, call)
    conn.execute(
        sa.update(t.payouts)
        .where(t.payouts.c.n == payout.n)
        .values(status="in_progress", work="execute", work_at=call.now, updated_at=call.now)
    )
    conn.execute(
        sa.update(t.sessions).where(t.sessions.c.n == session.n).values(updated_at=call.now)
    )
    return render(conn, session.n, call.version)


def cancel(conn: Connection, call: Call, body: dict[str, Any]) -> dict[str, Any]:
    session = load_session(conn, call, body)
    if session.status == "created":
        conn.execute(
            sa.update(t.sessions)
            .where(t.sessions.c.n == session.n)
            .values(status="cancelled", updated_at=call.now)
        )
        return render(conn, session.n, call.version)
    payout = _pending_payout(conn, session, "cancel")
    check_confirm_information(conn, body, payout, call)
    fail_payout(
        conn,
        payout,
        "session_cancelled_by_partner",
        "the partner cancelled the payout",
        call.now,
    )
    return render(conn, session.n, call.version)


# benchmarks: a session, its payouts and their refunds in one statement (a refund is
# recorded once per payout, so each payout stands in one row)
_s, _p, _r = t.sessions, t.payouts, t.refunds
_STATUS = (
    sa.select(_s, _p, _r)
    .select_from(_s.outerjoin(_p, _p.c.session_n == _s.c.n).outerjoin(_r, _r.c.payout_n == _p.c.n))
    .where(_s.c.n == sa.bindparam("n"))
    .order_by(_p.c.n)
    .set_label_style(sa.LABEL_STYLE_TABLENAME_PLUS_COL)
)


def status(conn: Connection, call: Call, body: dict[str, Any]) -> dict[str, Any]:
    n = parse_session_ref(body)
    rows = [row._mapping for row in conn.execute(_STATUS, {"n": n})]
    _check_owner(rows[0][_s.c.project_id] if rows else None, n, call)
    session = {c.name: rows[0][c] for c in _s.columns}
    payouts: list[Mapping[str, Any]] = []
    for row in rows:
        if row[_p.c.n] is None:  # created, not started: no payout yet
            continue
        payout = {c.name: row[c] for c in _p.columns}
        if row[_r.c.n] is not None and payout["status"] == "succeeded":  # refunds.attach
            payout["refunds"] = [{c.name: row[c] for c in _r.columns}]
        payouts.append(payout)
    return wire.render_session(session, payouts, call.version)


# Transitions the background work makes (the confirm check, the rail's outcome, timeouts).


def _finished(now: int) -> dict[str, Any]:
    """What every finished payout row gets: no next step, no lease, its finishing time."""
    return {
        "work": None,
        "work_at": None,
        "lease_owner": None,
        "lease_until": None,
        "updated_at": now,
        "finished_at": now,
    }


def _finish(conn: Connection, payout: Any, now: int, **values: Any) -> None:
    conn.execute(
        sa.update(t.payouts).where(t.payouts.c.n == payout.n).values(**_finished(now), **values)
    )


def _announce(
    conn: Connection,
    session_n: int,
    kind: str,
    now: int,
    seal_with: Vault | None = None,
    **extra: Any,
) -> None:
    row = conn.execute(sa.select(t.sessions).where(t.sessions.c.n == session_n)).one()
    body = wire.event_body(
        kind, wire.render_session(dict(row._mapping), _payouts(conn, session_n)), **extra
    )
    events.emit(conn, row.project_id, session_n, kind, body, now, seal_with)


def fail_payout(conn: Connection, payout: Any, code: str, description: str, now: int) -> None:
    """Release the hold, fail the payout, cancel its session, announce ``payment_finished``."""
    ledger.release_hold(conn, payout.n, now)
    _finish(conn, payout, now, status="failed", error_code=code, error_description=description)
    conn.execute(
        sa.update(t.sessions)
        .where(t.sessions.c.n == payout.session_n)
        .values(status="cancelled", error_code=None, error_description=None, updated_at=now)
    )
    _announce(conn, payout.session_n, "payment_finished", now)


def succeed_payout(conn: Connection, payout: Any, now: int) -> None:
    """Post the hold (with the payout's fee), mark the payout succeeded and its session
    accepted, announce it."""
    ledger.post_hold(conn, payout.n, now, int(payout.fee))
    _finish(conn, payout, now, status="succeeded")
    conn.execute(
        sa.update(t.sessions)
        .where(t.sessions.c.n == payout.session_n)
        .values(status="accepted", error_code=None, error_description=None, updated_at=now)
    )
    _announce(conn, payout.session_n, "payment_finished", now)


_SUCCEEDED = Sql(  # status, then what every finished payout row gets (_finished)
    "UPDATE payouts SET status = 'succeeded', "  # noqa: S608 (our column names)
    + ", ".join(f"{column} = :{column}" for column in _finished(0))
    + " WHERE n = ANY(:numbers)"
)
_ACCEPTED = Sql(
    """UPDATE sessions SET status = 'accepted', error_code = NULL, error_description = NULL,
    updated_at = :now WHERE n = ANY(:numbers)"""
)


def succeed_payouts(conn: Connection, payouts: Sequence[Any], now: int) -> None:
    """``succeed_payout`` for many payouts (locked rows, each ``in_progress``) at once: the
    worker's batches, a statement per step rather than per payout."""
    if not payouts:
        return
    with raw.pipeline(conn):  # benchmarks: the writes travel with the next read
        ledger.post_holds(conn, [(int(p.n), int(p.fee)) for p in payouts], now)
        numbers, owners = [p.n for p in payouts], [p.session_n for p in payouts]
        raw.run(conn, _SUCCEEDED, {"numbers": numbers, **_finished(now)})
        raw.run(conn, _ACCEPTED, {"numbers": owners, "now": now})
        made = [
            (
                row.project_id,
                int(row.n),
                "payment_finished",
                wire.event_body(
                    "payment_finished", wire.render_session(dict(row._mapping), listed)
                ),
            )
            for row, listed in sessions_with_payouts(conn, owners)
        ]
        events.emit_many(conn, made, now)


def payout_in_error(conn: Connection, payout: Any, code: str, description: str, now: int) -> None:
    """The rail hit a trouble it is still working out: the session shows ``error`` (not
    final), the payout stays ``in_progress``, no webhook is sent until the outcome."""
    conn.execute(
        sa.update(t.sessions)
        .where(t.sessions.c.n == payout.session_n, t.sessions.c.status != "error")
        .values(status="error", error_code=code, error_description=description, updated_at=now)
    )


def refund_payout(conn: Connection, payout: Any, amount: int, now: int) -> None:
    """The recipient's bank sent a succeeded payout back: credit the paying account, list the
    refund in the payout, announce ``payment_refunded``. Once per payout."""
    if refunds.record(conn, payout.n, amount, now) is None:
        return
    ledger.return_payout(conn, payout.n, int(payout.account_id), amount, now)
    conn.execute(sa.update(t.payouts).where(t.payouts.c.n == payout.n).values(updated_at=now))
    conn.execute(
        sa.update(t.sessions).where(t.sessions.c.n == payout.session_n).values(updated_at=now)
    )
    _announce(conn, payout.session_n, "payment_refunded", now)


def ready_to_confirm(
    conn: Connection,
    payout: Any,
    project: Project,
    directory: BikDirectory,
    now: int,
    vault: Vault | None = None,
) -> None:
    """Checks passed and the money is held: wait for the partner, tell them so."""
    deadline = now + project.confirm_timeout_s * 1_000_000
    conn.execute(
        sa.update(t.payouts)
        .where(t.payouts.c.n == payout.n)
        .values(
            status="pending",
            work="expire",
            work_at=deadline,
            lease_owner=None,
            lease_until=None,
            updated_at=now,
        )
    )
    conn.execute(
        sa.update(t.sessions).where(t.sessions.c.n == payout.session_n).values(updated_at=now)
    )
    session = conn.execute(sa.select(t.sessions).where(t.sessions.c.n == payout.session_n)).one()
    extra = {}
    seal_with = None
    if session.rko:
        extra["confirm_information"] = confirm_information(conn, payout, project, directory, vault)
        if wire.loads_field(payout.recipient).get("token"):  # the account in full: sealed
            seal_with = vault
    _announce(conn, payout.session_n, "ready_to_confirm", now, seal_with, **extra)


def confirm_information(
    conn: Connection,
    payout: Any,
    project: Project,
    directory: BikDirectory,
    vault: Vault | None = None,
) -> dict[str, Any]:
    """Both sides of the transfer, bank names and correspondent accounts from the directory.

    A tokenized recipient's account is opened by the vault: the partner checks the real
    account here, the one place it is shown.
    """
    sender_number = conn.execute(
        sa.select(t.ledger_accounts.c.code).where(t.ledger_accounts.c.id == payout.account_id)
    ).scalar_one()
    recipient_account = tokens.payout_account(conn, vault, payout)
    return confirm_details(sender_number, recipient_account, payout, project, directory)


def confirm_details(
    sender_number: str,
    recipient_account: str,
    payout: Any,
    project: Project,
    directory: BikDirectory,
) -> dict[str, Any]:
    """``confirm_information`` from the paying account's number and the recipient's account."""
    bank = directory.get(BANK_BIK)
    sender = {
        "account_number": sender_number,
        "name": project.legal_name or project.id,
        "bank_name": bank.name if bank else "Bank 131",
        "bik": BANK_BIK,
        "correspondent_account_number": bank.correspondent_account if bank else None,
        "inn": project.inn,
        "kpp": project.kpp,
    }
    recipient = {k: v for k, v in wire.loads_field(payout.recipient).items() if k != "token"}
    recipient["account_number"] = recipient_account
    recipient = {k: v for k, v in recipient.items() if v is not None or k in ("inn", "kpp")}
    return {"account_details": {"sender": sender, "recipient": recipient}}
