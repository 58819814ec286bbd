"""The failover test in its short form: one failover of each kind under two servers.

``payout131 chaos --scenario failover --quick`` starts etcd, three Patroni-managed
PostgreSQL nodes with synchronous replication and HAProxy, two ``payout131 serve``
processes (one through HAProxy, one through a multi-host URL), kills the primary's
postmaster, switches over, kills the primary's Patroni, and kills one server on the way;
then proves nothing acknowledged was lost, nothing ran twice and every event arrived. The
full form (21 failovers) is ``PAYOUT131_FULL=1``; its figures are in docs/reliability.md.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from payout131.cli.main import main
from payout131.tools.chaos.failover import ACTIONS, unavailable_spans
from payout131.tools.chaos.processes import PAYOUT131
from payout131.tools.patroni import missing_programs

FULL = os.environ.get("PAYOUT131_FULL") == "1"
SEED = os.environ.get("PAYOUT131_SEED", "131")
ZERO = ("acknowledged_lost", "double_executions", "undelivered_events", "out_of_order_events")


@pytest.mark.slow
@pytest.mark.timeout(0 if FULL else 600)
def test_failover_under_load_loses_nothing(tmp_path: Path) -> None:
    missing = missing_programs()
    if missing:
        pytest.fail(f"the failover test needs `apt-get install {' '.join(missing)}`", pytrace=False)
    figures_file = tmp_path / "failover.json"
    size = [] if FULL else ["--quick"]
    command = [str(PAYOUT131), "chaos", "--scenario", "failover", *size, "--seed", SEED,
               "--json", str(figures_file)]  # fmt: skip
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    ) as run:
        try:
            stdout, stderr = run.communicate(timeout=None if FULL else 420)
        except subprocess.TimeoutExpired:
            os.killpg(run.pid, signal.SIGTERM)  # the harness stops its cluster on SIGTERM
            try:
                stdout, stderr = run.communicate(timeout=120)
            except subprocess.TimeoutExpired:
                os.killpg(run.pid, signal.SIGKILL)
                stdout, stderr = run.communicate()
            pytest.fail(f"the failover run took too long:\n{stdout[-3000:]}{stderr[-3000:]}")
    done = subprocess.CompletedProcess(command, run.returncode, stdout, stderr)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    figures = json.loads(figures_file.read_text())
    assert figures["passed"] is True
    assert figures["failovers"] == (21 if FULL else 3)
    each = figures["each_failover"]
    assert [f["action"] for f in each[:3]] == list(ACTIONS)
    assert all(f["new"] and f["new"] != f["old"] for f in each)  # the primary did change
    for name in ZERO:
        assert figures[name] == 0, name
    assert figures["other_problems"] == 0
    assert figures["ledger_check_ok"] is True
    assert figures["servers_killed"] == 1
    # writes did stop during each failover, and started again
    assert all(0 < f["unavailable_s"] < 60 for f in each)
    assert figures["max_unavailable_s"] == max(f["unavailable_s"] for f in each)
    # each way in took writes again after every failover (the killed server aside)
    for f in each:
        ways = f["unavailable_by_way_s"]
        assert "haproxy" in ways
        assert set(ways) <= {"haproxy", "multi-host"}
        assert all(0 < span < 60 for span in ways.values())
    if not FULL:  # the server with the multi-host URL was down for the middle failover only
        assert ["multi-host" in f["unavailable_by_way_s"] for f in each] == [True, False, True]
    checks = figures["checks"]
    assert checks["payouts succeeded"] > 0
    assert checks["payouts failed: session_cancelled_by_partner"] > 0
    assert checks["events"] > 0
    assert checks.get("calls in doubt", 0) == 0  # (a figure of 0 is not written)
    assert checks.get("tracebacks in the server logs", 0) == 0  # an outage is one line
    assert "failovers" in done.stdout
    assert "passed: " in done.stdout


def test_unavailability_is_the_longest_gap_after_each_fault() -> None:
    successes = [1.0, 2.0, 3.0, 9.0, 9.5, 10.0, 20.0, 21.0]
    # fault at 3.5: 3.0 -> 9.0; at 10.2: 10.0 -> 20.0; at 21.5: 21.0 -> the end, at 25.0
    assert unavailable_spans(successes, [3.5, 10.2, 21.5], end=25.0) == [6.0, 10.0, 4.0]
    assert unavailable_spans([], [1.0], end=4.0) == [3.0]


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--scenario", "failover", "--engine", "postgresql"], "--engine"),
        (["--scenario", "failover", "--mode", "pg-stop"], "--mode"),
        (["--scenario", "failover", "--crashes", "3"], "--crashes"),
        (["--failovers", "3"], "--failovers"),
        (["--scenario", "failover", "--failovers", "0"], "--failovers"),
        (["--scenario", "elsewhere"], "--scenario"),
        (["--scenario", "failover", "--quick", "--failovers", "5"], "--failovers"),
        (["--quick", "--crashes", "5"], "--crashes"),
    ],
)
def test_options_of_the_other_scenario_are_refused(args: list[str], named: str) -> None:
    result = CliRunner().invoke(main, ["chaos", *args])
    assert result.exit_code == 2
    assert named in result.output
    assert "Traceback" not in result.output
