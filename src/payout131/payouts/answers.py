"""The partner's answer to a payout waiting for it: ``session/confirm`` and
``session/cancel``, for a group of calls at once.

Each call's session and payout are locked (sessions first, by number); a call is refused
when the session is not the caller's, its payout is not ``pending``, or the
``confirm_information`` it echoes names another recipient account. A confirm sends the
payout on to the rail (the worker's ``execute`` step, due at once); a cancel fails it
(``session_cancelled_by_partner``), releasing its hold; a ``created`` session without a
payout is simply cancelled. Two answers to one session in a group run one after the other.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.engine import Connection

from payout131.errors import ApiError, InvalidRequest, SessionWrongState
from payout131.ledger import accounts
from payout131.payouts import access, store
from payout131.payouts.calls import Answer, Answers, Context, PartnerCall, every
from payout131.payouts.outcomes import Failure, fail
from payout131.payouts.records import Listed, Payout, Session
from payout131.payouts.states import MOVES, Step
from payout131.payouts.store import PayoutChange
from payout131.protocol import wire
from payout131.protocol.cards import CardView
from payout131.protocol.payout_request import require_object
from payout131.protocol.requests import UNSET, AnswerBody
from payout131.storage import sql
from payout131.tokens import account_tokens

__all__ = ["cancel", "confirm"]

CONFIRM, CANCEL, CANCEL_CREATED = MOVES["confirm"], MOVES["cancel"], MOVES["cancel_created"]
_MOVES = {"confirm": CONFIRM, "cancel": CANCEL}


def _not_pending(session: Session, payout: Payout | None, action: str) -> SessionWrongState:
    """The refusal of a confirm or cancel whose session has no payout waiting for it."""
    state = "has no payout" if payout is None else f"has a payout {payout.status}"
    return SessionWrongState(
        f"session_id: ps_{session.n} is {session.status} and {state}; "
        f"{action} needs a payout waiting for confirmation (next_action: confirm)"
    )


def _check_confirm_information(
    conn: Connection, context: Context, body: AnswerBody, session: Session, payout: Payout
) -> None:
    """If the partner echoes ``confirm_information``, the account numbers in it must be the
    payout's: the recipient's (a phone and its bank; a card's masked number, BIN and last
    four digits), and for a ``/rko`` payout the settlement account it is paid from. The
    other fields (names, banks, INN, KPP) are shown for the partner to check and are not
    compared."""
    info = body.confirm_information
    if info is UNSET or info is None:
        return
    details = require_object("confirm_information", info).get("account_details")
    if not isinstance(details, dict):
        return
    recipient, sender = details.get("recipient"), details.get("sender")
    stored = wire.loads_field(payout.recipient)
    if isinstance(recipient, dict) and stored.get("card_token"):  # a card: as it was shown
        stored = {**stored, "masked_number": CardView.shown(stored).masked}
        _same(recipient, stored, ("masked_number", "bin", "last4"))
    elif isinstance(recipient, dict) and stored.get("phone"):  # Faster Payments: a phone
        _same(recipient, stored, ("phone", "bank_id"))
    elif isinstance(recipient, dict) and "account_number" in recipient:
        actual = account_tokens.payout_account(conn, context.vault, payout)
        if recipient["account_number"] != actual:
            raise _mismatch("recipient", "recipient account")
    if session.rko and isinstance(sender, dict) and "account_number" in sender:
        paid_from = accounts.codes(conn, [payout.account_id])[payout.account_id]
        if sender["account_number"] != paid_from:
            raise _mismatch("sender", "settlement account it is paid from")


def _same(echoed: dict[str, Any], stored: dict[str, Any], fields: tuple[str, ...]) -> None:
    """Each of ``fields`` the partner echoed is the payout's."""
    for field in fields:
        if field in echoed and echoed[field] != stored.get(field):
            raise InvalidRequest(
                f"confirm_information.account_details.recipient.{field}: does not match "
                f"the payout's {field}"
            )


def _mismatch(side: str, what: str) -> InvalidRequest:
    return InvalidRequest(
        f"confirm_information.account_details.{side}.account_number: does not match "
        f"the payout's {what}"
    )


def _answered(
    conn: Connection,
    context: Context,
    calls: Sequence[PartnerCall[AnswerBody]],
    action: str,
    answers: Answers,
) -> dict[int, tuple[Session, Payout | None]]:
    """Each answerable call's session and payout, locked, by call; the others refused."""
    found = access.owned_sessions(conn, calls, answers)
    for index, (session, payout) in list(found.items()):
        try:
            if not (action == "cancel" and CANCEL_CREATED.starts_session(session.status)):
                if payout is None or not _MOVES[action].starts_payout(payout.status):
                    raise _not_pending(session, payout, action)
                _check_confirm_information(conn, context, calls[index].body, session, payout)
        except ApiError as exc:
            answers[index] = exc
            del found[index]
    return found


def confirm(
    conn: Connection, context: Context, calls: Sequence[PartnerCall[AnswerBody]]
) -> list[Answer]:
    """``session/confirm``: the payouts go on to the rail."""
    answers: Answers = [None] * len(calls)
    found = _answered(conn, context, calls, "confirm", answers)
    if not found:
        return every(answers)
    now = calls[next(iter(found))].now
    payouts = [payout for _, payout in found.values() if payout is not None]
    changes = [PayoutChange(p.n, Step.EXECUTE, now) for p in payouts]
    payout_moves = store.move_payouts(CONFIRM, changes, now)
    session_moves = store.move_sessions(CONFIRM, [p.session_n for p in payouts], now)
    moved = sql.together(conn, [*payout_moves, *session_moves])  # benchmarks: one round trip
    changed = store.listed(
        store.moved(conn, CONFIRM, session_moves, moved[len(payout_moves) :]),
        store.moved(conn, CONFIRM, payout_moves, moved[: len(payout_moves)]),
    )
    by_session = {listed.session.n: listed for listed in changed}
    for index, (session, _) in found.items():
        answers[index] = by_session[session.n]
    return every(answers)


def cancel(
    conn: Connection, context: Context, calls: Sequence[PartnerCall[AnswerBody]]
) -> list[Answer]:
    """``session/cancel``: a waiting payout fails (``session_cancelled_by_partner``) and its
    hold is released; a ``created`` session is cancelled."""
    answers: Answers = [None] * len(calls)
    found = _answered(conn, context, calls, "cancel", answers)
    if not found:
        return every(answers)
    now = calls[next(iter(found))].now
    created = [s.n for s, _ in found.values() if CANCEL_CREATED.starts_session(s.status)]
    failures = [
        Failure(p, "session_cancelled_by_partner", "the partner cancelled the payout")
        for s, p in found.values()
        if p is not None and s.n not in created
    ]
    changed = fail(conn, context, CANCEL, failures, now)
    if created:
        statements = store.move_sessions(CANCEL_CREATED, created, now)
        found_rows = sql.together(conn, statements)
        for session in store.moved(conn, CANCEL_CREATED, statements, found_rows):
            changed[session.n] = Listed(session, ())
    for index, (session, _) in found.items():
        answers[index] = changed[session.n]
    return every(answers)
