"""Retries, backoff and idempotency keys of the SDK, against a scripted remote bank.

``httpx.MockTransport`` stands in for Bank 131 on the network: it plays the bank's wire
answers (5xx, dropped connections, the 400 for a repeated idempotency key), in order.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from payout131.client import (
    Amount,
    ApiConnectionError,
    AsyncClient,
    Backoff,
    Client,
    IdempotencyConflict,
    InternalServerError,
    InvalidRequestError,
)

PRIVATE_PEM = (Path(__file__).parents[2] / "shared/fixtures/signing/private.pem").read_bytes()
SESSION = {"id": "ps_1", "status": "in_progress", "payments": []}


def ok() -> httpx.Response:
    return httpx.Response(200, json={"status": "ok", "session": SESSION})


def error(status: int, code: str, description: str = "") -> httpx.Response:
    body = {"status": "error", "error": {"code": code, "description": description or code}}
    return httpx.Response(status, json=body)


def conflict() -> httpx.Response:
    return error(400, "idempotency_key_already_exists", "already in progress or processed")


class ScriptedBank:
    """Answers each request with the next scripted answer: a response, or an exception.

    Each answer is used once: httpx binds a response's stream to the request it answers.
    """

    def __init__(self, *answers: httpx.Response | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def header(self, name: str) -> list[str | None]:
        return [request.headers.get(name) for request in self.requests]


def client(bank: ScriptedBank, sleeps: list[float], **options: Any) -> Client:
    return Client(
        base_url="https://bank.example",
        project="partner",
        private_key=PRIVATE_PEM,
        transport=httpx.MockTransport(bank),
        backoff=Backoff(base=0.5, cap=8.0, random=lambda: 1.0),
        sleep=sleeps.append,
        env={},
        **options,
    )


def test_a_5xx_is_retried_with_the_same_bytes_signature_and_key() -> None:
    bank, sleeps = (
        ScriptedBank(error(503, "internal_error"), httpx.Response(502), ok()),
        list[float](),
    )
    with client(bank, sleeps) as sdk:
        session = sdk.confirm("ps_1")
    assert session.id == "ps_1"
    assert len(bank.requests) == 3
    assert len({request.content for request in bank.requests}) == 1
    assert len(set(bank.header("X-PARTNER-SIGN"))) == 1
    keys = set(bank.header("X-PARTNER-IDEMPOTENCY-KEY"))
    assert len(keys) == 1
    assert uuid.UUID(keys.pop()).version == 4
    assert sleeps == [0.5, 1.0]


def test_connection_errors_and_timeouts_are_retried() -> None:
    bank, sleeps = (
        ScriptedBank(httpx.ConnectError("refused"), httpx.ReadTimeout("slow"), ok()),
        list[float](),
    )
    with client(bank, sleeps) as sdk:
        assert sdk.status("ps_1").status == "in_progress"
    assert len(bank.requests) == 3
    assert len(sleeps) == 2


def test_after_max_retries_a_network_failure_is_an_api_connection_error() -> None:
    bank = ScriptedBank(*[httpx.ConnectError("refused")] * 3)
    with client(bank, [], max_retries=2) as sdk, pytest.raises(ApiConnectionError) as caught:
        sdk.cancel("ps_1", idempotency_key="cancel-ps_1")
    assert len(bank.requests) == 3
    assert caught.value.idempotency_key == "cancel-ps_1"
    assert caught.value.http_status is None
    assert "may or may not have happened" in str(caught.value)
    assert isinstance(caught.value.__cause__, httpx.ConnectError)


def test_after_max_retries_a_5xx_is_an_internal_server_error() -> None:
    bank = ScriptedBank(*[error(500, "internal_error", "try later") for _ in range(4)])
    with client(bank, []) as sdk, pytest.raises(InternalServerError) as caught:
        sdk.public_token()
    assert len(bank.requests) == 4  # the first attempt and max_retries=3 retries
    assert caught.value.http_status == 500
    assert caught.value.description == "try later"


def test_max_retries_zero_sends_once() -> None:
    bank, sleeps = ScriptedBank(httpx.Response(503)), list[float]()
    with client(bank, sleeps, max_retries=0) as sdk, pytest.raises(InternalServerError):
        sdk.status("ps_1")
    assert len(bank.requests) == 1
    assert sleeps == []


def test_a_4xx_is_the_bank_s_decision_and_is_not_retried() -> None:
    bank, sleeps = (
        ScriptedBank(error(400, "invalid_request", "amount_details.amount: > 0")),
        list[float](),
    )
    with client(bank, sleeps) as sdk, pytest.raises(InvalidRequestError):
        sdk.start_payout("ps_1")
    assert len(bank.requests) == 1
    assert sleeps == []


def test_a_transport_error_that_would_recur_is_not_retried() -> None:
    bank = ScriptedBank(httpx.UnsupportedProtocol("ftp"))
    with client(bank, []) as sdk, pytest.raises(ApiConnectionError):
        sdk.status("ps_1")
    assert len(bank.requests) == 1


def test_a_repeated_key_answered_on_a_retry_says_the_first_attempt_may_have_succeeded() -> None:
    bank = ScriptedBank(httpx.ReadTimeout("the answer was lost"), conflict())
    with client(bank, []) as sdk, pytest.raises(IdempotencyConflict) as caught:
        sdk.confirm("ps_1", idempotency_key="confirm-ps_1")
    raised = caught.value
    assert raised.retried is True
    assert raised.idempotency_key == "confirm-ps_1"
    assert raised.http_status == 400
    assert raised.code == "idempotency_key_already_exists"
    assert "may have succeeded" in str(raised)
    assert "status()" in str(raised)


def test_a_repeated_key_on_the_first_attempt_is_the_caller_s_own_reuse() -> None:
    bank = ScriptedBank(conflict())
    with client(bank, []) as sdk, pytest.raises(IdempotencyConflict) as caught:
        sdk.confirm("ps_1", idempotency_key="used-before")
    assert caught.value.retried is False
    assert caught.value.idempotency_key == "used-before"
    assert "SDK retried" not in str(caught.value)


def test_every_mutating_call_gets_its_own_key_and_reads_get_none() -> None:
    bank = ScriptedBank(ok(), ok(), ok())
    with client(bank, []) as sdk:
        sdk.create_session()
        sdk.create_session()
        sdk.status("ps_1")
    first, second, read = bank.header("X-PARTNER-IDEMPOTENCY-KEY")
    assert first is not None
    assert second is not None
    assert first != second
    assert read is None


def test_full_jitter_is_uniform_below_a_capped_exponential() -> None:
    top = Backoff(base=0.5, cap=8.0, random=lambda: 1.0)
    assert [top.delay(retry) for retry in range(6)] == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0]
    assert Backoff(random=lambda: 0.0).delay(3) == 0.0
    assert Backoff(base=1.0, cap=30.0, random=lambda: 0.25).delay(2) == 1.0


@pytest.mark.anyio
async def test_the_async_client_retries_the_same_way() -> None:
    bank = ScriptedBank(httpx.ConnectError("refused"), httpx.Response(504), conflict())
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    sdk = AsyncClient(
        base_url="https://bank.example",
        project="partner",
        private_key=PRIVATE_PEM,
        transport=httpx.MockTransport(bank),
        backoff=Backoff(random=lambda: 1.0),
        sleep=sleep,
        env={},
    )
    async with sdk:
        with pytest.raises(IdempotencyConflict) as caught:
            await sdk.init_payout(destination={"type": "bank_account"}, amount=Amount(10000))
    assert caught.value.retried is True
    assert sleeps == [0.5, 1.0]
    assert len(set(bank.header("X-PARTNER-IDEMPOTENCY-KEY"))) == 1


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
