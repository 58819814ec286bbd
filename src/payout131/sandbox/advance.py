"""Moving a test clock forward: every step due on the way runs, in time order.

An advance is asked for (``request``: the clock becomes ``advancing`` with its target, in
one transaction) and then run (``run``) by one process at a time, the clock's runner, under
a short lease on the clock row (wall time), so a runner that dies is replaced and the
advance finished by the next process that looks: the next advance, a CLI waiting on it, or
a server's ``run_forever``.

The runner moves the clock one due time at a time: it waits until nothing due at the
clock's time is left (the payout worker and the webhook dispatcher for clocks do the steps,
each in its own transaction, exactly as on wall time), then moves ``frozen_time`` to the
next due time, or to the target when nothing is due before it, and the clock is ``ready``.
A step that stays due for ``step_timeout_s`` of wall time (it keeps failing) stops the
advance: the clock is ``failed``, with the step named, at the time the step was due. Every
step before it is done, the failing one undone (its transaction rolled back).
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
import time
from collections.abc import Callable

import anyio
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from payout131.clock import Clock, rfc3339
from payout131.sandbox import clocks
from payout131.sandbox.clocks import TestClock
from payout131.storage import Database
from payout131.storage import schema as t
from payout131.storage.outages import log_failure

__all__ = ["Advancer", "Refused"]

log = logging.getLogger("payout131.sandbox")

c = t.test_clocks
MICROS = 1_000_000


class Refused(ValueError):
    """An advance that cannot be made (backwards, past the latest time, nothing due)."""


class Advancer:
    """Asks for advances and runs them; ``wake`` rings the clocks' worker and dispatcher."""

    def __init__(
        self,
        db: Database,
        wall: Clock,
        wake: Callable[[], None],
        step_timeout_s: float,
        *,
        poll_s: float = 0.01,
        owner: str | None = None,
        runner_lease_s: float = 10.0,
    ) -> None:
        self.db, self.wall, self.wake = db, wall, wake
        self.step_timeout_s, self.poll_s = step_timeout_s, poll_s
        self.runner_lease_s = runner_lease_s  # how long a silent runner keeps the clock
        self.owner = owner or f"{os.getpid()}-{secrets.token_hex(4)}"
        self.wakeup = threading.Event()  # rung when an advance is asked for in this process
        self.stopping = threading.Event()  # the process is shutting down: runners stop

    # -- asking ------------------------------------------------------------------------

    def request(
        self,
        n: int,
        *,
        to: int | None = None,
        by: int | None = None,
        next_step: bool = False,
    ) -> TestClock:
        """Set the clock advancing to ``to``, by ``by`` microseconds, or to its next due
        step; Refused if the target is not ahead of it. While an advance is under way, a
        duration counts from where that one is going, and the clock goes on to the later
        of the two targets."""
        with self.db.write() as conn:
            clock = clocks.lock(conn, n)
            going = clock.advance_to if clock.status == "advancing" else None
            base = clock.frozen_time
            if next_step:
                field, target = "next", clocks.next_due(conn, n)
                if target is None:
                    raise Refused(f"next: nothing is due on {clock.id}")
                target = max(target, base)
            elif by is not None:
                field = "by"
                target = (going or base) + by
            else:
                assert to is not None, "one of to, by, next_step"
                field, target = "to", to
                if target <= base:
                    raise Refused(
                        f"to: {rfc3339(target)} is not after the clock's time "
                        f"{rfc3339(base)}; a clock only moves forward"
                    )
            if target > clocks.LATEST:
                raise Refused(f"{field}: the clock would pass 9999-12-31")
            target = max(target, going or target)
            conn.execute(
                sa.update(c)
                .where(c.c.n == n)
                .values(status="advancing", advance_to=target, failure=None)
            )
            clock = clocks.get(conn, n)
        self.wakeup.set()
        return clock

    # -- running -----------------------------------------------------------------------

    def _take(self, conn: Connection, n: int, token: str, wall: int) -> bool:
        """Become the clock's runner under ``token`` (or stay it); False while another
        runner is alive, in this process or another."""
        taken = conn.execute(
            sa.update(c)
            .where(
                c.c.n == n,
                c.c.status == "advancing",
                sa.or_(c.c.runner.is_(None), c.c.runner == token, c.c.runner_until < wall),
            )
            .values(runner=token, runner_until=wall + int(self.runner_lease_s * MICROS))
        )
        return taken.rowcount == 1

    def _release(self, n: int, token: str) -> None:
        """Give the clock up (another runner takes it at once: ``run_forever``)."""
        with self.db.write() as conn:
            conn.execute(
                sa.update(c)
                .where(c.c.n == n, c.c.runner == token)
                .values(runner=None, runner_until=None)
            )
        self.wakeup.set()

    def run(self, n: int, until: float | None = None) -> bool:
        """Run the clock's advance to its end (or until ``until``, a ``time.monotonic``
        deadline) if no other runner is alive; False if one is, or the deadline passed."""
        token = f"{self.owner}-{secrets.token_hex(3)}"  # two threads are two runners
        with self.db.write() as conn:
            if not self._take(conn, n, token, self.wall.now()):
                return False
        renewed = time.monotonic()
        stuck: tuple[int, str] | None = None
        stuck_since = time.monotonic()
        fence: tuple[int, int] | None = None  # (the clock's time, the last session then)
        while True:
            if self.stopping.is_set() or (until is not None and time.monotonic() >= until):
                self._release(n, token)  # a runner stopped midway is replaced
                return False
            with self.db.read() as conn:
                found = conn.execute(sa.select(c).where(c.c.n == n)).one_or_none()
                if found is None:
                    return True  # deleted meanwhile
                clock = TestClock.from_row(found)
                if fence is None or fence[0] != clock.frozen_time:
                    fence = (clock.frozen_time, clocks.last_session(conn))
                due = clocks.pending(conn, n, limit=1, sessions=fence[1])
            if clock.status != "advancing" or clock.advance_to is None:
                return True
            if time.monotonic() - renewed > self.runner_lease_s / 3:
                with self.db.write() as conn:
                    if not self._take(conn, n, token, self.wall.now()):
                        return False  # another runner took over meanwhile
                renewed = time.monotonic()
            first = due[0] if due else None
            if first is not None and first.at <= clock.frozen_time:  # steps due now: wait
                if stuck != (first.at, first.what):
                    stuck, stuck_since = (first.at, first.what), time.monotonic()
                elif time.monotonic() - stuck_since > self.step_timeout_s:
                    self._fail(n, token, first.what, first.at)
                    return True
                self.wake()
                time.sleep(self.poll_s)
                continue
            if not self._move(n, token, fence[1]):
                return False  # no longer the runner
            stuck = None

    def _move(self, n: int, token: str, sessions: int) -> bool:
        """Under the clock's lock, while still its runner and nothing of the sessions up to
        ``sessions`` (the fence) is due at its time: move it to the next due time, or to
        its target (and ready). False if another runner has the clock.

        The fence keeps a partner paying while the clock moves from holding it up for ever:
        a session made after the clock reached its time is not waited for there; its steps
        run when the worker comes to them, at the clock's time then."""
        with self.db.write() as conn:
            clock = clocks.lock(conn, n)
            runner = conn.execute(sa.select(c.c.runner).where(c.c.n == n)).scalar()
            if runner != token:
                return False
            if clock.status != "advancing" or clock.advance_to is None:
                return True
            due = clocks.pending(conn, n, limit=1, sessions=sessions)
            if due and due[0].at <= clock.frozen_time:
                return True  # something fell due meanwhile: the loop waits for it
            at = clocks.next_due(conn, n, after=clock.frozen_time)
            if at is not None and at <= clock.advance_to:
                values: dict[str, object] = {"frozen_time": at}
            else:
                values = {
                    "frozen_time": clock.advance_to,
                    "status": "ready",
                    "advance_to": None,
                    "runner": None,
                    "runner_until": None,
                }
            conn.execute(sa.update(c).where(c.c.n == n).values(**values))
        self.wake()
        return True

    def _fail(self, n: int, token: str, what: str, at: int) -> None:
        reason = (
            f"{what} (due {rfc3339(at)}) did not complete within {self.step_timeout_s:g} s "
            "of wall time; the server's log says why. Advance again to retry it."
        )
        log.error("test clock %s: %s", clocks.clock_id(n), reason)
        with self.db.write() as conn:
            conn.execute(
                sa.update(c)
                .where(c.c.n == n, c.c.runner == token, c.c.status == "advancing")
                .values(
                    status="failed",
                    failure=reason,
                    advance_to=None,
                    runner=None,
                    runner_until=None,
                )
            )

    def wait(self, n: int, timeout_s: float) -> TestClock:
        """Run or wait for the clock's advance until it ends or ``timeout_s`` passes; the
        clock as it then is (still ``advancing`` after the timeout: another runner, or a
        later call, finishes it)."""
        deadline = time.monotonic() + timeout_s
        while True:
            with self.db.read() as conn:
                clock = clocks.get(conn, n)
            if (
                clock.status != "advancing"
                or time.monotonic() >= deadline
                or self.stopping.is_set()
            ):
                return clock
            if not self.run(n, until=deadline):  # another runner is on it: look again
                time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))

    def advancing(self) -> list[int]:
        """The clocks being advanced whose runner is gone (or none was ever started)."""
        wall = self.wall.now()
        with self.db.read() as conn:
            found = conn.execute(
                sa.select(c.c.n).where(
                    c.c.status == "advancing",
                    sa.or_(c.c.runner.is_(None), c.c.runner_until < wall),
                )
            )
            return [int(row.n) for row in found]

    async def run_forever(self, poll_s: float = 1.0) -> None:
        """Finish every advance nobody is running (the server's lifespan runs this): one
        asked for with ``--no-wait``, or one whose runner died; each clock's in a thread of
        its own, so a long advance of one clock holds up no other."""
        running: set[int] = set()

        async def finish(n: int) -> None:
            try:
                await anyio.to_thread.run_sync(self.run, n, abandon_on_cancel=True)
            except Exception as exc:  # noqa: BLE001 (logged; the database may be back)
                log_failure(log, exc, "running test clock %s failed; trying again", n)
            finally:
                running.discard(n)
                self.wakeup.set()

        try:
            async with anyio.create_task_group() as tasks:
                while True:
                    try:
                        waiting = await anyio.to_thread.run_sync(self.advancing)
                    except Exception as exc:  # noqa: BLE001 (logged; the database may be back)
                        message = "looking for test clock advances failed; trying again"
                        log_failure(log, exc, message)
                        waiting = []
                    for n in set(waiting) - running:
                        running.add(n)
                        tasks.start_soon(finish, n)
                    await anyio.to_thread.run_sync(self.wakeup.wait, poll_s, abandon_on_cancel=True)
                    self.wakeup.clear()
        finally:
            self.stopping.set()
