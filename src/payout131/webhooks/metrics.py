"""Webhook metrics in the Prometheus text format.

Counters (``DeliveryStats``) count what this process did: deliveries, failed attempts by
reason, retries, dead letters and attempt latency. Gauges (``WebhookCollector``) are read
from the database at scrape time, so any process shows the same queue: its depth by status,
the dead events and the age of the oldest event still waiting.

Nothing is registered in prometheus-client's global registry: each app or worker builds its
own ``CollectorRegistry`` (see ``payout131.server.metrics``), so tests can create many.
"""

from __future__ import annotations

from collections.abc import Iterator

import sqlalchemy as sa
from prometheus_client import Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from payout131.clock import Clock
from payout131.storage import Database
from payout131.storage import schema as t
from payout131.webhooks.outbox import WAITING, Job, Outcome

__all__ = ["DeliveryStats", "WebhookCollector"]

_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 30)


def failure_reason(outcome: Outcome) -> str:
    """``http_4xx``, ``http_5xx``…, or the kind of error: ``timeout``, ``connect``…"""
    if outcome.http_status is not None:
        return f"http_{outcome.http_status // 100}xx"
    return (outcome.error or "error").split(":", 1)[0]


class DeliveryStats:
    """This process's delivery counters; registered nowhere until a collector exposes them."""

    def __init__(self) -> None:
        self.deliveries = Counter(
            "payout131_webhook_deliveries", "Events delivered (a 2xx answer).", registry=None
        )
        self.failures = Counter(
            "payout131_webhook_failures",
            "Failed delivery attempts, by reason (http_5xx, timeout, connect, ...).",
            ["reason"],
            registry=None,
        )
        self.retries = Counter(
            "payout131_webhook_retries", "Attempts after an event's first.", registry=None
        )
        self.dead = Counter(
            "payout131_webhook_dead_letters", "Events that ran out of attempts.", registry=None
        )
        self.latency = Histogram(
            "payout131_webhook_attempt_duration_seconds",
            "Time from sending a webhook to its answer or error.",
            buckets=_LATENCY_BUCKETS,
            registry=None,
        )

    def sending(self, job: Job) -> None:
        if job.attempt > 1:
            self.retries.inc()

    def observe(self, outcome: Outcome, status: str | None) -> None:
        self.latency.observe(outcome.duration_us / 1_000_000)
        if outcome.ok:
            self.deliveries.inc()
        else:
            self.failures.labels(reason=failure_reason(outcome)).inc()
        if status == "dead":
            self.dead.inc()

    def collect(self) -> Iterator[Metric]:
        for metric in (self.deliveries, self.failures, self.retries, self.dead, self.latency):
            yield from metric.collect()


class WebhookCollector(Collector):
    """The counters of one process plus the queue as the database sees it now."""

    def __init__(self, stats: DeliveryStats, db: Database, clock: Clock) -> None:
        self.stats, self.db, self.clock = stats, db, clock

    def collect(self) -> Iterator[Metric]:
        yield from self.stats.collect()
        e, p = t.events, t.projects
        # sandbox: an event of a project on a test clock was made at its clock's time, which
        # says nothing of how long it has waited on the wall; its age is left out
        on_wall = sa.select(p.c.id).where(p.c.test_clock.is_(None))
        walled = sa.case((e.c.project_id.in_(on_wall), e.c.created_at))
        with self.db.read() as conn:
            rows = conn.execute(
                sa.select(e.c.status, sa.func.count(), sa.func.min(walled))
                .where(e.c.status.in_((*WAITING, "dead")))
                .group_by(e.c.status)
            ).all()
        found = {row[0]: (int(row[1]), row[2]) for row in rows}
        depth = GaugeMetricFamily(
            "payout131_webhook_queue_depth",
            "Events waiting to be delivered: pending (never tried) or failed (to retry).",
            labels=["status"],
        )
        for status in WAITING:
            depth.add_metric([status], found.get(status, (0, None))[0])
        yield depth
        yield GaugeMetricFamily(
            "payout131_webhook_dead_events",
            "Events that ran out of attempts and wait for an operator's replay.",
            value=found.get("dead", (0, None))[0],
        )
        oldest = [found[s][1] for s in WAITING if s in found and found[s][1] is not None]
        age = (self.clock.now() - min(oldest)) / 1_000_000 if oldest else 0.0
        yield GaugeMetricFamily(
            "payout131_webhook_oldest_pending_age_seconds",
            "Age of the oldest event still waiting to be delivered (0 when none waits; "
            "events of projects on test clocks are left out).",
            value=max(age, 0.0),
        )
