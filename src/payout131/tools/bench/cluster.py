"""The benchmark's private PostgreSQL server: durable commits, data on disk, and ``pgbench``.

Unlike the test suite's cluster (durability off, data in RAM), this one measures what a
production server pays for a commit: ``fsync``, ``synchronous_commit`` and
``full_page_writes`` stay on and the data directory is on disk (the system's temporary
directory, never ``/dev/shm``). Starting, configuring and removing it is
``payout131.tools.pgcluster``'s; what is here is what only the benchmark needs: the settings it
measures with, the server's version for the report, and the ``pgbench`` runs that measure
the storage ceiling.
"""

from __future__ import annotations

import re
import resource
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from payout131.tools.pgcluster import SUPERUSER, Cluster, ClusterError, clean_environment

__all__ = ["DATABASE", "ClusterError", "DurableCluster", "PgbenchRun"]

DATABASE = "payout131"
SETTINGS = {
    "max_connections": "200",
    "shared_buffers": "256MB",
    "max_wal_size": "2GB",
}


@dataclass(frozen=True, slots=True)
class PgbenchRun:
    tps: float  # scripts per second, without the clients' connection time
    transactions: int  # scripts run
    cpu_s: float  # pgbench's own CPU (user + system); the backends' is the cluster's


class DurableCluster(Cluster):
    """A durable cluster on disk with one database, ``payout131``; gone on exit."""

    def __init__(self, timeout: float = 60.0) -> None:
        super().__init__(
            durable=True,
            in_ram=False,
            settings=SETTINGS,
            database=DATABASE,
            prefix="payout131-bench-pg-",
            timeout=timeout,
        )

    def version(self) -> str:
        out = subprocess.run(
            [str(self.bindir / "postgres"), "--version"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout
        found = re.search(r"\d+(\.\d+)*", out)
        return found.group(0) if found else out.strip()

    def pgbench(self, script: Path, clients: int, seconds: float) -> PgbenchRun:
        """Run ``pgbench`` with a custom script: how many times a second it ran (``tps``),
        how many times in all, and the CPU pgbench spent."""
        pgbench = self.bindir / "pgbench"
        if not pgbench.is_file():
            on_path = shutil.which("pgbench")
            if on_path is None:
                raise ClusterError("pgbench was not found (the postgresql client package)")
            pgbench = Path(on_path)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        done = subprocess.run(
            [
                str(pgbench),
                "--host",
                str(self.socket_dir),
                f"--username={SUPERUSER}",
                "--no-vacuum",
                f"--client={clients}",
                "--jobs=2",
                f"--time={max(1, round(seconds))}",
                f"--file={script}",
                DATABASE,
            ],
            capture_output=True,
            text=True,
            check=False,
            env=clean_environment(),
            timeout=seconds + 60,
        )
        after = resource.getrusage(resource.RUSAGE_CHILDREN)  # pgbench is the child reaped
        tps = re.search(r"tps = ([\d.]+)", done.stdout)
        count = re.search(r"number of transactions actually processed: (\d+)", done.stdout)
        if done.returncode != 0 or tps is None or count is None:
            raise ClusterError(f"pgbench failed: {done.stdout}{done.stderr}")
        cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
        return PgbenchRun(float(tps.group(1)), int(count.group(1)), round(cpu, 3))
