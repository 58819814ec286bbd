"""Session steps for many payouts at once: a few statements per group rather than per call.

``init_payouts``: ``session/init/payout`` for the calls of one group commit.

The API's group commit (``storage/group_commit.py``) hands the calls waiting for one commit
here together. One at a time, each call costs five statements (paying account, session,
payout, hold, the account's ``held``); here the whole group costs about as many:

1. every body is parsed and checked as ``sessions.init_payout`` checks it;
2. the paying accounts are read once, locked, in id order;
3. each call in turn is held against what is still available, counting the calls before
   it: a call the account cannot cover is refused (``insufficient_balance``) and writes
   nothing, like any other refused call;
4. the sessions, the payouts and the holds of the calls accepted are inserted with one
   statement each, and each paying account's ``held`` grows once by their sum.

Each call gets the answer, or the error, that ``sessions.init_payout`` would have given
it. The database still refuses a negative available balance; if anything raises here, the
group runs every call again one at a time.

``confirm_many``: ``session/confirm`` for the calls of one group commit, the same way:
sessions and payouts read and locked once (sessions first, as every writer takes them),
each call refused or accepted in turn, the accepted moved on with one statement each.

``ready_to_confirm_many``: the worker's ``check`` step for a batch of leased payouts, what
``sessions.ready_to_confirm`` does for each, with a statement per step.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Connection

from payout131 import events, fees, ledger, tokens, validation, wire
from payout131.accounts import BANK_BIK, lock_accounts, owned_settlement_account
from payout131.bik import BikDirectory
from payout131.errors import ApiError
from payout131.payout_request import PayoutRequest
from payout131.projects import Project, wallet_code
from payout131.sessions import (
    Call,
    check_confirm_information,
    confirm_details,
    not_pending,
    owned_session,
    parse_session_ref,
    parse_start,
    payout_values,
    session_values,
    sessions_with_payouts,
)
from payout131.storage import raw
from payout131.storage import schema as t
from payout131.storage.bulk import insert_returning
from payout131.storage.raw import Sql
from payout131.vault import Vault

__all__ = ["confirm_many", "init_payouts", "ready_to_confirm_many"]

SENDER = "participant_details.sender.account"


@dataclass(slots=True)
class _Planned:
    index: int
    call: Call
    body: dict[str, Any]
    request: PayoutRequest
    code: str  # the paying account's ledger code
    account: int = 0
    fee: int = 0


def init_payouts(conn: Connection, calls: list[tuple[Call, dict[str, Any]]]) -> list[Any]:
    """Each call's answer (the rendered method result) or its ``ApiError``, in order."""
    outcomes: list[Any] = [None] * len(calls)
    planned: list[_Planned] = []
    for index, (call, body) in enumerate(calls):
        try:
            planned.append(_plan(conn, index, call, body))
        except ApiError as exc:
            outcomes[index] = exc
    if not planned:
        return outcomes
    locked = lock_accounts(conn, {p.code for p in planned})
    accepted = []
    reserved: dict[int, int] = {}
    for plan in planned:
        try:
            row = _paying_row(plan, locked)
            plan.account = int(row.id)
            plan.fee = fees.payout_fee(
                plan.request.amount, plan.call.project.fee_bps, plan.call.project.fee_fixed
            )
            total = plan.request.amount + plan.fee
            if int(row.balance) - int(row.held) - reserved.get(plan.account, 0) < total:
                raise ledger.insufficient(plan.request.amount, plan.fee)
        except ApiError as exc:
            outcomes[plan.index] = exc
            continue
        reserved[plan.account] = reserved.get(plan.account, 0) + total
        accepted.append(plan)
    if not accepted:
        return outcomes
    new_sessions = insert_returning(
        conn, t.sessions, [session_values(p.call, p.body, "in_progress") for p in accepted]
    )
    new_payouts = insert_returning(
        conn,
        t.payouts,
        [
            payout_values(p.call, int(s["n"]), p.request, p.account, p.fee)
            for p, s in zip(accepted, new_sessions, strict=True)
        ],
    )
    ledger.place_holds(
        conn,
        [
            (p.account, int(payout["n"]), p.request.amount + p.fee, p.call.now)
            for p, payout in zip(accepted, new_payouts, strict=True)
        ],
    )
    for plan, session, payout in zip(accepted, new_sessions, new_payouts, strict=True):
        rendered = wire.render_session(session, [payout], plan.call.version)
        outcomes[plan.index] = {"status": "ok", "session": rendered}
    return outcomes


def _plan(conn: Connection, index: int, call: Call, body: dict[str, Any]) -> _Planned:
    draft = session_values(call, body, "in_progress")["draft"]
    request = parse_start(conn, call, draft, body)
    if call.rko:
        assert request.sender_account is not None
        # reliability: check the number before the query (PostgreSQL refuses a NUL)
        validation.check_settlement_account(SENDER, BANK_BIK, request.sender_account)
        code = request.sender_account
    else:
        code = wallet_code(call.project.id)
    return _Planned(index, call, body, request, code)


def _paying_row(plan: _Planned, locked: dict[str, Any]) -> Any:
    row = locked.get(plan.code)
    if not plan.call.rko:
        if row is None:
            raise RuntimeError(f"project {plan.call.project.id} has no wallet")
        return row
    return owned_settlement_account(row, plan.call.project.id, plan.code, SENDER)


# benchmarks: the batches' statements go straight to the driver (storage/raw.py)
_PENDING = Sql(
    """UPDATE payouts SET status = 'pending', work = 'expire', work_at = :deadline,
    lease_owner = NULL, lease_until = NULL, updated_at = :now WHERE n = :number"""
)
_SESSIONS_TOUCHED = Sql("UPDATE sessions SET updated_at = :now WHERE n = ANY(:numbers)")
_CODES = Sql("SELECT id, code FROM ledger_accounts WHERE id = ANY(:ids)")


def ready_to_confirm_many(
    conn: Connection,
    payouts: Sequence[Any],
    projects: Mapping[str, Project],
    directory: BikDirectory,
    now: int,
    vault: Vault | None = None,
) -> None:
    """``sessions.ready_to_confirm`` for many leased payouts (locked, their sessions too)."""
    if not payouts:
        return
    raw.many(
        conn,
        _PENDING,
        [
            {
                "number": p.n,
                "deadline": now + projects[p.project_id].confirm_timeout_s * 1_000_000,
                "now": now,
            }
            for p in payouts
        ],
    )
    owners = sorted({int(p.session_n) for p in payouts})
    raw.run(conn, _SESSIONS_TOUCHED, {"numbers": owners, "now": now})
    found = {int(row.n): (row, listed) for row, listed in sessions_with_payouts(conn, owners)}
    paying = {int(p.account_id) for p in payouts if found[int(p.session_n)][0].rko}
    codes = {int(row.id): row.code for row in raw.rows(conn, _CODES, {"ids": sorted(paying)})}
    plain: list[tuple[str, int, str, bytes]] = []
    for payout in payouts:
        session, listed = found[int(payout.session_n)]
        extra: dict[str, Any] = {}
        sealed = False
        if session.rko:
            account = tokens.payout_account(conn, vault, payout)
            extra["confirm_information"] = confirm_details(
                codes[int(payout.account_id)],
                account,
                payout,
                projects[payout.project_id],
                directory,
            )
            sealed = bool(wire.loads_field(payout.recipient).get("token"))
        rendered = wire.render_session(dict(session._mapping), listed)
        body = wire.event_body("ready_to_confirm", rendered, **extra)
        if sealed:  # the account in full: sealed, one at a time (events.emit)
            events.emit(
                conn, session.project_id, int(session.n), "ready_to_confirm", body, now, vault
            )
        else:
            plain.append((session.project_id, int(session.n), "ready_to_confirm", body))
    events.emit_many(conn, plain, now)


_CONFIRMED = Sql(
    """UPDATE payouts SET status = 'in_progress', work = 'execute', work_at = :now,
    updated_at = :now WHERE n = :number"""
)
_TOUCHED = Sql("UPDATE sessions SET updated_at = :now WHERE n = :number")
_LOCK_SESSIONS = Sql(
    "SELECT * FROM sessions WHERE n = ANY(:numbers) ORDER BY n FOR UPDATE", booleans=["rko"]
)
_LOCK_PAYOUTS = Sql("SELECT * FROM payouts WHERE session_n = ANY(:numbers) ORDER BY n FOR UPDATE")


def confirm_many(conn: Connection, calls: list[tuple[Call, dict[str, Any]]]) -> list[Any]:
    """Each ``session/confirm`` call's answer (the method result) or its ``ApiError``."""
    outcomes: list[Any] = [None] * len(calls)
    wanted: dict[int, int] = {}  # call index -> session number
    for index, (_, body) in enumerate(calls):
        try:
            wanted[index] = parse_session_ref(body)
        except ApiError as exc:
            outcomes[index] = exc
    if len(set(wanted.values())) < len(wanted):  # one session twice: the second must wait
        raise RuntimeError("a session confirmed twice in one batch; one call at a time")
    numbers = sorted(set(wanted.values()))
    found = {int(r.n): r for r in raw.rows(conn, _LOCK_SESSIONS, {"numbers": numbers})}
    owned = [n for n in numbers if n in found]
    held = {int(r.session_n): r for r in raw.rows(conn, _LOCK_PAYOUTS, {"numbers": owned})}
    accepted: list[tuple[int, Call, int]] = []
    for index, n in wanted.items():
        call, body = calls[index]
        try:
            session = owned_session(found.get(n), n, call)
            payout = held.get(n)
            if payout is None or payout.status != "pending":
                raise not_pending(session, payout, "confirm")
            check_confirm_information(conn, body, payout, call)
        except ApiError as exc:
            outcomes[index] = exc
            continue
        accepted.append((index, call, int(payout.n)))
    if not accepted:
        return outcomes
    raw.many(conn, _CONFIRMED, [{"number": p, "now": call.now} for _, call, p in accepted])
    raw.many(conn, _TOUCHED, [{"number": wanted[i], "now": call.now} for i, call, _ in accepted])
    done = [wanted[i] for i, _, _ in accepted]
    rows = {int(row.n): (row, listed) for row, listed in sessions_with_payouts(conn, done)}
    for index, call, _ in accepted:
        row, listed = rows[wanted[index]]
        rendered = wire.render_session(dict(row._mapping), listed, call.version)
        outcomes[index] = {"status": "ok", "session": rendered}
    return outcomes
