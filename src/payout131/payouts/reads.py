"""``session/status``: a session as it stands, read in one statement; and whether it can
still change (``final``), which lets the server keep the answer of one that cannot."""

from __future__ import annotations

from sqlalchemy.engine import Connection

from payout131.payouts import access, store
from payout131.payouts.calls import PartnerCall
from payout131.payouts.records import Listed
from payout131.payouts.states import FINAL, PayoutStatus, SessionStatus
from payout131.protocol.requests import SessionRef

__all__ = ["final", "status"]

_ENDED = frozenset({SessionStatus.ACCEPTED, SessionStatus.CANCELLED})


def status(conn: Connection, call: PartnerCall[SessionRef]) -> Listed:
    """The caller's session named by ``session_id``, with its payout and refund, read in
    one statement (``server/handlers.ONE_STATEMENT``: it runs outside a transaction)."""
    n = access.session_number(call.body.session_id)
    found = store.status_rows(conn, n)
    access.check_owner(found.session.project_id if found else None, n, call.project.id)
    assert found is not None
    return found


def final(found: Listed, returns_forced: bool) -> bool:
    """Whether nothing can change this session any more: it ended (accepted or cancelled:
    no move starts there but a refund's) and no step of its payout is left (no rail to ask,
    no return to watch for), so no worker will touch it again. With ``returns_forced``
    (sandbox mode: ``sandbox/forcing.py`` can send a paid payout back at any time, from any
    process) a paid payout stays open until it has come back, so there only a failed or an
    already refunded payout is final."""
    if found.session.status not in _ENDED:
        return False
    for payout, refunds in found.payouts:
        if payout.status not in FINAL or payout.work is not None:
            return False
        if returns_forced and payout.status == PayoutStatus.SUCCEEDED and not refunds:
            return False
    return True
