"""A rail that settles every payout at once, remembering it in memory: for demos.

Its memory ends with the process, so after a restart it answers ``unknown`` for earlier
references; use the simulator (which keeps its record in the database) where restarts
matter.
"""

from __future__ import annotations

import threading

from payout131.rails.base import UNKNOWN, Order, Status

__all__ = ["InstantRail"]


class InstantRail:
    name = "instant"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.submitted: dict[str, int] = {}

    def submit(self, order: Order) -> Status:
        with self._lock:
            self.submitted[order.reference] = self.submitted.get(order.reference, 0) + 1
        return Status("succeeded")

    def poll(self, reference: str) -> Status:
        with self._lock:
            known = reference in self.submitted
        return Status("succeeded") if known else UNKNOWN
