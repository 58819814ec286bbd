"""One benchmark run: per engine, a fresh home, a real server, the ceilings, every scenario.

For each engine the harness creates a temporary home (and, for PostgreSQL, a private
cluster with durable commits), registers the partners, starts ``payout131 serve`` as a
child process (workers included; or ``serve --no-worker`` beside ``payout131 worker`` with
``split_worker``), and measures, all on this machine in this run:

1. the HTTP ceiling: ``GET /health`` closed-loop at the same concurrencies (the best);
2. the storage ceiling: ``pgbench`` / a ``sqlite3`` loop (``ceilings.py``);
3. what each of those cost in CPU, and what the bank key's RSA signature costs: the
   attainable bound (``bound.py``);

then, with ``pin``, gives the server a CPU of its own and PostgreSQL and the load processes
the others (``affinity.py``; the ceilings ran on every CPU), and measures

4. optionally the cost at scale: single-request payouts at ``scale[0]`` stored sessions,
   then again after a bulk preload to ``scale[1]``;
5. each scenario closed-loop at each of ``concurrency`` (the best rate is the maximum: a
   closed loop with too few in flight measures its latency, not the server's capacity),
   then open loop at half the maximum (or ``rate``) for the latencies;
6. ``payout131 ledger check``.

Every load phase runs in a separate process (``load.py``) with its own webhook receiver.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import msgspec
import sqlalchemy as sa

from payout131.cli.setup import initialise
from payout131.settings import Settings
from payout131.storage import Database
from payout131.storage import schema as t
from payout131.tools.bench import affinity, bound, ceilings, partners
from payout131.tools.bench.cluster import DurableCluster
from payout131.tools.bench.load import Percentiles, Plan, Result, percentiles
from payout131.tools.bench.usage import Meter, busy_share, children, machine_cpu

__all__ = ["ENGINES", "SCENARIOS", "Options", "run"]

PAYOUT131 = Path(sys.executable).with_name("payout131")
ENGINES = ("sqlite", "postgresql")
SCENARIOS = (
    "single_request",
    "single_request_spread",
    "two_step",
    "two_step_spread",
    "status_read",
    "status_read_spread",
)
SPREAD_ACCOUNTS = 100
SERVER_ENV = {
    "PAYOUT131_SIM_LATENCY_MS": "0",  # the rail answers at once: it is not what is measured
    "PAYOUT131_SIM_SPREAD_MS": "0",
    # every payout of a scenario goes to one partner's endpoint, and the load process's
    # receiver takes many requests at once: at the default of 8 in flight per endpoint the
    # webhooks queued behind one another (benchmarks: docs/benchmarks.md, fourth round)
    "PAYOUT131_WEBHOOK_PER_ENDPOINT": "32",
    "PAYOUT131_WEBHOOK_SCHEDULE": "0,0.2s,0.5s,1s,2s,5s,10s",  # a straggler is not left for long
    # the server as it pays for real: no test clocks to serve, no outcomes to force, so a
    # paid session is final and its status answer kept (docs/benchmarks.md, eleventh round)
    "PAYOUT131_MODE": "production",
}


@dataclass(frozen=True)
class Options:
    engines: tuple[str, ...] = ENGINES
    scenarios: tuple[str, ...] = SCENARIOS
    duration_s: float = 10.0
    # closed loop: payouts in flight, each tried; the highest rate is the maximum
    concurrency: tuple[int, ...] = (64, 128)
    rate: float | None = None  # open-loop rate; default half the closed-loop maximum
    count: int = 1_000_000
    grace_s: float = 30.0
    preload: int = 0
    scale: tuple[int, int] | None = None  # (from, to) stored sessions
    split_worker: bool = False
    processes: int = 1  # serve --processes
    pin: bool = False  # after the ceilings: the server on one CPU, the rest on the others
    keep: bool = False
    workdir: Path | None = None
    quick: bool = False


@dataclass
class Phase:
    """One load phase's figures."""

    result: Result
    server_cpu_s: float
    db_cpu_s: float
    peak_rss: int
    delays_ms: Percentiles | None = None
    stored_sessions: int = 0
    busy_share: float = 0.0  # of the machine's available CPU time

    @property
    def all_cpu_s(self) -> float:
        """The server's, the database's and the load process's CPU."""
        return self.server_cpu_s + self.db_cpu_s + self.result.client_cpu_s

    @property
    def per_s(self) -> float:
        return self.result.per_s

    def per_payout_ms(self, cpu_s: float) -> float:
        """``cpu_s`` spread over the phase's completed operations, in milliseconds."""
        done = self.result.completed
        return round(cpu_s * 1000 / done, 3) if done else 0.0

    def cpu_ms(self, total: bool = False) -> float:
        """The server's CPU per payout; with ``total``, the database's added."""
        return self.per_payout_ms(self.server_cpu_s + (self.db_cpu_s if total else 0.0))


@dataclass
class EngineReport:
    engine: str
    ceilings: dict[str, Any] = field(default_factory=dict)
    scenarios: dict[str, dict[str, Any]] = field(default_factory=dict)
    scale: dict[str, Any] | None = None
    ledger_check: dict[str, Any] = field(default_factory=dict)
    postgres_version: str | None = None
    notes: list[str] = field(default_factory=list)
    cpus: dict[str, list[int]] | None = None  # the split the phases after the ceilings ran on


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def run(options: Options, echo: Callable[[str], None] = print) -> list[EngineReport]:
    reports = []
    root = options.workdir or Path(tempfile.mkdtemp(prefix="payout131-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        for engine in options.engines:
            echo(f"bench: {engine}")
            with _EngineRun(options, engine, root / engine, echo) as engine_run:
                reports.append(engine_run.go())
    finally:
        if not options.keep and options.workdir is None:
            shutil.rmtree(root, ignore_errors=True)
    return reports


class _EngineRun:
    def __init__(
        self, options: Options, engine: str, home: Path, echo: Callable[[str], None]
    ) -> None:
        self.options, self.engine, self.home, self.echo = options, engine, home, echo
        self.report = EngineReport(engine)
        self.cluster: DurableCluster | None = None
        self.processes: list[subprocess.Popen[bytes]] = []
        self.port = _free_port()
        self.receiver_port = _free_port()
        self.partners: dict[str, partners.BenchPartner] = {}
        self.url = ""
        self.db: Database | None = None
        self.split: affinity.Split | None = None

    def __enter__(self) -> _EngineRun:
        self.home.mkdir(parents=True, exist_ok=True)
        if self.engine == "postgresql":
            self.cluster = DurableCluster().__enter__()
            self.url = self.cluster.url()
            self.report.postgres_version = self.cluster.version()
        else:
            self.url = f"sqlite:///{self.home / 'payout131.db'}"
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop_server()
        if self.db is not None:
            self.db.dispose()
        if self.cluster is not None:
            self.cluster.__exit__(None, None, None)

    # -- set-up

    def _env(self) -> dict[str, str]:
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("PAYOUT131_")}
        return (
            inherited
            | SERVER_ENV
            | {
                "PAYOUT131_HOME": str(self.home),
                "PAYOUT131_DATABASE_URL": self.url,
            }
        )

    def _settings(self) -> Settings:
        return Settings(home=self.home, database_url=self.url)

    def _setup(self) -> None:
        with contextlib.redirect_stdout(None):
            initialise(self._settings(), demo=False)
        self.db = Database(self.url)
        hook = f"http://127.0.0.1:{self.receiver_port}/hook"
        wanted = {s.removesuffix("_spread") for s in self.options.scenarios}
        needs_single = bool(wanted & {"single_request", "status_read"}) or bool(
            self.options.scale or self.options.preload
        )
        specs = []
        if needs_single:
            specs += [("single_request", True, 1), ("single_request_spread", True, SPREAD_ACCOUNTS)]
        if "two_step" in wanted:
            specs += [("two_step", False, 1), ("two_step_spread", False, SPREAD_ACCOUNTS)]
        for name, single, n_accounts in specs:
            project = "bench-" + name.replace("_", "-")
            self.partners[name] = partners.register(
                self.db, self.home / "partners", project, single, n_accounts, hook
            )
        if self.options.preload:
            self.echo(f"bench: {self.engine}: preloading {self.options.preload} sessions")
            partners.preload(self.db, self.partners["single_request"], self.options.preload)
            partners.settle(self.db)

    def _start_server(self) -> None:
        log = (self.home / "server.log").open("ab")
        quiet = ["--no-access-log", "--log-level", "warning"]
        serve = [str(PAYOUT131), "serve", "--port", str(self.port), *quiet]
        if self.options.split_worker:
            serve.append("--no-worker")
        if self.options.processes > 1:
            serve += ["--processes", str(self.options.processes)]
        with log:
            self.processes.append(
                subprocess.Popen(serve, env=self._env(), stdout=log, stderr=subprocess.STDOUT)
            )
            if self.options.split_worker:
                worker = [str(PAYOUT131), "worker", "--log-level", "warning"]
                self.processes.append(
                    subprocess.Popen(worker, env=self._env(), stdout=log, stderr=subprocess.STDOUT)
                )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if any(p.poll() is not None for p in self.processes):
                raise RuntimeError(f"the server exited; see {self.home / 'server.log'}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"http://127.0.0.1:{self.port}/health", timeout=1).is_success:
                    return
            time.sleep(0.05)
        raise RuntimeError(f"the server did not answer within 60 s; see {self.home / 'server.log'}")

    def _stop_server(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.processes.clear()

    def _server_pids(self) -> list[int]:
        alive = [p.pid for p in self.processes if p.poll() is None]
        # serve --processes: uvicorn's supervisor and its server processes
        return alive + [child for pid in alive for child in children(pid)]

    def _db_pids(self) -> list[int]:
        if self.cluster is None:
            return []
        postmaster = self.cluster.postmaster_pid
        return [postmaster, *children(postmaster)]

    # -- phases

    def _phase(self, plan: Plan, lookup_delays: bool = False) -> Phase:
        assert self.db is not None
        stored = partners.stored_sessions(self.db)
        folder = self.home / "phases"
        folder.mkdir(exist_ok=True)
        plan_path = folder / f"plan-{time.monotonic_ns()}.json"
        result_path = plan_path.with_suffix(".result.json")
        plan_path.write_bytes(msgspec.json.encode(plan))
        load = subprocess.Popen(
            [sys.executable, "-m", "payout131.tools.bench.load", str(plan_path), str(result_path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert load.stdin is not None
        assert load.stdout is not None
        server, database = Meter(self._server_pids), Meter(self._db_pids)
        try:
            if load.stdout.readline().strip() != b"ready":
                raise RuntimeError("the load process did not start")
            if self.split is not None:
                affinity.pin([load.pid], self.split.others)
            server.start()
            database.start()
            machine = machine_cpu()
            load.stdin.write(b"go\n")
            load.stdin.flush()
            code = load.wait(plan.duration_s + plan.grace_s + 120)
            busy = busy_share(machine, machine_cpu())
        finally:
            if load.poll() is None:
                load.kill()
                load.wait()
            server_usage, db_usage = server.stop(), database.stop()
        if code != 0:
            raise RuntimeError(f"the load process failed with exit status {code}")
        result = msgspec.json.decode(result_path.read_bytes(), type=Result)
        phase = Phase(
            result,
            server_usage.cpu_s,
            db_usage.cpu_s,
            server_usage.peak_rss,
            stored_sessions=stored,
            busy_share=busy,
        )
        if lookup_delays and result.arrivals:
            phase.delays_ms = self._delays(result.arrivals)
        return phase

    def _delays(self, arrivals: list[tuple[int, int]]) -> Percentiles:
        """Commit to receipt: each webhook's arrival minus its event's commit stamp
        (``events.created_at``, the time the committing transaction stamped on it)."""
        assert self.db is not None
        received = dict(arrivals)
        stamps: dict[int, int] = {}
        ids = sorted(received)
        with self.db.read() as conn:
            for i in range(0, len(ids), 5000):
                chunk = ids[i : i + 5000]
                rows = conn.execute(
                    sa.select(t.events.c.id, t.events.c.created_at).where(t.events.c.id.in_(chunk))
                )
                stamps.update({int(r.id): int(r.created_at) for r in rows})
        return percentiles([(received[i] - stamps[i]) / 1000 for i in ids if i in stamps])

    def _plan(self, kind: str, **changes: Any) -> Plan:
        o = self.options
        plan = Plan(
            kind=kind,
            port=self.port,
            receiver_port=self.receiver_port,
            bank_key_path=str(self.home / "bank-public.pem"),
            concurrency=o.concurrency[0],
            count=o.count,
            duration_s=o.duration_s,
            grace_s=o.grace_s,
        )
        return msgspec.structs.replace(plan, **changes)

    def _partner_plan(self, scenario: str, **changes: Any) -> Plan:
        base = scenario.removesuffix("_spread")
        if base == "status_read":
            source = self.partners[scenario.replace("status_read", "single_request")]
            kind = "status"
            sessions = self._finished_sessions(source.project)
            return self._plan(
                kind,
                project=source.project,
                key_path=str(source.key_path),
                session_ids=sessions,
                **changes,
            )
        partner = self.partners[scenario]
        kind = "single" if base == "single_request" else "two_step"
        return self._plan(
            kind,
            project=partner.project,
            key_path=str(partner.key_path),
            accounts=partner.accounts,
            **changes,
        )

    def _finished_sessions(self, project: str, limit: int = 2000) -> list[str]:
        assert self.db is not None
        s = t.sessions
        with self.db.read() as conn:
            rows = conn.execute(
                sa.select(s.c.n)
                .where(s.c.project_id == project)
                .order_by(s.c.n.desc())
                .limit(limit)
            ).scalars()
            found = [f"ps_{n}" for n in rows]
        if not found:
            raise RuntimeError(f"status_read needs sessions of {project}: run its payouts first")
        return found

    # -- the run

    def go(self) -> EngineReport:
        o, echo = self.options, self.echo
        self._setup()
        self._start_server()
        try:
            self._ceilings()
            self._pin()
            if o.scale:
                self._scale(*o.scale)
            order = [s for s in SCENARIOS if s in o.scenarios]
            for scenario in order:
                if scenario.startswith("status_read") and not self._has_sessions(scenario):
                    self._warm(scenario)
                self.report.scenarios[scenario] = self._scenario(scenario)
                figures = self.report.scenarios[scenario]
                echo(
                    f"bench: {self.engine} {scenario}: {figures['payouts_per_s']}/s, "
                    f"errors {figures['errors']}, load {_load()}"
                )
        finally:
            self._stop_server()
        self._ledger_check()
        return self.report

    def _has_sessions(self, scenario: str) -> bool:
        source = self.partners[scenario.replace("status_read", "single_request")]
        assert self.db is not None
        with self.db.read() as conn:
            found = conn.execute(
                sa.select(t.sessions.c.n).where(t.sessions.c.project_id == source.project).limit(1)
            ).first()
        return found is not None

    def _warm(self, scenario: str) -> None:
        """Sessions for the status reads, when the payout scenario was not run."""
        source = scenario.replace("status_read", "single_request")
        self._phase(self._partner_plan(source, duration_s=1.0, concurrency=8))

    def _pin(self) -> None:
        """Give the server a CPU of its own, PostgreSQL and the load process the others
        (the ceilings before ran on every CPU: they are the machine's)."""
        o = self.options
        if not o.pin:
            return
        if o.processes > 1 or o.split_worker:
            self.report.notes.append("not pinned: more than one server process")
            return
        split = affinity.split()
        if split is None:
            self.report.notes.append("not pinned: one CPU")
            return
        try:
            affinity.pin(self._server_pids(), split.server)
            affinity.pin(self._db_pids(), split.others)
        except OSError as exc:  # e.g. not allowed to move PostgreSQL's processes: undo
            every = split.server | split.others
            with contextlib.suppress(OSError):
                affinity.pin([*self._server_pids(), *self._db_pids()], every)
            self.report.notes.append(f"not pinned: {exc}")
            return
        self.split, self.report.cpus = split, split.as_dict()
        self.echo(f"bench: {self.engine}: {affinity.describe(self.report.cpus)}")

    def _ceilings(self) -> None:
        o = self.options
        tried = {c: self._phase(self._plan("health", concurrency=c)) for c in o.concurrency}
        best = max(tried, key=lambda c: tried[c].per_s)
        http = tried[best]
        ceiling: dict[str, Any] = {
            "http_requests_per_s": round(http.per_s, 1),
            "http_concurrency": best,
            "http_by_concurrency": {str(c): round(p.per_s, 1) for c, p in tried.items()},
            "http_errors": sum(p.result.errors for p in tried.values()),
            "http_latency_ms": msgspec.to_builtins(http.result.latency_ms.get("GET /health")),
            "http_busy_share": http.busy_share,
            # the cheapest of the runs: the floor must not count noise as cost
            "cpu_us_per_exchange": min(
                round(p.all_cpu_s * 1e6 / max(1, p.result.completed), 2) for p in tried.values()
            ),
        }
        storage: dict[str, float] = {}
        costs: list[ceilings.Storage] = []
        seconds = max(1.0, o.duration_s / 2)
        for scenario, commits in ceilings.COMMITS.items():
            if not commits:
                continue
            if self.cluster is not None:
                clients = min(max(o.concurrency), 32)
                found = ceilings.pgbench_ceiling(self.cluster, self.home, commits, clients, seconds)
                ceiling["storage_tool"] = f"pgbench, custom script, {clients} clients"
            else:
                found = ceilings.sqlite_ceiling(self.home / "ceiling.db", commits, seconds)
                ceiling["storage_tool"] = "sqlite3 loop, WAL, synchronous=NORMAL"
            storage[scenario] = round(found.payouts_per_s, 1)
            costs.append(found)
        ceiling["storage_payouts_per_s"] = storage
        ceiling["storage_commits_per_s"] = (
            round(max(rate * ceilings.COMMITS[s] for s, rate in storage.items()), 1)
            if storage
            else None
        )
        if costs:  # the cheapest of the runs, likewise
            ceiling["cpu_us_per_commit"] = min(c.cpu_us_per_commit for c in costs)
            ceiling["storage_busy_share"] = max(c.busy_share for c in costs)
        crypto = bound.crypto_costs(self._settings().bank_private_key_path)
        ceiling["cpu_us_per_signature"] = crypto.sign_us
        ceiling["cpu_us_per_verification"] = crypto.verify_us
        self.report.ceilings = ceiling
        self.echo(
            f"bench: {self.engine} ceilings: http {ceiling['http_requests_per_s']} req/s, "
            f"storage {storage} payouts/s, load {_load()}"
        )

    def _ceiling_for(self, base: str) -> float:
        http = float(self.report.ceilings["http_requests_per_s"]) / ceilings.EXCHANGES[base]
        storage: float | None = self.report.ceilings["storage_payouts_per_s"].get(base)
        return min(http, storage) if storage else http

    def _scenario(self, scenario: str) -> dict[str, Any]:
        o = self.options
        base = scenario.removesuffix("_spread")
        tried = [
            self._phase(self._partner_plan(scenario, concurrency=c), lookup_delays=True)
            for c in o.concurrency
        ]
        top = max(tried, key=lambda phase: phase.per_s)
        rate = o.rate or top.per_s / 2
        half = None
        if rate > 0:
            half = self._phase(
                self._partner_plan(scenario, mode="open", rate=rate), lookup_delays=True
            )
        ceiling = self._ceiling_for(base)
        limit = bound.attainable(base, self.report.ceilings, ceiling)
        attainable_per_s = limit["attainable_payouts_per_s"]
        latency = (half or top).result.latency_ms
        figures: dict[str, Any] = {
            "payouts_per_s": round(top.per_s, 1),
            "ceiling_payouts_per_s": round(ceiling, 1),
            "ratio_to_ceiling": round(top.per_s / ceiling, 3) if ceiling else None,
            **limit,
            "share_of_attainable": round(top.per_s / attainable_per_s, 3)
            if attainable_per_s
            else None,
            "concurrency": o.concurrency[tried.index(top)],
            "closed_loop": [
                {
                    "concurrency": c,
                    "payouts_per_s": round(phase.per_s, 1),
                    "errors": phase.result.errors,
                    "cpu_ms_per_payout": phase.cpu_ms(),
                }
                for c, phase in zip(o.concurrency, tried, strict=True)
            ],
            "errors": sum(p.result.errors for p in tried) + (half.result.errors if half else 0),
            "error_samples": (
                [e for p in tried for e in p.result.error_samples]
                + (half.result.error_samples if half else [])
            )[:5],
            "completed": top.result.completed,
            "cpu_ms_per_payout": top.cpu_ms(),
            "db_cpu_ms_per_payout": top.per_payout_ms(top.db_cpu_s),
            "load_cpu_ms_per_payout": top.per_payout_ms(top.result.client_cpu_s),
            "all_cpu_ms_per_payout": top.per_payout_ms(top.all_cpu_s),
            "busy_share": top.busy_share,
            "peak_rss_mb": round(
                max([p.peak_rss for p in tried] + [half.peak_rss if half else 0]) / 2**20, 1
            ),
            "p99_ms": {method: p.p99 for method, p in latency.items()},
            "latency_ms": {method: msgspec.to_builtins(p) for method, p in latency.items()},
            "latency_ms_at_max": {
                method: msgspec.to_builtins(p) for method, p in top.result.latency_ms.items()
            },
            "half_rate": {
                "target_per_s": round(rate, 1),
                "achieved_per_s": round(half.per_s, 1) if half else None,
            },
            "webhook_delay_ms": _delay_figures(half.delays_ms if half else top.delays_ms),
            "webhook_delay_ms_at_max": _delay_figures(top.delays_ms),
            "stored_sessions": top.stored_sessions,
            "exchanges_per_payout": ceilings.EXCHANGES[base],
            "commits_per_payout": ceilings.COMMITS[base],
            "load": _load(),
        }
        return figures

    def _scale(self, small: int, large: int) -> None:
        assert self.db is not None
        partner = self.partners["single_request"]
        figures: dict[str, Any] = {}
        for label, target in (("small", small), ("large", large)):
            missing = target - partners.stored_sessions(self.db)
            if missing > 0:
                started = time.monotonic()
                partners.preload(self.db, partner, missing)
                partners.settle(self.db)
                self.echo(
                    f"bench: {self.engine}: preloaded {missing} sessions in "
                    f"{time.monotonic() - started:.1f} s"
                )
            phase = self._phase(self._partner_plan("single_request"))
            figures[label] = {
                "stored_sessions": phase.stored_sessions,
                "payouts_per_s": round(phase.per_s, 1),
                "cpu_ms_per_payout": phase.cpu_ms(),
                "total_cpu_ms_per_payout": phase.cpu_ms(total=True),
                "errors": phase.result.errors,
            }
        small_cpu = figures["small"]["total_cpu_ms_per_payout"]
        large_cpu = figures["large"]["total_cpu_ms_per_payout"]
        figures["cpu_growth"] = round(large_cpu / small_cpu - 1, 3) if small_cpu else None
        self.report.scale = figures
        self.echo(f"bench: {self.engine} scale: {figures}")

    def _ledger_check(self) -> None:
        done = subprocess.run(
            [str(PAYOUT131), "ledger", "check"],
            env=self._env(),
            capture_output=True,
            text=True,
            check=False,
        )
        self.report.ledger_check = {
            "exit_status": done.returncode,
            "output": (done.stdout + done.stderr).strip()[-2000:],
        }


def _delay_figures(delays: Percentiles | None) -> dict[str, float] | None:
    if delays is None:
        return None
    return {"p50": delays.p50, "p99": delays.p99, "max": delays.max, "count": delays.count}


def _load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])
