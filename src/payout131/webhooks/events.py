"""The outbox: each webhook is written as a row in the transaction of the change it announces.

A body that shows a tokenized account in full (``confirm_information`` of a payout paid by
token) is stored sealed by the account vault, its key id in ``body_key_id``; ``open_body``
gives back the exact bytes to sign and send.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from payout131.storage import schema as t
from payout131.storage import sql
from payout131.tokens import account_tokens as tokens
from payout131.tokens.vault import Sealed, Vault, VaultError

__all__ = ["NewEvent", "emit", "open_body", "reseal"]


def _context(project_id: str, session_n: int, kind: str) -> bytes:
    return f"events\x00{project_id}\x00{session_n}\x00{kind}".encode()


@dataclass(frozen=True, slots=True)
class NewEvent:
    """A webhook to send: its session, its type, the exact bytes it carries; ``sealed``: the
    bytes show a tokenized account in full and are stored sealed by the vault."""

    project_id: str
    session_n: int
    type: str
    body: bytes
    sealed: bool = False


def emit(conn: Connection, vault: Vault | None, made: Sequence[NewEvent], now: int) -> None:
    """Store the events, in the order given, each due at once."""
    if not made:
        return
    if any(event.sealed for event in made):
        if vault is None:
            raise VaultError("an event must be sealed and no vault was given")
        tokens.lock_for_sealing(conn)
    rows = []
    for event in made:
        body, key_id = event.body, None
        if event.sealed:
            assert vault is not None
            context = _context(event.project_id, event.session_n, event.type)
            sealed = vault.seal_bytes(event.body, context)
            body, key_id = sealed.blob, sealed.key_id
        rows.append(
            {
                "project_id": event.project_id,
                "session_n": event.session_n,
                "type": event.type,
                "body": body,
                "status": "pending",
                "next_attempt_at": now,
                "created_at": now,
                "body_key_id": key_id,
            }
        )
    sql.insert(conn, t.events, rows)


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
