"""One crash-test run: set up, load, crash and restart, let the server catch up, verify.

``Plan`` says what to do (engine, mode, number of crashes, seed, load); ``run`` does it and
returns a ``Report`` with the verdict and the figures. Modes: ``kill`` sends SIGKILL to
``payout131 serve`` at random moments and restarts it; ``pg-stop`` stops PostgreSQL with
``pg_ctl stop -m immediate`` at random moments and starts it again while the server keeps
running. Everything random is drawn from generators seeded by ``Plan.seed``: the moments
of the crashes, the amounts, the cancels and the receiver's failures (the interleaving of
concurrent requests is the operating system's, so a rerun repeats the plan, not every
instruction).

A third partner runs on a test clock (docs/sandbox.md): it pays single-request payouts
while its clock is advanced every half second, so the crashes also fall in the middle of
advances; at the end its clock is advanced past every step and the proof checks its
payouts and webhooks at the clock's time.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric import rsa

from payout131 import projects
from payout131.cli.setup import initialise
from payout131.client import signing
from payout131.clock import SystemClock
from payout131.ledger import accounts, book
from payout131.ledger.accounts import wallet_code
from payout131.sandbox import clocks
from payout131.settings import Settings
from payout131.storage import Database
from payout131.storage import schema as t
from payout131.tools.chaos.load import Load, Partner
from payout131.tools.chaos.processes import PostgresCluster, ServerProcess, count_in, ledger_check
from payout131.tools.chaos.receiver import Receiver
from payout131.tools.chaos.verify import Record, Verdict, verify

__all__ = [
    "CLOCKED",
    "SINGLE",
    "TWO_STEP",
    "Plan",
    "Report",
    "caught_up",
    "register",
    "run",
    "server_env",
]

TWO_STEP, SINGLE, CLOCKED = "chaos-two-step", "chaos-single", "chaos-clocked"
ADVANCE_EVERY_S = 0.5  # how often the clocked partner moves its clock during the run
ADVANCE_BY = "10m"
FINAL_ADVANCE = "2h"  # past every step the load's amounts have (the longest: 1 h)
FUNDS = 10**12  # kopecks: the two-step partner never runs short
SINGLE_WALLET = 3_000_000  # the single-request partner's wallet runs out: refusals happen
SERVER_ENV = {
    "PAYOUT131_LEASE_S": "2",  # a dead worker's payouts are taken over after 2 s
    "PAYOUT131_WEBHOOK_SCHEDULE": ",".join(["0", "0.2s", "0.5s"] + ["1s"] * 40),
    "PAYOUT131_WEBHOOK_TIMEOUT": "2s",
    "PAYOUT131_WEBHOOK_LEASE": "4s",
    "PAYOUT131_WEBHOOK_POLL": "0.2s",
    "PAYOUT131_WEBHOOK_HORIZON": "1h",
    "PAYOUT131_SIM_LATENCY_MS": "20",  # some payouts are still at the rail when it dies
    "PAYOUT131_SIM_SPREAD_MS": "300",
}


@dataclass(frozen=True)
class Plan:
    engine: str = "sqlite"  # sqlite | postgresql
    mode: str = "kill"  # kill | pg-stop
    crashes: int = 30
    seed: int = 0
    database_url: str | None = None  # an empty database to use (kill mode); else made here
    workdir: Path | None = None
    flows: int = 6  # concurrent two-step flows (half as many single-request flows)
    pause: tuple[float, float] = (0.3, 1.5)  # seconds of uptime between crashes
    quiesce_s: float = 180.0


@dataclass
class Report:
    plan: Plan
    workdir: Path
    verdict: Verdict
    crashes: int = 0
    restarts: int = 0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.verdict.problems and not self.notes

    def as_dict(self) -> dict[str, Any]:
        return {
            "engine": self.plan.engine,
            "mode": self.plan.mode,
            "seed": self.plan.seed,
            "crashes": self.crashes,
            "restarts": self.restarts,
            "seconds": round(self.seconds, 1),
            "passed": self.passed,
            "figures": dict(sorted(self.verdict.figures.items())),
            "problems": self.notes + self.verdict.problems,
            "workdir": str(self.workdir),
        }


def run(plan: Plan, echo: Callable[[str], None] = print) -> Report:
    """Run ``plan`` to the end and return what it proved (or failed to)."""
    if plan.mode not in ("kill", "pg-stop"):
        raise ValueError(f"mode: {plan.mode!r} is not kill or pg-stop")
    if plan.engine not in ("sqlite", "postgresql"):
        raise ValueError(f"engine: {plan.engine!r} is not sqlite or postgresql")
    if plan.mode == "pg-stop" and plan.engine != "postgresql":
        raise ValueError("mode pg-stop needs the postgresql engine")
    workdir = plan.workdir or Path(tempfile.mkdtemp(prefix="payout131-chaos-"))
    workdir.mkdir(parents=True, exist_ok=True)
    cluster = None
    if plan.engine == "postgresql" and (plan.mode == "pg-stop" or not plan.database_url):
        cluster = PostgresCluster()
        cluster.create()
    try:
        if cluster is not None:
            url = cluster.url()
        elif plan.engine == "sqlite":
            url = f"sqlite:///{workdir / 'payout131.db'}"
        else:
            assert plan.database_url is not None
            url = plan.database_url
        return asyncio.run(_Run(plan, workdir, url, cluster, echo).go())
    finally:
        if cluster is not None:
            cluster.destroy()


class _Run:
    def __init__(
        self,
        plan: Plan,
        workdir: Path,
        url: str,
        cluster: PostgresCluster | None,
        echo: Callable[[str], None],
    ) -> None:
        self.plan, self.workdir, self.url = plan, workdir, url
        self.cluster, self.echo = cluster, echo
        self.home = workdir / "home"
        self.report = Report(plan, workdir, Verdict())
        self.opening: dict[str, int] = {}
        self.clock = 0  # the clocked partner's test clock
        self.advances = 0  # advances the server answered 200

    async def go(self) -> Report:
        plan, started = self.plan, time.monotonic()
        self.echo(f"chaos: seed {plan.seed}, {plan.engine}, {plan.mode} x{plan.crashes}")
        initialise(Settings(home=self.home, database_url=self.url), demo=False)
        bank_key = signing.load_public_key((self.home / "bank-public.pem").read_bytes())
        receiver = Receiver(bank_key, random.Random(f"{plan.seed}:receiver"))  # noqa: S311
        async with receiver.listening() as hook:
            partners, self.opening, clock_n = register(self.url, hook, clocked=True)
            assert clock_n is not None
            self.clock = clock_n
            caught_up_at, moved, load, server = await self._load(partners, receiver)
        db = Database(self.url)
        try:
            with db.read() as conn:
                clock = clocks.get(conn, self.clock)
            # work due later than the moment the server was seen caught up is not missed
            # work; for the clocked partner, that moment is its clock's time
            record = Record(
                load.answers,
                receiver.deliveries,
                self.opening,
                [TWO_STEP],
                {CLOCKED: clock.frozen_time},
            )
            record.save(self.workdir / "record.json")
            self.report.verdict = verify(db, record, caught_up_at)
        finally:
            db.dispose()
        figures = self.report.verdict.figures
        figures["test clock advances answered"] = self.advances
        figures["test clock ms moved during the crashes"] = moved
        figures["test clock hours moved"] = (clock.frozen_time - clock.created_at) // 3_600_000_000
        if clock.status != "ready":
            self.report.notes.append(f"the test clock ended {clock.status}: {clock.failure}")
        self._ledger_check()
        figures["webhooks with a bad signature"] = receiver.forged
        if receiver.forged:
            self.report.notes.append(f"{receiver.forged} webhooks failed verification")
        figures["server starts"] = server.starts
        figures["tracebacks in the server log"] = count_in(server.log, "Traceback")
        self.report.restarts = server.starts - 1
        self.report.seconds = time.monotonic() - started
        if self.report.passed and self.plan.workdir is None:
            shutil.rmtree(self.workdir, ignore_errors=True)
        return self.report

    async def _load(
        self, partners: dict[str, Partner], receiver: Receiver
    ) -> tuple[int, int, Load, ServerProcess]:
        """Serve, load and crash, then wait until caught up: the moment it was seen caught
        up, the milliseconds the clock moved during the crashes, the load, the server."""
        plan = self.plan
        server = ServerProcess(self._env(), self.workdir / "serve.log")
        await asyncio.to_thread(server.start)
        load = Load([server.url], partners, plan.seed)
        await load.tokenize()
        stop = asyncio.Event()
        flows = (
            [asyncio.create_task(load.flow(partners[TWO_STEP], n, stop)) for n in range(plan.flows)]
            + [
                asyncio.create_task(load.flow(partners[SINGLE], plan.flows + n, stop))
                for n in range(max(1, plan.flows // 2))
            ]
            + [
                asyncio.create_task(load.flow(partners[CLOCKED], 2 * plan.flows + n, stop))
                for n in range(max(1, plan.flows // 3))
            ]
        )
        flows.append(asyncio.create_task(self._advance_repeatedly(server, partners, stop)))
        deciders = [asyncio.create_task(load.decide(receiver.ready)) for _ in range(4)]
        try:
            await self._crash_repeatedly(server)
            stop.set()
            moved = await asyncio.to_thread(self._clock_moved)
            await asyncio.gather(*flows)
            caught_up_at = await self._quiesce(server, receiver, load)
        finally:
            stop.set()
            for task in deciders:
                task.cancel()
            await asyncio.gather(*deciders, return_exceptions=True)
            await asyncio.to_thread(server.stop)
        return caught_up_at, moved, load, server

    def _env(self) -> dict[str, str]:
        return server_env(self.home, self.url)

    async def _crash_repeatedly(self, server: ServerProcess) -> None:
        plan = self.plan
        rng = random.Random(f"{plan.seed}:crashes")  # noqa: S311 (a test plan)
        for n in range(1, plan.crashes + 1):
            await asyncio.sleep(rng.uniform(*plan.pause))
            if plan.mode == "kill":
                server.kill()
                await asyncio.to_thread(server.start)
            else:
                assert self.cluster is not None
                await asyncio.to_thread(self.cluster.crash)
                await asyncio.sleep(rng.uniform(0.1, 1.0))
                await asyncio.to_thread(self.cluster.start)
                if not server.alive:
                    self.report.notes.append(f"the server died while PostgreSQL was down ({n})")
                    await asyncio.to_thread(server.start)
            self.report.crashes = n
            if n % 10 == 0:
                self.echo(f"chaos: {n} crashes")

    def _clock_moved(self) -> int:
        """Milliseconds the test clock has moved so far: it stops at every due time on the
        way, and the simulator's latency (20 to 320 ms) and the webhook retries (0.2 s to
        1 s) make one every few milliseconds while the partner pays."""
        db = Database(self.url)
        try:
            with db.read() as conn:
                clock = clocks.get(conn, self.clock)
        finally:
            db.dispose()
        return (clock.frozen_time - clock.created_at) // 1_000

    async def _advance_repeatedly(
        self, server: ServerProcess, partners: dict[str, Partner], stop: asyncio.Event
    ) -> None:
        """The clocked partner moves its clock every ``ADVANCE_EVERY_S`` until ``stop``."""
        async with httpx.AsyncClient(timeout=30) as http:
            while not stop.is_set():
                await asyncio.sleep(ADVANCE_EVERY_S)
                await self._advance(http, server, partners[CLOCKED], {"by": ADVANCE_BY})

    async def _advance(
        self, http: httpx.AsyncClient, server: ServerProcess, partner: Partner, ask: dict[str, Any]
    ) -> bool:
        """One ``clock/advance`` call that does not wait; False if it got no 200 (the server
        may be down: it is not sent again, an advance is not idempotent)."""
        raw = json.dumps({**ask, "wait": False}).encode()
        headers = {
            "Content-Type": "application/json",
            "X-PARTNER-PROJECT": partner.project,
            "X-PARTNER-SIGN": signing.sign(partner.key, raw),
        }
        try:
            answer = await http.post(
                f"{server.url}/api/sandbox/clock/advance", content=raw, headers=headers
            )
        except httpx.TransportError:
            return False
        self.advances += answer.status_code == 200
        return answer.status_code == 200

    async def _quiesce(self, server: ServerProcess, receiver: Receiver, load: Load) -> int:
        """Wait until no payout step is due, every event is delivered and every
        ``ready_to_confirm`` decided, the test clock moved past every step of its partner;
        the time (microseconds) at which that was seen."""
        deadline = time.monotonic() + self.plan.quiesce_s
        db = Database(self.url)
        clocked = load.partners[CLOCKED]
        final = False
        try:
            async with httpx.AsyncClient(timeout=30) as http:
                while time.monotonic() < deadline:
                    if not server.alive:
                        self.report.notes.append("the server died after the crashes had stopped")
                        await asyncio.to_thread(server.start)
                    if not final:  # once: past every step the payouts were made with
                        final = await self._advance(http, server, clocked, {"by": FINAL_ADVANCE})
                    clock_state = await asyncio.to_thread(_clock_state, db, self.clock)
                    if final and clock_state == "more":  # a retry scheduled past its time
                        await self._advance(http, server, clocked, {"next": True})
                    idle = receiver.ready.empty() and load.deciding == 0
                    checked_at = SystemClock().now()
                    if (
                        final
                        and idle
                        and clock_state == "done"
                        and await asyncio.to_thread(caught_up, db, checked_at)
                    ):
                        return checked_at
                    await asyncio.sleep(0.25)
            self.report.notes.append(f"the server had not caught up {self.plan.quiesce_s:g} s on")
            return SystemClock().now()
        finally:
            db.dispose()

    def _ledger_check(self) -> None:
        status, output = ledger_check(self._env())
        self.report.verdict.figures["`payout131 ledger check` exit status"] = status
        if status != 0:
            self.report.notes.append(f"payout131 ledger check: {output}")


def server_env(home: Path, url: str) -> dict[str, str]:
    """The environment of a ``payout131 serve`` (or other command) of a run: ours without
    any PAYOUT131_ variable, then ``SERVER_ENV``, the home and the store."""
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("PAYOUT131_")}
    return inherited | SERVER_ENV | {"PAYOUT131_HOME": str(home), "PAYOUT131_DATABASE_URL": url}


def register(
    url: str, hook: str, *, clocked: bool
) -> tuple[dict[str, Partner], dict[str, int], int | None]:
    """The partners, with keys, funds and ``hook``/PROJECT as their webhook URL: the
    two-step one, the single-request one whose wallet runs out, and when ``clocked`` the
    one on a new test clock. Also each account's opening funds (by ledger code) and the
    clock's number."""
    partners: dict[str, Partner] = {}
    opening: dict[str, int] = {}
    db = Database(url)
    now = SystemClock().now()
    clock = None
    names = (TWO_STEP, SINGLE, CLOCKED) if clocked else (TWO_STEP, SINGLE)
    try:
        with db.write() as conn:
            for project in names:
                key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
                projects.add_project(
                    conn, project, signing.public_key_pem(key).decode(), now,
                    webhook_url=f"{hook}/{project}", single_request=project != TWO_STEP,
                    idempotency_mode="replay", legal_name=f'ООО "{project}"',
                    inn="7707083893", kpp="773601001",
                )  # fmt: skip
                number = accounts.open_settlement_account(conn, project, now)
                wallet = SINGLE_WALLET if project == SINGLE else FUNDS
                for code, funds in ((number, FUNDS), (wallet_code(project), wallet)):
                    account = accounts.account_id(conn, code)
                    assert account is not None
                    book.topup(conn, account, funds, now)
                    opening[code] = funds
                partners[project] = Partner(project, key, number, project != TWO_STEP)
            if clocked:
                clock = clocks.create(conn, "chaos", now, now).n
                clocks.bind(conn, CLOCKED, clock)
    finally:
        db.dispose()
    return partners, opening, clock


def _clock_state(db: Database, n: int) -> str:
    """``moving`` (advancing), ``more`` (ready, with steps due after its time: a webhook
    retry, say) or ``done`` (ready, nothing due on it)."""
    with db.read() as conn:
        clock = clocks.get(conn, n)
        if clock.status != "ready":
            return "moving"
        return "done" if clocks.next_due(conn, n) is None else "more"


def caught_up(db: Database, now: int) -> bool:
    """No payout step of a wall-time project due by ``now``, no webhook event waiting."""
    p, e, j = t.payouts, t.events, t.projects
    on_wall = sa.select(j.c.id).where(j.c.test_clock.is_(None))
    with db.read() as conn:
        due = conn.execute(
            sa.select(sa.func.count()).where(
                p.c.work.is_not(None), p.c.work_at <= now, p.c.project_id.in_(on_wall)
            )
        ).scalar_one()
        waiting = conn.execute(
            sa.select(sa.func.count()).where(e.c.status.in_(("pending", "failed")))
        ).scalar_one()
    return int(due) == 0 and int(waiting) == 0
