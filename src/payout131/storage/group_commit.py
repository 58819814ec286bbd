"""Group commit: concurrent write transactions of one process share one database commit.

A durable commit costs a disk flush (about a millisecond or two on these machines), and a
transaction that updates a hot row (one settlement account paying every payout) keeps the
row locked until its flush is done, so such transactions run one flush after another. Here
callers hand in their work as a function of a connection; whichever caller finds nobody
leading becomes the *leader*: it takes every job waiting (up to ``max_jobs``), runs them
one after another in one transaction, and commits once. Jobs that arrive meanwhile wait for
the next group, whose leader is the first of them.

A job is an item and an *executor*: a function that does the work of many items at once,
one statement per step rather than per item, and hands back each item's result or its
refusal (an exception for which it wrote nothing). A single call is a group of one: every
write of the API and of the worker goes through here, so each use case is written once,
set-wise. The leader runs the waiting jobs of one executor together, executor after
executor, in one transaction. If an executor raises, it wrote something it must not keep:
the transaction is rolled back, a lone job gets that exception, and the jobs of a larger
batch, with every other job of the group, run again one at a time, each in a savepoint of
its own so that a second failure undoes only itself. (A job may therefore run more than
once before it commits; executors are functions of the database and of the items, which
is all any of them is.) A job succeeded only if the group's commit succeeded; if the
commit fails, every job of the group gets that error: as a rule none of their writes
happened, but if the connection broke while committing, the commit is in doubt (the
idempotency keys and leases written with the work make sending it again safe). A
connection that breaks while the group runs fails every job with the break, refusals
included: they were decided on writes that will never commit.

Callers on an event loop use ``run_async``: their job waits in the same queue, but no thread
of theirs waits with it; when such a job is to lead, a thread of the group commit's own
leads for it, and the results of a group reach each event loop in one call.

A group takes the locks of all its jobs in job order, so two groups of one process taking
locks at once could deadlock where single calls never would (each takes a session, then
its payout, then an account). So a process runs one group at a time, and a caller's own
write transaction (``transaction()``, the worker's single steps) only between groups. On
PostgreSQL the next group starts while the previous one is committing: a committing
transaction asks for no more locks, so it cannot be part of a deadlock. A job that loses
a deadlock against another process is run again in a later group.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Generic, TypeVar

import anyio
from prometheus_client import Histogram
from sqlalchemy.engine import Connection, RootTransaction
from sqlalchemy.exc import DisconnectionError

from payout131.storage import after_commit, outages
from payout131.storage.database import Database

__all__ = ["Executor", "GroupCommit"]

T = TypeVar("T")
U = TypeVar("U")
# The work of many jobs at once: their items in, one result (or refusal) per item out.
Executor = Callable[[Connection, list[Any]], list[Any]]
RETRYABLE = frozenset({"40P01", "40001"})  # PostgreSQL: deadlock, serialization failure
RETRIES = 3
_SIZES = (1, 2, 4, 8, 16, 32, 64)
_WAITS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class _Job(Generic[T]):
    __slots__ = (
        "done",
        "error",
        "executor",
        "future",
        "item",
        "lead",
        "loop",
        "queued",
        "result",
        "tries",
        "wake",
    )

    def __init__(self, executor: Executor, item: Any) -> None:
        self.executor, self.item = executor, item
        self.queued = time.perf_counter()
        self.tries = 0
        self.wake = threading.Event()
        self.lead = False
        self.done = False
        self.result: T | None = None
        self.error: BaseException | None = None
        self.loop: asyncio.AbstractEventLoop | None = None  # run_async: its caller's loop
        self.future: asyncio.Future[T] | None = None

    def outcome(self) -> T:
        if self.error is not None:
            raise self.error
        return self.result  # type: ignore[return-value]


class _Alone:
    """``fn(conn)`` as an executor of one item: a job that shares a commit, not its work."""

    __slots__ = ("fn",)

    def __init__(self, fn: Callable[[Connection], Any]) -> None:
        self.fn = fn

    def __call__(self, conn: Connection, items: list[Any]) -> list[Any]:
        return [self.fn(conn) for _ in items]


class GroupCommit:
    """Runs jobs in transactions they may share with other callers' jobs."""

    def __init__(self, db: Database, max_jobs: int = 64) -> None:
        self.db, self.max_jobs = db, max_jobs
        self._lock = threading.Lock()
        self._queue: list[_Job[Any]] = []
        self._leading = False
        self._writing = threading.Lock()
        # run_async: threads that lead for jobs whose callers wait on an event loop (two:
        # on PostgreSQL the next group starts while the last commits)
        self._leaders = ThreadPoolExecutor(2, thread_name_prefix="group-commit")
        self.groups = 0  # commits made, for the curious (metrics, tests)
        self.jobs = 0
        # /metrics: how many jobs shared each commit, and how long a job waited for its own
        self.sizes = Histogram(
            "payout131_group_commit_jobs",
            "Jobs (API calls, worker steps) run together in one transaction, one commit.",
            buckets=_SIZES,
            registry=None,
        )
        self.waits = Histogram(
            "payout131_group_commit_wait_seconds",
            "Time from a job's arrival at the group commit to its outcome (its commit's end).",
            buckets=_WAITS,
            registry=None,
        )

    @property
    def waiting(self) -> int:
        """Jobs queued for the next group."""
        with self._lock:
            return len(self._queue)

    def run(self, executor: Executor, item: Any) -> Any:
        """Have ``executor`` do ``item`` (with the other items of its group) and commit; the
        item's result, or its refusal or failure (raised), or the commit's."""
        job: _Job[Any] = _Job(executor, item)
        self._enqueue([job])
        while True:
            job.wake.wait()
            job.wake.clear()
            if job.done:
                return job.outcome()
            if job.lead:
                job.lead = False
                self._lead()
                if job.done:
                    return job.outcome()

    async def run_async(self, executor: Executor, item: Any) -> Any:
        """``run`` for a caller on an event loop: no thread waits for the job."""
        job: _Job[Any] = _Job(executor, item)
        job.loop = asyncio.get_running_loop()
        job.future = job.loop.create_future()
        self._enqueue([job])
        return await job.future

    def call(self, fn: Callable[[Connection], T]) -> T:
        """Run ``fn(conn)`` in a group and commit; its result or its exception."""
        result: T = self.run(_Alone(fn), None)
        return result

    async def call_async(self, fn: Callable[[Connection], T]) -> T:
        """``call`` for a caller on an event loop."""
        result: T = await self.run_async(_Alone(fn), None)
        return result

    def beside(self, fn: Callable[[Connection], T]) -> T:
        """Run ``fn(conn)`` in a write transaction that needs no group: a claimer's (the
        worker's, the dispatcher's), which skips what others hold. On PostgreSQL it runs
        beside the groups, in a transaction of its own (``SKIP LOCKED`` keeps it out of
        their way); SQLite has one writer at a time, so there it is a job of a group rather
        than a wait in SQLite's busy handler (which sleeps for milliseconds between tries)."""
        if self.db.is_sqlite:
            return self.call(fn)
        with self.db.write() as conn:
            return fn(conn)

    async def beside_async(
        self,
        fn: Callable[[Connection], T],
        then: Callable[[T], U],
        limiter: anyio.CapacityLimiter,
    ) -> U:
        """``beside`` from an event loop, and ``then`` of its result in a worker thread, once
        the transaction has committed (at most ``limiter`` at once). On PostgreSQL both run
        in one trip to a thread; on SQLite the claim waits for its group without a thread
        of its own (nor a place in ``limiter``, which the claimer's other writes need)."""
        if not self.db.is_sqlite:
            return await anyio.to_thread.run_sync(lambda: then(self.beside(fn)), limiter=limiter)
        claimed = await self.call_async(fn)
        if not claimed:  # nothing to hand on: no trip to a thread
            return then(claimed)
        return await anyio.to_thread.run_sync(then, claimed)

    def close(self) -> None:
        """Let the leading threads go (after the groups under way)."""
        self._leaders.shutdown(wait=False)

    def _enqueue(self, jobs: list[_Job[Any]], front: bool = False) -> None:
        with self._lock:
            if front:
                self._queue[:0] = jobs
            else:
                self._queue.extend(jobs)
            if not self._leading:
                self._leading = True
                self._appoint(self._queue[0])

    def _hand_off(self) -> None:
        """The first job waiting leads the next group; nobody leads if none waits."""
        with self._lock:
            if self._queue:
                self._appoint(self._queue[0])
            else:
                self._leading = False

    def _appoint(self, job: _Job[Any]) -> None:
        """Have ``job`` lead the next group: its own thread, or one of ours for it."""
        job.lead = True
        if job.future is None:
            job.wake.set()
            return
        try:
            self._leaders.submit(self._lead_for, job)
        except RuntimeError:  # closed (the app is stopping): still, somebody must lead
            threading.Thread(target=self._lead_for, args=(job,), daemon=True).start()

    def _lead_for(self, job: _Job[Any]) -> None:
        job.lead = False
        self._lead()

    def _lead(self) -> None:
        with self._lock:
            group = self._queue[: self.max_jobs]
            del self._queue[: self.max_jobs]
        overlap = not self.db.is_sqlite  # SQLite: the next BEGIN would wait in its busy loop
        handed = False
        try:
            with self._writing:
                try:
                    opened = self._execute(group)
                except Exception as exc:  # noqa: BLE001 (no connection: each job gets it)
                    for job in group:
                        if job.error is None:
                            job.error, job.result = exc, None
                    opened = None
                if overlap:
                    self._hand_off()
                    handed = True
            if opened is not None:
                self._commit(group, *opened)
        finally:
            with self._lock:  # counted before any caller hears of its outcome
                self.groups += 1
                self.jobs += len(group)
            self.sizes.observe(len(group))
            if not handed:
                self._hand_off()
            again = [j for j in group if _retryable(j)]
            finished = [job for job in group if job not in again]
            ended = time.perf_counter()
            for job in finished:
                self.waits.observe(ended - job.queued)
            _finish(finished)
            if again:
                self._enqueue(again, front=True)

    def _begin(self) -> tuple[Connection, RootTransaction]:
        conn = self.db.engine.connect()
        if self.db.is_sqlite:
            conn = conn.execution_options(sqlite_begin="IMMEDIATE")
        return conn, conn.begin()

    def _execute(self, group: list[_Job[Any]]) -> tuple[Connection, RootTransaction] | None:
        """Run the group's jobs in a new transaction, left open; None if every job failed."""
        for job in group:
            job.error, job.result = None, None
            job.tries += 1
        conn, transaction = self._begin()
        try:
            if _optimistic(conn, group):
                return conn, transaction
            transaction.rollback()
            conn.close()
            rest = [j for j in group if j.error is None]
            if not rest:
                return None
            for job in rest:
                job.result = None
            conn, transaction = self._begin()
            for job in rest:  # careful now: each alone, in a savepoint, undone alone
                try:
                    with conn.begin_nested():
                        (outcome,) = job.executor(conn, [job.item])
                except Exception as exc:  # noqa: BLE001 (undone; handed back to its caller)
                    outages.check(conn, exc)  # broken: none of the group commits
                    job.error = exc
                    continue
                if isinstance(outcome, Exception):
                    job.error = outcome
                else:
                    job.result = outcome
            return conn, transaction
        except BaseException as exc:  # the connection itself failed
            conn.close()
            broken = isinstance(exc, DisconnectionError)  # every outcome was decided on it
            for job in group:
                if job.error is None or broken:
                    job.error, job.result = exc, None
            if not isinstance(exc, Exception):
                raise
            return None

    def _commit(
        self, group: list[_Job[Any]], conn: Connection, transaction: RootTransaction
    ) -> None:
        try:
            if conn.invalidated:  # broke under a job that made it its outcome: nothing commits
                raise DisconnectionError("the connection to the database broke in the group")
            try:
                transaction.commit()
            except Exception as exc:
                outages.check(conn, exc)  # broken while committing: the commit is in doubt
                raise
            after_commit.run(conn)  # the log lines and counts of what the group changed
        except BaseException as exc:  # nothing of the group happened, or it is in doubt
            broken = isinstance(exc, DisconnectionError) or outages.unavailable(exc)
            for job in group:
                if job.error is None or broken:
                    job.error, job.result = exc, None
            if not isinstance(exc, Exception):
                raise
        finally:
            conn.close()


def _optimistic(conn: Connection, group: list[_Job[Any]]) -> bool:
    """Run every job, each executor once for all its jobs; False if a rollback is due.

    A lone job whose executor raised keeps its exception (the others are run again); the
    jobs of a larger batch whose executor raised keep none (each runs again alone). A
    refusal an executor hands back for one job is that job's outcome: it wrote nothing.
    """
    batches: dict[Executor, list[_Job[Any]]] = {}
    for job in group:
        batches.setdefault(job.executor, []).append(job)
    for executor, jobs in batches.items():
        try:
            outcomes = executor(conn, [job.item for job in jobs])
        except Exception as exc:  # noqa: BLE001 (rolled back; run again, or handed back)
            outages.check(conn, exc)  # a broken connection fails the whole group
            for job in group:
                job.error = None
            if len(jobs) == 1:
                jobs[0].error = exc
            return False
        for job, outcome in zip(jobs, outcomes, strict=True):
            if isinstance(outcome, Exception):
                job.error = outcome
            else:
                job.result = outcome
    return True


def _finish(jobs: list[_Job[Any]]) -> None:
    """Hand each job its outcome: waiting threads are woken, each event loop called once."""
    loops: dict[asyncio.AbstractEventLoop, list[_Job[Any]]] = {}
    for job in jobs:
        job.done = True
        if job.loop is None:
            job.wake.set()
        else:
            loops.setdefault(job.loop, []).append(job)
    for loop, settled in loops.items():
        with contextlib.suppress(RuntimeError):  # the loop closed: nobody is waiting
            loop.call_soon_threadsafe(_settle, settled)


def _settle(jobs: list[_Job[Any]]) -> None:
    for job in jobs:
        future = job.future
        if future is None or future.done():  # its caller stopped waiting
            continue
        if job.error is not None:
            future.set_exception(job.error)
        else:
            future.set_result(job.result)


def _retryable(job: _Job[Any]) -> bool:
    """Whether the job lost a deadlock (to another process) and may be tried again."""
    error = job.error  # raised through SQLAlchemy (its ``orig``) or by the driver itself
    code = getattr(getattr(error, "orig", error), "sqlstate", None)
    return code in RETRYABLE and job.tries < RETRIES
