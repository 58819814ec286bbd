"""The ``payout131`` command group and its server-side commands: init, serve, bank-key."""

from __future__ import annotations

import logging
import os
from typing import Any

import click

from payout131.cli import (
    bench_commands,
    bik_commands,
    ledger_commands,
    project_commands,
    simulate_commands,
    webhook_commands,
    worker_commands,
)
from payout131.cli.chaos_commands import chaos
from payout131.cli.context import settings
from payout131.cli.demo_commands import demo
from payout131.cli.partner_commands import partner
from payout131.cli.vault_commands import vault
from payout131.settings import Settings

__all__ = ["main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="payout131")
@click.pass_context
def main(ctx: click.Context) -> None:
    """payout131: a self-hostable payout server speaking Bank 131's partner API.

    Configured by PAYOUT131_HOME (data directory, default ./.payout131) and
    PAYOUT131_DATABASE_URL (sqlite:///path, the default inside the home, or postgresql://...).
    """
    try:
        ctx.obj = Settings.from_env()
    except ValueError as exc:  # a bad PAYOUT131_* variable, named in the message
        raise click.ClickException(str(exc)) from None


@main.command()
@click.option("--demo", is_flag=True, help="Also register a ready-to-use demo project.")
def init(demo: bool) -> None:
    """Create the data directory, the database and the bank's RSA key pair."""
    from payout131.cli.setup import initialise

    initialise(settings(), demo=demo)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8131, show_default=True, type=int, help="Port to listen on.")
@click.option(
    "--processes",
    default=1,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Server processes sharing the port, each with its own background work (PostgreSQL).",
)
@click.option("--no-worker", is_flag=True, help="Serve the API only; run `payout131 worker` apart.")
@click.option("--no-access-log", is_flag=True, help="No log line per request (benchmarks).")
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    show_default=True,
)
def serve(
    host: str, port: int, processes: int, no_worker: bool, no_access_log: bool, log_level: str
) -> None:
    """Serve the partner API and run the background work (in each process)."""
    import uvicorn

    from payout131.bank import Bank
    from payout131.server import create_app

    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    bank = Bank.open(settings())  # migrates the store once, before any process serves
    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "server_header": False,
        "log_level": log_level,
        "access_log": not no_access_log,
    }
    where = f"http://{host}:{port} (database: {bank.db.dialect}"
    if processes == 1:
        click.echo(f"payout131 listening on {where})")
        uvicorn.run(create_app(bank, run_worker=not no_worker), **options)
        return
    bank.close()
    os.environ["PAYOUT131_SERVE_WORKER"] = "0" if no_worker else "1"
    os.environ["PAYOUT131_SERVE_LOG_LEVEL"] = log_level
    click.echo(f"payout131 listening on {where}, {processes} processes)")
    uvicorn.run("payout131.server:app_from_env", factory=True, workers=processes, **options)


@main.command("bank-key")
def bank_key() -> None:
    """Print the bank's public key (PEM): partners verify webhooks with it."""
    path = settings().bank_public_key_path
    if not path.exists():
        raise click.ClickException(f"no bank key at {path}: run `payout131 init` first")
    click.echo(path.read_text(), nl=False)


main.add_command(project_commands.project)
main.add_command(ledger_commands.account)
main.add_command(ledger_commands.wallet)
main.add_command(ledger_commands.ledger_group)
main.add_command(bik_commands.bik)
main.add_command(simulate_commands.simulate)
main.add_command(webhook_commands.webhooks)
main.add_command(worker_commands.worker)
main.add_command(vault)
main.add_command(partner)
main.add_command(demo)
main.add_command(chaos)  # reliability: the crash test
main.add_command(bench_commands.bench)  # benchmarks (docs/benchmarks.md)
