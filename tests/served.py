"""``payout131 serve`` as a real subprocess, for tests of commands that talk to it over HTTP.

The server runs its own worker and webhook dispatcher, on the system clock, against the
database the test's ``database_url`` fixture made. The test registers partners directly in
that database, then drives the server through the CLI or the SDK.
"""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from payout131 import projects
from payout131.cli.setup import initialise
from payout131.client import signing
from payout131.clock import SystemClock
from payout131.ledger import book
from payout131.ledger.check import violations
from payout131.settings import Settings
from payout131.storage import Database

PAYOUT131 = str(Path(sys.executable).with_name("payout131"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Served:
    url: str
    home: Path
    database_url: str
    env: dict[str, str]
    log: Path
    pid: int = 0  # the server process

    def register(
        self, project_id: str, key: rsa.RSAPrivateKey, *, wallet: int = 0, **fields: object
    ) -> Path:
        """A project with ``key`` and a funded wallet; returns the path of its private key."""
        db = Database(self.database_url)
        try:
            now = SystemClock().now()
            with db.write() as conn:
                pem = signing.public_key_pem(key).decode()
                projects.add_project(conn, project_id, pem, now, **fields)
                if wallet:
                    book.topup_wallet(conn, project_id, wallet, now)
        finally:
            db.dispose()
        path = self.home.parent / f"{project_id}.pem"
        path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        return path

    def ledger_problems(self) -> list[str]:
        db = Database(self.database_url)
        try:
            with db.read() as conn:
                return violations(conn)
        finally:
            db.dispose()


@contextmanager
def serve(
    tmp_path: Path, database_url: str, *options: str, env: dict[str, str] | None = None
) -> Iterator[Served]:
    """Start ``payout131 serve [options]`` on a free loopback port, with ``env`` added to
    its environment; stop it (and wait) on exit."""
    home = tmp_path / "server-home"
    initialise(Settings(home=home, database_url=database_url), demo=False)  # payout131 init
    port = free_port()
    env = (
        {key: value for key, value in os.environ.items() if not key.startswith("PAYOUT131_")}
        | {
            "PAYOUT131_HOME": str(home),
            "PAYOUT131_DATABASE_URL": database_url,
        }
        | (env or {})
    )
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [PAYOUT131, "serve", "--port", str(port), *options],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    tls = "--ssl-certfile" in options  # HTTPS: the test's client trusts that certificate
    url = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    verify: ssl.SSLContext | bool = True
    if tls:
        verify = ssl.create_default_context(cafile=options[options.index("--ssl-certfile") + 1])
    try:
        _wait_until_up(url, process, log, verify)
        yield Served(url, home, database_url, env, log, process.pid)
    finally:
        stop(process, 20)


def stop(process: subprocess.Popen[bytes], seconds: float) -> None:
    """SIGTERM ``process`` unless it ended, wait up to ``seconds``, then kill it."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(seconds)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _wait_until_up(
    url: str, process: subprocess.Popen[bytes], log: Path, verify: ssl.SSLContext | bool = True
) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"payout131 serve exited: {log.read_text()}")
        try:
            if httpx.get(f"{url}/health", timeout=1, verify=verify).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"payout131 serve did not answer in 60 s: {log.read_text()}")
