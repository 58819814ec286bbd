"""The benchmark harness, run tiny on both engines so that it never rots (no thresholds)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from banking import Onboard
from partner import payout_body
from payout131.runtime import Runtime
from payout131.tools.bench import partners

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
            best = max(tried, key=lambda c: c["payouts_per_s"])
            assert scenario["payouts_per_s"] == best["payouts_per_s"], (engine, name)
            assert scenario["concurrency"] == best["concurrency"], (engine, name)
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
