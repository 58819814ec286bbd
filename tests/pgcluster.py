"""The test suite's private, throwaway PostgreSQL server.

`PgCluster` is `payout131.tools.pgcluster.Cluster` with the switches a test run wants: durability
off (fsync, synchronous_commit, full_page_writes), because the data lives for one run, and
data in RAM when /dev/shm has room, because every test creates and drops a database. The
names tests import from here (`PgClusterError`, `find_bindir`, `SUPERUSER`, `PORT`) are the
package's own.
"""

from __future__ import annotations

from pathlib import Path

from payout131.tools.pgcluster import PORT, SUPERUSER, Cluster, find_bindir
from payout131.tools.pgcluster import ClusterError as PgClusterError

__all__ = ["PORT", "SUPERUSER", "PgCluster", "PgClusterError", "find_bindir"]

SERVER_SETTINGS = {
    "max_connections": "200",
    "max_wal_size": "256MB",  # each clone writes ~8 MB of WAL; keep the footprint small
    "min_wal_size": "32MB",
    "autovacuum": "off",  # a worker inside a template would block CREATE DATABASE
}


class PgCluster(Cluster):
    """A PostgreSQL server in a temporary directory, alive inside a `with` block."""

    def __init__(self, bindir: Path | None = None, timeout: float = 30.0) -> None:
        super().__init__(
            durable=False,
            in_ram=True,
            settings=SERVER_SETTINGS,
            prefix="payout131-pg-",
            bindir=bindir,
            timeout=timeout,
        )
