"""``payout131 chaos``: the crash test and the failover test (docs/reliability.md)."""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from payout131.cli.params import IntRange, OutputDirectory, OutputFile

__all__ = ["chaos"]

CRASH_ONLY = ("engine", "mode", "crashes", "database_url")
QUICK_CRASHES = 5


@click.command()
@click.option(
    "--scenario",
    type=click.Choice(["crash", "failover"]),
    default="crash",
    show_default=True,
    help="crash: kill the server or its database; failover: a Patroni cluster whose "
    "primary keeps changing under two servers.",
)
@click.option(
    "--engine", type=click.Choice(["sqlite", "postgresql"]), default="sqlite", show_default=True
)
@click.option(
    "--mode",
    type=click.Choice(["kill", "pg-stop"]),
    default="kill",
    show_default=True,
    help="crash: SIGKILL the server (kill) or stop PostgreSQL abruptly (pg-stop).",
)
@click.option("--crashes", type=IntRange(1, 1000), default=30, show_default=True)
@click.option(
    "--failovers",
    type=IntRange(1, 1000),
    default=21,
    show_default=True,
    help="failover: how many times the primary changes.",
)
@click.option(
    "--quick",
    is_flag=True,
    help=f"The short form: {QUICK_CRASHES} crashes, or one failover of each kind (3).",
)
@click.option(
    "--seed",
    type=IntRange(0, 2**31 - 1),
    help="Repeat a run's plan; random (and printed) when omitted.",
)
@click.option("--flows", type=IntRange(1, 256), default=6, show_default=True, help="Load.")
@click.option(
    "--database-url",
    help="crash: an empty PostgreSQL database for kill mode; by default a private server.",
)
@click.option(
    "--workdir",
    type=OutputDirectory(),
    help="Keep the run's home, database and logs here (by default kept only on failure).",
)
@click.option("--json", "json_path", type=OutputFile())
@click.pass_context
def chaos(
    ctx: click.Context,
    scenario: str,
    engine: str,
    mode: str,
    crashes: int,
    failovers: int,
    quick: bool,
    seed: int | None,
    flows: int,
    database_url: str | None,
    workdir: Path | None,
    json_path: Path | None,
) -> None:
    """Crash the server, its database, or its database's primary under load, then prove
    nothing was lost.

    crash: runs `payout131 serve` on a fresh home with partners paying in both flows and a
    webhook receiver that confirms from ready_to_confirm, crashes it CRASHES times at
    random moments, restarts it, waits for it to catch up and checks every answer, payout,
    hold, rail transfer, webhook and balance.

    failover: the same load and proof against two servers on a three-node Patroni cluster
    with synchronous replication (needs the patroni, etcd-server and haproxy packages),
    whose primary is killed or switched over FAILOVERS times.

    Exits 1 when anything is wrong.
    """
    given = {
        name
        for name in (*CRASH_ONLY, "failovers")
        if ctx.get_parameter_source(name) is not ParameterSource.DEFAULT
    }
    misplaced = given & ({"failovers"} if scenario == "crash" else set(CRASH_ONLY))
    if misplaced:
        option = "--" + sorted(misplaced)[0].replace("_", "-")
        raise click.UsageError(f"{option} does not apply to --scenario {scenario}")
    sized = given & {"crashes", "failovers"}
    if quick and sized:
        raise click.UsageError(f"--quick sets the size: leave out --{sized.pop()}")
    if seed is None:
        seed = secrets.randbelow(10**6)
    if scenario == "failover":
        _failover(failovers, quick, seed, flows, workdir, json_path)
    else:
        crashes = QUICK_CRASHES if quick else crashes
        _crash(engine, mode, crashes, seed, flows, database_url, workdir, json_path)


def _crash(
    engine: str,
    mode: str,
    crashes: int,
    seed: int,
    flows: int,
    database_url: str | None,
    workdir: Path | None,
    json_path: Path | None,
) -> None:
    from payout131.tools.chaos.harness import Plan, run  # here: the CLI starts fast without it

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
    figures = dict(sorted(report.verdict.figures.items()))
    _finish(figures, report.as_dict(), json_path, report.passed, seed, report.workdir)
    click.echo(
        f"passed: {report.crashes} crashes ({mode}, {engine}) in {report.seconds:.0f} s, "
        f"seed {seed}"
    )


def _failover(
    failovers: int,
    quick: bool,
    seed: int,
    flows: int,
    workdir: Path | None,
    json_path: Path | None,
) -> None:
    from payout131.tools.chaos.failover import QUICK_FAILOVERS, FailoverPlan, run
    from payout131.tools.pgcluster import ClusterError

    plan = FailoverPlan(
        failovers=QUICK_FAILOVERS if quick else failovers,
        seed=seed,
        flows=flows,
        workdir=workdir,
    )
    try:
        report = run(plan, echo=click.echo)
    except ClusterError as exc:
        raise click.ClickException(str(exc).splitlines()[0]) from None
    figures = sorted(report.verdict.figures.items()) + list(report.figures().items())
    _finish(dict(figures), report.as_dict(), json_path, report.passed, seed, report.workdir)
    click.echo(
        f"passed: {len(report.failovers)} failovers in {report.seconds:.0f} s, longest "
        f"without a write {report.figures()['max_unavailable_s']} s, seed {seed}"
    )


def _finish(
    figures: Mapping[str, Any],
    summary: dict[str, Any],
    json_path: Path | None,
    passed: bool,
    seed: int,
    workdir: Path,
) -> None:
    """Print the run's ``figures`` (in their order), write ``summary`` as JSON if asked,
    and fail with its problems if it did not pass."""
    for name, value in figures.items():
        click.echo(f"  {name:<45} {value}")
    if json_path is not None:
        json_path.write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    if not passed:
        for problem in summary["problems"][:50]:
            click.echo(f"  PROBLEM {problem}", err=True)
        raise click.ClickException(
            f"the {summary.get('scenario', 'crash')} test failed (seed {seed}); logs and "
            f"database in {workdir}"
        )
