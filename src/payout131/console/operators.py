"""Operators: the people who may enter the console, each a viewer or an admin.

A password is kept only as its Argon2id hash (``argon2-cffi``, RFC 9106 parameters). After
``MAX_FAILURES`` failed sign-ins in a row an operator is locked for ``LOCK_S``; a good
sign-in, or ``payout131 operator password``, clears the count.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.engine import Connection

from payout131.storage import Database
from payout131.storage import schema as t

__all__ = [
    "LOCK_S",
    "MAX_FAILURES",
    "ROLES",
    "Operator",
    "SignIn",
    "add",
    "check",
    "check_name",
    "check_password",
    "exist",
    "list_operators",
    "remove",
    "set_password",
    "settle",
]

ROLES = ("viewer", "admin")  # a viewer reads; an admin also acts
MAX_FAILURES = 5
LOCK_S = 15 * 60
MIN_PASSWORD = 12
MAX_PASSWORD = 1024  # hashing a megabyte would be a way to make the server work
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
_HASHER = PasswordHasher()
# a sign-in under an unknown name still hashes, so the answer's time tells nothing
_NOBODY = _HASHER.hash("no operator has this password")


@dataclass(frozen=True, slots=True)
class Operator:
    name: str
    role: str
    created_at: int
    failures: int = 0
    locked_until: int | None = None

    @property
    def admin(self) -> bool:
        return self.role == "admin"


@dataclass(frozen=True, slots=True)
class SignIn:
    """What a sign-in came to: the operator, or why not (``refused``)."""

    operator: Operator | None
    refused: str = ""
    locked_now: bool = False  # this failure locked the operator


def check_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise ValueError(
            f"operator name {name[:70]!r}: 1 to 64 letters, digits and . _ @ -, "
            "starting with a letter or digit"
        )
    return name


def check_password(password: str) -> str:
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise ValueError(f"a password has {MIN_PASSWORD} to {MAX_PASSWORD} characters")
    return password


def _operator(row: Any) -> Operator:
    return Operator(
        name=str(row.name),
        role=str(row.role),
        created_at=int(row.created_at),
        failures=int(row.failures),
        locked_until=None if row.locked_until is None else int(row.locked_until),
    )


def exist(conn: Connection) -> bool:
    """Whether any operator is registered (the console says how to make one if not)."""
    return conn.execute(sa.select(t.operators.c.name).limit(1)).first() is not None


def list_operators(conn: Connection) -> list[Operator]:
    rows = conn.execute(sa.select(t.operators).order_by(t.operators.c.name))
    return [_operator(row) for row in rows]


def get(conn: Connection, name: str) -> Operator | None:
    row = conn.execute(sa.select(t.operators).where(t.operators.c.name == name)).first()
    return None if row is None else _operator(row)


def add(conn: Connection, name: str, role: str, password: str, now: int) -> Operator:
    """Register an operator; ValueError if the name is taken or a value is bad."""
    check_name(name)
    if role not in ROLES:
        raise ValueError(f"role {role!r}: viewer or admin")
    check_password(password)
    if get(conn, name) is not None:
        raise ValueError(f"operator {name!r} exists: change its password with `operator password`")
    conn.execute(
        t.operators.insert().values(
            name=name, role=role, password_hash=_HASHER.hash(password), created_at=now
        )
    )
    return Operator(name, role, now)


def set_password(conn: Connection, name: str, password: str) -> None:
    """A new password; unlocks the operator and ends every console sign-in of theirs."""
    check_password(password)
    done = conn.execute(
        t.operators.update()
        .where(t.operators.c.name == name)
        .values(password_hash=_HASHER.hash(password), failures=0, locked_until=None)
    )
    if done.rowcount != 1:
        raise ValueError(f"no operator {name!r}")
    conn.execute(t.console_logins.delete().where(t.console_logins.c.operator == name))


def remove(conn: Connection, name: str) -> Operator:
    """Remove an operator and their sign-ins (their audit entries stay)."""
    found = get(conn, name)
    if found is None:
        raise ValueError(f"no operator {name!r}")
    conn.execute(t.console_logins.delete().where(t.console_logins.c.operator == name))
    conn.execute(t.operators.delete().where(t.operators.c.name == name))
    return found


def _matches(stored: str, password: str) -> bool:
    try:
        return _HASHER.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


def check(db: Database, name: str, password: str) -> tuple[Operator | None, str | None]:
    """The operator ``name`` names (None if none) and, if ``password`` is theirs, the hash
    it matched (for ``settle``). The hash is checked outside any transaction (Argon2 takes
    tens of milliseconds: no write waits for it), and an unknown name is hashed too."""
    row = None
    if name and len(password) <= MAX_PASSWORD:
        with db.read() as conn:
            row = conn.execute(sa.select(t.operators).where(t.operators.c.name == name)).first()
    if row is None:
        _matches(_NOBODY, password[:MAX_PASSWORD])
        return None, None
    stored = str(row.password_hash)
    return _operator(row), (stored if _matches(stored, password) else None)


def settle(conn: Connection, name: str, matched: str | None, now: int) -> SignIn:
    """Count a checked sign-in, under the operator's row lock: refused while locked; a
    match (``matched``: the hash it matched, still the operator's) clears the count; a
    miss adds one, and the ``MAX_FAILURES``-th locks."""
    o = t.operators
    wrong = "wrong name or password"
    row = conn.execute(sa.select(o).where(o.c.name == name).with_for_update()).first()
    if row is None:
        return SignIn(None, wrong)
    found = _operator(row)
    if found.locked_until is not None and found.locked_until > now:
        return SignIn(None, _locked(found.locked_until, now))
    if matched is not None and matched == row.password_hash:  # not changed meanwhile
        conn.execute(o.update().where(o.c.name == name).values(failures=0, locked_until=None))
        return SignIn(found)
    failures = (0 if found.locked_until is not None else found.failures) + 1
    if failures >= MAX_FAILURES:
        until = now + LOCK_S * 1_000_000
        conn.execute(o.update().where(o.c.name == name).values(failures=0, locked_until=until))
        return SignIn(None, _locked(until, now), locked_now=True)
    conn.execute(o.update().where(o.c.name == name).values(failures=failures, locked_until=None))
    return SignIn(None, wrong)


def _locked(until: int, now: int) -> str:
    minutes = max(1, -(-(until - now) // 60_000_000))
    return (
        f"too many failed sign-ins: locked for {minutes} more minute(s), or until an operator "
        "sets a new password (payout131 operator password)"
    )
