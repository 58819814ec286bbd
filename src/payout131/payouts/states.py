"""The payout state machine, as data: every status and every move between them.

    session  created ──start──▶ in_progress ──succeed──▶ accepted
               │                  │  └──fail, cancel, time_out──▶ cancelled
               └──cancel_created──▶ cancelled
                                  └──trouble──▶ error ──succeed──▶ accepted
                                                  └───fail──▶ cancelled
    payout   (new) ──init, start──▶ in_progress ──check──▶ pending ──confirm──▶ in_progress
             in_progress ──succeed──▶ succeeded ──refund, watch──▶ succeeded
             in_progress ──fail──▶ failed   pending ──cancel, time_out──▶ failed
             in_progress ──poll──▶ in_progress

``error`` is not final: the rail hit a trouble it is still working out, and the session
ends ``accepted`` or ``cancelled`` with its payout. A succeeded payout the recipient's bank
sends back stays ``succeeded`` and gains a refund. Single-request projects skip
``pending``: ``init`` queues ``execute`` at once. ``MOVES`` is the whole table (the test of
docs/architecture.md holds it against the docs).

Every write of a status takes its target and its allowed sources from a ``Move``:
``payouts/store.py`` puts them into the statement as parameters, matches only rows where
the move starts and refuses a move whose rows were elsewhere, so no status is spelled in
SQL and no path can make a move this table does not list. A payout's next background step
(``payouts.work``, a ``Step``) is written with the move.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = ["MOVES", "Move", "PayoutStatus", "SessionStatus", "Step"]


class SessionStatus(StrEnum):
    CREATED = "created"
    IN_PROGRESS = "in_progress"
    ACCEPTED = "accepted"
    CANCELLED = "cancelled"
    ERROR = "error"


class PayoutStatus(StrEnum):
    IN_PROGRESS = "in_progress"
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


FINAL = frozenset({PayoutStatus.SUCCEEDED, PayoutStatus.FAILED})


class Step(StrEnum):
    """A payout's next background step, run by the worker when due (``payouts.work``)."""

    CHECK = "check"  # two-step: checks passed, tell the partner (ready_to_confirm)
    EXECUTE = "execute"  # send it to the rail
    POLL = "poll"  # ask the rail until the outcome is known
    WATCH = "watch"  # paid; the rail may still report it returned
    EXPIRE = "expire"  # the partner's time to confirm runs out


@dataclass(frozen=True, slots=True)
class Side:
    """What a move does to one row: the statuses it starts from (none: the row is new) and
    the status it ends in."""

    sources: frozenset[str]
    target: str

    @property
    def starts(self) -> list[str]:
        return sorted(self.sources)


@dataclass(frozen=True, slots=True)
class Move:
    """One allowed change; ``session``/``payout`` is None where the move leaves that row."""

    name: str
    session: Side | None
    payout: Side | None

    @property
    def session_to(self) -> str:
        assert self.session is not None, f"{self.name} moves no session"
        return self.session.target

    @property
    def payout_to(self) -> str:
        assert self.payout is not None, f"{self.name} moves no payout"
        return self.payout.target

    def starts_session(self, status: str) -> bool:
        """Whether a session in ``status`` may make this move."""
        return self.session is not None and status in self.session.sources

    def starts_payout(self, status: str) -> bool:
        """Whether a payout in ``status`` may make this move."""
        return self.payout is not None and status in self.payout.sources

    @property
    def finishes(self) -> bool:
        """The payout ends here (it gets its ``finished_at``)."""
        return (
            self.payout is not None
            and self.payout.target in FINAL
            and not (self.payout.sources & FINAL)
        )

    @property
    def reschedules(self) -> bool:
        """Only the payout's next step changes: no status, no time of change."""
        return self.session is None


def _side(sources: tuple[str, ...], target: str) -> Side:
    return Side(frozenset(sources), target)


S, P = SessionStatus, PayoutStatus
NEW: tuple[str, ...] = ()
MOVES: dict[str, Move] = {
    move.name: move
    for move in (
        Move("create", _side(NEW, S.CREATED), None),
        Move("init", _side(NEW, S.IN_PROGRESS), _side(NEW, P.IN_PROGRESS)),
        Move("start", _side((S.CREATED,), S.IN_PROGRESS), _side(NEW, P.IN_PROGRESS)),
        Move("check", _side((S.IN_PROGRESS,), S.IN_PROGRESS), _side((P.IN_PROGRESS,), P.PENDING)),
        Move("confirm", _side((S.IN_PROGRESS,), S.IN_PROGRESS), _side((P.PENDING,), P.IN_PROGRESS)),
        Move("cancel_created", _side((S.CREATED,), S.CANCELLED), None),
        Move("cancel", _side((S.IN_PROGRESS,), S.CANCELLED), _side((P.PENDING,), P.FAILED)),
        Move("time_out", _side((S.IN_PROGRESS,), S.CANCELLED), _side((P.PENDING,), P.FAILED)),
        Move(
            "fail", _side((S.IN_PROGRESS, S.ERROR), S.CANCELLED), _side((P.IN_PROGRESS,), P.FAILED)
        ),
        Move(
            "succeed",
            _side((S.IN_PROGRESS, S.ERROR), S.ACCEPTED),
            _side((P.IN_PROGRESS,), P.SUCCEEDED),
        ),
        Move("trouble", _side((S.IN_PROGRESS,), S.ERROR), None),
        Move("poll", None, _side((P.IN_PROGRESS,), P.IN_PROGRESS)),
        Move("watch", None, _side((P.SUCCEEDED,), P.SUCCEEDED)),
        Move("refund", _side((S.ACCEPTED,), S.ACCEPTED), _side((P.SUCCEEDED,), P.SUCCEEDED)),
    )
}
