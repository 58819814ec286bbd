"""The partner's webhook endpoint in the load process: a raw ``asyncio`` HTTP/1.1 server.

Every webhook is verified with the bank's public key, its arrival time and event id noted
(``Webhook-Id``: the harness looks up the event's commit stamp afterwards), and handed to
``on_event`` before the ``200`` goes back. It answers every request on a kept-alive
connection; it never fails a delivery on purpose (that is the crash test's business).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import msgspec
from cryptography.hazmat.primitives.asymmetric import rsa

from payout131.client import signing

__all__ = ["Receiver"]

_OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
_BAD = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"


class Receiver:
    """Webhooks in: ``on_event(kind, session_id, session, received_us)`` for each good one."""

    def __init__(
        self,
        bank_key: rsa.RSAPublicKey,
        on_event: Callable[[str, str, dict[str, Any], int], None],
    ) -> None:
        self.bank_key, self.on_event = bank_key, on_event
        self.arrivals: list[tuple[int, int]] = []  # (event id, received at, µs since the epoch)
        self.forged = 0
        self.server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self, host: str, port: int) -> None:
        self.server = await asyncio.start_server(self._serve, host, port, reuse_address=True)

    async def stop(self) -> None:
        """Stop listening and close every open connection (their handlers end quietly)."""
        if self.server is not None:
            self.server.close()
            self.server = None
        for writer in list(self._writers):
            writer.close()
        await asyncio.sleep(0)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length, signature, event_id = 0, "", 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    name = name.strip().lower()
                    if name == b"content-length":
                        length = int(value)
                    elif name == b"x-partner-sign":
                        signature = value.strip().decode()
                    elif name == b"webhook-id":
                        event_id = int(value.strip().removeprefix(b"evt_") or 0)
                body = await reader.readexactly(length) if length else b""
                writer.write(self._handle(body, signature, event_id))
        except (asyncio.IncompleteReadError, ConnectionError, ValueError, asyncio.CancelledError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    def _handle(self, body: bytes, signature: str, event_id: int) -> bytes:
        received = time.time_ns() // 1000
        if not signing.verify(self.bank_key, body, signature):
            self.forged += 1
            return _BAD
        self.arrivals.append((event_id, received))
        event = msgspec.json.decode(body)
        session = event["session"]
        self.on_event(str(event["type"]), str(session["id"]), session, received)
        return _OK
