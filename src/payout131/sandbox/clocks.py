"""Test clocks: a frozen time that moves only when told to (docs/sandbox.md).

A project bound to a clock (``projects.test_clock``) runs all its time on the clock's
``frozen_time``: its calls, its payouts' steps, the simulator's transfers, its webhooks.
Projects without one run on wall time. Everything here runs in the caller's transaction;
moving a clock forward is ``sandbox.advance``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from payout131.clock import rfc3339
from payout131.errors import InvalidRequest
from payout131.protocol.validation import check_datetime, id_number
from payout131.protocol.wire import payout_id, session_id
from payout131.storage import schema as t
from payout131.storage import sql
from payout131.storage.sql import Sql

__all__ = [
    "MAX_NAME",
    "ClocksInProduction",
    "NoClock",
    "Pending",
    "TestClock",
    "bind",
    "check_mode",
    "clock_id",
    "create",
    "delete",
    "find",
    "get",
    "list_all",
    "lock",
    "next_due",
    "parse_duration",
    "parse_moment",
    "pending",
    "project_clock",
    "project_now",
    "projects_of",
]

MAX_NAME = 200
MICROS = 1_000_000
# the latest time a clock may reach: 9999-12-31, so every time stays an RFC 3339 date
LATEST = 253_402_300_799 * MICROS
_DURATION = re.compile(r"([0-9]{1,9})(s|m|h|d)")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

c = t.test_clocks


class NoClock(LookupError):
    """No clock has that id."""


class ClocksInProduction(RuntimeError):
    """Production mode with projects still bound to test clocks (their time would stop)."""


def check_mode(conn: Connection, mode: str) -> None:
    """Refuse production mode while a project is bound to a test clock: no clock moves
    there, so its payouts would wait forever."""
    if mode == "sandbox":
        return
    p = t.projects
    bound = [row.id for row in conn.execute(sa.select(p.c.id).where(p.c.test_clock.is_not(None)))]
    if bound:
        raise ClocksInProduction(
            f"PAYOUT131_MODE is production but projects {', '.join(sorted(bound)[:10])} are "
            "bound to test clocks: unbind them first (payout131 project set ID --no-test-clock "
            "with PAYOUT131_MODE=sandbox)"
        )


@dataclass(frozen=True, slots=True)
class Pending:
    """One thing due on a clock: a payout's next step or a webhook's next attempt."""

    at: int
    kind: str  # "payout" or "webhook"
    what: str
    session_id: str
    payout_id: str | None = None
    event_id: str | None = None

    def as_json(self) -> dict[str, Any]:
        out = {"at": rfc3339(self.at), "kind": self.kind, "what": self.what}
        out["session_id"] = self.session_id
        if self.payout_id:
            out["payout_id"] = self.payout_id
        if self.event_id:
            out["event_id"] = self.event_id
        return out


@dataclass(frozen=True, slots=True)
class TestClock:
    """A clock as stored; ``as_json`` is how the CLI and the API show it."""

    __test__ = False  # not a pytest class, whatever its name

    n: int
    name: str
    frozen_time: int
    status: str
    advance_to: int | None
    failure: str | None
    created_at: int

    @property
    def id(self) -> str:
        return clock_id(self.n)

    @classmethod
    def from_row(cls, row: Any) -> TestClock:
        m = row._mapping
        return cls(
            int(m["n"]),
            m["name"],
            int(m["frozen_time"]),
            m["status"],
            None if m["advance_to"] is None else int(m["advance_to"]),
            m["failure"],
            int(m["created_at"]),
        )

    def as_json(self, projects: Iterable[str], due: Iterable[Pending]) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "frozen_time": rfc3339(self.frozen_time),
            "status": self.status,
        }
        if self.status == "advancing" and self.advance_to is not None:
            out["advancing_to"] = rfc3339(self.advance_to)
        if self.status == "failed":
            out["failure"] = self.failure
        out["projects"] = sorted(projects)
        out["pending"] = [item.as_json() for item in due]
        return out


def clock_id(n: int) -> str:
    return f"clk_{n}"


def parse_id(text: str) -> int:
    """The number in ``clk_<n>``; ValueError naming the rule otherwise."""
    n = id_number(text[4:]) if text.startswith("clk_") else None  # one spelling, as ps_, po_
    if n is None:
        raise ValueError(f"{text[:40]!r} is not a test clock id (clk_ and a number, e.g. clk_1)")
    return n


def parse_duration(text: str) -> int:
    """``90m``, ``1h``, ``3d``, ``30s`` (or ``1h30m``) as microseconds; ValueError if not."""
    parts = _DURATION.findall(text)
    if not text or "".join(n + unit for n, unit in parts) != text:
        raise ValueError(
            f"{text[:40]!r} is not a duration: a number and a unit, s, m, h or d (e.g. 90m, 3d)"
        )
    seconds = sum(int(n) * _UNIT_S[unit] for n, unit in parts)
    if seconds <= 0:
        raise ValueError(f"{text!r}: a clock only moves forward; give a positive duration")
    return seconds * MICROS


def parse_moment(text: str) -> int:
    """An RFC 3339 date-time with its offset as microseconds; ValueError if not."""
    try:
        check_datetime("time", text)
        moment = datetime.fromisoformat(text.upper().replace("Z", "+00:00"))
    except (InvalidRequest, ValueError):
        raise ValueError(
            f"{text[:40]!r} is not an RFC 3339 date-time with an offset (e.g. 2027-01-01T12:00:00Z)"
        ) from None
    micros = (moment - EPOCH) // timedelta(microseconds=1)
    if not 0 <= micros <= LATEST:
        raise ValueError(f"{text!r} is outside the years 1970 to 9999")
    return micros


def create(conn: Connection, name: str, frozen_time: int, now: int) -> TestClock:
    if not name or len(name) > MAX_NAME or not name.isprintable():
        raise ValueError(f"name: 1 to {MAX_NAME} printable characters")
    if not 0 <= frozen_time <= LATEST:
        raise ValueError("frozen time: outside the years 1970 to 9999")
    row = conn.execute(
        sa.insert(c)
        .values(name=name, frozen_time=frozen_time, status="ready", created_at=now)
        .returning(*c.c)
    ).one()
    return TestClock.from_row(row)


def get(conn: Connection, n: int) -> TestClock:
    row = conn.execute(sa.select(c).where(c.c.n == n)).one_or_none()
    if row is None:
        raise NoClock(f"no test clock {clock_id(n)}")
    return TestClock.from_row(row)


def lock(conn: Connection, n: int) -> TestClock:
    """The clock, locked until the transaction ends (advances and deletes queue here)."""
    row = conn.execute(sa.select(c).where(c.c.n == n).with_for_update()).one_or_none()
    if row is None:
        raise NoClock(f"no test clock {clock_id(n)}")
    return TestClock.from_row(row)


def find(conn: Connection, text: str) -> TestClock:
    """The clock named by ``clk_<n>``: ValueError for a malformed id, NoClock if none."""
    return get(conn, parse_id(text))


def list_all(conn: Connection) -> list[TestClock]:
    return [TestClock.from_row(row) for row in conn.execute(sa.select(c).order_by(c.c.n))]


def projects_of(conn: Connection, n: int) -> list[str]:
    p = t.projects
    found = conn.execute(sa.select(p.c.id).where(p.c.test_clock == n).order_by(p.c.id))
    return [row.id for row in found]


def delete(conn: Connection, n: int) -> None:
    """Delete a clock no project is bound to."""
    clock = lock(conn, n)
    if clock.status == "advancing":
        raise ValueError(f"{clock.id} is advancing: delete it once it is ready")
    bound = projects_of(conn, n)
    if bound:
        raise ValueError(
            f"{clock.id} still runs projects {', '.join(bound)}: unbind them first "
            "(payout131 project set ID --no-test-clock)"
        )
    conn.execute(sa.delete(c).where(c.c.n == n))


def bind(conn: Connection, project_id: str, n: int | None) -> None:
    """Run the project on clock ``n`` from now on (None: on wall time)."""
    if n is not None:
        get(conn, n)
    p = t.projects
    done = conn.execute(sa.update(p).where(p.c.id == project_id).values(test_clock=n))
    if done.rowcount != 1:
        raise LookupError(f"no project {project_id!r}")


_PROJECT_CLOCK = Sql(
    """SELECT c.n, c.frozen_time FROM projects p JOIN test_clocks c ON c.n = p.test_clock
    WHERE p.id = :project"""
)


def project_clock(conn: Connection, project_id: str) -> TestClock | None:
    """The clock the project runs on, or None for wall time."""
    p = t.projects
    row = conn.execute(
        sa.select(c).join(p, p.c.test_clock == c.c.n).where(p.c.id == project_id)
    ).one_or_none()
    return None if row is None else TestClock.from_row(row)


def project_now(conn: Connection, project_id: str, wall: int) -> int:
    """The project's time: its clock's frozen time, or ``wall``."""
    found = sql.rows(conn, _PROJECT_CLOCK, {"project": project_id})
    return int(found[0].frozen_time) if found else wall


# What is due on a clock: the payouts' next steps and the webhooks' next attempts of its
# projects. An event counts when it could be sent: its project has a URL and no earlier
# event of its session still waits (that one comes first).
# ``after``: only what is due later than that; ``sessions``: only the sessions up to that
# number (the advance's fence: sessions made while it runs do not hold it up)
_STEPS = Sql(
    """SELECT w.work_at AS at, w.work, w.n, w.session_n FROM payouts w
    JOIN projects p ON p.id = w.project_id
    WHERE p.test_clock = :clock AND w.work IS NOT NULL
    AND w.work_at > :after AND w.session_n <= :sessions
    ORDER BY w.work_at, w.n LIMIT :limit"""
)
_DELIVERIES = Sql(
    """SELECT e.next_attempt_at AS at, e.id, e.type, e.attempts, e.session_n FROM events e
    JOIN projects p ON p.id = e.project_id
    WHERE p.test_clock = :clock AND e.status IN ('pending', 'failed')
    AND p.webhook_url IS NOT NULL
    AND e.next_attempt_at > :after AND e.session_n <= :sessions
    AND NOT EXISTS (
        SELECT 1 FROM events earlier WHERE earlier.session_n = e.session_n
        AND earlier.id < e.id AND earlier.status IN ('pending', 'failed'))
    ORDER BY e.next_attempt_at, e.id LIMIT :limit"""
)
_LAST_SESSION = Sql("SELECT COALESCE(MAX(n), 0) AS n FROM sessions")
EVERYTHING = (-(2**62), 2**62)  # ``after`` and ``sessions`` that leave nothing out
_STEP_NAMES = {
    "check": "checks the payout (then ready_to_confirm, or straight to the rail)",
    "expire": "confirm timeout: the unconfirmed payout is cancelled",
    "execute": "sends the payout to the rail",
    "poll": "asks the rail how the payout stands",
    "watch": "asks the rail whether the paid payout came back",
}


def pending(
    conn: Connection,
    n: int,
    limit: int = 100,
    *,
    after: int | None = None,
    sessions: int | None = None,
) -> list[Pending]:
    """What is due on the clock, earliest first (at most ``limit`` items); only what is due
    later than ``after``, and of the sessions numbered up to ``sessions``, when given."""
    params = {
        "clock": n,
        "limit": limit,
        "after": EVERYTHING[0] if after is None else after,
        "sessions": EVERYTHING[1] if sessions is None else sessions,
    }
    items = [
        Pending(
            int(row.at),
            "payout",
            f"{payout_id(int(row.n))}: {_STEP_NAMES.get(row.work, row.work)}",
            session_id(int(row.session_n)),
            payout_id=payout_id(int(row.n)),
        )
        for row in sql.rows(conn, _STEPS, params)
    ]
    items += [
        Pending(
            int(row.at),
            "webhook",
            f"evt_{row.id}: {row.type} webhook, attempt {int(row.attempts) + 1}",
            session_id(int(row.session_n)),
            event_id=f"evt_{row.id}",
        )
        for row in sql.rows(conn, _DELIVERIES, params)
    ]
    return sorted(items, key=lambda item: (item.at, item.kind, item.what))[:limit]


def next_due(conn: Connection, n: int, after: int | None = None) -> int | None:
    """When the next thing (later than ``after``) is due on the clock (None: nothing)."""
    due = pending(conn, n, limit=1, after=after)
    return due[0].at if due else None


def last_session(conn: Connection) -> int:
    """The number of the latest session, of any project (an advance's fence)."""
    return int(sql.rows(conn, _LAST_SESSION)[0].n)
