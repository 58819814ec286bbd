"""Payout execution towards the rail: latency and polling, crashes, callbacks, fees.

Crashes are played by rails that stand for a broken network: one dies before the simulator
hears of the payout, one loses the simulator's answer. A second ``Runtime`` on the same
database and clock plays the worker that dies; the test's own bank plays the one that
takes over when the lease runs out.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import pytest
import sqlalchemy as sa

from banking import Onboard
from partner import Partner, payout_body
from payout131.clock import ManualClock
from payout131.ledger import accounts
from payout131.ledger.accounts import wallet_code
from payout131.rails import UNKNOWN, InstantRail, Order, Status
from payout131.rails.simulator import SimulatorRail
from payout131.runtime import Runtime
from payout131.storage import schema as t


class NetworkDown(RuntimeError):
    pass


class DiesBeforeSending:
    """The connection to the rail breaks before the payout leaves the bank."""

    name = "simulator"

    def submit(self, order: Order) -> Status:
        raise NetworkDown(order.reference)

    def poll(self, reference: str) -> Status:
        raise NetworkDown(reference)


class LosesTheAnswer:
    """The rail receives the payout, but its answer never reaches the bank."""

    name = "simulator"

    def __init__(self, rail: SimulatorRail) -> None:
        self.rail = rail

    def submit(self, order: Order) -> Status:
        self.rail.submit(order)
        raise NetworkDown(order.reference)

    def poll(self, reference: str) -> Status:
        raise NetworkDown(reference)


class CallsBack:
    """A rail that acknowledges at once and reports the outcome later by calling back."""

    name = "pushing"

    def __init__(self) -> None:
        self.orders: list[Order] = []

    def submit(self, order: Order) -> Status:
        self.orders.append(order)
        return Status("pending", next_check_at=None)

    def poll(self, reference: str) -> Status:
        known = any(o.reference == reference for o in self.orders)
        return Status("pending") if known else UNKNOWN


class Watched:
    """The simulator, with every call the bank makes to it written down."""

    name = "simulator"

    def __init__(self, rail: SimulatorRail, loses_batch_answers: bool = False) -> None:
        self.rail, self.loses_batch_answers = rail, loses_batch_answers
        self.calls: list[tuple[str, str]] = []

    def submit(self, order: Order) -> Status:
        self.calls.append(("submit", order.reference))
        return self.rail.submit(order)

    def submit_many(self, orders: list[Order]) -> list[Status]:
        self.calls += [("submit", order.reference) for order in orders]
        answers = self.rail.submit_many(orders)
        if self.loses_batch_answers:
            raise NetworkDown("the batch's answers were lost")
        return answers

    def poll(self, reference: str) -> Status:
        self.calls.append(("poll", reference))
        return self.rail.poll(reference)


@contextmanager
def other_bank(bank: Runtime, **kwargs: Any) -> Iterator[Runtime]:
    """Another bank process on the same database and clock (a second worker)."""
    settings = replace(bank.settings, **kwargs.pop("settings", {}))
    opened = Runtime.open(settings, clock=bank.clock, **kwargs)
    try:
        yield opened
    finally:
        opened.close()


def transfers(bank: Runtime) -> list[Any]:
    with bank.db.read() as conn:
        return list(conn.execute(sa.select(t.simulator_transfers)))


def payout_row(bank: Runtime, session_id: str) -> Any:
    n = int(session_id.removeprefix("ps_"))
    with bank.db.read() as conn:
        return conn.execute(sa.select(t.payouts).where(t.payouts.c.session_n == n)).one()


def payout_status(partner: Partner, session_id: str) -> str:
    session = partner.ok("session/status", {"session_id": session_id})["session"]
    status: str = session["payments"][0]["status"]
    return status


def test_latency_is_learnt_by_polling(bank: Runtime, clock: ManualClock, onboard: Onboard) -> None:
    partner = onboard(wallet=100_000, single_request=True)
    session_id = partner.ok("session/init/payout", payout_body(10_000))["session"]["id"]
    with other_bank(bank, settings={"sim_latency_ms": 1500, "sim_spread_ms": 1000}) as slow:
        slow.worker.drain()
        row = payout_row(bank, session_id)
        assert (row.status, row.work) == ("in_progress", "poll")
        (transfer,) = transfers(bank)
        waited = transfer.settles_at - transfer.submitted_at
        assert 1_500_000 <= waited <= 2_500_000  # base latency plus a share of the spread
        assert row.work_at == transfer.settles_at
        clock.advance(waited / 1_000_000 - 0.001)
        slow.worker.drain()
        assert payout_status(partner, session_id) == "in_progress"
        clock.advance(0.001)
        slow.worker.drain()
    assert payout_status(partner, session_id) == "succeeded"
    assert transfers(bank)[0].submissions == 1


def test_spread_is_the_same_for_a_payout_on_every_run(bank: Runtime) -> None:
    rail = SimulatorRail(bank.db, bank.clock, latency_ms=100, spread_ms=5_000)
    assert rail._settles_at("po_7", 0) == rail._settles_at("po_7", 0)
    spread = {rail._settles_at(f"po_{n}", 0) for n in range(50)}
    assert len(spread) > 10
    assert min(spread) >= 100_000
    assert max(spread) <= 5_100_000


def test_crash_before_the_rail_heard_of_the_payout(
    bank: Runtime, clock: ManualClock, onboard: Onboard
) -> None:
    partner = onboard(wallet=100_000, single_request=True)
    session_id = partner.ok("session/init/payout", payout_body(10_000))["session"]["id"]
    with other_bank(bank, rail=DiesBeforeSending()) as dying:
        dying.worker.drain()
    row = payout_row(bank, session_id)
    assert row.rail_reference is not None  # committed before the rail was called
    assert (row.status, row.work) == ("in_progress", "execute")
    assert transfers(bank) == []
    bank.worker.drain()
    assert payout_status(partner, session_id) == "in_progress"  # the lease still holds
    clock.advance(bank.settings.lease_s + 1)
    bank.worker.drain()
    assert payout_status(partner, session_id) == "succeeded"
    (transfer,) = transfers(bank)
    assert (transfer.reference, transfer.submissions) == (row.rail_reference, 1)


def test_crash_after_the_rail_took_the_payout(
    bank: Runtime, clock: ManualClock, onboard: Onboard
) -> None:
    partner = onboard(wallet=100_000, single_request=True)
    session_id = partner.ok("session/init/payout", payout_body(10_001))["session"]["id"]
    simulator = SimulatorRail(bank.db, bank.clock)
    with other_bank(bank, rail=LosesTheAnswer(simulator)) as dying:
        dying.worker.drain()
    assert payout_status(partner, session_id) == "in_progress"
    clock.advance(bank.settings.lease_s + 1)
    bank.worker.drain()
    session = partner.ok("session/status", {"session_id": session_id})["session"]
    assert session["payments"][0]["error"]["code"] == "account_not_found"
    (transfer,) = transfers(bank)
    assert transfer.submissions == 1  # asked, not sent again
    assert partner.ok("wallet/balance", {})["wallets"][0]["amount_details"]["amount"] == 100_000


def test_instant_rail_pays_everything_and_forgets_on_restart(
    bank: Runtime, onboard: Onboard
) -> None:
    partner = onboard(wallet=100_000, single_request=True)
    session_id = partner.ok("session/init/payout", payout_body(10_001))["session"]["id"]
    rail = InstantRail()
    with other_bank(bank, rail=rail) as instant:
        instant.worker.drain()
    assert payout_status(partner, session_id) == "succeeded"  # no magic values here
    reference = payout_row(bank, session_id).rail_reference
    assert rail.submitted == {reference: 1}
    assert rail.poll(reference) == Status("succeeded")
    assert InstantRail().poll(reference) == UNKNOWN


def test_a_repeated_submission_is_one_transfer(bank: Runtime, onboard: Onboard) -> None:
    rail = SimulatorRail(bank.db, bank.clock)
    order = Order("po_1-ab", "po_1", 10_002, "RUB", "044525974", "40817810400003869535", None,
                  "Иванов Иван Иванович", "Выплата")  # fmt: skip
    assert rail.poll(order.reference) == UNKNOWN
    first = rail.submit(order)
    assert first.state == "failed"
    assert rail.submit(order) == first
    (transfer,) = transfers(bank)
    assert transfer.submissions == 2  # counted: that is how the tests see a double send


def test_a_rail_can_call_back(bank: Runtime, clock: ManualClock, onboard: Onboard) -> None:
    partner = onboard(wallet=100_000, single_request=True)
    session_id = partner.ok("session/init/payout", payout_body(10_000))["session"]["id"]
    rail = CallsBack()
    with other_bank(bank, rail=rail) as pushing:
        pushing.worker.drain()
        assert payout_status(partner, session_id) == "in_progress"
        row = payout_row(bank, session_id)
        assert (row.work, row.rail) == ("poll", "pushing")
        # no time named: the bank still asks now and then, in case a callback is lost
        assert row.work_at == clock.now() + bank.settings.rail_poll_s * 1_000_000
        (order,) = rail.orders
        pushing.worker.report(order.reference, Status("succeeded"))
        assert payout_status(partner, session_id) == "succeeded"
        clock.advance(bank.settings.rail_poll_s)
        assert pushing.worker.drain() == 0  # nothing left to ask
        pushing.worker.report(order.reference, Status("succeeded"))  # a repeat: no-op
        with pytest.raises(LookupError):
            pushing.worker.report("po_0-nothing", Status("succeeded"))
    finished = [e for e in _event_types(bank, session_id) if e == "payment_finished"]
    assert finished == ["payment_finished"]


def _event_types(bank: Runtime, session_id: str) -> list[str]:
    n = int(session_id.removeprefix("ps_"))
    with bank.db.read() as conn:
        return list(
            conn.execute(
                sa.select(t.events.c.type).where(t.events.c.session_n == n).order_by(t.events.c.id)
            ).scalars()
        )


def test_a_worker_step_takes_the_session_lock_before_the_payout(
    bank: Runtime, clock: ManualClock, onboard: Onboard
) -> None:
    """A partner's call locks the session, then the payout; a worker step recording the
    rail's answer must lock in the same order, or the two deadlock on PostgreSQL."""
    if bank.db.is_sqlite:
        pytest.skip("SQLite serialises writers: there are no row locks to order")
    partner = onboard(wallet=100_000, single_request=True)
    session_id = partner.ok("session/init/payout", payout_body(10_000))["session"]["id"]
    with other_bank(bank, settings={"sim_latency_ms": 1000}) as slow:
        slow.worker.drain()  # submitted; the answer is due in a second
        clock.advance(1)
        n = payout_row(bank, session_id).n
        waiting = sa.text(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        with bank.db.write() as conn:  # a partner's call, holding the session
            conn.execute(
                sa.select(t.sessions.c.n)
                .where(t.sessions.c.n == int(session_id.removeprefix("ps_")))
                .with_for_update()
            )
            worker = threading.Thread(target=slow.worker.drain)
            worker.start()
            with bank.db.engine.connect() as watch:  # until the worker waits for a lock
                while not watch.execute(waiting).scalar_one():
                    watch.rollback()  # a fresh snapshot of pg_stat_activity each time
            conn.execute(sa.select(t.payouts.c.n).where(t.payouts.c.n == n).with_for_update())
        worker.join(30)
    assert payout_status(partner, session_id) == "succeeded"


def test_a_claim_never_waits_for_a_session_a_partner_holds(bank: Runtime, onboard: Onboard) -> None:
    """The claim leases a payout and gives it its reference in one statement: a second
    update of the row in the same transaction would lock its session (PostgreSQL checks a
    row's foreign keys again when the transaction updates it twice), after the payout,
    against the order every partner call takes them in."""
    if bank.db.is_sqlite:
        pytest.skip("SQLite serialises writers: there are no row locks to order")
    partner = onboard(wallet=100_000, single_request=True)
    session_id = partner.ok("session/init/payout", payout_body(10_000))["session"]["id"]
    claimed: list[Any] = []
    with bank.db.write() as conn:  # a partner's call (a confirm, say) holding the session
        conn.execute(
            sa.select(t.sessions.c.n)
            .where(t.sessions.c.n == int(session_id.removeprefix("ps_")))
            .with_for_update()
        )
        claiming = threading.Thread(target=lambda: claimed.extend(bank.worker.claim()))
        claiming.start()
        claiming.join(10)
        assert not claiming.is_alive(), "the claim waited for the session"
    [step] = claimed
    assert step.step == "execute"
    assert step.fresh
    assert step.payout.rail_reference == payout_row(bank, session_id).rail_reference
    bank.worker.run_steps(step.step, claimed)
    assert payout_status(partner, session_id) == "succeeded"


# ---- the bank's fee ----------------------------------------------------------------------


def fees_collected(bank: Runtime) -> int:
    with bank.db.read() as conn:
        account = accounts.account_id(conn, accounts.FEES)
        assert account is not None
        return accounts.balance(conn, account).balance


def wallet(bank: Runtime, partner: Partner) -> int:
    with bank.db.read() as conn:
        account = accounts.account_id(conn, wallet_code(partner.project))
        assert account is not None
        return accounts.balance(conn, account).available


def test_fee_is_held_with_the_amount_and_posted_on_success(bank: Runtime, onboard: Onboard) -> None:
    partner = onboard(wallet=100_000, fee_bps=150, fee_fixed=500)
    session = partner.ok("session/init/payout", payout_body(20_000))["session"]
    fee = 500 + 300  # 1.5 % of 200 rubles plus 5 rubles
    assert session["payments"][0]["amounts"] == {
        "fee": {"merchant_fee": {"amount": fee, "currency": "rub"}}
    }
    assert wallet(bank, partner) == 100_000 - 20_000 - fee
    bank.worker.drain()
    partner.ok("session/confirm", {"session_id": session["id"]})
    bank.worker.drain()
    assert payout_status(partner, session["id"]) == "succeeded"
    assert wallet(bank, partner) == 100_000 - 20_000 - fee
    assert fees_collected(bank) == fee
    n = int(session["payments"][0]["id"].removeprefix("po_"))
    with bank.db.read() as conn:
        posted = conn.execute(
            sa.select(t.ledger_transactions.c.kind).where(t.ledger_transactions.c.payout_n == n)
        ).scalars()
        assert sorted(posted) == ["fee", "payout"]


def test_fee_is_released_when_the_payout_fails(bank: Runtime, onboard: Onboard) -> None:
    partner = onboard(wallet=100_000, single_request=True, fee_fixed=1_000)
    partner.ok("session/init/payout", payout_body(20_003))
    assert wallet(bank, partner) == 100_000 - 21_003
    bank.worker.drain()
    assert wallet(bank, partner) == 100_000
    assert fees_collected(bank) == 0


def test_fee_is_kept_when_the_payout_comes_back(
    bank: Runtime, clock: ManualClock, onboard: Onboard
) -> None:
    partner = onboard(wallet=100_000, single_request=True, fee_fixed=1_000)
    partner.ok("session/init/payout", payout_body(20_031))
    bank.worker.drain()
    clock.advance(3 * 86_400)
    bank.worker.drain()
    assert wallet(bank, partner) == 100_000 - 1_000
    assert fees_collected(bank) == 1_000


def test_amount_plus_fee_beyond_the_balance_is_refused_at_once(
    bank: Runtime, onboard: Onboard
) -> None:
    partner = onboard(wallet=20_000, fee_bps=100)
    description = partner.error(
        "session/init/payout", payout_body(20_000), 400, "insufficient_wallet_balance"
    )
    assert "fee of 200" in description
    assert wallet(bank, partner) == 20_000
    partner.ok("session/init/payout", payout_body(19_800))  # 198 rubles + 1.98 fits exactly
    assert wallet(bank, partner) == 2


def test_no_fee_no_amounts(bank: Runtime, onboard: Onboard) -> None:
    partner = onboard(wallet=20_000)
    session = partner.ok("session/init/payout", payout_body(10_000))["session"]
    assert "amounts" not in session["payments"][0]


def _references(bank: Runtime, session_ids: list[str]) -> list[str | None]:
    return [payout_row(bank, session_id).rail_reference for session_id in session_ids]


@pytest.mark.parametrize("payouts", [1, 3], ids=["one-step", "batch"])
def test_a_reference_commits_with_the_lease_and_a_fresh_one_is_sent_without_asking(
    bank: Runtime, onboard: Onboard, payouts: int
) -> None:
    partner = onboard(wallet=100_000, single_request=True)
    started = [
        partner.ok("session/init/payout", payout_body(10_000 + 100 * i))["session"]["id"]
        for i in range(payouts)
    ]
    rail = Watched(SimulatorRail(bank.db, bank.clock))
    with other_bank(bank, rail=rail) as working:
        claimed = working.worker.claim()
        # committed with the lease, before the rail hears of any of them
        assert rail.calls == []
        assert _references(bank, started) == [c.payout.rail_reference for c in claimed]
        assert all(ref is not None for ref in _references(bank, started))
        assert all(c.fresh for c in claimed)
        working.worker.run_steps("execute", claimed)
    assert [c[0] for c in rail.calls] == ["submit"] * payouts  # nothing asked first
    assert sorted(c[1] for c in rail.calls) == sorted(_references(bank, started))
    assert [payout_status(partner, s) for s in started] == ["succeeded"] * payouts


def test_a_batch_whose_answers_are_lost_asks_the_rail_before_sending_again(
    bank: Runtime, onboard: Onboard
) -> None:
    partner = onboard(wallet=100_000, single_request=True)
    started = [
        partner.ok("session/init/payout", payout_body(10_000 + 100 * i))["session"]["id"]
        for i in range(3)
    ]
    rail = Watched(SimulatorRail(bank.db, bank.clock), loses_batch_answers=True)
    with other_bank(bank, rail=rail) as working:
        working.worker.drain()
    references = _references(bank, started)
    # the batch reached the rail; each payout, run again alone, asked before anything else
    assert sorted(rail.calls) == sorted(
        [("submit", ref) for ref in references] + [("poll", ref) for ref in references]
    )
    assert [payout_status(partner, s) for s in started] == ["succeeded"] * 3
    assert sorted(t.submissions for t in transfers(bank)) == [1, 1, 1]
