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

On PostgreSQL a group first tries the short way (``_init_pipelined``): each call's session,
payout and hold are one statement that finds the paying account itself, every statement of
the group goes to the database in one round trip, and each account's ``held`` grows last,
only if the account covers the whole group. If any call's account is missing, not its own
or short of money, that attempt is undone (a savepoint) and the group takes steps 2 to 4,
so each call still gets its own answer.

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

from payout131 import fees, ledger
from payout131.accounts import BANK_BIK, lock_accounts, owned_settlement_account
from payout131.directory.bik import BikDirectory
from payout131.errors import ApiError
from payout131.projects import Project, wallet_code
from payout131.protocol import validation, wire
from payout131.protocol.payout_request import PayoutRequest
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
from payout131.tokens import account_tokens as tokens
from payout131.tokens.vault import Vault
from payout131.webhooks import events

__all__ = ["confirm_many", "init_payouts", "ready_to_confirm_many"]

SENDER = "participant_details.sender.account"


@dataclass(slots=True)
class _Planned:
    index: int
    call: Call
    session: dict[str, Any]  # the ``sessions`` row the call opens
    request: PayoutRequest
    code: str  # the paying account's ledger code
    fee: int  # the bank's fee, held with the amount
    account: int = 0


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
    if conn.dialect.name == "postgresql" and _init_pipelined(conn, planned, outcomes):
        return outcomes
    locked = lock_accounts(conn, {p.code for p in planned})
    accepted = []
    reserved: dict[int, int] = {}
    for plan in planned:
        try:
            row = _paying_row(plan, locked)
            plan.account = int(row.id)
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
    new_sessions = insert_returning(conn, t.sessions, [p.session for p in accepted])
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


# benchmarks: on PostgreSQL a call's session, payout and hold are one statement, and the
# group's statements travel to the database together. The paying account is found by code
# and owner inside it (nothing is written if it is not the call's), and each account's
# ``held`` grows last, only if the account covers the group: the hot row is locked from
# there to the commit, and the group never waits to read it.
_INIT = Sql(
    """WITH a AS (
        SELECT id FROM ledger_accounts
        WHERE code = :code AND kind = :kind AND project_id = :project_id),
    s AS (
        INSERT INTO sessions (project_id, api_version, rko, status, submerchant, metadata,
            draft, created_at, updated_at)
        SELECT :project_id, :api_version, CAST(:rko AS boolean), 'in_progress',
            CAST(:submerchant AS text), CAST(:session_metadata AS text), CAST(:draft AS text),
            CAST(:now AS bigint), CAST(:now AS bigint)
        FROM a
        RETURNING *),
    p AS (
        INSERT INTO payouts (session_n, project_id, status, amount, currency, account_id,
            destination, recipient, participant_details, customer, metadata, work, work_at,
            created_at, updated_at, fee)
        SELECT s.n, s.project_id, 'in_progress', CAST(:amount AS bigint), :currency, a.id,
            CAST(:destination AS text), CAST(:recipient AS text),
            CAST(:participant_details AS text), CAST(:customer AS text),
            CAST(:metadata AS text), :work, s.created_at, s.created_at, s.created_at,
            CAST(:fee AS bigint)
        FROM s, a
        RETURNING *),
    h AS (
        INSERT INTO holds (account_id, payout_n, amount, created_at, status)
        SELECT p.account_id, p.n, p.amount + p.fee, p.created_at, 'active' FROM p)
    SELECT row_to_json(s) AS session, row_to_json(p) AS payout FROM s, p"""
)
_SAVEPOINT = Sql("SAVEPOINT init_payouts")
_UNDO = Sql("ROLLBACK TO SAVEPOINT init_payouts")
# each paying account's ``held`` grows by the group's total, the accounts locked in id
# order as every other writer locks them; the rows that grew come back
_HOLD_GROUP = Sql(
    """WITH g AS (
        SELECT l.id, t.total FROM ledger_accounts l
        JOIN unnest(CAST(:codes AS text[]), CAST(:totals AS bigint[])) AS t (code, total)
        ON l.code = t.code
        ORDER BY l.id FOR UPDATE OF l)
    UPDATE ledger_accounts a SET held = a.held + g.total FROM g
    WHERE a.id = g.id AND a.balance - a.held >= g.total RETURNING a.id"""
)


def _init_pipelined(conn: Connection, planned: list[_Planned], outcomes: list[Any]) -> bool:
    """``init_payouts`` on PostgreSQL in one round trip (``_INIT``), if every call is
    accepted; False, having written nothing, if a paying account is missing, not the
    caller's or short of money (the calls are then held one by one, under the accounts'
    locks, and each gets its own answer)."""
    totals: dict[str, int] = {}
    statements: list[tuple[Sql, dict[str, Any]]] = []
    for plan in planned:
        call, request, session = plan.call, plan.request, plan.session
        totals[plan.code] = totals.get(plan.code, 0) + request.amount + plan.fee
        payout = payout_values(call, 0, request, 0, plan.fee)
        statements.append(
            (
                _INIT,
                {
                    **{k: payout[k] for k in _PAYOUT_GIVEN},
                    "code": plan.code,
                    "kind": "settlement" if call.rko else "wallet",
                    "project_id": call.project.id,
                    "api_version": session["api_version"],
                    "rko": session["rko"],
                    "submerchant": session["submerchant"],
                    "session_metadata": session["metadata"],
                    "draft": session["draft"],
                    "now": call.now,
                },
            )
        )
    held = {"codes": list(totals), "totals": list(totals.values())}
    results = raw.together(conn, [(_SAVEPOINT, {}), *statements, (_HOLD_GROUP, held)])
    written, grown = results[1:-1], results[-1]
    if not all(len(rows) == 1 for rows in written) or len(grown) != len(totals):
        raw.run(conn, _UNDO)
        return False
    for plan, (row,) in zip(planned, written, strict=True):
        rendered = wire.render_session(row.session, [row.payout], plan.call.version)
        outcomes[plan.index] = {"status": "ok", "session": rendered}
    return True


# what ``_INIT`` takes from ``payout_values`` as it is (the rest comes from the session)
_PAYOUT_GIVEN = (
    "amount",
    "currency",
    "destination",
    "recipient",
    "participant_details",
    "customer",
    "metadata",
    "work",
    "fee",
)


def _plan(conn: Connection, index: int, call: Call, body: dict[str, Any]) -> _Planned:
    session = session_values(call, body, "in_progress")
    request = parse_start(conn, call, session["draft"], body)
    if call.rko:
        assert request.sender_account is not None
        # reliability: check the number before the query (PostgreSQL refuses a NUL)
        validation.check_settlement_account(SENDER, BANK_BIK, request.sender_account)
        code = request.sender_account
    else:
        code = wallet_code(call.project.id)
    fee = fees.payout_fee(request.amount, call.project.fee_bps, call.project.fee_fixed)
    return _Planned(index, call, session, request, code, fee)


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
