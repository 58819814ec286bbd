"""Who may touch a session: its id as the partner writes it, and its owner."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy.engine import Connection

from payout131.errors import ApiError, AuthorizationError, InvalidRequest, NotFound
from payout131.payouts import store
from payout131.payouts.calls import Answers, PartnerCall, Serial
from payout131.payouts.records import Payout, Session
from payout131.protocol.requests import UnsetType
from payout131.protocol.validation import id_number

__all__ = ["check_owner", "no_repeats", "owned_sessions", "session_number"]


def session_number(value: object) -> int:
    """``ps_<n>`` as ``n``; ``session_id: required`` when missing (``UNSET`` or null)."""
    if value is None or isinstance(value, UnsetType):
        raise InvalidRequest("session_id: required")
    if not isinstance(value, str):
        raise InvalidRequest('session_id: must be a string like "ps_123"')
    n = id_number(value[3:]) if value.startswith("ps_") else None
    if n is None:
        raise NotFound(f"session_id: no session {value[:64]!r}")
    return n


def check_owner(project_id: str | None, n: int, caller: str) -> None:
    """Session ``n`` (owned by ``project_id``, None: no such session) is the caller's."""
    if project_id is None:
        raise NotFound(f"session_id: no session ps_{n}")
    if project_id != caller:
        raise AuthorizationError(f"session_id: session ps_{n} belongs to another project")


def no_repeats(numbers: Iterable[int]) -> None:
    """Refuse to run calls on one session together: the second must see the first's effect."""
    seen: set[int] = set()
    for n in numbers:
        if n in seen:
            raise Serial(f"session ps_{n} twice in one group; one call at a time")
        seen.add(n)


def owned_sessions(
    conn: Connection, calls: Sequence[PartnerCall[Any]], answers: Answers
) -> dict[int, tuple[Session, Payout | None]]:
    """The session each call names (``session_id``) with its payout, locked, by call; a
    call whose session is unknown or another project's gets its refusal in ``answers``.
    Two calls on one session do not run together (``Serial``)."""
    wanted: dict[int, int] = {}
    for index, call in enumerate(calls):
        try:
            wanted[index] = session_number(call.body.session_id)
        except ApiError as exc:
            answers[index] = exc
    no_repeats(wanted.values())
    locked = store.lock_sessions(conn, wanted.values())
    found: dict[int, tuple[Session, Payout | None]] = {}
    for index, n in wanted.items():
        session, payout = locked.get(n, (None, None))
        try:
            check_owner(session.project_id if session else None, n, calls[index].project.id)
        except ApiError as exc:
            answers[index] = exc
            continue
        assert session is not None
        found[index] = (session, payout)
    return found
