"""A project's public keys: one active, or two while the partner rotates its key.

A rotation without downtime: the operator adds the partner's new key (``payout131 project
key add``), calls signed with either key verify while the partner moves its signers over,
and the old key is retired once ``key list`` shows it unused. Keys are named by fingerprint
(``signing.fingerprint``); a retired key stays listed, for the record, and can be added
back. When a key last verified a call is kept coarsely (``KeyUses``): a write per call would
cost every call a commit.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from payout131.client import signing
from payout131.storage import Database
from payout131.storage import schema as t
from payout131.storage.outages import log_failure

__all__ = [
    "MAX_ACTIVE",
    "USE_FLUSH_S",
    "KeyUses",
    "ProjectKey",
    "active_keys",
    "add_key",
    "list_keys",
    "replace_keys",
    "retire_key",
]

MAX_ACTIVE = 2
"""Active keys a project may have at once: the one in use and its successor."""
USE_FLUSH_S = 30.0
"""How often a server writes down which keys verified calls (``last_used_at``)."""
_PREFIX_MIN = 8

log = logging.getLogger("payout131.keys")


@dataclass(frozen=True, slots=True)
class ProjectKey:
    project_id: str
    fingerprint: str
    public_key_pem: str
    added_at: int
    retired_at: int | None
    last_used_at: int | None

    @property
    def active(self) -> bool:
        return self.retired_at is None

    @classmethod
    def from_row(cls, row: Any) -> ProjectKey:
        return cls(**{name: row._mapping[name] for name in cls.__slots__})


def _check_pem(pem: str) -> str:
    """The fingerprint of ``pem``; ValueError (``KeyFormatError``) if it is no usable key."""
    return signing.fingerprint(signing.load_public_key(pem.encode()))


def _lock_project(conn: Connection, project_id: str) -> None:
    """Hold the project's row for this transaction (a second ``key add`` waits), or
    LookupError. SQLite writers hold the database already."""
    p = t.projects
    found = conn.execute(sa.select(p.c.id).where(p.c.id == project_id).with_for_update())
    if found.scalar() is None:
        raise LookupError(f"no project {project_id!r}")


def list_keys(conn: Connection, project_id: str) -> list[ProjectKey]:
    """Every key the project has had: active first, newest first."""
    k = t.project_keys
    rows = conn.execute(
        sa.select(k)
        .where(k.c.project_id == project_id)
        .order_by(k.c.retired_at.is_not(None), k.c.added_at.desc(), k.c.fingerprint)
    )
    return [ProjectKey.from_row(row) for row in rows]


def active_keys(conn: Connection, project_ids: Iterable[str]) -> dict[str, list[ProjectKey]]:
    """The active keys of these projects, newest first, by project id."""
    k = t.project_keys
    rows = conn.execute(
        sa.select(k)
        .where(k.c.project_id.in_(sorted(set(project_ids))), k.c.retired_at.is_(None))
        .order_by(k.c.added_at.desc(), k.c.fingerprint)
    )
    out: dict[str, list[ProjectKey]] = {}
    for row in rows:
        out.setdefault(row.project_id, []).append(ProjectKey.from_row(row))
    return out


def add_key(conn: Connection, project_id: str, pem: str, now: int) -> ProjectKey:
    """Make ``pem`` one of the project's active keys (a retired one comes back); ValueError
    if it already is, or if the project has ``MAX_ACTIVE`` already."""
    fingerprint = _check_pem(pem)
    _lock_project(conn, project_id)
    keys = list_keys(conn, project_id)
    same = next((key for key in keys if key.fingerprint == fingerprint), None)
    if same is not None and same.active:
        raise ValueError(f"key {fingerprint} is already active for project {project_id}")
    active = [key for key in keys if key.active]
    if len(active) >= MAX_ACTIVE:
        raise ValueError(
            f"project {project_id} has {len(active)} active keys already: retire one first "
            f"(`payout131 project key retire {project_id} FINGERPRINT`)"
        )
    k = t.project_keys
    if same is not None:
        conn.execute(
            sa.update(k)
            .where(k.c.project_id == project_id, k.c.fingerprint == fingerprint)
            .values(retired_at=None, added_at=now)
        )
    else:
        conn.execute(
            sa.insert(k).values(
                project_id=project_id, fingerprint=fingerprint, public_key_pem=pem, added_at=now
            )
        )
    return ProjectKey(project_id, fingerprint, pem, now, None, same.last_used_at if same else None)


def retire_key(conn: Connection, project_id: str, prefix: str, now: int) -> ProjectKey:
    """Retire the active key whose fingerprint starts with ``prefix`` (``sha256:`` may be
    left out; at least 8 hex digits); ValueError if none or several match, or if it is the
    project's only active key (a project keeps one: disable it instead)."""
    _lock_project(conn, project_id)
    wanted = prefix.strip().lower().removeprefix("sha256:")
    if len(wanted) < _PREFIX_MIN or any(c not in "0123456789abcdef" for c in wanted):
        raise ValueError(
            f"fingerprint {prefix[:80]!r}: at least {_PREFIX_MIN} hex digits of a key's "
            "fingerprint, as `payout131 project key list` shows it"
        )
    keys = list_keys(conn, project_id)
    matches = [key for key in keys if key.fingerprint.removeprefix("sha256:").startswith(wanted)]
    if not matches:
        raise ValueError(f"project {project_id} has no key {prefix}")
    if len(matches) > 1:
        raise ValueError(f"{prefix} matches {len(matches)} keys of project {project_id}: give more")
    (key,) = matches
    if not key.active:
        raise ValueError(f"key {key.fingerprint} of project {project_id} is retired already")
    if sum(other.active for other in keys) == 1:
        raise ValueError(
            f"key {key.fingerprint} is project {project_id}'s only active key: add its "
            "successor first (`payout131 project key add`), or disable the project"
        )
    k = t.project_keys
    conn.execute(
        sa.update(k)
        .where(k.c.project_id == project_id, k.c.fingerprint == key.fingerprint)
        .values(retired_at=now)
    )
    return ProjectKey(
        project_id, key.fingerprint, key.public_key_pem, key.added_at, now, key.last_used_at
    )


def replace_keys(conn: Connection, project_id: str, pem: str, now: int) -> ProjectKey:
    """Make ``pem`` the project's one active key at once, retiring the others (``project
    add`` and ``project set --public-key``: calls signed with another key fail from now)."""
    fingerprint = _check_pem(pem)
    _lock_project(conn, project_id)
    k = t.project_keys
    conn.execute(
        sa.update(k)
        .where(
            k.c.project_id == project_id,
            k.c.fingerprint != fingerprint,
            k.c.retired_at.is_(None),
        )
        .values(retired_at=now)
    )
    kept = [k for k in list_keys(conn, project_id) if k.fingerprint == fingerprint and k.active]
    return kept[0] if kept else add_key(conn, project_id, pem, now)


class KeyUses:
    """Which key verified which project's calls, and when, kept in memory and written down
    every ``USE_FLUSH_S`` seconds by ``run`` (and once more by the runtime's close); so
    ``last_used_at`` is at most that much behind. ``note``, called on every call, costs a
    dict write."""

    def __init__(self, db: Database, clock_us: Callable[[], int]) -> None:
        self._db, self._clock_us = db, clock_us
        self._lock = threading.Lock()
        self._pending: dict[tuple[str, str], int] = {}

    def note(self, project_id: str, fingerprint: str) -> None:
        with self._lock:
            self._pending[(project_id, fingerprint)] = self._clock_us()

    def flush(self) -> int:
        """Write down the uses noted since the last flush; how many keys."""
        with self._lock:
            pending, self._pending = self._pending, {}
        if not pending:
            return 0
        k = t.project_keys
        later = sa.or_(k.c.last_used_at.is_(None), k.c.last_used_at < sa.bindparam("at"))
        statement = (
            sa.update(k)
            .where(
                k.c.project_id == sa.bindparam("p"),
                k.c.fingerprint == sa.bindparam("f"),
                later,
            )
            .values(last_used_at=sa.bindparam("at"))
        )
        params = [{"p": p, "f": f, "at": at} for (p, f), at in sorted(pending.items())]
        try:
            with self._db.write() as conn:
                conn.execute(statement, params)
        except BaseException:  # kept for the next flush, with any newer use noted since
            with self._lock:
                for key, at in pending.items():
                    self._pending[key] = max(at, self._pending.get(key, at))
            raise
        return len(params)

    async def run(self) -> None:
        """Flush every ``USE_FLUSH_S`` seconds until cancelled."""
        while True:
            await asyncio.sleep(USE_FLUSH_S)
            try:
                await asyncio.to_thread(self.flush)
            except Exception as exc:  # noqa: BLE001 (logged; written with the next flush)
                log_failure(log, exc, "could not write down when partner keys were last used")
