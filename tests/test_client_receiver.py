"""WebhookReceiver as the bank meets it: an ASGI app driven over httpx.ASGITransport."""

from __future__ import annotations

import json
import threading
from collections.abc import AsyncIterator, MutableMapping
from pathlib import Path
from typing import Any

import httpx
import pytest

from payout131.client import (
    Event,
    MemoryDedupe,
    PaymentFinished,
    ReadyToConfirm,
    WebhookReceiver,
)
from payout131.client.signing import load_private_key, sign

pytestmark = pytest.mark.anyio

FIXTURES = Path(__file__).parents[2] / "shared/fixtures/signing"
BANK_PRIVATE = load_private_key((FIXTURES / "private.pem").read_bytes())
FINISHED = {
    "type": "payment_finished",
    "session": {
        "id": "ps_1",
        "status": "accepted",
        "payments": [{"id": "po_1", "status": "succeeded"}],
    },
}
READY = {
    "type": "ready_to_confirm",
    "session": {"id": "ps_2", "status": "in_progress", "next_action": "confirm"},
}


def webhook(body: dict[str, Any] | bytes, webhook_id: str | None = None) -> dict[str, Any]:
    """The request the bank sends: signed body, plus our optional Webhook-Id."""
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"Content-Type": "application/json", "X-PARTNER-SIGN": sign(BANK_PRIVATE, content)}
    if webhook_id is not None:
        headers["Webhook-Id"] = webhook_id
    return {"content": content, "headers": headers}


class Recorder:
    def __init__(self, fail_times: int = 0) -> None:
        self.events: list[Event] = []
        self.threads: list[threading.Thread] = []
        self.fail_times = fail_times

    def __call__(self, event: Event) -> None:
        self.threads.append(threading.current_thread())
        if self.fail_times:
            self.fail_times -= 1
            raise RuntimeError("the partner's database is down")
        self.events.append(event)


async def bank_for(receiver: WebhookReceiver) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=receiver)
    async with httpx.AsyncClient(transport=transport, base_url="http://partner") as bank:
        yield bank


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
async def bank(recorder: Recorder) -> AsyncIterator[httpx.AsyncClient]:
    receiver = WebhookReceiver(
        FIXTURES / "public.pem",
        handlers={"payment_finished": recorder, "ready_to_confirm": recorder},
    )
    async for client in bank_for(receiver):
        yield client


async def test_a_signed_webhook_reaches_its_handler_and_is_acknowledged(
    bank: httpx.AsyncClient, recorder: Recorder
) -> None:
    response = await bank.post("/", **webhook(FINISHED, "wh_1"))
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    [event] = recorder.events
    assert isinstance(event, PaymentFinished)
    assert event.session.payouts[0].status == "succeeded"
    assert recorder.threads[0] is not threading.main_thread()  # plain functions run in a thread


async def test_an_async_handler_is_awaited() -> None:
    seen: list[Event] = []

    async def on_ready(event: ReadyToConfirm) -> None:
        seen.append(event)

    receiver = WebhookReceiver(FIXTURES / "public.pem", handlers={"ready_to_confirm": on_ready})
    async for bank in bank_for(receiver):
        assert (await bank.post("/", **webhook(READY))).status_code == 200
    assert [type(event) for event in seen] == [ReadyToConfirm]


async def test_a_redelivered_webhook_id_is_acknowledged_without_a_second_call(
    bank: httpx.AsyncClient, recorder: Recorder
) -> None:
    first = await bank.post("/", **webhook(FINISHED, "wh_1"))
    again = await bank.post("/", **webhook(FINISHED, "wh_1"))
    other = await bank.post("/", **webhook(FINISHED, "wh_2"))
    assert [first.status_code, again.status_code, other.status_code] == [200, 200, 200]
    assert len(recorder.events) == 2


async def test_without_a_webhook_id_the_same_bytes_count_as_a_redelivery(
    bank: httpx.AsyncClient, recorder: Recorder
) -> None:
    await bank.post("/", **webhook(FINISHED))
    await bank.post("/", **webhook(FINISHED))
    await bank.post("/", **webhook(READY))
    assert [event.type for event in recorder.events] == ["payment_finished", "ready_to_confirm"]


async def test_a_failing_handler_answers_500_so_the_bank_retries() -> None:
    recorder = Recorder(fail_times=1)
    receiver = WebhookReceiver(FIXTURES / "public.pem", handlers={"payment_finished": recorder})
    async for bank in bank_for(receiver):
        failed = await bank.post("/", **webhook(FINISHED, "wh_1"))
        retried = await bank.post("/", **webhook(FINISHED, "wh_1"))
    assert (failed.status_code, retried.status_code) == (500, 200)
    assert len(recorder.events) == 1


async def test_a_bad_signature_is_401_and_marks_nothing_as_handled(
    bank: httpx.AsyncClient, recorder: Recorder
) -> None:
    forged = webhook(FINISHED, "wh_1")
    forged["headers"]["X-PARTNER-SIGN"] = sign(BANK_PRIVATE, b"something else")
    assert (await bank.post("/", **forged)).status_code == 401
    del forged["headers"]["X-PARTNER-SIGN"]
    assert (await bank.post("/", **forged)).status_code == 401
    assert recorder.events == []
    assert (await bank.post("/", **webhook(FINISHED, "wh_1"))).status_code == 200
    assert len(recorder.events) == 1


async def test_a_signed_body_that_is_not_an_event_is_400(
    bank: httpx.AsyncClient, recorder: Recorder
) -> None:
    response = await bank.post("/", **webhook(b"{not json"))
    assert response.status_code == 400
    assert response.json()["status"] == "error"
    assert recorder.events == []


async def test_an_event_type_without_a_handler_is_acknowledged(bank: httpx.AsyncClient) -> None:
    assert (await bank.post("/", **webhook({"type": "payout_reversed"}))).status_code == 200


async def test_only_post_is_accepted(bank: httpx.AsyncClient) -> None:
    response = await bank.get("/")
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"


async def test_an_oversized_body_is_413() -> None:
    receiver = WebhookReceiver(FIXTURES / "public.pem", handlers={}, max_body=100)
    async for bank in bank_for(receiver):
        response = await bank.post("/", **webhook({"type": "x", "padding": "x" * 200}))
    assert response.status_code == 413


async def test_a_pluggable_async_dedupe_store_is_used(recorder: Recorder) -> None:
    class SharedStore:
        def __init__(self) -> None:
            self.ids: set[str] = {"wh_done_elsewhere"}

        async def seen(self, webhook_id: str) -> bool:
            return webhook_id in self.ids

        async def remember(self, webhook_id: str) -> None:
            self.ids.add(webhook_id)

    store = SharedStore()
    receiver = WebhookReceiver(
        FIXTURES / "public.pem", handlers={"payment_finished": recorder}, dedupe=store
    )
    async for bank in bank_for(receiver):
        await bank.post("/", **webhook(FINISHED, "wh_done_elsewhere"))
        await bank.post("/", **webhook(FINISHED, "wh_new"))
    assert len(recorder.events) == 1
    assert "wh_new" in store.ids


def test_memory_dedupe_forgets_the_least_recently_seen_first() -> None:
    dedupe = MemoryDedupe(maxsize=2)
    dedupe.remember("a")
    dedupe.remember("b")
    assert dedupe.seen("a")  # "a" is now the most recently seen
    dedupe.remember("c")
    assert (dedupe.seen("a"), dedupe.seen("b"), dedupe.seen("c")) == (True, False, True)


async def test_it_answers_the_lifespan_protocol_when_served_alone() -> None:
    receiver = WebhookReceiver(FIXTURES / "public.pem", handlers={})
    inbox = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    outbox: list[MutableMapping[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return inbox.pop(0)

    async def send(message: MutableMapping[str, Any]) -> None:
        outbox.append(message)

    await receiver({"type": "lifespan"}, receive, send)
    assert [m["type"] for m in outbox] == [
        "lifespan.startup.complete",
        "lifespan.shutdown.complete",
    ]
