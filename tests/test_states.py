"""The state machine is data, and every status write goes through it.

A move writes its target only on rows in one of its sources; a row anywhere else is left
as it was and the move is refused (``IllegalMove``), on both engines.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from banking import Onboard
from partner import payout_body
from payout131.payouts import store
from payout131.payouts.states import MOVES, PayoutStatus, SessionStatus, Step
from payout131.payouts.store import IllegalMove, PayoutChange
from payout131.runtime import Runtime
from payout131.storage import schema as t
from payout131.storage import sql


def _status(bank: Runtime, table: sa.Table, n: int) -> str:
    with bank.db.read() as conn:
        return str(conn.execute(sa.select(table.c.status).where(table.c.n == n)).scalar_one())


def test_a_move_from_where_it_does_not_start_is_refused_and_changes_nothing(
    bank: Runtime, onboard: Onboard
) -> None:
    partner = onboard("acme", wallet=10_000)
    created = int(partner.ok("session/create", {})["session"]["id"].removeprefix("ps_"))
    started = partner.ok("session/init/payout", payout_body(1_000))["session"]
    payout = int(started["payments"][0]["id"].removeprefix("po_"))
    now = bank.clock.now()
    with bank.db.write() as conn:  # a created session cannot be accepted
        statements = store.move_sessions(MOVES["succeed"], [created], now)
        with pytest.raises(IllegalMove, match=f"succeed: \\[{created}\\]"):
            store.moved(conn, MOVES["succeed"], statements, sql.together(conn, statements))
    with bank.db.write() as conn:  # a payout being checked cannot be confirmed
        statements = store.move_payouts(MOVES["confirm"], [PayoutChange(payout, "execute")], now)
        with pytest.raises(IllegalMove):
            store.moved(conn, MOVES["confirm"], statements, sql.together(conn, statements))
    assert _status(bank, t.sessions, created) == "created"
    assert _status(bank, t.payouts, payout) == "in_progress"


def test_every_status_is_reached_and_every_final_one_stays_final() -> None:
    sessions = {m.session.target for m in MOVES.values() if m.session}
    payouts = {m.payout.target for m in MOVES.values() if m.payout}
    assert sessions == set(SessionStatus)
    assert payouts == set(PayoutStatus)
    for move in MOVES.values():  # only refund and watch start from a final payout
        if move.payout and move.payout.sources & {PayoutStatus.FAILED, PayoutStatus.SUCCEEDED}:
            assert move.name in ("refund", "watch")
            assert move.payout.target == PayoutStatus.SUCCEEDED
        if move.session and SessionStatus.CANCELLED in move.session.sources:
            raise AssertionError(f"{move.name} leaves a cancelled session")


def test_moves_say_what_they_finish_and_what_only_reschedules() -> None:
    finishing = sorted(name for name, m in MOVES.items() if m.finishes)
    assert finishing == ["cancel", "fail", "succeed", "time_out"]
    assert sorted(name for name, m in MOVES.items() if m.reschedules) == ["poll", "watch"]
    assert {step.value for step in Step} == {"check", "execute", "poll", "watch", "expire"}
