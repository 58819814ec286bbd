"""The simulator rail: plays every outcome a real rail produces, chosen by the amount (or
a magic phone or card number).

It behaves like an external rail with its own records: each transfer it receives is a row
in ``simulator_transfers`` (in the bank's database, but written only here, in its own
transactions), so it survives restarts, answers a repeated submission from its record, and
shows how many times each reference was submitted. Outcomes follow ``rails.scenarios``;
time comes from the injected clock, so tests move through hours and days in microseconds.

The base latency and its spread (``PAYOUT131_SIM_LATENCY_MS``, ``PAYOUT131_SIM_SPREAD_MS``)
set when a transfer settles; the spread is a fixed pseudo-random share per payout, so a
payout takes the same time on every run. With zero latency an ordinary payout is answered
in the ``submit`` call itself; otherwise the bank learns the outcome by polling.

In the sandbox (docs/sandbox.md) a transfer keeps the time of the test clock its payout's
project runs on (``Order.test_clock``), and an outcome can be forced by hand (``force``):
the transfer then stands as forced from that moment, whatever its amount says.
"""

from __future__ import annotations

import hashlib
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from payout131.clock import Clock
from payout131.protocol.validation import mask_account
from payout131.rails import scenarios
from payout131.rails.base import UNKNOWN, Order, Status
from payout131.storage import Database
from payout131.storage import schema as t

__all__ = ["FORCEABLE", "SimulatorRail", "force"]

# what ``force`` can make of a transfer
FORCEABLE = ("succeeded", "failed", "returned")
_CLOCK_TIME = sa.select(t.test_clocks.c.frozen_time)


class SimulatorRail:
    name = "simulator"

    def __init__(
        self, db: Database, clock: Clock, *, latency_ms: int = 0, spread_ms: int = 0
    ) -> None:
        self.db, self.clock = db, clock
        self.latency_ms, self.spread_ms = latency_ms, spread_ms

    def _settles_at(self, payout_id: str, now: int) -> int:
        digest = hashlib.sha256(payout_id.encode()).digest()
        jitter = int.from_bytes(digest[:8], "big") % (self.spread_ms + 1)
        return now + (self.latency_ms + jitter) * 1000

    def submit(self, order: Order) -> Status:
        for _ in range(3):  # a concurrent first submission of the same reference wins
            try:
                return self._submit(order)
            except IntegrityError:
                continue
        raise RuntimeError(f"simulator: could not record {order.reference}")

    def _now(self, conn: Any, test_clock: int | None) -> int:
        """The transfer's time: its test clock's, else the wall's."""
        if test_clock is not None:
            frozen = conn.execute(
                _CLOCK_TIME.where(t.test_clocks.c.n == test_clock)
            ).scalar_one_or_none()
            if frozen is not None:
                return int(frozen)
        return self.clock.now()

    def _submit(self, order: Order) -> Status:
        sim = t.simulator_transfers
        with self.db.write() as conn:
            now = self._now(conn, order.test_clock)
            row = conn.execute(
                sa.select(sim).where(sim.c.reference == order.reference).with_for_update()
            ).one_or_none()
            if row is not None:
                conn.execute(
                    sa.update(sim)
                    .where(sim.c.reference == order.reference)
                    .values(submissions=sim.c.submissions + 1)
                )
                return _status(row, now)
            values = self._transfer(order, now)
            conn.execute(sa.insert(sim).values(**values))
        return _told(
            values["kind"], values["reference"], values["scenario"], values["settles_at"], now
        )

    def _transfer(self, order: Order, now: int) -> dict[str, Any]:
        """The row recording a first submission of ``order``."""
        return {
            "reference": order.reference,
            "payout_id": order.payout_id,
            "amount": order.amount,
            "bik": order.bik,
            # tokens: a tokenized account is kept masked, never in clear (docs/tokens.md)
            "account": order.card_masked
            or (mask_account(order.account or "") if order.token else order.account),
            "kind": _kind(order),
            "scenario": _scenario(order).name,
            "submissions": 1,
            "submitted_at": now,
            "settles_at": self._settles_at(order.payout_id, now),
            "test_clock": order.test_clock,
        }

    def submit_many(self, orders: list[Order]) -> list[Status]:
        """``submit`` for each order, recorded in one transaction (the worker's batches,
        work_batch.py); each answered exactly as ``submit`` would answer it."""
        try:
            return self._submit_many(orders)
        except IntegrityError:  # a concurrent first submission: one by one, as submit does
            return [self.submit(order) for order in orders]

    def _submit_many(self, orders: list[Order]) -> list[Status]:
        sim = t.simulator_transfers
        references = [order.reference for order in orders]
        with self.db.write() as conn:
            clocks = {o.test_clock for o in orders}
            nows = {clock: self._now(conn, clock) for clock in clocks}
            known = {
                row.reference: row
                for row in conn.execute(
                    sa.select(sim).where(sim.c.reference.in_(references)).with_for_update()
                )
            }
            if known:
                conn.execute(
                    sa.update(sim)
                    .where(sim.c.reference.in_(list(known)))
                    .values(submissions=sim.c.submissions + 1)
                )
            new = {
                o.reference: self._transfer(o, nows[o.test_clock])
                for o in orders
                if o.reference not in known
            }
            if new:
                conn.execute(sa.insert(sim), list(new.values()))
        return [
            _status(known[o.reference], nows[o.test_clock])
            if o.reference in known
            else _told(
                new[o.reference]["kind"],
                o.reference,
                new[o.reference]["scenario"],
                new[o.reference]["settles_at"],
                nows[o.test_clock],
            )
            for o in orders
        ]

    def poll(self, reference: str) -> Status:
        sim = t.simulator_transfers
        with self.db.read() as conn:
            row = conn.execute(sa.select(sim).where(sim.c.reference == reference)).one_or_none()
            now = None if row is None else self._now(conn, row.test_clock)
        return UNKNOWN if row is None or now is None else _status(row, now)


def force(conn: Any, reference: str, outcome: str, error_code: str | None) -> None:
    """Make the transfer sent under ``reference`` stand as ``outcome`` from now on, in the
    caller's transaction (the sandbox's one write to the simulator's books from outside);
    LookupError if the simulator never received it."""
    if outcome not in FORCEABLE:
        raise ValueError(f"outcome: one of {', '.join(FORCEABLE)}")
    sim = t.simulator_transfers
    done = conn.execute(
        sa.update(sim)
        .where(sim.c.reference == reference)
        .values(forced=outcome, forced_code=error_code if outcome == "failed" else None)
    )
    if done.rowcount != 1:
        raise LookupError(f"the simulator has no transfer {reference!r}")


FORCED_FAILURE = "the outcome was forced in the sandbox"


def _kind(order: Order) -> str | None:
    """What a transfer pays to, as ``simulator_transfers.kind`` keeps it (None: an account)."""
    return scenarios.kind_of(order)


def _scenario(order: Order) -> scenarios.Scenario:
    """A magic phone's or card's scenario, else the amount's; no return ever follows a
    Faster Payments payout (PROTOCOL §9), so there the return row is a plain success. A
    verification plays the verification rows."""
    if order.verification:
        return scenarios.verification(order.phone)
    if order.phone is not None:
        magic = scenarios.by_destination("phone", order.phone)
    else:
        magic = scenarios.by_destination("card", order.card_number)
    scenario = magic or scenarios.by_amount(order.amount)
    if order.phone is not None and scenario.return_after_s is not None:
        return scenarios.ORDINARY
    return scenario


def _told(kind: str | None, reference: str, scenario: str, settles_at: int, now: int) -> Status:
    """What the simulator tells of a transfer that plays ``scenario``."""
    return scenarios.outcome(
        kind, reference, scenarios.by_name(scenario).status_at(settles_at, now)
    )


def _status(row: Any, now: int) -> Status:
    forced = row.forced
    if forced == "succeeded":
        return scenarios.outcome(row.kind, row.reference, Status("succeeded"))
    if forced == "failed":
        code = row.forced_code or "operation_rejected"
        return Status("failed", code, scenarios.by_name(code).description or FORCED_FAILURE)
    if forced == "returned":
        returned = Status("returned", description="the recipient's bank sent the payout back")
        return scenarios.outcome(row.kind, row.reference, returned)
    return _told(row.kind, row.reference, row.scenario, int(row.settles_at), now)
