"""``session/status``: a session as it stands, read in one statement."""

from __future__ import annotations

from sqlalchemy.engine import Connection

from payout131.payouts import access, store
from payout131.payouts.calls import PartnerCall
from payout131.payouts.records import Listed
from payout131.protocol.requests import SessionRef

__all__ = ["status"]


def status(conn: Connection, call: PartnerCall[SessionRef]) -> Listed:
    """The caller's session named by ``session_id``, with its payout and refund."""
    n = access.session_number(call.body.session_id)
    found = store.status_rows(conn, n)
    access.check_owner(found.session.project_id if found else None, n, call.project.id)
    assert found is not None
    return found
