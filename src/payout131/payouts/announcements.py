"""Webhooks announcing what happened to sessions, written with the change they announce."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy.engine import Connection

from payout131.payouts.records import Listed
from payout131.protocol import wire
from payout131.tokens.vault import Vault
from payout131.webhooks import events

__all__ = ["announce"]


def announce(
    conn: Connection,
    vault: Vault | None,
    kind: str,
    changed: Sequence[Listed],
    now: int,
    extras: Mapping[int, dict[str, Any]] | None = None,
    sealed: frozenset[int] = frozenset(),
) -> None:
    """A ``kind`` event for each changed session, its body the session as it now stands
    (in the session's own API version) with the session's ``extras``; the bodies of the
    sessions in ``sealed`` show a tokenized account in full and are stored sealed."""
    extras = extras or {}
    made = []
    for listed in changed:
        n = listed.session.n
        body = wire.event_body(kind, wire.render_session(listed), **extras.get(n, {}))
        made.append(events.NewEvent(listed.session.project_id, n, kind, body, n in sealed))
    events.emit(conn, vault, made, now)
