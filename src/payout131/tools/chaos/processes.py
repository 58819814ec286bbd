"""The processes the crash test runs, kills and restarts.

``ServerProcess`` is ``payout131 serve`` as a child process whose output goes to a log file
(appended across restarts). ``PostgresCluster`` is a private PostgreSQL server
(``payout131.tools.pgcluster``) with durable commits (``fsync`` and ``synchronous_commit`` on), so
that stopping it with ``pg_ctl stop -m immediate`` is a real crash that must lose nothing
committed.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

from payout131.tools.pgcluster import Cluster

__all__ = [
    "PostgresCluster",
    "ProcessError",
    "ServerProcess",
    "answers_health",
    "count_in",
    "free_port",
    "ledger_check",
    "stop",
]

PAYOUT131 = Path(sys.executable).with_name("payout131")


class ProcessError(RuntimeError):
    """A process did not start, or did not answer in time."""


def answers_health(url: str, process: subprocess.Popen[Any], timeout: float) -> bool:
    """Whether ``url``/health answers 200 within ``timeout`` seconds; False at once if
    ``process`` (the one that should answer) has exited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return True
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    return False


def stop(process: subprocess.Popen[Any] | None, seconds: float) -> None:
    """SIGTERM ``process`` unless it has ended, wait up to ``seconds``, then SIGKILL."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(seconds)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


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
        if answers_health(self.url, self._process, timeout):
            return
        if self._process.poll() is not None:
            raise ProcessError(f"payout131 serve exited; see {self.log}")
        raise ProcessError(f"payout131 serve did not answer in {timeout:g} s; see {self.log}")

    def kill(self) -> None:
        """SIGKILL: no shutdown, no cleanup, whatever it was doing."""
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGKILL)
            self._process.wait()

    def stop(self) -> None:
        """SIGTERM and wait; SIGKILL if it does not stop within 20 s."""
        stop(self._process, 20)


class PostgresCluster(Cluster):
    """A throwaway PostgreSQL server with durable commits and one database, ``payout131``:
    ``create``, ``crash``, ``start`` again, ``destroy``."""

    def __init__(self, timeout: float = 60.0) -> None:
        super().__init__(
            durable=True,
            # RAM when there is room: the crash is the server's (an immediate stop), not the
            # machine's, so tmpfs keeps what was written just as a disk would
            in_ram=True,
            settings={"max_connections": "100", "autovacuum": "off"},
            database="payout131",
            prefix="payout131-chaos-pg-",
            timeout=timeout,
        )


def ledger_check(env: Mapping[str, str]) -> tuple[int, str]:
    """``payout131 ledger check`` on the store ``env`` names: its exit status and output."""
    done = subprocess.run(
        [str(PAYOUT131), "ledger", "check"],
        env=dict(env),
        capture_output=True,
        text=True,
        check=False,
    )
    return done.returncode, done.stdout + done.stderr


def count_in(path: Path, needle: str) -> int:
    """How many times ``needle`` occurs in the file (0 if there is none)."""
    try:
        return path.read_text(encoding="utf-8", errors="replace").count(needle)
    except FileNotFoundError:
        return 0
