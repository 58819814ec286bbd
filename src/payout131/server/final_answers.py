"""The answers of sessions that can never change again, kept by this process for a while.

A partner reads most sessions after they ended: it polls until the outcome, and looks
again later. When ``payouts/reads.final`` says a session read for ``session/status`` can
never change (it ended, and no step of its payout is left), its rendered answer is kept,
with its owner, per session and API version; reading it again within ``KEPT_FOR_S`` costs
the signature check and no database. The owner is checked as the read checks it, so
another project's call is refused alike.

Each server process keeps its own answers. Nothing the server does changes a final
session, whichever process does it; the one way back is an operator's tool: a return
forced on a paid payout (``sandbox/forcing.py``), which a server in sandbox mode allows
for, and which a ``payout131 simulate`` run with another ``PAYOUT131_MODE`` than the
server's could still make. So an answer is kept for ``KEPT_FOR_S`` seconds at most, and
only a small one (``LARGEST`` bytes: a partner's metadata can make an answer far larger),
``KEPT_BYTES`` in all; the oldest go first.

Each answer's time is drawn between half of ``KEPT_FOR_S`` and all of it: answers kept
together (a partner polling a batch of payouts, or a restart) would otherwise run out
together, and every read of them would go to the database at once (measured: a p99 of
100-460 ms instead of 4 ms for status reads in the bench, docs/benchmarks.md). The time
is minutes, not seconds: a read that goes to the database costs seven times a kept one and
waits longer under load (with 30 s, one status read in 70 went there in the bench, and the
p99 was theirs in some runs), while the one thing the time guards against, a return forced
from a shell in another mode than the server's, is an operator's mistake (docs/sandbox.md).
"""

from __future__ import annotations

import random
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from payout131.payouts import reads
from payout131.payouts.records import Listed

__all__ = ["KEPT_BYTES", "KEPT_FOR_S", "LARGEST", "FinalAnswers"]

KEPT_FOR_S = 300.0
LARGEST = 8 * 1024  # bytes of one answer; an ordinary one is about 1 KB
KEPT_BYTES = 32 * 1024 * 1024


class FinalAnswers:
    """Rendered ``session/status`` answers of final sessions, by session and API version."""

    def __init__(
        self,
        returns_forced: bool,
        kept_bytes: int = KEPT_BYTES,
        kept_for_s: float = KEPT_FOR_S,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.returns_forced = returns_forced
        self.kept_bytes, self.kept_for_s = kept_bytes, kept_for_s
        self._monotonic = monotonic
        self._answers: OrderedDict[tuple[int, str], tuple[float, str, bytes]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()  # SQLite's reads keep answers from worker threads

    def __len__(self) -> int:
        return len(self._answers)

    def get(self, n: int, version: str) -> tuple[str, bytes] | None:
        """Session ``n``'s kept answer in API ``version``, with its owner; None if none
        (or kept too long ago: then it is read again)."""
        found = self._answers.get((n, version))
        if found is None or self._monotonic() >= found[0]:
            return None
        return found[1], found[2]

    def keep(self, found: Listed, version: str, answer: bytes) -> None:
        """Keep ``answer`` (``found`` rendered in ``version``) if the session is final."""
        if len(answer) > LARGEST or not reads.final(found, self.returns_forced):
            return
        key = (found.session.n, version)
        with self._lock:
            old = self._answers.pop(key, None)
            if old is not None:
                self._bytes -= len(old[2])
            spread = random.random()  # noqa: S311 (spreads expiry; nothing secret)
            until = self._monotonic() + self.kept_for_s * (1 + spread) / 2
            self._answers[key] = (until, found.session.project_id, answer)
            self._bytes += len(answer)
            while self._bytes > self.kept_bytes:
                _, (_, _, dropped) = self._answers.popitem(last=False)
                self._bytes -= len(dropped)
