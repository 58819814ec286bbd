"""Opening sessions and payouts: ``session/create``, ``session/start/payout`` and
``session/init/payout`` (each with ``/rko``), for a group of calls at once.

A payout starts in four steps, for every call of the group together:

1. its fields are checked (``payout_request``): the session's draft with the call's own;
2. its paying account is found (the project's wallet, or for ``/rko`` the settlement
   account named in ``participant_details.sender.account``, which must be the project's);
3. the sessions (init) are numbered and written, or moved to ``in_progress`` (start), and
   the payouts written with their first background step (``check``, or ``execute`` for a
   single-request project);
4. the ledger places each payout's hold (amount plus fee). The database refuses a hold its
   account cannot cover: then the group is undone and each call runs again alone, so the
   call that does not fit is refused with ``insufficient_wallet_balance`` and writes
   nothing, while the others go through.

A call refused at steps 1 or 2 writes nothing and does not hold up the others.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import msgspec
from sqlalchemy.engine import Connection

from payout131.errors import ApiError, InsufficientBalance, InvalidRequest, SessionWrongState
from payout131.ledger import accounts, book
from payout131.ledger.accounts import BANK_BIK, Account
from payout131.payouts import access, fees, store
from payout131.payouts.calls import Answer, Answers, Context, PartnerCall, every
from payout131.payouts.records import VERIFICATION, Listed, Payout, Session
from payout131.payouts.states import MOVES, Step
from payout131.protocol import validation, wire
from payout131.protocol.payout_request import (
    PayoutRequest,
    card_given,
    destination_field,
    parse_payout,
    parse_verification,
    require_object,
)
from payout131.protocol.requests import UNSET, Draft, StartBody
from payout131.protocol.validation import MAX_KOPECKS
from payout131.storage import numbers, sql
from payout131.tokens import account_tokens, card_tokens

__all__ = ["create", "init", "insufficient", "start", "verify"]

SENDER = "participant_details.sender.account"
CREATE, INIT, START = MOVES["create"], MOVES["init"], MOVES["start"]


def _json(value: object) -> str:
    return wire.dumps(value).decode()


def _session(call: PartnerCall[Draft], n: int, status: str, draft: str) -> Session:
    """The ``sessions`` row a call opens, its draft the call's payout fields (``draft``,
    as ``_draft`` keeps them)."""
    body = call.body
    return Session(
        n=n,
        project_id=call.project.id,
        api_version=call.version,
        rko=call.rko,
        status=status,
        submerchant=call.submerchant,
        metadata=_json(body.metadata) if body.metadata is not UNSET else None,
        draft=draft,
        error_code=None,
        error_description=None,
        created_at=call.now,
        updated_at=call.now,
    )


def _check_draft(body: Draft) -> None:
    """At create every field is optional, but a field that is given must be right."""
    if body.amount_details is not UNSET:
        require_object("amount_details", body.amount_details)
    for name in ("participant_details", "payment_method", "payout_details"):
        value = getattr(body, name)
        if value is not UNSET and value is not None:
            require_object(name, value)


_SPELLINGS = ("payment_method", "payout_details")


def _draft(
    conn: Connection, context: Context, call: PartnerCall[Draft], token: str | None = None
) -> str:
    """The call's payout fields as its session keeps them: one destination spelling, the
    one a payout reads (either spelling replaces both at start), every card field in it
    checked, and a card number sealed under a card token that the draft names instead
    (``token``: the one it was sealed under already), so no draft holds a number."""
    given = call.body.given()
    name = destination_field(given, call.version)
    for other in _SPELLINGS:
        if other != name:
            given.pop(other, None)
    method = given.get(name)
    if isinstance(method, dict) and method.get("type") == "card":
        number = card_given(name, method).number
        if number is not None:
            if token is None:
                project = call.project.id
                token = card_tokens.tokenize(conn, context.vault, project, number, call.now).token
            given[name] = card_tokens.sealed_destination(token)
    return _json(given)


def create(conn: Connection, context: Context, calls: Sequence[PartnerCall[Draft]]) -> list[Answer]:
    """``session/create[/rko]``: sessions ``created``, their payout fields kept for start."""
    answers: Answers = [None] * len(calls)
    accepted: list[tuple[int, str]] = []
    for index, call in enumerate(calls):
        try:
            _check_draft(call.body)
            accepted.append((index, _draft(conn, context, call)))  # checked, then sealed
        except ApiError as exc:
            answers[index] = exc
    drawn = numbers.draw(conn, {"sessions": len(accepted)})["sessions"]
    made = [
        _session(calls[i], n, CREATE.session_to, draft)
        for (i, draft), n in zip(accepted, drawn, strict=True)
    ]
    store.insert_sessions(conn, made)
    for (index, _), session in zip(accepted, made, strict=True):
        answers[index] = Listed(session, ())
    return every(answers)


@dataclass(slots=True)
class _Opening:
    """One call's payout as it is being opened."""

    index: int
    call: PartnerCall[Draft]
    request: PayoutRequest
    code: str  # the paying account's ledger code
    fee: int
    session: Session | None = None  # start: the locked session
    account: Account | None = None


def _merged(draft: str, body: Draft) -> dict[str, Any]:
    """The session's draft with the call's payout fields (the later call wins per field;
    either destination spelling replaces both); metadata only from the call."""
    merged: dict[str, Any] = msgspec.json.decode(draft)
    given = body.given()
    if "payment_method" in given or "payout_details" in given:
        merged.pop("payment_method", None)
        merged.pop("payout_details", None)
    merged.update(given)
    if body.metadata is not UNSET:
        merged["metadata"] = body.metadata
    return merged


def _plan(
    conn: Connection, context: Context, index: int, call: PartnerCall[Draft], draft: str
) -> _Opening:
    request = parse_payout(
        _merged(draft, call.body),
        call.version,
        call.rko,
        context.directory,
        lambda token: account_tokens.lookup(conn, call.project.id, token),
        context.members,
        lambda token: card_tokens.lookup(conn, call.project.id, token),
    )
    if request.sender_account is not None:  # a settlement account of the project's, also
        # where a payout without /rko names one (it is still paid from the wallet); checked
        # before any query (reliability: PostgreSQL refuses a NUL)
        validation.check_settlement_account(SENDER, BANK_BIK, request.sender_account)
    if call.rko:
        assert request.sender_account is not None
        code = request.sender_account
    else:
        code = accounts.wallet_code(call.project.id)
    fee = fees.payout_fee(request.amount, call.project.fee_bps, call.project.fee_fixed)
    return _Opening(index, call, request, code, fee)


def _paying(conn: Connection, openings: list[_Opening], answers: Answers) -> list[_Opening]:
    """The openings whose paying account exists and is theirs, each with it (and whose
    sender account, named without /rko, is the project's too)."""
    named = {o.request.sender_account for o in openings if o.request.sender_account}
    found = accounts.find(conn, {o.code for o in openings} | named)
    kept = []
    for opening in openings:
        call, sender = opening.call, opening.request.sender_account
        try:
            if sender is not None:
                accounts.owned_settlement_account(
                    found.get(sender), call.project.id, sender, SENDER
                )
            row = found.get(opening.code)
            if row is None:
                raise RuntimeError(f"project {call.project.id} has no wallet")
            opening.account = row
        except ApiError as exc:
            answers[opening.index] = exc
            continue
        kept.append(opening)
    return kept


def _within_range(openings: list[_Opening], answers: Answers) -> list[_Opening]:
    """The openings whose amount and fee together fit in 64 bits; the others can be covered
    by no account (none holds more), and are refused before anything is written."""
    kept = []
    for opening in openings:
        if opening.request.amount + opening.fee > MAX_KOPECKS:
            answers[opening.index] = insufficient(opening.request.amount, opening.fee)
        else:
            kept.append(opening)
    return kept


def _seal_cards(conn: Connection, context: Context, openings: list[_Opening]) -> None:
    """Seal each card number the openings' calls brought under a new card token, which the
    payout names from then on; only for payouts that are being written."""
    for opening in openings:
        destination = opening.request.destination
        if destination.card_number is None:
            continue
        call = opening.call
        made = card_tokens.tokenize(
            conn, context.vault, call.project.id, destination.card_number, call.now
        )
        sealed = replace(destination, card_token=made.token, card_number=None)
        opening.request = replace(opening.request, destination=sealed)


def _recipient(context: Context, request: PayoutRequest) -> dict[str, Any]:
    destination = request.destination
    if destination.card is not None:  # a card: its token, never its number
        assert destination.card_token is not None, "sealed before the payout is written"
        return {
            "card_token": destination.card_token,
            "name": destination.full_name,
            **destination.card.echo(),
        }
    if destination.phone is not None:  # Faster Payments: a phone at a member bank
        # (a verification's name is what it finds out)
        return {
            "phone": destination.phone,
            "bank_id": destination.bank_id,
            "name": destination.full_name,
            "bank_name": destination.bank_name,
            "bik": destination.bik or None,
        }
    bank = context.directory.get(destination.bik)
    return {
        "account_number": destination.account,
        "token": destination.token,
        "name": destination.full_name,
        "bank_name": bank.name if bank else None,
        "bik": destination.bik,
        "correspondent_account_number": bank.correspondent_account if bank else None,
        "inn": destination.inn,
        "kpp": destination.kpp,
    }


def _payout(context: Context, opening: _Opening, n: int, session_n: int) -> Payout:
    """The ``payouts`` row a started payout begins as, its first step due now."""
    call, request = opening.call, opening.request
    assert opening.account is not None
    now = call.now
    verification = request.destination.verification
    return Payout(
        n=n,
        session_n=session_n,
        project_id=call.project.id,
        status=INIT.payout_to,
        amount=request.amount,
        currency=request.currency,
        account_id=opening.account.id,
        destination=_json(request.destination.echo),
        recipient=_json(_recipient(context, request)),
        participant_details=_nullable_json(request.participant_details),
        customer=_nullable_json(request.customer),
        metadata=_json(request.metadata) if request.has_metadata else None,
        error_code=None,
        error_description=None,
        # a verification asks at once: nothing to confirm, no money moves
        work=Step.EXECUTE if call.project.single_request or verification else Step.CHECK,
        work_at=now,
        lease_owner=None,
        lease_until=None,
        rail=None,
        rail_reference=None,
        created_at=now,
        updated_at=now,
        finished_at=None,
        fee=opening.fee,
        kind=VERIFICATION if verification else "payout",
    )


def _nullable_json(value: object) -> str | None:
    return None if value is None else _json(value)


def insufficient(amount: int, fee: int) -> InsufficientBalance:
    """The refusal of a payout whose amount (and fee) the paying account cannot cover."""
    with_fee = f" plus the fee of {fee}" if fee else ""
    return InsufficientBalance(
        f"amount_details.amount: {amount}{with_fee} exceeds the available balance of the "
        "paying account"
    )


def _hold(conn: Connection, openings: list[_Opening], payouts: list[Payout]) -> None:
    """Place every payout's hold, or refuse (see the module's docstring)."""
    holds = [book.Hold(p.account_id, p.n, p.amount + p.fee) for p in payouts]
    try:
        book.place_holds(conn, holds, payouts[0].created_at)
    except book.Uncovered:
        if len(openings) > 1:
            raise  # each call runs again alone: which one does not fit?
        raise insufficient(payouts[0].amount, payouts[0].fee) from None


def init(conn: Connection, context: Context, calls: Sequence[PartnerCall[Draft]]) -> list[Answer]:
    """``session/init/payout[/rko]``: a session ``in_progress`` with its payout, at once."""
    answers: Answers = [None] * len(calls)
    openings = []
    for index, call in enumerate(calls):
        try:
            openings.append(_plan(conn, context, index, call, _json(call.body.given())))
        except ApiError as exc:
            answers[index] = exc
    openings = _within_range(_paying(conn, openings, answers), answers)
    if openings:
        _seal_cards(conn, context, openings)
        drawn = numbers.draw(conn, {"sessions": len(openings), "payouts": len(openings)})
        status = INIT.session_to
        sessions = [
            _session(
                o.call, n, status, _draft(conn, context, o.call, o.request.destination.card_token)
            )
            for o, n in zip(openings, drawn["sessions"], strict=True)
        ]
        payouts = [
            _payout(context, o, n, s.n)
            for o, n, s in zip(openings, drawn["payouts"], sessions, strict=True)
        ]
        with sql.pipeline(conn):  # benchmarks: one round trip
            store.insert_sessions(conn, sessions)
            store.insert_payouts(conn, payouts)
            _hold(conn, openings, payouts)
        for opening, session, payout in zip(openings, sessions, payouts, strict=True):
            answers[opening.index] = Listed(session, ((payout, ()),))
    return every(answers)


def verify(conn: Connection, context: Context, calls: Sequence[PartnerCall[Draft]]) -> list[Answer]:
    """``fps/customer_verification``: a session ``in_progress`` whose one payout asks the
    phone's bank who owns it (PROTOCOL §9). It moves no money: amount 0, no fee, no hold;
    it goes to the rail at once, and the answer (the owner's name, or a failure) ends it
    with ``payment_finished`` like any payout."""
    answers: Answers = [None] * len(calls)
    openings = []
    for index, call in enumerate(calls):
        try:
            request = parse_verification(_merged("{}", call.body), call.version, context.members)
        except ApiError as exc:
            answers[index] = exc
            continue
        openings.append(_Opening(index, call, request, accounts.wallet_code(call.project.id), 0))
    openings = _paying(conn, openings, answers)
    if openings:
        drawn = numbers.draw(conn, {"sessions": len(openings), "payouts": len(openings)})
        sessions = [
            _session(o.call, n, INIT.session_to, _draft(conn, context, o.call))
            for o, n in zip(openings, drawn["sessions"], strict=True)
        ]
        payouts = [
            _payout(context, o, n, s.n)
            for o, n, s in zip(openings, drawn["payouts"], sessions, strict=True)
        ]
        with sql.pipeline(conn):
            store.insert_sessions(conn, sessions)
            store.insert_payouts(conn, payouts)
        for opening, session, payout in zip(openings, sessions, payouts, strict=True):
            answers[opening.index] = Listed(session, ((payout, ()),))
    return every(answers)


def start(
    conn: Connection, context: Context, calls: Sequence[PartnerCall[StartBody]]
) -> list[Answer]:
    """``session/start/payout[/rko]``: a ``created`` session's payout, started."""
    answers: Answers = [None] * len(calls)
    openings = []
    for index, (session, _) in access.owned_sessions(conn, calls, answers).items():
        call = calls[index]
        try:
            _check_startable(session, call)
            opening = _plan(conn, context, index, call, session.draft)
        except ApiError as exc:
            answers[index] = exc
            continue
        opening.session = session
        openings.append(opening)
    openings = _within_range(_paying(conn, openings, answers), answers)
    if openings:
        _seal_cards(conn, context, openings)
        drawn = numbers.draw(conn, {"payouts": len(openings)})["payouts"]
        payouts = [
            _payout(context, o, n, o.session.n if o.session else 0)
            for o, n in zip(openings, drawn, strict=True)
        ]
        now = openings[0].call.now
        moves = store.move_sessions(START, [p.session_n for p in payouts], now)
        with sql.pipeline(conn):  # benchmarks: one round trip
            store.insert_payouts(conn, payouts)
            _hold(conn, openings, payouts)
            found = sql.together(conn, moves)
        sessions = {s.n: s for s in store.moved(conn, START, moves, found)}
        for opening, payout in zip(openings, payouts, strict=True):
            answers[opening.index] = Listed(sessions[payout.session_n], ((payout, ()),))
    return every(answers)


def _check_startable(session: Session, call: PartnerCall[Any]) -> None:
    if not START.starts_session(session.status):
        raise SessionWrongState(
            f"session_id: ps_{session.n} is {session.status}; a payout starts only in a "
            "created session"
        )
    if session.rko != call.rko:
        used, wanted = ("session/create/rko", "/rko") if session.rko else ("session/create", "")
        raise InvalidRequest(
            f"session_id: ps_{session.n} was opened with {used}; "
            f"start it with session/start/payout{wanted}"
        )
