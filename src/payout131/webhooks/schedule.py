"""When to try a webhook again: the retry schedule, its jitter, ``Retry-After`` and the horizon.

Pure functions over immutable values: no clock, no randomness of their own (the caller hands
in a uniform number in ``[0, 1)``), so every decision can be tested exactly.

The schedule lists the wait before each attempt: the first entry is the wait before the
first attempt (counted from the event's creation, normally 0), entry *k* the wait after the
*k*-th attempt failed. After the last entry's attempt fails, or when the next attempt would
fall after the horizon, the event is dead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

from payout131.protocol.validation import whole_number

__all__ = [
    "DEFAULT_SCHEDULE",
    "Schedule",
    "format_duration",
    "parse_duration",
    "parse_retry_after",
    "parse_schedule",
]

MICROS = 1_000_000

# immediately, then 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h: eight attempts over ~27.6 h
DEFAULT_SCHEDULE: tuple[float, ...] = (0, 5, 300, 1800, 7200, 18000, 36000, 36000)

_UNITS = {"": 1, "ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*(ms|s|m|h|d|)\s*$", re.ASCII)


def parse_duration(text: str) -> float:
    """Seconds in ``"90"``, ``"1.5s"``, ``"5m"``, ``"2h"`` or ``"1d"``; ValueError otherwise."""
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a duration like 30s, 5m, 2h or a number of seconds")
    return float(match.group(1)) * _UNITS[match.group(2)]


MAX_ATTEMPTS = 100
MAX_DELAY_S = 30 * 86400.0


def parse_schedule(text: str) -> tuple[float, ...]:
    """A comma-separated list of durations, e.g. ``"0,5s,5m,30m,2h,5h,10h,10h"``: 1 to
    ``MAX_ATTEMPTS`` attempts, each at most ``MAX_DELAY_S`` (30 days) after the one before."""
    delays = tuple(parse_duration(part) for part in text.split(","))
    if not 1 <= len(delays) <= MAX_ATTEMPTS:
        raise ValueError(f"the schedule has 1 to {MAX_ATTEMPTS} attempts, not {len(delays)}")
    longest = max(delays)
    if longest > MAX_DELAY_S:
        raise ValueError(f"{format_duration(longest)} is longer than 30 days between attempts")
    return delays


def format_duration(seconds: float) -> str:
    """The shortest exact spelling: ``0``, ``5s``, ``5m``, ``2h``, ``1.5s``."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    if seconds == int(seconds):
        return "0" if seconds == 0 else f"{int(seconds)}s"
    return f"{seconds:g}s"


def parse_retry_after(value: str | None, now: int) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP-date)."""
    if value is None:
        return None
    value = value.strip()
    seconds = whole_number(value, 10)
    if seconds is not None:
        return float(seconds)
    if not value.isascii():  # an HTTP-date is ASCII too
        return None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # an HTTP-date is always GMT
        return None
    return max(0.0, when.timestamp() - now / MICROS)


@dataclass(frozen=True, slots=True)
class Schedule:
    """The retry policy: ``delays`` (seconds), ``jitter`` (a fraction) and ``horizon`` (s)."""

    delays: tuple[float, ...] = DEFAULT_SCHEDULE
    jitter: float = 0.1
    horizon: float = 36 * 3600

    def __post_init__(self) -> None:
        if not self.delays or any(d < 0 for d in self.delays):
            raise ValueError("the schedule needs at least one attempt and no negative wait")
        if not 0 <= self.jitter < 1:
            raise ValueError("the jitter is a fraction in [0, 1)")
        if self.horizon <= 0:
            raise ValueError("the horizon must be positive")

    @property
    def attempts(self) -> int:
        return len(self.delays)

    @property
    def longest(self) -> float:
        return max(self.delays)

    def wait(self, failed: int, uniform: float, retry_after: float | None = None) -> float:
        """Seconds to wait after the ``failed``-th attempt failed (1-based), jitter applied.

        Jitter spreads the wait evenly over ``±jitter`` of it, so retries of many events that
        failed together do not arrive together. ``Retry-After`` (429/503) is honoured as a
        lower bound, capped at the longest wait of the schedule so a bogus value cannot use
        up the horizon.
        """
        base = self.delays[failed]
        delay = base * (1 + self.jitter * (2 * uniform - 1))
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.longest))
        return delay

    def next_attempt(
        self,
        failed: int,
        round_started: int,
        now: int,
        uniform: float,
        retry_after: float | None = None,
    ) -> int | None:
        """When to try again (microseconds) after ``failed`` attempts, or None: dead.

        ``round_started`` is when the event was created or last replayed; the horizon is
        measured from it.
        """
        if failed >= self.attempts:
            return None
        due = now + round(self.wait(failed, uniform, retry_after) * MICROS)
        if due > round_started + round(self.horizon * MICROS):
            return None
        return due
