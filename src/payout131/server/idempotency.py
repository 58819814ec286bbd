"""``X-PARTNER-IDEMPOTENCY-KEY``: a key is claimed in the transaction of the work it guards.

Bank 131 semantics (the default): a key seen before, in flight or finished, answers
``idempotency_key_already_exists`` and nothing is repeated. In ``replay`` mode (a project
setting) the same key with the same body returns the first response byte for byte, and a
different body is refused. A request that is refused writes nothing, its key included, so
a corrected request may reuse it. Keys are scoped per project.

``Keyed`` wraps a method's executor: the calls of a group claim their keys with one
statement (a key another transaction holds makes the claim wait for it), the calls whose
key was free run as usual, and each answer is stored with its key.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Connection

from payout131.errors import ApiError, IdempotencyKeyExists, InvalidRequest
from payout131.payouts.calls import Serial
from payout131.storage import sql
from payout131.storage.group_commit import Executor
from payout131.storage.sql import Sql
from payout131.tokens.vault import Vault, VaultError

__all__ = [
    "KeyTaken",
    "Keyed",
    "KeyedCall",
    "Stored",
    "already_exists",
    "body_digests",
    "lookup",
    "validate_key",
]

MAX_KEY_LENGTH = 255


class KeyTaken(Exception):
    """The key was claimed by an earlier (or concurrent) request."""


@dataclass(frozen=True, slots=True)
class Stored:
    method: str
    body_sha256: str
    status: int
    body: bytes


@dataclass(frozen=True, slots=True)
class KeyedCall:
    """A call and the key that guards it."""

    call: Any  # a PartnerCall
    key: str
    digest: str  # what the body is known by (``body_digests``): the one stored


def validate_key(key: str) -> str:
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise InvalidRequest(
            f"X-PARTNER-IDEMPOTENCY-KEY: must be 1 to {MAX_KEY_LENGTH} printable characters"
        )
    return key


def body_digests(body: bytes, vault: Vault | None) -> tuple[str, ...]:
    """What a key's body is known by, the first one stored: its SHA-256; or, for a body
    that may name a card (it says ``card`` anywhere: a card destination, a card to
    tokenize), its fingerprint under each vault key, the current key's first. A plain
    digest kept beside the stored answer would give the card number away (PROTOCOL §9: the
    answer shows its BIN and last four digits, leaving a few thousand guesses); a
    fingerprint cannot be computed without the key. A replay matches any of them, the
    SHA-256 an earlier version kept included. After a vault rotation retires a key, a card
    call it fingerprinted no longer replays (README)."""
    plain = hashlib.sha256(body).hexdigest()
    if vault is None or b"card" not in body.lower():
        return (plain,)
    try:
        return (*vault.fingerprints(body, b"idempotency body"), plain)
    except (VaultError, OSError, ValueError):  # no usable key: a card fails where it seals
        return (plain,)


_CLAIM = Sql(
    """INSERT INTO idempotency_keys (project_id, key, method, body_sha256, response_status,
    response_body, created_at) VALUES (:project_id, :key, :method, :digest, 0, :empty, :now)
    ON CONFLICT (project_id, key) DO NOTHING RETURNING key"""
)
_RECORD = Sql(
    """UPDATE idempotency_keys SET response_status = :status, response_body = :body
    WHERE project_id = :project_id AND key = :key"""
)
_FREE = Sql("DELETE FROM idempotency_keys WHERE project_id = :project_id AND key = :key")
_LOOKUP = Sql(
    """SELECT method, body_sha256, response_status, response_body FROM idempotency_keys
    WHERE project_id = :project_id AND key = :key"""
)


class Keyed:
    """``executor`` for calls that carry an idempotency key, all claimed at once."""

    def __init__(self, method: str, executor: Executor) -> None:
        self.method, self.executor = method, executor

    def __call__(self, conn: Connection, items: list[KeyedCall]) -> list[Any]:
        keys = [(item.call.project.id, item.key) for item in items]
        if len(set(keys)) < len(keys):  # the second must see the first's key
            raise Serial("one idempotency key twice in one group; one call at a time")
        claims = [
            {
                "project_id": item.call.project.id,
                "key": item.key,
                "method": path_of(item.call.version, self.method),
                "digest": item.digest,
                "empty": b"",
                "now": item.call.now,
            }
            for item in items
        ]
        claimed = sql.many_returning(conn, _CLAIM, claims)
        free = {row.key for row in claimed}
        outcomes: list[Any] = [None] * len(items)
        runs = [i for i, item in enumerate(items) if item.key in free]
        for i, item in enumerate(items):
            if item.key not in free:
                outcomes[i] = KeyTaken(item.key)
        answers = self.executor(conn, [items[i].call for i in runs]) if runs else []
        recorded, freed = [], []
        for i, answer in zip(runs, answers, strict=True):
            outcomes[i] = answer
            where = {"project_id": items[i].call.project.id, "key": items[i].key}
            if isinstance(answer, ApiError):
                freed.append(where)  # a refused call writes nothing, its key included
            else:
                recorded.append({**where, "status": 200, "body": answer})
        sql.many(conn, _RECORD, recorded)
        sql.many(conn, _FREE, freed)
        return outcomes


def lookup(conn: Connection, project_id: str, key: str) -> Stored | None:
    found = sql.rows(conn, _LOOKUP, {"project_id": project_id, "key": key})
    if not found:
        return None
    row = found[0]
    return Stored(row.method, row.body_sha256, int(row.response_status), bytes(row.response_body))


def already_exists() -> IdempotencyKeyExists:
    return IdempotencyKeyExists(
        "X-PARTNER-IDEMPOTENCY-KEY: a request with this key is already in progress or processed"
    )


def path_of(version: str, method: str) -> str:
    """What a key is kept with: the method and the API version of the call that used it
    (``/api/v2/session/init/payout``), so that a key answers that call only."""
    return f"/api/{version}/{method}"


def replayed(stored: Stored | None, path: str, digests: tuple[str, ...]) -> tuple[int, bytes]:
    """The stored answer to a repeated key (replay mode): the same method of the same API
    version (``path_of``), the same body. A key kept by an earlier version names the
    method alone and answers it in either version."""
    if stored is not None and stored.method not in (path, path.split("/", 3)[3]):
        raise IdempotencyKeyExists(
            f"X-PARTNER-IDEMPOTENCY-KEY: this key was used for {stored.method}; "
            "a key belongs to one method of one API version"
        )
    if stored is None or stored.body_sha256 not in digests:
        raise IdempotencyKeyExists(
            "X-PARTNER-IDEMPOTENCY-KEY: this key was used with a different request body"
        )
    return stored.status, stored.body


_OLD_KEYS = Sql(
    """DELETE FROM idempotency_keys WHERE (project_id, key) IN (
        SELECT project_id, key FROM idempotency_keys WHERE created_at < :before
        AND project_id NOT IN (SELECT id FROM projects WHERE test_clock IS NOT NULL)
        ORDER BY created_at LIMIT :limit)"""
)  # a project on a test clock keeps its keys: their times are its clock's, not the wall's


def purge(conn: Connection, used_before: int, limit: int) -> int:
    """Forget up to ``limit`` idempotency keys first used before ``used_before``; how many.
    A key forgotten may be used again: its horizon is how long a partner's retries last."""
    return sql.run(conn, _OLD_KEYS, {"before": used_before, "limit": limit})
