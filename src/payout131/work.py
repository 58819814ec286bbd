"""Background work on payouts: the confirm check, rail execution and confirm timeouts.

Rail steps (``execute``, ``poll``, ``watch``) are described in ``settlement.py`` and
``docs/rails.md``: a payout is submitted to its rail exactly once, across crashes.

A payout row names its next step in ``work`` and when it is due in ``work_at``. Workers
lease due rows (``FOR UPDATE SKIP LOCKED`` on PostgreSQL; SQLite's write lock does the
same), so any number of workers and servers can share a database; a lease left by a dead
worker expires and another worker takes the row. Each step commits its state change, ledger
entries and event together. The rail is called outside any transaction.

An ``execute`` step leased without a rail reference gets its reference in the same
transaction as its lease (``claim``), so the reference is committed before the rail hears of
the payout without a transaction of its own (benchmarks: one group commit job fewer per
batch). The worker that made the reference knows the rail has not heard of it yet and
submits without asking first; any other worker, or this one once it has called the rail,
asks first.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
from typing import TYPE_CHECKING, Any, NamedTuple

import anyio
from sqlalchemy.engine import Connection

from payout131 import sessions, settlement, work_batch
from payout131.projects import get_project
from payout131.rails import UNKNOWN
from payout131.storage import raw
from payout131.storage.raw import Sql
from payout131.tokens import account_tokens as tokens

if TYPE_CHECKING:
    from payout131.runtime import Runtime

__all__ = ["Claimed", "Worker"]

log = logging.getLogger("payout131.work")

# Lease the due steps, oldest first (benchmarks: straight to the driver, storage/raw.py).
# An ``execute`` step without a reference gets ``po_<n>-<token>`` (as
# ``settlement.new_reference`` makes one, the random part drawn once per claim) in the same
# statement: a second update of a row this transaction updated would check the row's
# foreign keys again, locking its session after the payout, against every other writer's
# order (a deadlock with a partner's confirm, found by tests/test_races.py).
_FRESH = "work = 'execute' AND rail_reference IS NULL"
_CLAIM = Sql(
    f"""UPDATE payouts SET lease_owner = :owner, lease_until = :lease,
        rail = CASE WHEN {_FRESH} THEN :rail ELSE rail END,
        rail_reference = CASE WHEN {_FRESH}
            THEN 'po_' || n || '-' || CAST(:token AS text) ELSE rail_reference END
    WHERE n IN (
        SELECT n FROM payouts WHERE work IS NOT NULL AND work_at <= :now
        AND (lease_until IS NULL OR lease_until < :now)
        ORDER BY work_at LIMIT :limit FOR UPDATE SKIP LOCKED)
    RETURNING *"""  # noqa: S608 (our own condition)
)


class Claimed(NamedTuple):
    """A leased step and its payout as leased."""

    n: int
    work: str
    payout: Any
    reference: str | None = None  # made by this claim: the rail has not heard of it


class Worker:
    """Claims due payout steps and runs them; ``drain`` runs until nothing is due."""

    def __init__(self, bank: Runtime, owner: str | None = None) -> None:
        self.bank = bank
        self.owner = owner or f"{os.getpid()}-{secrets.token_hex(4)}"
        self.wakeup = threading.Event()

    def claim(self) -> list[Claimed]:
        """Lease the due steps; an ``execute`` step without a reference gets one."""
        now = self.bank.clock.now()
        token = secrets.token_hex(8)
        taken = {
            "owner": self.owner,
            "now": now,
            "lease": now + int(self.bank.settings.lease_s * 1_000_000),
            "limit": self.bank.settings.worker_batch,
            "rail": self.bank.rail.name,
            "token": token,
        }

        def claim(conn: Connection) -> list[Claimed]:
            claimed = []
            for row in raw.rows(conn, _CLAIM, taken):
                n = int(row.n)
                made = settlement.new_reference(n, token)
                fresh = row.work == "execute" and row.rail_reference == made
                claimed.append(Claimed(n, str(row.work), row, made if fresh else None))
            return claimed

        if self.bank.db.is_sqlite:  # benchmarks: in the group commit, not the busy handler
            return self.bank.group_commit.run(claim)
        with self.bank.db.write() as conn:  # PostgreSQL: beside the groups (SKIP LOCKED)
            return claim(conn)

    def _leased(self, conn: Connection, n: int, work: str) -> Any:
        """The payout, locked (after its session), if this worker still holds its lease."""
        row = sessions.lock_payout(conn, n)
        if row is None or row.work != work or row.lease_owner != self.owner:
            return None
        return row

    def run_step(self, n: int, work: str, fresh: bool = False) -> None:
        """Run one leased step; ``fresh``: its reference was made by this worker's claim
        and the rail has not been called with it since."""
        if work in settlement.RAIL_STEPS:
            self._settle(n, work, fresh)
            return
        now = self.bank.clock.now()
        with self.bank.group_commit.transaction() as conn:  # never beside a group (benchmarks)
            payout = self._leased(conn, n, work)
            if payout is None:
                return
            if work == "check":
                project = get_project(conn, payout.project_id)
                assert project is not None
                sessions.ready_to_confirm(
                    conn, payout, project, self.bank.directory, now, self.bank.vault
                )
            elif work == "expire":
                sessions.fail_payout(
                    conn,
                    payout,
                    "confirm_timeout",
                    "the payout was not confirmed within the project's confirm timeout",
                    now,
                )

    def _settle(self, n: int, work: str, fresh: bool = False) -> None:
        """Submit the payout to the rail, or ask the rail about it; record the answer.

        Exactly once towards the rail: the reference is committed before the rail first
        hears of the payout (by ``claim``). A payout found at ``execute`` with a reference
        may have been submitted by a worker that died before recording the answer, so the
        rail is asked first and the payout is submitted only if the rail has no record of
        it; unless the reference is ``fresh`` (made by this worker's claim, never sent).
        """
        rail = self.bank.rail
        with self.bank.group_commit.transaction() as conn:
            payout = self._leased(conn, n, work)
            if payout is None:
                return
            reference = payout.rail_reference
            if reference is None:  # the claim gives every execute step one
                raise RuntimeError(f"payout po_{n} was leased without a rail reference")
            if payout.rail != rail.name:
                raise RuntimeError(
                    f"payout po_{n} was sent through rail {payout.rail!r}, not {rail.name!r}"
                )
            if work == "execute":
                account = tokens.payout_account(conn, self.bank.vault, payout)
                order = settlement.order(payout, reference, account)
        status = UNKNOWN if fresh and work == "execute" else rail.poll(reference)
        if work == "execute" and status.state == "unknown":
            status = rail.submit(order)
        now = self.bank.clock.now()
        with self.bank.group_commit.transaction() as conn:
            payout = self._leased(conn, n, work)
            if payout is not None:
                settlement.apply(conn, payout, status, now, self.bank.settings.rail_poll_s)

    def run_once(self) -> int:
        """Claim one batch and run it; the number of steps run."""
        claimed = self.claim()
        for n, work, _, reference in work_batch.run(self, claimed):  # benchmarks: batches
            try:
                self.run_step(n, work, fresh=reference is not None)
            except Exception:  # one bad payout must not stop the others; its lease expires
                log.exception("payout po_%s: step %s failed; it will be retried", n, work)
        if claimed:  # steps commit webhook events: have them sent now
            self.bank.dispatcher.wakeup.set()
        return len(claimed)

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
        poll = self.bank.settings.worker_poll_s
        while True:
            try:
                done = await anyio.to_thread.run_sync(self.run_once)
            except Exception:  # reliability: the database may be back at the next poll
                log.exception("claiming payout steps failed; trying again")
                done = 0
            if not done:
                await anyio.to_thread.run_sync(self.wakeup.wait, poll)
                self.wakeup.clear()
            if self.bank.settings.gather_s > 0:  # benchmarks: fewer, bigger batches
                await anyio.sleep(self.bank.settings.gather_s)
