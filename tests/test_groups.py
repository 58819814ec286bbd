"""A group of calls, one use case: every call ends as it would have alone.

Each use case is written once, for many calls at once, and a single call is a group of one.
So a group must give every call the answer, or the refusal, it would get alone, and leave
the same rows, holds and webhooks: a refused call holds nothing up and writes nothing, a
call its account cannot cover is refused while the others go through. The same holds for
the worker's steps, run for many payouts at once or one at a time.
"""

from __future__ import annotations

import json
import re
from typing import Any

import sqlalchemy as sa

from banking import Onboard, event_bytes
from grouped import in_one_group
from partner import ORGANISATION, Partner, destination, payout_body
from payout131.clock import ManualClock
from payout131.errors import ApiError
from payout131.ledger import accounts
from payout131.ledger.accounts import BANK_BIK
from payout131.ledger.check import violations
from payout131.payouts import reads, store
from payout131.payouts.calls import PartnerCall
from payout131.protocol import validation, wire
from payout131.protocol.requests import AnswerBody, Draft, SessionRef, decode
from payout131.rails import scenarios
from payout131.runtime import Runtime
from payout131.server.handlers import Handlers
from payout131.storage import schema as t
from payout131.storage.group_commit import Executor, GroupCommit

ORGANISATION_ACCOUNT = {"bik": ORGANISATION["bik"], "account": ORGANISATION["account"]}
MISSING = validation.generate_account(BANK_BIK, "40702810")  # well formed, opened by nobody


def one_by_one(group: GroupCommit, executor: Executor, items: list[Any]) -> list[Any]:
    out: list[Any] = []
    for item in items:
        try:
            out.append(group.run(executor, item))
        except ApiError as exc:
            out.append(exc)
    return out


def _call(bank: Runtime, project_id: str, body: dict[str, Any], kind: type[Any], rko: bool) -> Any:
    project = bank.projects.get(project_id)
    assert project is not None
    raw = json.dumps(body).encode()
    return PartnerCall(project, "v1", rko, bank.clock.now(), decode(raw, kind))


def _rko(amount: int, sender: str) -> dict[str, Any]:
    return payout_body(amount, participant_details={"sender": {"account": sender}})


def _init_calls(bank: Runtime, project_id: str, own: str, other: str) -> list[Any]:
    bodies = [
        (True, _rko(10_000, own)),
        (True, _rko(-5, own)),  # a bad amount
        (True, _rko(10_000, own)),
        (True, _rko(10_000, own)),  # more than is left
        (True, _rko(1_000, own)),  # a refusal held nothing: this still fits
        (True, _rko(1_000, MISSING)),
        (True, _rko(1_000, other)),  # another project's account
        (False, payout_body(10_000)),  # the collateral wallet
        (True, _rko(1_000, "123")),
        (False, payout_body(10_000)),  # the wallet is spent
    ]
    return [_call(bank, project_id, body, Draft, rko) for rko, body in bodies]


def _comparable(outcome: Any, own: str, other: str) -> str:
    text = json.dumps(outcome.envelope()) if isinstance(outcome, ApiError) else outcome.decode()
    text = re.sub(r"(ps|po)_\d+", r"\1_N", text.replace(own, "OWN").replace(other, "OTHER"))
    return f"{type(outcome).__name__} {text}"


def test_init_calls_of_one_group_end_as_each_alone(bank: Runtime, onboard: Onboard) -> None:
    one = onboard("one", wallet=15_000, account=25_000, fee_fixed=100)
    many = onboard("many", wallet=15_000, account=25_000, fee_fixed=100)
    assert one.account is not None
    assert many.account is not None
    methods = Handlers(bank.context)
    init = methods.executors["session/init/payout"]
    alone = one_by_one(bank.group_commit, init, _init_calls(bank, "one", one.account, many.account))
    together = in_one_group(
        bank.group_commit, init, _init_calls(bank, "many", many.account, one.account)
    )
    kinds = [type(o).__name__ for o in together]
    assert kinds == [
        "bytes",
        "InvalidRequest",
        "bytes",
        "InsufficientBalance",
        "bytes",
        "NotFound",
        "AuthorizationError",
        "bytes",
        "InvalidRequest",
        "InsufficientBalance",
    ]
    assert [_comparable(o, many.account, one.account) for o in together] == [
        _comparable(o, one.account, many.account) for o in alone
    ]
    with bank.db.read() as conn:
        for project, partner in (("one", one), ("many", many)):
            assert partner.account is not None
            account = accounts.account_id(conn, partner.account)
            wallet = accounts.account_id(conn, f"wallet:{project}")
            assert account is not None
            assert wallet is not None
            held = accounts.balance(conn, account)
            assert held == accounts.Balance(25_000, 2 * 10_100 + 1_100)
            assert accounts.balance(conn, wallet) == accounts.Balance(15_000, 10_100)
            written = conn.execute(
                t.payouts.select().where(t.payouts.c.project_id == project)
            ).all()
            assert sorted(int(p.amount) for p in written) == [1_000, 10_000, 10_000, 10_000]
            opened = conn.execute(
                t.sessions.select().where(t.sessions.c.project_id == project)
            ).all()
            assert len(opened) == 4  # a refused call leaves no session behind
            assert {s.status for s in opened} == {"in_progress"}


def _init(partner: Partner) -> str:
    return str(partner.ok("session/init/payout", payout_body(1_000))["session"]["id"])


def _answers(bank: Runtime, project_id: str, mine: list[str], theirs: str) -> list[Any]:
    wrong = {"account_details": {"recipient": {"account_number": "40817810000000000000"}}}
    bodies: list[Any] = [
        {"session_id": mine[0]},
        {"session_id": 42},
        {"session_id": "ps_999999999"},
        {"session_id": theirs},
        {"session_id": mine[1], "confirm_information": wrong},
        {"session_id": mine[3]},  # its payout is not checked yet
        {"session_id": mine[2]},
    ]
    return [_call(bank, project_id, body, AnswerBody, False) for body in bodies]


def test_confirm_calls_of_one_group_end_as_each_alone(bank: Runtime, onboard: Onboard) -> None:
    one = onboard("one", wallet=100_000)
    many = onboard("many", wallet=100_000)
    ones, manys = [_init(one) for _ in range(3)], [_init(many) for _ in range(3)]
    bank.worker.drain()  # these wait for confirmation; the next two are not checked yet
    ones.append(_init(one))
    manys.append(_init(many))
    confirm = Handlers(bank.context).executors["session/confirm"]
    alone = one_by_one(bank.group_commit, confirm, _answers(bank, "one", ones, manys[0]))
    together = in_one_group(bank.group_commit, confirm, _answers(bank, "many", manys, ones[0]))
    assert [type(o).__name__ for o in together] == [
        "bytes",
        "InvalidRequest",
        "NotFound",
        "AuthorizationError",
        "InvalidRequest",
        "SessionWrongState",
        "bytes",
    ]
    assert [_comparable(o, "many", "one") for o in together] == [
        _comparable(o, "one", "many") for o in alone
    ]
    with bank.db.read() as conn:
        for project in ("one", "many"):
            moved = conn.execute(
                sa.select(t.payouts.c.status, t.payouts.c.work).where(
                    t.payouts.c.project_id == project
                )
            ).all()
            assert sorted(moved) == sorted(
                [("in_progress", "execute")] * 2 + [("pending", "expire"), ("in_progress", "check")]
            )


def test_two_answers_to_one_session_in_a_group_run_one_after_the_other(
    bank: Runtime, onboard: Onboard
) -> None:
    partner = onboard("acme", wallet=100_000)
    session_id = _init(partner)
    bank.worker.drain()
    confirm = Handlers(bank.context).executors["session/confirm"]
    twice = _answers(bank, "acme", [session_id] * 4, session_id)[:1] * 2
    first, second = in_one_group(bank.group_commit, confirm, twice)
    assert b'"in_progress"' in first
    assert isinstance(second, ApiError)
    assert second.code == "session_wrong_state"


def test_status_in_one_statement_renders_what_the_session_reads_render(
    bank: Runtime, clock: ManualClock, onboard: Onboard
) -> None:
    """``session/status`` reads a session, its payout and its refund with one join; every
    state a session can be in must render as the session read on its own renders."""
    partner = onboard("acme", wallet=1_000_000, single_request=True)
    returned = scenarios.by_name("returned").example_amount
    created = partner.ok("session/create", {})["session"]["id"]
    paid = partner.ok("session/init/payout", payout_body(10_000))["session"]["id"]
    refunded = partner.ok("session/init/payout", payout_body(returned))["session"]["id"]
    bank.worker.drain()
    clock.advance(3 * scenarios.DAY)
    bank.worker.drain()
    waiting = partner.ok("session/init/payout", payout_body(20_000))["session"]["id"]
    seen = []
    with bank.db.read() as conn:
        for session_id in (created, paid, refunded, waiting):
            call = _call(bank, "acme", {"session_id": session_id}, SessionRef, False)
            (expected,) = store.read_listed(conn, [int(session_id.removeprefix("ps_"))])
            assert reads.status(conn, call) == expected
            for version in ("v1", "v2"):
                seen.append(wire.render_session(expected, version))
    assert "refunds" in json.dumps(seen[4])  # the refunded one, in v1, shows its refund
    assert not any("refunds" in json.dumps(s) for s in seen[:4])


def _step_bodies(
    bank: Runtime, started: list[Any], step: str, together: bool, own: str | None = None
) -> list[str]:
    """Run the claimed ``step`` steps of the ``started`` sessions as one batch or one at a
    time; each session's one webhook body, numbers (and the ``own`` account) masked."""
    claimed = bank.worker.claim()
    assert [c.step for c in claimed] == [step] * len(started)
    if together:
        bank.worker.run_steps(step, claimed)
    else:
        for leased in claimed:
            bank.worker.run_steps(step, [leased])
    out = []
    for answer in started:
        [body] = event_bytes(bank, answer["session"]["id"])
        text = body.decode() if own is None else body.decode().replace(own, "OWN")
        out.append(re.sub(r"(ps|po)_\d+", r"\1_N", text))
    return out


def _check_bodies(bank: Runtime, partner: Partner, token: str, together: bool) -> list[str]:
    """Three two-step /rko payouts (one to a tokenized account, one in v2) through the
    ``check`` step; their ``ready_to_confirm`` bodies."""
    assert partner.account is not None
    ru = {k: v for k, v in ORGANISATION.items() if k not in ("bik", "account")}
    started = [
        partner.ok("session/init/payout/rko", partner.rko_body(1_000)),
        partner.ok("session/init/payout/rko", partner.rko_body(2_000, {**ru, "token": token})),
        partner.ok(
            "session/init/payout/rko",
            {
                "payout_details": destination(),
                "amount_details": {"amount": 3_000, "currency": "rub"},
                "participant_details": {"sender": {"account": partner.account}},
            },
            version="v2",
        ),
    ]
    return _step_bodies(bank, started, "check", together, own=partner.account)


def test_check_steps_of_one_batch_write_what_each_alone_writes(
    bank: Runtime, onboard: Onboard
) -> None:
    partner = onboard("acme", account=100_000, inn="7707083893", legal_name="ACME")
    token = partner.ok(
        "tokenize", {"type": "bank_account_ru", "bank_account_ru": ORGANISATION_ACCOUNT}
    )["token"]
    alone = _check_bodies(bank, partner, token, together=False)
    together = _check_bodies(bank, partner, token, together=True)
    assert together == alone
    assert all('"ready_to_confirm"' in body and "confirm_information" in body for body in alone)
    assert ORGANISATION_ACCOUNT["account"] in alone[1]  # the tokenized account, in full
    with bank.db.read() as conn:
        sealed = conn.execute(
            sa.select(sa.func.count()).where(t.events.c.body_key_id.is_not(None))
        ).scalar_one()
    assert sealed == 2  # that body is sealed at rest, in a batch or alone


def test_execute_steps_of_one_batch_write_what_each_alone_writes(
    bank: Runtime, onboard: Onboard
) -> None:
    partner = onboard("acme", wallet=100_000, single_request=True, fee_fixed=10)

    def bodies(together: bool) -> list[str]:
        started = [
            partner.ok("session/init/payout", payout_body(amount))
            for amount in (1_000, 2_000, 3_000)
        ]
        return _step_bodies(bank, started, "execute", together)

    alone = bodies(together=False)
    together = bodies(together=True)
    assert together == alone
    assert all('"payment_finished"' in body and '"succeeded"' in body for body in alone)
    with bank.db.read() as conn:
        assert violations(conn) == []
        wallet = accounts.account_id(conn, "wallet:acme")
        assert wallet is not None
        paid = 2 * (1_000 + 2_000 + 3_000 + 3 * 10)
        assert accounts.balance(conn, wallet) == accounts.Balance(100_000 - paid, 0)
        kinds = conn.execute(
            sa.select(t.ledger_transactions.c.kind, sa.func.count())
            .group_by(t.ledger_transactions.c.kind)
            .order_by(t.ledger_transactions.c.kind)
        ).all()
    assert [tuple(k) for k in kinds] == [("fee", 6), ("payout", 6), ("topup", 1)]
