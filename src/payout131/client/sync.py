"""``Client``: the Bank 131 payout API over a blocking ``httpx.Client``."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Self, TypeVar, Unpack

import httpx

from payout131.client._http import Exchange, MethodCall, Outcome
from payout131.client.config import Options
from payout131.client.operations import Operations
from payout131.client.sandbox import Sandbox

__all__ = ["Client"]

T = TypeVar("T")


class Client(Operations):
    """A blocking client; every Bank 131 method is a method here (see ``Operations``).

    Settings come from keyword arguments, then ``PAYOUT131_*`` environment variables (see
    ``payout131.client.config``). ``transport`` replaces httpx's network transport (a
    ``httpx.MockTransport`` in tests, ``httpx.WSGITransport``...); ``http_client`` brings a
    configured ``httpx.Client`` (proxies, certificates) that the caller keeps and closes.
    ``sleep`` is how the client waits between retries.

    Use it as a context manager, or call ``close()``::

        with Client(base_url="https://demo.bank131.ru", project="p", private_key=pem) as bank:
            session = bank.status("ps_2643")
    """

    def __init__(
        self,
        *,
        transport: httpx.BaseTransport | None = None,
        http_client: httpx.Client | None = None,
        sleep: Callable[[float], None] = time.sleep,
        **options: Unpack[Options],
    ) -> None:
        super().__init__(transport, http_client, options)
        self._owns_http = http_client is None
        self._http = http_client or httpx.Client(transport=transport)
        self._sleep = sleep

    def _send(self, call: MethodCall[T]) -> T:
        exchange = Exchange(call, self.settings)
        while True:
            outcome: Outcome
            try:
                outcome = self._http.send(exchange.request)
            except httpx.TransportError as exc:
                outcome = exc
            delay = exchange.retry_delay(outcome)
            if delay is None:
                return exchange.result(outcome)
            self._sleep(delay)

    @property
    def sandbox(self) -> Sandbox:
        """A payout131 sandbox's own calls: test clocks, forced outcomes (docs/sandbox.md)."""
        return Sandbox(self._send, self.settings)

    def close(self) -> None:
        """Close the connection pool (unless it came in as ``http_client``)."""
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
