"""Sessions, payouts and refunds in the database: the one module that reads and writes them.

Every status written here comes from a ``states.Move``: the statement sets the move's target
and matches only rows in one of its sources, and each writes back the rows it moved, so a
move the table does not allow changes nothing and is refused (``IllegalMove``). Statements
are built once (``storage/sql.py``) and handed back to the use cases as ``(Sql, params)``
pairs, so a use case sends the statements of a whole group in one round trip.

Locks are taken in one order by every writer: sessions first, then their payouts, each by
number; so partner calls, the worker and rail callbacks never deadlock on PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Connection

from payout131 import logs
from payout131.payouts.records import Listed, Payout, Refund, Session
from payout131.payouts.states import Move
from payout131.payouts.tallies import CHANGES
from payout131.protocol.wire import payout_id, session_id
from payout131.storage import after_commit, sql
from payout131.storage import schema as t
from payout131.storage.sql import Sql

__all__ = [
    "IllegalMove",
    "PayoutChange",
    "Statement",
    "insert_payouts",
    "insert_refunds",
    "insert_sessions",
    "listed",
    "lock_payouts",
    "lock_sessions",
    "move_payouts",
    "move_sessions",
    "moved",
    "read_listed",
    "refund_of",
    "status_rows",
]

Statement = tuple[Sql[Any], Mapping[str, Any]]

_S = sql.columns(Session)
_P = sql.columns(Payout)
_R = sql.columns(Refund)


class IllegalMove(RuntimeError):
    """A row was not where its move starts: a bug, never a partner's mistake (their calls
    are checked against the state before anything moves)."""


def insert_sessions(conn: Connection, sessions: Sequence[Session]) -> None:
    sql.insert(conn, t.sessions, [s._asdict() for s in sessions])


def insert_payouts(conn: Connection, payouts: Sequence[Payout]) -> None:
    sql.insert(conn, t.payouts, [p._asdict() for p in payouts])
    for payout in payouts:
        _note(conn, "payout.created", None, payout)


def insert_refunds(conn: Connection, refunds: Sequence[Refund]) -> None:
    sql.insert(conn, t.refunds, [r._asdict() for r in refunds])


# Reads. Sessions are locked before their payouts, each in number order.
_LOCK_SESSIONS = Sql(
    f"SELECT {_S} FROM sessions WHERE n = ANY(:numbers) ORDER BY n FOR UPDATE",  # noqa: S608
    make=Session,
)
_LOCK_PAYOUTS_OF = Sql(
    f"SELECT {_P} FROM payouts WHERE session_n = ANY(:numbers) ORDER BY n FOR UPDATE",  # noqa: S608
    make=Payout,
)
_LOCK_OWNERS = Sql(
    """SELECT n FROM sessions
    WHERE n IN (SELECT session_n FROM payouts WHERE n = ANY(:numbers))
    ORDER BY n FOR UPDATE"""
)
_LOCK_PAYOUTS = Sql(
    f"SELECT {_P} FROM payouts WHERE n = ANY(:numbers) ORDER BY n FOR UPDATE",  # noqa: S608
    make=Payout,
)
_SESSIONS = Sql(
    f"SELECT {_S} FROM sessions WHERE n = ANY(:numbers) ORDER BY n",  # noqa: S608
    make=Session,
)
_PAYOUTS_OF = Sql(
    f"SELECT {_P} FROM payouts WHERE session_n = ANY(:numbers) ORDER BY n",  # noqa: S608
    make=Payout,
)
_REFUNDS_OF = Sql(
    f"""SELECT {_R} FROM refunds
    WHERE payout_n IN (SELECT n FROM payouts WHERE session_n = ANY(:numbers))
    ORDER BY n""",  # noqa: S608
    make=Refund,
)
_REFUND_OF = Sql(
    f"SELECT {_R} FROM refunds WHERE payout_n = ANY(:numbers)",  # noqa: S608
    make=Refund,
)


def lock_sessions(
    conn: Connection, numbers: Iterable[int]
) -> dict[int, tuple[Session, Payout | None]]:
    """Sessions ``numbers`` that exist, each with its payout (None before start), locked."""
    wanted = {"numbers": sorted(set(numbers))}
    sessions, payouts = sql.together(conn, [(_LOCK_SESSIONS, wanted), (_LOCK_PAYOUTS_OF, wanted)])
    of = {p.session_n: p for p in payouts}
    return {s.n: (s, of.get(s.n)) for s in sessions}


def lock_payouts(conn: Connection, numbers: Iterable[int]) -> list[Payout]:
    """Payouts ``numbers`` that exist, locked after their sessions, by number."""
    wanted = {"numbers": sorted(set(numbers))}
    _, payouts = sql.together(conn, [(_LOCK_OWNERS, wanted), (_LOCK_PAYOUTS, wanted)])
    return list(payouts)


def read_listed(conn: Connection, numbers: Iterable[int]) -> list[Listed]:
    """Sessions ``numbers`` with their payouts and refunds, by number (one round trip)."""
    wanted = {"numbers": sorted(set(numbers))}
    sessions, payouts, refunds = sql.together(
        conn, [(_SESSIONS, wanted), (_PAYOUTS_OF, wanted), (_REFUNDS_OF, wanted)]
    )
    return listed(sessions, payouts, refunds)


def refund_of(conn: Connection, payouts: Iterable[int]) -> dict[int, Refund]:
    """The refund of each of these payouts that has one."""
    found = sql.rows(conn, _REFUND_OF, {"numbers": sorted(set(payouts))})
    return {r.payout_n: r for r in found}


def listed(
    sessions: Iterable[Session], payouts: Iterable[Payout], refunds: Iterable[Refund] = ()
) -> list[Listed]:
    """Sessions with their payouts and each payout's refunds, as rendering wants them."""
    of_payout: dict[int, list[Refund]] = {}
    for refund in refunds:
        of_payout.setdefault(refund.payout_n, []).append(refund)
    of_session: dict[int, list[tuple[Payout, tuple[Refund, ...]]]] = {}
    for payout in sorted(payouts, key=lambda p: p.n):
        entry = (payout, tuple(of_payout.get(payout.n, ())))
        of_session.setdefault(payout.session_n, []).append(entry)
    return [Listed(s, tuple(of_session.get(s.n, ()))) for s in sorted(sessions, key=lambda s: s.n)]


# benchmarks: a session, its payout and its refunds in one statement (a session has one
# payout and a payout at most one refund, so each stands in one row)
_STATUS = Sql(
    f"""SELECT {sql.columns(Session, "s", "s_")}, {sql.columns(Payout, "p", "p_")},
    {sql.columns(Refund, "r", "r_")}
    FROM sessions s LEFT JOIN payouts p ON p.session_n = s.n
    LEFT JOIN refunds r ON r.payout_n = p.n WHERE s.n = :n""",  # noqa: S608
    booleans=["s_rko"],
)
_SESSION_WIDTH, _PAYOUT_WIDTH = len(Session._fields), len(Payout._fields)


def status_rows(conn: Connection, n: int) -> Listed | None:
    """Session ``n`` with its payout and refund, read in one statement; None if unknown."""
    found = sql.rows(conn, _STATUS, {"n": n})
    if not found:
        return None
    row = tuple(found[0])
    session = Session._make(row[:_SESSION_WIDTH])
    rest = row[_SESSION_WIDTH:]
    if rest[0] is None:  # created, not started: no payout yet
        return Listed(session, ())
    payout = Payout._make(rest[:_PAYOUT_WIDTH])
    refund = rest[_PAYOUT_WIDTH:]
    refunds = () if refund[0] is None else (Refund._make(refund),)
    return Listed(session, ((payout, refunds),))


# Moves.


@dataclass(frozen=True, slots=True)
class PayoutChange:
    """What a move writes on one payout besides its status: its next step, its error."""

    n: int
    work: str | None = None
    work_at: int | None = None
    error_code: str | None = None
    error_description: str | None = None
    outcome: str | None = None  # JSON text: what the rail told of a success (kept if None)


def _payout_move(finishes: bool) -> Sql[Payout]:
    finished = ", finished_at = :now" if finishes else ""
    return Sql(
        f"""UPDATE payouts SET status = :to, work = :work, work_at = :work_at,
        lease_owner = NULL, lease_until = NULL, error_code = :error_code,
        error_description = :error_description, outcome = COALESCE(:outcome, outcome),
        updated_at = :now{finished}
        WHERE n = ANY(:numbers) AND status = ANY(:from) RETURNING {_P}""",  # noqa: S608
        make=Payout,
    )


_MOVE_PAYOUTS = {False: _payout_move(False), True: _payout_move(True)}
_SCHEDULE = Sql(
    f"""UPDATE payouts SET work = :work, work_at = :work_at, lease_owner = NULL,
    lease_until = NULL WHERE n = ANY(:numbers) AND status = ANY(:from)
    RETURNING {_P}""",  # noqa: S608
    make=Payout,
)
_MOVE_SESSIONS = Sql(
    f"""UPDATE sessions SET status = :to, error_code = :error_code,
    error_description = :error_description, updated_at = :now
    WHERE n = ANY(:numbers) AND status = ANY(:from) RETURNING {_S}""",  # noqa: S608
    make=Session,
)


def move_payouts(move: Move, changes: Sequence[PayoutChange], now: int) -> list[Statement]:
    """The statements that make ``move`` on these payouts (changes alike share one)."""
    assert move.payout is not None, f"{move.name} moves no payout"
    sources = move.payout.starts
    groups: dict[tuple[Any, ...], list[int]] = {}
    for change in changes:
        key = (
            change.work,
            change.work_at,
            change.error_code,
            change.error_description,
            change.outcome,
        )
        groups.setdefault(key, []).append(change.n)
    statements: list[Statement] = []
    for (work, work_at, code, description, outcome), numbers in groups.items():
        params: dict[str, Any] = {
            "numbers": numbers,
            "from": sources,
            "work": work,
            "work_at": work_at,
        }
        if move.reschedules:
            statements.append((_SCHEDULE, params))
            continue
        params.update(
            to=move.payout_to, error_code=code, error_description=description, outcome=outcome
        )
        statements.append((_MOVE_PAYOUTS[move.finishes], {**params, "now": now}))
    return statements


def move_sessions(
    move: Move,
    numbers: Sequence[int],
    now: int,
    error: tuple[str | None, str | None] = (None, None),
) -> list[Statement]:
    """The statement that makes ``move`` on these sessions (``error``: what they show)."""
    assert move.session is not None, f"{move.name} moves no session"
    params = {
        "numbers": sorted(set(numbers)),
        "from": move.session.starts,
        "to": move.session_to,
        "error_code": error[0],
        "error_description": error[1],
        "now": now,
    }
    return [(_MOVE_SESSIONS, params)]


LOGGER = "payout131.payouts"


def _note(conn: Connection, line: str, move: Move | None, row: Payout | Session) -> None:
    """Log a payout's (or a session's) new state, and count a payout's, once its
    transaction commits."""
    fields: dict[str, Any] = {"move": None if move is None else move.name}
    if isinstance(row, Payout):
        fields.update(payout=payout_id(row.n), session=session_id(row.session_n))
        fields.update(amount=row.amount, kind=row.kind)
    else:
        fields["session"] = session_id(row.n)
    fields.update(project=row.project_id, status=row.status, error=row.error_code)
    logs.later(conn, LOGGER, line, **fields)
    if isinstance(row, Payout):
        counted = CHANGES.labels(fields["move"] or "created", row.status, row.error_code or "")
        after_commit.later(conn, counted.inc)


def note_moved(conn: Connection, move: Move, rows: Iterable[Payout | Session]) -> None:
    """Log each row ``move`` moved: a payout's change (its session's goes with it), or a
    session's when the move moves no payout. A move that only reschedules the rail's next
    question (``poll``, ``watch``) changes no state, and is not logged."""
    if move.reschedules:
        return
    for row in rows:
        if isinstance(row, Payout):
            _note(conn, "payout.moved", move, row)
        elif move.payout is None:
            _note(conn, "session.moved", move, row)


def moved(
    conn: Connection,
    move: Move,
    statements: Sequence[Statement],
    found: Sequence[Sequence[Any]],
    strict: bool = True,
) -> list[Any]:
    """The rows ``statements`` moved (their results, ``found``); with ``strict``, every row
    they named must have moved. Each is logged once the transaction commits."""
    rows: list[Any] = []
    for (_, params), result in zip(statements, found, strict=True):
        if strict and len(result) != len(params["numbers"]):
            missing = sorted(set(params["numbers"]) - {row.n for row in result})
            raise IllegalMove(f"{move.name}: {missing} are not where {move.name} starts")
        rows.extend(result)
    note_moved(conn, move, rows)
    return rows
