"""``AsyncClient``: the Bank 131 payout API over ``httpx.AsyncClient`` (asyncio or trio)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Self, TypeVar, Unpack

import anyio
import httpx

from payout131.client._http import Exchange, MethodCall, Outcome
from payout131.client.config import Options
from payout131.client.operations import Operations
from payout131.client.sandbox import AsyncSandbox

__all__ = ["AsyncClient"]

T = TypeVar("T")


class AsyncClient(Operations):
    """The asynchronous twin of ``Client``: the same methods and settings, awaited.

    ``transport`` may be ``httpx.ASGITransport(app)`` to talk to an ASGI app in-process.
    ::

        async with AsyncClient(transport=httpx.ASGITransport(app), base_url="http://bank") as bank:
            session = await bank.status("ps_2643")
    """

    def __init__(
        self,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        http_client: httpx.AsyncClient | None = None,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
        **options: Unpack[Options],
    ) -> None:
        super().__init__(transport, http_client, options)
        self._owns_http = http_client is None
        self._http = http_client or httpx.AsyncClient(transport=transport)
        self._sleep = sleep

    async def _send(self, call: MethodCall[T]) -> T:
        exchange = Exchange(call, self.settings)
        while True:
            outcome: Outcome
            try:
                outcome = await self._http.send(exchange.request)
            except httpx.TransportError as exc:
                outcome = exc
            delay = exchange.retry_delay(outcome)
            if delay is None:
                return exchange.result(outcome)
            await self._sleep(delay)

    @property
    def sandbox(self) -> AsyncSandbox:
        """A payout131 sandbox's own calls: test clocks, forced outcomes (docs/sandbox.md)."""
        return AsyncSandbox(self._send, self.settings)

    async def aclose(self) -> None:
        """Close the connection pool (unless it came in as ``http_client``)."""
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
