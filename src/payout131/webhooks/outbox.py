"""The dispatcher's side of the outbox: claim due events under a lease, record each outcome.

An event is *due* when it is ``pending`` or ``failed``, its ``next_attempt_at`` has passed,
nobody holds a live lease on it, its project has a webhook URL, and no earlier event of its
session is still waiting (``pending`` or ``failed``): so a session's events arrive in the
order they were written, and a dead event no longer holds the session up.

The events of projects on a test clock (docs/sandbox.md) are due by their clock's frozen
time: ``DUE`` leaves them to ``DUE_ON_CLOCKS``, and such an attempt happens, and is recorded,
at its clock's time (``Job.on_clock``); leases are wall time either way.

Claiming takes the candidates ``FOR UPDATE SKIP LOCKED`` on PostgreSQL (SQLite's write lock,
taken with ``BEGIN IMMEDIATE``, serialises claimers instead), leases them, counts the
attempt and writes its attempt row, all in one short transaction. Recording locks the
event again and changes it only while this worker still holds the lease.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from payout131.sandbox import clocks
from payout131.storage import schema as t
from payout131.storage import sql
from payout131.storage.sql import Sql
from payout131.tokens.vault import Sealed
from payout131.webhooks.schedule import Schedule, parse_retry_after

__all__ = [
    "SNIPPET_BYTES",
    "Job",
    "Outcome",
    "claim",
    "excerpt",
    "mask_numbers",
    "purge",
    "record",
    "replay",
    "replay_dead",
]

SNIPPET_BYTES = 500
WAITING = ("pending", "failed")
_LONG_NUMBER = re.compile(r"\d{6,}(\d{4})")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def excerpt(answer: bytes) -> str:
    """What is kept of a receiver's answer: its first ``SNIPPET_BYTES``, with any run of ten
    or more digits masked but its last four (a receiver that echoes the webhook would echo
    an account number) and control characters made spaces (no terminal escapes, one line)."""
    text = mask_numbers(answer[:SNIPPET_BYTES].decode("utf-8", "replace"))
    return _CONTROL.sub(" ", text)


def mask_numbers(text: str) -> str:
    """``text`` with every run of ten or more digits masked but its last four."""
    return _LONG_NUMBER.sub(lambda m: "*" * (len(m.group(0)) - 4) + m.group(1), text)


e = t.events


@dataclass(frozen=True, slots=True)
class Job:
    """One claimed attempt: the event's stored bytes and where they go.

    ``body`` is sealed when ``body_key_id`` names a vault key (tokens: a body that shows a
    tokenized account in full); the dispatcher opens it outside the claim's transaction.
    """

    event_id: int
    attempt_id: int
    attempt: int
    project_id: str
    session_n: int
    type: str
    body: bytes
    url: str
    created_at: int
    round_started: int
    body_key_id: str | None = None
    claimed_at: int = 0  # the attempt's time (microseconds)
    on_clock: bool = False  # sandbox: the project runs on a test clock, at ``claimed_at``
    # the project's Standard Webhooks secret, sealed (webhooks/standard.py), or None
    webhook_secret: Sealed | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one attempt came to: an HTTP status, or an error when there was no answer."""

    http_status: int | None
    error: str | None
    response: str
    duration_us: int
    retry_after: str | None = None

    @property
    def ok(self) -> bool:
        return self.http_status is not None and 200 <= self.http_status < 300


# benchmarks: claiming and recording run many times a second under load; their statements
# go straight to the driver (storage/sql.py). WAITING goes in as literals, not a parameter,
# so that the planner sees the statuses it filters on.
_WAITING_SQL = ", ".join(f"'{status}'" for status in WAITING)
_SENDABLE = f"""(e.lease_until IS NULL OR e.lease_until < :now)
    AND p.webhook_url IS NOT NULL AND e.project_id <> ALL(:busy)
    AND NOT EXISTS (
        SELECT 1 FROM events earlier WHERE earlier.session_n = e.session_n
        AND earlier.id < e.id AND earlier.status IN ({_WAITING_SQL}))
    ORDER BY e.next_attempt_at, e.id LIMIT :n
    FOR UPDATE OF e SKIP LOCKED"""  # noqa: S608 (WAITING: this module's constants)


def _due(only_wall: bool) -> Sql[Any]:
    wall = "AND p.test_clock IS NULL" if only_wall else ""
    return Sql(
        f"""SELECT e.id, e.project_id, p.webhook_url, p.webhook_secret_sealed,
        p.webhook_secret_key_id, :now AS at
        FROM events e JOIN projects p ON p.id = e.project_id
        WHERE e.status IN ({_WAITING_SQL}) AND e.next_attempt_at <= :now
        {wall} AND {_SENDABLE}"""  # noqa: S608 (this module's constants)
    )


# due events, oldest first; ``busy``: projects to skip. Sandbox mode leaves the events of
# projects on test clocks to ``DUE_ON_CLOCKS``; production mode has no clocks.
DUE = {True: _due(True), False: _due(False)}
DUE_ON_CLOCKS = Sql(
    f"""SELECT e.id, e.project_id, p.webhook_url, p.webhook_secret_sealed,
    p.webhook_secret_key_id, k.frozen_time AS at
    FROM events e JOIN projects p ON p.id = e.project_id
    JOIN test_clocks k ON k.n = p.test_clock
    WHERE e.status IN ({_WAITING_SQL}) AND e.next_attempt_at <= k.frozen_time
    AND {_SENDABLE}"""  # noqa: S608 (this module's constants)
)  # ``DUE`` for the projects on test clocks, each by its clock's time
_LEASE = Sql(
    """UPDATE events SET lease_owner = :owner, lease_until = :lease_until,
    attempts = attempts + 1 WHERE id = ANY(:ids)
    RETURNING id, project_id, session_n, type, body, attempts, created_at, replayed_at,
    body_key_id"""
)
_ATTEMPT = Sql(
    """INSERT INTO webhook_attempts (event_id, attempt, worker, url, started_at)
    VALUES (:event_id, :attempt, :worker, :url, :started_at) RETURNING id"""
)
_ATTEMPTED = Sql(
    """UPDATE webhook_attempts SET duration_us = :took, http_status = :answered,
    error = :error, response = :snippet WHERE id = :attempt_id"""
)
_HELD = Sql(
    """SELECT id, lease_owner, status, attempts FROM events WHERE id = ANY(:ids)
    ORDER BY id FOR UPDATE"""
)
_DELIVERED = Sql(
    """UPDATE events SET status = :delivered, delivered_at = :now, lease_until = NULL
    WHERE id = ANY(:ids)"""
)
_RETRY = Sql(
    """UPDATE events SET status = :status, next_attempt_at = COALESCE(:due, next_attempt_at),
    lease_until = NULL WHERE id = :id"""
)


def _pick(rows: Sequence[Any], limit: int, in_flight: Mapping[str, int], cap: int) -> list[Any]:
    """At most ``limit`` rows, and never more than ``cap`` in flight for one project."""
    taken: dict[str, int] = dict(in_flight)
    picked: list[Any] = []
    for row in rows:
        if len(picked) == limit:
            break
        if taken.get(row.project_id, 0) < cap:
            taken[row.project_id] = taken.get(row.project_id, 0) + 1
            picked.append(row)
    return picked


def _secret(row: Any) -> Sealed | None:
    if row.webhook_secret_key_id is None:
        return None
    return Sealed(row.webhook_secret_key_id, bytes(row.webhook_secret_sealed))


def claim(
    conn: Connection,
    owner: str,
    now: int,
    lease_until: int,
    limit: int,
    in_flight: Mapping[str, int],
    per_endpoint: int,
    on_clocks: bool = False,
    clocks: bool = True,
) -> list[Job]:
    """Lease up to ``limit`` due events, respecting ``per_endpoint`` for each project; with
    ``on_clocks``, those of projects on test clocks instead (``clocks``: sandbox mode,
    where projects may be on clocks)."""
    if limit <= 0:
        return []
    busy = frozenset(p for p, n in in_flight.items() if n >= per_endpoint)
    statement = DUE_ON_CLOCKS if on_clocks else DUE[clocks]
    candidates = sql.rows(conn, statement, {"now": now, "busy": sorted(busy), "n": limit * 4})
    picked = _pick(candidates, limit, in_flight, per_endpoint)
    if not picked:
        return []
    due = {row.id: row for row in picked}  # its project's URL and Standard Webhooks secret
    leased = {"owner": owner, "lease_until": lease_until, "ids": list(due)}
    rows = sorted(sql.rows(conn, _LEASE, leased), key=lambda r: r.id)
    attempt_ids = [
        row.id
        for row in sql.many_returning(
            conn,
            _ATTEMPT,
            [
                {
                    "event_id": r.id,
                    "attempt": r.attempts,
                    "worker": owner,
                    "url": due[r.id].webhook_url,
                    "started_at": int(due[r.id].at),
                }
                for r in rows
            ],
        )
    ]
    return [
        Job(
            event_id=int(r.id),
            attempt_id=int(attempt_id),
            attempt=int(r.attempts),
            project_id=r.project_id,
            session_n=int(r.session_n),
            type=r.type,
            body=bytes(r.body),
            url=due[r.id].webhook_url,
            created_at=int(r.created_at),
            round_started=int(r.replayed_at or r.created_at),
            body_key_id=r.body_key_id,
            claimed_at=int(due[r.id].at),
            on_clock=on_clocks,
            webhook_secret=_secret(due[r.id]),
        )
        for r, attempt_id in zip(rows, attempt_ids, strict=True)
    ]


def record(
    conn: Connection,
    outcomes: Sequence[tuple[Job, Outcome]],
    owner: str,
    now: int,
    schedule: Schedule,
    uniforms: Sequence[float],
) -> list[str | None]:
    """Store each attempt's outcome and move its event on: ``delivered``, or ``failed``
    with its next attempt due, or ``dead`` past the schedule's horizon. Each event's new
    status, in the order given; None where it is stale: this worker no longer holds the
    lease (it expired and another worker took the event, or an operator replayed it), so
    the attempt is recorded and the event left alone. ``uniforms``: one random number in
    [0, 1) per outcome, for the retry's jitter."""
    if not outcomes:
        return []
    attempts = [
        {
            "attempt_id": job.attempt_id,
            "took": outcome.duration_us,
            "answered": outcome.http_status,
            "error": outcome.error,
            "snippet": outcome.response,
        }
        for job, outcome in outcomes
    ]
    ids = sorted({job.event_id for job, _ in outcomes})
    with sql.pipeline(conn):  # benchmarks: the attempts travel with the events' lock
        sql.many(conn, _ATTEMPTED, attempts)
        held = {row.id: row for row in sql.rows(conn, _HELD, {"ids": ids})}
    statuses: list[str | None] = []
    delivered: dict[int, list[int]] = {}  # by the time they were delivered
    retries: list[dict[str, Any]] = []
    wall = now
    for (job, outcome), uniform in zip(outcomes, uniforms, strict=True):
        now = job.claimed_at if job.on_clock else wall  # sandbox: the clock's time
        event = held[job.event_id]
        if event.lease_owner != owner or event.status not in WAITING:
            statuses.append(None)
            continue
        if outcome.ok:
            delivered.setdefault(now, []).append(job.event_id)
            statuses.append("delivered")
            continue
        retry_after = None
        if outcome.http_status in (429, 503):
            # seconds to wait; an HTTP-date is the wall's (a test clock's event waits as long)
            retry_after = parse_retry_after(outcome.retry_after, wall)
        due = schedule.next_attempt(
            int(event.attempts), job.round_started, now, uniform, retry_after
        )
        status = "dead" if due is None else "failed"
        retries.append({"id": job.event_id, "status": status, "due": due})
        statuses.append(status)
    for at, ids in delivered.items():
        sql.run(conn, _DELIVERED, {"ids": ids, "now": at, "delivered": "delivered"})
    sql.many(conn, _RETRY, retries)
    return statuses


def _replay_values(now: int) -> dict[str, Any]:
    # A new round: attempts count from zero, the horizon from now, and whoever held the
    # lease can no longer settle the event (see ``record``).
    return {
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": now,
        "replayed_at": now,
        "lease_owner": None,
        "lease_until": None,
    }


def replay(conn: Connection, event_id: int, now: int) -> bool:
    """Send the event again from the first attempt, whatever its status; False if unknown.
    ``now`` is wall time; an event of a project on a test clock starts again at the
    clock's time."""
    project = conn.execute(sa.select(e.c.project_id).where(e.c.id == event_id)).scalar()
    if project is None:
        return False
    at = clocks.project_now(conn, project, now)
    done = conn.execute(sa.update(e).where(e.c.id == event_id).values(**_replay_values(at)))
    return done.rowcount == 1


def replay_dead(conn: Connection, project_id: str, now: int) -> int:
    """Replay every dead event of a project (at its time: see ``replay``); how many."""
    at = clocks.project_now(conn, project_id, now)
    done = conn.execute(
        sa.update(e)
        .where(e.c.project_id == project_id, e.c.status == "dead")
        .values(**_replay_values(at))
    )
    return int(done.rowcount)


_OLD_EVENTS = Sql(
    """SELECT id FROM events
    WHERE ((status = :delivered AND delivered_at < :delivered_before)
       OR (status = :dead AND created_at < :dead_before))
    AND project_id NOT IN (SELECT id FROM projects WHERE test_clock IS NOT NULL)
    LIMIT :limit FOR UPDATE SKIP LOCKED"""
)  # a project on a test clock keeps its events: their times are its clock's
_DROP_ATTEMPTS = Sql("DELETE FROM webhook_attempts WHERE event_id = ANY(:ids)")
_DROP_EVENTS = Sql("DELETE FROM events WHERE id = ANY(:ids)")


def purge(conn: Connection, delivered_before: int, dead_before: int, limit: int) -> int:
    """Delete up to ``limit`` events delivered before ``delivered_before``, or dead and made
    before ``dead_before``, with their attempts; how many. Waiting events are never touched,
    so a session's order holds; the ones found stay locked until the delete commits, so an
    operator's replay of one either comes first (and it is not found) or finds it gone."""
    found = sql.rows(
        conn,
        _OLD_EVENTS,
        {
            "delivered": "delivered",
            "dead": "dead",
            "delivered_before": delivered_before,
            "dead_before": dead_before,
            "limit": limit,
        },
    )
    ids = [int(row.id) for row in found]
    if ids:
        sql.run(conn, _DROP_ATTEMPTS, {"ids": ids})
        sql.run(conn, _DROP_EVENTS, {"ids": ids})
    return len(ids)
