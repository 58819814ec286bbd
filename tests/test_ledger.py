"""The ledger: the database itself refuses what does not add up, under any concurrency."""

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
from payout131 import ledger
from payout131.client import signing
from payout131.projects import wallet_code
from payout131.runtime import Runtime
from payout131.storage import schema as t

_projects = itertools.count()
_payouts = itertools.count(10**9)


def wallet(bank: Runtime, project: str) -> int:
    with bank.db.read() as conn:
        account = ledger.account_id(conn, wallet_code(project))
    assert account is not None
    return account


def test_unbalanced_transaction_is_refused_by_the_database(bank: Runtime, onboard: Onboard) -> None:
    onboard(wallet=1_000)
    account = wallet(bank, "acme")
    with bank.db.read() as conn:
        funding = ledger.account_id(conn, ledger.FUNDING)
    assert funding is not None
    with pytest.raises(DBAPIError, match="does not balance"), bank.db.write() as conn:
        ledger.transfer(conn, "topup", [(funding, -100), (account, 99)], 1)


def test_single_entry_transaction_is_refused(bank: Runtime, onboard: Onboard) -> None:
    onboard()
    account = wallet(bank, "acme")
    with pytest.raises(DBAPIError, match="does not balance"), bank.db.write() as conn:
        ledger.transfer(conn, "topup", [(account, 1)], 1)


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
        paid = ledger.account_id(conn, ledger.PAYOUTS)
    assert paid is not None
    with pytest.raises(IntegrityError), bank.db.write() as conn:
        ledger.transfer(conn, "payout", [(account, -1_001), (paid, 1_001)], 1)


def test_a_hold_is_resolved_once(bank: Runtime, onboard: Onboard) -> None:
    onboard(wallet=1_000)
    account = wallet(bank, "acme")
    with bank.db.write() as conn:
        ledger.place_hold(conn, account, 77, 400, 1)
        ledger.post_hold(conn, 77, 2)
        with pytest.raises(ledger.HoldAlreadyResolved):
            ledger.release_hold(conn, 77, 3)
        assert ledger.balance(conn, account) == ledger.Balance(600, 0)


def test_ledger_check_finds_a_tampered_balance(bank: Runtime, onboard: Onboard) -> None:
    onboard(wallet=1_000)
    account = wallet(bank, "acme")
    with bank.db.write() as conn:
        conn.execute(
            sa.update(t.ledger_accounts)
            .where(t.ledger_accounts.c.id == account)
            .values(balance=999)
        )
        problems = ledger.check(conn)
        assert problems == ["wallet:acme: balance 999 but entries sum to 1000"]
        conn.execute(
            sa.update(t.ledger_accounts)
            .where(t.ledger_accounts.c.id == account)
            .values(balance=1_000)
        )


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
                ledger.topup(conn, account, amount, n)
                booked += amount
            elif op == "hold":
                if booked - held >= amount:
                    ledger.place_hold(conn, account, payout_n, amount, n)
                    held += amount
                    active.append((payout_n, amount))
                else:
                    with pytest.raises(Exception, match="exceeds the available"):
                        ledger.place_hold(conn, account, payout_n, amount, n)
            elif active:
                hold_n, hold_amount = active.pop(0)
                held -= hold_amount
                if op == "post":
                    ledger.post_hold(conn, hold_n, n)
                    booked -= hold_amount
                else:
                    ledger.release_hold(conn, hold_n, n)
        with bank.db.read() as conn:
            assert ledger.balance(conn, account) == ledger.Balance(booked, held)
            assert ledger.check(conn) == []


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
        account = ledger.account_id(conn, partner.account)
        assert account is not None
        assert holds == 10
        assert ledger.balance(conn, account) == ledger.Balance(100_000, 100_000)


def test_wallet_payouts_move_money_out(bank: Runtime, onboard: Onboard) -> None:
    partner = onboard(wallet=10_000, single_request=True)
    partner.ok("session/init/payout", payout_body(4_000))
    bank.worker.drain()
    with bank.db.read() as conn:
        paid = ledger.account_id(conn, ledger.PAYOUTS)
        assert paid is not None
        assert ledger.balance(conn, paid).balance == 4_000
        assert ledger.balance(conn, wallet(bank, "acme")) == ledger.Balance(6_000, 0)
