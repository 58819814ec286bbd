"""The crash test in its short form: a few SIGKILLs per engine, a few PostgreSQL crashes.

The full form (30+ crashes per mode) is ``scripts/chaos``; ``PAYOUT131_FULL=1`` runs it
here too. Figures of full runs are in docs/reliability.md.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import pytest
import sqlalchemy as sa

from payout131.clock import SystemClock
from payout131.storage import Database
from payout131.storage import schema as t
from payout131.tools.chaos.failover import FailoverPlan, FailoverReport
from payout131.tools.chaos.harness import CLOCKED, Plan, run
from payout131.tools.chaos.load import CARD
from payout131.tools.chaos.verify import Record, verify

FULL = os.environ.get("PAYOUT131_FULL") == "1"
CRASHES = 30 if FULL else 5
SEED = int(os.environ.get("PAYOUT131_SEED", "131"))
pytestmark = pytest.mark.timeout(0 if FULL else 300)


def _check(plan: Plan) -> None:
    report = run(plan, echo=lambda line: None)
    summary = report.as_dict()
    assert report.passed, (summary["problems"][:20], report.notes)
    assert report.crashes == plan.crashes
    figures = summary["figures"]
    assert figures["payouts"] > 0
    assert figures["payouts succeeded"] > 0
    assert figures["payouts to a phone"] > 0
    assert figures["payouts to a card"] > 0
    assert figures["events"] > 0
    assert figures["`payout131 ledger check` exit status"] == 0
    # the partner on a test clock moved it during the crashes, and past every step at the end
    assert figures["test clock advances answered"] > 0
    assert figures["test clock hours moved"] >= 2


@pytest.mark.slow
def test_sigkill_the_server_under_load(database_url: str, tmp_path: Path) -> None:
    engine = "sqlite" if database_url.startswith("sqlite") else "postgresql"
    _check(
        Plan(
            engine=engine,
            crashes=CRASHES,
            seed=SEED,
            database_url=None if engine == "sqlite" else database_url,
            workdir=tmp_path / "chaos",
            flows=4,
            pause=(0.2, 1.0),
        )
    )


def test_the_proof_catches_what_it_claims_to(tmp_path: Path) -> None:
    """Tamper with a passing run's store, one claim at a time: each must be reported."""
    workdir = tmp_path / "chaos"
    report = run(
        Plan(crashes=1, seed=SEED, workdir=workdir, flows=2, pause=(0.5, 0.5)),
        echo=lambda line: None,
    )
    assert report.passed, report.as_dict()["problems"]
    record = Record.load(workdir / "record.json")
    db = Database(f"sqlite:///{workdir / 'payout131.db'}")
    p, e = t.payouts, t.events
    with db.read() as conn:
        paid = conn.execute(
            sa.select(p.c.n, p.c.session_n, p.c.rail_reference)
            .where(p.c.status == "succeeded")
            .limit(1)
        ).one()
        event = conn.execute(sa.select(e.c.id).limit(1)).scalar_one()
        first = conn.execute(sa.select(e.c.project_id, e.c.session_n).limit(1)).one()
        other = conn.execute(  # a session other than the paid one and the first event's
            sa.select(t.sessions.c.n)
            .where(t.sessions.c.n.not_in((paid.session_n, first.session_n)))
            .order_by(t.sessions.c.n.desc())
            .limit(1)
        ).scalar_one()
        clocked = conn.execute(
            sa.select(p.c.n, p.c.session_n).where(p.c.project_id == CLOCKED).limit(1)
        ).one()
    clock_time = record.clock_times[CLOCKED]  # ahead of the wall: the proof uses it
    never_sent = {  # an event nobody received, written before the run was seen caught up
        "project_id": first.project_id,
        "session_n": first.session_n,
        "type": "payment_finished",
        "body": b"{}",
        "status": "delivered",
        "next_attempt_at": 0,
        "created_at": 1,
    }
    tampering = {
        "the rail holds 2 transfers": sa.insert(t.simulator_transfers).values(
            reference="again",
            payout_id=f"po_{paid.n}",
            amount=1,
            bik="044525974",
            scenario="success",
            submitted_at=0,
            settles_at=0,
        ),
        "acknowledged but stored as pending": sa.update(e)
        .where(e.c.id == event)
        .values(status="pending"),
        "never acknowledged": sa.insert(e).values(**never_sent),
        "ledger: ": sa.update(t.ledger_accounts)
        .where(t.ledger_accounts.c.code.like("4070%"))
        .values(balance=t.ledger_accounts.c.balance + 1),
        "has no payout of": sa.update(p).where(p.c.n == paid.n).values(amount=p.c.amount + 100),
        # the partner on a test clock is held to its clock's time, not the wall's
        f"ps_{clocked.session_n}): never acknowledged": sa.insert(e).values(
            **{**never_sent, "project_id": CLOCKED, "session_n": clocked.session_n}
            | {"created_at": clock_time - 1}
        ),
        # the number of an answered session given to another request (a lost commit whose
        # number was handed out again): the answer is not borne out, though the id exists
        "which now holds the session of": sa.update(t.sessions)
        .where(t.sessions.c.n == other)
        .values(metadata='{"chaos": "another-request"}'),
        "sessions.draft: holds a card number in clear": sa.update(t.sessions)
        .where(t.sessions.c.n == first.session_n)
        .values(draft=f'{{"card": "{CARD}"}}'),
        f"po_{clocked.n}: in progress with work poll due": sa.update(p)
        .where(p.c.n == clocked.n)
        .values(status="in_progress", work="poll", work_at=clock_time - 1),
    }
    # what the failover figures count them as (acknowledged_lost, double_executions, ...)
    kind_of = {
        "the rail holds 2 transfers": "double",
        "never acknowledged": "undelivered",
        "has no payout of": "lost",
        "which now holds the session of": "lost",
    }
    counted: Counter[str] = Counter()
    try:
        for expected, change in tampering.items():
            with db.write() as conn:
                conn.execute(sa.text("PRAGMA ignore_check_constraints = ON"))
                conn.execute(change)
            verdict = verify(db, record, SystemClock().now())
            assert any(expected in problem for problem in verdict.problems), (
                expected,
                verdict.problems,
            )
            if expected in kind_of:
                kind = kind_of[expected]
                assert verdict.kinds[kind] > counted[kind], (expected, verdict.kinds)
                figures = FailoverReport(FailoverPlan(), workdir, verdict, ledger_check_ok=True)
                assert not figures.passed
                name = {"double": "double_executions", "lost": "acknowledged_lost"}.get(
                    kind, "undelivered_events"
                )
                assert figures.figures()[name] == verdict.kinds[kind] > 0
            counted = Counter(verdict.kinds)
        caught_up = SystemClock().now()
        with db.write() as conn:  # written after the run caught up: later work, not lost
            later = conn.execute(
                sa.insert(e).values(**{**never_sent, "created_at": caught_up + 1}).returning(e.c.id)
            ).scalar_one()
        verdict = verify(db, record, caught_up)
        assert not any(f"evt_{later} " in problem for problem in verdict.problems)
        assert verdict.figures["events written after the run caught up, not yet sent"] == 1
    finally:
        db.dispose()


@pytest.mark.slow
def test_crash_postgresql_under_load(tmp_path: Path) -> None:
    _check(
        Plan(
            engine="postgresql",
            mode="pg-stop",
            crashes=CRASHES if FULL else 3,
            seed=SEED,
            workdir=tmp_path / "chaos",
            flows=4,
            pause=(0.2, 1.0),
        )
    )
