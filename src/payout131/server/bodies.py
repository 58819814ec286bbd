"""Request bodies as they arrive: capped while they are read, and timed.

Every route that reads a body reads it here: the bytes are counted as they come and the
read stops at the cap (a declared ``Content-Length`` over it is refused before anything is
read), and a body that does not arrive in time is refused, so a slow or endless sender
neither fills memory nor holds a request open (README, "Configuration": ``PAYOUT131_BODY_TIMEOUT``).
"""

from __future__ import annotations

from typing import ClassVar

import anyio
from starlette.requests import Request

from payout131.errors import InvalidRequest
from payout131.protocol.validation import whole_number

__all__ = ["BodyRefused", "read_body"]


class BodyRefused(InvalidRequest):
    """A body too large or too slow: answered, and the connection closed after the answer
    (the rest of the body is not worth reading; ``server/connections.py`` closes it)."""

    headers: ClassVar[dict[str, str]] = {"connection": "close"}


async def read_body(request: Request, limit: int, timeout_s: float) -> bytes:
    """The request's body, or ``InvalidRequest`` if it is larger than ``limit`` bytes or
    takes longer than ``timeout_s`` to arrive."""
    declared = whole_number(request.headers.get("content-length") or "", 20)
    if declared is not None and declared > limit:
        raise _too_large(limit)
    chunks, size = [], 0
    with anyio.move_on_after(timeout_s) as waited:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise _too_large(limit)
            chunks.append(chunk)
    if waited.cancelled_caught:
        raise BodyRefused(f"body: not received within {timeout_s:g} seconds")
    return b"".join(chunks)


def _too_large(limit: int) -> BodyRefused:
    return BodyRefused(f"body: larger than the limit of {limit} bytes")
