"""Real ``payout131 worker`` processes: killed mid-delivery, and two sharing one database.

Each test writes events straight into the outbox (as the API would), starts workers with
``PAYOUT131_HOME`` and ``PAYOUT131_DATABASE_URL``, and watches a loopback receiver.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric import rsa

from partner import Partner, payout_body
from payout131 import projects
from payout131.client import signing
from payout131.clock import SystemClock
from payout131.ledger import book
from payout131.storage import Database
from payout131.storage import schema as t
from payout131.webhooks import events
from payout131.webhooks.bank_key import ensure_bank_keys
from served import stop
from webhook_receiver import Receiver, receiving

pytestmark = pytest.mark.timeout(180)

PAYOUT131 = str(Path(sys.executable).with_name("payout131"))


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiving() as endpoint:
        yield endpoint


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    yield database
    database.dispose()


@pytest.fixture
def env(database_url: str, tmp_path: Path) -> dict[str, str]:
    home = tmp_path / "home"
    ensure_bank_keys(home / "bank-private.pem", home / "bank-public.pem")
    return {
        **os.environ,
        "PAYOUT131_HOME": str(home),
        "PAYOUT131_DATABASE_URL": database_url,
        "PAYOUT131_WEBHOOK_POLL": "100ms",
        "PAYOUT131_WEBHOOK_TIMEOUT": "10s",
    }


def write_events(
    db: Database, key: rsa.RSAPrivateKey, urls: dict[str, str], sessions_per_project: int
) -> None:
    """Two events (ready_to_confirm, then payment_finished) per session, for each project."""
    now = SystemClock().now()
    pem = signing.public_key_pem(key).decode()
    with db.write() as conn:
        session_n = 0
        for project_id, url in urls.items():
            projects.add_project(conn, project_id, pem, now, webhook_url=url)
            for _ in range(sessions_per_project):
                session_n += 1
                for kind in ("ready_to_confirm", "payment_finished"):
                    body = json.dumps({"type": kind, "session": {"id": f"ps_{session_n}"}})
                    made = events.NewEvent(project_id, session_n, kind, body.encode())
                    events.emit(conn, None, [made], now)


@contextmanager
def process(args: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``payout131 <args>`` running; stopped with SIGTERM (or killed) on exit."""
    with log.open("ab") as out:
        running = subprocess.Popen([PAYOUT131, *args], env=env, stdout=out, stderr=out)
    try:
        yield running
    finally:
        stop(running, 15)


def worker(
    env: dict[str, str], log: Path, **extra: str
) -> AbstractContextManager[subprocess.Popen[bytes]]:
    """A webhooks-only ``payout131 worker``, as a context manager."""
    return process(["worker", "--no-payouts"], {**env, **extra}, log)


def wait_until(
    predicate: Callable[[], bool],
    what: str,
    seconds: float = 60,
    running: Sequence[subprocess.Popen[bytes]] = (),
    log: Path | None = None,
) -> None:
    """Poll ``predicate``; fail at once if one of ``running`` exits, or after ``seconds``."""
    deadline = time.monotonic() + seconds
    while not predicate():
        ended = [p.args for p in running if p.poll() is not None]
        tail = log.read_text()[-2000:] if log is not None else ""
        assert not ended, f"{ended} exited while waiting for {what}:\n{tail}"
        assert time.monotonic() < deadline, f"waited in vain for {what}:\n{tail}"
        time.sleep(0.05)


def statuses(db: Database) -> Counter[str]:
    with db.read() as conn:
        return Counter(conn.execute(sa.select(t.events.c.status)).scalars())


def attempts(db: Database) -> list[Any]:
    with db.read() as conn:
        return list(conn.execute(sa.select(t.webhook_attempts).order_by(t.webhook_attempts.c.id)))


def test_a_worker_killed_between_sending_and_recording_leads_to_redelivery(
    db: Database,
    env: dict[str, str],
    tmp_path: Path,
    receiver: Receiver,
    partner_keys: list[rsa.RSAPrivateKey],
) -> None:
    write_events(db, partner_keys[0], {"acme": receiver.url}, sessions_per_project=1)
    log = tmp_path / "workers.log"
    # The hook makes the worker stop after its POST was answered 200, before it records:
    # SIGKILL then lands exactly between "attempt sent" and "attempt recorded".
    hook = {"PAYOUT131_TEST_HANG_AFTER_SEND": "1", "PAYOUT131_WEBHOOK_LEASE": "5s"}
    with worker(env, log, PAYOUT131_WEBHOOK_TIMEOUT="4s", **hook) as doomed:
        receiver.wait_for(lambda found: len(found) == 1)
        doomed.send_signal(signal.SIGKILL)
        doomed.wait(15)
    assert doomed.returncode == -signal.SIGKILL
    assert statuses(db) == {"pending": 2}  # the first was sent, but nothing says so
    [unrecorded] = attempts(db)
    assert unrecorded.duration_us is None

    with worker(env, log) as second:  # once the dead worker's 5 s lease runs out, it resends
        wait_until(lambda: statuses(db) == {"delivered": 2}, "both deliveries", 30, [second], log)
    first, again, _ = receiver.deliveries
    assert first.id == again.id
    assert (first.body, first.signature) == (again.body, again.signature)
    assert first.headers["webhook-timestamp"] == again.headers["webhook-timestamp"]
    assert [d.json()["type"] for d in receiver.deliveries] == [
        "ready_to_confirm",
        "ready_to_confirm",
        "payment_finished",
    ]
    assert [a.http_status for a in attempts(db)] == [None, 200, 200]
    assert [a.attempt for a in attempts(db)] == [1, 2, 1]


def test_two_workers_deliver_a_thousand_events_each_exactly_once(
    db: Database,
    env: dict[str, str],
    tmp_path: Path,
    receiver: Receiver,
    partner_keys: list[rsa.RSAPrivateKey],
) -> None:
    urls = {f"p{i}": f"{receiver.url}/p{i}" for i in range(4)}
    write_events(db, partner_keys[0], urls, sessions_per_project=125)  # 1,000 events
    log = tmp_path / "workers.log"
    with worker(env, log) as one, worker(env, log) as two:
        wait_until(
            lambda: statuses(db) == {"delivered": 1000}, "1,000 deliveries", 90, [one, two], log
        )
    assert (one.returncode, two.returncode) == (0, 0), log.read_text()[-3000:]

    ids = Counter(d.id for d in receiver.deliveries)
    assert len(ids) == 1000
    assert ids.most_common(1)[0][1] == 1, "an event was delivered twice"
    seen: dict[str, list[str]] = {}
    for delivery in receiver.deliveries:
        body = delivery.json()
        seen.setdefault(body["session"]["id"], []).append(body["type"])
    assert set(map(tuple, seen.values())) == {("ready_to_confirm", "payment_finished")}
    failed = [(a.http_status, a.error) for a in attempts(db) if a.http_status != 200]
    assert failed == []
    workers = Counter(a.worker for a in attempts(db))
    assert len(workers) == 2, "both workers took part"
    assert sum(workers.values()) == 1000


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_serve_without_worker_plus_a_worker_process_delivers_the_flow(
    db: Database,
    env: dict[str, str],
    tmp_path: Path,
    receiver: Receiver,
    partner_keys: list[rsa.RSAPrivateKey],
) -> None:
    key = partner_keys[0]
    now = SystemClock().now()
    with db.write() as conn:
        pem = signing.public_key_pem(key).decode()
        projects.add_project(conn, "acme", pem, now, webhook_url=receiver.url)
        book.topup_wallet(conn, "acme", 50_000, now)
    port = free_port()
    log = tmp_path / "processes.log"
    api = ["serve", "--no-worker", "--port", str(port)]
    with process(api, env, log) as server, process(["worker"], env, log) as work:
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}")
        wait_until(lambda: _up(client), "the API to listen", 30, [server, work], log)
        partner = Partner(client, "acme", key)
        session_id = partner.ok("session/init/payout", payout_body(10_000))["session"]["id"]
        receiver.wait_for(lambda found: len(found) == 1)  # the worker ran the check and sent it
        assert receiver.bodies()[0]["type"] == "ready_to_confirm"
        partner.ok("session/confirm", {"session_id": session_id})
        receiver.wait_for(lambda found: len(found) == 2)
        client.close()
    finished = receiver.bodies()[1]
    assert finished["type"] == "payment_finished"
    assert finished["session"]["status"] == "accepted"


def _up(client: httpx.Client) -> bool:
    try:
        return client.get("/health").status_code == 200
    except httpx.TransportError:
        return False
