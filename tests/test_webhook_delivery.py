"""Webhook delivery against a real receiver on loopback, on SQLite and PostgreSQL.

The dispatcher runs with ``bank.dispatcher.drain()``: it delivers everything due now and
returns, so each step of the retry schedule is taken by moving the ``ManualClock``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import pytest
import sqlalchemy as sa

from banking import Onboard
from partner import Partner, payout_body
from payout131.client import signing
from payout131.clock import ManualClock
from payout131.runtime import Runtime
from payout131.settings import Settings
from payout131.storage import schema as t
from payout131.webhooks import outbox
from webhook_receiver import Receiver, garbage, gate, ok, receiving, reset, sleep, status

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def bank_settings(bank_settings: Settings) -> Settings:
    """No jitter (exact times), and a short timeout so the slow answer costs little."""
    return replace(bank_settings, webhook_jitter=0.0, webhook_timeout_s=2.0)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiving() as endpoint:
        yield endpoint


def ready(partner: Partner, bank: Runtime) -> str:
    """A wallet payout waiting for confirmation; its session id (one event written)."""
    session = partner.ok("session/init/payout", payout_body(1_000))["session"]
    bank.worker.drain()
    return str(session["id"])


def event_rows(bank: Runtime) -> list[Any]:
    with bank.db.read() as conn:
        return list(conn.execute(sa.select(t.events).order_by(t.events.c.id)).all())


def attempt_rows(bank: Runtime, event_id: int) -> list[Any]:
    a = t.webhook_attempts
    with bank.db.read() as conn:
        return list(conn.execute(sa.select(a).where(a.c.event_id == event_id).order_by(a.c.id)))


def delivered(bank: Runtime, project_id: str) -> int:
    return sum(e.status == "delivered" for e in event_rows(bank) if e.project_id == project_id)


def wait_until(predicate: Callable[[], bool], seconds: float = 20) -> None:
    """Poll ``predicate`` until it holds; fail after ``seconds`` (a safety net, not a test)."""
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "waited in vain"
        time.sleep(0.01)


def test_an_event_is_posted_signed_with_its_headers(
    bank: Runtime, onboard: Onboard, receiver: Receiver
) -> None:
    partner = onboard(wallet=10_000, webhook_url=receiver.url + "/hooks/bank131")
    session_id = ready(partner, bank)
    assert bank.dispatcher.drain() == 1

    [delivery] = receiver.deliveries
    [event] = event_rows(bank)
    assert delivery.path == "/hooks/bank131"
    assert delivery.body == bytes(event.body)
    assert delivery.json()["type"] == "ready_to_confirm"
    assert delivery.json()["session"]["id"] == session_id
    assert delivery.headers["content-type"] == "application/json"
    assert delivery.id == f"evt_{event.id}"
    assert delivery.headers["webhook-timestamp"] == str(event.created_at // 1_000_000)
    bank_key = signing.load_public_key(bank.settings.bank_public_key_path.read_bytes())
    assert signing.verify(bank_key, delivery.body, delivery.signature)
    assert event.status == "delivered"
    assert event.delivered_at == bank.clock.now()
    assert event.attempts == 1
    [attempt] = attempt_rows(bank, event.id)
    assert attempt.http_status == 200
    assert attempt.response == '{"ok":true}'
    assert attempt.url == receiver.url + "/hooks/bank131"
    assert attempt.worker == bank.dispatcher.owner
    assert bank.dispatcher.drain() == 0  # delivered once, never again


def test_fault_matrix_each_failure_retried_on_schedule_with_identical_requests(
    bank: Runtime, clock: ManualClock, onboard: Onboard, receiver: Receiver
) -> None:
    partner = onboard(wallet=10_000, webhook_url=receiver.url)
    ready(partner, bank)
    receiver.script(
        status(500, b"boom"),
        status(429, retry_after="600"),
        sleep(4),  # longer than the 2 s timeout
        reset(),
        garbage(),
        ok(),
    )
    # immediately, then 5 s, 5 min (raised to 600 s by Retry-After), 30 min, 2 h, 5 h
    steps = [5, 600, 1800, 7200, 18000]
    assert bank.dispatcher.drain() == 1
    for wait in steps:
        clock.advance(wait - 0.001)
        assert bank.dispatcher.drain() == 0, f"retried before its {wait} s were up"
        clock.advance(0.001)
        assert bank.dispatcher.drain() == 1
    clock.advance(36 * 3600)
    assert bank.dispatcher.drain() == 0

    assert len(receiver.deliveries) == 6
    first = receiver.deliveries[0]
    for delivery in receiver.deliveries:
        assert delivery.body == first.body
        assert delivery.signature == first.signature
        assert delivery.id == first.id
        assert delivery.headers["webhook-timestamp"] == first.headers["webhook-timestamp"]
    [event] = event_rows(bank)
    assert event.status == "delivered"
    assert event.attempts == 6
    attempts = attempt_rows(bank, event.id)
    assert [a.http_status for a in attempts] == [500, 429, None, None, None, 200]
    assert attempts[0].response == "boom"
    errors = [a.error.split(":")[0] for a in attempts[2:5]]
    assert errors == ["timeout", "network", "protocol"]
    assert all(a.duration_us is not None for a in attempts)
    assert [a.attempt for a in attempts] == [1, 2, 3, 4, 5, 6]


def test_a_redirect_is_a_failed_attempt_and_not_followed(
    bank: Runtime, onboard: Onboard, receiver: Receiver
) -> None:
    partner = onboard(wallet=10_000, webhook_url=receiver.url)
    ready(partner, bank)
    receiver.script(status(302, location=receiver.url + "/elsewhere"))
    bank.dispatcher.drain()
    assert [d.path for d in receiver.deliveries] == ["/"]
    [event] = event_rows(bank)
    assert event.status == "failed"
    assert attempt_rows(bank, event.id)[0].http_status == 302


def test_a_refused_connection_is_a_failed_attempt(bank: Runtime, onboard: Onboard) -> None:
    with receiving() as gone:
        url = gone.url
    partner = onboard(wallet=10_000, webhook_url=url)
    ready(partner, bank)
    bank.dispatcher.drain()
    [event] = event_rows(bank)
    assert event.status == "failed"
    assert attempt_rows(bank, event.id)[0].error.startswith("connect:")


def test_a_sessions_later_event_waits_for_the_earlier_one(
    bank: Runtime, clock: ManualClock, onboard: Onboard, receiver: Receiver
) -> None:
    partner = onboard(wallet=10_000, webhook_url=receiver.url)
    stuck = ready(partner, bank)
    other = ready(partner, bank)
    receiver.respond = lambda d: status(503) if d.json()["session"]["id"] == stuck else ok()
    partner.ok("session/cancel", {"session_id": stuck})  # its payment_finished is written
    partner.ok("session/cancel", {"session_id": other})
    bank.dispatcher.drain()
    sent = [(b["session"]["id"], b["type"]) for b in receiver.bodies()]
    # the other session flows; the stuck one's payment_finished is held back
    assert sorted(sent) == sorted(
        [(stuck, "ready_to_confirm"), (other, "ready_to_confirm"), (other, "payment_finished")]
    )
    clock.advance(5)
    bank.dispatcher.drain()
    assert [(b["session"]["id"], b["type"]) for b in receiver.bodies()][3:] == [
        (stuck, "ready_to_confirm")
    ]
    receiver.respond = lambda d: ok()
    clock.advance(300)
    bank.dispatcher.drain()  # delivers the first, then at once the one it held back
    assert [(b["session"]["id"], b["type"]) for b in receiver.bodies()][4:] == [
        (stuck, "ready_to_confirm"),
        (stuck, "payment_finished"),
    ]
    assert {e.status for e in event_rows(bank)} == {"delivered"}


@pytest.fixture
def short_schedule(bank: Runtime) -> None:
    bank.dispatcher.schedule = replace(bank.dispatcher.schedule, delays=(0, 1, 1))


@pytest.mark.usefixtures("short_schedule")
def test_after_the_last_attempt_an_event_is_dead_and_the_session_moves_on(
    bank: Runtime, clock: ManualClock, onboard: Onboard, receiver: Receiver
) -> None:
    partner = onboard(wallet=10_000, webhook_url=receiver.url)
    session_id = ready(partner, bank)
    receiver.respond = lambda d: status(500) if d.json()["type"] == "ready_to_confirm" else ok()
    partner.ok("session/cancel", {"session_id": session_id})
    for _ in range(3):
        bank.dispatcher.drain()
        clock.advance(1)
    ready_event, finished_event = event_rows(bank)
    assert ready_event.status == "dead"
    assert ready_event.attempts == 3
    # dead-lettering releases the session: its payment_finished was delivered
    assert finished_event.status == "delivered"
    assert [b["type"] for b in receiver.bodies()] == ["ready_to_confirm"] * 3 + ["payment_finished"]
    clock.advance(3600)
    assert bank.dispatcher.drain() == 0  # dead stays dead until replayed


def test_the_horizon_ends_retries_early(
    bank: Runtime, clock: ManualClock, onboard: Onboard, receiver: Receiver
) -> None:
    bank.dispatcher.schedule = replace(bank.dispatcher.schedule, horizon=600)
    partner = onboard(wallet=10_000, webhook_url=receiver.url)
    ready(partner, bank)
    receiver.respond = lambda d: status(500)
    bank.dispatcher.drain()  # attempt 1, retry in 5 s
    clock.advance(5)
    bank.dispatcher.drain()  # attempt 2; the next, 5 min later, would still be in time
    clock.advance(300)
    bank.dispatcher.drain()  # attempt 3; the next (30 min) would pass the 10 min horizon
    [event] = event_rows(bank)
    assert event.status == "dead"
    assert event.attempts == 3


@pytest.mark.usefixtures("short_schedule")
def test_replay_starts_a_new_round_with_the_same_bytes(
    bank: Runtime, clock: ManualClock, onboard: Onboard, receiver: Receiver
) -> None:
    partner = onboard(wallet=10_000, webhook_url=receiver.url)
    ready(partner, bank)
    receiver.respond = lambda d: status(500)
    for _ in range(3):
        bank.dispatcher.drain()
        clock.advance(1)
    [event] = event_rows(bank)
    assert event.status == "dead"
    receiver.respond = lambda d: ok()
    with bank.db.write() as conn:
        assert outbox.replay(conn, event.id, clock.now())
        assert not outbox.replay(conn, event.id + 1000, clock.now())
    assert bank.dispatcher.drain() == 1
    [event] = event_rows(bank)
    assert event.status == "delivered"
    assert event.attempts == 1  # the new round's first attempt
    assert event.replayed_at is not None
    assert len({(d.body, d.signature, d.id) for d in receiver.deliveries}) == 1
    assert [a.attempt for a in attempt_rows(bank, event.id)] == [1, 2, 3, 1]


def test_events_wait_for_a_webhook_url_then_flow(
    bank: Runtime, onboard: Onboard, receiver: Receiver
) -> None:
    partner = onboard(wallet=10_000)  # no webhook URL
    ready(partner, bank)
    assert bank.dispatcher.drain() == 0
    [event] = event_rows(bank)
    assert (event.status, event.attempts) == ("pending", 0)
    with bank.db.write() as conn:
        conn.execute(
            sa.update(t.projects)
            .where(t.projects.c.id == partner.project)
            .values(webhook_url=receiver.url)
        )
    assert bank.dispatcher.drain() == 1
    assert event_rows(bank)[0].status == "delivered"


def test_one_slow_endpoint_does_not_hold_up_the_others(
    bank: Runtime, onboard: Onboard, receiver: Receiver
) -> None:
    bank.dispatcher.config = replace(bank.dispatcher.config, per_endpoint=2, timeout_s=30)
    released = threading.Event()
    with receiving() as slow_endpoint:
        slow_endpoint.respond = lambda d: gate(released)
        slow = onboard("slow", wallet=10_000, webhook_url=slow_endpoint.url)
        fast = onboard("fast", wallet=10_000, webhook_url=receiver.url)
        for _ in range(3):
            ready(slow, bank)
        for _ in range(2):
            ready(fast, bank)
        worker = threading.Thread(target=bank.dispatcher.drain)
        worker.start()
        try:
            slow_endpoint.wait_for(lambda found: len(found) == 2)
            wait_until(lambda: delivered(bank, "fast") == 2)
            assert delivered(bank, "slow") == 0  # all three still waiting
        finally:
            released.set()
            worker.join(30)
        assert len(slow_endpoint.deliveries) == 3
        assert slow_endpoint.max_active == 2  # the per-endpoint cap
    assert {e.status for e in event_rows(bank)} == {"delivered"}


def test_a_stale_worker_cannot_settle_an_event_it_lost(
    bank: Runtime, clock: ManualClock, onboard: Onboard
) -> None:
    partner = onboard(wallet=10_000, webhook_url="http://127.0.0.1:9/")
    ready(partner, bank)
    now = clock.now()
    with bank.db.write() as conn:
        [first] = outbox.claim(conn, "w1", now, now + 60_000_000, 10, {}, 8)
        assert outbox.claim(conn, "w2", now, now + 60_000_000, 10, {}, 8) == []  # leased
    clock.advance(61)  # w1's lease expired: w2 takes the event
    now = clock.now()
    with bank.db.write() as conn:
        [second] = outbox.claim(conn, "w2", now, now + 60_000_000, 10, {}, 8)
    assert (first.attempt, second.attempt) == (1, 2)
    delivered = outbox.Outcome(200, None, "", 1000)
    with bank.db.write() as conn:
        schedule = bank.dispatcher.schedule
        late = outbox.record(conn, [(first, delivered)], "w1", now, schedule, [0.5])
        assert late == [None]  # recorded as an attempt, but the event is w2's now
        failed = outbox.Outcome(500, None, "", 1000)
        assert outbox.record(conn, [(second, failed)], "w2", now, schedule, [0.5]) == ["failed"]
    [event] = event_rows(bank)
    assert event.status == "failed"
    assert [a.http_status for a in attempt_rows(bank, event.id)] == [200, 500]


def test_one_drain_delivers_everything_due_across_busy_endpoints(
    bank: Runtime, onboard: Onboard, receiver: Receiver
) -> None:
    bank.dispatcher.config = replace(bank.dispatcher.config, concurrency=4, per_endpoint=2)
    for name in ("a", "b", "c"):
        partner = onboard(name, wallet=100_000, webhook_url=f"{receiver.url}/{name}")
        for _ in range(8):
            ready(partner, bank)
    assert bank.dispatcher.drain() == 24
    assert {e.status for e in event_rows(bank)} == {"delivered"}
    assert receiver.max_active <= 4


@pytest.mark.usefixtures("short_schedule")
def test_an_event_that_cannot_be_prepared_fails_alone_and_goes_dead(
    bank: Runtime, clock: ManualClock, onboard: Onboard, receiver: Receiver
) -> None:
    partner = onboard(wallet=10_000, webhook_url=receiver.url)
    ready(partner, bank)
    with bank.db.write() as conn:  # sealed under a vault key that is no longer in the ring
        conn.execute(
            sa.insert(t.events).values(
                project_id=partner.project,
                session_n=999,
                type="ready_to_confirm",
                body=b"\x00sealed",
                body_key_id="k-lost",
                next_attempt_at=clock.now(),
                created_at=clock.now(),
            )
        )
    for _ in range(3):
        bank.dispatcher.drain()
        clock.advance(1)
    healthy, lost = event_rows(bank)
    assert healthy.status == "delivered"  # the unreadable event held nothing up
    assert (lost.status, lost.attempts) == ("dead", 3)
    assert len(receiver.deliveries) == 1
    errors = {a.error for a in attempt_rows(bank, lost.id)}
    assert len(errors) == 1
    assert errors.pop().startswith("prepare: vault key k-lost is not in the key ring")


@pytest.mark.parametrize("clocks", [False, True])
def test_the_claim_walks_the_waiting_events_in_order(bank: Runtime, clocks: bool) -> None:
    """PostgreSQL claims through ``ix_events_waiting`` (migration 0019): an ordered scan
    that stops at its limit and marks the dead index entries it passes, where a bitmap scan
    of ``ix_events_due`` visited every event delivered since the last vacuum."""
    if bank.db.is_sqlite:
        pytest.skip("SQLite updates a row in place: no dead entries; it keeps ix_events_due")
    statement = outbox.DUE[clocks]
    with bank.db.read() as conn:
        conn.exec_driver_sql("SET LOCAL enable_seqscan = off")  # a test's tables are tiny
        driver = conn.connection.driver_connection
        assert driver is not None
        params = {"now": 1, "busy": [], "n": 8}
        plan = [row[0] for row in driver.execute("EXPLAIN " + statement.rendered(True), params)]
    assert any("Index Scan using ix_events_waiting on events e" in line for line in plan), plan
