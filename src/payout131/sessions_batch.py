"""``session/init/payout`` for many partner calls at once: a few statements per group.

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
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Connection

from payout131 import fees, ledger, validation, wire
from payout131.accounts import BANK_BIK, lock_accounts, owned_settlement_account
from payout131.errors import ApiError
from payout131.payout_request import PayoutRequest
from payout131.projects import wallet_code
from payout131.sessions import (
    Call,
    parse_start,
    payout_values,
    session_values,
)
from payout131.storage import schema as t
from payout131.storage.bulk import insert_returning

__all__ = ["init_payouts"]

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
