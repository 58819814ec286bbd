"""Gauges of the money and the work, read from the database when ``/metrics`` is scraped.

- ``payout131_held_kopecks{project, account}``: money held for payouts not yet paid or
  released, per partner account (``ledger_accounts.held``, which the database keeps);
- ``payout131_holds_outstanding{project}``: how many holds are active (payouts whose money
  is held), per project;
- ``payout131_worker_oldest_due_seconds``: how long the oldest payout step that is due has
  waited for the worker (0 when none is due): a worker that stopped or falls behind shows
  here first. Projects on test clocks are left out (their time is not the wall's).
"""

from __future__ import annotations

from collections.abc import Iterator

import sqlalchemy as sa
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from payout131.clock import Clock
from payout131.storage import Database
from payout131.storage import schema as t

__all__ = ["MoneyAndWorkCollector"]


class MoneyAndWorkCollector(Collector):
    def __init__(self, db: Database, clock: Clock) -> None:
        self.db, self.clock = db, clock

    def collect(self) -> Iterator[Metric]:
        a, p, proj, h = t.ledger_accounts, t.payouts, t.projects, t.holds
        now = self.clock.now()
        on_wall = sa.select(proj.c.id).where(proj.c.test_clock.is_(None))
        with self.db.read() as conn:
            held = conn.execute(
                sa.select(a.c.project_id, a.c.code, a.c.held)
                .where(a.c.project_id.is_not(None))
                .order_by(a.c.code)
            ).all()
            holds = conn.execute(
                sa.select(a.c.project_id, sa.func.count())
                .select_from(h.join(a, h.c.account_id == a.c.id))
                .where(h.c.status == "active", a.c.project_id.is_not(None))
                .group_by(a.c.project_id)
                .order_by(a.c.project_id)
            ).all()
            oldest = conn.execute(
                sa.select(sa.func.min(p.c.work_at)).where(
                    p.c.work.is_not(None), p.c.work_at <= now, p.c.project_id.in_(on_wall)
                )
            ).scalar()
        gauge = GaugeMetricFamily(
            "payout131_held_kopecks",
            "Money held for payouts not yet paid or released, per partner account (kopecks).",
            labels=["project", "account"],
        )
        for project_id, code, amount in held:
            gauge.add_metric([str(project_id), str(code)], int(amount))
        yield gauge
        outstanding = GaugeMetricFamily(
            "payout131_holds_outstanding",
            "Active holds (payouts whose money is held), per project.",
            labels=["project"],
        )
        for project_id, count in holds:
            outstanding.add_metric([str(project_id)], int(count))
        yield outstanding
        lag = (now - int(oldest)) / 1_000_000 if oldest is not None else 0.0
        yield GaugeMetricFamily(
            "payout131_worker_oldest_due_seconds",
            "How long the oldest due payout step has waited for the worker (0: none due).",
            value=max(lag, 0.0),
        )
