"""A rail that settles every payout at once, remembering it in memory: for demos.

Its memory ends with the process, so after a restart it answers ``unknown`` for earlier
references; use the simulator (which keeps its record in the database) where restarts
matter.
"""

from __future__ import annotations

import threading

from payout131.rails import scenarios
from payout131.rails.base import UNKNOWN, Order, Status

__all__ = ["InstantRail"]


class InstantRail:
    name = "instant"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.submitted: dict[str, int] = {}
        self._kinds: dict[str, str | None] = {}  # what each reference pays to

    def submit(self, order: Order) -> Status:
        with self._lock:
            self.submitted[order.reference] = self.submitted.get(order.reference, 0) + 1
            self._kinds[order.reference] = scenarios.kind_of(order)
        return self._paid(order.reference)

    def poll(self, reference: str) -> Status:
        with self._lock:
            known = reference in self.submitted
        return self._paid(reference) if known else UNKNOWN

    def _paid(self, reference: str) -> Status:
        """Paid, with what a card payout or a verification tells (as the simulator does)."""
        return scenarios.outcome(self._kinds.get(reference), reference, Status("succeeded"))
