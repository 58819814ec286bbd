"""The storage ceiling: how many payouts' worth of durable commits the database can do.

A payout needs a fixed number of durable commits whatever the code around them does
(``COMMITS``: the state changes a crash must not lose, each of which a correct server
commits before it goes on). The ceiling runs exactly that many one-row commits per payout,
with nothing else: ``pgbench`` with a custom script on PostgreSQL (one ``INSERT`` per
line, each its own transaction, clients as many as the server's connection pool), a plain
``sqlite3`` loop on SQLite (WAL, ``synchronous=NORMAL``, ``BEGIN IMMEDIATE``: the server's
own settings). The result is in payouts per second.

The HTTP ceiling (``GET /health`` on the same server, driven by the same load generator)
is a load phase, run by the harness.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from payout131.bench.cluster import DATABASE, DurableCluster

__all__ = ["COMMITS", "EXCHANGES", "pgbench_ceiling", "sqlite_ceiling"]

# Durable commits one payout needs: accepted (session, payout, hold); the rail reference,
# committed before the rail hears of the payout; the outcome (status, ledger, event); the
# webhook's delivery recorded. Two-step adds the ready_to_confirm change (with its event),
# its delivery, and the confirm.
COMMITS = {"single_request": 4, "two_step": 7, "status_read": 0}
# HTTP exchanges one payout needs: each API call and each webhook is one request and answer.
EXCHANGES = {"single_request": 2, "two_step": 4, "status_read": 1}

_TABLE = "bench_ceiling"


def pgbench_ceiling(
    cluster: DurableCluster, workdir: Path, commits: int, clients: int, seconds: float
) -> float:
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
    return cluster.pgbench(script, clients, seconds)


def sqlite_ceiling(path: Path, commits: int, seconds: float) -> float:
    """The same on SQLite, in this process: one writer, as SQLite allows."""
    conn = sqlite3.connect(path, isolation_level=None)
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
        return payouts / (time.monotonic() - start)
    finally:
        conn.close()
