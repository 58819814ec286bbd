"""The load generator: a separate process with its own partner key and webhook receiver.

``python -m payout131.tools.bench.load PLAN.json RESULT.json`` reads a ``Plan``, starts the
receiver, prepares its requests, prints ``ready`` and waits for a line on standard input
(the harness samples the server's CPU meanwhile), then drives one phase of load and writes
a ``Result``.

What one operation is, by ``Plan.kind``:

- ``single``: ``session/init/payout/rko`` on a single-request project, done when its
  ``payment_finished`` webhook arrives;
- ``two_step``: ``session/init/payout/rko``, then ``session/confirm`` as soon as the
  ``ready_to_confirm`` webhook arrives, done at ``payment_finished``;
- ``status``: one ``session/status`` of an existing session;
- ``health``: one ``GET /health`` (the HTTP ceiling).

Closed loop: ``concurrency`` operations in flight, each slot starting the next when its
last is done. Open loop: operations start at ``rate`` per second whatever happens to the
earlier ones, and their latency counts from the moment they were due (no coordinated
omission). Both stop starting operations after ``count`` or ``duration_s``; operations
still running then get ``grace_s`` to finish, after which each is an error.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import resource
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from payout131.client import signing
from payout131.tools.bench.connections import ConnectionPool, HttpError
from payout131.tools.bench.receiver import Receiver

__all__ = ["Percentiles", "Plan", "Result", "main", "percentiles"]

INIT, CONFIRM, STATUS, HEALTH = (
    "session/init/payout",
    "session/confirm",
    "session/status",
    "GET /health",
)
RECIPIENT = {
    "bik": "044525974",
    "account": "40817810400003869535",
    "full_name": "Иванов Иван Иванович",
    "description": "Выплата по договору № 5015553111. НДС не облагается",
}


class Plan(msgspec.Struct, frozen=True):
    """One phase of load, as the harness hands it to the load process."""

    kind: str  # single | two_step | status | health
    port: int
    receiver_port: int
    bank_key_path: str
    project: str = ""
    key_path: str = ""
    accounts: list[str] = []
    session_ids: list[str] = []
    mode: str = "closed"  # closed | open
    concurrency: int = 32
    rate: float = 100.0
    count: int = 1_000_000
    duration_s: float = 10.0
    grace_s: float = 30.0
    amount: int = 10_000  # an ordinary amount: the simulator rail pays it (docs/rails.md)
    host: str = "127.0.0.1"


class Percentiles(msgspec.Struct, frozen=True):
    count: int
    p50: float
    p90: float
    p99: float
    max: float


class Result(msgspec.Struct):
    kind: str
    mode: str
    launched: int = 0
    completed: int = 0
    errors: int = 0
    error_samples: list[str] = []
    elapsed_s: float = 0.0  # first start to last completion
    latency_ms: dict[str, Percentiles] = {}
    arrivals: list[tuple[int, int]] = []  # (event id, received at µs since the epoch)
    client_cpu_s: float = 0.0

    @property
    def per_s(self) -> float:
        return self.completed / self.elapsed_s if self.elapsed_s > 0 else 0.0


def percentiles(samples: list[float]) -> Percentiles:
    """Nearest-rank percentiles of ``samples`` (milliseconds)."""
    if not samples:
        return Percentiles(0, 0.0, 0.0, 0.0, 0.0)
    ordered = sorted(samples)
    n = len(ordered)

    def rank(q: float) -> float:
        return round(ordered[max(0, min(n - 1, math.ceil(q * n) - 1))], 3)

    return Percentiles(n, rank(0.5), rank(0.9), rank(0.99), round(ordered[-1], 3))


@dataclass
class _Watch:
    """What the receiver has learnt of one session."""

    ready: asyncio.Future[None]
    finished: asyncio.Future[tuple[str, float]]  # (session status, monotonic time received)


@dataclass
class _Driver:
    plan: Plan
    pool: ConnectionPool
    key: Any = None
    watches: dict[str, _Watch] = field(default_factory=dict)
    samples: dict[str, list[float]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    completed: int = 0
    launched: int = 0
    last_done: float = 0.0
    requests: list[bytes] = field(default_factory=list)

    # -- the receiver's side

    def watch(self, session_id: str) -> _Watch:
        found = self.watches.get(session_id)
        if found is None:
            loop = asyncio.get_running_loop()
            found = _Watch(loop.create_future(), loop.create_future())
            self.watches[session_id] = found
        return found

    def on_event(self, kind: str, session_id: str, session: dict[str, Any], _at: int) -> None:
        watch = self.watch(session_id)
        if kind == "ready_to_confirm" and not watch.ready.done():
            watch.ready.set_result(None)
        elif kind == "payment_finished" and not watch.finished.done():
            watch.finished.set_result((str(session["status"]), time.monotonic()))

    # -- requests

    def signed(self, method: str, body: dict[str, Any]) -> bytes:
        raw = msgspec.json.encode(body)
        headers = {
            "Content-Type": "application/json",
            "X-PARTNER-PROJECT": self.plan.project,
            "X-PARTNER-SIGN": signing.sign(self.key, raw),
        }
        return self.pool.build("POST", f"/api/v1/{method}", raw, headers)

    def prepare(self) -> None:
        plan = self.plan
        if plan.kind == "health":
            self.requests = [self.pool.build("GET", "/health")]
            return
        self.key = signing.load_private_key(Path(plan.key_path).read_bytes())
        if plan.kind == "status":
            self.requests = [self.signed(STATUS, {"session_id": s}) for s in plan.session_ids]
            return
        # The same body may be sent again and again: without an idempotency key each
        # init/payout is a new session, so one signature per paying account does.
        for account in plan.accounts:
            body = {
                "payment_method": {
                    "type": "bank_account",
                    "bank_account": {"system_type": "ru", "ru": RECIPIENT},
                },
                "amount_details": {"amount": plan.amount, "currency": "rub"},
                "participant_details": {"sender": {"account": account}},
            }
            self.requests.append(self.signed(f"{INIT}/rko", body))

    async def call(self, method: str, request: bytes, since: float) -> dict[str, Any] | None:
        try:
            status, body = await self.pool.send(request)
        except HttpError as exc:
            self.error(f"{method}: {exc}")
            return None
        self.samples.setdefault(method, []).append((time.monotonic() - since) * 1000)
        if status != 200:
            self.error(f"{method}: HTTP {status} {body[:200]!r}")
            return None
        if not body:
            return {}
        answer: dict[str, Any] = msgspec.json.decode(body)
        return answer

    def error(self, what: str) -> None:
        self.errors.append(what)

    # -- operations

    async def operation(self, n: int, due: float, deadline: float) -> None:
        kind = self.plan.kind
        request = self.requests[n % len(self.requests)]
        if kind == "health":
            if await self.call(HEALTH, request, due) is not None:
                self.done()
            return
        if kind == "status":
            if await self.call(STATUS, request, due) is not None:
                self.done()
            return
        answer = await self.call(INIT, request, due)
        if answer is None:
            return
        session_id = str(answer["session"]["id"])
        watch = self.watch(session_id)
        try:
            if kind == "two_step":
                await asyncio.wait_for(watch.ready, max(0.0, deadline - time.monotonic()))
                confirm = self.signed(CONFIRM, {"session_id": session_id})
                if await self.call(CONFIRM, confirm, time.monotonic()) is None:
                    return
            status, _ = await asyncio.wait_for(
                watch.finished, max(0.0, deadline - time.monotonic())
            )
        except TimeoutError:
            self.error(f"{session_id}: not finished when the phase ended")
            return
        finally:
            self.watches.pop(session_id, None)
        if status != "accepted":
            self.error(f"{session_id}: finished {status}")
            return
        self.done()

    def done(self) -> None:
        self.completed += 1
        self.last_done = time.monotonic()

    async def closed_loop(self, start: float, end: float, deadline: float) -> None:
        async def slot() -> None:
            while time.monotonic() < end and self.launched < self.plan.count:
                n = self.launched
                self.launched += 1
                await self.operation(n, time.monotonic(), deadline)

        await asyncio.gather(*(slot() for _ in range(self.plan.concurrency)))

    async def open_loop(self, start: float, end: float, deadline: float) -> None:
        interval = 1.0 / self.plan.rate
        tasks: set[asyncio.Task[None]] = set()
        for n in range(self.plan.count):
            due = start + n * interval
            if due >= end:
                break
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            self.launched += 1
            task = asyncio.create_task(self.operation(n, due, deadline))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.gather(*tasks)


async def run(plan: Plan, handshake: bool = True) -> Result:
    """Drive one phase; with ``handshake`` wait for the harness's go first."""
    pool = ConnectionPool(plan.host, plan.port, max(1, min(plan.concurrency, 256)))
    driver = _Driver(plan, pool)
    bank_key = signing.load_public_key(Path(plan.bank_key_path).read_bytes())
    receiver = Receiver(bank_key, driver.on_event)
    await receiver.start(plan.host, plan.receiver_port)
    try:
        driver.prepare()
        if handshake:
            print("ready", flush=True)
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        cpu = resource.getrusage(resource.RUSAGE_SELF)
        start = time.monotonic()
        end = start + plan.duration_s
        deadline = end + plan.grace_s
        if plan.mode == "open":
            await driver.open_loop(start, end, deadline)
        else:
            await driver.closed_loop(start, end, deadline)
        after = resource.getrusage(resource.RUSAGE_SELF)
    finally:
        await receiver.stop()
        pool.close()
    if receiver.forged:
        driver.error(f"{receiver.forged} webhooks failed signature verification")
    return Result(
        kind=plan.kind,
        mode=plan.mode,
        launched=driver.launched,
        completed=driver.completed,
        errors=len(driver.errors),
        error_samples=driver.errors[:10],
        elapsed_s=max(0.0, driver.last_done - start),
        latency_ms={k: percentiles(v) for k, v in sorted(driver.samples.items())},
        arrivals=receiver.arrivals,
        client_cpu_s=round(after.ru_utime + after.ru_stime - cpu.ru_utime - cpu.ru_stime, 3),
    )


def main(argv: list[str]) -> int:
    plan = msgspec.json.decode(Path(argv[0]).read_bytes(), type=Plan)
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvicorn[standard] brings it
        result = asyncio.run(run(plan))
    else:
        result = uvloop.run(run(plan))
    Path(argv[1]).write_bytes(msgspec.json.encode(result))
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main(sys.argv[1:]))
