"""How payouts end, for many at once: success, failure (the rail's, a cancel, a confirm
timeout), a rail's trouble, a refund; and ``settle``, which turns what the rail says about
each payout into those.

Each runs inside the caller's write transaction on payouts it has locked (after their
sessions): the ledger moves the money (a hold posted or released, a refund credited), the
payout and its session move as ``states.MOVES`` allows, and the webhook that announces the
change is written with it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy.engine import Connection

from payout131.ledger import book
from payout131.payouts import store
from payout131.payouts.announcements import announce
from payout131.payouts.calls import Context
from payout131.payouts.records import Listed, Payout, Refund
from payout131.payouts.states import MOVES, Move, PayoutStatus, Step
from payout131.payouts.store import PayoutChange
from payout131.protocol import wire
from payout131.rails import Status
from payout131.storage import numbers, sql

__all__ = ["Failure", "News", "Success", "fail", "settle", "succeed"]

log = logging.getLogger("payout131.settlement")

SUCCEED, FAIL, TROUBLE, REFUND = MOVES["succeed"], MOVES["fail"], MOVES["trouble"], MOVES["refund"]
POLL, WATCH = MOVES["poll"], MOVES["watch"]
FINISHED = "payment_finished"


@dataclass(frozen=True, slots=True)
class Failure:
    """A payout to fail, and why (a Bank 131 error code and its description)."""

    payout: Payout
    code: str
    description: str


def _moved(
    conn: Connection,
    move: Move,
    payouts: Sequence[PayoutChange],
    sessions: Sequence[int],
    now: int,
    error: tuple[str | None, str | None] = (None, None),
) -> tuple[list[Payout], list[object]]:
    """Make ``move`` on the payouts and their sessions (one round trip); the rows moved."""
    payout_moves = store.move_payouts(move, payouts, now)
    session_moves = store.move_sessions(move, sessions, now, error)
    found = sql.together(conn, [*payout_moves, *session_moves])
    moved_payouts = store.moved(conn, move, payout_moves, found[: len(payout_moves)])
    moved_sessions = store.moved(conn, move, session_moves, found[len(payout_moves) :])
    return moved_payouts, moved_sessions


def fail(
    conn: Connection, context: Context, move: Move, failures: Sequence[Failure], now: int
) -> dict[int, Listed]:
    """Release the holds, fail the payouts (``move``: ``fail``, ``cancel``, ``time_out``),
    cancel their sessions, announce ``payment_finished``; the sessions, by number."""
    if not failures:
        return {}
    book.release_holds(conn, [f.payout.n for f in failures if f.payout.moves_money], now)
    changes = [PayoutChange(f.payout.n, None, None, f.code, f.description) for f in failures]
    payouts, sessions = _moved(conn, move, changes, [f.payout.session_n for f in failures], now)
    changed = store.listed(sessions, payouts)  # type: ignore[arg-type]
    announce(conn, context.vault, FINISHED, changed, now)
    return {listed.session.n: listed for listed in changed}


@dataclass(frozen=True, slots=True)
class Success:
    """A payout the rail paid: watched for a return until ``watch_until`` if set; with what
    the rail told of it (``outcome``, JSON text: a card payout's transaction_info)."""

    payout: Payout
    watch_until: int | None = None
    outcome: str | None = None


def succeed(conn: Connection, context: Context, paid: Sequence[Success], now: int) -> None:
    """Post the holds (amount and fee), mark the payouts ``succeeded`` (each watched for a
    return until its time, if it has one) and their sessions ``accepted``, announce it."""
    if not paid:
        return
    postings = [book.Posting(s.payout.n, s.payout.fee) for s in paid if s.payout.moves_money]
    book.post_holds(conn, postings, now)
    changes = [
        PayoutChange(
            s.payout.n, Step.WATCH if s.watch_until else None, s.watch_until, outcome=s.outcome
        )
        for s in paid
    ]
    payouts, sessions = _moved(conn, SUCCEED, changes, [s.payout.session_n for s in paid], now)
    announce(conn, context.vault, FINISHED, store.listed(sessions, payouts), now)  # type: ignore[arg-type]


def refund(
    conn: Connection, context: Context, returns: Sequence[tuple[Payout, int]], now: int
) -> None:
    """The recipients' banks sent succeeded payouts back: credit the paying accounts, list
    the refunds in the payouts, announce ``payment_refunded``. Once per payout."""
    if not returns:
        return
    known = store.refund_of(conn, [p.n for p, _ in returns])
    fresh = [(p, amount) for p, amount in returns if p.n not in known]
    again = [PayoutChange(p.n) for p, _ in returns if p.n in known]
    if again:  # refunded before: nothing is paid twice; no step is left
        sql.together(conn, store.move_payouts(WATCH, again, now))
    if not fresh:
        return
    drawn = numbers.draw(conn, {"refunds": len(fresh)})["refunds"]
    made = [
        Refund(n, p.n, amount, "accepted", now, now)
        for n, (p, amount) in zip(drawn, fresh, strict=True)
    ]
    store.insert_refunds(conn, made)
    book.return_payouts(conn, [(p.n, p.account_id, amount) for p, amount in fresh], now)
    changes = [PayoutChange(p.n) for p, _ in fresh]
    payouts, sessions = _moved(conn, REFUND, changes, [p.session_n for p, _ in fresh], now)
    changed = store.listed(sessions, payouts, made)  # type: ignore[arg-type]
    announce(conn, context.vault, "payment_refunded", changed, now)


def _trouble(conn: Connection, troubled: Sequence[tuple[Payout, str, str]], now: int) -> None:
    """The rail hit a trouble it is still working out: the session shows ``error`` (not
    final; the first trouble's), the payout stays ``in_progress``; no webhook until the
    outcome."""
    by_error: dict[tuple[str, str], list[int]] = {}
    for payout, code, description in troubled:
        by_error.setdefault((code, description), []).append(payout.session_n)
    statements = [
        statement
        for (code, description), sessions in by_error.items()
        for statement in store.move_sessions(TROUBLE, sessions, now, (code, description))
    ]
    found = sql.together(conn, statements)  # a session in error already stays as it is
    store.note_moved(conn, TROUBLE, [row for rows in found for row in rows])


@dataclass(slots=True)
class News:
    """What ``settle`` makes of the rail's answers, sorted by what they lead to."""

    succeeded: list[Success] = field(default_factory=list)
    failed: list[Failure] = field(default_factory=list)
    troubled: list[tuple[Payout, str, str]] = field(default_factory=list)
    returned: list[tuple[Payout, int]] = field(default_factory=list)
    polls: list[PayoutChange] = field(default_factory=list)  # still at the rail
    watches: list[PayoutChange] = field(default_factory=list)  # paid; a return may come


def _read(news: News, payout: Payout, status: Status, now: int, retry_s: float) -> None:
    """File one payout's rail status under what it leads to."""
    reference = payout.rail_reference
    if payout.status not in (PayoutStatus.IN_PROGRESS, PayoutStatus.SUCCEEDED):
        log.warning("payout po_%s is %s; rail news %s ignored", payout.n, payout.status, status)
        return
    running = payout.status == PayoutStatus.IN_PROGRESS
    if status.state in ("unknown", "pending"):
        if status.state == "unknown":
            log.warning("payout po_%s: rail has no record of %s yet", payout.n, reference)
        if status.error_code and running:
            description = status.description or status.error_code
            news.troubled.append((payout, status.error_code, description))
        later = status.next_check_at or now + int(retry_s * 1_000_000)
        waiting = news.polls if running else news.watches
        waiting.append(PayoutChange(payout.n, Step.POLL if running else Step.WATCH, later))
        return
    if running and status.state == "failed":
        code = status.error_code or "provider_internal_error"
        description = status.description or "the rail refused the payout"
        news.failed.append(Failure(payout, code, description))
        return
    returned = status.state == "returned"
    if returned and wire.loads_field(payout.recipient).get("phone"):
        # Faster Payments (PROTOCOL §9): no return ever follows one, whatever a rail says
        log.error("payout po_%s went by Faster Payments; a return is ignored", payout.n)
        returned, status = False, Status("succeeded")
    watch_until = status.next_check_at if status.state == "succeeded" else None
    if returned:
        amount = status.returned_amount or int(payout.amount)
        if not 0 < amount <= int(payout.amount):
            raise ValueError(f"payout po_{payout.n}: rail returned {amount} of {payout.amount}")
        news.returned.append((payout, amount))
    if running:
        outcome = None if status.outcome is None else wire.dumps(status.outcome).decode()
        news.succeeded.append(Success(payout, watch_until, outcome))
        return
    if status.state == "failed":
        log.error("payout po_%s: rail reports a failure after success (%s)", payout.n, reference)
    if not returned:
        news.watches.append(
            PayoutChange(payout.n, Step.WATCH if watch_until else None, watch_until)
        )


def settle(
    conn: Connection,
    context: Context,
    answers: Sequence[tuple[Payout, Status]],
    now: int,
    retry_s: float,
) -> None:
    """Move each payout (locked) to where the rail says it stands: paid, failed, returned,
    or still on its way (asked again at the rail's time, else after ``retry_s``)."""
    news = News()
    for payout, status in answers:
        _read(news, payout, status, now, retry_s)
    with sql.pipeline(conn):  # benchmarks: the writes travel with the reads
        succeed(conn, context, news.succeeded, now)
        fail(conn, context, FAIL, news.failed, now)
        if news.troubled:
            _trouble(conn, news.troubled, now)
        if news.polls or news.watches:
            sql.together(
                conn,
                [
                    *store.move_payouts(POLL, news.polls, now),
                    *store.move_payouts(WATCH, news.watches, now),
                ],
            )
        refund(conn, context, news.returned, now)
