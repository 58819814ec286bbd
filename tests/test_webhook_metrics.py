"""``GET /metrics``: delivery counters and the queue, in the Prometheus text format."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from banking import Onboard
from partner import Partner, payout_body
from payout131.clock import ManualClock
from payout131.runtime import Runtime
from payout131.settings import Settings
from webhook_receiver import Receiver, ok, receiving, reset, status

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def bank_settings(bank_settings: Settings) -> Settings:
    return replace(bank_settings, webhook_jitter=0.0, webhook_schedule=(0, 5))


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiving() as endpoint:
        yield endpoint


def scrape(http: httpx.Client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def ready(partner: Partner, bank: Runtime) -> None:
    partner.ok("session/init/payout", payout_body(1_000))
    bank.worker.drain()


def test_metrics_count_deliveries_failures_retries_and_show_the_queue(
    bank: Runtime, clock: ManualClock, http: httpx.Client, onboard: Onboard, receiver: Receiver
) -> None:
    quiet = scrape(http)
    assert quiet[("payout131_webhook_queue_depth", (("status", "pending"),))] == 0
    assert quiet[("payout131_webhook_oldest_pending_age_seconds", ())] == 0
    assert quiet[("payout131_webhook_deliveries_total", ())] == 0

    partner = onboard(wallet=10_000, webhook_url=receiver.url)
    ready(partner, bank)
    clock.advance(90)
    ready(partner, bank)
    clock.advance(30)
    waiting = scrape(http)
    assert waiting[("payout131_webhook_queue_depth", (("status", "pending"),))] == 2
    assert waiting[("payout131_webhook_oldest_pending_age_seconds", ())] == 120

    # the 503 closes its connection: were the reset to meet a connection kept alive from
    # it, the sender would take it for a stale connection and send again (to a 200)
    receiver.script(status(503, close=True), reset())
    bank.dispatcher.drain()  # one fails with 503, the other with a reset
    after_failures = scrape(http)
    assert after_failures[("payout131_webhook_queue_depth", (("status", "failed"),))] == 2
    assert after_failures[("payout131_webhook_failures_total", (("reason", "http_5xx"),))] == 1
    assert after_failures[("payout131_webhook_failures_total", (("reason", "network"),))] == 1
    assert after_failures[("payout131_webhook_retries_total", ())] == 0

    receiver.script(ok(), status(500))
    clock.advance(5)
    bank.dispatcher.drain()  # one delivered, the other out of attempts
    final = scrape(http)
    assert final[("payout131_webhook_deliveries_total", ())] == 1
    assert final[("payout131_webhook_retries_total", ())] == 2
    assert final[("payout131_webhook_dead_letters_total", ())] == 1
    assert final[("payout131_webhook_dead_events", ())] == 1
    assert final[("payout131_webhook_queue_depth", (("status", "failed"),))] == 0
    assert final[("payout131_webhook_oldest_pending_age_seconds", ())] == 0
    assert final[("payout131_webhook_attempt_duration_seconds_count", ())] == 4


def test_each_app_has_its_own_registry(bank: Runtime) -> None:
    first, second = bank.app(run_worker=False), bank.app(run_worker=False)
    assert first is not second  # no "Duplicated timeseries" from a shared global registry


def test_metrics_show_the_money_held_and_the_workers_lag(
    bank: Runtime, clock: ManualClock, http: httpx.Client, onboard: Onboard
) -> None:
    partner = onboard(wallet=10_000)
    assert scrape(http)[("payout131_worker_oldest_due_seconds", ())] == 0
    partner.ok("session/init/payout", payout_body(1_000))  # due at once, not yet worked
    clock.advance(45)
    waiting = scrape(http)
    assert waiting[("payout131_worker_oldest_due_seconds", ())] == 45  # the worker is behind
    held = ("payout131_held_kopecks", (("account", "wallet:acme"), ("project", "acme")))
    assert waiting[held] == 1_000
    bank.worker.drain()  # checked: waits for the partner's confirm, the money still held
    confirmed = scrape(http)
    assert confirmed[("payout131_worker_oldest_due_seconds", ())] == 0
    assert confirmed[held] == 1_000
