"""What each partner method does: its use case, and the answer rendered from it.

A method that changes something is an *executor* of the group commit: the use case runs
once for every call of a group that names the method (a single call is a group of one),
and each call gets its rendered answer or its refusal. A method that only reads runs alone
in a read transaction. ``Handlers`` binds them to what the use cases look things up in.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Connection

from payout131.errors import ApiError, InvalidRequest
from payout131.ledger import accounts
from payout131.payouts import access, answers, call_record, opening, reads
from payout131.payouts.calls import Context, PartnerCall
from payout131.payouts.records import Listed
from payout131.protocol import validation, wire
from payout131.protocol.methods import METHODS
from payout131.protocol.requests import (
    AccountBalanceBody,
    TokenBody,
    TokenInfoBody,
    TokenizeBody,
    WalletBalanceBody,
    given,
)
from payout131.server.final_answers import FinalAnswers
from payout131.server.idempotency import Keyed
from payout131.tokens import account_tokens, card_tokens, public_tokens

__all__ = ["ONE_STATEMENT", "READS", "WRITES", "Handlers"]

UseCase = Callable[[Connection, Context, Sequence[PartnerCall[Any]]], list[Any]]
Read = Callable[[Connection, Context, PartnerCall[Any]], dict[str, Any]]


def _each(fn: Callable[[Connection, Context, PartnerCall[Any]], dict[str, Any]]) -> UseCase:
    """A use case of calls that are independent, each refused before it writes anything."""

    def use_case(
        conn: Connection, context: Context, calls: Sequence[PartnerCall[Any]]
    ) -> list[Any]:
        out: list[Any] = []
        for call in calls:
            try:
                out.append(fn(conn, context, call))
            except ApiError as exc:
                out.append(exc)
        return out

    return use_case


def _public_token(
    conn: Connection, context: Context, call: PartnerCall[TokenBody]
) -> dict[str, Any]:
    public_tokens.parse_public_token_request(call.body)
    ttl = public_tokens.PUBLIC_TOKEN_TTL_S
    return wire.public_token_answer(
        public_tokens.issue_public_token(conn, call.project.id, call.now, ttl)
    )


def _tokenize(
    conn: Connection, context: Context, call: PartnerCall[TokenizeBody]
) -> dict[str, Any]:
    if given(call.body.type) == "card":  # PROTOCOL §9
        number = card_tokens.parse_tokenize_request(call.body)
        card = card_tokens.tokenize(conn, context.vault, call.project.id, number, call.now)
        return wire.tokenize_answer(card.token, card.view.echo())
    bik, account = account_tokens.parse_tokenize_request(call.body, context.directory)
    made = account_tokens.tokenize(conn, context.vault, call.project.id, bik, account, call.now)
    return wire.tokenize_answer(made.token, {"masked_account": made.masked_account})


def _wallet_balance(
    conn: Connection, context: Context, call: PartnerCall[WalletBalanceBody]
) -> dict[str, Any]:
    stamp = given(call.body.request_datetime)
    if stamp is not None:
        validation.check_datetime("request_datetime", stamp)
    wallet = accounts.account_id(conn, accounts.wallet_code(call.project.id))
    assert wallet is not None, "every project has a wallet"
    available = accounts.balance(conn, wallet).available
    project = call.project
    return wire.wallet_answer(project.id, available, project.fee_bps, project.fee_fixed)


def _account_balance(
    conn: Connection, context: Context, call: PartnerCall[AccountBalanceBody]
) -> dict[str, Any]:
    number = given(call.body.account_number)
    if not isinstance(number, str) or not number:
        raise InvalidRequest("account_number: required, the 20-digit settlement account number")
    row = accounts.settlement_account(conn, call.project.id, number, "account_number")
    return wire.account_balance_answer(number, int(row.balance), int(row.held))


def _token_info(
    conn: Connection, context: Context, call: PartnerCall[TokenInfoBody]
) -> dict[str, Any]:
    if given(call.body.type) == "card":  # PROTOCOL §9
        token = card_tokens.parse_info_request(call.body)
        return wire.token_info_answer(card_tokens.info(conn, call.project.id, token, "card.token"))
    token = account_tokens.parse_info_request(call.body)
    return wire.token_info_answer(
        account_tokens.info(conn, call.project.id, token, context.directory)
    )


@dataclass(frozen=True, slots=True)
class Mutation:
    """A method that changes something: its use case, and whether the worker has new work."""

    use_case: UseCase
    sessions: bool = True  # its answer is a session
    wakes_worker: bool = False


WRITES: dict[str, Mutation] = {
    "session/create": Mutation(opening.create),
    "session/create/rko": Mutation(opening.create),
    "session/start/payout": Mutation(opening.start, wakes_worker=True),
    "session/start/payout/rko": Mutation(opening.start, wakes_worker=True),
    "session/init/payout": Mutation(opening.init, wakes_worker=True),
    "session/init/payout/rko": Mutation(opening.init, wakes_worker=True),
    "fps/customer_verification": Mutation(opening.verify, wakes_worker=True),
    "session/confirm": Mutation(answers.confirm, wakes_worker=True),
    "session/cancel": Mutation(answers.cancel),
    "token": Mutation(_each(_public_token), sessions=False),
    "tokenize": Mutation(_each(_tokenize), sessions=False),
}
STATUS = "session/status"  # a read of its own: its answer may be kept (final_answers.py)
ONE_STATEMENT = frozenset({STATUS})
"""The reads whose use case runs one statement (``store.status_rows``), a snapshot by itself,
so they run outside a transaction (``Database.read``); a second statement would need one."""
READS: dict[str, Read] = {
    "wallet/balance": _wallet_balance,
    "report/account_balance": _account_balance,
    "token/info": _token_info,
}


class _Executor:
    """A write method's use case for a group of calls, each answer rendered (the bytes the
    partner gets) or its refusal."""

    def __init__(self, name: str, write: Mutation, context: Context) -> None:
        self.name, self.write, self.context = name, write, context

    def __call__(self, conn: Connection, calls: list[PartnerCall[Any]]) -> list[Any]:
        out = self.write.use_case(conn, self.context, calls)
        if self.write.sessions:  # with what they changed (the console's story)
            call_record.record(conn, self.name, calls, out)
        return [
            answer
            if isinstance(answer, Exception)
            else wire.dumps(
                wire.session_answer(answer, call.version) if isinstance(answer, Listed) else answer
            )
            for answer, call in zip(out, calls, strict=True)
        ]


class Handlers:
    """Every method bound to what its use case looks things up in."""

    def __init__(self, context: Context, returns_forced: bool = True) -> None:
        every = set(WRITES) | set(READS) | {STATUS}
        assert every == set(METHODS), "every method is a write or a read"
        self.context = context
        self.final = FinalAnswers(returns_forced)  # sandbox mode: returns can be forced
        self.executors = {name: _Executor(name, write, context) for name, write in WRITES.items()}
        self.keyed = {name: Keyed(name, executor) for name, executor in self.executors.items()}

    def kept(self, name: str, call: PartnerCall[Any]) -> bytes | None:
        """The answer of a read that can no longer change, if this process kept it; the
        caller's refusal if it is not theirs to read."""
        if name != STATUS:
            return None
        n = access.session_number(call.body.session_id)
        found = self.final.get(n, call.version)
        if found is None:
            return None
        access.check_owner(found[0], n, call.project.id)
        return found[1]

    def read(self, conn: Connection, name: str, call: PartnerCall[Any]) -> bytes:
        if name != STATUS:
            return wire.dumps(READS[name](conn, self.context, call))
        found = reads.status(conn, call)
        out = wire.dumps(wire.session_answer(found, call.version))
        self.final.keep(found, call.version, out)
        return out

    def wakes_worker(self, name: str) -> bool:
        return name in WRITES and WRITES[name].wakes_worker
