"""``payout131 chaos``: the crash test (docs/reliability.md)."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import click

from payout131.cli.params import IntRange, OutputDirectory, OutputFile

__all__ = ["chaos"]


@click.command()
@click.option(
    "--engine", type=click.Choice(["sqlite", "postgresql"]), default="sqlite", show_default=True
)
@click.option(
    "--mode",
    type=click.Choice(["kill", "pg-stop"]),
    default="kill",
    show_default=True,
    help="kill: SIGKILL the server; pg-stop: stop PostgreSQL abruptly (needs postgresql).",
)
@click.option("--crashes", type=IntRange(1, 1000), default=30, show_default=True)
@click.option(
    "--seed",
    type=IntRange(0, 2**31 - 1),
    help="Repeat a run's plan; random (and printed) when omitted.",
)
@click.option("--flows", type=IntRange(1, 256), default=6, show_default=True, help="Load.")
@click.option(
    "--database-url",
    help="An empty PostgreSQL database for kill mode; by default a private server is made.",
)
@click.option(
    "--workdir",
    type=OutputDirectory(),
    help="Keep the run's home, database and logs here (by default kept only on failure).",
)
@click.option("--json", "json_path", type=OutputFile())
def chaos(
    engine: str,
    mode: str,
    crashes: int,
    seed: int | None,
    flows: int,
    database_url: str | None,
    workdir: Path | None,
    json_path: Path | None,
) -> None:
    """Crash the server (or its database) under load, then prove nothing was lost.

    Runs `payout131 serve` on a fresh home with two partners paying in both flows and a
    webhook receiver that confirms from ready_to_confirm, crashes it CRASHES times at random
    moments, restarts it, waits for it to catch up and checks every answer, payout, hold,
    rail transfer, webhook and balance. Exits 1 when anything is wrong.
    """
    from payout131.tools.chaos.harness import Plan, run  # here: the CLI starts fast without it

    if seed is None:
        seed = secrets.randbelow(10**6)
    plan = Plan(
        engine=engine,
        mode=mode,
        crashes=crashes,
        seed=seed,
        database_url=database_url,
        workdir=workdir,
        flows=flows,
    )
    try:
        report = run(plan, echo=click.echo)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    for name, value in sorted(report.verdict.figures.items()):
        click.echo(f"  {name:<45} {value}")
    summary = report.as_dict()
    if json_path is not None:
        json_path.write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    if not report.passed:
        for problem in summary["problems"][:50]:
            click.echo(f"  PROBLEM {problem}", err=True)
        raise click.ClickException(
            f"the crash test failed (seed {seed}); logs and database in {report.workdir}"
        )
    click.echo(
        f"passed: {report.crashes} crashes ({mode}, {engine}) in {report.seconds:.0f} s, "
        f"seed {seed}"
    )
