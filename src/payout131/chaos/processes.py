"""The processes the crash test runs, kills and restarts.

``ServerProcess`` is ``payout131 serve`` as a child process whose output goes to a log file
(appended across restarts). ``PostgresCluster`` is a private PostgreSQL server in a
temporary directory, listening only on a unix socket, with durable commits (``fsync`` and
``synchronous_commit`` on, the defaults), so that stopping it with ``pg_ctl stop -m
immediate`` is a real crash that must lose nothing committed. As root, PostgreSQL runs as the
``postgres`` OS user, since it refuses to run as root.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

import httpx

from payout131.bench.cluster import clean_environment, find_bindir, server_owner

__all__ = ["PostgresCluster", "ProcessError", "ServerProcess", "free_port"]

PAYOUT131 = Path(sys.executable).with_name("payout131")


class ProcessError(RuntimeError):
    """A process did not start, or did not answer in time."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ServerProcess:
    """``payout131 serve`` on a loopback port, configured by ``env``, logging to ``log``."""

    def __init__(self, env: Mapping[str, str], log: Path, port: int | None = None) -> None:
        self.env, self.log = dict(env), log
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, timeout: float = 60.0) -> None:
        """Start the server and wait until ``/health`` answers."""
        with self.log.open("ab") as out:
            self._process = subprocess.Popen(
                [str(PAYOUT131), "serve", "--port", str(self.port)],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.starts += 1
        self._wait_until_up(timeout)

    def _wait_until_up(self, timeout: float) -> None:
        assert self._process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise ProcessError(f"payout131 serve exited; see {self.log}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise ProcessError(f"payout131 serve did not answer in {timeout:g} s; see {self.log}")

    def kill(self) -> None:
        """SIGKILL: no shutdown, no cleanup, whatever it was doing."""
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGKILL)
            self._process.wait()

    def stop(self) -> None:
        """SIGTERM and wait; SIGKILL if it does not stop within 20 s."""
        if self._process is None or self._process.poll() is not None:
            return
        self._process.send_signal(signal.SIGTERM)
        try:
            self._process.wait(20)
        except subprocess.TimeoutExpired:
            self.kill()


class PostgresCluster:
    """A throwaway PostgreSQL server with one database, ``payout131``."""

    def __init__(self, timeout: float = 60.0) -> None:
        self.bindir = find_bindir()
        self.timeout = timeout
        self.owner = server_owner()
        self.root = Path(tempfile.mkdtemp(prefix="payout131-chaos-pg-", dir=_base_dir()))
        self.root.chmod(0o755)
        if self.owner is not None:
            os.chown(self.root, self.owner.pw_uid, self.owner.pw_gid)
        self.data = self.root / "data"
        self.url = f"postgresql+psycopg://postgres@/payout131?host={self.root}"
        self.crashes = 0

    def create(self) -> None:
        self._run("initdb", "--pgdata", str(self.data), "--username=postgres", "--auth=trust",
                  "--encoding=UTF8", "--locale=C", "--no-instructions")  # fmt: skip
        settings = {
            "listen_addresses": "''",
            "unix_socket_directories": f"'{self.root}'",
            "max_connections": "100",
            "autovacuum": "off",
        }
        with (self.data / "postgresql.conf").open("a", encoding="utf-8") as conf:
            conf.write("".join(f"{key} = {value}\n" for key, value in settings.items()))
        self.start()
        self._run("createdb", "--host", str(self.root), "--username=postgres", "payout131")

    def start(self) -> None:
        self._run("pg_ctl", "start", "--wait", f"--timeout={int(self.timeout)}",
                  "--pgdata", str(self.data), "--log", str(self.root / "server.log"))  # fmt: skip

    def crash(self) -> None:
        """Stop the server abruptly: no checkpoint, every connection cut (crash recovery on
        the next start)."""
        self._run("pg_ctl", "stop", "--mode=immediate", "--wait", "--pgdata", str(self.data))
        self.crashes += 1

    def destroy(self) -> None:
        try:
            if (self.data / "postmaster.pid").exists():
                self._run(
                    "pg_ctl", "stop", "--mode=immediate", "--wait", "--pgdata", str(self.data)
                )
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def _run(self, program: str, *args: str) -> None:
        owner = self.owner
        result = subprocess.run(
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
        if result.returncode != 0:
            raise ProcessError(f"{program} failed: {result.stdout}{result.stderr}")


def _base_dir() -> str:
    """A directory every user can enter: RAM if there is room, else the temporary one."""
    shm = Path("/dev/shm")  # noqa: S108 (tmpfs; the cluster gets its own mkdtemp inside)
    if shm.is_dir() and shutil.disk_usage(shm).free > (1 << 30):
        return str(shm)
    return tempfile.gettempdir()
