"""Session steps written set-wise (benchmarks): ``session/init/payout`` calls of one group
commit, and the worker's ``check`` step for a batch of payouts.

A batch must give every call what the call alone would get, refusals included, and leave
the same rows, balances and webhook bodies; a batch that fails must leave its calls to run
one at a time.
"""

from __future__ import annotations

import json
import re
import threading
import time
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from banking import Onboard, event_bytes
from partner import ORGANISATION, Partner, destination, payout_body
from payout131 import ledger, sessions, sessions_batch, work_batch
from payout131.accounts import BANK_BIK
from payout131.clock import ManualClock
from payout131.errors import ApiError, InsufficientBalance, InvalidRequest
from payout131.protocol import validation
from payout131.rails import scenarios
from payout131.runtime import Runtime
from payout131.storage import schema as t
from payout131.storage.group_commit import GroupCommit

ORGANISATION_ACCOUNT = {"bik": ORGANISATION["bik"], "account": ORGANISATION["account"]}


def _rko(amount: int, sender: str) -> dict[str, Any]:
    return payout_body(amount, participant_details={"sender": {"account": sender}})


MISSING = validation.generate_account(BANK_BIK, "40702810")  # well formed, opened by nobody


def _calls(bank: Runtime, project_id: str, own: str, other: str) -> list[tuple[Any, Any]]:
    project = bank.projects.get(project_id)
    assert project is not None

    def call(rko: bool) -> sessions.Call:
        return sessions.Call(
            project=project, version="v1", rko=rko, now=bank.clock.now(), directory=bank.directory
        )

    return [
        (call(True), _rko(10_000, own)),
        (call(True), _rko(-5, own)),  # a bad amount
        (call(True), _rko(10_000, own)),
        (call(True), _rko(10_000, own)),  # more than is left
        (call(True), _rko(1_000, own)),  # a refusal held nothing: this still fits
        (call(True), _rko(1_000, MISSING)),
        (call(True), _rko(1_000, other)),  # another project's account
        (call(False), payout_body(10_000)),  # the collateral wallet
        (call(True), _rko(1_000, "123")),
        (call(False), payout_body(10_000)),  # the wallet is spent
    ]


def _one_at_a_time(conn: Connection, calls: list[tuple[Any, Any]]) -> list[Any]:
    out: list[Any] = []
    for call, body in calls:
        try:
            with conn.begin_nested():
                out.append({"status": "ok", "session": sessions.init_payout(conn, call, body)})
        except ApiError as exc:
            out.append(exc)
    return out


def _comparable(outcome: Any, own: str, other: str) -> str:
    text = json.dumps(outcome.envelope() if isinstance(outcome, ApiError) else outcome)
    text = re.sub(r"(ps|po)_\d+", r"\1_N", text.replace(own, "OWN").replace(other, "OTHER"))
    return f"{type(outcome).__name__} {text}"


def _held_as_accepted(conn: Connection, project: str, partner: Any) -> tuple[int, int]:
    """The project's settlement account and wallet, each holding what the accepted calls of
    ``_calls`` hold (three on the account, one on the wallet, 100 of fee each)."""
    assert partner.account is not None
    account = ledger.account_id(conn, partner.account)
    wallet = ledger.account_id(conn, f"wallet:{project}")
    assert account is not None
    assert wallet is not None
    assert ledger.balance(conn, account) == ledger.Balance(25_000, 2 * 10_100 + 1_100)
    assert ledger.balance(conn, wallet) == ledger.Balance(15_000, 10_100)
    return account, wallet


def test_init_calls_of_one_group_get_what_each_call_alone_gets(
    bank: Runtime, onboard: Onboard
) -> None:
    one = onboard("one", wallet=15_000, account=25_000, fee_fixed=100)
    many = onboard("many", wallet=15_000, account=25_000, fee_fixed=100)
    assert one.account is not None
    assert many.account is not None
    with bank.db.write() as conn:
        alone = _one_at_a_time(conn, _calls(bank, "one", one.account, many.account))
    with bank.db.write() as conn:
        together = sessions_batch.init_payouts(
            conn, _calls(bank, "many", many.account, one.account)
        )
    kinds = [type(o).__name__ for o in together]
    assert kinds == [
        "dict",
        "InvalidRequest",
        "dict",
        "InsufficientBalance",
        "dict",
        "NotFound",
        "AuthorizationError",
        "dict",
        "InvalidRequest",
        "InsufficientBalance",
    ]
    assert [_comparable(o, many.account, one.account) for o in together] == [
        _comparable(o, one.account, many.account) for o in alone
    ]
    with bank.db.read() as conn:
        for project, partner in (("one", one), ("many", many)):
            _held_as_accepted(conn, project, partner)
            written = conn.execute(
                t.payouts.select().where(t.payouts.c.project_id == project)
            ).all()
            assert sorted(int(p.amount) for p in written) == [1_000, 10_000, 10_000, 10_000]
            opened = conn.execute(
                t.sessions.select().where(t.sessions.c.project_id == project)
            ).all()
            assert len(opened) == 4  # a refused call leaves no session behind
            assert {s.status for s in opened} == {"in_progress"}


def test_init_calls_that_all_fit_are_written_as_the_calls_alone_write_them(
    bank: Runtime, onboard: Onboard, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every call accepted: on PostgreSQL the group's one round trip (``_INIT``), which
    must answer, write and hold exactly what each call alone does."""
    pipelined = sessions_batch._init_pipelined
    took: list[bool] = []

    def watched(*args: Any) -> bool:
        took.append(pipelined(*args))
        return took[-1]

    monkeypatch.setattr(sessions_batch, "_init_pipelined", watched)
    one = onboard("one", wallet=15_000, account=25_000, fee_fixed=100)
    many = onboard("many", wallet=15_000, account=25_000, fee_fixed=100)
    assert one.account is not None
    assert many.account is not None
    accepted = [0, 2, 4, 7]  # the calls of _calls that fit
    with bank.db.write() as conn:
        calls = _calls(bank, "one", one.account, many.account)
        alone = _one_at_a_time(conn, [calls[i] for i in accepted])
    with bank.db.write() as conn:
        calls = _calls(bank, "many", many.account, one.account)
        together = sessions_batch.init_payouts(conn, [calls[i] for i in accepted])
    assert [_comparable(o, many.account, one.account) for o in together] == [
        _comparable(o, one.account, many.account) for o in alone
    ]
    assert took == ([True] if bank.db.dialect == "postgresql" else [])
    columns = [c for c in t.payouts.c if c.name not in ("n", "session_n", "project_id")]
    written: dict[str, str] = {}
    with bank.db.read() as conn:
        for project, partner, own, other in (
            ("one", one, one.account, many.account),
            ("many", many, many.account, one.account),
        ):
            account, wallet = _held_as_accepted(conn, project, partner)
            rows = conn.execute(
                sa.select(*columns, t.holds.c.amount.label("held"), t.holds.c.status.label("h"))
                .join(t.holds, t.holds.c.payout_n == t.payouts.c.n)
                .where(t.payouts.c.project_id == project)
                .order_by(t.payouts.c.n)
            ).all()
            ids = {account: "OWN", wallet: "WALLET"}
            text = json.dumps([{**r._mapping, "account_id": ids[r.account_id]} for r in rows])
            written[project] = text.replace(own, "OWN").replace(other, "OTHER")
    assert len(json.loads(written["many"])) == 4
    assert written["many"] == written["one"]


def test_a_batch_answers_each_call_and_a_failed_batch_leaves_them_one_by_one(
    bank: Runtime,
) -> None:
    group = GroupCommit(bank.db)
    seen: list[list[int]] = []

    def batch(conn: Connection, items: list[Any]) -> list[Any]:
        seen.append(list(items))
        if 13 in items:
            raise RuntimeError("the batch itself failed")
        return [InsufficientBalance("amount: odd") if n % 2 else n * 10 for n in items]

    def alone(n: int) -> Any:
        def fn(conn: Connection) -> Any:
            if n == 15:
                raise InvalidRequest("amount: fifteen")
            return -n

        return fn

    def run(numbers: list[int]) -> dict[int, Any]:
        results: dict[int, Any] = {}
        release, entered = threading.Event(), threading.Event()

        def first(conn: Connection) -> None:
            entered.set()
            release.wait(30)

        def call(n: int) -> None:
            try:
                results[n] = group.run(alone(n), batch=batch, item=n)
            except ApiError as exc:
                results[n] = exc

        leader = threading.Thread(target=group.run, args=(first,))
        leader.start()
        assert entered.wait(30)
        threads = [threading.Thread(target=call, args=(n,)) for n in numbers]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 30
        while group.waiting < len(numbers):
            assert time.monotonic() < deadline, "the jobs never queued"
            time.sleep(0.005)
        release.set()
        for thread in [leader, *threads]:
            thread.join(30)
        return results

    answered = run([2, 3, 4])
    assert len(seen) == 1
    assert sorted(seen[0]) == [2, 3, 4]  # one batch for the three
    assert answered[2] == 20
    assert answered[4] == 40
    assert isinstance(answered[3], InsufficientBalance)
    seen.clear()
    fallen_back = run([13, 14, 15])
    assert len(seen) == 1  # tried once together, then each alone
    assert (fallen_back[13], fallen_back[14]) == (-13, -14)
    assert isinstance(fallen_back[15], InvalidRequest)


def _check_bodies(bank: Runtime, partner: Partner, token: str, batched: bool) -> list[str]:
    """Three two-step /rko payouts (one to a tokenized account, one in v2) through the
    ``check`` step, one at a time or as one batch; their ``ready_to_confirm`` bodies."""
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
    return _step_bodies(bank, started, "check", batched, own=partner.account)


def _step_bodies(
    bank: Runtime, started: list[Any], work: str, batched: bool, own: str | None = None
) -> list[str]:
    """Run the claimed ``work`` steps of the ``started`` sessions one at a time or as one
    batch; each session's one webhook body, numbers (and the ``own`` account) masked."""
    claimed = bank.worker.claim()
    assert [c.work for c in claimed] == [work] * len(started)
    if batched:
        assert work_batch.run(bank.worker, claimed) == []  # no batch fell back to single steps
    else:
        for n, kind, _, reference in claimed:
            bank.worker.run_step(n, kind, fresh=reference is not None)
    out = []
    for answer in started:
        [body] = event_bytes(bank, answer["session"]["id"])
        text = body.decode() if own is None else body.decode().replace(own, "OWN")
        out.append(re.sub(r"(ps|po)_\d+", r"\1_N", text))
    return out


def test_a_batched_check_step_writes_what_single_steps_write(
    bank: Runtime, onboard: Onboard
) -> None:
    partner = onboard("acme", account=100_000, inn="7707083893", legal_name="ACME")
    token = partner.ok(
        "tokenize", {"type": "bank_account_ru", "bank_account_ru": ORGANISATION_ACCOUNT}
    )["token"]
    alone = _check_bodies(bank, partner, token, batched=False)
    together = _check_bodies(bank, partner, token, batched=True)
    assert together == alone
    assert all('"ready_to_confirm"' in body and "confirm_information" in body for body in alone)
    assert ORGANISATION_ACCOUNT["account"] in alone[1]  # the tokenized account, in full
    with bank.db.read() as conn:
        sealed = conn.execute(
            sa.select(sa.func.count()).where(t.events.c.body_key_id.is_not(None))
        ).scalar_one()
    assert sealed == 2  # that body is sealed at rest, batched or not


def _init(partner: Partner) -> str:
    return str(partner.ok("session/init/payout", payout_body(1_000))["session"]["id"])


def _confirm_calls(
    bank: Runtime, project_id: str, mine: list[str], theirs: str
) -> list[tuple[Any, Any]]:
    project = bank.projects.get(project_id)
    assert project is not None
    call = sessions.Call(
        project=project, version="v1", rko=False, now=bank.clock.now(), directory=bank.directory
    )
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
    return [(call, body) for body in bodies]


def test_confirm_calls_of_one_group_get_what_each_call_alone_gets(
    bank: Runtime, onboard: Onboard
) -> None:
    one = onboard("one", wallet=100_000)
    many = onboard("many", wallet=100_000)
    ones, manys = [_init(one) for _ in range(3)], [_init(many) for _ in range(3)]
    bank.worker.drain()  # these wait for confirmation; the next two are not checked yet
    ones.append(_init(one))
    manys.append(_init(many))
    with bank.db.write() as conn:
        alone: list[Any] = []
        for call, body in _confirm_calls(bank, "one", ones, manys[0]):
            try:
                with conn.begin_nested():
                    alone.append({"status": "ok", "session": sessions.confirm(conn, call, body)})
            except ApiError as exc:
                alone.append(exc)
    with bank.db.write() as conn:
        together = sessions_batch.confirm_many(conn, _confirm_calls(bank, "many", manys, ones[0]))
    assert [type(o).__name__ for o in together] == [
        "dict",
        "InvalidRequest",
        "NotFound",
        "AuthorizationError",
        "InvalidRequest",
        "SessionWrongState",
        "dict",
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
    with bank.db.write() as conn:  # one session twice: the group runs the calls one by one
        twice = _confirm_calls(bank, "many", manys, ones[0])[:1] * 2
        with pytest.raises(RuntimeError, match="confirmed twice in one batch"):
            sessions_batch.confirm_many(conn, twice)


def test_status_in_one_statement_renders_what_the_session_render_renders(
    bank: Runtime, clock: ManualClock, onboard: Onboard
) -> None:
    """``session/status`` reads a session, its payout and its refund with one join; every
    state a session can be in must render as ``sessions.render`` renders it."""
    partner = onboard("acme", wallet=1_000_000, single_request=True)
    returned = scenarios.by_name("returned").example_amount
    created = partner.ok("session/create", {})["session"]["id"]
    paid = partner.ok("session/init/payout", payout_body(10_000))["session"]["id"]
    refunded = partner.ok("session/init/payout", payout_body(returned))["session"]["id"]
    bank.worker.drain()
    clock.advance(3 * scenarios.DAY)
    bank.worker.drain()
    waiting = partner.ok("session/init/payout", payout_body(20_000))["session"]["id"]
    project = bank.projects.get("acme")
    assert project is not None
    seen = []
    with bank.db.read() as conn:
        for session_id in (created, paid, refunded, waiting):
            for version in ("v1", "v2"):
                call = sessions.Call(
                    project=project,
                    version=version,
                    rko=False,
                    now=clock.now(),
                    directory=bank.directory,
                )
                n = int(session_id.removeprefix("ps_"))
                expected = sessions.render(conn, n, version)
                assert sessions.status(conn, call, {"session_id": session_id}) == expected
                seen.append(expected)
    assert "refunds" in json.dumps(seen[4])  # the refunded one, in v1, shows its refund
    assert not any("refunds" in json.dumps(s) for s in seen[:4])


def _execute_bodies(bank: Runtime, partner: Partner, batched: bool) -> list[str]:
    """Three single-request payouts (one with a fee) through the ``execute`` step, one at a
    time or as one batch; their ``payment_finished`` bodies."""
    started = [
        partner.ok("session/init/payout", payout_body(amount)) for amount in (1_000, 2_000, 3_000)
    ]
    return _step_bodies(bank, started, "execute", batched)


def test_a_batched_execute_step_writes_what_single_steps_write(
    bank: Runtime, onboard: Onboard
) -> None:
    partner = onboard("acme", wallet=100_000, single_request=True, fee_fixed=10)
    alone = _execute_bodies(bank, partner, batched=False)
    together = _execute_bodies(bank, partner, batched=True)
    assert together == alone
    assert all('"payment_finished"' in body and '"succeeded"' in body for body in alone)
    with bank.db.read() as conn:
        assert ledger.check(conn) == []
        wallet = ledger.account_id(conn, "wallet:acme")
        assert wallet is not None
        paid = 2 * (1_000 + 2_000 + 3_000 + 3 * 10)
        assert ledger.balance(conn, wallet) == ledger.Balance(100_000 - paid, 0)
        kinds = conn.execute(
            sa.select(t.ledger_transactions.c.kind, sa.func.count())
            .group_by(t.ledger_transactions.c.kind)
            .order_by(t.ledger_transactions.c.kind)
        ).all()
    assert [tuple(k) for k in kinds] == [("fee", 6), ("payout", 6), ("topup", 1)]
