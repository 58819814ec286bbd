"""Batched payout steps: the worker's ``check`` and ``execute`` steps, many per transaction.

One payout at a time, a single-request payout costs the worker three commits (rail
reference, rail's books, outcome) and a two-step payout one more (``ready_to_confirm``).
Under load the worker claims many due payouts at once; here the claimed payouts of one kind
of step go through together:

- ``check``: one transaction moves every payout to ``pending`` and writes its
  ``ready_to_confirm`` event;
- ``execute``: the claim that leased the payouts committed their rail references (before
  the rail hears of any, ``Worker.claim``), the rail is called (``submit_many`` when the
  rail has it: the simulator writes its books once), and one transaction applies every
  answer.

Each payout's state change, ledger entries and event are still written together and commit
together (with the others of the batch). Locks are taken in one order, sessions then
payouts, each by number, as single steps and partner calls take them, so batches and
partner calls do not deadlock. If a batch fails, its steps run again one by one
(``Worker.run_step``), which is safe at any point: each payout then asks the rail first,
as a payout whose reference was committed by an earlier lease does (docs/rails.md).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import Connection

from payout131 import sessions, sessions_batch, settlement
from payout131.projects import Project, get_project
from payout131.rails import Order, Status
from payout131.storage import raw
from payout131.storage.raw import Sql
from payout131.tokens import account_tokens as tokens

if TYPE_CHECKING:
    from payout131.work import Claimed, Worker

__all__ = ["BATCHED", "run"]

log = logging.getLogger("payout131.work")

BATCHED = ("check", "execute")


def run(worker: Worker, claimed: Sequence[Claimed]) -> list[Claimed]:
    """Run the batchable steps of ``claimed`` in batches; the steps left to run one by one."""
    rest = [c for c in claimed if c.work not in BATCHED]
    for work in BATCHED:
        steps = sorted((c for c in claimed if c.work == work), key=lambda c: c.n)
        if len(steps) < 2:
            rest += steps
            continue
        try:
            if work == "check":
                _check(worker, [c.n for c in steps])
            else:
                _execute(worker, steps)
        except Exception:  # e.g. a database outage: each step is retried on its own
            log.exception(
                "a batch of %d %s steps failed; running them one by one", len(steps), work
            )
            # the rail may have heard of them by now: each asks it first
            rest += [c._replace(reference=None) for c in steps]
    return rest


# benchmarks: the batches' statements go straight to the driver (storage/raw.py)
_LOCK_SESSIONS = Sql(
    """SELECT n FROM sessions
    WHERE n IN (SELECT session_n FROM payouts WHERE n = ANY(:numbers))
    ORDER BY n FOR UPDATE"""
)
_LOCK_PAYOUTS = Sql("SELECT * FROM payouts WHERE n = ANY(:numbers) ORDER BY n FOR UPDATE")


def _leased(conn: Connection, owner: str, numbers: Sequence[int], work: str) -> list[Any]:
    """The payouts still leased by ``owner`` for ``work``, locked after their sessions."""
    wanted = {"numbers": list(numbers)}
    _, rows = raw.together(conn, [(_LOCK_SESSIONS, wanted), (_LOCK_PAYOUTS, wanted)])
    return [row for row in rows if row.work == work and row.lease_owner == owner]


def _check(worker: Worker, numbers: Sequence[int]) -> None:
    bank = worker.bank
    now = bank.clock.now()
    found: dict[str, Project] = {}

    def check(conn: Connection) -> None:
        leased = _leased(conn, worker.owner, numbers, "check")
        for payout in leased:
            if payout.project_id not in found:
                project = get_project(conn, payout.project_id)
                assert project is not None
                found[project.id] = project
        # benchmarks: set-wise, as sessions.ready_to_confirm does it for one
        sessions_batch.ready_to_confirm_many(conn, leased, found, bank.directory, now, bank.vault)

    bank.group_commit.run(check)


def _execute(worker: Worker, steps: Sequence[Claimed]) -> None:
    bank, rail = worker.bank, worker.bank.rail
    orders: dict[int, Order] = {}
    resumed: set[int] = set()
    with bank.db.read() as conn:  # a tokenized account's token (the others need nothing)
        for n, _, payout, reference in steps:
            if reference is None:  # given at an earlier lease: the rail may know it
                if payout.rail != rail.name:
                    log.error(
                        "payout po_%s was sent through rail %r, not %r; it will be retried",
                        n,
                        payout.rail,
                        rail.name,
                    )
                    continue
                resumed.add(n)
                reference = payout.rail_reference
            account = tokens.payout_account(conn, bank.vault, payout)
            orders[n] = settlement.order(payout, reference, account)
    statuses: dict[int, Status] = {}
    fresh: list[int] = []
    for n, order in orders.items():
        if n in resumed:
            status = rail.poll(order.reference)
            if status.state != "unknown":
                statuses[n] = status
                continue
        fresh.append(n)
    submit_many = getattr(rail, "submit_many", None)
    if submit_many is not None and fresh:
        answers: list[Status] = submit_many([orders[n] for n in fresh])
    else:
        answers = [rail.submit(orders[n]) for n in fresh]
    statuses.update(zip(fresh, answers, strict=True))
    now = bank.clock.now()

    def record(conn: Connection) -> None:
        leased = _leased(conn, worker.owner, sorted(statuses), "execute")
        paid = [p for p in leased if _plain_success(p, statuses[int(p.n)])]
        sessions.succeed_payouts(conn, paid, now)  # the common case: set-wise
        for payout in leased:
            if not _plain_success(payout, statuses[int(payout.n)]):
                settlement.apply(
                    conn, payout, statuses[int(payout.n)], now, bank.settings.rail_poll_s
                )

    bank.group_commit.run(record)


def _plain_success(payout: Any, status: Status) -> bool:
    """Paid, with nothing to watch for: what ``settlement.apply`` does is ``succeed_payout``."""
    return (
        payout.status == "in_progress"
        and status.state == "succeeded"
        and status.next_check_at is None
    )
