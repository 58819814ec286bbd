"""Counters of what this process committed to payouts, exposed at ``/metrics``.

``payout131_payout_changes_total{move, status, error}`` counts each payout state change
once its transaction commits (``storage/after_commit.py``): ``move`` is ``created`` for a
new payout, else the move that made the change (``check``, ``confirm``, ``succeed``,
``fail``, ``time_out``, ``refund``, ``payouts/states.py``); ``error`` its code, or empty.
The rail's outcomes are its ``succeed`` and ``fail`` moves. Counters are per process, as
Prometheus expects: ``rate()`` and ``sum`` over the processes give the bank's.
"""

from __future__ import annotations

from prometheus_client import Counter

__all__ = ["CHANGES"]

CHANGES = Counter(
    "payout131_payout_changes",
    "Payout state changes committed, by move, the status reached and its error code.",
    ["move", "status", "error"],
    registry=None,
)
