"""Partner projects: registration, settings, and the key cache the server verifies with."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy.engine import Connection

from payout131.client import signing
from payout131.ledger.accounts import open_account, wallet_code
from payout131.payouts import fees
from payout131.storage import Database
from payout131.storage import schema as t

__all__ = [
    "Project",
    "ProjectCache",
    "add_project",
    "exists",
    "get_project",
    "get_projects",
    "update_project",
]

_SETTABLE = {
    "webhook_url",
    "single_request",
    "disabled",
    "legal_name",
    "inn",
    "kpp",
    "idempotency_mode",
    "confirm_timeout_s",
    "fee_bps",  # rails: the bank's fee (payouts/fees.py)
    "fee_fixed",
    "webhook_secret",  # webhooks/standard.py: opts the project into webhook-signature
}


@dataclass(frozen=True, slots=True)
class Project:
    id: str
    public_key_pem: str
    webhook_url: str | None
    single_request: bool
    disabled: bool
    legal_name: str | None
    inn: str | None
    kpp: str | None
    idempotency_mode: str
    confirm_timeout_s: int
    fee_bps: int = 0
    fee_fixed: int = 0
    webhook_secret: str | None = field(default=None, repr=False)

    @classmethod
    def from_row(cls, row: Any) -> Project:
        return cls(**{name: row._mapping[name] for name in cls.__slots__})


def add_project(
    conn: Connection, project_id: str, public_key_pem: str, now: int, **fields: Any
) -> None:
    """Register a project and open its collateral wallet."""
    signing.load_public_key(public_key_pem.encode())  # refuse a bad key at the door
    unknown = set(fields) - _SETTABLE
    if unknown:
        raise ValueError(f"unknown project settings: {sorted(unknown)}")
    fees.check_fee(fields.get("fee_bps", 0), fields.get("fee_fixed", 0))
    conn.execute(
        sa.insert(t.projects).values(
            id=project_id, public_key_pem=public_key_pem, created_at=now, **fields
        )
    )
    open_account(conn, wallet_code(project_id), "wallet", project_id, now)


def update_project(conn: Connection, project_id: str, **fields: Any) -> None:
    unknown = set(fields) - _SETTABLE - {"public_key_pem"}
    if unknown:
        raise ValueError(f"unknown project settings: {sorted(unknown)}")
    if "public_key_pem" in fields:
        signing.load_public_key(fields["public_key_pem"].encode())
    fees.check_fee(fields.get("fee_bps", 0), fields.get("fee_fixed", 0))
    done = conn.execute(sa.update(t.projects).where(t.projects.c.id == project_id).values(**fields))
    if done.rowcount != 1:
        raise LookupError(f"no project {project_id!r}")


def exists(conn: Connection, project_id: str) -> bool:
    found = conn.execute(sa.select(t.projects.c.id).where(t.projects.c.id == project_id))
    return found.scalar() is not None


def get_project(conn: Connection, project_id: str) -> Project | None:
    row = conn.execute(sa.select(t.projects).where(t.projects.c.id == project_id)).one_or_none()
    return None if row is None else Project.from_row(row)


def get_projects(conn: Connection, project_ids: Iterable[str]) -> dict[str, Project]:
    """The projects with these ids that exist, by id."""
    rows = conn.execute(sa.select(t.projects).where(t.projects.c.id.in_(sorted(set(project_ids)))))
    return {row.id: Project.from_row(row) for row in rows}


class ProjectCache:
    """Projects and their parsed public keys, re-read after ``ttl`` seconds.

    Parsing a key costs far more than a verification, and a project is read on every
    request, so both are cached; a change made by the CLI is seen within ``ttl``.
    """

    def __init__(self, db: Database, ttl: float = 2.0) -> None:
        self._db, self._ttl = db, ttl
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[float, Project | None]] = {}
        self._keys: dict[str, rsa.RSAPublicKey] = {}

    def peek(self, project_id: str) -> tuple[bool, Project | None]:
        """``(True, project)`` if a fresh answer is cached (``None``: no such project), else
        ``(False, None)``; never reads the database (the event loop may call this)."""
        with self._lock:
            cached = self._entries.get(project_id)
        if cached is not None and time.monotonic() - cached[0] < self._ttl:
            return True, cached[1]
        return False, None

    def get(self, project_id: str) -> Project | None:
        known, project = self.peek(project_id)
        if known:
            return project
        now = time.monotonic()
        with self._db.read() as conn:
            project = get_project(conn, project_id)
        with self._lock:
            self._entries[project_id] = (now, project)
        return project

    def public_key(self, project: Project) -> rsa.RSAPublicKey:
        key = self._keys.get(project.public_key_pem)
        if key is None:
            key = signing.load_public_key(project.public_key_pem.encode())
            with self._lock:
                self._keys[project.public_key_pem] = key
        return key
