"""A rail that settles every payout at once: the simplest real rail, for tests and demos."""

from __future__ import annotations

import threading

from payout131.rails.base import Outcome, RailPayout

__all__ = ["InstantRail"]


class InstantRail:
    name = "instant"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.executed: dict[str, int] = {}

    def execute(self, payout: RailPayout) -> Outcome:
        with self._lock:
            self.executed[payout.payout_id] = self.executed.get(payout.payout_id, 0) + 1
        return Outcome(succeeded=True)
