"""``/metrics``: the Prometheus text endpoint, over a registry of this app's own.

Each app (and each ``payout131 worker --metrics-port``) builds a fresh ``CollectorRegistry``
instead of using prometheus-client's global one, so any number of apps can live in one
process (the tests make many). Collectors that read the database run in a worker thread.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.requests import Request
from starlette.responses import Response

from payout131.clock import Clock
from payout131.payouts.gauges import MoneyAndWorkCollector
from payout131.payouts.tallies import CHANGES
from payout131.server.request_log import RequestStats
from payout131.storage import Database
from payout131.storage.group_commit import GroupCommit
from payout131.webhooks.metrics import DeliveryStats, WebhookCollector
from payout131.worker.rail_steps import RAIL_ANSWERS, RAIL_SUBMISSIONS

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

__all__ = ["endpoint", "registry_for"]


def registry_for(
    stats: DeliveryStats,
    db: Database,
    clock: Clock,
    requests: RequestStats | None = None,
    group_commit: GroupCommit | None = None,
) -> CollectorRegistry:
    """A new registry with every collector of this process: its requests (``requests``),
    its group commit's sizes and waits, its payout changes and rail calls, its webhook
    deliveries (``stats``), the queue as the database holds it, and the money held and the
    worker's lag (``payouts/gauges.py``). docs/operations.md lists them all."""
    registry = CollectorRegistry(auto_describe=True)
    registry.register(WebhookCollector(stats, db, clock))
    registry.register(MoneyAndWorkCollector(db, clock))
    for counter in (CHANGES, RAIL_SUBMISSIONS, RAIL_ANSWERS):  # this process's, shared
        registry.register(counter)
    if requests is not None:
        registry.register(requests.requests)
        registry.register(requests.latency)
    if group_commit is not None:
        registry.register(group_commit.sizes)
        registry.register(group_commit.waits)
    return registry


def endpoint(
    registry: CollectorRegistry, limiter: anyio.CapacityLimiter
) -> Callable[[Request], Awaitable[Response]]:
    """A Starlette endpoint that renders ``registry``."""

    async def metrics(request: Request) -> Response:
        body = await anyio.to_thread.run_sync(generate_latest, registry, limiter=limiter)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    return metrics
