"""Settlement: giving a payout a rail reference and acting on what the rail says.

The worker (``work.py``) drives a confirmed payout through three steps, each a value of
``payouts.work``: ``execute`` (submit to the rail), ``poll`` (ask the rail until the outcome
is known) and ``watch`` (a succeeded payout the rail may still report returned). A rail that
calls back instead hands its news to ``report``; both paths end in ``apply``, inside one
write transaction with the payout row locked.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from payout131 import sessions
from payout131.protocol import wire
from payout131.rails import Order, Status
from payout131.storage import schema as t

if TYPE_CHECKING:
    from payout131.runtime import Runtime

__all__ = ["RAIL_STEPS", "apply", "new_reference", "order", "report"]

log = logging.getLogger("payout131.settlement")

RAIL_STEPS = ("execute", "poll", "watch")


def new_reference(n: int, token: str) -> str:
    """The idempotency reference a payout goes to the rail under: unique across banks
    (``token``: random, e.g. ``secrets.token_hex(8)``). ``Worker.claim`` writes it in SQL
    too, the same way."""
    return f"{wire.payout_id(n)}-{token}"


def order(payout: Any, reference: str, account: str | None) -> Order:
    """What the rail is asked to pay, from the stored payout."""
    recipient = wire.loads_field(payout.recipient)
    destination = wire.loads_field(payout.destination)["bank_account"]["ru"]
    return Order(
        reference=reference,
        payout_id=wire.payout_id(payout.n),
        amount=int(payout.amount),
        currency="RUB",
        bik=recipient["bik"],
        account=account,
        token=recipient.get("token"),
        full_name=recipient["name"],
        description=destination["description"],
    )


def _schedule(conn: Connection, n: int, work: str | None, at: int | None) -> None:
    conn.execute(
        sa.update(t.payouts)
        .where(t.payouts.c.n == n)
        .values(work=work, work_at=at, lease_owner=None, lease_until=None)
    )


def apply(conn: Connection, payout: Any, status: Status, now: int, retry_s: float) -> None:
    """Move ``payout`` (a locked row) to where the rail says it stands."""
    ref = payout.rail_reference
    if payout.status not in ("in_progress", "succeeded"):
        log.warning("payout po_%s is %s; rail news %s ignored", payout.n, payout.status, status)
        return
    if status.state in ("unknown", "pending"):
        if status.state == "unknown":
            log.warning("payout po_%s: rail has no record of %s yet", payout.n, ref)
        if status.error_code and payout.status == "in_progress":
            sessions.payout_in_error(
                conn, payout, status.error_code, status.description or status.error_code, now
            )
        later = status.next_check_at or now + int(retry_s * 1_000_000)
        _schedule(conn, payout.n, "poll" if payout.status == "in_progress" else "watch", later)
        return
    if payout.status == "in_progress":
        if status.state == "failed":
            code = status.error_code or "provider_internal_error"
            sessions.fail_payout(
                conn, payout, code, status.description or "the rail refused the payout", now
            )
            return
        sessions.succeed_payout(conn, payout, now)
    if status.state == "returned":
        amount = status.returned_amount or int(payout.amount)
        if not 0 < amount <= int(payout.amount):
            raise ValueError(f"payout po_{payout.n}: rail returned {amount} of {payout.amount}")
        sessions.refund_payout(conn, payout, amount, now)
        _schedule(conn, payout.n, None, None)
    elif status.state == "succeeded" and status.next_check_at is not None:
        _schedule(conn, payout.n, "watch", status.next_check_at)
    else:
        if status.state == "failed":
            log.error("payout po_%s: rail reports a failure after success (%s)", payout.n, ref)
        _schedule(conn, payout.n, None, None)


def report(bank: Runtime, reference: str, status: Status) -> None:
    """A rail's callback: apply what it says about the payout sent under ``reference``."""
    with bank.group_commit.transaction() as conn:  # never beside a group (benchmarks)
        n = conn.execute(
            sa.select(t.payouts.c.n).where(t.payouts.c.rail_reference == reference)
        ).scalar()
        payout = None if n is None else sessions.lock_payout(conn, int(n))
        if payout is None:
            raise LookupError(f"no payout was sent under rail reference {reference!r}")
        apply(conn, payout, status, bank.clock.now(), bank.settings.rail_poll_s)
