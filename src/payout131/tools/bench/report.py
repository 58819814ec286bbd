"""The benchmark's verdict: targets, the terminal table and the JSON document.

``ratio_to_ceiling`` is a scenario's end-to-end rate divided by its ceiling, where the
ceiling is the lower of the HTTP ceiling per payout (``GET /health`` requests per second
divided by the HTTP exchanges a payout needs) and the storage ceiling per payout (durable
commits per second divided by the commits a payout needs); see docs/benchmarks.md.
Beside it stands ``attainable_ratio``, the highest ratio this machine allows any server
(``bound.py``): a ratio target above it is reported as missed, and named as out of this
machine's reach.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.table import Table

from payout131.tools.bench import affinity
from payout131.tools.bench.harness import EngineReport

__all__ = ["Target", "as_json", "print_table", "targets"]

TARGET_ENGINE = "postgresql"
INIT, CONFIRM, STATUS = "session/init/payout", "session/confirm", "session/status"


@dataclass(frozen=True, slots=True)
class Target:
    name: str
    wanted: str
    value: float | int | str | None
    met: bool
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        found = {"name": self.name, "wanted": self.wanted, "value": self.value, "met": self.met}
        return found | ({"note": self.note} if self.note else {})


def _at_least(name: str, value: float | None, floor: float) -> Target:
    return Target(name, f">= {floor:g}", value, value is not None and value >= floor)


def _at_most(name: str, value: float | None, ceiling: float) -> Target:
    return Target(name, f"<= {ceiling:g}", value, value is not None and value <= ceiling)


RATIO = 0.5


def _ratio(scenario: str, figures: dict[str, Any]) -> Target:
    """The ratio target, with what this machine allows when that is less than the target."""
    target = _at_least(f"{scenario} ratio to ceiling", figures["ratio_to_ceiling"], RATIO)
    allowed = figures.get("attainable_ratio")
    if target.met or allowed is None or allowed >= RATIO:
        return target
    note = (
        f"out of this machine's reach: a server costing no CPU beyond the ceilings' own "
        f"exchanges and commits and the protocol's RSA work would reach {allowed:g}"
    )
    free = figures.get("attainable_ratio_storage_free")
    if free is not None:
        note += f" ({free:g} were its storage free too)"
    return Target(target.name, target.wanted, target.value, False, note)


def targets(reports: list[EngineReport]) -> list[Target]:
    """The issue's targets for the figures that were measured (speed: PostgreSQL only)."""
    found: list[Target] = []
    for report in reports:
        engine = report.engine
        for scenario, figures in report.scenarios.items():
            found.append(
                Target(
                    f"{engine} {scenario} errors", "== 0", figures["errors"], figures["errors"] == 0
                )
            )
        check = report.ledger_check.get("exit_status")
        found.append(Target(f"{engine} ledger check", "exit 0", check, check == 0))
        if engine != TARGET_ENGINE:
            continue
        s = report.scenarios
        for scenario, floor in (("single_request", 500), ("two_step", 250)):
            if scenario not in s:
                continue
            figures = s[scenario]
            found.append(_at_least(f"{scenario} payouts/s", figures["payouts_per_s"], floor))
            found.append(_ratio(scenario, figures))
            found.append(
                _at_most(f"{scenario} {INIT} p99 ms at half rate", figures["p99_ms"].get(INIT), 25)
            )
            delay = figures["webhook_delay_ms"]
            found.append(
                _at_most(
                    f"{scenario} webhook commit-to-receipt p99 ms at half rate",
                    delay["p99"] if delay else None,
                    250,
                )
            )
        if "two_step" in s:
            p99 = s["two_step"]["p99_ms"].get(CONFIRM)
            found.append(_at_most(f"two_step {CONFIRM} p99 ms at half rate", p99, 25))
        if "status_read" in s:
            p99 = s["status_read"]["p99_ms"].get(STATUS)
            found.append(_at_most(f"status_read {STATUS} p99 ms at half rate", p99, 10))
        if report.scale is not None:
            growth = report.scale.get("cpu_growth")
            found.append(_at_most("CPU per payout growth, large vs small store", growth, 0.2))
    return found


def as_json(
    reports: list[EngineReport], found: list[Target], context: dict[str, Any]
) -> dict[str, Any]:
    engines: dict[str, Any] = {}
    for report in reports:
        engines[report.engine] = {
            "ceilings": report.ceilings,
            "scenarios": report.scenarios,
            "scale": report.scale,
            "ledger_check": report.ledger_check,
            "postgres_version": report.postgres_version,
            "cpus": report.cpus,
            "notes": report.notes,
        }
    return {
        **context,
        "engines": engines,
        "targets": [t.as_dict() for t in found],
        "targets_met": all(t.met for t in found),
    }


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}"


def _costs(report: EngineReport) -> str:
    """One line: what the ceilings and the RSA work cost, and what that allows each scenario."""
    c = report.ceilings
    busy = f"busy {c['http_busy_share']:.0%}"
    if "storage_busy_share" in c:
        busy += f" / {c['storage_busy_share']:.0%}"
    allowed = ", ".join(
        f"{name} {f['attainable_payouts_per_s']:.0f}/s (ratio {f['attainable_ratio']:.2f}; "
        f"{f['attainable_ratio_storage_free']:.2f} with storage free)"
        for name, f in report.scenarios.items()
        if f.get("attainable_ratio") is not None and not name.endswith("_spread")
    )
    return (
        f"{report.engine}: CPU µs per exchange {c['cpu_us_per_exchange']}, per commit "
        f"{c.get('cpu_us_per_commit', '—')}, per signature {c['cpu_us_per_signature']}, per "
        f"verification {c['cpu_us_per_verification']} (machine {busy} during the ceilings); "
        f"attainable by any server here: {allowed}"
    )


def print_table(reports: list[EngineReport], found: list[Target], console: Console) -> None:
    table = Table(title="payout131 bench: end to end, against this machine's ceilings")
    for column in (
        "engine",
        "scenario",
        "payouts/s",
        "in flight",
        "ceiling/s",
        "ratio",
        "errors",
        "CPU ms/payout",
        "init p99",
        "confirm p99",
        "status p99",
        "webhook p50/p99",
        "RSS MB",
    ):
        table.add_column(column, justify="left" if column in ("engine", "scenario") else "right")
    for report in reports:
        for scenario, f in report.scenarios.items():
            delay = f["webhook_delay_ms"]
            p99 = f["p99_ms"]
            table.add_row(
                report.engine,
                scenario,
                f"{f['payouts_per_s']:.0f}",
                str(f["concurrency"]),
                f"{f['ceiling_payouts_per_s']:.0f}",
                f"{f['ratio_to_ceiling']:.2f}" if f["ratio_to_ceiling"] is not None else "—",
                str(f["errors"]),
                f"{f['cpu_ms_per_payout']:.2f}",
                _ms(p99.get(INIT)),
                _ms(p99.get(CONFIRM)),
                _ms(p99.get(STATUS)),
                f"{delay['p50']:.0f}/{delay['p99']:.0f}" if delay else "—",
                f"{f['peak_rss_mb']:.0f}",
            )
    console.print(table)
    for report in reports:
        c = report.ceilings
        console.print(
            f"{report.engine}: HTTP ceiling {c.get('http_requests_per_s')} req/s; storage "
            f"ceiling {c.get('storage_payouts_per_s')} payouts/s ({c.get('storage_tool')}); "
            f"ledger check exit {report.ledger_check.get('exit_status')}"
        )
        if "cpu_us_per_exchange" in c:
            console.print(_costs(report))
        if report.cpus:
            console.print(f"{report.engine}: after the ceilings, {affinity.describe(report.cpus)}")
        for note in report.notes:
            console.print(f"{report.engine}: {note}")
        if report.scale:
            small, large = report.scale["small"], report.scale["large"]
            console.print(
                f"{report.engine}: CPU per payout (server + database) "
                f"{small['total_cpu_ms_per_payout']} ms at {small['stored_sessions']} sessions, "
                f"{large['total_cpu_ms_per_payout']} ms at {large['stored_sessions']}: "
                f"growth {report.scale['cpu_growth']}"
            )
    missed = [t for t in found if not t.met]
    if missed:
        console.print("[bold red]targets missed:[/]")
        for t in missed:
            note = f"; {t.note}" if t.note else ""
            console.print(f"  {t.name}: {t.value} (wanted {t.wanted}{note})")
    else:
        console.print("[bold green]every target met[/]")
