"""Request bodies as they arrive: capped while they are read, and timed.

Every route that reads a body reads it here: the bytes are counted as they come and the
read stops at the cap (a declared ``Content-Length`` over it is refused before anything is
read), and a body that does not arrive in time is refused, so a slow or endless sender
neither fills memory nor holds a request open (README, "Configuration": ``PAYOUT131_BODY_TIMEOUT``).
"""

from __future__ import annotations

import asyncio
from typing import ClassVar

from starlette.requests import ClientDisconnect, Request
from starlette.types import Receive, Scope

from payout131.errors import InvalidRequest
from payout131.protocol.validation import whole_number
from payout131.server.connections import BODY_RECEIVED

__all__ = ["BodyRefused", "read_body", "receive_body"]


class BodyRefused(InvalidRequest):
    """A body too large or too slow: answered, and the connection closed after the answer
    (the rest of the body is not worth reading; ``server/connections.py`` closes it)."""

    headers: ClassVar[dict[str, str]] = {"connection": "close"}


async def read_body(request: Request, limit: int, timeout_s: float) -> bytes:
    """The request's body, or ``InvalidRequest`` if it is larger than ``limit`` bytes or
    takes longer than ``timeout_s`` to arrive."""
    declared = request.headers.get("content-length")
    return await receive_body(request.scope, request.receive, declared, limit, timeout_s)


async def receive_body(
    scope: Scope, receive: Receive, declared: str | None, limit: int, timeout_s: float
) -> bytes:
    """The body of the request whose ASGI ``scope`` and ``receive`` these are
    (``declared``: its ``Content-Length``, if any), capped and timed as ``read_body``'s. A
    body the server has whole already (``connections.BODY_RECEIVED``) has no wait to time
    (a timer costs a tenth of a kept status read: docs/benchmarks.md, twelfth round)."""
    length = whole_number(declared or "", 20)
    if length is not None and length > limit:
        raise _too_large(limit)
    if scope.get(BODY_RECEIVED):
        return await _collect(receive, limit)
    try:
        async with asyncio.timeout(timeout_s):  # benchmarks: cheaper than a cancel scope
            return await _collect(receive, limit)
    except TimeoutError:
        raise BodyRefused(f"body: not received within {timeout_s:g} seconds") from None


async def _collect(receive: Receive, limit: int) -> bytes:
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _too_large(limit: int) -> BodyRefused:
    return BodyRefused(f"body: larger than the limit of {limit} bytes")
