"""A private PostgreSQL server for the benchmark, with durable commits.

Unlike the test suite's cluster (durability off, data in RAM), this one measures what a
production server pays for a commit: ``fsync``, ``synchronous_commit`` and
``full_page_writes`` stay on (PostgreSQL's defaults) and the data directory is on disk
(the system's temporary directory, never ``/dev/shm``). It listens only on a unix socket in
its own directory. As root, PostgreSQL runs as the ``postgres`` OS user (it refuses root).
The same directory holds the ``pgbench`` runs that measure the storage ceiling.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType

__all__ = ["ClusterError", "DurableCluster", "clean_environment", "find_bindir", "server_owner"]

DATABASE = "payout131"
SETTINGS = {
    "listen_addresses": "''",
    "max_connections": "200",
    "shared_buffers": "'256MB'",
    "max_wal_size": "'2GB'",
    # durable: these are PostgreSQL's defaults, written out so that nobody wonders
    "fsync": "on",
    "synchronous_commit": "on",
    "full_page_writes": "on",
}


class ClusterError(RuntimeError):
    """The cluster could not be created, started or used."""


class DurableCluster:
    """``initdb`` + ``pg_ctl start`` in a temporary directory on disk; gone on exit."""

    def __init__(self, timeout: float = 60.0) -> None:
        self.bindir = find_bindir()
        self.timeout = timeout
        self.owner = server_owner()
        self.root: Path | None = None

    def __enter__(self) -> DurableCluster:
        self.root = Path(tempfile.mkdtemp(prefix="payout131-bench-pg-"))
        self.root.chmod(0o755)
        if self.owner is not None:
            os.chown(self.root, self.owner.pw_uid, self.owner.pw_gid)
        try:
            self._run(
                "initdb",
                "--pgdata",
                str(self.data),
                "--username=postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-instructions",
            )
            conf = {**SETTINGS, "unix_socket_directories": f"'{self.root}'"}
            with (self.data / "postgresql.conf").open("a", encoding="utf-8") as out:
                out.write("".join(f"{key} = {value}\n" for key, value in conf.items()))
            self._run(
                "pg_ctl",
                "start",
                "--wait",
                f"--timeout={int(self.timeout)}",
                "--pgdata",
                str(self.data),
                "--log",
                str(self.root / "server.log"),
            )
            self._run("createdb", "--host", str(self.root), "--username=postgres", DATABASE)
        except BaseException:
            self._teardown()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._teardown()

    @property
    def socket_dir(self) -> Path:
        if self.root is None:
            raise ClusterError("the cluster is not running; use it in a `with` block")
        return self.root

    @property
    def data(self) -> Path:
        return self.socket_dir / "data"

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@/{DATABASE}?host={self.socket_dir}"

    @property
    def postmaster_pid(self) -> int:
        return int((self.data / "postmaster.pid").read_text().split()[0])

    def version(self) -> str:
        out = subprocess.run(
            [str(self.bindir / "postgres"), "--version"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout
        found = re.search(r"\d+(\.\d+)*", out)
        return found.group(0) if found else out.strip()

    def pgbench(self, script: Path, clients: int, seconds: float) -> float:
        """Run ``pgbench`` with a custom script; the script runs per second (its ``tps``)."""
        pgbench = self.bindir / "pgbench"
        if not pgbench.is_file():
            on_path = shutil.which("pgbench")
            if on_path is None:
                raise ClusterError("pgbench was not found (the postgresql client package)")
            pgbench = Path(on_path)
        done = subprocess.run(
            [
                str(pgbench),
                "--host",
                str(self.socket_dir),
                "--username=postgres",
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
        found = re.search(r"tps = ([\d.]+)", done.stdout)
        if done.returncode != 0 or found is None:
            raise ClusterError(f"pgbench failed: {done.stdout}{done.stderr}")
        return float(found.group(1))

    def _teardown(self) -> None:
        if self.root is None:
            return
        try:
            if (self.data / "postmaster.pid").exists():
                self._run("pg_ctl", "stop", "--mode=fast", "--wait", "--pgdata", str(self.data))
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None

    def _run(self, program: str, *args: str) -> None:
        owner = self.owner
        done = subprocess.run(
            [str(self.bindir / program), *args],
            cwd=self.root,
            env=clean_environment(),
            capture_output=True,
            text=True,
            check=False,
            timeout=self.timeout + 10,
            user=owner.pw_uid if owner else None,
            group=owner.pw_gid if owner else None,
            extra_groups=[] if owner else None,
        )
        if done.returncode != 0:
            raise ClusterError(f"{program} failed: {done.stdout}{done.stderr}")


def find_bindir() -> Path:
    """The PostgreSQL server binaries: on PATH, else the newest ``/usr/lib/postgresql/*/bin``."""
    on_path = shutil.which("pg_ctl")
    candidates = [Path(on_path).resolve().parent] if on_path else []
    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=_version, reverse=True)
    for bindir in candidates:
        if all((bindir / p).is_file() for p in ("initdb", "pg_ctl", "postgres", "createdb")):
            return bindir
    raise ClusterError(
        "PostgreSQL server binaries (initdb, pg_ctl, postgres) were not found; install the "
        "server package (e.g. postgresql-15) or use --engine sqlite"
    )


def _version(bindir: Path) -> tuple[int, ...]:
    return tuple(int(part) for part in bindir.parent.name.split(".") if part.isdigit())


def server_owner() -> pwd.struct_passwd | None:
    """Who runs the server: ``postgres`` when we are root (initdb refuses root), else us."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam("postgres")
    except KeyError:
        raise ClusterError("running as root and there is no `postgres` user to run as") from None


def clean_environment() -> dict[str, str]:
    """Our environment without ``PG*`` variables, which would steer the server's tools."""
    return {key: value for key, value in os.environ.items() if not key.startswith("PG")}
