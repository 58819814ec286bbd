"""Recording delivery outcomes in batches: one write for every outcome that is waiting.

Each delivery ends with its outcome written down (``outbox.record``). One transaction per
delivery would cost a commit per webhook; instead a delivery hands its outcome to the
``Recorder`` and waits. If no write is under way, that delivery writes every outcome waiting
(``outbox.record``, through the group commit) and goes on writing while more
arrive; otherwise its outcome joins the next write. A delivery learns its event's new status
(or the error) once the write that carried it has committed, exactly as before.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

import anyio

from payout131.webhooks.outbox import Job, Outcome

__all__ = ["Recorder"]

Write = Callable[[Sequence[tuple[Job, Outcome]]], list[str | None]]


class Recorder:
    """Batches ``(job, outcome)`` pairs into calls of ``write`` (run in a worker thread)."""

    def __init__(self, write: Write, limiter: anyio.CapacityLimiter | None = None) -> None:
        self._write, self._limiter = write, limiter
        self._waiting: list[tuple[Job, Outcome, asyncio.Future[str | None]]] = []
        self._writing = False

    async def record(self, job: Job, outcome: Outcome) -> str | None:
        done: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        self._waiting.append((job, outcome, done))
        if not self._writing:
            self._writing = True
            try:
                while self._waiting:
                    batch, self._waiting = self._waiting, []
                    await self._flush(batch)
            finally:
                self._writing = False
        return await done

    async def _flush(self, batch: list[tuple[Job, Outcome, asyncio.Future[str | None]]]) -> None:
        pairs = [(job, outcome) for job, outcome, _ in batch]
        try:
            with anyio.CancelScope(shield=True):  # the others are waiting for this write
                statuses = await anyio.to_thread.run_sync(self._write, pairs, limiter=self._limiter)
        except Exception as exc:  # noqa: BLE001 (each waiting delivery gets it; leases expire)
            for *_, done in batch:
                if not done.done():
                    done.set_exception(exc)
            return
        for (*_, done), status in zip(batch, statuses, strict=True):
            if not done.done():
                done.set_result(status)
