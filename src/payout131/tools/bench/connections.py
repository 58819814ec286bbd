"""A small HTTP/1.1 keep-alive client on ``asyncio`` streams: the load generator's wire.

A benchmark's client must cost far less than the server it measures. A general-purpose
client (httpx) spends more per request than a lean ASGI handler does, so this one does only
what the load needs: requests with a ``Content-Length`` body over kept-alive loopback
connections, answers with a ``Content-Length`` or chunked body. A connection that fails is
dropped and the error raised; the caller counts it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping

from payout131.webhooks.http1 import framing

__all__ = ["ConnectionPool", "HttpError"]

# uvicorn closes a connection idle for 5 s; one idle for longer than this is not reused.
IDLE_S = 2.0


class HttpError(RuntimeError):
    """The exchange failed at the transport or protocol level (no usable answer)."""


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.usable = True
        self.last_used = time.monotonic()

    async def exchange(self, request: bytes) -> tuple[int, bytes]:
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        try:
            status = int(lines[0].split(b" ", 2)[1])
        except (IndexError, ValueError):
            raise HttpError(f"bad status line {lines[0][:80]!r}") from None
        framed = framing(lines[1:])
        if framed.close:
            self.usable = False
        if framed.chunked:
            return status, await self._chunks()
        length = framed.length
        return status, await self.reader.readexactly(length) if length else b""

    async def _chunks(self) -> bytes:
        parts: list[bytes] = []
        while True:
            size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
            data = await self.reader.readexactly(size + 2)
            if size == 0:
                return b"".join(parts)
            parts.append(data[:-2])

    def close(self) -> None:
        self.usable = False
        self.writer.close()


class ConnectionPool:
    """Up to ``size`` kept-alive connections to ``host:port``; a request waits for a free one."""

    def __init__(self, host: str, port: int, size: int) -> None:
        self.host, self.port, self.size = host, port, size
        self._idle: list[_Connection] = []
        self._free = asyncio.Semaphore(size)
        self._host_header = f"Host: {host}:{port}\r\n".encode()

    def build(
        self, method: str, path: str, body: bytes = b"", headers: Mapping[str, str] | None = None
    ) -> bytes:
        """The exact request bytes (build once and reuse when nothing changes)."""
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items()).encode()
        return (
            f"{method} {path} HTTP/1.1\r\n".encode()
            + self._host_header
            + f"Content-Length: {len(body)}\r\n".encode()
            + extra
            + b"\r\n"
            + body
        )

    async def send(self, request: bytes) -> tuple[int, bytes]:
        """One exchange: the answer's status and body, or ``HttpError``."""
        async with self._free:
            conn = self._idle.pop() if self._idle else None
            if conn is not None and time.monotonic() - conn.last_used > IDLE_S:
                conn.close()  # the server may have closed it already: a send would be lost
                conn = None
            try:
                if conn is None:
                    reader, writer = await asyncio.open_connection(self.host, self.port)
                    conn = _Connection(reader, writer)
                answer = await conn.exchange(request)
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
                if conn is not None:
                    conn.close()
                raise HttpError(f"{type(exc).__name__}: {exc}") from None
            except HttpError:
                if conn is not None:
                    conn.close()
                raise
            if conn.usable:
                conn.last_used = time.monotonic()
                self._idle.append(conn)
            else:
                conn.close()
            return answer

    def close(self) -> None:
        for conn in self._idle:
            conn.close()
        self._idle.clear()
