"""The outbox: each webhook is written as a row in the transaction of the change it announces.

A body that shows a tokenized account in full (``confirm_information`` of a payout paid by
token) is stored sealed by the account vault, its key id in ``body_key_id``; ``open_body``
gives back the exact bytes to sign and send.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from payout131.storage import raw
from payout131.storage import schema as t
from payout131.storage.raw import Sql
from payout131.tokens import account_tokens as tokens
from payout131.tokens.vault import Sealed, Vault, VaultError

__all__ = ["emit", "emit_many", "open_body", "reseal"]


def _context(project_id: str, session_n: int, kind: str) -> bytes:
    return f"events\x00{project_id}\x00{session_n}\x00{kind}".encode()


def emit(
    conn: Connection,
    project_id: str,
    session_n: int,
    kind: str,
    body: bytes,
    now: int,
    seal_with: Vault | None = None,
) -> int:
    """Store one event with the exact bytes its webhook will carry; due at once.

    With ``seal_with`` the bytes are stored sealed by that vault.
    """
    key_id = None
    if seal_with is not None:
        tokens.lock_for_sealing(conn)
        sealed = seal_with.seal_bytes(body, _context(project_id, session_n, kind))
        body, key_id = sealed.blob, sealed.key_id
    result = conn.execute(
        sa.insert(t.events)
        .values(
            project_id=project_id,
            session_n=session_n,
            type=kind,
            body=body,
            status="pending",
            next_attempt_at=now,
            created_at=now,
            body_key_id=key_id,
        )
        .returning(t.events.c.id)
    )
    return int(result.scalar_one())


_PLAIN = Sql(
    """INSERT INTO events (project_id, session_n, type, body, status, next_attempt_at,
    created_at, body_key_id) VALUES (:project_id, :session_n, :type, :body, 'pending', :now,
    :now, NULL)"""
)


def emit_many(conn: Connection, made: Sequence[tuple[str, int, str, bytes]], now: int) -> None:
    """``emit`` for many unsealed ``(project_id, session_n, kind, body)`` at once (the
    worker's batches), in the order given."""
    raw.many(
        conn,
        _PLAIN,
        [
            {
                "project_id": project_id,
                "session_n": session_n,
                "type": kind,
                "body": body,
                "now": now,
            }
            for project_id, session_n, kind, body in made
        ],
    )


def open_body(
    vault: Vault | None,
    body: bytes,
    key_id: str | None,
    project_id: str,
    session_n: int,
    kind: str,
) -> bytes:
    """The exact bytes of a stored event: ``body`` itself, or opened if ``key_id`` sealed it."""
    if key_id is None:
        return bytes(body)
    if vault is None:
        raise VaultError(f"a {kind} event of ps_{session_n} is sealed and no vault was given")
    return vault.open_bytes(Sealed(key_id, bytes(body)), _context(project_id, session_n, kind))


def reseal(conn: Connection, vault: Vault, limit: int = 500) -> int:
    """Seal up to ``limit`` event bodies held under an older key with the current one."""
    e = t.events
    rows = conn.execute(
        sa.select(e.c.id, e.c.project_id, e.c.session_n, e.c.type, e.c.body, e.c.body_key_id)
        .where(e.c.body_key_id.is_not(None), e.c.body_key_id != vault.current_key_id)
        .limit(limit)
        .with_for_update()
    ).all()
    for row in rows:
        context = _context(row.project_id, int(row.session_n), row.type)
        sealed = vault.seal_bytes(
            vault.open_bytes(Sealed(row.body_key_id, row.body), context), context
        )
        conn.execute(
            sa.update(e).where(e.c.id == row.id).values(body=sealed.blob, body_key_id=sealed.key_id)
        )
    return len(rows)
