"""Leasing due payout steps: any number of workers share the queue in ``payouts.work``.

A claim leases the due steps, oldest first, skipping rows another worker holds (``FOR
UPDATE SKIP LOCKED`` on PostgreSQL; SQLite's write lock serialises claimers). An
``execute`` step without a rail reference gets one in the same statement,
``po_<n>-<random>``: the reference a payout goes to the rail under, committed before the
rail first hears of it, unique across banks, the random part drawn once per claim. (A
second update of a row this transaction updated would check the row's foreign keys again,
locking its session after the payout, against every other writer's order: a deadlock
with a partner's confirm, found by tests/test_races.py.)

A leased step runs only while its lease is the worker's: ``leased`` locks the payouts
(after their sessions) and keeps those still leased to it for that step.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from typing import NamedTuple

from sqlalchemy.engine import Connection

from payout131.payouts import store
from payout131.payouts.records import Payout
from payout131.payouts.states import Step
from payout131.storage import sql
from payout131.storage.sql import Sql

__all__ = ["Claimed", "claim", "leased"]

_UNSENT = "work = :execute AND rail_reference IS NULL"
_CLAIM = Sql(
    f"""UPDATE payouts SET lease_owner = :owner, lease_until = :lease,
        rail = CASE WHEN {_UNSENT} THEN :rail ELSE rail END,
        rail_reference = CASE WHEN {_UNSENT}
            THEN 'po_' || n || '-' || CAST(:token AS text) ELSE rail_reference END
    WHERE n IN (
        SELECT n FROM payouts WHERE work IS NOT NULL AND work_at <= :now
        AND (lease_until IS NULL OR lease_until < :now)
        ORDER BY work_at LIMIT :limit FOR UPDATE SKIP LOCKED)
    RETURNING {sql.columns(Payout)}""",  # noqa: S608 (our own condition and columns)
    make=Payout,
)


class Claimed(NamedTuple):
    """A leased step and its payout as leased; ``fresh``: its rail reference was made by
    this claim, so the rail has not heard of it."""

    payout: Payout
    step: str
    fresh: bool = False


def claim(
    conn: Connection, owner: str, now: int, lease_until: int, limit: int, rail: str
) -> list[Claimed]:
    """Lease up to ``limit`` due steps for ``owner``; each ``execute`` step has a reference."""
    token = secrets.token_hex(8)
    taken = {
        "owner": owner,
        "now": now,
        "lease": lease_until,
        "limit": limit,
        "rail": rail,
        "token": token,
        "execute": Step.EXECUTE,
    }
    made = f"-{token}"  # the claim's own references end so
    return [
        Claimed(
            row,
            str(row.work),
            row.work == Step.EXECUTE
            and bool(row.rail_reference and row.rail_reference.endswith(made)),
        )
        for row in sql.rows(conn, _CLAIM, taken)
    ]


def leased(conn: Connection, owner: str, numbers: Iterable[int], step: str) -> list[Payout]:
    """The payouts still leased by ``owner`` for ``step``, locked after their sessions."""
    return [
        payout
        for payout in store.lock_payouts(conn, numbers)
        if payout.work == step and payout.lease_owner == owner
    ]
