"""``payout131 simulate``: what the simulator rail does with which payout."""

from __future__ import annotations

import json

import click

from payout131.rails import scenarios

__all__ = ["simulate"]


@click.group()
def simulate() -> None:
    """The simulator rail (PAYOUT131_RAIL=simulator, the default)."""


@simulate.command("outcomes")
@click.option("--json", "as_json", is_flag=True, help="Print the table as a JSON list.")
def outcomes(as_json: bool) -> None:
    """Print the magic-value table: which amount plays which outcome.

    The last two digits of the amount in kopecks choose the outcome; any valid recipient
    will do. Delays count from the end of the simulator's base latency
    (PAYOUT131_SIM_LATENCY_MS, PAYOUT131_SIM_SPREAD_MS).
    """
    if as_json:
        click.echo(json.dumps(scenarios.rows(), ensure_ascii=False, indent=2))
        return
    click.echo(scenarios.markdown_table(), nl=False)
