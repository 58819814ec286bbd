"""The simulator's magic values: which amounts play which outcome, and when.

The last two digits of the amount in kopecks choose the scenario; every other amount
succeeds. Magic amounts are ordinary amounts, so a payout that plays an outcome passes the
same validation as any other. The table is data: the simulator, ``payout131 simulate
outcomes`` and ``docs/rails.md`` are all made from it.

A scenario's clock starts when the transfer settles at the rail (submission time plus the
simulator's base latency and spread): ``delay_s`` later the outcome is reached, but first
the session shows ``error`` for ``error_s`` seconds if that is set; a returned payout comes
back ``return_after_s`` after it succeeded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from payout131.rails.base import Status

__all__ = ["SCENARIOS", "Scenario", "by_amount", "by_name", "markdown_table", "rows"]

MINUTE, HOUR, DAY = 60, 3600, 86400
_MICROS = 1_000_000

# The error a session shows while the error scenario is being worked out.
TROUBLE = ("provider_timeout", "the recipient's bank has not answered yet; the bank keeps trying")


@dataclass(frozen=True, slots=True)
class Scenario:
    kopecks: str | None  # the amount's last two digits; None for every other amount
    name: str
    summary: str
    error_code: str | None = None
    description: str | None = None
    delay_s: int = 0
    error_s: int = 0
    return_after_s: int | None = None

    @property
    def status(self) -> str:
        return "failed" if self.error_code else "succeeded"

    @property
    def session_status(self) -> str:
        return "cancelled" if self.error_code else "accepted"

    @property
    def example_amount(self) -> int:
        return 10_000 + int(self.kopecks or "0")

    def status_at(self, settles_at: int, now: int) -> Status:
        """Where a transfer that settles at ``settles_at`` stands at ``now`` (microseconds)."""
        troubled_at = settles_at + self.delay_s * _MICROS
        outcome_at = troubled_at + self.error_s * _MICROS
        if now < troubled_at:
            return Status("pending", next_check_at=troubled_at)
        if now < outcome_at:
            code, description = TROUBLE
            return Status("pending", code, description, next_check_at=outcome_at)
        if self.error_code:
            return Status("failed", self.error_code, self.description)
        if self.return_after_s is None:
            return Status("succeeded")
        returns_at = outcome_at + self.return_after_s * _MICROS
        if now < returns_at:
            return Status("succeeded", next_check_at=returns_at)
        return Status("returned", description="the recipient's bank sent the payout back")

    def as_row(self) -> dict[str, Any]:
        return {
            "outcome": self.name,
            "amount_ends_with": self.kopecks,
            "amount": self.example_amount,
            "status": self.status,
            "session_status": self.session_status,
            "error_code": self.error_code,
            "refunded": self.return_after_s is not None,
            "delay_s": self.delay_s,
            "error_s": self.error_s,
            "refund_after_s": self.return_after_s,
            "summary": self.summary,
        }


def _failure(kopecks: str, code: str, description: str) -> Scenario:
    return Scenario(kopecks, code, f"fails with `{code}`", error_code=code, description=description)


ORDINARY = Scenario(None, "success", "succeeds after the base latency")

SCENARIOS: tuple[Scenario, ...] = (
    ORDINARY,
    Scenario("11", "slow_success", "succeeds one hour after the base latency", delay_s=HOUR),
    Scenario(
        "21",
        "error_then_success",
        "the session shows `error` for 30 minutes (payout still `in_progress`), then succeeds",
        error_s=30 * MINUTE,
    ),
    Scenario(
        "31",
        "returned",
        "succeeds, then comes back 3 days later: `payment_refunded`, money credited back",
        return_after_s=3 * DAY,
    ),
    _failure("01", "account_not_found", "the recipient's bank has no such account"),
    _failure("02", "operation_rejected", "the recipient's bank rejected the transfer"),
    _failure("03", "provider_internal_error", "the settlement provider failed internally"),
    _failure("04", "provider_timeout", "the settlement provider did not answer in time"),
    _failure(
        "05",
        "provider_exceeds_amount_limit",
        "the amount exceeds the settlement provider's limit for one transfer",
    ),
)

_BY_KOPECKS = {s.kopecks: s for s in SCENARIOS if s.kopecks is not None}


def by_amount(amount: int) -> Scenario:
    return _BY_KOPECKS.get(f"{amount % 100:02d}", ORDINARY)


def by_name(name: str) -> Scenario:
    return next((s for s in SCENARIOS if s.name == name), ORDINARY)


def rows() -> list[dict[str, Any]]:
    """The table as plain objects (``payout131 simulate outcomes --json``)."""
    return [s.as_row() for s in SCENARIOS]


def _duration(seconds: int | None) -> str:
    if not seconds:
        return "—"
    for unit, size in (("d", DAY), ("h", HOUR), ("min", MINUTE)):
        if seconds % size == 0:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"


def markdown_table() -> str:
    """The table as Markdown, exactly as ``docs/rails.md`` shows it."""
    lines = [
        "| amount ends in | e.g. send | outcome | payout | session | error code | refunded |",
        "|---|---|---|---|---|---|---|",
    ]
    for s in SCENARIOS:
        ends = f"`{s.kopecks}`" if s.kopecks else "anything else"
        code = f"`{s.error_code}`" if s.error_code else "—"
        refunded = f"yes, after {_duration(s.return_after_s)}" if s.return_after_s else "no"
        lines.append(
            f"| {ends} | `{s.example_amount}` | {s.summary} | `{s.status}` "
            f"| `{s.session_status}` | {code} | {refunded} |"
        )
    return "\n".join(lines) + "\n"
