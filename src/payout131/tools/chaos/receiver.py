"""The crash test's webhook endpoint: verifies, records, sometimes fails, hands on sessions.

Every request is checked against the bank's public key and recorded (``Delivery``) before it
is answered. A seeded share of requests is answered 500, so the server's retries and its
per-session ordering are exercised too. A verified ``ready_to_confirm`` puts its session on
``ready``, where the load's deciders pick it up and confirm or cancel it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import time
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from payout131.client import signing

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
