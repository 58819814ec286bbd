"""``X-PARTNER-IDEMPOTENCY-KEY``: a key is claimed in the transaction of the work it guards.

Bank 131 semantics (the default): a key seen before, in flight or finished, answers
``idempotency_key_already_exists`` and nothing is repeated. In ``replay`` mode (a project
setting) the same key with the same body returns the first response byte for byte, and a
different body is refused. A request that is rejected writes nothing, its key included, so
a corrected request may reuse it. Keys are scoped per project.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from payout131.errors import IdempotencyKeyExists, InvalidRequest
from payout131.storage import schema as t

__all__ = ["KeyTaken", "Stored", "body_hash", "claim", "lookup", "record", "validate_key"]

MAX_KEY_LENGTH = 255


class KeyTaken(Exception):
    """The key was claimed by an earlier (or concurrent) request."""


@dataclass(frozen=True, slots=True)
class Stored:
    body_sha256: str
    status: int
    body: bytes


def validate_key(key: str) -> str:
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise InvalidRequest(
            f"X-PARTNER-IDEMPOTENCY-KEY: must be 1 to {MAX_KEY_LENGTH} printable characters"
        )
    return key


def body_hash(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def claim(conn: Connection, project_id: str, key: str, method: str, digest: str, now: int) -> None:
    """Insert the key's row, or raise ``KeyTaken``. Waits for a concurrent holder to finish."""
    try:
        with conn.begin_nested():
            conn.execute(
                sa.insert(t.idempotency_keys).values(
                    project_id=project_id,
                    key=key,
                    method=method,
                    body_sha256=digest,
                    response_status=0,
                    response_body=b"",
                    created_at=now,
                )
            )
    except IntegrityError as exc:
        raise KeyTaken(key) from exc


def record(conn: Connection, project_id: str, key: str, status: int, body: bytes) -> None:
    k = t.idempotency_keys
    conn.execute(
        sa.update(k)
        .where(k.c.project_id == project_id, k.c.key == key)
        .values(response_status=status, response_body=body)
    )


def lookup(conn: Connection, project_id: str, key: str) -> Stored | None:
    k = t.idempotency_keys
    row = conn.execute(
        sa.select(k.c.body_sha256, k.c.response_status, k.c.response_body).where(
            k.c.project_id == project_id, k.c.key == key
        )
    ).one_or_none()
    if row is None:
        return None
    return Stored(row.body_sha256, int(row.response_status), bytes(row.response_body))


def already_exists() -> IdempotencyKeyExists:
    return IdempotencyKeyExists(
        "X-PARTNER-IDEMPOTENCY-KEY: a request with this key is already in progress or processed"
    )
