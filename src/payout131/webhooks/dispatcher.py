"""The dispatcher: an async loop that claims due events and delivers them concurrently.

Each claimed event is signed in a worker thread (RSA costs ~300 µs, too long for the event
loop; the events of one claim in one trip), posted through the ``Sender`` and its outcome
recorded in a short transaction; nothing is sent inside a transaction. At most
``webhook_concurrency`` deliveries run at once in a process and at most
``webhook_per_endpoint`` for one project, so one slow partner cannot hold up the others.
A dispatcher delivers the events due by the wall or, with ``on_clocks``, those of projects
on test clocks, each at its clock's time (docs/sandbox.md). The loop sleeps until its
``wakeup`` rings (the API and the payout worker ring it after
committing events; a finished delivery rings it too) or the poll interval passes, which
picks up events written by other processes.

Delivery is at least once: a worker that dies after sending but before recording leaves
its lease to expire, and the event is sent again with the same id, bytes and signature.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import secrets
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import anyio
from sqlalchemy.engine import Connection

from payout131 import logs
from payout131.clock import Clock
from payout131.protocol.wire import session_id
from payout131.storage import Database
from payout131.storage.group_commit import GroupCommit
from payout131.storage.outages import log_failure
from payout131.tokens.vault import Vault
from payout131.webhooks import events, outbox, standard
from payout131.webhooks.bank_key import BankSigner
from payout131.webhooks.metrics import DeliveryStats
from payout131.webhooks.outbox import Job, Outcome
from payout131.webhooks.plain_sender import PlainHttpSender
from payout131.webhooks.recorder import Recorder
from payout131.webhooks.schedule import Schedule
from payout131.webhooks.sender import Sender

__all__ = ["DeliveryConfig", "Dispatcher", "Doorbell", "headers"]

log = logging.getLogger("payout131.webhooks")

# A claimed job's request: its exact bytes, their signature and the project's Standard
# Webhooks secret (opened), or why they could not be made
Prepared = tuple[bytes, str, str | None] | Exception

USER_AGENT = "payout131-webhooks/1"


def headers(job: Job, body: bytes, signature: str, secret: str | None = None) -> dict[str, str]:
    """The headers of an attempt: identical across retries of one event.

    ``Webhook-Timestamp`` is the event's creation time, not the attempt's, so a retry is
    byte-for-byte the same request; except for a project that opted into Standard
    Webhooks, whose verifiers want the attempt's time under its ``webhook-signature``
    (``webhooks/standard.py``).
    """
    webhook_id = f"evt_{job.event_id}"
    out = {
        "Content-Type": "application/json",
        "X-PARTNER-SIGN": signature,
        "Webhook-Id": webhook_id,
        "Webhook-Timestamp": str(job.created_at // 1_000_000),
        "User-Agent": USER_AGENT,
    }
    if secret:
        timestamp = job.claimed_at // 1_000_000
        out["Webhook-Timestamp"] = str(timestamp)
        out["Webhook-Signature"] = standard.sign(secret, webhook_id, timestamp, body)
    return out


class Doorbell:
    """Wakes the dispatcher's event loop; ``set()`` is safe from any thread."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._event: asyncio.Event | None = None

    def attach(self) -> None:
        self._loop, self._event = asyncio.get_running_loop(), asyncio.Event()

    def detach(self) -> None:
        self._loop = self._event = None

    def set(self) -> None:
        loop, event = self._loop, self._event
        if loop is None or event is None:
            return  # nobody is listening; the next loop polls anyway
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(event.set)

    def clear(self) -> None:
        if self._event is not None:
            self._event.clear()

    async def wait(self, timeout: float | None) -> None:
        assert self._event is not None, "attach() first"
        with anyio.move_on_after(timeout):
            await self._event.wait()


@dataclass(frozen=True, slots=True)
class DeliveryConfig:
    """How webhooks are delivered (docs/webhooks.md; ``PAYOUT131_WEBHOOK_*`` in ``Settings``,
    where the defaults are)."""

    schedule: tuple[float, ...]  # the retry schedule
    jitter: float
    horizon_s: float
    timeout_s: float  # per attempt
    concurrency: int  # deliveries at once, in all
    per_endpoint: int  # deliveries at once to one project
    lease_s: float
    poll_s: float
    gather_s: float  # benchmarks: a pause after a busy round (fewer, bigger claims)
    test_hang_after_send: bool  # a test hook: see docs/webhooks.md


class Dispatcher:
    """Delivers due webhook events; ``run`` forever, or ``drain`` until nothing is due."""

    def __init__(
        self,
        *,
        db: Database,
        group_commit: GroupCommit,
        clock: Clock,
        vault: Vault,
        signer: BankSigner,
        config: DeliveryConfig,
        owner: str | None = None,
        sender: Callable[[int], Sender] = PlainHttpSender,  # benchmarks: httpx for https
        on_clocks: bool = False,
        clocks: bool = True,
    ) -> None:
        self.on_clocks = on_clocks  # sandbox: the events of projects on test clocks
        self.clocks = clocks  # sandbox mode: projects may be on test clocks
        self.db, self.group_commit, self.clock = db, group_commit, clock
        self.vault, self.signer, self.config = vault, signer, config
        self.log = logs.get("payout131.webhooks")
        self.owner = owner or f"{os.getpid()}-{secrets.token_hex(4)}"
        self.schedule = Schedule(config.schedule, config.jitter, config.horizon_s)
        self.wakeup = Doorbell()
        self.stats = DeliveryStats()
        self._make_sender = sender
        self._random = random.Random()  # noqa: S311 (jitter, not cryptography)
        self._in_flight: Counter[str] = Counter()
        self._writers = anyio.CapacityLimiter(1)
        self._recorder = Recorder(self._record, self._writers)
        self._recording = 0  # deliveries answered, their outcome not yet written
        self._settled = 0  # outcomes written so far: one written during a claim may free more

    async def run(self) -> None:
        """Deliver forever (the server's lifespan and ``payout131 worker`` run this)."""
        await self._pump(forever=True)

    def drain(self) -> int:
        """Deliver until nothing is due and nothing is in flight; the number of attempts."""
        return anyio.run(self._pump, False)

    async def _pump(self, forever: bool) -> int:
        conf = self.config
        sender = self._make_sender(conf.concurrency)
        # SQLite has one writer at a time: queue this process's writes here rather than in
        # SQLite's busy handler, which sleeps for milliseconds between tries.
        self._writers = anyio.CapacityLimiter(self.db.writers)
        self._recorder = Recorder(self._record, self._writers)
        self.wakeup.attach()
        attempts = 0
        try:
            async with anyio.create_task_group() as tasks:
                while True:
                    self.wakeup.clear()
                    room = conf.concurrency - sum(self._in_flight.values())
                    # a claim made while deliveries ran may have skipped their busy projects
                    constrained = bool(self._in_flight)
                    settled = self._settled
                    try:
                        jobs = await self._claim(room) if room > 0 else []
                    except Exception as exc:  # the database may be back at the next poll
                        if not forever:
                            raise
                        log_failure(log, exc, "claiming webhook events failed; trying again")
                        jobs = []
                    for job, prepared in jobs:
                        self._in_flight[job.project_id] += 1
                        tasks.start_soon(self._deliver, sender, job, prepared)
                    attempts += len(jobs)
                    if not (forever or jobs or self._in_flight or self._recording or constrained):
                        if self._settled == settled:
                            break
                        continue  # an outcome written during the claim may have freed an event
                    if not jobs or len(jobs) == room:
                        await self.wakeup.wait(conf.poll_s if forever else None)
                    if forever and conf.gather_s > 0:  # benchmarks: fewer, bigger claims
                        await anyio.sleep(conf.gather_s)
        finally:
            self.wakeup.detach()
            with anyio.CancelScope(shield=True):
                await sender.aclose()
        return attempts

    async def _claim(self, room: int) -> list[tuple[Job, Prepared]]:
        """Lease up to ``room`` due events; each with its bytes and signature ready (or why
        they could not be made), prepared in the same trip to a worker thread."""
        in_flight = dict(self._in_flight)
        conf, clock = self.config, self.clock

        def claim(conn: Connection) -> list[Job]:
            now = clock.now()
            lease_until = now + round(conf.lease_s * 1_000_000)
            return outbox.claim(
                conn,
                self.owner,
                now,
                lease_until,
                room,
                in_flight,
                conf.per_endpoint,
                self.on_clocks,
                self.clocks,
            )

        # signed after the commit: nothing signed is lost to it
        return await self.group_commit.beside_async(claim, self._prepare_all, self._writers)

    async def _deliver(self, sender: Sender, job: Job, prepared: Prepared) -> None:
        conf = self.config
        freed = False
        try:
            if isinstance(prepared, Exception):  # e.g. a sealed body whose vault key is gone
                outcome = Outcome(None, f"prepare: {prepared}", "", 0)
            else:
                outcome = await self._send(sender, job, *prepared)
                if outcome.ok and conf.test_hang_after_send:
                    await anyio.sleep_forever()  # test hook: "sent, never recorded"; see docs
            # benchmarks: the endpoint is free once answered; the outcome is written in a
            # batch meanwhile (the event stays leased, and blocks its session's next event,
            # until it is)
            freed = self._free(job)
            self._recording += 1
            try:
                status = await self._recorder.record(job, outcome)
            finally:
                self._recording -= 1
                self._settled += 1
            self.stats.observe(outcome, status)
            self._log(job, outcome, status)
        except Exception as exc:  # noqa: BLE001 (logged; the lease expires, it is sent again)
            message = "evt_%s: delivery attempt %s failed unexpectedly"
            log_failure(log, exc, message, job.event_id, job.attempt)
        finally:
            if not freed:
                self._free(job)
            self.wakeup.set()

    async def _send(
        self, sender: Sender, job: Job, body: bytes, signature: str, secret: str | None
    ) -> Outcome:
        """One attempt's outcome: whatever goes wrong while sending (a URL the sender cannot
        use, say) is a failed attempt like any other, recorded and retried on the schedule
        until the event is dead, never a loop of unrecorded tries."""
        self.stats.sending(job)
        started = time.monotonic()
        try:
            return await sender.post(
                job.url, body, headers(job, body, signature, secret), self.config.timeout_s
            )
        except Exception as exc:  # noqa: BLE001 (an attempt that failed: recorded as such)
            took = round((time.monotonic() - started) * 1_000_000)
            return Outcome(None, f"send: {type(exc).__name__}: {exc}", "", took)

    def _free(self, job: Job) -> bool:
        """Count the delivery out of its project's in-flight requests."""
        self._in_flight[job.project_id] -= 1
        if self._in_flight[job.project_id] <= 0:
            del self._in_flight[job.project_id]
        self.wakeup.set()
        return True

    def _prepare_all(self, jobs: list[Job]) -> list[tuple[Job, Prepared]]:
        """Each job with the exact bytes to send (opened if sealed) and their signature, or
        the error that stopped it: in a worker thread (benchmarks: one trip per claim)."""
        out: list[tuple[Job, Prepared]] = []
        for job in jobs:
            try:
                body = events.open_body(
                    self.vault,
                    job.body,
                    job.body_key_id,
                    job.project_id,
                    job.session_n,
                    job.type,
                )
                sealed = job.webhook_secret
                secret = None
                if sealed is not None:
                    secret = standard.open_secret(self.vault, job.project_id, sealed)
                out.append((job, (body, self.signer.sign(body), secret)))
            except Exception as exc:  # this job fails alone (see _deliver)
                log.exception("evt_%s: could not prepare the request", job.event_id)
                out.append((job, exc))
        return out

    def _record(self, outcomes: Sequence[tuple[Job, Outcome]]) -> list[str | None]:
        # benchmarks: every outcome waiting, in one job of the group commit
        uniforms = [self._random.random() for _ in outcomes]
        return self.group_commit.call(
            lambda conn: outbox.record(
                conn, outcomes, self.owner, self.clock.now(), self.schedule, uniforms
            )
        )

    def _log(self, job: Job, outcome: Outcome, status: str | None) -> None:
        """``webhook.delivered``, or ``webhook.failed`` with the event's status now
        (``failed``: retried later; ``dead``: no more attempts)."""
        fields = {
            "event_id": f"evt_{job.event_id}",
            "type": job.type,
            "project": job.project_id,
            "session": session_id(job.session_n),
            "attempt": job.attempt,
            "url": job.url.partition("?")[0],  # a query may carry the partner's secrets
            "http_status": outcome.http_status,
            "latency_ms": round(outcome.duration_us / 1000, 2),
        }
        if outcome.ok:
            self.log.info("webhook.delivered", **fields)
        else:
            line = self.log.error if status == "dead" else self.log.warning
            line("webhook.failed", **fields, error=outcome.error, status=status or "elsewhere")
