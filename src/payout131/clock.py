"""Time, injectable: the server reads the clock through this, so tests can move it."""

from __future__ import annotations

import time
from datetime import UTC, datetime

__all__ = ["Clock", "ManualClock", "SystemClock", "from_micros", "rfc3339", "rfc3339_seconds"]


class Clock:
    """Microseconds since the Unix epoch, UTC."""

    def now(self) -> int:
        raise NotImplementedError


class SystemClock(Clock):
    def now(self) -> int:
        return time.time_ns() // 1000


class ManualClock(Clock):
    """A clock that only moves when told to: for tests of delays, retries and timeouts."""

    def __init__(self, start: int = 1_767_225_600_000_000) -> None:
        self.micros = start

    def now(self) -> int:
        return self.micros

    def advance(self, seconds: float) -> None:
        self.micros += round(seconds * 1_000_000)


def from_micros(micros: int) -> datetime:
    return datetime.fromtimestamp(micros / 1_000_000, tz=UTC)


def rfc3339(micros: int) -> str:
    """``2025-02-20T08:42:35.905869Z``: six fraction digits and ``Z``, as Bank 131 writes."""
    seconds, fraction = divmod(micros, 1_000_000)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    return f"{stamp}.{fraction:06d}Z"


def rfc3339_seconds(micros: int) -> str:
    """``2025-02-20T08:42:35Z``: to the second, for people (the CLI's tables and lines)."""
    return rfc3339(micros)[:19] + "Z"
