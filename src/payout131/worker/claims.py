"""Leasing due payout steps: any number of workers share the queue in ``payouts.work``.

A claim leases the due steps, oldest first, skipping rows another worker holds (``FOR
UPDATE SKIP LOCKED`` on PostgreSQL; SQLite's write lock serialises claimers). An
``execute`` step without a rail reference gets one in the same statement,
``po_<n>-<random>``: the reference a payout goes to the rail under, committed before the
rail first hears of it, unique across banks, the random part drawn once per claim. (A
second update of a row this transaction updated would check the row's foreign keys again,
locking its session after the payout, against every other writer's order: a deadlock
with a partner's confirm, found by tests/test_races.py.)

Payouts of projects on a test clock (docs/sandbox.md) are due by their clock's frozen time,
not the wall's: ``claim`` leaves them to ``claim_on_clocks``, which leases the steps due on
their clocks and says each one's time. Leases are wall time either way: they are about
which process is alive.

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

__all__ = ["Claimed", "claim", "claim_on_clocks", "leased"]

_UNSENT = "work = :execute AND rail_reference IS NULL"
_LEASE = f"""UPDATE payouts SET lease_owner = :owner, lease_until = :lease,
        rail = CASE WHEN {_UNSENT} THEN :rail ELSE rail END,
        rail_reference = CASE WHEN {_UNSENT}
            THEN 'po_' || n || '-' || CAST(:token AS text) ELSE rail_reference END
    WHERE n IN """  # noqa: S608 (our own condition)
_WALL = "AND project_id NOT IN (SELECT id FROM projects WHERE test_clock IS NOT NULL)"


def _by_the_wall(only_wall: bool) -> Sql[Payout]:
    return Sql(
        f"""{_LEASE} (
            SELECT n FROM payouts WHERE work IS NOT NULL AND work_at <= :now
            AND (lease_until IS NULL OR lease_until < :now) {_WALL if only_wall else ""}
            ORDER BY work_at LIMIT :limit FOR UPDATE SKIP LOCKED)
        RETURNING {sql.columns(Payout)}""",  # noqa: S608 (our own condition and columns)
        make=Payout,
    )


# sandbox mode: the payouts of projects on test clocks are left to ``claim_on_clocks``;
# production mode has no clocks, and every payout is due by the wall
_CLAIM = {True: _by_the_wall(True), False: _by_the_wall(False)}
_CLAIM_ON_CLOCKS = Sql(
    f"""{_LEASE} (
        SELECT w.n FROM payouts w JOIN projects p ON p.id = w.project_id
        JOIN test_clocks k ON k.n = p.test_clock
        WHERE w.work IS NOT NULL AND w.work_at <= k.frozen_time
        AND (w.lease_until IS NULL OR w.lease_until < :now)
        ORDER BY w.work_at LIMIT :limit FOR UPDATE OF w SKIP LOCKED)
    RETURNING {sql.columns(Payout)}""",  # noqa: S608 (our own condition and columns)
    make=Payout,
)
_CLOCK_TIMES = Sql(
    """SELECT p.id, k.n, k.frozen_time FROM projects p JOIN test_clocks k ON k.n = p.test_clock
    WHERE p.id = ANY(:ids)"""
)


class Claimed(NamedTuple):
    """A leased step and its payout as leased; ``fresh``: its rail reference was made by
    this claim, so the rail has not heard of it; ``clock`` and ``at``: the test clock the
    payout's project runs on and its time (None: wall time)."""

    payout: Payout
    step: str
    fresh: bool = False
    clock: int | None = None
    at: int | None = None


def claim(
    conn: Connection,
    owner: str,
    now: int,
    lease_until: int,
    limit: int,
    rail: str,
    clocks: bool = True,
) -> list[Claimed]:
    """Lease up to ``limit`` steps due by the wall for ``owner`` (with ``clocks``, sandbox
    mode, none of a project on a test clock); each ``execute`` step has a reference."""
    return _claim(conn, _CLAIM[clocks], owner, now, lease_until, limit, rail)


def claim_on_clocks(
    conn: Connection, owner: str, now: int, lease_until: int, limit: int, rail: str
) -> list[Claimed]:
    """``claim`` for the payouts of projects on test clocks, each due by its clock."""
    claimed = _claim(conn, _CLAIM_ON_CLOCKS, owner, now, lease_until, limit, rail)
    if not claimed:
        return []
    ids = sorted({leased.payout.project_id for leased in claimed})
    times = {row.id: row for row in sql.rows(conn, _CLOCK_TIMES, {"ids": ids})}
    return [
        leased._replace(
            clock=int(times[leased.payout.project_id].n),
            at=int(times[leased.payout.project_id].frozen_time),
        )
        for leased in claimed
        if leased.payout.project_id in times  # unbound meanwhile: its lease runs out
    ]


def _claim(
    conn: Connection,
    statement: Sql[Payout],
    owner: str,
    now: int,
    lease_until: int,
    limit: int,
    rail: str,
) -> list[Claimed]:
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
        for row in sql.rows(conn, statement, taken)
    ]


def leased(conn: Connection, owner: str, numbers: Iterable[int], step: str) -> list[Payout]:
    """The payouts still leased by ``owner`` for ``step``, locked after their sessions."""
    return [
        payout
        for payout in store.lock_payouts(conn, numbers)
        if payout.work == step and payout.lease_owner == owner
    ]
