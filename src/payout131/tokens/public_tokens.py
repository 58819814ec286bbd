"""Public tokens: what lets a browser use the tokenization widget once, for one project.

A public token is issued to a partner by the signed ``token`` method, lasts 24 hours and is
spent by the widget's one successful tokenize. Only its SHA-256 is stored: the token itself
is a bearer credential.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Any, ClassVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from payout131.errors import AuthenticationError, InvalidRequest
from payout131.protocol.payout_request import require_object
from payout131.protocol.requests import TokenBody, given
from payout131.sandbox import clocks
from payout131.storage import schema as t
from payout131.storage import sql
from payout131.storage.sql import Sql

__all__ = [
    "PUBLIC_TOKEN_TTL_S",
    "PublicTokenRefused",
    "check_public_token",
    "claim",
    "digest",
    "issue_public_token",
    "parse_public_token_request",
    "purge",
    "spend",
]

PUBLIC_TOKEN_TTL_S = 24 * 3600


class PublicTokenRefused(AuthenticationError):
    """A widget call whose public token is unknown, expired or spent; ``reason`` says which."""

    status: ClassVar[int] = 401

    def __init__(self, reason: str, description: str) -> None:
        super().__init__(description)
        self.reason = reason

    def envelope(self) -> dict[str, Any]:
        body = super().envelope()
        body["error"]["reason"] = self.reason
        return body


def digest(public_token: str) -> str:
    return hashlib.sha256(public_token.encode()).hexdigest()


def parse_public_token_request(body: TokenBody) -> None:
    """``{"tokenize_widget": {"access": true}}``: the only widget there is."""
    widget = require_object("tokenize_widget", given(body.tokenize_widget))
    if widget.get("access") is not True:
        raise InvalidRequest("tokenize_widget.access: must be true")


def issue_public_token(conn: Connection, project_id: str, now: int, ttl_s: int) -> str:
    token = secrets.token_hex(32)
    conn.execute(
        sa.insert(t.public_tokens).values(
            token_sha256=digest(token),
            project_id=project_id,
            created_at=now,
            expires_at=now + ttl_s * 1_000_000,
        )
    )
    return token


def check_public_token(conn: Connection, public_token: object, now: int, lock: bool = False) -> str:
    """The project a usable public token belongs to, or the refusal; ``lock`` locks its row."""
    if not isinstance(public_token, str) or not public_token:
        raise PublicTokenRefused("missing", "public_token: required")
    query = sa.select(t.public_tokens).where(t.public_tokens.c.token_sha256 == digest(public_token))
    row = conn.execute(query.with_for_update() if lock else query).one_or_none()
    if row is None:
        raise PublicTokenRefused("unknown", "public_token: unknown")
    if row.used_at is not None:
        raise PublicTokenRefused("spent", "public_token: already used (each works once)")
    if row.expires_at <= clocks.project_now(conn, row.project_id, now):  # sandbox: its time
        raise PublicTokenRefused("expired", "public_token: expired (each lasts 24 hours)")
    disabled = conn.execute(
        sa.select(t.projects.c.disabled).where(t.projects.c.id == row.project_id)
    ).scalar_one()
    if disabled:
        raise PublicTokenRefused("unknown", "public_token: its project is disabled")
    return str(row.project_id)


def claim(conn: Connection, public_token: object, now: int) -> tuple[str, int]:
    """The widget's submit, first step: the project a usable public token belongs to, its
    row locked, and that project's time (a sandbox project's clock). ``spend`` it once what
    it was claimed for is made."""
    project_id = check_public_token(conn, public_token, now, lock=True)
    return project_id, clocks.project_now(conn, project_id, now)


def spend(conn: Connection, public_token: str, now: int) -> None:
    """Mark a public token (checked by ``check_public_token`` with ``lock``) used: it works
    once, and only once what it was spent on is tokenized."""
    conn.execute(
        sa.update(t.public_tokens)
        .where(t.public_tokens.c.token_sha256 == digest(public_token))
        .values(used_at=now)
    )


_EXPIRED = Sql(
    """DELETE FROM public_tokens WHERE token_sha256 IN (
        SELECT token_sha256 FROM public_tokens WHERE expires_at < :before
        AND project_id NOT IN (SELECT id FROM projects WHERE test_clock IS NOT NULL)
        ORDER BY expires_at LIMIT :limit)"""
)  # a project on a test clock keeps its tokens: their times are its clock's


def purge(conn: Connection, expired_before: int, limit: int) -> int:
    """Delete up to ``limit`` public tokens that expired before ``expired_before`` (spent
    or not: an expired token opens nothing); how many."""
    return sql.run(conn, _EXPIRED, {"before": expired_before, "limit": limit})
