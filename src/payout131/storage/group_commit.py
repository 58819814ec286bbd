"""Group commit: concurrent write transactions of one process share one database commit.

A durable commit costs a disk flush (about a millisecond or two on these machines), and a
transaction that updates a hot row (one settlement account paying every payout) keeps the
row locked until its flush is done, so such transactions run one flush after another. Here
callers hand in their work as a function of a connection; whichever caller finds nobody
leading becomes the *leader*: it takes every job waiting (up to ``max_jobs``), runs them
one after another in one transaction, and commits once. Jobs that arrive meanwhile wait for
the next group, whose leader is the first of them.

Each job keeps its own all-or-nothing. The group first runs optimistically, the jobs one
after another with nothing between them; if a job raises, the transaction is rolled back,
that job gets its exception, and the others run again, each in a savepoint of its own so
that a second failure undoes only itself. (A job may therefore run more than once before
it commits; jobs are functions of the database and of values captured before, which is
all any of them is.) A job succeeded only if the group's commit succeeded; if the commit
fails, every job of the group gets that error (none of their writes happened).

A job may also name a *batch*: a function that does the work of many such jobs at once
(``run(fn, batch=..., item=...)``), one statement per step rather than per job, and hands
back each job's result or its own exception (a refused job wrote nothing). The leader runs
the waiting jobs of one batch together; if the batch itself raises, the group is rolled
back and every job runs again on its own (``fn``), each in a savepoint as above.

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
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, Generic, TypeVar

from sqlalchemy.engine import Connection, RootTransaction

from payout131.storage.database import Database

__all__ = ["GroupCommit"]

T = TypeVar("T")
# Work of many jobs at once: their items in, one result or exception per item out.
Batch = Callable[[Connection, list[Any]], list[Any]]
RETRYABLE = frozenset({"40P01", "40001"})  # PostgreSQL: deadlock, serialization failure
RETRIES = 3


class _Job(Generic[T]):
    __slots__ = (
        "batch",
        "done",
        "error",
        "fn",
        "future",
        "item",
        "lead",
        "loop",
        "result",
        "tries",
        "wake",
    )

    def __init__(
        self, fn: Callable[[Connection], T], batch: Batch | None = None, item: Any = None
    ) -> None:
        self.fn, self.batch, self.item = fn, batch, item
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


class GroupCommit:
    """Runs ``fn(conn)`` in a transaction it may share with other callers' jobs."""

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

    @property
    def waiting(self) -> int:
        """Jobs queued for the next group."""
        with self._lock:
            return len(self._queue)

    def run(
        self, fn: Callable[[Connection], T], *, batch: Batch | None = None, item: Any = None
    ) -> T:
        """Run ``fn`` and commit; its result, or its exception (or the commit's).

        With ``batch``, ``batch(conn, items)`` may do the work instead, for this job's
        ``item`` and those of other jobs naming the same batch; it must leave what ``fn``
        would have left for each."""
        job: _Job[T] = _Job(fn, batch, item)
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

    async def run_async(
        self, fn: Callable[[Connection], T], *, batch: Batch | None = None, item: Any = None
    ) -> T:
        """``run`` for a caller on an event loop: no thread waits for the job."""
        job: _Job[T] = _Job(fn, batch, item)
        job.loop = asyncio.get_running_loop()
        job.future = job.loop.create_future()
        self._enqueue([job])
        return await job.future

    def close(self) -> None:
        """Let the leading threads go (after the groups under way)."""
        self._leaders.shutdown(wait=False)

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A write transaction of the caller's own, never while a group is running."""
        with self._writing, self.db.write() as conn:
            yield conn

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
            if not handed:
                self._hand_off()
            again = [j for j in group if _retryable(j)]
            _finish([job for job in group if job not in again])
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
                        job.result = job.fn(conn)
                except Exception as exc:  # noqa: BLE001 (undone; handed back to its caller)
                    job.error = exc
            return conn, transaction
        except BaseException as exc:  # the connection itself failed
            conn.close()
            for job in group:
                if job.error is None:
                    job.error, job.result = exc, None
            if not isinstance(exc, Exception):
                raise
            return None

    def _commit(
        self, group: list[_Job[Any]], conn: Connection, transaction: RootTransaction
    ) -> None:
        try:
            transaction.commit()
        except BaseException as exc:  # nothing of the group happened
            for job in group:
                if job.error is None:
                    job.error, job.result = exc, None
            if not isinstance(exc, Exception):
                raise
        finally:
            conn.close()


def _optimistic(conn: Connection, group: list[_Job[Any]]) -> bool:
    """Run every job, batches set-wise, nothing between them; False if a rollback is due.

    A job that raised keeps its exception (the others are run again); a batch that raised
    leaves none (its jobs are run again one by one). A refusal a batch hands back for one
    job is that job's outcome: the batch wrote nothing for it.
    """
    batches: dict[Batch, list[_Job[Any]]] = {}
    for job in group:
        if job.batch is not None:
            batches.setdefault(job.batch, []).append(job)
            continue
        try:
            job.result = job.fn(conn)
        except Exception as exc:  # noqa: BLE001 (rolled back, then handed back)
            job.error = exc
            return False
    for batch, jobs in batches.items():
        try:
            outcomes = batch(conn, [job.item for job in jobs])
        except Exception:  # noqa: BLE001 (each job runs again alone, and says what failed)
            for job in group:
                job.error = None
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
