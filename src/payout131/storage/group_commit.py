"""Group commit: concurrent write transactions of one process share one database commit.

A durable commit costs a disk flush (about a millisecond or two on these machines), and a
transaction that updates a hot row (one settlement account paying every payout) keeps the
row locked until its flush is done, so such transactions run one flush after another. Here
callers hand in their work as a function of a connection; whichever caller finds nobody
committing becomes the *leader*: it takes every job waiting (up to ``max_jobs``), runs each
inside its own savepoint of one transaction, and commits once. Jobs that arrive meanwhile
wait for the next group, whose leader is the first of them.

Each job keeps its own all-or-nothing: a job that raises has its savepoint rolled back and
gets its exception back, the others go on. A job succeeded only if the group's commit
succeeded; if the commit fails, every job of the group gets that error (none of their
writes happened). What a job sees of the others' uncommitted writes is what one
transaction sees of its own earlier statements.

A group takes the locks of all its jobs, in job order, so two write transactions of one
process running at once could deadlock where single calls never would (each takes a
session, then its payout, then an account). So a process runs one write transaction at a
time through here: a group, or a ``transaction()`` of its own (the worker's single steps).
A job that loses a deadlock against another process is tried again in the next group.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Generic, TypeVar

from sqlalchemy.engine import Connection

from payout131.storage.database import Database

__all__ = ["GroupCommit"]

T = TypeVar("T")
RETRYABLE = frozenset({"40P01", "40001"})  # PostgreSQL: deadlock, serialization failure
RETRIES = 3


class _Job(Generic[T]):
    __slots__ = ("error", "fn", "lead", "result", "tries", "wake")

    def __init__(self, fn: Callable[[Connection], T]) -> None:
        self.fn = fn
        self.tries = 0
        self.wake = threading.Event()
        self.lead = False
        self.result: T | None = None
        self.error: BaseException | None = None

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
        self.groups = 0  # commits made, for the curious (metrics, tests)
        self.jobs = 0

    @property
    def waiting(self) -> int:
        """Jobs queued for the next group."""
        with self._lock:
            return len(self._queue)

    def run(self, fn: Callable[[Connection], T]) -> T:
        """Run ``fn`` and commit; its result, or its exception (or the commit's)."""
        job: _Job[T] = _Job(fn)
        with self._lock:
            self._queue.append(job)
            if not self._leading:
                self._leading = job.lead = True
        if not job.lead:
            job.wake.wait()
            if not job.lead:
                return job.outcome()
        while True:
            with self._lock:
                group = self._queue[: self.max_jobs]
                del self._queue[: self.max_jobs]
            again: list[_Job[Any]] = []
            try:
                with self._writing:
                    self._execute(group)
                again = [j for j in group if _retryable(j)]
            finally:
                with self._lock:
                    self._queue[:0] = again  # first in the next group
                    if self._queue and job not in again:
                        self._queue[0].lead = True
                        self._queue[0].wake.set()
                    elif not self._queue:
                        self._leading = False
                for other in group:
                    if other is not job and other not in again:
                        other.wake.set()
            if job not in again:
                return job.outcome()

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A write transaction of the caller's own, never while a group is running."""
        with self._writing, self.db.write() as conn:
            yield conn

    def _execute(self, group: list[_Job[Any]]) -> None:
        for job in group:
            job.error, job.result = None, None
            job.tries += 1
        try:
            with self.db.write() as conn:
                if len(group) == 1:  # alone: the transaction is its savepoint
                    group[0].result = group[0].fn(conn)
                for job in group if len(group) > 1 else ():
                    try:
                        with conn.begin_nested():
                            job.result = job.fn(conn)
                    except Exception as exc:  # noqa: BLE001 (undone; handed back to its caller)
                        job.error = exc
        except BaseException as exc:  # the commit failed: nothing of the group happened
            for job in group:
                if job.error is None:
                    job.error = exc
                    job.result = None
            if not isinstance(exc, Exception):
                raise
        self.groups += 1
        self.jobs += len(group)


def _retryable(job: _Job[Any]) -> bool:
    """Whether the job lost a deadlock (to another process) and may be tried again."""
    code = getattr(getattr(job.error, "orig", None), "sqlstate", None)
    return code in RETRYABLE and job.tries < RETRIES
