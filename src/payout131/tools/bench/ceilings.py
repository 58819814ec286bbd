"""The storage ceiling: how many payouts' worth of durable commits the database can do.

A payout needs a fixed number of durable commits whatever the code around them does
(``COMMITS``: the state changes a crash must not lose, each of which a correct server
commits before it goes on). The ceiling runs exactly that many one-row commits per payout,
with nothing else: ``pgbench`` with a custom script on PostgreSQL (one ``INSERT`` per
line, each its own transaction, clients as many as the server's connection pool), a plain
``sqlite3`` loop on SQLite (WAL, ``synchronous=NORMAL``, ``BEGIN IMMEDIATE``: the server's
own settings). The result is in payouts per second, with what each commit cost in CPU (the
database's and its client's: PostgreSQL's backends and ``pgbench``, or this process) and how
busy the machine was meanwhile; ``bound.py`` weighs those costs.

The HTTP ceiling (``GET /health`` on the same server, driven by the same load generator)
is a load phase, run by the harness.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from payout131.tools.bench.cluster import DATABASE, DurableCluster
from payout131.tools.bench.usage import busy_share, children, machine_cpu, tree_cpu_seconds

__all__ = ["COMMITS", "EXCHANGES", "Storage", "pgbench_ceiling", "sqlite_ceiling"]

# Durable commits one payout needs: accepted (session, payout, hold); the rail reference,
# committed before the rail hears of the payout; the outcome (status, ledger, event); the
# webhook's delivery recorded. Two-step adds the ready_to_confirm change (with its event),
# its delivery, and the confirm.
COMMITS = {"single_request": 4, "two_step": 7, "status_read": 0}
# HTTP exchanges one payout needs: each API call and each webhook is one request and answer.
EXCHANGES = {"single_request": 2, "two_step": 4, "status_read": 1}

_TABLE = "bench_ceiling"


@dataclass(frozen=True, slots=True)
class Storage:
    """One storage ceiling: payouts per second, and what it cost."""

    payouts_per_s: float
    cpu_us_per_commit: float  # the database's and its client's CPU per durable commit
    busy_share: float  # of the machine's available CPU time while it ran


def pgbench_ceiling(
    cluster: DurableCluster, workdir: Path, commits: int, clients: int, seconds: float
) -> Storage:
    """Payouts per second if each cost ``commits`` durable one-row commits and nothing else."""
    with cluster.connect(DATABASE, autocommit=True) as conn:
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {_TABLE} "
            "(id bigserial PRIMARY KEY, payout bigint NOT NULL, step int NOT NULL)"
        )
    script = workdir / f"ceiling-{commits}.sql"
    lines = ["\\set p random(1, 1000000000)"]
    lines += [f"INSERT INTO {_TABLE} (payout, step) VALUES (:p, {i});" for i in range(commits)]  # noqa: S608
    script.write_text("\n".join(lines) + "\n")
    script.chmod(0o644)
    postmaster = cluster.postmaster_pid
    resident = len(children(postmaster))
    machine, database = machine_cpu(), tree_cpu_seconds(postmaster)
    run = cluster.pgbench(script, clients, seconds)
    # pgbench's backends end as it disconnects: once reaped, their CPU is the postmaster's
    deadline = time.monotonic() + 2.0
    while len(children(postmaster)) > resident and time.monotonic() < deadline:
        time.sleep(0.01)
    database = tree_cpu_seconds(postmaster) - database
    busy = busy_share(machine, machine_cpu())
    done = run.transactions * commits
    return Storage(run.tps, round((run.cpu_s + database) * 1e6 / done, 2), busy)


def sqlite_ceiling(path: Path, commits: int, seconds: float) -> Storage:
    """The same on SQLite, in this process: one writer, as SQLite allows."""
    conn = sqlite3.connect(path, isolation_level=None)
    machine, cpu = machine_cpu(), time.process_time()
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {_TABLE} "
            "(id INTEGER PRIMARY KEY, payout INTEGER NOT NULL, step INTEGER NOT NULL)"
        )
        payouts, start = 0, time.monotonic()
        end = start + seconds
        while time.monotonic() < end:
            for step in range(commits):
                conn.execute("BEGIN IMMEDIATE")
                conn.execute(
                    f"INSERT INTO {_TABLE} (payout, step) VALUES (?, ?)",  # noqa: S608
                    (payouts, step),
                )
                conn.execute("COMMIT")
            payouts += 1
        elapsed, cpu = time.monotonic() - start, time.process_time() - cpu
        busy = busy_share(machine, machine_cpu())
        return Storage(payouts / elapsed, round(cpu * 1e6 / (payouts * commits), 2), busy)
    finally:
        conn.close()
