"""``bank.sandbox``: a payout131 sandbox's own calls (docs/sandbox.md), not the bank's.

A project bound to a test clock moves its clock and forces the simulator's outcomes of its
own payouts, signed like every call::

    with Client() as bank:
        session = bank.init_payout(...)
        bank.sandbox.advance(days=3)            # every step due in those 3 days runs
        bank.sandbox.succeed("po_12")           # a payout waiting at the rail succeeds now

Bank 131 itself has none of these paths: they answer ``not found`` there.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, TypeVar

import anyio
import msgspec

from payout131.client._http import MethodCall, operation
from payout131.client.config import Settings
from payout131.client.types import Model, read

__all__ = ["AsyncSandbox", "Forced", "PendingStep", "Sandbox", "TestClock"]

T = TypeVar("T")
POLL_S = 0.2  # how often ``advance`` looks at a clock still advancing
WAIT_S = 600.0  # and for how long at most


class PendingStep(Model, frozen=True):
    """Something due on a clock: a payout's next step or a webhook's next attempt."""

    at: str
    kind: str  # "payout" or "webhook"
    what: str
    session_id: str
    payout_id: str | None = None
    event_id: str | None = None


class TestClock(Model, frozen=True):
    """A test clock: its time, whether it is moving, and what is due on it next."""

    __test__ = False  # not a pytest class, whatever its name

    id: str
    name: str
    frozen_time: str
    status: str  # ready, advancing, failed
    projects: list[str] = msgspec.field(default_factory=list)
    pending: list[PendingStep] = msgspec.field(default_factory=list)
    advancing_to: str | None = None
    failure: str | None = None


class Forced(Model, frozen=True):
    """An outcome forced on a payout at the simulator rail."""

    payout_id: str
    outcome: str
    error_code: str | None = None


def _clock(body: dict[str, Any]) -> TestClock:
    clock = read(body["test_clock"], TestClock)
    clock.__dict__["_answer"] = body  # the envelope, for ``Model.answer``
    return clock


def _forced(body: dict[str, Any]) -> Forced:
    forced = read(body["forced"], Forced)
    forced.__dict__["_answer"] = body
    return forced


def _duration(days: float, hours: float, minutes: float, seconds: float) -> str | None:
    if min(days, hours, minutes, seconds) < 0:
        raise ValueError("advance: a clock only moves forward; give positive durations")
    total = round(((days * 24 + hours) * 60 + minutes) * 60 + seconds)
    return f"{total}s" if total else None


def _to(moment: datetime | str) -> str:
    if isinstance(moment, str):
        return moment
    if moment.tzinfo is None:
        raise ValueError("to: a datetime with its time zone (e.g. tzinfo=UTC)")
    return moment.isoformat()


class _Calls:
    """The sandbox's calls, written once for the blocking and the async client."""

    settings: Settings

    @operation
    def clock(self) -> MethodCall[TestClock]:
        """The project's test clock and what is due on it next."""
        return MethodCall("/api/sandbox/clock", {}, _clock)

    @operation
    def advance_call(
        self,
        *,
        by: str | None = None,
        to: datetime | str | None = None,
        next_step: bool = False,
        wait: bool = True,
    ) -> MethodCall[TestClock]:
        """One ``clock/advance`` call (``advance`` repeats ``clock`` until it is done)."""
        body: dict[str, Any] = {"wait": wait}
        if by is not None:
            body["by"] = by
        if to is not None:
            body["to"] = _to(to)
        if next_step:
            body["next"] = True
        return MethodCall("/api/sandbox/clock/advance", body, _clock, retry=False)

    @operation
    def succeed(self, payout_id: str) -> MethodCall[Forced]:
        """A payout waiting at the simulator rail succeeds now."""
        body = {"payout_id": payout_id}
        return MethodCall("/api/sandbox/payout/succeed", body, _forced, retry=False)

    @operation
    def fail(self, payout_id: str, error_code: str | None = None) -> MethodCall[Forced]:
        """A payout waiting at the simulator rail fails now, with ``error_code`` (default
        ``operation_rejected``)."""
        body: dict[str, Any] = {"payout_id": payout_id}
        if error_code is not None:
            body["error_code"] = error_code
        return MethodCall("/api/sandbox/payout/fail", body, _forced, retry=False)

    @operation
    def return_payout(self, payout_id: str) -> MethodCall[Forced]:
        """A paid payout (or one at the rail) comes back now: ``payment_refunded``."""
        body = {"payout_id": payout_id}
        return MethodCall("/api/sandbox/payout/return", body, _forced, retry=False)


def _advance_body(
    days: float,
    hours: float,
    minutes: float,
    seconds: float,
    by: str | None,
    to: Any,
    next_step: bool,
) -> dict[str, Any]:
    parts = _duration(days, hours, minutes, seconds)
    if sum(1 for given in (parts, by, to, next_step) if given) != 1:
        raise ValueError(
            "advance: give a duration (days=, hours=, minutes=, seconds= or by='90m'), "
            "to= or next_step=True"
        )
    return {"by": by or parts, "to": to, "next_step": next_step}


class Sandbox(_Calls):
    """``Client.sandbox``: the sandbox's calls, blocking."""

    def __init__(self, send: Callable[[MethodCall[Any]], Any], settings: Settings) -> None:
        self._sender, self.settings = send, settings

    def _send(self, call: MethodCall[T]) -> T:
        result: T = self._sender(call)
        return result

    def advance(
        self,
        *,
        days: float = 0,
        hours: float = 0,
        minutes: float = 0,
        seconds: float = 0,
        by: str | None = None,
        to: datetime | str | None = None,
        next_step: bool = False,
        wait_s: float = WAIT_S,
    ) -> TestClock:
        """Move the project's clock forward (by a duration, ``by="1h30m"``, ``to=`` a time,
        or to the next due step) and return it once every step due on the way has run
        (``status`` ``ready``), or it has ``failed`` (``failure`` says why); still
        ``advancing`` if that takes longer than ``wait_s`` seconds."""
        body = _advance_body(days, hours, minutes, seconds, by, to, next_step)
        deadline = time.monotonic() + wait_s
        clock = self.advance_call(**body)
        while clock.status == "advancing" and time.monotonic() < deadline:
            time.sleep(POLL_S)
            clock = self.clock()
        return clock


class AsyncSandbox(_Calls):
    """``AsyncClient.sandbox``: the sandbox's calls, awaitable."""

    def __init__(
        self, send: Callable[[MethodCall[Any]], Awaitable[Any]], settings: Settings
    ) -> None:
        self._sender, self.settings = send, settings

    async def _send(self, call: MethodCall[T]) -> T:
        result: T = await self._sender(call)
        return result

    async def advance(
        self,
        *,
        days: float = 0,
        hours: float = 0,
        minutes: float = 0,
        seconds: float = 0,
        by: str | None = None,
        to: datetime | str | None = None,
        next_step: bool = False,
        wait_s: float = WAIT_S,
    ) -> TestClock:
        """``Sandbox.advance``, awaitable."""
        body = _advance_body(days, hours, minutes, seconds, by, to, next_step)
        deadline = time.monotonic() + wait_s
        clock = await self.advance_call(**body)
        while clock.status == "advancing" and time.monotonic() < deadline:
            await anyio.sleep(POLL_S)
            clock = await self.clock()
        return clock
