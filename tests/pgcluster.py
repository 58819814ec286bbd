"""A private, throwaway PostgreSQL server for the test suite.

`PgCluster` runs `initdb` into a fresh temporary directory, starts a server that listens only
on a unix socket in that directory, and removes everything on exit. Durability is switched
off (fsync, synchronous_commit, full_page_writes) because the data lives for one test run.

`initdb` and `postgres` refuse to run as root, so when the suite runs as root (CI does) the
server runs as the `postgres` OS user, and the directory is created where that user can
reach it.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

import psycopg
from psycopg import sql
from psycopg.abc import Query
from psycopg.rows import TupleRow

SUPERUSER = "postgres"
PORT = 5432  # only names the socket file; the socket directory is private to the cluster
SERVER_SETTINGS = {
    "listen_addresses": "",
    "port": str(PORT),
    "max_connections": "200",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_wal_size": "256MB",  # each clone writes ~8 MB of WAL; keep the footprint small
    "min_wal_size": "32MB",
    "autovacuum": "off",  # a worker inside a template would block CREATE DATABASE
}
INITDB_OPTIONS = (
    f"--username={SUPERUSER}",
    "--auth=trust",
    "--encoding=UTF8",
    "--locale=C",
    "--no-sync",  # the cluster is deleted at the end of the run
    "--no-instructions",
)
REQUIRED_PROGRAMS = ("initdb", "pg_ctl", "postgres")
DISTRIBUTION_BINDIRS = Path("/usr/lib/postgresql")
RAM_DIR = Path("/dev/shm")  # tmpfs on Linux; Docker's default 64 MB is too small
RAM_DIR_MIN_FREE = 1 << 30


class PgClusterError(RuntimeError):
    """The cluster could not be found, created, started or stopped."""


class PgCluster:
    """A PostgreSQL server in a temporary directory, alive inside a `with` block."""

    def __init__(self, bindir: Path | None = None, timeout: float = 30.0) -> None:
        self.bindir = bindir or find_bindir()
        self.timeout = timeout
        self._owner = _server_owner()
        self._root: Path | None = None
        self._admin: psycopg.Connection[TupleRow] | None = None

    def __enter__(self) -> PgCluster:
        self._root = _make_root(self._owner)
        try:
            self._run("initdb", "--pgdata", self.data_dir, *INITDB_OPTIONS)
            self._configure()
            self._run(
                "pg_ctl",
                "start",
                "--wait",
                f"--timeout={int(self.timeout)}",
                "--pgdata",
                self.data_dir,
                "--log",
                self.log_file,
            )
            self._admin = self._wait_for_connections()
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
        if self._root is None:
            raise PgClusterError("the cluster is not running; use it in a `with` block")
        return self._root

    @property
    def data_dir(self) -> Path:
        return self.socket_dir / "data"

    @property
    def log_file(self) -> Path:
        return self.socket_dir / "server.log"

    def url(self, dbname: str) -> str:
        """A SQLAlchemy URL for `dbname`, connecting as the superuser over the socket."""
        return f"postgresql+psycopg://{SUPERUSER}@/{dbname}?host={self.socket_dir}"

    def connect(self, dbname: str, *, autocommit: bool = False) -> psycopg.Connection[TupleRow]:
        """A plain psycopg connection to `dbname`; the caller closes it."""
        return psycopg.connect(
            host=str(self.socket_dir),
            port=PORT,
            user=SUPERUSER,
            dbname=dbname,
            autocommit=autocommit,
            connect_timeout=max(1, int(self.timeout)),
        )

    def admin_execute(self, statement: Query) -> None:
        """Run one statement outside a transaction (CREATE/DROP DATABASE need that)."""
        if self._admin is None:
            raise PgClusterError("the cluster is not running; use it in a `with` block")
        self._admin.execute(statement)

    def create_database(self, name: str, template: str | None = None) -> None:
        """Create `name`, as a copy of `template` when given (a file copy: milliseconds)."""
        statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template is not None:
            statement += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
        self.admin_execute(statement)

    def drop_database(self, name: str) -> None:
        """Drop `name`, terminating its connections first (`WITH (FORCE)`)."""
        self.admin_execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )

    def make_template(self, name: str) -> None:
        """Close every connection to `name` and mark it as a template, ready to be cloned."""
        self.admin_execute(
            sql.SQL(
                "SELECT pg_terminate_backend(pid, {timeout}) FROM pg_stat_activity"
                " WHERE datname = {name} AND pid <> pg_backend_pid()"
            ).format(timeout=sql.Literal(int(self.timeout * 1000)), name=sql.Literal(name))
        )
        self.admin_execute(
            sql.SQL("ALTER DATABASE {} WITH IS_TEMPLATE true").format(sql.Identifier(name))
        )

    def _wait_for_connections(self) -> psycopg.Connection[TupleRow]:
        """The admin connection, once the server accepts one (`pg_ctl --wait` has already
        seen it start)."""
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                return self.connect("postgres", autocommit=True)
            except psycopg.OperationalError as error:
                if time.monotonic() > deadline:
                    raise PgClusterError(
                        f"the server did not accept connections within {self.timeout:g} s: "
                        f"{error}\n{self._log_excerpt()}"
                    ) from error
                time.sleep(0.05)

    def _configure(self) -> None:
        settings = {**SERVER_SETTINGS, "unix_socket_directories": str(self.socket_dir)}
        lines = [f"{key} = {_quote(value)}\n" for key, value in settings.items()]
        with (self.data_dir / "postgresql.conf").open("a", encoding="utf-8") as conf:
            conf.write("\n# Set by tests/pgcluster.py\n" + "".join(lines))

    def _run(self, program: str, *args: str | Path) -> None:
        owner = self._owner
        result = subprocess.run(
            [self.bindir / program, *args],
            cwd=self.socket_dir,
            env=_clean_environment(),
            capture_output=True,
            text=True,
            check=False,
            timeout=self.timeout + 10,
            user=owner.pw_uid if owner else None,
            group=owner.pw_gid if owner else None,
            extra_groups=[] if owner else None,
        )
        if result.returncode != 0:
            raise PgClusterError(
                f"{program} failed with exit code {result.returncode}\n"
                f"{result.stdout}{result.stderr}{self._log_excerpt()}"
            )

    def _log_excerpt(self) -> str:
        if self._root is None or not self.log_file.exists():
            return ""
        lines = self.log_file.read_text(encoding="utf-8", errors="replace").splitlines()
        return f"--- {self.log_file} (last 40 lines) ---\n" + "\n".join(lines[-40:])

    def _teardown(self) -> None:
        if self._admin is not None:
            self._admin.close()
            self._admin = None
        if self._root is None:
            return
        try:
            if (self.data_dir / "postmaster.pid").exists():
                self._run("pg_ctl", "stop", "--mode=immediate", "--wait", "--pgdata", self.data_dir)
        finally:
            shutil.rmtree(self._root, ignore_errors=True)
            self._root = None


def find_bindir(path: str | None = None, distribution_root: Path = DISTRIBUTION_BINDIRS) -> Path:
    """The directory holding initdb, pg_ctl and postgres: the one on `path` (default: $PATH),
    else the newest `distribution_root/<version>/bin`."""
    on_path = shutil.which("pg_ctl", path=path)
    candidates = [Path(on_path).resolve().parent] if on_path else []
    candidates += sorted(distribution_root.glob("*/bin"), key=_version, reverse=True)
    for bindir in candidates:
        if all((bindir / program).is_file() for program in REQUIRED_PROGRAMS):
            return bindir
    raise PgClusterError(
        "PostgreSQL server binaries (initdb, pg_ctl, postgres) were not found on PATH nor in "
        f"{distribution_root}/*/bin. The PostgreSQL half of the suite needs them: install "
        "the server package (e.g. `apt-get install postgresql-15`) or put its bin/ on PATH."
    )


def _version(bindir: Path) -> tuple[int, ...]:
    return tuple(int(part) for part in bindir.parent.name.split(".") if part.isdigit())


def _server_owner() -> pwd.struct_passwd | None:
    """The account to run the server as: `postgres` when we are root, else ourselves."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(SUPERUSER)
    except KeyError:
        raise PgClusterError(
            "running as root, and PostgreSQL refuses to run as root, but there is no "
            f"`{SUPERUSER}` OS user to run it as; create one (useradd --system {SUPERUSER})"
        ) from None


def _make_root(owner: pwd.struct_passwd | None) -> Path:
    """A fresh directory for data, socket and log that `owner` owns and can reach."""
    root = Path(tempfile.mkdtemp(prefix="payout131-pg-", dir=_base_dir()))
    root.chmod(0o755)
    if owner is not None:
        os.chown(root, owner.pw_uid, owner.pw_gid)
    return root


def _base_dir() -> Path:
    """RAM when there is room (creating a database makes ~600 files, slow on some disks),
    else the temporary directory; either way one that every user can enter."""
    for candidate in (RAM_DIR, Path(tempfile.gettempdir()), Path("/tmp")):
        if _usable(candidate):
            return candidate
    raise PgClusterError("no temporary directory that the PostgreSQL server's user can enter")


def _usable(directory: Path) -> bool:
    if not directory.is_dir():
        return False
    if directory == RAM_DIR and shutil.disk_usage(directory).free < RAM_DIR_MIN_FREE:
        return False
    return all(path.stat().st_mode & 0o001 for path in (directory, *directory.parents))


def _clean_environment() -> dict[str, str]:
    """Our environment without PG* variables, which would point the tools elsewhere."""
    return {key: value for key, value in os.environ.items() if not key.startswith("PG")}


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"
