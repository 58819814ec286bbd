"""``GET /metrics``: delivery counters and the queue, in the Prometheus text format."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families

from banking import Onboard
from partner import Partner, payout_body
from payout131.cli import main
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


Sample = tuple[str, tuple[tuple[str, str], ...]]


def _grew(
    before: dict[Sample, float], after: dict[Sample, float], name: str, **labels: str
) -> float:
    """How much the sample ``name{labels}`` grew between two scrapes (this process's
    counters are shared by the apps of one test process)."""
    key = (name, tuple(sorted(labels.items())))
    assert key in after, f"{name}{labels} is not exposed"
    return after[key] - before.get(key, 0.0)


def test_metrics_count_requests_payout_changes_commits_and_the_rail(
    bank: Runtime, http: httpx.Client, onboard: Onboard, receiver: Receiver
) -> None:
    partner = onboard(wallet=10_000, webhook_url=receiver.url)
    before = scrape(http)
    session = partner.ok("session/init/payout", payout_body(1_000))["session"]["id"]
    bank.worker.drain()
    after_check = scrape(http)
    outstanding = ("payout131_holds_outstanding", (("project", "acme"),))
    assert after_check[outstanding] == 1
    partner.ok("session/confirm", {"session_id": session})
    partner.error("session/confirm", {"session_id": session}, 400, "session_wrong_state")
    partner.error("session/status", {"session_id": "ps_999999"}, 404, "invalid_request")
    bank.worker.drain()
    after = scrape(http)

    def requests(method: str, status: str, error: str = "") -> float:
        labels = {"method": method, "status": status, "error": error}
        return _grew(before, after, "payout131_api_requests_total", **labels)

    assert requests("session/init/payout", "200") == 1
    assert requests("session/confirm", "200") == 1
    assert requests("session/confirm", "400", "session_wrong_state") == 1
    assert requests("session/status", "404", "invalid_request") == 1
    latency = "payout131_api_request_duration_seconds_count"
    assert _grew(before, after, latency, method="session/confirm") == 2
    changes = "payout131_payout_changes_total"
    assert _grew(before, after, changes, move="created", status="in_progress", error="") >= 1
    assert _grew(before, after, changes, move="check", status="pending", error="") >= 1
    assert _grew(before, after, changes, move="confirm", status="in_progress", error="") >= 1
    assert _grew(before, after, changes, move="succeed", status="succeeded", error="") >= 1
    assert _grew(before, after, "payout131_rail_submissions_total", rail="simulator") >= 1
    assert _grew(before, after, "payout131_group_commit_jobs_count") >= 3
    assert _grew(before, after, "payout131_group_commit_wait_seconds_count") >= 3
    assert outstanding not in after  # paid: no hold is left
    assert after[("payout131_held_kopecks", (("account", "wallet:acme"), ("project", "acme")))] == 0


def test_the_dashboard_and_alerts_ask_only_for_metrics_that_exist(
    bank: Runtime, http: httpx.Client, onboard: Onboard, tmp_path: Path
) -> None:
    """deploy/grafana-dashboard.json and deploy/prometheus-alerts.yml name metrics this
    server exposes (after a payout, so every family has samples), or that `ledger check
    --textfile` writes."""
    partner = onboard(wallet=10_000)
    session = partner.ok("session/init/payout", payout_body(1_000))["session"]["id"]
    bank.worker.drain()
    partner.ok("session/confirm", {"session_id": session})
    bank.worker.drain()
    exposed = set()  # every family, with or without samples yet, as queries name it
    for family in text_string_to_metric_families(http.get("/metrics").text):
        suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_count", "_sum"]}
        exposed |= {family.name + s for s in ["", *suffixes.get(family.type, [])]}
    textfile = tmp_path / "ledger.prom"
    settings = bank.settings
    env = {"PAYOUT131_HOME": str(settings.home), "PAYOUT131_DATABASE_URL": settings.database}
    result = CliRunner().invoke(main, ["ledger", "check", "--textfile", str(textfile)], env=env)
    assert result.exit_code == 0, result.output
    written = {
        (sample.name, sample.value)
        for family in text_string_to_metric_families(textfile.read_text())
        for sample in family.samples
    }
    assert ("payout131_ledger_check_violations", 0.0) in written
    exposed |= {name for name, _ in written}
    deploy = Path(__file__).resolve().parents[1] / "deploy"
    dashboard = json.loads((deploy / "grafana-dashboard.json").read_text())
    queries = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    rules = (deploy / "prometheus-alerts.yml").read_text()
    named = set(re.findall(r"payout131_[a-z0-9_]+", " ".join(queries) + rules))
    assert len(named) >= 15
    missing = sorted(name for name in named if name not in exposed)
    assert missing == [], f"asked for but never exposed: {missing}"
