"""``payout131 simulate``: what the simulator rail does with which payout."""

from __future__ import annotations

import json

import click

from payout131.cli.clock_commands import require_sandbox, shown
from payout131.cli.context import settings, write
from payout131.errors import ApiError
from payout131.protocol.validation import id_number
from payout131.rails import scenarios
from payout131.sandbox import clocks, forcing

__all__ = ["simulate"]


@click.group()
def simulate() -> None:
    """The simulator rail (PAYOUT131_RAIL=simulator, the default)."""


@simulate.command("outcomes")
@click.option("--json", "as_json", is_flag=True, help="Print the table as a JSON list.")
@click.option(
    "--destinations",
    is_flag=True,
    help="The magic phone and card numbers instead of the magic amounts.",
)
def outcomes(as_json: bool, destinations: bool) -> None:
    """Print the magic-value table: which amount plays which outcome.

    The last two digits of the amount in kopecks choose the outcome; any valid recipient
    will do. Delays count from the end of the simulator's base latency
    (PAYOUT131_SIM_LATENCY_MS, PAYOUT131_SIM_SPREAD_MS). With --destinations: the phone
    numbers (Faster Payments) and card numbers that play a failure whatever the amount.
    """
    if as_json:
        rows = scenarios.destination_rows() if destinations else scenarios.rows()
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    table = scenarios.destinations_table() if destinations else scenarios.markdown_table()
    click.echo(table, nl=False)


def _forcer(outcome: str, summary: str) -> click.Command:
    @click.argument("payout_id")
    @click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
    def command(payout_id: str, as_json: bool, code: str | None = None) -> None:
        require_sandbox()
        n = id_number(payout_id[3:]) if payout_id.startswith("po_") else None
        if n is None:
            raise click.BadParameter(
                f"{payout_id[:40]!r} is not a payout id (po_ and a number)",
                param_hint="PAYOUT_ID",
            )
        with write() as (conn, now):
            try:
                payout = forcing.force(conn, settings().rail, n, outcome, code, now)
            except ApiError as exc:
                raise click.ClickException(exc.description) from None
            found = clocks.project_clock(conn, payout.project_id)
            clock = None if found is None else shown(conn, found)
        forced = {
            "payout_id": payout_id,
            "outcome": outcome,
            "error_code": (code or forcing.DEFAULT_ERROR) if outcome == "fail" else None,
        }
        if as_json:  # and the clock of the payout's project, if it runs on one
            click.echo(json.dumps({"forced": forced, "test_clock": clock}, ensure_ascii=False))
        else:
            click.echo(f"{payout_id}: {summary}; the worker moves it at its next look")

    command.__doc__ = f"Make a payout waiting at the simulator {summary}, now."
    if outcome == "fail":
        command = click.option(
            "--code",
            type=click.Choice(forcing.ERROR_CODES),
            help=f"The rail's error (default {forcing.DEFAULT_ERROR}).",
        )(command)
    return simulate.command(outcome)(command)


succeed = _forcer("succeed", "succeed")
fail = _forcer("fail", "fail with --code")
return_ = _forcer("return", "come back (a return; it must have been paid, or be at the rail)")
