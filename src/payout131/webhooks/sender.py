"""The HTTP seam: one ``POST`` of a webhook, turned into an ``Outcome`` whatever happens.

``Sender`` is the whole interface the dispatcher needs, so the client library can be swapped
(httpx 0.28 today; STACK.md measured aiohttp and httpx2 faster at high concurrency) without
touching the delivery logic. ``HttpxSender`` never follows redirects (a 3xx is a failed
attempt), enforces the timeout on the whole attempt (connect, send and answer together),
reads at most ``SNIPPET_BYTES`` of the answer, and reports every failure as an ``Outcome``
rather than raising.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Protocol

import anyio
import httpx

from payout131.webhooks.outbox import SNIPPET_BYTES, Outcome, excerpt

__all__ = ["HttpxSender", "Sender"]


class Sender(Protocol):
    async def post(
        self, url: str, body: bytes, headers: Mapping[str, str], timeout: float
    ) -> Outcome: ...

    async def aclose(self) -> None: ...


def _describe(exc: BaseException) -> str:
    detail = str(exc) or type(exc).__name__
    if isinstance(exc, TimeoutError | httpx.TimeoutException):
        return f"timeout: {detail}"
    if isinstance(exc, httpx.ConnectError):
        return f"connect: {detail}"
    if isinstance(exc, httpx.RemoteProtocolError):
        return f"protocol: {detail}"
    if isinstance(exc, httpx.NetworkError):
        return f"network: {detail}"
    return f"{type(exc).__name__}: {detail}"


def _origin(url: str) -> str:
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0]}"


class HttpxSender:
    """Webhooks over pooled ``httpx.AsyncClient``s, one per origin (scheme, host, port).

    httpcore's pool looks at every connection it holds for every request it places, which
    is what made httpx 0.28 collapse at 64 concurrent requests in STACK.md's measurement; a
    pool per partner endpoint keeps each pool as small as the per-endpoint cap.
    """

    def __init__(self, max_connections: int) -> None:
        self._limits = httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        )
        self._clients: dict[str, httpx.AsyncClient] = {}

    def _client(self, url: str) -> httpx.AsyncClient:
        origin = _origin(url)
        client = self._clients.get(origin)
        if client is None:
            client = httpx.AsyncClient(follow_redirects=False, limits=self._limits)
            self._clients[origin] = client
        return client

    async def post(
        self, url: str, body: bytes, headers: Mapping[str, str], timeout: float
    ) -> Outcome:
        started = time.monotonic()
        status: int | None = None
        retry_after: str | None = None
        snippet = b""
        error: str | None = None
        try:
            with anyio.fail_after(timeout):
                async with self._client(url).stream(
                    "POST", url, content=body, headers=dict(headers), timeout=timeout
                ) as response:
                    status = response.status_code
                    retry_after = response.headers.get("retry-after")
                    async for chunk in response.aiter_raw():
                        snippet += chunk
                        if len(snippet) >= SNIPPET_BYTES:
                            break
        except (TimeoutError, httpx.HTTPError, httpx.InvalidURL, OSError) as exc:
            described = _describe(exc)
            # An answer whose status arrived counts by its status; the rest is a note.
            error = described if status is None else f"reading the answer: {described}"
        return Outcome(
            http_status=status,
            error=error,
            response=excerpt(snippet),
            duration_us=round((time.monotonic() - started) * 1_000_000),
            retry_after=retry_after,
        )

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.aclose()
        self._clients.clear()
