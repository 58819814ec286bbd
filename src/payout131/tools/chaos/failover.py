"""The failover test (``payout131 chaos --scenario failover``): payouts through a replicated
PostgreSQL whose primary keeps changing, then the same proof as the crash test.

A run starts a Patroni cluster of three nodes with synchronous replication
(``tools/patroni.py``), and ``servers`` processes of ``payout131 serve`` on one shared home
(as if on as many machines): the first reaches PostgreSQL through HAProxy, the second
through a multi-host URL with ``target_session_attrs=read-write``, and so on alternately.
Partners pay in both flows against all the servers (a call that gets no answer from one is
sent again, same idempotency key, to the next), and the receiver confirms two-step payouts
from their ``ready_to_confirm`` webhook. Meanwhile the harness fails the primary over again
and again, in turn: SIGKILL of its postmaster, a planned switchover, SIGKILL of its Patroni
(restarted once another node leads). Halfway through, one ``payout131 serve`` is killed
(SIGKILL) and kept down for a round: the others take over its leases.

When the load stops and the servers have caught up, ``verify`` proves from the partners'
record and the store, read on the newest primary: no acknowledged call lost, nothing done
twice, every event acknowledged in per-session order; then ``payout131 ledger check`` runs
there. For each failover it reports how long no write succeeded anywhere
(``unavailable_s``): the gap between the last call answered 200 before the fault and the
first after it. See docs/reliability.md.
"""

from __future__ import annotations

import asyncio
import bisect
import random
import shutil
import signal
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from payout131.cli.setup import initialise
from payout131.client import signing
from payout131.clock import SystemClock
from payout131.settings import Settings
from payout131.storage import Database
from payout131.tools.chaos.harness import SINGLE, TWO_STEP, caught_up, register, server_env
from payout131.tools.chaos.load import Load
from payout131.tools.chaos.processes import ServerProcess, count_in, ledger_check
from payout131.tools.chaos.receiver import Receiver
from payout131.tools.chaos.verify import Record, Verdict, verify
from payout131.tools.patroni import PatroniCluster
from payout131.tools.pgcluster import ClusterError

__all__ = ["ACTIONS", "Failover", "FailoverPlan", "FailoverReport", "run", "unavailable_spans"]

ACTIONS = ("kill-postmaster", "switchover", "kill-patroni")
WAYS_IN = ("haproxy", "multi-host")  # how the even and the odd servers reach PostgreSQL
QUICK_FAILOVERS = len(ACTIONS)  # --quick: one of each


@dataclass(frozen=True)
class FailoverPlan:
    failovers: int = 21
    seed: int = 0
    flows: int = 6  # concurrent two-step flows (half as many single-request flows)
    servers: int = 2
    workdir: Path | None = None
    pause: tuple[float, float] = (1.0, 3.0)  # seconds of steady load before each fault
    quiesce_s: float = 180.0


@dataclass
class Failover:
    """One fault and what it cost."""

    n: int
    action: str
    old: str  # the primary before
    new: str = ""  # the primary after
    at: float = 0.0  # wall clock, when the fault was made
    leader_after_s: float = 0.0  # until Patroni named the new primary
    healthy_after_s: float = 0.0  # until every node replicated again, one synchronously
    unavailable_s: float = 0.0  # the longest time no server answered a write 200
    unavailable_by_way_s: dict[str, float] = field(default_factory=dict)  # per way in


@dataclass
class FailoverReport:
    plan: FailoverPlan
    workdir: Path
    verdict: Verdict
    failovers: list[Failover] = field(default_factory=list)
    servers_killed: int = 0
    ledger_check_ok: bool = False
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.verdict.problems and not self.notes and self.ledger_check_ok

    def figures(self) -> dict[str, Any]:
        """What ``--json`` writes at its top level (docs/reliability.md)."""
        kinds = self.verdict.kinds
        return {
            "failovers": len(self.failovers),
            "acknowledged_lost": kinds["lost"],
            "double_executions": kinds["double"],
            "undelivered_events": kinds["undelivered"],
            "out_of_order_events": kinds["order"],
            "other_problems": kinds["other"],
            "ledger_check_ok": self.ledger_check_ok,
            "max_unavailable_s": max((f.unavailable_s for f in self.failovers), default=0.0),
            "servers_killed": self.servers_killed,
        }

    def as_dict(self) -> dict[str, Any]:
        return {
            "scenario": "failover",
            "seed": self.plan.seed,
            "servers": self.plan.servers,
            **self.figures(),
            "passed": self.passed,
            "seconds": round(self.seconds, 1),
            "each_failover": [asdict(f) for f in self.failovers],
            "checks": dict(sorted(self.verdict.figures.items())),
            "problems": self.notes + self.verdict.problems,
            "workdir": str(self.workdir),
        }


def run(plan: FailoverPlan, echo: Callable[[str], None] = print) -> FailoverReport:
    """Run ``plan`` to the end and return what it proved (or failed to)."""
    if plan.failovers < 1 or plan.servers < 2:
        raise ValueError("a failover run needs at least 1 failover and 2 servers")
    workdir = plan.workdir or Path(tempfile.mkdtemp(prefix="payout131-failover-"))
    workdir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    echo(f"chaos: seed {plan.seed}, failover x{plan.failovers}, {plan.servers} servers")
    previous = signal.signal(signal.SIGTERM, _terminated)  # ends it as an error does
    cluster = PatroniCluster()
    report: FailoverReport | None = None
    try:
        cluster.start()
        echo(f"chaos: Patroni cluster up, primary {cluster.leader()}")
        report = asyncio.run(_Run(plan, workdir, cluster, echo).go())
    except ClusterError as exc:
        first = str(exc).splitlines()[0]
        raise ClusterError(f"{first} (the cluster's logs are kept in {workdir})") from exc
    finally:
        if report is None or not report.passed or plan.workdir is not None:
            _keep(cluster, workdir)
        cluster.destroy()
        signal.signal(signal.SIGTERM, previous)
    report.seconds = time.monotonic() - started
    if report.passed and plan.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)
    return report


def _terminated(_signal: int, _frame: object) -> None:
    raise SystemExit(128 + signal.SIGTERM)


def _keep(cluster: PatroniCluster, workdir: Path) -> None:
    """Copy the cluster's logs (not its data) into the run's directory."""
    for log in cluster.root.glob("*.log"):
        shutil.copy(log, workdir / f"cluster-{log.name}")


def unavailable_spans(successes: list[float], faults: list[float], end: float) -> list[float]:
    """For each fault (wall-clock times, ascending), the longest time without a success
    from the last success before it until the next fault (or ``end``)."""
    spans = []
    bounds = [*faults[1:], end]
    for fault, until in zip(faults, bounds, strict=True):
        i = bisect.bisect_left(successes, fault)
        last = successes[i - 1] if i > 0 else fault
        longest, j = 0.0, i
        while j < len(successes) and successes[j] <= until:
            longest = max(longest, successes[j] - last)
            last = successes[j]
            j += 1
        if j == i:  # nothing succeeded before the next fault (or the end of the load)
            longest = until - last
        spans.append(round(longest, 3))
    return spans


class _Run:
    def __init__(
        self,
        plan: FailoverPlan,
        workdir: Path,
        cluster: PatroniCluster,
        echo: Callable[[str], None],
    ) -> None:
        self.plan, self.workdir, self.cluster, self.echo = plan, workdir, cluster, echo
        self.home = workdir / "home"
        self.report = FailoverReport(plan, workdir, Verdict())
        self.rng = random.Random(f"{plan.seed}:failover")  # noqa: S311 (a test plan)
        self.end = 0.0  # wall clock, when the load stopped
        self.ways: list[str] = []  # each server's way in to PostgreSQL
        self.killed_round = 0  # the failover during which the last server was down

    async def go(self) -> FailoverReport:
        plan, cluster = self.plan, self.cluster
        url = cluster.url()
        initialise(Settings(home=self.home, database_url=url), demo=False)
        bank_key = signing.load_public_key((self.home / "bank-public.pem").read_bytes())
        receiver = Receiver(bank_key, random.Random(f"{plan.seed}:receiver"))  # noqa: S311
        ways_in = (url, cluster.multi_host_url())  # WAYS_IN
        servers = [
            ServerProcess(self._env(ways_in[n % 2]), self.workdir / f"serve-{n}.log")
            for n in range(plan.servers)
        ]
        self.ways = [WAYS_IN[n % 2] for n in range(plan.servers)]
        async with receiver.listening() as hook:
            partners, opening, _ = register(url, hook, clocked=False)
            load = Load([s.url for s in servers], partners, plan.seed)
            try:
                for server in servers:
                    await asyncio.to_thread(server.start)
                caught_up_at = await self._load(load, servers, receiver)
            finally:
                for server in servers:
                    await asyncio.to_thread(server.stop)
        db = Database(url)
        try:
            record = Record(load.answers, receiver.deliveries, opening, [TWO_STEP])
            record.save(self.workdir / "record.json")
            self.report.verdict = verify(db, record, caught_up_at)
        finally:
            db.dispose()
        self._ledger_check(url)
        figures = self.report.verdict.figures
        figures["webhooks with a bad signature"] = receiver.forged
        if receiver.forged:
            self.report.notes.append(f"{receiver.forged} webhooks failed verification")
        figures["server starts"] = sum(s.starts for s in servers)
        # an outage is expected: the servers log it in one line each time, no traceback
        tracebacks = sum(count_in(s.log, "Traceback") for s in servers)
        figures["tracebacks in the server logs"] = tracebacks
        if tracebacks:  # an outage is expected, and logged in one line: this is a defect
            self.report.notes.append(f"{tracebacks} tracebacks in the servers' logs")
        if figures["calls in doubt"]:
            self.report.notes.append(f"{figures['calls in doubt']} calls never answered")
        self._spans(load)
        return self.report

    async def _load(self, load: Load, servers: list[ServerProcess], receiver: Receiver) -> int:
        plan = self.plan
        await load.tokenize()
        stop = asyncio.Event()
        flows = [
            asyncio.create_task(load.flow(load.partners[TWO_STEP], n, stop))
            for n in range(plan.flows)
        ] + [
            asyncio.create_task(load.flow(load.partners[SINGLE], plan.flows + n, stop))
            for n in range(max(1, plan.flows // 2))
        ]
        deciders = [asyncio.create_task(load.decide(receiver.ready)) for _ in range(4)]
        try:
            await self._fail_over_repeatedly(load, servers)
            stop.set()
            await asyncio.gather(*flows)
            self.end = time.time()
            return await self._quiesce(servers, receiver, load)
        finally:
            stop.set()
            for task in deciders:
                task.cancel()
            await asyncio.gather(*deciders, *flows, return_exceptions=True)

    async def _fail_over_repeatedly(self, load: Load, servers: list[ServerProcess]) -> None:
        plan = self.plan
        victim = servers[-1]
        kill_at = max(1, (plan.failovers + 1) // 2)  # the round before which a server dies
        for n in range(1, plan.failovers + 1):
            await asyncio.sleep(self.rng.uniform(*plan.pause))
            if n == kill_at:
                self.killed_round = n
                victim.kill()
                self.report.servers_killed += 1
                self.echo(f"chaos: killed payout131 serve on port {victim.port}")
            failover = await asyncio.to_thread(self._fail_over, n, ACTIONS[(n - 1) % len(ACTIONS)])
            self.report.failovers.append(failover)
            self.echo(
                f"chaos: failover {n} ({failover.action}) {failover.old} -> {failover.new}: "
                f"leader in {failover.leader_after_s:.1f} s, healthy in "
                f"{failover.healthy_after_s:.1f} s"
            )
            if not victim.alive:  # down for one failover: back, and the others carried on
                await asyncio.to_thread(victim.start)
            await self._probe(load, servers, n)

    def _fail_over(self, n: int, action: str) -> Failover:
        cluster = self.cluster
        old = cluster.leader()
        if old is None:
            cluster.wait_healthy()
            old = cluster.leader()
            assert old is not None
        failover = Failover(n, action, old, at=time.time())
        started = time.monotonic()
        if action == "kill-postmaster":
            cluster.kill_postmaster(old)
        elif action == "switchover":
            cluster.switchover(old)
        else:
            cluster.kill_patroni(old)
        failover.new = cluster.wait_new_leader(old)
        failover.leader_after_s = round(time.monotonic() - started, 2)
        if action == "kill-patroni":
            cluster.restart_patroni(old)  # it demotes the PostgreSQL left running
        cluster.wait_healthy()
        failover.healthy_after_s = round(time.monotonic() - started, 2)
        return failover

    async def _quiesce(self, servers: list[ServerProcess], receiver: Receiver, load: Load) -> int:
        """Wait until no payout step is due and every event is delivered and every
        ``ready_to_confirm`` decided; the time (microseconds) at which that was seen."""
        deadline = time.monotonic() + self.plan.quiesce_s
        db = Database(self.cluster.url())
        try:
            while time.monotonic() < deadline:
                for server in servers:
                    if not server.alive:
                        self.report.notes.append(f"payout131 serve on {server.port} died")
                        await asyncio.to_thread(server.start)
                idle = receiver.ready.empty() and load.deciding == 0
                checked_at = SystemClock().now()
                if idle and await asyncio.to_thread(caught_up, db, checked_at):
                    return checked_at
                await asyncio.sleep(0.25)
            self.report.notes.append(f"the servers had not caught up {self.plan.quiesce_s:g} s on")
            return SystemClock().now()
        finally:
            db.dispose()

    async def _probe(self, load: Load, servers: list[ServerProcess], n: int) -> None:
        """Every live server must take a write on its own once the cluster is healthy
        (the load's retries move to another server, which would hide one that never
        reconnects)."""
        partner = load.partners[TWO_STEP]
        async with httpx.AsyncClient(timeout=30) as http:
            for i, server in enumerate(servers):
                if not server.alive:
                    continue
                key = f"probe-{n}-{i}"
                body = {"metadata": {"chaos": key}}
                answer = await load.call(http, partner, "session/create", body, key, i, stay=True)
                if answer.status != 200:
                    self.report.notes.append(
                        f"after failover {n}, the server on {server.port} "
                        f"({self.ways[i]}) took no write: {answer.status} {answer.response}"
                    )

    def _spans(self, load: Load) -> None:
        """How long writes stopped (``unavailable_spans``): anywhere, and through each way
        in (the servers of one way together; a server killed for a round does not count
        for that round)."""
        faults = [f.at for f in self.report.failovers]
        answered = [a for a in load.answers if a.status == 200]
        spans = unavailable_spans(sorted(a.at for a in answered), faults, self.end)
        for failover, span in zip(self.report.failovers, spans, strict=True):
            failover.unavailable_s = span
        for way in dict.fromkeys(self.ways):
            mine = {i for i, w in enumerate(self.ways) if w == way}
            times = sorted(a.at for a in answered if a.server in mine)
            spans = unavailable_spans(times, faults, self.end)
            for failover, span in zip(self.report.failovers, spans, strict=True):
                if not (failover.n == self.killed_round and self.ways[-1] == way):
                    failover.unavailable_by_way_s[way] = span

    def _env(self, url: str) -> dict[str, str]:
        return server_env(self.home, url)

    def _ledger_check(self, url: str) -> None:
        status, output = ledger_check(self._env(url))
        self.report.ledger_check_ok = status == 0
        if status != 0:
            self.report.notes.append(f"payout131 ledger check: {output}")
