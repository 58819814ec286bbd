"""The benchmark's partners and their history: projects, keys, funded accounts, preloads.

Each payout scenario gets its own project, so its sessions, accounts and webhooks are its
own: one settlement account for the hot-row case, 100 for the ``_spread`` variant. Keys are
written to the bench home for the load process. ``preload`` bulk-inserts finished payouts
(session, payout, posted hold, ledger transaction, delivered event) so that a phase can be
measured on a database that already holds many sessions; the ledger triggers run as for
any write, so ``payout131 ledger check`` still adds up afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import msgspec
import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy.engine import Connection

from payout131 import projects
from payout131.clock import SystemClock
from payout131.ledger import accounts, book
from payout131.payouts.states import PayoutStatus, SessionStatus
from payout131.storage import Database, sql
from payout131.storage import schema as t
from payout131.storage.sql import Sql
from payout131.tools.bench.load import RECIPIENT

__all__ = ["FUNDS", "BenchPartner", "preload", "register", "settle", "stored_sessions"]

FUNDS = 10**15  # kopecks on every account: no scenario ever runs short
PRELOAD_AMOUNT = 10_000
_BATCH = 500  # rows a transaction: the ledger's balance triggers slow down on long ones


@dataclass(frozen=True, slots=True)
class BenchPartner:
    project: str
    key_path: Path
    accounts: list[str]
    single_request: bool


def register(
    db: Database, folder: Path, project: str, single_request: bool, n_accounts: int, hook: str
) -> BenchPartner:
    """A project with a fresh key pair, ``n_accounts`` funded settlement accounts and the
    load process's receiver as its webhook URL."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    folder.mkdir(parents=True, exist_ok=True)
    key_path = folder / f"{project}.pem"
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    now = SystemClock().now()
    numbers = []
    with db.write() as conn:
        projects.add_project(
            conn,
            project,
            public.decode(),
            now,
            webhook_url=f"{hook}/{project}",
            single_request=single_request,
            legal_name=f'ООО "{project}"',
            inn="7707083893",
            kpp="773601001",
        )
        for _ in range(n_accounts):
            number = accounts.open_settlement_account(conn, project, now)
            account = accounts.account_id(conn, number)
            assert account is not None
            book.topup(conn, account, FUNDS, now)
            numbers.append(number)
    return BenchPartner(project, key_path, numbers, single_request)


def stored_sessions(db: Database) -> int:
    with db.read() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(t.sessions)).scalar_one())


def settle(db: Database) -> None:
    """After a bulk preload, what an operator does after a bulk load: fresh planner
    statistics and the new rows' visibility settled (PostgreSQL ``VACUUM (ANALYZE)``; SQLite
    ``ANALYZE`` and its write-ahead log folded back), so that the maintenance the load left
    due (autovacuum, a large checkpoint) does not run inside the phase measured next."""
    with db.engine.connect() as conn:
        if db.is_sqlite:
            conn.exec_driver_sql("ANALYZE")
            conn.commit()
            # outside a transaction; a reader of the server's may keep part of the log
            conn.connection.driver_connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # type: ignore[union-attr]
            return
        conn = conn.execution_options(isolation_level="AUTOCOMMIT")  # VACUUM: no transaction
        conn.exec_driver_sql("VACUUM (ANALYZE)")


def preload(db: Database, partner: BenchPartner, count: int) -> None:
    """Insert ``count`` finished single-request payouts of ``partner`` from its first account,
    in batches of a few thousand rows (one transaction each)."""
    with db.read() as conn:
        account = accounts.account_id(conn, partner.accounts[0])
    assert account is not None
    done = 0
    while done < count:
        size = min(_BATCH, count - done)
        with db.write() as conn:
            _batch(conn, partner.project, account, size)
        done += size


def _destination() -> tuple[str, str]:
    ru = dict(RECIPIENT)
    destination = {"type": "bank_account", "bank_account": {"system_type": "ru", "ru": ru}}
    recipient = {
        "account_number": ru["account"],
        "token": None,
        "name": ru["full_name"],
        "bank_name": "АО «ТБанк»",
        "bik": ru["bik"],
        "correspondent_account_number": "30101810145250000974",
        "inn": None,
        "kpp": None,
    }
    return msgspec.json.encode(destination).decode(), msgspec.json.encode(recipient).decode()


# finished single-request payouts, made by the database itself: the batch's sessions
# counted out by a recursive query, then a payout and a delivered event for each
_SESSIONS = Sql(
    """WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < :size)
    INSERT INTO sessions (project_id, api_version, rko, status, draft, created_at, updated_at)
    SELECT :project, 'v1', :rko, :status, '{}', :now, :now FROM g RETURNING n"""
)
_PAYOUTS = Sql(
    """INSERT INTO payouts (session_n, project_id, status, amount, currency, account_id,
    destination, recipient, rail, rail_reference, created_at, updated_at, finished_at, fee)
    SELECT n, project_id, :status, :amount, 'rub', :account, :destination, :recipient,
    'simulator', 'preload-' || n, :now, :now, :now, 0 FROM sessions WHERE n = ANY(:numbers)
    RETURNING n"""
)
_EVENTS = Sql(
    """INSERT INTO events (project_id, session_n, type, body, status, attempts,
    next_attempt_at, created_at, delivered_at)
    SELECT project_id, n, 'payment_finished', :body, 'delivered', 1, :now, :now, :now
    FROM sessions WHERE n = ANY(:numbers)"""
)
_BODY = b'{"type":"payment_finished","session":{"preloaded":true}}'


def _batch(conn: Connection, project: str, account: int, size: int) -> None:
    now = SystemClock().now()
    destination, recipient = _destination()
    made = {"size": size, "project": project, "rko": True, "status": SessionStatus.ACCEPTED}
    session_ns = [row.n for row in sql.rows(conn, _SESSIONS, made | {"now": now})]
    paid = {"status": PayoutStatus.SUCCEEDED, "amount": PRELOAD_AMOUNT, "account": account}
    paid |= {"destination": destination, "recipient": recipient, "now": now}
    payout_ns = [row.n for row in sql.rows(conn, _PAYOUTS, paid | {"numbers": session_ns})]
    # the money moves through the ledger, as a payout's would: held, then posted
    book.place_holds(conn, [book.Hold(account, p, PRELOAD_AMOUNT) for p in payout_ns], now)
    book.post_holds(conn, [book.Posting(p, 0) for p in payout_ns], now)
    sql.run(conn, _EVENTS, {"body": _BODY, "now": now, "numbers": session_ns})
