"""HTTP/1.1 connections with a deadline for a request's headers.

uvicorn closes a kept-alive connection that stays idle, but not one that opens and sends
nothing, nor one that sends half a request line or half its headers and stops: each holds
a connection (and memory) for as long as its client likes, and enough of them starve the
server. Here a request's headers must arrive within ``header_timeout_s`` of the
connection's opening or of the request's first byte; a slower client is answered ``408``
and disconnected. The body has a deadline of its own, kept by the routes that read it
(``server/bodies.py``).

``serve`` runs uvicorn with this protocol (``http=PROTOCOL``); the deadline comes from the
app's lifespan state (``HEADER_TIMEOUT``), so every process of ``serve --processes N``
reads it from its own settings.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = ["DEFAULT_HEADER_TIMEOUT_S", "HEADER_TIMEOUT", "PROTOCOL", "TimedHttpProtocol"]

PROTOCOL = "payout131.server.connections:TimedHttpProtocol"
HEADER_TIMEOUT = "payout131.header_timeout_s"  # the key in the lifespan state
DEFAULT_HEADER_TIMEOUT_S = 10.0
_TIMED_OUT = (
    b"HTTP/1.1 408 Request Timeout\r\nContent-Type: text/plain\r\n"
    b"Content-Length: 46\r\nConnection: close\r\n\r\n"
    b"the request's headers did not arrive in time\r\n"
)


class TimedHttpProtocol(HttpToolsProtocol):
    """uvicorn's HTTP/1.1 protocol, closing a connection whose headers come too slowly."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._header_timeout = float(self.app_state.get(HEADER_TIMEOUT, DEFAULT_HEADER_TIMEOUT_S))

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()  # a connection that sends nothing is as slow as any

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm()  # the next request of a kept-alive connection

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(self._header_timeout, self._too_slow)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _too_slow(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            self.transport.write(_TIMED_OUT)
            self.transport.close()
