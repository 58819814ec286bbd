"""When to try a request again, and how long to wait first.

Retried: connection errors, timeouts and answers with a 5xx status. Nothing else: a 4xx
answer is the bank's decision and repeating the request would not change it. Between
attempts the client sleeps for a "full jitter" backoff: a uniformly random time between
zero and ``min(cap, base * 2**retry)`` seconds, so clients that failed together do not
retry together. A mutating call keeps its idempotency key on every attempt.
"""

from __future__ import annotations

import random as _random
from collections.abc import Callable
from dataclasses import dataclass

import httpx

__all__ = ["RETRYABLE_ERRORS", "Backoff", "retryable_status"]

RETRYABLE_ERRORS: tuple[type[httpx.TransportError], ...] = (
    httpx.TimeoutException,
    httpx.NetworkError,
    httpx.RemoteProtocolError,
)
"""Transport failures worth another attempt; others (a bad URL scheme, a proxy refusing us)
would fail the same way again."""


@dataclass(frozen=True)
class Backoff:
    """Capped exponential backoff with full jitter; ``random`` is injectable for tests."""

    base: float = 0.5
    cap: float = 8.0
    random: Callable[[], float] = _random.random

    def delay(self, retry: int) -> float:
        """Seconds to sleep before retry number ``retry`` (0 for the first retry)."""
        return self.random() * min(self.cap, self.base * 2.0**retry)


def retryable_status(status_code: int) -> bool:
    return status_code >= 500
