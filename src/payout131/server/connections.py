"""HTTP/1.1 connections with deadlines for a request's headers and for its body.

uvicorn closes a kept-alive connection that stays idle, but not one that opens and sends
nothing, nor one that sends half a request line or half its headers and stops, nor one that
declares a body and trickles it (a route that does not read the body answers at once, and
uvicorn then reads and drops the rest for as long as it comes): each holds a connection
(and memory) for as long as its client likes, and enough of them starve the server.

Here a request's headers must arrive within ``header_timeout_s`` of the connection's
opening or of the request's first byte, else the client is answered ``408`` and
disconnected; and its body within ``body_timeout_s`` (and a second's grace) of its
headers, else the connection is closed. A route that reads the body answers the slow one
itself, ``400``, when that time is up (``server/bodies.py``), so the grace lets its answer
go out first. A request whose body has come whole before the route reads it (most do: one
packet) is marked so in its scope (``BODY_RECEIVED``), and its read is not timed at all.

A connection is closed the way a client can read its last answer: the server sends its
half-close (FIN) after the answer and drops what the client still sends for ``_LINGER_S``
(longer while the answer is still going out, up to ``_LINGER_CAP_S``), so a client that
was still sending a refused body gets the ``413`` instead of a reset that would throw the
answer away. Over TLS the connection is closed at once (no half-close there).

What a connection writes in one pass of the event loop is held and sent in one write early
in the next pass (an answer's head and body, which uvicorn writes apart: one system call
and one packet instead of two). Under load the answers of many connections then go out
together, and each look at the network finds more requests ready: measured, a signed
status read went from 124 to 83 µs of the loop's CPU and a health check from 52 to 41
(docs/benchmarks.md, twelfth round).

``serve`` runs uvicorn with this protocol (``http=PROTOCOL``); the deadlines come from the
app's lifespan state (``HEADER_TIMEOUT``, ``BODY_TIMEOUT``), so every process of ``serve
--processes N`` reads them from its own settings.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = [
    "BODY_RECEIVED",
    "BODY_TIMEOUT",
    "DEFAULT_BODY_TIMEOUT_S",
    "DEFAULT_HEADER_TIMEOUT_S",
    "HEADER_TIMEOUT",
    "PROTOCOL",
    "TimedHttpProtocol",
]

PROTOCOL = "payout131.server.connections:TimedHttpProtocol"
HEADER_TIMEOUT = "payout131.header_timeout_s"  # the keys in the lifespan state
BODY_TIMEOUT = "payout131.body_timeout_s"
BODY_RECEIVED = "payout131.body_received"  # in a request's scope: its whole body is here
DEFAULT_HEADER_TIMEOUT_S = 10.0
DEFAULT_BODY_TIMEOUT_S = 30.0
_GRACE_S = 1.0
_LINGER_S = 2.0
_LINGER_CAP_S = 30.0  # an answer a client does not read in this long is dropped
_TIMED_OUT = (
    b"HTTP/1.1 408 Request Timeout\r\nContent-Type: text/plain\r\n"
    b"Content-Length: 46\r\nConnection: close\r\n\r\n"
    b"the request's headers did not arrive in time\r\n"
)


class _LingeringTransport:
    """The connection's transport, whose writes go out together in the loop's next pass and
    whose ``close`` half-closes first (see the module)."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport, self._loop = transport, loop
        self._closing = False
        self._held: list[bytes] = []

    def write(self, data: bytes) -> None:
        """Held until the loop's next pass (or ``close``), then sent with whatever else was
        written meanwhile."""
        if self._closing:
            self._transport.write(data)
            return
        if not self._held:
            self._loop.call_soon(self.flush)
        self._held.append(data)

    def flush(self) -> None:
        """Send what is held (nothing, once the connection is lost or aborted: it could not
        go, and uvloop's transport raises on a write then)."""
        held, self._held = self._held, []
        if held and not self._transport.is_closing():
            self._transport.write(held[0] if len(held) == 1 else b"".join(held))

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + sum(map(len, self._held))

    def is_closing(self) -> bool:
        return self._closing or self._transport.is_closing()

    def close(self) -> None:
        if self.is_closing():
            self._held = []
            return
        self.flush()
        self._closing = True
        transport = self._transport
        if not transport.can_write_eof():  # TLS: closed at once, as before
            transport.close()
            return
        self._loop.call_later(_LINGER_S, self._end, _LINGER_CAP_S)
        try:
            transport.write_eof()  # after the answer still buffered
        except OSError:  # the client is gone already
            transport.abort()
            return
        transport.resume_reading()  # to drop what the client still sends

    def _end(self, left: float) -> None:
        """Close once the answer has gone out (waiting up to ``left`` more seconds for a
        client that reads it slowly), then for good."""
        transport = self._transport
        if transport.is_closing():
            return
        if transport.get_write_buffer_size() and left > 0:
            self._loop.call_later(_LINGER_S, self._end, left - _LINGER_S)
            return
        if left <= 0:
            transport.abort()  # an answer nobody reads is not kept for ever
        else:
            transport.close()

    def close_now(self) -> None:
        """Close without lingering: the server is stopping, and waits for its connections
        (an answer complete but still held goes first)."""
        self.flush()
        self._closing = True
        self._transport.abort()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class TimedHttpProtocol(HttpToolsProtocol):
    """uvicorn's HTTP/1.1 protocol, closing a connection whose headers or body come too
    slowly."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._header_timeout = float(self.app_state.get(HEADER_TIMEOUT, DEFAULT_HEADER_TIMEOUT_S))
        body = float(self.app_state.get(BODY_TIMEOUT, DEFAULT_BODY_TIMEOUT_S))
        self._body_timeout = body + _GRACE_S

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        lingering = _LingeringTransport(transport, self.loop)
        super().connection_made(lingering)  # type: ignore[arg-type]
        self._arm(self._header_timeout, self._headers_too_slow)  # sending nothing is slow too

    def shutdown(self) -> None:
        if self.cycle is None or self.cycle.response_complete:  # idle: closed at once
            self.transport.close_now()  # type: ignore[attr-defined]
        else:
            super().shutdown()

    def data_received(self, data: bytes) -> None:
        if self.transport.is_closing():
            return  # lingering after the last answer: what comes is dropped
        super().data_received(data)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm(self._header_timeout, self._headers_too_slow)  # a kept-alive connection

    def on_headers_complete(self) -> None:
        self._arm(self._body_timeout, self._body_too_slow)
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._disarm()
        self.scope[BODY_RECEIVED] = True  # type: ignore[literal-required]
        super().on_message_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self, seconds: float, then: Any) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, then)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _headers_too_slow(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            self.transport.write(_TIMED_OUT)
            self.transport.close()

    def _body_too_slow(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            self.transport.close()  # a route that read the body has answered by now
