"""Model-based test: a Hypothesis state machine against a reference model of the bank.

Each example onboards a fresh project (two-step or single-request, with a wallet and a
settlement account) and drives it through the HTTP API: sessions created and started,
payouts started in one call, confirms and cancels (also of sessions in the wrong state),
top-ups, worker runs and the clock moving on. Amounts are drawn from the simulator's magic
values (docs/rails.md), so payouts also fail at the rail, take an hour, show ``error`` for
half an hour, or come back three days after they succeeded.

The model is a few dictionaries: each account's balance and held money, and each session's
payout as a small state (``checking``, ``pending``, ``executing``, ``succeeded``,
``failed``). After every step the API's balances and the stored statuses must equal the
model's, and the ledger must check. ``PAYOUT131_FULL=1`` runs many more and longer examples.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    rule,
    run_state_machine_as_test,
)

from banking import Onboard
from partner import Partner, payout_body
from payout131.clock import ManualClock
from payout131.ledger import accounts, book
from payout131.ledger.accounts import wallet_code
from payout131.ledger.check import violations
from payout131.rails import scenarios
from payout131.runtime import Runtime
from payout131.storage import schema as t

FULL = os.environ.get("PAYOUT131_FULL") == "1"
MACHINE_SETTINGS = settings(
    max_examples=300 if FULL else 10,
    stateful_step_count=60 if FULL else 30,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
pytestmark = pytest.mark.timeout(0 if FULL else 300)
CONFIRM_TIMEOUT_S = 600
MICROS = 1_000_000
# ordinary, rail failures, a slow success, error then success, a return three days later
AMOUNTS = [10_000, 30_000, 10_002, 10_005, 10_011, 10_021, 10_031]
STEPS_S = [1, 61, CONFIRM_TIMEOUT_S, 1_800, 3_600, 3 * 86_400]
_projects = itertools.count(1)


@dataclass
class Payout:
    """The model of one session's payout."""

    amount: int
    source: str  # "wallet" or "account"
    state: str  # checking, pending, executing, succeeded, failed
    deadline: int | None = None
    submitted_at: int | None = None
    error: str | None = None
    in_error: bool = False  # the session shows ``error`` while the rail works it out
    refunded: bool = False

    @property
    def status(self) -> str:
        return {"checking": "in_progress", "executing": "in_progress"}.get(self.state, self.state)


@dataclass
class Session:
    rko: bool
    payout: Payout | None = None
    cancelled: bool = False  # cancelled before any payout started

    @property
    def status(self) -> str:
        p = self.payout
        if p is None:
            return "cancelled" if self.cancelled else "created"
        if p.state == "succeeded":
            return "accepted"
        if p.state == "failed":
            return "cancelled"
        return "error" if p.in_error else "in_progress"


@dataclass
class Money:
    balance: int
    held: int = 0


@dataclass
class Model:
    single: bool
    money: dict[str, Money]
    sessions: dict[str, Session] = field(default_factory=dict)
    keys_used: set[str] = field(default_factory=set)

    def can_hold(self, source: str, amount: int) -> bool:
        m = self.money[source]
        return m.balance - m.held >= amount

    def hold(self, source: str, amount: int) -> None:
        self.money[source].held += amount

    def release(self, p: Payout, error: str) -> None:
        self.money[p.source].held -= p.amount
        p.state, p.error, p.in_error = "failed", error, False

    def post(self, p: Payout) -> None:
        self.money[p.source].held -= p.amount
        self.money[p.source].balance -= p.amount
        p.state, p.in_error = "succeeded", False

    def work(self, now: int) -> None:
        """What ``worker.drain()`` does at ``now`` to every payout."""
        for session in self.sessions.values():
            p = session.payout
            if p is None:
                continue
            if p.state == "checking":
                p.state, p.deadline = "pending", now + CONFIRM_TIMEOUT_S * MICROS
            elif p.state == "pending" and p.deadline is not None and now >= p.deadline:
                self.release(p, "confirm_timeout")
            elif p.state in ("executing", "succeeded"):
                self._settle(p, now)

    def _settle(self, p: Payout, now: int) -> None:
        if p.submitted_at is None:
            p.submitted_at = now
        status = scenarios.by_amount(p.amount).status_at(p.submitted_at, now)
        if p.state == "executing":
            if status.state == "pending":
                p.in_error = p.in_error or status.error_code is not None
            elif status.state == "failed":
                assert status.error_code is not None
                self.release(p, status.error_code)
            else:
                self.post(p)
        if status.state == "returned" and not p.refunded:
            p.refunded = True
            self.money[p.source].balance += p.amount


def test_the_bank_follows_the_model(bank: Runtime, onboard: Onboard, http: httpx.Client) -> None:
    clock = bank.clock
    assert isinstance(clock, ManualClock)

    class BankMachine(RuleBasedStateMachine):
        sessions = Bundle("sessions")

        def __init__(self) -> None:
            super().__init__()
            self.partner: Partner
            self.model: Model

        @initialize(
            single=st.booleans(),
            wallet=st.sampled_from([0, 20_000, 60_000]),
            account=st.sampled_from([0, 20_000, 60_000]),
        )
        def onboard(self, single: bool, wallet: int, account: int) -> None:
            self.partner = onboard(
                f"m{next(_projects)}",
                wallet=wallet,
                account=account,
                single_request=single,
                confirm_timeout_s=CONFIRM_TIMEOUT_S,
            )
            money = {"wallet": Money(wallet), "account": Money(account)}
            self.model = Model(single, money)

        def body(self, rko: bool, amount: int) -> dict[str, Any]:
            return self.partner.rko_body(amount) if rko else payout_body(amount)

        def add_payout(self, session: Session, amount: int) -> bool:
            """Start a payout in the model; False if the money is not there."""
            source = "account" if session.rko else "wallet"
            if not self.model.can_hold(source, amount):
                return False
            self.model.hold(source, amount)
            state = "executing" if self.model.single else "checking"
            session.payout = Payout(amount, source, state)
            return True

        def check_session(self, session_id: str, answer: dict[str, Any]) -> None:
            session = self.model.sessions[session_id]
            assert answer["status"] == session.status, (session_id, answer, session)
            payouts = answer.get("payments", answer.get("payout_list"))
            assert len(payouts) == (session.payout is not None)

        @rule(
            target=sessions,
            rko=st.booleans(),
            version=st.sampled_from(["v1", "v2"]),
        )
        def create(self, rko: bool, version: str) -> str:
            method = "session/create/rko" if rko else "session/create"
            session_id: str = self.partner.ok(method, {}, version=version)["session"]["id"]
            self.model.sessions[session_id] = Session(rko)
            status = self.partner.ok("session/status", {"session_id": session_id}, version=version)
            self.check_session(session_id, status["session"])
            return session_id

        @rule(session_id=sessions, amount=st.sampled_from(AMOUNTS))
        def start(self, session_id: str, amount: int) -> None:
            session = self.model.sessions[session_id]
            method = "session/start/payout/rko" if session.rko else "session/start/payout"
            body = {"session_id": session_id, **self.body(session.rko, amount)}
            response = self.partner.post(method, body)
            if session.status != "created":
                assert response.json()["error"]["code"] == "session_wrong_state", response.text
            elif self.add_payout(session, amount):
                assert response.status_code == 200, response.text
                self.check_session(session_id, response.json()["session"])
            else:
                assert response.json()["error"]["code"] == "insufficient_wallet_balance"

        @rule(
            target=sessions,
            rko=st.booleans(),
            amount=st.sampled_from(AMOUNTS),
            key=st.none() | st.sampled_from(["k1", "k2"]),
        )
        def init(self, rko: bool, amount: int, key: str | None) -> Any:
            method = "session/init/payout/rko" if rko else "session/init/payout"
            headers = {"X-PARTNER-IDEMPOTENCY-KEY": key} if key else {}
            response = self.partner.post(method, self.body(rko, amount), headers=headers)
            if key in self.model.keys_used:
                assert response.json()["error"]["code"] == "idempotency_key_already_exists"
                return multiple()
            session = Session(rko)
            if not self.add_payout(session, amount):
                assert response.json()["error"]["code"] == "insufficient_wallet_balance"
                return multiple()
            assert response.status_code == 200, response.text
            session_id: str = response.json()["session"]["id"]
            self.model.sessions[session_id] = session
            if key:
                self.model.keys_used.add(key)
            self.check_session(session_id, response.json()["session"])
            return session_id

        @rule(session_id=sessions, version=st.sampled_from(["v1", "v2"]))
        def confirm(self, session_id: str, version: str) -> None:
            session = self.model.sessions[session_id]
            response = self.partner.post(
                "session/confirm", {"session_id": session_id}, version=version
            )
            p = session.payout
            if p is None or p.state != "pending":
                assert response.json()["error"]["code"] == "session_wrong_state", response.text
                return
            assert response.status_code == 200, response.text
            p.state = "executing"
            self.check_session(session_id, response.json()["session"])

        @rule(session_id=sessions)
        def cancel(self, session_id: str) -> None:
            session = self.model.sessions[session_id]
            response = self.partner.post("session/cancel", {"session_id": session_id})
            p = session.payout
            if session.status == "created":
                session.cancelled = True
            elif p is not None and p.state == "pending":
                self.model.release(p, "session_cancelled_by_partner")
            else:
                assert response.json()["error"]["code"] == "session_wrong_state", response.text
                return
            assert response.status_code == 200, response.text
            self.check_session(session_id, response.json()["session"])

        @rule(
            source=st.sampled_from(["wallet", "account"]),
            amount=st.sampled_from([10_000, 50_000]),
        )
        def topup(self, source: str, amount: int) -> None:
            code = (
                self.partner.account if source == "account" else wallet_code(self.partner.project)
            )
            assert code is not None
            with bank.db.write() as conn:
                account = accounts.account_id(conn, code)
                assert account is not None
                book.topup(conn, account, amount, clock.now())
            self.model.money[source].balance += amount

        @rule()
        def work(self) -> None:
            bank.worker.drain()
            self.model.work(clock.now())

        @rule(seconds=st.sampled_from(STEPS_S))
        def time_passes(self, seconds: int) -> None:
            clock.advance(seconds)

        @rule(seconds=st.sampled_from(STEPS_S))
        def time_passes_and_work(self, seconds: int) -> None:
            clock.advance(seconds)
            self.work()

        @invariant()
        def balances_match(self) -> None:
            if not hasattr(self, "model"):
                return
            wallet = self.partner.ok("wallet/balance", {})["wallets"][0]["amount_details"]
            m = self.model.money
            assert wallet["amount"] == m["wallet"].balance - m["wallet"].held
            ask = {"account_number": self.partner.account}
            report = self.partner.ok("report/account_balance", ask)["balance"]
            assert report["current_balance"] == m["account"].balance
            assert report["held"] == m["account"].held

        @invariant()
        def statuses_match_and_ledger_checks(self) -> None:
            if not hasattr(self, "model"):
                return
            s, p = t.sessions, t.payouts
            with bank.db.read() as conn:
                rows = conn.execute(
                    sa.select(s.c.n, s.c.status, p.c.status, p.c.error_code)
                    .outerjoin(p, p.c.session_n == s.c.n)
                    .where(s.c.project_id == self.partner.project)
                ).all()
                assert violations(conn) == []
            stored = {f"ps_{n}": (status, payout, error) for n, status, payout, error in rows}
            expected = {
                sid: (
                    session.status,
                    session.payout.status if session.payout else None,
                    session.payout.error if session.payout else None,
                )
                for sid, session in self.model.sessions.items()
            }
            assert stored == expected

    run_state_machine_as_test(BankMachine, settings=MACHINE_SETTINGS)
