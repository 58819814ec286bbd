"""The composition root: opens the store, loads the keys and the BIK directory, and builds
each part with what it uses. Nothing imports this module but the entry points (``serve``,
``worker``, the ASGI factory) and the tests; no part is handed the runtime itself.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Coroutine
from typing import Any

import anyio
from cryptography.hazmat.primitives.asymmetric import rsa
from prometheus_client import CollectorRegistry
from starlette.routing import Route
from starlette.types import ASGIApp

from payout131 import logs
from payout131.clock import Clock, SystemClock
from payout131.console.app import console_app
from payout131.directory.bik import BikDirectory
from payout131.directory.fps import FpsDirectory
from payout131.directory.fps import load_snapshot as load_fps_snapshot
from payout131.directory.table import load_directory, load_members
from payout131.payouts.calls import Context
from payout131.projects import ProjectCache, seal_webhook_secrets
from payout131.rails import Rail, RailOptions, make_rail
from payout131.sandbox import clocks
from payout131.sandbox.advance import Advancer
from payout131.server import metrics_endpoint
from payout131.server.app import create_app
from payout131.server.fps_api import FpsBanks
from payout131.server.handlers import Handlers
from payout131.server.partner_api import PartnerApi
from payout131.server.request_log import RequestStats
from payout131.server.sandbox_api import SandboxApi
from payout131.server.widget_api import WidgetApi, widget_app
from payout131.settings import Settings
from payout131.storage import Database, migrate
from payout131.storage.group_commit import GroupCommit
from payout131.tokens.vault import Vault
from payout131.webhooks.bank_key import BankSigner
from payout131.webhooks.dispatcher import DeliveryConfig, Dispatcher
from payout131.worker.runner import Worker, WorkerConfig

__all__ = ["Runtime", "app_from_env"]


class Runtime:
    """One process's parts, built once: the store and its group commit, the clock, the
    keys, the directory, the rail, the payout worker and the webhook dispatcher."""

    def __init__(
        self,
        settings: Settings,
        db: Database,
        clock: Clock,
        directory: BikDirectory,
        signer: BankSigner,
        rail: Rail,
        members: FpsDirectory | None = None,
    ) -> None:
        self.settings, self.db, self.clock = settings, db, clock
        self.directory, self.signer, self.rail = directory, signer, rail
        self.members = members or FpsDirectory(load_fps_snapshot())  # SBP (PROTOCOL §9)
        self.projects = ProjectCache(db)
        self.vault = Vault(settings.vault_key_path, settings.vault_key)
        self.group_commit = GroupCommit(db)  # benchmarks: API writes share commits
        self.request_stats = RequestStats()  # /metrics: the requests this process answered
        self.context = Context(directory, self.vault, self.members)
        self.sandbox = settings.mode == "sandbox"
        # the payout worker and the webhook dispatcher; in sandbox mode (docs/sandbox.md) a
        # second pair runs the steps and webhooks of projects on test clocks, each at its
        # clock's time, and the advancer moves the clocks
        self.worker, self.dispatcher = self._pair(on_clocks=False)
        self.clock_worker, self.clock_dispatcher = self._pair(on_clocks=True)
        self.advancer = Advancer(
            db,
            clock,
            self.wake_clocks,
            settings.clock_step_timeout_s,
            runner_lease_s=min(settings.lease_s, 10.0),
        )

    def _pair(self, *, on_clocks: bool) -> tuple[Worker, Dispatcher]:
        dispatcher = Dispatcher(
            db=self.db,
            group_commit=self.group_commit,
            clock=self.clock,
            vault=self.vault,
            signer=self.signer,
            config=delivery_config(self.settings),
            on_clocks=on_clocks,
            clocks=self.sandbox,
        )
        worker = Worker(
            self.db,
            self.group_commit,
            self.clock,
            self.rail,
            self.context,
            worker_config(self.settings),
            on_events=dispatcher.wakeup.set,  # steps commit webhook events: have them sent
            on_clocks=on_clocks,
            clocks=self.sandbox,
        )
        return worker, dispatcher

    @property
    def private_key(self) -> rsa.RSAPrivateKey:
        """The bank key that signs webhooks now (``webhooks/bank_key.py``)."""
        return self.signer.keys().signing_key(SystemClock().now())

    def wake_all(self) -> None:
        """Ring every worker and dispatcher (after an operator's action gave them work)."""
        self.worker.wakeup.set()
        self.dispatcher.wakeup.set()
        self.wake_clocks()

    def wake_clocks(self) -> None:
        """Ring the test clocks' worker and dispatcher."""
        self.clock_worker.wakeup.set()
        self.clock_dispatcher.wakeup.set()

    def runners(self) -> tuple[Callable[[], Coroutine[Any, Any, None]], ...]:
        """What an API-only process still runs: in sandbox mode, the runner of advances
        nobody runs (the steps are done by a ``payout131 worker``)."""
        return (self.advancer.run_forever,) if self.sandbox else ()

    def background(self) -> tuple[Callable[[], Coroutine[Any, Any, None]], ...]:
        """What runs beside the API: the worker and the webhook dispatcher; in sandbox mode
        also those of the test clocks and the runner of advances nobody runs."""
        wall = (self.worker.run, self.dispatcher.run)
        if not self.sandbox:
            return wall
        return (*wall, self.clock_worker.run, self.clock_dispatcher.run, self.advancer.run_forever)

    @classmethod
    def open(
        cls, settings: Settings, *, clock: Clock | None = None, rail: Rail | None = None
    ) -> Runtime:
        """Open the store (migrating it), load the keys and the BIK directory."""
        db = Database(settings.database, pool_size=settings.db_threads)
        try:
            migrate(db)
            with db.read() as conn:
                directory = load_directory(conn)
                members = load_members(conn)
                clocks.check_mode(conn, settings.mode)  # docs/sandbox.md
            vault = Vault(settings.vault_key_path, settings.vault_key)
            with db.write() as conn:  # a secret an earlier version kept in the clear: sealed
                seal_webhook_secrets(conn, vault, reseal=False)
            clock = clock or SystemClock()
            options = RailOptions(
                latency_ms=settings.sim_latency_ms, spread_ms=settings.sim_spread_ms
            )
            return cls(
                settings=settings,
                db=db,
                clock=clock,
                directory=directory,
                signer=BankSigner(settings.home),
                rail=rail or make_rail(settings.rail, options, db, clock),
                members=members,
            )
        except BaseException:  # nothing opened is left open
            db.dispose()
            raise

    def app(
        self,
        *,
        run_worker: bool = True,
        close: bool = False,
        access_log: bool = True,
        console_port: int | None = None,
    ) -> ASGIApp:
        """The ASGI app; with ``run_worker`` the background work runs in the same process;
        with ``close`` the app closes the runtime when it shuts down; with ``access_log``
        every request is logged (``server/request_log.py``). The console (when on) is at
        ``/console/``, or, given ``console_port``, only on the address with that port."""
        limiter = anyio.CapacityLimiter(self.settings.db_threads)
        partner_api = PartnerApi(
            db=self.db,
            group_commit=self.group_commit,
            projects=self.projects,
            handlers=Handlers(self.context, returns_forced=self.sandbox),
            clock=self.clock,
            max_body_bytes=self.settings.max_body_bytes,
            body_timeout_s=self.settings.body_timeout_s,
            limiter=limiter,
            wake_worker=self.worker.wakeup.set,
            wake_dispatcher=self.dispatcher.wakeup.set,
            wake_clocks=self.wake_clocks,
            clocks=self.sandbox,
        )
        fps_banks = FpsBanks(partner_api, self.members)  # PROTOCOL §9
        sandbox = SandboxApi(
            db=self.db,
            partner_api=partner_api,
            advancer=self.advancer,
            rail=self.rail.name,
            wall=self.clock,
            sandbox=self.sandbox,
            wake_clocks=self.wake_clocks,
            wake_worker=self.worker.wakeup.set,
        )
        widget = WidgetApi(
            db=self.db,
            clock=self.clock,
            vault=self.vault,
            directory=self.directory,
            demo_project=self.settings.widget_demo_project,
            body_timeout_s=self.settings.body_timeout_s,
            limiter=limiter,
        )
        console = (
            console_app(
                db=self.db,
                clock=self.clock,
                vault=self.vault,
                mode=self.settings.mode,
                partner_api=partner_api,
                advancer=self.advancer,
                rail=self.rail.name,
                wake=self.wake_all,
            )
            if self.settings.console_on
            else None
        )
        return create_app(
            partner_api=partner_api,
            console=console,
            console_port=console_port,
            widget=widget_app(widget),
            metrics_registry=self.metrics(),
            limiter=limiter,
            header_timeout_s=self.settings.header_timeout_s,
            body_timeout_s=self.settings.body_timeout_s,
            background=(
                *(self.background() if run_worker else self.runners()),
                self.projects.uses.run,  # when partner keys were last used
            ),
            on_close=self.close if close else None,
            extra_routes=[
                Route("/api/v1/fps/banks", fps_banks.__call__, methods=FpsBanks.METHODS),
                *sandbox.routes(),
            ],
            mode=self.settings.mode,
            access_log=access_log,
            request_stats=self.request_stats,
        )

    def metrics(self) -> CollectorRegistry:
        """A registry of this process's metrics (``/metrics``, ``worker --metrics-port``)."""
        return metrics_endpoint.registry_for(
            self.dispatcher.stats, self.db, self.clock, self.request_stats, self.group_commit
        )

    def close(self) -> None:
        try:
            self.projects.uses.flush()
        except Exception:
            logging.getLogger("payout131.keys").exception("could not write down key uses")
        self.group_commit.close()
        self.db.dispose()


def worker_config(settings: Settings) -> WorkerConfig:
    return WorkerConfig(
        lease_s=settings.lease_s,
        batch=settings.worker_batch,
        poll_s=settings.worker_poll_s,
        gather_s=settings.gather_s,
        rail_poll_s=settings.rail_poll_s,
    )


def delivery_config(settings: Settings) -> DeliveryConfig:
    return DeliveryConfig(
        schedule=settings.webhook_schedule,
        jitter=settings.webhook_jitter,
        horizon_s=settings.webhook_horizon_s,
        timeout_s=settings.webhook_timeout_s,
        concurrency=settings.webhook_concurrency,
        per_endpoint=settings.webhook_per_endpoint,
        lease_s=settings.webhook_lease_s,
        poll_s=settings.webhook_poll_s,
        gather_s=settings.gather_s,
        test_hang_after_send=settings.webhook_test_hang_after_send,
    )


def app_from_env() -> ASGIApp:
    """The app of one of ``payout131 serve --processes N``'s processes, configured like the
    command: ``PAYOUT131_*`` settings, ``PAYOUT131_SERVE_WORKER`` (``0``: API only),
    ``PAYOUT131_SERVE_ACCESS_LOG`` (``0``: no request lines), ``PAYOUT131_SERVE_CONSOLE_PORT``
    (the console's own port), ``PAYOUT131_SERVE_LOG_LEVEL``
    and ``PAYOUT131_LOG_FORMAT``."""
    logs.configure(os.environ.get("PAYOUT131_SERVE_LOG_LEVEL", "info"))
    runtime = Runtime.open(Settings.from_env())
    run_worker = os.environ.get("PAYOUT131_SERVE_WORKER", "1") != "0"
    access_log = os.environ.get("PAYOUT131_SERVE_ACCESS_LOG", "1") != "0"
    port = os.environ.get("PAYOUT131_SERVE_CONSOLE_PORT", "")
    return runtime.app(
        run_worker=run_worker,
        close=True,
        access_log=access_log,
        console_port=int(port) if port.isdigit() else None,
    )
