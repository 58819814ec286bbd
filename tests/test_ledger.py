"""The ledger: the database itself refuses what does not add up, under any concurrency.

Every refusal is shown on both engines: an unbalanced transaction, a changed entry, a
negative available balance, a hold its account cannot cover, a hold placed other than
active, changed other than from active to posted or released, resolved twice, deleted."""

from __future__ import annotations

import asyncio
import itertools
import json

import httpx
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.exc import DBAPIError, IntegrityError

from banking import Onboard
from partner import payout_body
from payout131.client import signing
from payout131.ledger import accounts, book
from payout131.ledger.accounts import wallet_code
from payout131.ledger.check import ORPHANS, violations
from payout131.runtime import Runtime
from payout131.storage import schema as t
from payout131.storage.refusals import REFUSED

_projects = itertools.count()
_payouts = itertools.count(10**9)


def wallet(bank: Runtime, project: str) -> int:
    with bank.db.read() as conn:
        account = accounts.account_id(conn, wallet_code(project))
    assert account is not None
    return account


def test_unbalanced_transaction_is_refused_by_the_database(bank: Runtime, onboard: Onboard) -> None:
    onboard(wallet=1_000)
    account = wallet(bank, "acme")
    with bank.db.read() as conn:
        funding = accounts.account_id(conn, accounts.FUNDING)
    assert funding is not None
    unbalanced = book.Transaction("topup", ((funding, -100), (account, 99)))
    with pytest.raises(REFUSED, match="does not balance"), bank.db.write() as conn:
        book.write(conn, [unbalanced], 1)


def test_single_entry_transaction_is_refused(bank: Runtime, onboard: Onboard) -> None:
    onboard()
    account = wallet(bank, "acme")
    with pytest.raises(REFUSED, match="does not balance"), bank.db.write() as conn:
        book.write(conn, [book.Transaction("topup", ((account, 1),))], 1)


def test_entries_are_append_only(bank: Runtime, onboard: Onboard) -> None:
    onboard(wallet=1_000)
    for statement in (
        sa.update(t.ledger_entries).values(amount=5),
        sa.delete(t.ledger_entries),
        sa.update(t.ledger_transactions).values(memo="edited"),
        sa.delete(t.ledger_transactions),
    ):
        with pytest.raises(DBAPIError, match="append-only"), bank.db.write() as conn:
            conn.execute(statement)


def test_negative_available_balance_is_refused_by_the_database(
    bank: Runtime, onboard: Onboard
) -> None:
    onboard(wallet=1_000)
    account = wallet(bank, "acme")
    with pytest.raises(IntegrityError), bank.db.write() as conn:
        conn.execute(
            sa.update(t.ledger_accounts).where(t.ledger_accounts.c.id == account).values(held=1_001)
        )
    with bank.db.read() as conn:
        paid = accounts.account_id(conn, accounts.PAYOUTS)
    assert paid is not None
    with pytest.raises(REFUSED), bank.db.write() as conn:
        book.write(conn, [book.Transaction("payout", ((account, -1_001), (paid, 1_001)))], 1)


def test_a_hold_is_resolved_once(bank: Runtime, onboard: Onboard) -> None:
    onboard(wallet=1_000)
    account = wallet(bank, "acme")
    with bank.db.write() as conn:
        book.place_holds(conn, [book.Hold(account, 77, 400)], 1)
        assert accounts.balance(conn, account) == accounts.Balance(1_000, 400)
        book.post_holds(conn, [book.Posting(77, 0)], 2)
        with pytest.raises(book.HoldAlreadyResolved):
            book.release_holds(conn, [77], 3)
        assert accounts.balance(conn, account) == accounts.Balance(600, 0)


def test_the_database_keeps_held_and_refuses_a_hold_it_cannot_cover(
    bank: Runtime, onboard: Onboard
) -> None:
    """``held`` follows the holds written, with no code touching it; a hold beyond the
    available balance is refused by the accounts' CHECK, and leaves nothing behind."""
    onboard(wallet=1_000)
    account = wallet(bank, "acme")
    with bank.db.write() as conn:
        book.place_holds(conn, [book.Hold(account, 1, 300), book.Hold(account, 2, 500)], 1)
        assert accounts.balance(conn, account) == accounts.Balance(1_000, 800)
        book.release_holds(conn, [1], 2)
        assert accounts.balance(conn, account) == accounts.Balance(1_000, 500)
    with pytest.raises(book.Uncovered), bank.db.write() as conn:
        book.place_holds(conn, [book.Hold(account, 3, 400), book.Hold(account, 4, 101)], 3)
    with bank.db.read() as conn:
        assert accounts.balance(conn, account) == accounts.Balance(1_000, 500)
        holds = conn.execute(sa.select(sa.func.count()).select_from(t.holds)).scalar_one()
        assert holds == 2


@pytest.mark.parametrize(
    ("change", "refusal"),
    [
        ({"status": "released"}, "changes once"),  # posted, then released
        ({"status": "active"}, "changes once"),  # posted, then active again
        ({"amount": 1}, "changes once"),
        ({"account_id": 1}, "changes once"),
    ],
)
def test_a_resolved_hold_never_changes_again(
    bank: Runtime, onboard: Onboard, change: dict[str, object], refusal: str
) -> None:
    onboard(wallet=1_000)
    account = wallet(bank, "acme")
    with bank.db.write() as conn:
        book.place_holds(conn, [book.Hold(account, 5, 100)], 1)
        book.post_holds(conn, [book.Posting(5, 0)], 2)
    with pytest.raises(DBAPIError, match=refusal), bank.db.write() as conn:
        conn.execute(sa.update(t.holds).where(t.holds.c.payout_n == 5).values(**change))


@pytest.mark.parametrize(
    "change",
    [
        {"status": "active"},  # active to active: not a resolution
        {"amount": 99},
        {"status": "posted", "amount": 99},
        {"status": "expired"},
    ],
)
def test_an_active_hold_only_resolves(
    bank: Runtime, onboard: Onboard, change: dict[str, object]
) -> None:
    onboard(wallet=1_000)
    account = wallet(bank, "acme")
    with bank.db.write() as conn:
        book.place_holds(conn, [book.Hold(account, 6, 100)], 1)
    with pytest.raises(DBAPIError), bank.db.write() as conn:
        conn.execute(sa.update(t.holds).where(t.holds.c.payout_n == 6).values(**change))
    with bank.db.read() as conn:
        assert accounts.balance(conn, account) == accounts.Balance(1_000, 100)


def test_holds_are_placed_active_and_never_deleted(bank: Runtime, onboard: Onboard) -> None:
    onboard(wallet=1_000)
    account = wallet(bank, "acme")
    resolved = {"account_id": account, "payout_n": 8, "amount": 100, "created_at": 1}
    with pytest.raises(DBAPIError, match="placed active"), bank.db.write() as conn:
        conn.execute(sa.insert(t.holds).values(**resolved, status="posted", resolved_at=1))
    with bank.db.write() as conn:
        book.place_holds(conn, [book.Hold(account, 9, 100)], 1)
    for statement in (sa.delete(t.holds), sa.delete(t.holds).where(t.holds.c.payout_n == 9)):
        with pytest.raises(DBAPIError, match="never deleted"), bank.db.write() as conn:
            conn.execute(statement)
    with bank.db.read() as conn:
        assert accounts.balance(conn, account) == accounts.Balance(1_000, 100)


def test_ledger_check_finds_a_tampered_balance(bank: Runtime, onboard: Onboard) -> None:
    onboard(wallet=1_000)
    account = wallet(bank, "acme")
    with bank.db.write() as conn:
        conn.execute(
            sa.update(t.ledger_accounts)
            .where(t.ledger_accounts.c.id == account)
            .values(balance=999)
        )
        problems = violations(conn)
        assert problems == ["wallet:acme: balance 999 kopecks but entries sum to 1000"]
        conn.execute(
            sa.update(t.ledger_accounts)
            .where(t.ledger_accounts.c.id == account)
            .values(balance=1_000)
        )


def test_ledger_check_never_rescans_the_transactions_per_entry(bank: Runtime) -> None:
    """The orphan count is an anti join, whatever the memory: as a NOT IN list, PostgreSQL
    rescanned a list too large for work_mem once for every entry (hours at a million)."""
    if bank.db.is_sqlite:
        pytest.skip("SQLite plans NOT EXISTS and NOT IN alike: a lookup in the primary key")
    with bank.db.read() as conn:
        conn.exec_driver_sql("SET LOCAL work_mem = '64kB'")
        conn.exec_driver_sql("SET LOCAL enable_hashjoin = off")  # the plan of a big ledger
        compiled = ORPHANS.compile(conn)
        plan = conn.exec_driver_sql(f"EXPLAIN {compiled}").scalars().all()
    assert any("Anti Join" in line for line in plan), plan
    assert not any("SubPlan" in line for line in plan), plan


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    steps=st.lists(
        st.tuples(st.sampled_from(["topup", "hold", "post", "release"]), st.integers(1, 5_000)),
        max_size=30,
    )
)
def test_random_operations_keep_the_invariants(
    bank: Runtime, onboard: Onboard, steps: list[tuple[str, int]]
) -> None:
    """Whatever sequence of top-ups, holds, posts and releases: balances match a model."""
    project = f"p{next(_projects)}"  # the bank fixture is shared by the examples
    onboard(project)
    account = wallet(bank, project)
    booked, held, active = 0, 0, []
    for n, (op, amount) in enumerate(steps):
        payout_n = next(_payouts)
        with bank.db.write() as conn:
            if op == "topup":
                book.topup(conn, account, amount, n)
                booked += amount
            elif op == "hold":
                if booked - held >= amount:
                    book.place_holds(conn, [book.Hold(account, payout_n, amount)], n)
                    held += amount
                    active.append((payout_n, amount))
                else:
                    with pytest.raises(book.Uncovered), conn.begin_nested():
                        book.place_holds(conn, [book.Hold(account, payout_n, amount)], n)
            elif active:
                hold_n, hold_amount = active.pop(0)
                held -= hold_amount
                if op == "post":
                    book.post_holds(conn, [book.Posting(hold_n, 0)], n)
                    booked -= hold_amount
                else:
                    book.release_holds(conn, [hold_n], n)
        with bank.db.read() as conn:
            assert accounts.balance(conn, account) == accounts.Balance(booked, held)
            assert violations(conn) == []


def test_concurrent_payouts_never_overdraw(bank: Runtime, onboard: Onboard) -> None:
    """32 payout starts at once against money for 10: exactly 10 holds, never below zero."""
    partner = onboard(account=100_000)
    assert partner.account is not None
    base = str(partner.http.base_url)

    async def start(i: int, client: httpx.AsyncClient) -> int:
        raw = json.dumps(partner.rko_body(10_000)).encode()
        headers = {
            "X-PARTNER-PROJECT": partner.project,
            "X-PARTNER-SIGN": signing.sign(partner.key, raw),
            "Content-Type": "application/json",
        }
        response = await client.post(
            "/api/v1/session/init/payout/rko", content=raw, headers=headers
        )
        return response.status_code

    async def all_at_once() -> list[int]:
        async with httpx.AsyncClient(base_url=base, timeout=60) as client:
            return await asyncio.gather(*(start(i, client) for i in range(32)))

    statuses = asyncio.run(all_at_once())
    assert sorted(statuses) == [200] * 10 + [400] * 22
    with bank.db.read() as conn:
        holds = conn.execute(sa.select(sa.func.count()).select_from(t.holds)).scalar_one()
        account = accounts.account_id(conn, partner.account)
        assert account is not None
        assert holds == 10
        assert accounts.balance(conn, account) == accounts.Balance(100_000, 100_000)


def test_wallet_payouts_move_money_out(bank: Runtime, onboard: Onboard) -> None:
    partner = onboard(wallet=10_000, single_request=True)
    partner.ok("session/init/payout", payout_body(4_000))
    bank.worker.drain()
    with bank.db.read() as conn:
        paid = accounts.account_id(conn, accounts.PAYOUTS)
        assert paid is not None
        assert accounts.balance(conn, paid).balance == 4_000
        assert accounts.balance(conn, wallet(bank, "acme")) == accounts.Balance(6_000, 0)
