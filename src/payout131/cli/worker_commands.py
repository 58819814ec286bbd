"""``payout131 worker``: the background work without the API (payout steps and webhooks).

Run any number of these beside ``payout131 serve --no-worker`` on one PostgreSQL database:
leases keep two processes from running the same step or sending the same event at once.
"""

from __future__ import annotations

import signal
from typing import TYPE_CHECKING

import anyio
import click

from payout131.cli.context import settings
from payout131.cli.params import IntRange

if TYPE_CHECKING:
    from payout131.runtime import Runtime

__all__ = ["worker"]


async def _run(bank: Runtime, payouts: bool, webhooks: bool) -> None:
    async with anyio.create_task_group() as tasks:
        if payouts:
            tasks.start_soon(bank.worker.run)
        if webhooks:
            tasks.start_soon(bank.dispatcher.run)
        if bank.sandbox:  # docs/sandbox.md: the same work on test clocks' time
            if payouts:
                tasks.start_soon(bank.clock_worker.run)
            if webhooks:
                tasks.start_soon(bank.clock_dispatcher.run)
            tasks.start_soon(bank.advancer.run_forever)  # with this or another worker's help
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async for _ in signals:
                tasks.cancel_scope.cancel()
                break


@click.command()
@click.option("--payouts/--no-payouts", default=True, help="Run the payout steps.")
@click.option("--webhooks/--no-webhooks", default=True, help="Deliver webhook events.")
@click.option("--metrics-port", type=IntRange(1, 65535), help="Serve /metrics here.")
@click.option("--metrics-host", default="127.0.0.1", show_default=True)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    show_default=True,
)
def worker(
    payouts: bool, webhooks: bool, metrics_port: int | None, metrics_host: str, log_level: str
) -> None:
    """Run payout steps and deliver webhooks until SIGTERM or Ctrl-C."""
    from prometheus_client import start_http_server

    from payout131 import logs
    from payout131.runtime import Runtime
    from payout131.server import heap

    if not (payouts or webhooks):
        raise click.UsageError("nothing to run: --no-payouts and --no-webhooks together")
    conf = settings()
    logs.configure(log_level, conf.log_format)
    bank = Runtime.open(conf)
    try:
        if metrics_port is not None:
            start_http_server(metrics_port, addr=metrics_host, registry=bank.metrics())
        click.echo(
            f"payout131 worker {bank.dispatcher.owner} running "
            f"(database: {bank.db.dialect}, mode: {bank.settings.mode})"
        )
        heap.settle()
        anyio.run(_run, bank, payouts, webhooks)
    finally:
        bank.close()
