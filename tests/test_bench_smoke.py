"""The benchmark harness, run tiny on both engines so that it never rots (no thresholds), its
bulk preload, and the verdict it gives a full run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from banking import Onboard, available
from partner import payout_body
from payout131.runtime import Runtime
from payout131.storage import schema as t
from payout131.tools.bench import partners
from payout131.tools.bench import report as verdict
from payout131.tools.bench.harness import EngineReport

PAYOUT131 = Path(sys.executable).with_name("payout131")
SCENARIOS = {
    "single_request",
    "single_request_spread",
    "two_step",
    "two_step_spread",
    "status_read",
    "status_read_spread",
}


@pytest.mark.slow
def test_quick_bench_runs_every_scenario_on_both_engines_without_errors(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [str(PAYOUT131), "bench", "--quick", "--duration", "0.4", "--concurrency", "4",
         "--concurrency", "2", "--grace", "20", "--pin", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    figures = json.loads(out.read_text())
    assert set(figures["engines"]) == {"sqlite", "postgresql"}
    assert figures["machine"]["nproc"] >= 1
    for engine, report in figures["engines"].items():
        ceilings = report["ceilings"]
        assert ceilings["http_requests_per_s"] > 0, engine
        assert set(ceilings["http_by_concurrency"]) == {"2", "4"}, engine
        assert ceilings["http_requests_per_s"] == max(ceilings["http_by_concurrency"].values())
        assert set(ceilings["storage_payouts_per_s"]) == {"single_request", "two_step"}
        assert all(rate > 0 for rate in ceilings["storage_payouts_per_s"].values())
        # what the ceilings cost: the attainable bound's parts
        assert ceilings["cpu_us_per_exchange"] > 0, engine
        assert ceilings["cpu_us_per_commit"] > 0, engine
        assert ceilings["cpu_us_per_signature"] > ceilings["cpu_us_per_verification"] > 0
        assert 0 < ceilings["http_busy_share"] <= 1, engine
        assert 0 < ceilings["storage_busy_share"] <= 1, engine
        assert set(report["scenarios"]) == SCENARIOS
        for name, scenario in report["scenarios"].items():
            assert scenario["errors"] == 0, (engine, name, scenario["error_samples"])
            assert scenario["payouts_per_s"] > 0, (engine, name)
            # each concurrency was tried, lowest first; the best rate is the maximum
            tried = scenario["closed_loop"]
            assert [c["concurrency"] for c in tried] == [2, 4], (engine, name)
            # (two rates may round alike: the chosen one is the best, whichever tied)
            best = max(c["payouts_per_s"] for c in tried)
            chosen = next(c for c in tried if c["concurrency"] == scenario["concurrency"])
            assert scenario["payouts_per_s"] == chosen["payouts_per_s"] == best, (engine, name)
            assert scenario["ratio_to_ceiling"] > 0, (engine, name)
            assert scenario["cpu_ms_per_payout"] > 0, (engine, name)
            parts = scenario["cpu_ms_per_payout"] + scenario["load_cpu_ms_per_payout"]
            assert scenario["all_cpu_ms_per_payout"] >= parts - 0.002, (engine, name)
            assert scenario["floor_cpu_ms_per_payout"] > 0, (engine, name)
            allowed = scenario["attainable_payouts_per_s"] / scenario["ceiling_payouts_per_s"]
            assert scenario["attainable_ratio"] == pytest.approx(allowed, abs=0.002)
            assert scenario["attainable_ratio_storage_free"] >= scenario["attainable_ratio"]
            method = "session/status" if name.startswith("status") else "session/init/payout"
            assert scenario["p99_ms"][method] > 0, (engine, name)
            if name.startswith("two_step"):
                assert scenario["p99_ms"]["session/confirm"] > 0, (engine, name)
            if not name.startswith("status"):
                assert scenario["webhook_delay_ms"]["count"] > 0, (engine, name)
        assert report["ledger_check"]["exit_status"] == 0, report["ledger_check"]
    assert figures["engines"]["postgresql"]["postgres_version"]
    assert figures["options"]["pin"] is True
    for engine, report in figures["engines"].items():  # the phases after the ceilings
        if len(os.sched_getaffinity(0)) >= 2:
            assert report["cpus"]["server"] == [min(os.sched_getaffinity(0))], engine
            assert report["cpus"]["database_and_load"], engine
        else:
            assert report["cpus"] is None
            assert report["notes"] == ["not pinned: one CPU"], engine
    assert "single_request" in done.stdout  # the table


def test_settling_after_a_preload_leaves_fresh_statistics(bank: Runtime, onboard: Onboard) -> None:
    """``partners.settle``: what the harness runs after its bulk preload, on both engines."""
    partner = onboard("acme", wallet=10_000)
    partner.ok("session/init/payout", payout_body(1_000))
    partners.settle(bank.db)
    with bank.db.read() as conn:
        if bank.db.is_sqlite:
            stats = "SELECT count(*) FROM sqlite_stat1 WHERE tbl = 'sessions'"
        else:
            conn.exec_driver_sql("SELECT pg_stat_clear_snapshot()")
            stats = (
                "SELECT count(*) FROM pg_stat_user_tables WHERE relname = 'sessions'"
                " AND last_vacuum IS NOT NULL AND last_analyze IS NOT NULL"
            )
        assert conn.exec_driver_sql(stats).scalar_one() == 1


def test_a_preload_leaves_finished_payouts_the_ledger_agrees_with(
    bank: Runtime, onboard: Onboard, tmp_path: Path
) -> None:
    """``partners.preload``: finished payouts made by the database, in several batches, each
    with its posted hold and its delivered event; the bank fixture checks the ledger."""
    partner = onboard("acme", account=10**9, single_request=True)
    assert partner.account is not None
    bench = partners.BenchPartner("acme", tmp_path / "acme.pem", [partner.account], True)
    count = partners._BATCH * 2 + 7
    partners.preload(bank.db, bench, count)
    with bank.db.read() as conn:
        found = conn.execute(
            sa.select(t.sessions.c.status, t.payouts.c.status, t.events.c.status, sa.func.count())
            .join(t.payouts, t.payouts.c.session_n == t.sessions.c.n)
            .join(t.events, t.events.c.session_n == t.sessions.c.n)
            .group_by(t.sessions.c.status, t.payouts.c.status, t.events.c.status)
        ).all()
    assert [tuple(row) for row in found] == [("accepted", "succeeded", "delivered", count)]
    assert available(bank, partner.account) == 10**9 - count * partners.PRELOAD_AMOUNT
    sid = partner.ok("session/init/payout/rko", partner.rko_body(1_000))["session"]["id"]
    first = partner.ok("session/status", {"session_id": f"ps_{int(sid[3:]) - 1}"})["session"]
    assert first["payments"][0]["status"] == "succeeded"  # a preloaded session reads as one


def _report(engine: str, share: float, p99: float, scale: bool) -> EngineReport:
    report = EngineReport(engine, ledger_check={"exit_status": 0})
    for name in ("single_request", "two_step", "status_read"):
        latencies = {"session/init/payout": p99, "session/confirm": p99, "session/status": p99}
        report.scenarios[name] = {
            "errors": 0,
            "share_of_attainable": share,
            "p99_ms": latencies,
            "webhook_delay_ms": None if name == "status_read" else {"p99": 50.0},
        }
    if scale:
        sizes = {"small": {"stored_sessions": 1_000}, "large": {"stored_sessions": 1_000_000}}
        report.scale = sizes | {"cpu_growth": 0.25}
    return report


def test_the_verdict_holds_every_engine_to_the_targets() -> None:
    both = [_report("sqlite", 0.5, 4.0, False), _report("postgresql", 0.6, 5, False)]
    met = verdict.targets(both)
    assert all(t.met for t in met), [t for t in met if not t.met]
    assert {t.name.split()[0] for t in met} == {"sqlite", "postgresql"}
    missed = verdict.targets([_report("postgresql", 0.49, 6.0, True)])
    assert sorted(t.name for t in missed if not t.met) == [
        "postgresql CPU per payout growth, 1,000 to 1,000,000 sessions",
        "postgresql single_request share of the attainable rate",
        "postgresql status_read session/status p99 ms at half rate",
        "postgresql status_read share of the attainable rate",
        "postgresql two_step share of the attainable rate",
    ]  # 6 ms is within the 25 ms of init and confirm, not the 5 ms of a status read
