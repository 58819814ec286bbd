"""Paying a checked sheet through the SDK: submit every row, then settle every payout.

Each row goes through the same steps, each written to the journal as it happens::

    session/create          a session with no money in it; its id is journaled first
    session/start/payout    the money moves; idempotency key = the row's key (see the sheet)
    session/status          polled until the payout is final
    session/confirm         when the payout waits for the partner (two-step projects)

A rerun skips final rows and asks ``session/status`` about every other row that has a
session: a session still ``created`` is started (with the row's key), any other is followed.
A start answered ``idempotency_key_already_exists`` or ``session_wrong_state`` was submitted
before: the journal names its session and the status tells its fate. A start the bank refused
for another reason (``insufficient_wallet_balance``, ``invalid_request``) moved no money; the
row is reported ``rejected`` and tried again on the next run. A start with no answer
(network, 5xx) is settled through ``session/status`` like an interrupted one.

Submitting runs ``concurrency`` calls at a time; settling polls the unsettled rows in rounds.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from payout131.cli.batch_journal import Journal, RowState
from payout131.cli.payout_sheet import Row, Sheet, check_party
from payout131.client import (
    Amount,
    ApiConnectionError,
    Bank131Error,
    BankAccount,
    Card,
    Client,
    FasterPayment,
    IdempotencyConflict,
    InternalServerError,
    NotFoundError,
    Recipient,
    Sender,
    Session,
    SessionWrongStateError,
    TokenizedAccount,
    TokenizedCard,
    UnexpectedResponseError,
)
from payout131.client.params import Destination, PayoutFields
from payout131.errors import InvalidRequest
from payout131.payouts.fees import payout_fee

__all__ = ["STATUSES", "STOP_EXIT_CODE", "Batch", "Options", "Result", "tally"]

STOP_EXIT_CODE = 3
"""Exit status of the ``stop_after`` test hook (PAYOUT131_TEST_STOP_AFTER_ROWS)."""

STATUSES = ("succeeded", "failed", "pending", "in_progress", "rejected", "not_started")
"""A row's status in the results: final (succeeded, failed), waiting for the partner's
confirmation (pending, with confirming off), not yet final (in_progress), refused by the bank
with no money moved (rejected), or never submitted (not_started)."""

NO_ANSWER = (ApiConnectionError, InternalServerError, UnexpectedResponseError)
"""Failures after which a start may or may not have happened."""

Progress = Callable[[str, int], None]  # (phase, rows newly done)


@dataclass(frozen=True, slots=True)
class Options:
    rko_from: str | None = None  # pay from this settlement account (the /rko methods)
    confirm: bool = True  # confirm payouts that wait for the partner
    concurrency: int = 8
    poll_s: float = 0.5
    wait_s: float = 600.0
    stop_after: int | None = None  # test hook: exit abruptly after this many starts
    fee_bps: int | None = None  # the bank's fee, when the bank does not state it
    fee_fixed: int | None = None


@dataclass(frozen=True, slots=True)
class Result:
    """A row's outcome for the results file; ``status`` is one of ``STATUSES``."""

    row: Row
    status: str
    session_id: str | None = None
    error_code: str = ""
    error_description: str = ""


class Batch:
    """One run over a sheet; the journal carries what earlier runs did."""

    def __init__(self, client: Client, sheet: Sheet, journal: Journal, options: Options) -> None:
        self.client, self.sheet, self.journal, self.options = client, sheet, journal, options
        self._starts = 0
        self._starts_lock = threading.Lock()

    # -- before any money moves -------------------------------------------------------------

    def check_tokens(self) -> list[tuple[int, str]]:
        """Look every token up (``token/info``, a read): unknown account and card tokens,
        and a given INN or KPP that does not suit the account's kind."""
        problems = []
        masks: dict[str, str | None] = {}
        cards: dict[str, bool] = {}
        for row in self.sheet.rows:
            if row.card_token is not None:
                if row.card_token not in cards:
                    cards[row.card_token] = self._card_token_known(row.card_token)
                if not cards[row.card_token]:
                    problems.append((row.number, "card_token: no such card token for this project"))
            if row.token is None:
                continue
            if row.token not in masks:
                try:
                    masks[row.token] = self.client.token_info(row.token).masked_account or ""
                except NotFoundError:
                    masks[row.token] = None
            masked = masks[row.token]
            if masked is None:
                problems.append((row.number, "token: no such token for this project"))
                continue
            try:
                check_party(masked, row.inn, row.kpp, required=False)
            except InvalidRequest as exc:
                problems.append((row.number, exc.description))
        return problems

    def _card_token_known(self, token: str) -> bool:
        try:
            self.client.card_token_info(token)
        except NotFoundError:
            return False
        return True

    def reconcile(self) -> int:
        """Ask ``session/status`` about rows whose start has no recorded fate (a run was
        interrupted while they were in flight); journal those that did start. A read: no
        money moves. Returns how many rows it asked about."""
        unsure = [
            (row, state)
            for row in self.sheet.rows
            if (state := self.journal.state(row.number)).session is not None
            and not (state.started or state.final or state.rejected)
        ]
        for row, state in unsure:
            assert state.session is not None
            if self.client.status(state.session).status != "created":
                self.journal.record(row.number, started=True)
        return len(unsure)

    def needed(self) -> int:
        """Kopecks the rows whose payout has not started yet will hold: their amounts and
        the bank's fee on each (``fee``: the bank's schedule, see ``fees``)."""
        bps, fixed = self.fees()
        states = (self.journal.state(row.number) for row in self.sheet.rows)
        return sum(
            row.amount + payout_fee(row.amount, bps, fixed)
            for row, state in zip(self.sheet.rows, states, strict=True)
            if not (state.started or state.final)
        )

    def fees(self) -> tuple[int, int]:
        """The bank's fee on a payout: basis points and fixed kopecks. Each part is the
        option's when given, else what ``wallet/balance`` states (payout131 does, in
        ``payout_fee``; a bank that states none is taken to charge none)."""
        bps, fixed = self.options.fee_bps, self.options.fee_fixed
        if bps is not None and fixed is not None:
            return bps, fixed
        stated = self.client.wallet_balance().raw.get("payout_fee")
        stated = stated if isinstance(stated, dict) else {}
        stated_fixed = stated.get("fixed")
        stated_bps = stated.get("percent_bps")
        amount = stated_fixed.get("amount") if isinstance(stated_fixed, dict) else None
        if bps is None:
            bps = stated_bps if isinstance(stated_bps, int) and stated_bps >= 0 else 0
        if fixed is None:
            fixed = amount if isinstance(amount, int) and amount >= 0 else 0
        return bps, fixed

    def available(self) -> int:
        """The wallet's (or the settlement account's) available balance, in kopecks."""
        if self.options.rko_from:
            balance = self.client.account_balance(self.options.rko_from)
            available = balance.raw.get("balance", {}).get("available_balance")
            return available if isinstance(available, int) else balance.current_balance
        wallets = self.client.wallet_balance().wallets
        return sum(w.amount_details.amount for w in wallets if w.amount_details.currency == "rub")

    # -- submitting -------------------------------------------------------------------------

    def submit(self, progress: Progress) -> None:
        """Create and start every row that has not started, ``concurrency`` at a time."""
        rows = [row for row in self.sheet.rows if self._to_submit(self.journal.state(row.number))]
        progress("submit", len(self.sheet.rows) - len(rows))
        with ThreadPoolExecutor(self.options.concurrency) as pool:
            for _ in pool.map(self._submit_row, rows):
                progress("submit", 1)

    @staticmethod
    def _to_submit(state: RowState) -> bool:
        # A row with a session but no record of its start is settled through its status.
        return state.session is None or state.rejected is not None

    def _submit_row(self, row: Row) -> None:
        session_id = self.journal.state(row.number).session
        if session_id is None:
            try:
                session_id = self._create(row)
            except NO_ANSWER:
                return  # at most an empty session was made; the next run makes another
            except Bank131Error as exc:
                self._reject(row, exc)
                return
            self.journal.record(row.number, session=session_id)
        self._start(row, session_id)

    def _create(self, row: Row) -> str:
        """A new session for the row. Its key is fresh each time: creating moves no money,
        and an interrupted create leaves at most an empty session behind."""
        session = self.client.create_session(
            rko=self.options.rko_from is not None,
            idempotency_key=f"{row.key}:create:{uuid.uuid4().hex[:12]}",
            metadata={"batch": self.sheet.sha256[:16], "row": row.number},
        )
        return session.id

    def _start(self, row: Row, session_id: str) -> None:
        fields: PayoutFields = {"destination": _destination(row), "amount": Amount(row.amount)}
        if row.phone or row.card or row.card_token:  # the name travels beside a phone or card
            fields["recipient"] = Recipient(full_name=row.recipient)
        if self.options.rko_from is not None:
            fields["sender"] = Sender(self.options.rko_from)
        try:
            self.client.start_payout(
                session_id,
                rko=self.options.rko_from is not None,
                idempotency_key=row.key,
                **fields,
            )
        except (IdempotencyConflict, SessionWrongStateError):
            pass  # submitted before (an earlier run): session/status tells the rest
        except NO_ANSWER:
            return  # unknown: settle() asks session/status
        except Bank131Error as exc:
            self._reject(row, exc)
            return
        self._count_start()
        self.journal.record(row.number, started=True)

    def _reject(self, row: Row, exc: Bank131Error) -> None:
        self.journal.record(row.number, rejected={"code": exc.code, "description": exc.description})

    def _count_start(self) -> None:
        if self.options.stop_after is None:
            return
        with self._starts_lock:
            self._starts += 1
            if self._starts >= self.options.stop_after:
                os._exit(STOP_EXIT_CODE)  # the test hook: die like a killed process

    # -- settling ---------------------------------------------------------------------------

    def settle(self, progress: Progress) -> None:
        """Poll rows until each is final (or waits for confirmation, with confirming off),
        or ``wait_s`` is over."""
        deadline = time.monotonic() + self.options.wait_s
        rows = [row for row in self.sheet.rows if self._to_settle(self.journal.state(row.number))]
        progress("settle", len(self.sheet.rows) - len(rows))
        with ThreadPoolExecutor(self.options.concurrency) as pool:
            while rows and time.monotonic() < deadline:
                began = time.monotonic()
                done = list(pool.map(self._settle_row, rows))
                progress("settle", sum(done))
                rows = [row for row, finished in zip(rows, done, strict=True) if not finished]
                if rows:
                    time.sleep(max(0.0, self.options.poll_s - (time.monotonic() - began)))

    def _to_settle(self, state: RowState) -> bool:
        if state.final or state.session is None or state.rejected is not None:
            return False
        return not (state.outcome == "pending" and not self.options.confirm)

    def _settle_row(self, row: Row) -> bool:
        """One look at the row's session; True once it needs no more looking."""
        session_id = self.journal.state(row.number).session
        assert session_id is not None
        try:
            session = self.client.status(session_id)
        except Bank131Error:
            return False  # try again next round
        if session.status == "created":  # its start never reached the bank: start it now
            self._start(row, session_id)
            return self.journal.state(row.number).rejected is not None
        if not self.journal.state(row.number).started:
            self.journal.record(row.number, started=True)  # the start happened, unrecorded
        return self._follow(row, session)

    def _follow(self, row: Row, session: Session) -> bool:
        payout = session.payouts[0] if session.payouts else None
        if payout is None:
            return False
        if payout.status in ("succeeded", "failed"):
            error = None
            if payout.error is not None:
                error = {"code": payout.error.code, "description": payout.error.description}
            self.journal.record(row.number, outcome=payout.status, error=error)
            return True
        if payout.status != "pending" or session.next_action != "confirm":
            return False
        if not self.options.confirm:
            self.journal.record(row.number, outcome="pending")
            return True
        # confirmed before, cancelled, timed out or unanswered: the next status will say
        with contextlib.suppress(Bank131Error):
            self.client.confirm(session.id, idempotency_key=f"{row.key}:confirm")
        return False

    # -- the outcome ------------------------------------------------------------------------

    def results(self) -> list[Result]:
        return [_result(row, self.journal.state(row.number)) for row in self.sheet.rows]


def _result(row: Row, state: RowState) -> Result:
    error = state.error or state.rejected or {}
    if state.outcome:
        status = state.outcome
    elif state.rejected:
        status = "rejected"
    elif state.started or state.session:
        status = "in_progress"
    else:
        status = "not_started"
    code, description = error.get("code", ""), error.get("description", "")
    return Result(row, status, state.session, code, description)


def _destination(row: Row) -> Destination:
    if row.phone is not None and row.bank_id is not None:
        return FasterPayment(row.phone, row.bank_id, row.purpose)
    if row.card is not None:
        return Card(row.card)
    if row.card_token is not None:
        return TokenizedCard(row.card_token)
    if row.token is not None:
        return TokenizedAccount(row.token, row.recipient, row.purpose, inn=row.inn, kpp=row.kpp)
    assert row.bik is not None
    assert row.account is not None
    return BankAccount(row.bik, row.account, row.recipient, row.purpose, inn=row.inn, kpp=row.kpp)


def tally(results: Iterable[Result]) -> dict[str, tuple[int, int]]:
    """status → (rows, kopecks), in the order of ``STATUSES``, statuses with no rows left out."""
    totals = dict.fromkeys(STATUSES, (0, 0))
    for result in results:
        rows, kopecks = totals[result.status]
        totals[result.status] = (rows + 1, kopecks + result.row.amount)
    return {status: total for status, total in totals.items() if total[0]}
