"""Partner projects: registration, settings, and the key cache the server verifies with."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy.engine import Connection

from payout131.client import signing
from payout131.clock import SystemClock
from payout131.errors import InvalidRequest
from payout131.ledger.accounts import open_account, wallet_code
from payout131.payouts import fees
from payout131.project_keys import KeyUses, ProjectKey, active_keys, replace_keys
from payout131.protocol.validation import check_full_name, check_inn, check_kpp
from payout131.storage import Database, locks
from payout131.storage import schema as t
from payout131.tokens.vault import Sealed, Vault
from payout131.webhooks import standard
from payout131.webhooks.urls import check_webhook_url

__all__ = [
    "CONFIRM_TIMEOUT_S",
    "FEE_FIXED_MAX",
    "PROJECT_ID",
    "Project",
    "ProjectCache",
    "add_project",
    "check_id",
    "check_settings",
    "exists",
    "get_project",
    "get_projects",
    "list_projects",
    "seal_webhook_secrets",
    "set_webhook_secret",
    "update_project",
]

PROJECT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
"""A project id: it travels in the ``X-PARTNER-PROJECT`` header, so plain ASCII letters,
digits, ``.``, ``_`` and ``-``, starting with a letter or digit, at most 64."""
CONFIRM_TIMEOUT_S = (60, 30 * 24 * 3600)
"""How long a payout may wait for the partner's confirm: one minute to 30 days."""
FEE_FIXED_MAX = 100_000_000
"""The largest fixed fee per payout: 1,000,000 rubles, in kopecks."""

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
    # webhooks/standard.py: opts the project into webhook-signature; the secret is kept
    # sealed by the account vault (``webhook_secret``: a clear copy from before, emptied)
    "webhook_secret_sealed",
    "webhook_secret_key_id",
    "webhook_secret",
}


@dataclass(frozen=True, slots=True)
class Project:
    id: str
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
    webhook_secret_sealed: bytes | None = field(default=None, repr=False)
    webhook_secret_key_id: str | None = None
    test_clock: int | None = None  # sandbox: the test clock it runs on (docs/sandbox.md)
    keys: tuple[ProjectKey, ...] = field(default=(), repr=False)  # active, newest first

    @classmethod
    def from_row(cls, row: Any, keys: Iterable[ProjectKey] = ()) -> Project:
        values = {name: row._mapping[name] for name in cls.__slots__ if name != "keys"}
        if values["webhook_secret_sealed"] is not None:
            values["webhook_secret_sealed"] = bytes(values["webhook_secret_sealed"])
        return cls(**values, keys=tuple(keys))

    @property
    def standard_webhooks(self) -> bool:
        """Whether the project's webhooks also carry a Standard Webhooks signature."""
        return self.webhook_secret_key_id is not None


def check_id(project_id: str) -> str:
    """``project_id`` if a partner can name it in ``X-PARTNER-PROJECT``; else ValueError."""
    if not PROJECT_ID.fullmatch(project_id):
        raise ValueError(
            f"project id {project_id[:80]!r}: 1 to 64 ASCII letters, digits, '.', '_' or '-', "
            "starting with a letter or digit (it travels in the X-PARTNER-PROJECT header)"
        )
    return project_id


def check_settings(fields: dict[str, Any]) -> dict[str, Any]:
    """``fields`` if each setting is one the bank can run with; else ValueError naming the
    setting and its bounds. Every path that registers or changes a project comes here."""
    fields = dict(fields)
    unknown = set(fields) - _SETTABLE
    if unknown:
        raise ValueError(f"unknown project settings: {sorted(unknown)}")
    if fields.get("webhook_secret") is not None:  # the clear column is only ever emptied
        raise ValueError("webhook_secret: kept sealed: set it with set_webhook_secret")
    if fields.get("webhook_url") is not None:
        try:
            check_webhook_url(fields["webhook_url"])
        except ValueError as exc:
            raise ValueError(f"webhook_url: {exc}") from None
    timeout = fields.get("confirm_timeout_s")
    low, high = CONFIRM_TIMEOUT_S
    if timeout is not None and not (isinstance(timeout, int) and low <= timeout <= high):
        raise ValueError(f"confirm_timeout_s: {timeout} is not {low} to {high} seconds")
    fees.check_fee(fields.get("fee_bps", 0), fields.get("fee_fixed", 0))
    if fields.get("fee_fixed", 0) > FEE_FIXED_MAX:
        raise ValueError(f"fee_fixed: {fields['fee_fixed']} kopecks is above {FEE_FIXED_MAX}")
    if fields.get("idempotency_mode") not in (None, "bank131", "replay"):
        raise ValueError("idempotency_mode: bank131 or replay")
    try:
        if fields.get("legal_name") is not None:
            fields["legal_name"] = check_full_name("legal_name", fields["legal_name"])
        if fields.get("inn") is not None:
            fields["inn"] = check_inn("inn", fields["inn"])
        if fields.get("kpp") is not None:
            fields["kpp"] = check_kpp("kpp", fields["kpp"])
    except InvalidRequest as exc:
        raise ValueError(exc.description) from None
    return fields


def add_project(
    conn: Connection, project_id: str, public_key_pem: str, now: int, **fields: Any
) -> None:
    """Register a project with its public key and open its collateral wallet."""
    check_id(project_id)
    fields = check_settings(fields)
    conn.execute(sa.insert(t.projects).values(id=project_id, created_at=now, **fields))
    replace_keys(conn, project_id, public_key_pem, now)
    open_account(conn, wallet_code(project_id), "wallet", project_id, now)


def update_project(conn: Connection, project_id: str, **fields: Any) -> None:
    fields = check_settings(fields)
    done = conn.execute(sa.update(t.projects).where(t.projects.c.id == project_id).values(**fields))
    if done.rowcount != 1:
        raise LookupError(f"no project {project_id!r}")


def set_webhook_secret(conn: Connection, vault: Vault, project_id: str, secret: str | None) -> None:
    """Keep ``secret`` (None: none) as the project's Standard Webhooks secret, sealed."""
    if secret is None:
        update_project(
            conn,
            project_id,
            webhook_secret=None,  # a clear copy an earlier version kept goes too
            webhook_secret_sealed=None,
            webhook_secret_key_id=None,
        )
        return
    locks.take(conn, locks.SEALING)  # a rotation retiring the sealing key waits for this
    sealed = standard.seal_secret(vault, project_id, secret)
    update_project(
        conn,
        project_id,
        webhook_secret=None,
        webhook_secret_sealed=sealed.blob,
        webhook_secret_key_id=sealed.key_id,
    )


def seal_webhook_secrets(conn: Connection, vault: Vault, *, reseal: bool = True) -> int:
    """Seal every Standard Webhooks secret still kept in the clear (by an earlier version)
    and, with ``reseal``, every one sealed under a vault key other than the current one;
    how many. Without ``reseal`` the vault is not touched unless there is one to seal."""
    p = t.projects
    stale: sa.ColumnElement[bool] = p.c.webhook_secret.is_not(None)
    if reseal:
        old_key = p.c.webhook_secret_key_id != vault.current_key_id
        stale = sa.or_(stale, sa.and_(p.c.webhook_secret_key_id.is_not(None), old_key))
    rows = conn.execute(
        sa.select(p.c.id, p.c.webhook_secret, p.c.webhook_secret_sealed, p.c.webhook_secret_key_id)
        .where(stale)
        .with_for_update()
    ).all()
    for row in rows:
        secret = row.webhook_secret or standard.open_secret(
            vault, row.id, Sealed(row.webhook_secret_key_id, bytes(row.webhook_secret_sealed))
        )
        sealed = standard.seal_secret(vault, row.id, secret)
        conn.execute(
            sa.update(p)
            .where(p.c.id == row.id)
            .values(
                webhook_secret=None,
                webhook_secret_sealed=sealed.blob,
                webhook_secret_key_id=sealed.key_id,
            )
        )
    return len(rows)


def exists(conn: Connection, project_id: str) -> bool:
    found = conn.execute(sa.select(t.projects.c.id).where(t.projects.c.id == project_id))
    return found.scalar() is not None


def get_project(conn: Connection, project_id: str) -> Project | None:
    return get_projects(conn, [project_id]).get(project_id)


def _with_keys(conn: Connection, query: sa.Select[Any]) -> list[Project]:
    """The projects ``query`` selects, each with its active keys."""
    rows = conn.execute(query).all()
    keys = active_keys(conn, [row.id for row in rows])
    return [Project.from_row(row, keys.get(row.id, ())) for row in rows]


def list_projects(conn: Connection) -> list[Project]:
    """Every project, by id."""
    return _with_keys(conn, sa.select(t.projects).order_by(t.projects.c.id))


def get_projects(conn: Connection, project_ids: Iterable[str]) -> dict[str, Project]:
    """The projects with these ids that exist, with their active keys, by id."""
    wanted = sorted(set(project_ids))
    found = _with_keys(conn, sa.select(t.projects).where(t.projects.c.id.in_(wanted)))
    return {project.id: project for project in found}


class ProjectCache:
    """Projects and their parsed public keys, re-read after ``ttl`` seconds.

    Parsing a key costs far more than a verification, and a project is read on every
    request, so both are cached; a change made by the CLI is seen within ``ttl``. With two
    active keys (a rotation), the one that verified the project's last call is tried first.
    """

    def __init__(self, db: Database, ttl: float = 2.0) -> None:
        self._db, self._ttl = db, ttl
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[float, Project | None]] = {}
        self._keys: dict[str, rsa.RSAPublicKey | None] = {}
        self._last: dict[str, str] = {}  # project id → the fingerprint that verified last
        self.uses = KeyUses(db, SystemClock().now)  # wall time, not test clocks

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

    def clear(self) -> None:
        """Forget every cached project: the next call reads its settings and keys afresh."""
        with self._lock:
            self._entries.clear()

    def verify(self, project: Project, body: bytes, signature: str) -> str | None:
        """The fingerprint of the project's active key that signed ``body``, or None."""
        keys = project.keys
        if len(keys) > 1 and self._last.get(project.id) == keys[1].fingerprint:
            keys = (keys[1], keys[0], *keys[2:])
        for key in keys:
            public = self._public_key(key)
            if public is not None and signing.verify(public, body, signature):
                if len(project.keys) > 1:
                    self._last[project.id] = key.fingerprint
                self.uses.note(project.id, key.fingerprint)
                return key.fingerprint
        return None

    def _public_key(self, key: ProjectKey) -> rsa.RSAPublicKey | None:
        if key.public_key_pem not in self._keys:
            try:
                public: rsa.RSAPublicKey | None = signing.load_public_key(
                    key.public_key_pem.encode()
                )
            except signing.KeyFormatError:  # only SQL can store one; it verifies nothing
                public = None
            with self._lock:
                self._keys[key.public_key_pem] = public
        return self._keys[key.public_key_pem]
