"""The answers of sessions that can never change again, kept by this process.

A partner reads most sessions after they ended: it polls until the outcome, and looks
again later. When ``payouts/reads.final`` says a session read for ``session/status`` can
never change (it ended, and no step of its payout is left), its rendered answer is kept,
with its owner, per session and API version; reading it again costs the signature check
and no database. The owner is checked as the read checks it, so another project's call is
refused alike. Each server process keeps its own answers; since nothing changes such a
session, no process can hold a stale one, whichever process wrote it. The oldest answers
go first past ``KEPT`` (about 1 KB each).
"""

from __future__ import annotations

import threading

from payout131.payouts import reads
from payout131.payouts.records import Listed

__all__ = ["KEPT", "FinalAnswers"]

KEPT = 16_384


class FinalAnswers:
    """Rendered ``session/status`` answers of final sessions, by session and API version."""

    def __init__(self, returns_forced: bool, kept: int = KEPT) -> None:
        self.returns_forced, self.kept = returns_forced, kept
        self._answers: dict[tuple[int, str], tuple[str, bytes]] = {}
        self._lock = threading.Lock()  # SQLite's reads keep answers from worker threads

    def __len__(self) -> int:
        return len(self._answers)

    def get(self, n: int, version: str) -> tuple[str, bytes] | None:
        """Session ``n``'s kept answer in API ``version``, with its owner; None if none."""
        return self._answers.get((n, version))

    def keep(self, found: Listed, version: str, answer: bytes) -> None:
        """Keep ``answer`` (``found`` rendered in ``version``) if the session is final."""
        if not reads.final(found, self.returns_forced):
            return
        with self._lock:
            self._answers[found.session.n, version] = (found.session.project_id, answer)
            while len(self._answers) > self.kept:
                del self._answers[next(iter(self._answers))]
