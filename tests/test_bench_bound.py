"""The attainable bound and the CPU readings it rests on: real processes, real RSA."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from payout131.tools.bench import bound
from payout131.tools.bench.usage import busy_share, cpu_seconds, machine_cpu, tree_cpu_seconds

FIXTURES = Path(__file__).parents[2] / "shared/fixtures/signing"
BURN = "import time\nend = time.process_time() + {0}\nwhile time.process_time() < end: pass\n"


def test_a_child_that_ended_still_counts_in_its_parents_tree() -> None:
    before = tree_cpu_seconds(os.getpid())
    subprocess.run([sys.executable, "-c", BURN.format(0.3)], check=True)  # reaped
    assert tree_cpu_seconds(os.getpid()) - before >= 0.25  # ticks of 10 ms


def test_a_live_child_counts_in_its_parents_tree() -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", BURN.format(0.3) + "import sys\nsys.stdin.readline()\n"],
        stdin=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while cpu_seconds(child.pid) < 0.25 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert cpu_seconds(child.pid) >= 0.25
        # not reaped yet: the child is in the tree through its own /proc entry (our own
        # share read first: it only grows, so the difference never undercounts the child)
        own = cpu_seconds(os.getpid())
        assert tree_cpu_seconds(os.getpid()) - own >= 0.25
    finally:
        child.communicate(b"\n", timeout=30)


def test_a_busy_thread_shows_in_the_machines_busy_share() -> None:
    cpus = len(os.sched_getaffinity(0))
    stop = threading.Event()
    before = machine_cpu()
    started = time.process_time()
    thread = threading.Thread(target=lambda: stop.wait(0.5))
    thread.start()
    while time.process_time() - started < 0.5:
        pass
    stop.set()
    thread.join()
    after = machine_cpu()
    assert after[1] > before[1]
    # one of the CPUs was busy throughout; the rest of the machine may have been too
    assert 0.8 / cpus <= busy_share(before, after) <= 1.0


def test_a_signature_costs_more_than_checking_it() -> None:
    costs = bound.crypto_costs(FIXTURES / "private.pem", repeat=20)  # a 2048-bit key
    assert costs.verify_us > 0
    assert costs.sign_us > 3 * costs.verify_us  # RSA: the private operation is the dear one


COSTS = {
    "cpu_us_per_exchange": 50.0,
    "cpu_us_per_commit": 40.0,
    "cpu_us_per_signature": 300.0,
    "cpu_us_per_verification": 20.0,
}


def test_the_floor_adds_each_cost_as_often_as_a_payout_needs_it() -> None:
    cpus = len(os.sched_getaffinity(0))
    single = bound.attainable("single_request_spread", COSTS, ceiling_per_s=1000.0)
    # 2 exchanges, 4 commits, 1 signature (the webhook), 2 checks (request, webhook)
    floor_us = 2 * 50 + 4 * 40 + 1 * 300 + 2 * 20
    assert single["floor_cpu_ms_per_payout"] == floor_us / 1000
    assert single["attainable_payouts_per_s"] == round(cpus * 1e6 / floor_us, 1)
    assert single["attainable_ratio"] == round(cpus * 1e6 / floor_us / 1000, 3)
    free_us = 2 * 50 + 1 * 300 + 2 * 20  # storage left out: exchanges and RSA only
    assert single["attainable_ratio_storage_free"] == round(cpus * 1e6 / free_us / 1000, 3)
    two_step = bound.attainable("two_step", COSTS, ceiling_per_s=1000.0)
    # 4 exchanges, 7 commits, 3 signatures (two webhooks, the confirm), 4 checks
    assert two_step["floor_cpu_ms_per_payout"] == (4 * 50 + 7 * 40 + 3 * 300 + 4 * 20) / 1000
    status = bound.attainable("status_read", COSTS, ceiling_per_s=1000.0)
    assert status["floor_cpu_ms_per_payout"] == (50 + 20) / 1000
