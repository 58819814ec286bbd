"""The crash test's webhook endpoint: verifies, records, sometimes fails, hands on sessions.

Every request is checked against the bank's public key and recorded (``Delivery``) before it
is answered. A seeded share of requests is answered 500, so the server's retries and its
per-session ordering are exercised too. A verified ``ready_to_confirm`` puts its session on
``ready``, where the load's deciders pick it up and confirm or cancel it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from payout131.client import signing
from payout131.tools.chaos.processes import free_port

__all__ = ["Delivery", "Receiver"]


@dataclass(frozen=True, slots=True)
class Delivery:
    """One request the server made, as received."""

    event_id: int
    kind: str
    session_id: str
    digest: str  # SHA-256 of the body: every attempt at one event must send the same bytes
    answered: int
    at: float


@dataclass
class Receiver:
    """The partner's webhook endpoint (one for every project of the run)."""

    bank_key: rsa.RSAPublicKey
    rng: random.Random
    failure_rate: float = 0.05
    deliveries: list[Delivery] = field(default_factory=list)
    forged: int = 0
    ready: asyncio.Queue[tuple[str, str]] = field(default_factory=asyncio.Queue)

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/hook/{project}", self._hook, methods=["POST"])])

    @contextlib.asynccontextmanager
    async def listening(self) -> AsyncIterator[str]:
        """Serve on a free loopback port for the block; yields the hook URL's stem (the
        project's name follows it)."""
        port = free_port()
        server = uvicorn.Server(
            uvicorn.Config(
                self.app(), host="127.0.0.1", port=port, log_level="warning",
                lifespan="off", access_log=False,
            )
        )  # fmt: skip
        task = asyncio.create_task(server.serve())
        try:
            yield f"http://127.0.0.1:{port}/hook"
        finally:
            server.should_exit = True
            await task

    async def _hook(self, request: Request) -> Response:
        try:
            body = await request.body()
        except ClientDisconnect:  # the server died while sending: it will send it again
            return Response(status_code=400)
        if not signing.verify(self.bank_key, body, request.headers.get("x-partner-sign")):
            self.forged += 1
            return Response(status_code=400)
        event: dict[str, Any] = json.loads(body)
        status = 500 if self.rng.random() < self.failure_rate else 200
        webhook_id = request.headers.get("webhook-id", "evt_0")
        session_id = str(event["session"]["id"])
        self.deliveries.append(
            Delivery(
                event_id=int(webhook_id.removeprefix("evt_")),
                kind=str(event["type"]),
                session_id=session_id,
                digest=hashlib.sha256(body).hexdigest(),
                answered=status,
                at=time.monotonic(),
            )
        )
        if status == 200 and event["type"] == "ready_to_confirm":
            self.ready.put_nowait((request.path_params["project"], session_id))
        return Response(b'{"ok":true}' if status == 200 else b"", status_code=status)
