"""The seam where money leaves the bank: a rail executes a confirmed payout.

A rail must be idempotent per payout id: after a crash the same payout may be handed to it
again, and it must answer with the first outcome rather than send the money twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

__all__ = ["Outcome", "Rail", "RailPayout"]


@dataclass(frozen=True, slots=True)
class RailPayout:
    payout_id: str
    amount: int
    currency: str
    bik: str
    account: str | None
    token: str | None
    full_name: str
    description: str


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of a payout; a failure carries a Bank 131 error code."""

    succeeded: bool
    error_code: str | None = None
    description: str | None = None


class Rail(Protocol):
    name: str

    def execute(self, payout: RailPayout) -> Outcome:
        """Send the payout (or return the outcome of an earlier send of the same payout)."""
        ...
