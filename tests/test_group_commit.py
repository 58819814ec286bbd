"""Group commit: fewer commits, the same outcomes (benchmarks).

Jobs handed to ``GroupCommit`` while a group runs share the next commit; the jobs of one
executor run as one batch, and a batch that fails runs again job by job, each in its own
savepoint. The worker runs each kind of step for many payouts at once. Either way each job
must end as it would have alone.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from banking import Onboard
from grouped import in_one_group
from partner import payout_body
from payout131.errors import InvalidRequest
from payout131.ledger import accounts, book
from payout131.ledger.check import violations
from payout131.runtime import Runtime
from payout131.storage import schema as t
from payout131.storage import sql
from payout131.storage.group_commit import GroupCommit
from payout131.storage.outages import unavailable
from payout131.storage.sql import Sql

FUNDS = 1_000_000


def _wait_for(condition: Any, what: str) -> None:
    deadline = time.monotonic() + 30
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.005)


@pytest.fixture
def wallet(bank: Runtime, onboard: Onboard) -> int:
    """The collateral wallet of a new project ``acme``."""
    onboard("acme")
    with bank.db.read() as conn:
        found = accounts.account_id(conn, "wallet:acme")
    assert found is not None
    return found


def _refused(account: int) -> Any:
    def job(conn: Connection) -> None:
        book.topup(conn, account, 999, 0)  # written, then undone with its savepoint
        raise InvalidRequest("amount: refused after writing")

    return job


def _topup(account: int, amount: int) -> Any:
    def job(conn: Connection) -> int:
        return book.topup(conn, account, amount, 0)

    return job


def test_jobs_queued_during_a_group_share_one_commit_and_fail_alone(
    bank: Runtime, wallet: int
) -> None:
    group = GroupCommit(bank.db)
    release, entered = threading.Event(), threading.Event()
    results: dict[int, Any] = {}

    def first(conn: Connection) -> str:
        entered.set()
        release.wait(30)
        return "first"

    def call(n: int, fn: Any) -> None:
        try:
            results[n] = group.call(fn)
        except InvalidRequest as exc:
            results[n] = exc

    threads = [threading.Thread(target=call, args=(0, first))]
    threads[0].start()
    assert entered.wait(30)  # the leader is inside its group, holding the commit
    for n in range(1, 9):
        fn = _refused(wallet) if n == 4 else _topup(wallet, 100)
        threads.append(threading.Thread(target=call, args=(n, fn)))
        threads[-1].start()
    _wait_for(lambda: group.waiting == 8, "the queue")
    release.set()
    for thread in threads:
        thread.join(30)
    assert results[0] == "first"
    assert isinstance(results[4], InvalidRequest)
    assert all(isinstance(results[n], int) for n in range(1, 9) if n != 4)
    assert (group.groups, group.jobs) == (2, 9)  # the eight queued jobs: one commit
    with bank.db.read() as conn:
        assert accounts.balance(conn, wallet).balance == 7 * 100
        assert violations(conn) == []


def test_a_failed_commit_fails_every_job_of_the_group(bank: Runtime) -> None:
    group = GroupCommit(bank.db)

    def duplicate(conn: Connection) -> None:  # two accounts with one code: refused at insert
        accounts.open_account(conn, "dup", "system", None, 0)

    with pytest.raises(sa.exc.IntegrityError):
        group.call(lambda conn: [duplicate(conn), duplicate(conn)])
    with bank.db.read() as conn:
        assert accounts.account_id(conn, "dup") is None


@pytest.mark.parametrize("single_request", [True, False])
def test_batched_steps_leave_what_single_steps_leave(
    bank: Runtime, onboard: Onboard, single_request: bool
) -> None:
    partner = onboard("acme", wallet=FUNDS, single_request=single_request, fee_fixed=100)
    sessions = [
        partner.ok("session/init/payout", payout_body(10_000 + n * 100))["session"]["id"]
        for n in range(12)
    ]
    rejected = partner.ok("session/init/payout", payout_body(10_002))["session"]["id"]
    assert bank.worker.drain() >= 13  # claimed together: checks or executes in batches
    if not single_request:
        with bank.db.read() as conn:
            pending = conn.execute(
                sa.select(sa.func.count()).where(t.payouts.c.status == "pending")
            ).scalar_one()
            ready = conn.execute(
                sa.select(sa.func.count()).where(t.events.c.type == "ready_to_confirm")
            ).scalar_one()
        assert (pending, ready) == (13, 13)
        for session_id in [*sessions, rejected]:
            partner.ok("session/confirm", {"session_id": session_id})
        bank.worker.drain()
    statuses = {
        s: partner.ok("session/status", {"session_id": s})["session"]["status"]
        for s in [*sessions, rejected]
    }
    assert statuses == {**dict.fromkeys(sessions, "accepted"), rejected: "cancelled"}
    with bank.db.read() as conn:
        finished = conn.execute(
            sa.select(t.events.c.session_n).where(t.events.c.type == "payment_finished")
        ).scalars()
        assert sorted(f"ps_{n}" for n in finished) == sorted([*sessions, rejected])
        submissions = conn.execute(sa.select(t.simulator_transfers.c.submissions)).scalars()
        assert list(submissions) == [1] * 13
        wallet = accounts.account_id(conn, "wallet:acme")
        assert wallet is not None
        paid = sum(10_000 + n * 100 + 100 for n in range(12))
        assert accounts.balance(conn, wallet) == accounts.Balance(FUNDS - paid, 0)
        assert violations(conn) == []


def test_outcomes_waiting_for_a_write_are_recorded_together() -> None:
    import asyncio

    from payout131.webhooks.outbox import Job, Outcome
    from payout131.webhooks.recorder import Recorder

    calls: list[int] = []
    release, entered = threading.Event(), threading.Event()

    def write(pairs: Any) -> list[str | None]:
        calls.append(len(pairs))
        entered.set()
        release.wait(30)
        return ["delivered" if outcome.ok else "failed" for _, outcome in pairs]

    def job(n: int) -> Job:
        return Job(n, n, 1, "acme", n, "payment_finished", b"{}", "http://x", 0, 0)

    async def main() -> list[str | None]:
        recorder = Recorder(write)
        first = asyncio.create_task(recorder.record(job(0), Outcome(200, None, "", 1)))
        await asyncio.to_thread(entered.wait, 30)  # the first write is under way, blocked
        others = [
            asyncio.create_task(
                recorder.record(job(n), Outcome(500 if n == 3 else 200, None, "", 1))
            )
            for n in range(1, 6)
        ]
        await asyncio.sleep(0)  # each has queued its outcome
        release.set()
        return await asyncio.gather(first, *others)

    assert asyncio.run(main()) == [
        "delivered",
        "delivered",
        "delivered",
        "failed",
        "delivered",
        "delivered",
    ]
    assert calls == [1, 5]


def test_jobs_from_an_event_loop_share_commits_and_get_their_own_outcome(
    bank: Runtime, wallet: int
) -> None:
    import asyncio

    group = GroupCommit(bank.db)

    async def calls() -> list[Any]:
        jobs = [group.call_async(_topup(wallet, 100)) for _ in range(20)]
        jobs.insert(7, group.call_async(_refused(wallet)))
        return await asyncio.gather(*jobs, return_exceptions=True)

    try:
        results = asyncio.run(calls())
    finally:
        group.close()
    assert isinstance(results[7], InvalidRequest)
    assert all(isinstance(r, int) for n, r in enumerate(results) if n != 7)
    assert group.jobs == 21
    assert group.groups < 21 / 2  # no thread per caller, and still shared commits
    with bank.db.read() as conn:
        assert accounts.balance(conn, wallet).balance == 20 * 100
        assert violations(conn) == []


def test_a_closed_group_commit_still_runs_what_is_handed_to_it(bank: Runtime, wallet: int) -> None:
    """An app stopping closes its bank while calls may still be waiting: they still run."""
    import asyncio

    group = GroupCommit(bank.db)
    group.close()
    assert asyncio.run(group.call_async(_topup(wallet, 100))) > 0
    with bank.db.read() as conn:
        assert accounts.balance(conn, wallet).balance == 100


@pytest.mark.parametrize("through", ["driver", "sqlalchemy"])
def test_a_job_that_lost_a_deadlock_runs_again(bank: Runtime, through: str) -> None:
    """A deadlock (40P01) is retried whether the driver raised it straight (storage/sql.py)
    or SQLAlchemy wrapped it; any other database error goes back to the caller."""
    import psycopg

    group = GroupCommit(bank.db)
    tries: list[int] = []

    def lost(error: Exception) -> Exception:
        return error if through == "driver" else sa.exc.OperationalError("x", {}, error)

    def job(conn: Connection) -> str:
        tries.append(1)
        if len(tries) == 1:
            raise lost(psycopg.errors.DeadlockDetected("deadlock detected"))
        return "done"

    assert group.call(job) == "done"
    assert len(tries) == 2

    def refused(conn: Connection) -> None:
        raise lost(psycopg.errors.CheckViolation("check"))

    with pytest.raises((psycopg.errors.CheckViolation, sa.exc.OperationalError)):
        group.call(refused)


def test_an_executor_does_a_batch_and_a_failed_batch_runs_again_alone(
    bank: Runtime, wallet: int
) -> None:
    """Jobs naming one executor are done by one call of it; a refusal it hands back is its
    job's alone; if it raises, each of its jobs runs again alone, in a savepoint."""
    group = GroupCommit(bank.db)
    batches: list[list[int]] = []

    def topups(conn: Connection, amounts: list[int]) -> list[Any]:
        batches.append(sorted(amounts))
        if 13 in amounts and len(amounts) > 1:  # fails the batch after writing some of it
            book.topup(conn, wallet, 1_000, 0)
            raise RuntimeError("the batch fails")
        out: list[Any] = []
        for amount in amounts:
            if amount == 7:
                out.append(InvalidRequest("amount: 7 is refused, nothing written"))
            else:
                out.append(book.topup(conn, wallet, amount, 0))
        return out

    first = in_one_group(group, topups, [100, 7, 200])
    second = in_one_group(group, topups, [300, 13, 400])
    assert isinstance(first[1], InvalidRequest)
    assert all(isinstance(r, int) for r in (first[0], first[2], *second))
    assert batches[0] == [7, 100, 200]  # one call for the three
    assert batches[1] == [13, 300, 400]  # failed: then one by one
    assert sorted(batches[2:]) == [[13], [300], [400]]
    with bank.db.read() as conn:
        assert accounts.balance(conn, wallet).balance == 100 + 200 + 300 + 13 + 400
        assert violations(conn) == []


@pytest.mark.parametrize("through", ["sqlalchemy", "driver"])
def test_a_connection_broken_under_one_job_fails_the_whole_group(
    bank: Runtime, wallet: int, through: str
) -> None:
    """A failover breaks the connection while the jobs of a failed batch run one by one:
    none of the group commits, the jobs already done included, and every job gets the
    break (an outage: 503 to a partner), not the driver's complaint about the broken
    transaction. The next group gets a new connection."""
    group = GroupCommit(bank.db)

    def topups(conn: Connection, amounts: list[int]) -> list[Any]:
        if 13 in amounts and len(amounts) > 1:
            raise RuntimeError("the batch fails: each runs again alone")
        if amounts == [13]:
            if bank.db.is_sqlite:  # a file does not fail over: break it by hand
                conn.invalidate()
                raise sa.exc.DisconnectionError("the connection broke")
            kill = "SELECT pg_terminate_backend(pg_backend_pid())"
            if through == "sqlalchemy":  # SQLAlchemy sees the break and invalidates
                conn.execute(sa.text(kill))
            else:  # as most writes go: straight to the driver (storage.outages.check)
                sql.run(conn, Sql(kill))
        return [book.topup(conn, wallet, amount, 0) for amount in amounts]

    with bank.db.read() as conn:
        before = accounts.balance(conn, wallet).balance
    results = in_one_group(group, topups, [300, 13, 400])
    assert all(isinstance(r, Exception) and unavailable(r) for r in results), results
    with bank.db.read() as conn:
        assert accounts.balance(conn, wallet).balance == before
    assert group.run(topups, 500)  # a new connection
    with bank.db.read() as conn:
        assert accounts.balance(conn, wallet).balance == before + 500
        assert violations(conn) == []
