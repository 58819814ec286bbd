"""A private, throwaway PostgreSQL server: the one implementation behind the test suite's,
the benchmark's and the crash test's clusters.

`Cluster` runs `initdb` into a fresh temporary directory, starts a server that listens only
on a unix socket in that directory, and removes everything on `destroy` (or at the end of a
`with` block). What differs between its users is a few switches, not code:

- `durable`: the benchmark and the crash test measure or prove what a production server
  does, so `fsync`, `synchronous_commit` and `full_page_writes` stay on (PostgreSQL's
  defaults, written out so that nobody wonders); the test suite switches them off, since
  its data lives for one run.
- `in_ram`: data in `/dev/shm` when it has room (creating a database makes ~600 files, slow
  on some disks); the benchmark keeps it on disk, where a commit costs what it would cost.
- `settings`: anything else for `postgresql.conf`.

`initdb` and `postgres` refuse to run as root, so when we are root (CI is) the server runs
as the `postgres` OS user, and the directory is created where that user can reach it.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Literal, Self

import psycopg
from psycopg import sql
from psycopg.abc import Query
from psycopg.rows import TupleRow

__all__ = [
    "PORT",
    "SUPERUSER",
    "Cluster",
    "ClusterError",
    "clean_environment",
    "find_bindir",
    "make_root",
    "server_owner",
]

SUPERUSER = "postgres"
PORT = 5432  # only names the socket file; the socket directory is private to the cluster
REQUIRED_PROGRAMS = ("initdb", "pg_ctl", "postgres")
DISTRIBUTION_BINDIRS = Path("/usr/lib/postgresql")
RAM_DIR = Path("/dev/shm")  # noqa: S108 (tmpfs; each cluster gets its own mkdtemp inside)
RAM_DIR_MIN_FREE = 1 << 30  # Docker's default 64 MB /dev/shm is too small
INITDB_OPTIONS = (
    f"--username={SUPERUSER}",
    "--auth=trust",
    "--encoding=UTF8",
    "--locale=C",
    "--no-instructions",
)

StopMode = Literal["smart", "fast", "immediate"]


class ClusterError(RuntimeError):
    """The cluster could not be found, created, started, stopped or used."""


class Cluster:
    """A PostgreSQL server in a temporary directory: `create`, `start`, `stop`/`crash`,
    `destroy`; or alive inside a `with` block."""

    def __init__(
        self,
        *,
        durable: bool,
        in_ram: bool,
        settings: Mapping[str, str] | None = None,
        database: str | None = None,
        prefix: str = "payout131-pg-",
        bindir: Path | None = None,
        timeout: float = 30.0,
    ) -> None:
        """`database`, when given, is created with the cluster and is what `url()` names."""
        self.bindir = bindir or find_bindir()
        self.durable = durable
        self.in_ram = in_ram
        self.settings = dict(settings or {})
        self.database = database
        self.prefix = prefix
        self.timeout = timeout
        self.owner = server_owner()
        self.root: Path | None = None
        self._admin: psycopg.Connection[TupleRow] | None = None

    def __enter__(self) -> Self:
        self.create()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.destroy()

    # -- life cycle

    def create(self) -> None:
        """initdb, configure and start; on any failure, nothing is left behind."""
        self.root = make_root(self.owner, self.prefix, self.in_ram)
        try:
            sync = () if self.durable else ("--no-sync",)  # a throwaway needs no flush
            self._run("initdb", "--pgdata", self.data_dir, *INITDB_OPTIONS, *sync)
            self._configure()
            self.start()
            if self.database is not None:
                self.create_database(self.database)
                self._close_admin()  # nothing of ours stays connected to the server in use
        except BaseException:
            self.destroy()
            raise

    def start(self) -> None:
        """Start the server (again, after `stop` or `crash`) and wait until it accepts
        connections."""
        self._run("pg_ctl", "start", "--wait", f"--timeout={int(self.timeout)}",
                  "--pgdata", self.data_dir, "--log", self.log_file)  # fmt: skip
        self._wait_for_connections()

    def stop(self, mode: StopMode = "fast") -> None:
        self._close_admin()
        self._run("pg_ctl", "stop", f"--mode={mode}", "--wait", "--pgdata", self.data_dir)

    def crash(self) -> None:
        """Stop the server abruptly: no checkpoint, every connection cut (crash recovery on
        the next start)."""
        self.stop("immediate")

    def destroy(self) -> None:
        """Stop the server if it runs (immediately: its data is about to go) and remove the
        directory."""
        self._close_admin()
        if self.root is None:
            return
        try:
            if (self.data_dir / "postmaster.pid").exists():
                self.stop("immediate")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None

    # -- where things are

    @property
    def socket_dir(self) -> Path:
        if self.root is None:
            raise ClusterError("the cluster is not running; create it or use it in a `with`")
        return self.root

    @property
    def data_dir(self) -> Path:
        return self.socket_dir / "data"

    @property
    def log_file(self) -> Path:
        return self.socket_dir / "server.log"

    @property
    def postmaster_pid(self) -> int:
        return int((self.data_dir / "postmaster.pid").read_text().split()[0])

    def url(self, dbname: str | None = None) -> str:
        """A SQLAlchemy URL for `dbname` (default: the cluster's `database`), connecting as
        the superuser over the socket."""
        name = dbname or self.database
        if name is None:
            raise ClusterError("which database? this cluster was created without one")
        return f"postgresql+psycopg://{SUPERUSER}@/{name}?host={self.socket_dir}"

    # -- SQL

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
        """Run one statement outside a transaction (CREATE/DROP DATABASE need that), on a
        connection kept open between calls (a new one is a fork on the server)."""
        if self._admin is None:
            self._admin = self.connect("postgres", autocommit=True)
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

    # -- internals

    def _configure(self) -> None:
        durability = "on" if self.durable else "off"
        settings = {
            "listen_addresses": "",
            "unix_socket_directories": str(self.socket_dir),
            "port": str(PORT),
            "fsync": durability,
            "synchronous_commit": durability,
            "full_page_writes": durability,
            **self.settings,
        }
        lines = [f"{key} = {_quote(value)}\n" for key, value in settings.items()]
        with (self.data_dir / "postgresql.conf").open("a", encoding="utf-8") as conf:
            conf.write(f"\n# Set by {__name__}\n" + "".join(lines))

    def _wait_for_connections(self) -> None:
        """Return once the server accepts a connection (`pg_ctl --wait` has already seen it
        start)."""
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                self.connect("postgres", autocommit=True).close()
                return
            except psycopg.OperationalError as error:
                if time.monotonic() > deadline:
                    raise ClusterError(
                        f"the server did not accept connections within {self.timeout:g} s: "
                        f"{error}\n{self._log_excerpt()}"
                    ) from error
                time.sleep(0.05)

    def _close_admin(self) -> None:
        if self._admin is not None:
            self._admin.close()
            self._admin = None

    def _run(self, program: str, *args: str | Path) -> None:
        owner = self.owner
        result = subprocess.run(
            [self.bindir / program, *args],
            cwd=self.socket_dir,
            env=clean_environment(),
            capture_output=True,
            text=True,
            check=False,
            timeout=self.timeout + 10,
            user=owner.pw_uid if owner else None,
            group=owner.pw_gid if owner else None,
            extra_groups=[] if owner else None,
        )
        if result.returncode != 0:
            raise ClusterError(
                f"{program} failed with exit code {result.returncode}\n"
                f"{result.stdout}{result.stderr}{self._log_excerpt()}"
            )

    def _log_excerpt(self) -> str:
        if self.root is None or not self.log_file.exists():
            return ""
        lines = self.log_file.read_text(encoding="utf-8", errors="replace").splitlines()
        return f"--- {self.log_file} (last 40 lines) ---\n" + "\n".join(lines[-40:])


def find_bindir(path: str | None = None, distribution_root: Path = DISTRIBUTION_BINDIRS) -> Path:
    """The directory holding initdb, pg_ctl and postgres: the one on `path` (default: $PATH),
    else the newest `distribution_root/<version>/bin`."""
    on_path = shutil.which("pg_ctl", path=path)
    candidates = [Path(on_path).resolve().parent] if on_path else []
    candidates += sorted(distribution_root.glob("*/bin"), key=_version, reverse=True)
    for bindir in candidates:
        if all((bindir / program).is_file() for program in REQUIRED_PROGRAMS):
            return bindir
    raise ClusterError(
        "PostgreSQL server binaries (initdb, pg_ctl, postgres) were not found on PATH nor in "
        f"{distribution_root}/*/bin; install the server package (e.g. `apt-get install "
        "postgresql-15`) or put its bin/ on PATH"
    )


def _version(bindir: Path) -> tuple[int, ...]:
    """Numerically, so that 9.6 sorts below 15."""
    return tuple(int(part) for part in bindir.parent.name.split(".") if part.isdigit())


def server_owner() -> pwd.struct_passwd | None:
    """The account to run the server as: `postgres` when we are root, else ourselves."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(SUPERUSER)
    except KeyError:
        raise ClusterError(
            "running as root, and PostgreSQL refuses to run as root, but there is no "
            f"`{SUPERUSER}` OS user to run it as; create one (useradd --system {SUPERUSER})"
        ) from None


def clean_environment() -> dict[str, str]:
    """Our environment without PG* variables, which would point the tools elsewhere."""
    return {key: value for key, value in os.environ.items() if not key.startswith("PG")}


def make_root(owner: pwd.struct_passwd | None, prefix: str, in_ram: bool) -> Path:
    """A fresh directory for data, socket and log that `owner` owns and can reach."""
    root = Path(tempfile.mkdtemp(prefix=prefix, dir=_base_dir(in_ram)))
    root.chmod(0o755)
    if owner is not None:
        os.chown(root, owner.pw_uid, owner.pw_gid)
    return root


def _base_dir(in_ram: bool) -> Path:
    """RAM when wanted and there is room, else the temporary directory; either way one that
    every user can enter."""
    candidates = [Path(tempfile.gettempdir()), Path("/tmp")]  # noqa: S108
    for candidate in [RAM_DIR, *candidates] if in_ram else candidates:
        if _usable(candidate):
            return candidate
    raise ClusterError("no temporary directory that the PostgreSQL server's user can enter")


def _usable(directory: Path) -> bool:
    if not directory.is_dir():
        return False
    if directory == RAM_DIR and shutil.disk_usage(directory).free < RAM_DIR_MIN_FREE:
        return False
    return all(path.stat().st_mode & 0o001 for path in (directory, *directory.parents))


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"
