"""The partner API's own way in (``server/api_route.py``) answers every call as the
Starlette route behind it does: the same status, headers and bytes, refusals included."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.applications import Starlette

from liveserver import serve
from partner import Partner, payout_body
from payout131 import projects
from payout131.client import signing
from payout131.ledger import book
from payout131.runtime import Runtime
from payout131.server.api_route import ApiRoute
from payout131.server.request_log import RequestLog

STARLETTE = (b"x-test-way", b"starlette")


@pytest.fixture
def both(bank: Runtime) -> Iterator[httpx.Client]:
    """One server: a request with ``X-Test-Way: starlette`` goes straight to the router,
    every other one the way ``serve`` takes it."""
    full = bank.app(run_worker=False)
    assert isinstance(full, Starlette)
    layers = [m.cls for m in full.user_middleware]
    assert layers == [RequestLog, ApiRoute]  # inside the log: every call is logged
    router = full.router

    async def either(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and STARLETTE in scope["headers"]:
            scope["app"] = full  # as Starlette sets it before its middleware
            await router(scope, receive, send)
        else:
            await full(scope, receive, send)

    with serve(either) as url, httpx.Client(base_url=url) as client:
        yield client


def _seen(response: httpx.Response) -> tuple[int, list[tuple[str, str]], bytes]:
    headers = [(k, v) for k, v in response.headers.multi_items() if k not in ("date", "server")]
    return response.status_code, headers, re.sub(rb"(ps|po)_\d+", rb"\1_N", response.content)


def _same(http: httpx.Client, path: str, content: bytes, headers: dict[str, str]) -> Any:
    """Post to both ways; assert the answers match; return the first's parsed body."""
    fast = http.post(path, content=content, headers=headers)
    slow = http.post(path, content=content, headers={**headers, "X-Test-Way": "starlette"})
    assert _seen(fast) == _seen(slow), (fast.text, slow.text)
    return fast.json() if fast.content.startswith(b"{") else fast.text


def test_both_ways_answer_alike(
    bank: Runtime, both: httpx.Client, partner_keys: list[rsa.RSAPrivateKey]
) -> None:
    key = partner_keys[0]
    with bank.db.write() as conn:
        projects.add_project(conn, "acme", signing.public_key_pem(key).decode(), 0)
        book.topup_wallet(conn, "acme", 10**9, 0)
    acme = Partner(both, "acme", key)
    made = acme.ok("session/init/payout", payout_body(10_000))["session"]["id"]

    def signed(body: Any, **extra: str) -> tuple[bytes, dict[str, str]]:
        content = json.dumps(body).encode()
        sent = {"X-PARTNER-PROJECT": "acme", "X-PARTNER-SIGN": signing.sign(key, content)}
        return content, {"Content-Type": "application/json", **sent, **extra}

    status = signed({"session_id": made})
    assert _same(both, "/api/v1/session/status", *status)["status"] == "ok"
    assert _same(both, "/api/v2/session/status", *status)["status"] == "ok"
    init = signed(payout_body(10_000))
    assert _same(both, "/api/v1/session/init/payout", *init)["session"]["status"] == "in_progress"
    keyed = signed(payout_body(20_000), **{"X-PARTNER-IDEMPOTENCY-KEY": "k-1"})
    both.post("/api/v1/session/init/payout", content=keyed[0], headers=keyed[1])
    other = signed(payout_body(30_000), **{"X-PARTNER-IDEMPOTENCY-KEY": "k-1"})
    refusals = {
        "unknown session": signed({"session_id": "ps_999999999"}),
        "bad id": signed({"session_id": 5}),
        "bad JSON": (b"{", {**status[1], "X-PARTNER-SIGN": signing.sign(key, b"{")}),
        "wrong signature": (status[0], {**status[1], "X-PARTNER-SIGN": "AAAA"}),
        "no signature": (status[0], {"X-PARTNER-PROJECT": "acme"}),
        "no project": (status[0], {}),
        "unknown project": (status[0], {**status[1], "X-PARTNER-PROJECT": "nobody"}),
        "too large": (b"x" * 2_000_000, status[1]),
        "key reused": other,
    }
    codes = {
        name: _same(both, "/api/v1/session/status", *sent)
        for name, sent in refusals.items()
        if name != "key reused"
    }
    codes["key reused"] = _same(both, "/api/v1/session/init/payout", *other)
    assert {name: body["error"]["code"] for name, body in codes.items()} == {
        "unknown session": "invalid_request",
        "bad id": "invalid_request",
        "bad JSON": "invalid_request",
        "wrong signature": "authentication_error",
        "no signature": "authentication_error",
        "no project": "identification_error",
        "unknown project": "identification_error",
        "too large": "invalid_request",
        "key reused": "idempotency_key_already_exists",
    }
    # what the partner API's own way leaves to Starlette: unknown methods, other verbs
    assert _same(both, "/api/v1/session/nothing", *status)["error"]["code"] == "invalid_request"
    assert _same(both, "/api/v3/session/status", *status)["error"]["code"] == "invalid_request"
    wrong_verb = both.get("/api/v1/session/status")
    assert (wrong_verb.status_code, wrong_verb.headers["allow"]) == (405, "POST")


def test_a_project_out_of_date_is_read_once_for_every_call_waiting(bank: Runtime) -> None:
    """When a busy project's cache entry runs out, the calls in flight share one read."""
    with bank.db.write() as conn:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        projects.add_project(conn, "acme", signing.public_key_pem(key).decode(), 0)
    app = bank.app(run_worker=False)
    assert isinstance(app, Starlette)
    api = next(m.kwargs["api"] for m in app.user_middleware if m.cls is ApiRoute)
    reads: list[str] = []
    read = bank.projects.get

    def counted(project_id: str) -> Any:  # the real read, counted
        reads.append(project_id)
        if project_id == "broken":
            raise RuntimeError("the store is out of reach")
        return read(project_id)

    bank.projects.get = counted  # type: ignore[method-assign]

    async def calls(project_id: str) -> list[Any]:
        waiting = [api._project(project_id) for _ in range(20)]
        return await asyncio.gather(*waiting, return_exceptions=True)

    found = asyncio.run(calls("acme"))
    assert reads == ["acme"]
    assert {p.id for p in found} == {"acme"}
    bank.projects.clear()
    failed = asyncio.run(calls("broken"))
    assert reads == ["acme", "broken"]  # one read, and its failure for every call
    assert [str(f) for f in failed] == ["the store is out of reach"] * 20
    assert api._reading == {}
