"""``payout131 bench``: the benchmark harness (docs/benchmarks.md)."""

from __future__ import annotations

import json
import platform
import shlex
import sys
import time
from pathlib import Path

import click

from payout131.cli.params import FloatRange, IntRange, OutputDirectory, OutputFile
from payout131.protocol.validation import whole_number

__all__ = ["bench"]


def _scale(
    _ctx: click.Context, _param: click.Parameter, value: str | None
) -> tuple[int, int] | None:
    if value is None or value == "off":
        return None
    parts = [whole_number(part.replace("_", ""), 9) for part in value.split(":")]
    small, large = parts if len(parts) == 2 else (None, None)
    if small is None or large is None:
        raise click.BadParameter("give SMALL:LARGE stored sessions, e.g. 1000:100000")
    if not 0 < small < large <= 10_000_000:
        raise click.BadParameter("SMALL must be positive and below LARGE, at most 10000000")
    return small, large


@click.command()
@click.option(
    "--engine",
    "engines",
    multiple=True,
    type=click.Choice(["sqlite", "postgresql"]),
    help="Engines to measure (repeat; default both).",
)
@click.option(
    "--scenario",
    "scenarios",
    multiple=True,
    type=click.Choice(
        [
            "single_request",
            "single_request_spread",
            "two_step",
            "two_step_spread",
            "status_read",
            "status_read_spread",
        ]
    ),
    help="Scenarios to run (repeat; default all).",
)
@click.option("--quick", is_flag=True, help="A few seconds per phase; targets not enforced.")
@click.option("--duration", type=FloatRange(0.2, 3600), help="Seconds per load phase (up to 3600).")
@click.option(
    "--concurrency",
    "concurrencies",
    multiple=True,
    type=IntRange(1, 4096),
    help="Payouts in flight, closed loop; repeat to try several, the highest rate being the "
    "maximum (default 64 and 128).",
)
@click.option(
    "--rate",
    type=FloatRange(0.1, 100_000),
    help="Open-loop rate per second for the latency phase (default: half the measured maximum).",
)
@click.option(
    "--count",
    type=IntRange(1, 10_000_000),
    help="At most this many operations per phase.",
)
@click.option(
    "--grace",
    type=FloatRange(1, 3600),
    default=30.0,
    show_default=True,
    help="Seconds an unfinished payout may take after a phase before it is an error.",
)
@click.option(
    "--preload",
    type=IntRange(0, 10_000_000),
    default=0,
    help="Bulk-insert this many finished sessions before measuring.",
)
@click.option(
    "--scale",
    callback=_scale,
    help="SMALL:LARGE stored sessions to compare CPU per payout at (default 1000:1000000 in a "
    "full run, off with --quick); 'off' to skip.",
)
@click.option(
    "--split-worker",
    is_flag=True,
    help="Run `serve --no-worker` beside `payout131 worker` (two processes).",
)
@click.option(
    "--processes",
    type=IntRange(1, 16),
    default=1,
    show_default=True,
    help="Run `serve --processes N` (each process with its own background work).",
)
@click.option(
    "--pin",
    is_flag=True,
    help="After the ceilings, run the server on one CPU and PostgreSQL and the load process "
    "on the others (one server process, two CPUs or more; docs/benchmarks.md).",
)
@click.option(
    "--json",
    "json_path",
    type=OutputFile(),
    help="Write the figures here as JSON.",
)
@click.option(
    "--workdir",
    type=OutputDirectory(),
    help="Keep homes, logs and phase files here (default: a temporary directory).",
)
@click.pass_context
def bench(
    ctx: click.Context,
    engines: tuple[str, ...],
    scenarios: tuple[str, ...],
    quick: bool,
    duration: float | None,
    concurrencies: tuple[int, ...],
    rate: float | None,
    count: int | None,
    grace: float,
    preload: int,
    scale: tuple[int, int] | None,
    split_worker: bool,
    processes: int,
    pin: bool,
    json_path: Path | None,
    workdir: Path | None,
) -> None:
    """Measure payouts end to end on a fresh server, side by side with the machine's ceilings.

    Starts `payout131 serve` on a temporary home per engine (PostgreSQL: a private cluster
    with durable commits), drives it from a separate load process with its own webhook
    receiver, and prints the table, with what the ceilings cost in CPU and the most any
    server could carry on this machine (the attainable bound). A full run (without
    --quick) exits 1 when a target of docs/benchmarks.md is missed.
    """
    from rich.console import Console

    from payout131.tools.bench import harness, report
    from payout131.tools.bench.usage import machine

    scale_given = ctx.get_parameter_source("scale") == click.core.ParameterSource.COMMANDLINE
    options = harness.Options(
        engines=engines or harness.ENGINES,
        scenarios=scenarios or harness.SCENARIOS,
        duration_s=duration or (3.0 if quick else 10.0),
        concurrency=tuple(sorted(set(concurrencies))) or harness.Options.concurrency,
        rate=rate,
        count=count or 1_000_000,
        grace_s=grace,
        preload=preload,
        scale=scale if scale_given else (None if quick else (1_000, 1_000_000)),
        split_worker=split_worker,
        processes=processes,
        pin=pin,
        workdir=workdir,
        keep=workdir is not None,
        quick=quick,
    )
    started, facts = time.time(), machine()
    try:
        reports = harness.run(options, echo=lambda line: click.echo(line, err=True))
    except RuntimeError as exc:
        raise click.ClickException(str(exc)) from None
    found = report.targets(reports)
    report.print_table(reports, found, Console(width=160))
    context = {
        "command": shlex.join(["payout131", "bench", *sys.argv[2:]]),
        "machine": {**facts, "python": platform.python_version()},
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "seconds": round(time.time() - started, 1),
        "quick": quick,
        "options": {
            "duration_s": options.duration_s,
            "concurrency": options.concurrency,
            "rate": options.rate,
            "preload": options.preload,
            "scale": options.scale,
            "split_worker": options.split_worker,
            "processes": options.processes,
            "pin": options.pin,
        },
    }
    if json_path is not None:
        document = report.as_json(reports, found, context)
        json_path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    if not quick and not all(t.met for t in found):
        ctx.exit(1)
