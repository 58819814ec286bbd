"""Webhooks over plain HTTP/1.1 on ``asyncio`` streams: the lean ``Sender`` (benchmarks).

httpx spends more CPU on one small ``POST`` than the rest of a payout's delivery together
(measured in docs/benchmarks.md), so ``http://`` endpoints get this sender: kept-alive
connections per origin, one request at a time on each, the answer's status and up to
``SNIPPET_BYTES`` of its body. Everything else (``https://``) goes to ``HttpxSender``. The
rules are ``HttpxSender``'s: no redirects followed (a 3xx is a failed attempt), the timeout
covers the whole attempt, every failure comes back as an ``Outcome``.

A kept-alive connection the partner closed while it was idle fails on its next request
before any answer arrives; such a request is sent once more on a new connection (the
partner never saw it). Connections idle for ``IDLE_S`` are not reused at all.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from urllib.parse import urlsplit

from payout131.webhooks.http1 import framing
from payout131.webhooks.outbox import SNIPPET_BYTES, Outcome, excerpt
from payout131.webhooks.sender import HttpxSender

__all__ = ["PlainHttpSender"]

IDLE_S = 4.0  # below the usual keep-alive timeouts (uvicorn 5 s, nginx 75 s)
MAX_DRAIN = 64 * 1024  # read an answer this long to the end to keep its connection


class _ProtocolError(Exception):
    pass


class _Stale(Exception):
    """A reused connection failed before any byte of the answer came back."""


class _Conn:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.last_used = time.monotonic()
        self.reusable = True

    def close(self) -> None:
        self.reusable = False
        self.writer.close()


class PlainHttpSender:
    """``Sender`` for ``http://`` URLs; ``https://`` ones go through ``HttpxSender``."""

    def __init__(self, max_connections: int) -> None:
        self._max_idle = max_connections
        self._idle: dict[tuple[str, int], list[_Conn]] = {}
        self._tls = HttpxSender(max_connections)

    async def post(
        self, url: str, body: bytes, headers: Mapping[str, str], timeout: float
    ) -> Outcome:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            return await self._tls.post(url, body, headers, timeout)
        started = time.monotonic()
        host, port = parts.hostname, parts.port or 80
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        netloc = host if port == 80 else f"{host}:{port}"
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        request = (
            f"POST {target} HTTP/1.1\r\nHost: {netloc}\r\nContent-Length: {len(body)}\r\n{head}\r\n"
        ).encode("latin-1") + body
        seen: list[int] = []  # the status, as soon as its line arrives
        try:
            async with asyncio.timeout(timeout):
                try:
                    status, retry_after, snippet = await self._exchange(
                        (host, port), request, True, seen
                    )
                except _Stale:
                    status, retry_after, snippet = await self._exchange(
                        (host, port), request, False, seen
                    )
        except TimeoutError:
            return _failed(
                started, f"timeout: no answer within {timeout:g} s", seen[-1] if seen else None
            )
        except ConnectionRefusedError as exc:
            return _failed(started, f"connect: {exc}", None)
        except OSError as exc:
            return _failed(
                started, f"network: {exc or type(exc).__name__}", seen[-1] if seen else None
            )
        except (_ProtocolError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
            return _failed(
                started, f"protocol: {exc or type(exc).__name__}", seen[-1] if seen else None
            )
        return Outcome(
            http_status=status,
            error=None,
            response=excerpt(snippet),
            duration_us=round((time.monotonic() - started) * 1_000_000),
            retry_after=retry_after,
        )

    async def _exchange(
        self, origin: tuple[str, int], request: bytes, reuse: bool, seen: list[int]
    ) -> tuple[int, str | None, bytes]:
        conn = self._take(origin) if reuse else None
        reused = conn is not None
        if conn is None:
            reader, writer = await asyncio.open_connection(*origin)
            conn = _Conn(reader, writer)
        try:
            conn.writer.write(request)
            try:
                line = await conn.reader.readuntil(b"\r\n")
            except (asyncio.IncompleteReadError, ConnectionError) as exc:
                if reused and (not isinstance(exc, asyncio.IncompleteReadError) or not exc.partial):
                    raise _Stale from exc
                raise
            answer = await self._answer(conn, line, seen)
        except BaseException:
            conn.close()
            raise
        if conn.reusable:
            conn.last_used = time.monotonic()
            idle = self._idle.setdefault(origin, [])
            if len(idle) < self._max_idle:
                idle.append(conn)
            else:
                conn.close()
        else:
            conn.close()
        return answer

    def _take(self, origin: tuple[str, int]) -> _Conn | None:
        idle = self._idle.get(origin)
        while idle:
            conn = idle.pop()
            if time.monotonic() - conn.last_used < IDLE_S and not conn.reader.at_eof():
                return conn
            conn.close()
        return None

    async def _answer(
        self, conn: _Conn, line: bytes, seen: list[int]
    ) -> tuple[int, str | None, bytes]:
        while True:
            fields = line.split(b" ", 2)
            if len(fields) < 2 or not fields[0].startswith(b"HTTP/1.") or not fields[1].isdigit():
                raise _ProtocolError(f"not an HTTP/1.x status line: {line[:60]!r}")
            status = int(fields[1])
            lines = []
            while (raw := await conn.reader.readuntil(b"\r\n")) != b"\r\n":
                lines.append(raw[:-2])
            if 100 <= status < 200:  # an interim answer: the real one follows
                line = await conn.reader.readuntil(b"\r\n")
                continue
            break
        seen.append(status)
        head = framing(lines)
        length, retry_after = head.length, head.retry_after
        if head.close:
            conn.reusable = False
        if head.chunked:
            return status, retry_after, await self._chunks(conn)
        if length is None:  # the body ends when the partner closes: read the snippet only
            conn.reusable = False
            return status, retry_after, await conn.reader.read(SNIPPET_BYTES)
        if length > MAX_DRAIN:
            conn.reusable = False
            return status, retry_after, await conn.reader.readexactly(SNIPPET_BYTES)
        body = await conn.reader.readexactly(length) if length else b""
        return status, retry_after, body[:SNIPPET_BYTES]

    async def _chunks(self, conn: _Conn) -> bytes:
        parts: list[bytes] = []
        total = 0
        while True:
            size = int((await conn.reader.readuntil(b"\r\n")).split(b";")[0].strip(), 16)
            if size == 0:
                await conn.reader.readuntil(b"\r\n")  # no trailers expected
                return b"".join(parts)[:SNIPPET_BYTES]
            total += size
            if total > MAX_DRAIN:
                conn.reusable = False
                parts.append(await conn.reader.read(SNIPPET_BYTES))
                return b"".join(parts)[:SNIPPET_BYTES]
            parts.append((await conn.reader.readexactly(size + 2))[:-2])

    async def aclose(self) -> None:
        for idle in self._idle.values():
            for conn in idle:
                conn.close()
        self._idle.clear()
        await self._tls.aclose()


def _failed(started: float, error: str, status: int | None) -> Outcome:
    if status is not None:  # an answer whose status arrived counts by its status
        error = f"reading the answer: {error}"
    return Outcome(status, error, "", round((time.monotonic() - started) * 1_000_000))
