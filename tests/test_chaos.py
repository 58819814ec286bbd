"""The crash test in its short form: a few SIGKILLs per engine, a few PostgreSQL crashes.

The full form (30+ crashes per mode) is ``scripts/chaos``; ``PAYOUT131_FULL=1`` runs it
here too. Figures of full runs are in docs/reliability.md.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from payout131.chaos.harness import Plan, run

FULL = os.environ.get("PAYOUT131_FULL") == "1"
CRASHES = 30 if FULL else 5
SEED = int(os.environ.get("PAYOUT131_SEED", "131"))
pytestmark = pytest.mark.timeout(0 if FULL else 300)


def _check(plan: Plan) -> None:
    report = run(plan, echo=lambda line: None)
    summary = report.as_dict()
    assert report.passed, summary["problems"][:20]
    assert report.crashes == plan.crashes
    figures = summary["figures"]
    assert figures["payouts"] > 0
    assert figures["payouts succeeded"] > 0
    assert figures["events"] > 0
    assert figures["`payout131 ledger check` exit status"] == 0


def test_sigkill_the_server_under_load(database_url: str, tmp_path: Path) -> None:
    engine = "sqlite" if database_url.startswith("sqlite") else "postgresql"
    _check(
        Plan(
            engine=engine,
            crashes=CRASHES,
            seed=SEED,
            database_url=None if engine == "sqlite" else database_url,
            workdir=tmp_path / "chaos",
            flows=4,
            pause=(0.2, 1.0),
        )
    )


def test_crash_postgresql_under_load(tmp_path: Path) -> None:
    _check(
        Plan(
            engine="postgresql",
            mode="pg-stop",
            crashes=CRASHES if FULL else 3,
            seed=SEED,
            workdir=tmp_path / "chaos",
            flows=4,
            pause=(0.2, 1.0),
        )
    )
