"""How an HTTP/1.1 answer frames its body, read from its header lines.

Two raw HTTP/1.1 clients live here, the webhook sender (``webhooks/plain_sender.py``) and
the benchmark's load generator (``bench/connections.py``); both need the same four facts
from an answer's headers before they read its body.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from payout131.protocol.validation import whole_number

__all__ = ["Framing", "framing"]


@dataclass(frozen=True, slots=True)
class Framing:
    length: int | None  # Content-Length, if given
    chunked: bool  # Transfer-Encoding: chunked
    close: bool  # Connection: close (the connection is not to be reused)
    retry_after: str | None  # Retry-After, as sent


def framing(lines: Iterable[bytes]) -> Framing:
    """The framing the header ``lines`` (without their CRLF) declare."""
    length: int | None = None
    chunked = close = False
    retry_after = None
    for raw in lines:
        name, _, value = raw.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = whole_number(value.strip().decode("latin-1"))
            if length is None:  # "-5", "1_0", "+3": a framing no sender can trust
                raise ValueError(f"Content-Length {value.strip()[:40]!r} is not a length")
        elif name == b"transfer-encoding":
            chunked = b"chunked" in value.lower()
        elif name == b"connection" and b"close" in value.lower():
            close = True
        elif name == b"retry-after":
            retry_after = value.strip().decode("latin-1")
    return Framing(length, chunked, close, retry_after)
