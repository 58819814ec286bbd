"""Forcing an outcome: a payout waiting at the simulator rail succeeds, fails or comes back
now (docs/sandbox.md), beside the magic amounts that choose one in advance.

The simulator is told how the transfer stands from now on, and the payout's next step (ask
the rail) is made due at its project's time, in one transaction; the payout worker then
moves the payout exactly as if the rail had said so by itself, with its ledger entries and
webhooks.
"""

from __future__ import annotations

from sqlalchemy.engine import Connection

from payout131.errors import InvalidRequest, SessionWrongState
from payout131.payouts import store
from payout131.payouts.records import Payout
from payout131.payouts.states import MOVES, PayoutStatus, Step
from payout131.payouts.store import PayoutChange
from payout131.protocol import wire
from payout131.protocol.wire import payout_id
from payout131.rails import scenarios, simulator
from payout131.rails.simulator import SimulatorRail
from payout131.sandbox import clocks
from payout131.storage import sql

__all__ = ["DEFAULT_ERROR", "ERROR_CODES", "OUTCOMES", "force"]

# the outcome asked for, as the simulator records it
OUTCOMES = {"succeed": "succeeded", "fail": "failed", "return": "returned"}
# the rail errors a payout can be made to fail with: those the simulator plays
ERROR_CODES = scenarios.error_codes()
DEFAULT_ERROR = "operation_rejected"


def force(
    conn: Connection,
    rail: str,
    n: int,
    outcome: str,
    error_code: str | None,
    wall: int,
    project_id: str | None = None,
) -> Payout:
    """Force ``outcome`` (``succeed``, ``fail``, ``return``) on payout ``n`` (of
    ``project_id``, when given) sent through the server's ``rail``; the payout as it now
    waits for its worker."""
    if outcome not in OUTCOMES:
        raise InvalidRequest(f"outcome: one of {', '.join(OUTCOMES)}")
    if outcome != "fail" and error_code is not None:
        raise InvalidRequest("error_code: only a failure takes one")
    if outcome == "fail":
        error_code = error_code or DEFAULT_ERROR
        if error_code not in ERROR_CODES:
            raise InvalidRequest(f"error_code: one of {', '.join(ERROR_CODES)}")
    found = store.lock_payouts(conn, [n])
    if not found or (project_id is not None and found[0].project_id != project_id):
        raise InvalidRequest(f"payout_id: no payout {payout_id(n)}")
    payout = found[0]
    if error_code in scenarios.CARD_CODES and not wire.loads_field(payout.recipient).get(
        "card_token"
    ):
        raise InvalidRequest(f"error_code: {error_code} is a card's; {payout_id(n)} pays no card")
    if rail != SimulatorRail.name or payout.rail != SimulatorRail.name:
        raise InvalidRequest(
            f"payout_id: {payout_id(n)} is not at the simulator rail; only its outcomes "
            "can be forced (PAYOUT131_RAIL=simulator)"
        )
    at_rail = payout.status == PayoutStatus.IN_PROGRESS and payout.work in (Step.POLL, Step.EXECUTE)
    paid = payout.status == PayoutStatus.SUCCEEDED
    if outcome == "return":
        if wire.loads_field(payout.recipient).get("phone"):
            raise SessionWrongState(
                f"{payout_id(n)} went by Faster Payments, and no return ever follows one"
            )
        if paid and store.refund_of(conn, [n]):
            raise SessionWrongState(f"{payout_id(n)} has already come back")
        allowed = at_rail or paid
    else:
        allowed = at_rail
    if not allowed or payout.rail_reference is None:
        raise SessionWrongState(
            f"{payout_id(n)} is {payout.status} and not waiting at the rail "
            f"({_waits_for(payout)}); "
            + (
                "only a paid payout, or one at the rail, can be returned"
                if outcome == "return"
                else "only a payout at the rail can be made to succeed or fail"
            )
        )
    try:
        simulator.force(conn, payout.rail_reference, OUTCOMES[outcome], error_code)
    except LookupError:
        raise SessionWrongState(f"{payout_id(n)} has not reached the rail yet") from None
    now = clocks.project_now(conn, payout.project_id, wall)
    move = MOVES["watch"] if paid else MOVES["poll"]
    step = Step.WATCH if paid else Step.POLL
    statements = store.move_payouts(move, [PayoutChange(n, step, now)], now)
    moved = store.moved(conn, move, statements, sql.together(conn, statements), strict=False)
    return next(iter(moved), payout)


def _waits_for(payout: Payout) -> str:
    if payout.status == PayoutStatus.PENDING:
        return "it waits for the partner's confirm"
    if payout.work == Step.EXECUTE:
        return "it is being sent to the rail"
    if payout.work == Step.CHECK:
        return "it is being checked"
    return "it has finished"
