"""The payout worker: claims due steps and runs each kind of step for all its payouts at once.

    check    ──▶ payouts/checks.ready_to_confirm          (two-step: wait for the partner)
    expire   ──▶ payouts/outcomes.fail (confirm_timeout)   (the partner did not confirm)
    execute, poll, watch ──▶ the rail (rail_steps.ask) ──▶ payouts/outcomes.settle

Each kind of step is one job of the group commit for all its payouts (a single payout is a
group of one): the payouts are locked after their sessions, and a payout whose lease is no
longer this worker's is left alone. If a batch fails (a database outage, say), its steps
run again one by one; a step that fails alone is logged and runs again when its lease
expires, each asking the rail first (``rail_steps``), so nothing is paid twice.

A worker runs either the steps due by the wall or, with ``on_clocks``, those of projects on
test clocks, each group at its clock's time (docs/sandbox.md).
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import anyio
from sqlalchemy.engine import Connection

from payout131.clock import Clock
from payout131.payouts import checks, outcomes, store
from payout131.payouts.calls import Context
from payout131.payouts.states import MOVES, Step
from payout131.projects import get_projects
from payout131.rails import Rail, Status
from payout131.storage import Database, sql
from payout131.storage.group_commit import GroupCommit
from payout131.storage.outages import log_failure
from payout131.storage.sql import Sql
from payout131.worker import claims, rail_steps
from payout131.worker.claims import Claimed

__all__ = ["Worker", "WorkerConfig"]

log = logging.getLogger("payout131.work")

TIME_OUT = MOVES["time_out"]
# the order in which a claim's kinds of step run
ORDER = (Step.CHECK, Step.EXPIRE, Step.EXECUTE, Step.POLL, Step.WATCH)


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    """How the worker runs (from ``Settings``, where the defaults are)."""

    lease_s: float  # how long a claimed step is this worker's
    batch: int  # steps claimed at once
    poll_s: float  # how often an idle worker looks for due steps
    gather_s: float  # benchmarks: a pause after a busy round (fewer, bigger batches)
    rail_poll_s: float  # when to ask the rail again if it names no time


_BY_REFERENCE = Sql("SELECT n FROM payouts WHERE rail_reference = :reference")


class Worker:
    """Claims due payout steps and runs them; ``drain`` runs until nothing is due."""

    def __init__(
        self,
        db: Database,
        group_commit: GroupCommit,
        clock: Clock,
        rail: Rail,
        context: Context,
        config: WorkerConfig,
        on_events: Callable[[], None] = lambda: None,
        owner: str | None = None,
        on_clocks: bool = False,
        clocks: bool = True,
    ) -> None:
        self.db, self.group_commit, self.clock, self.rail = db, group_commit, clock, rail
        self.on_clocks = on_clocks  # this worker runs the steps of projects on test clocks
        self.clocks = clocks  # sandbox mode: projects may be on test clocks
        self.context, self.config = context, config
        self.on_events = on_events  # steps commit webhook events: have them sent
        self.owner = owner or f"{os.getpid()}-{secrets.token_hex(4)}"
        self.wakeup = threading.Event()

    def claim(self) -> list[Claimed]:
        """Lease the due steps; an ``execute`` step without a reference gets one."""
        now = self.clock.now()
        lease = now + int(self.config.lease_s * 1_000_000)
        owner, batch, rail = self.owner, self.config.batch, self.rail.name
        if self.on_clocks:
            return self.group_commit.beside(
                lambda conn: claims.claim_on_clocks(conn, owner, now, lease, batch, rail)
            )
        return self.group_commit.beside(
            lambda conn: claims.claim(conn, owner, now, lease, batch, rail, self.clocks)
        )

    def run_once(self) -> int:
        """Claim one batch and run it; the number of steps run."""
        claimed = self.claim()
        by_step: dict[tuple[str, int | None], list[Claimed]] = {}  # a clock's steps apart
        for leased in sorted(claimed, key=lambda c: c.payout.n):
            by_step.setdefault((leased.step, leased.clock), []).append(leased)
        for step in ORDER:
            for (kind, _), steps in sorted(by_step.items(), key=lambda kv: kv[0][1] or 0):
                if kind != step or self._tried(step, steps) or len(steps) == 1:
                    continue
                for alone in steps:  # a batch failed: each alone, so one bad payout stops
                    # no other, each asking the rail first (it may have heard of them now)
                    self._tried(step, [alone._replace(fresh=False)])
        if claimed:
            self.on_events()
        return len(claimed)

    def _tried(self, step: str, steps: list[Claimed]) -> bool:
        """Run the steps; False, logged, if they failed (their leases run out, and each
        is tried again then)."""
        try:
            self.run_steps(step, steps)
        except Exception as exc:  # noqa: BLE001 (logged; e.g. a database outage)
            which = f"po_{steps[0].payout.n}" if len(steps) == 1 else f"a batch of {len(steps)}"
            log_failure(log, exc, "payout %s: step %s failed; it will be retried", which, step)
            return False
        return True

    def run_steps(self, step: str, steps: Sequence[Claimed]) -> None:
        """Run leased steps of one kind, all at once: all on the wall's time, or all on one
        test clock's (``Claimed.at``)."""
        numbers = [c.payout.n for c in steps]
        at = steps[0].at if steps else None
        if step in rail_steps.RAIL_STEPS:
            with self.db.read() as conn:  # the tokenized accounts' tokens, for the rail
                orders = rail_steps.orders(conn, self.context.vault, steps)
            answers = rail_steps.ask(self.rail, steps, orders)  # no transaction is open
            numbers = sorted(answers)

        def run(conn: Connection) -> None:
            payouts = claims.leased(conn, self.owner, numbers, step)
            now = self.clock.now() if at is None else at
            if step == Step.CHECK:
                projects = get_projects(conn, {p.project_id for p in payouts})
                checks.ready_to_confirm(conn, self.context, payouts, projects, now)
            elif step == Step.EXPIRE:
                failures = [
                    outcomes.Failure(
                        p,
                        "confirm_timeout",
                        "the payout was not confirmed within the project's confirm timeout",
                    )
                    for p in payouts
                ]
                outcomes.fail(conn, self.context, TIME_OUT, failures, now)
            else:
                news = [(p, answers[p.n]) for p in payouts]
                outcomes.settle(conn, self.context, news, now, self.config.rail_poll_s)

        if numbers:
            self.group_commit.call(run)

    def report(self, reference: str, status: Status) -> None:
        """A rail's callback: apply what it says about the payout sent under ``reference``."""

        def apply(conn: Connection) -> None:
            found = sql.rows(conn, _BY_REFERENCE, {"reference": reference})
            payouts = store.lock_payouts(conn, [int(row.n) for row in found])
            if not payouts:
                raise LookupError(f"no payout was sent under rail reference {reference!r}")
            news = [(payouts[0], status)]
            outcomes.settle(conn, self.context, news, self.clock.now(), self.config.rail_poll_s)

        self.group_commit.call(apply)

    def drain(self, max_rounds: int = 1000) -> int:
        """Run until nothing is due (tests and the CLI use this)."""
        total = 0
        for _ in range(max_rounds):
            done = self.run_once()
            total += done
            if not done:
                break
        return total

    async def run(self) -> None:
        """Forever: run due steps, then sleep until poked or the poll interval passes."""
        while True:
            try:
                done = await anyio.to_thread.run_sync(self.run_once)
            except Exception as exc:  # noqa: BLE001 (logged; the database may be back)
                log_failure(log, exc, "claiming payout steps failed; trying again")
                done = 0
            if not done:
                await anyio.to_thread.run_sync(self.wakeup.wait, self.config.poll_s)
                self.wakeup.clear()
            if self.config.gather_s > 0:  # benchmarks: fewer, bigger batches
                await anyio.sleep(self.config.gather_s)
