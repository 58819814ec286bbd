"""Console sign-ins: a random token in the browser's cookie, its SHA-256 in the store.

A sign-in ends when the operator signs out, after ``IDLE_S`` without a request, or
``MAX_AGE_S`` after it began; each carries its own form token (CSRF), which every form
posted with it must return.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from payout131.console.operators import Operator
from payout131.storage import schema as t

__all__ = ["IDLE_S", "MAX_AGE_S", "Login", "begin", "end", "find", "same"]

IDLE_S = 30 * 60
MAX_AGE_S = 12 * 3600
TOUCH_S = 60  # ``seen_at`` is written at most this often per sign-in


@dataclass(frozen=True, slots=True)
class Login:
    key: str  # the token's SHA-256
    operator: Operator
    csrf: str
    seen_at: int


def _key(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


def begin(conn: Connection, operator: str, now: int) -> str:
    """A new sign-in for ``operator``; the token for the browser's cookie."""
    token = secrets.token_urlsafe(32)
    conn.execute(
        t.console_logins.insert().values(
            token_sha256=_key(token),
            operator=operator,
            csrf=secrets.token_urlsafe(32),
            created_at=now,
            seen_at=now,
        )
    )
    return token


def find(conn: Connection, token: str, now: int) -> Login | None:
    """The live sign-in ``token`` names, or None (unknown, signed out, idle, too old)."""
    if not token or len(token) > 100:
        return None
    c, o = t.console_logins, t.operators
    row = conn.execute(
        sa.select(c, o.c.role, o.c.created_at.label("operator_since"))
        .join(o, o.c.name == c.c.operator)
        .where(c.c.token_sha256 == _key(token))
    ).first()
    if row is None or row.ended_at is not None:
        return None
    if now - row.seen_at > IDLE_S * 1_000_000 or now - row.created_at > MAX_AGE_S * 1_000_000:
        return None
    operator = Operator(row.operator, row.role, int(row.operator_since))
    return Login(row.token_sha256, operator, row.csrf, int(row.seen_at))


def touch(conn: Connection, login: Login, now: int) -> None:
    """Note a request of ``login`` (at most every ``TOUCH_S``), keeping it from idling out."""
    if now - login.seen_at >= TOUCH_S * 1_000_000:
        c = t.console_logins
        conn.execute(c.update().where(c.c.token_sha256 == login.key).values(seen_at=now))


def end(conn: Connection, login: Login, now: int) -> None:
    c = t.console_logins
    conn.execute(c.update().where(c.c.token_sha256 == login.key).values(ended_at=now))
