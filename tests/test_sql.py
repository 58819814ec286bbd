"""Statements run straight through the driver (storage/sql.py), on both engines; the rows'
numbers (storage/numbers.py)."""

from __future__ import annotations

import gc
from typing import NamedTuple

import pytest
import sqlalchemy as sa

from banking import Onboard
from payout131.runtime import Runtime
from payout131.server import heap
from payout131.storage import numbers, sql
from payout131.storage import schema as t
from payout131.storage.sql import Sql

CODES = Sql(
    """SELECT id, code, kind FROM ledger_accounts
    WHERE code = ANY(:codes) AND code <> ALL(:skip) ORDER BY id FOR UPDATE"""
)
HELD = Sql("UPDATE ledger_accounts SET held = held + :add WHERE id = :id")
HELD_NOW = Sql("SELECT held FROM ledger_accounts WHERE id = :id")
# (``held`` is the database's to keep: these tests change it only to roll back)
SESSIONS = Sql("SELECT n, rko FROM sessions WHERE n = ANY(:numbers)", booleans=["rko"])


def test_a_statement_is_rendered_once_per_engine() -> None:
    assert CODES.postgresql.endswith(
        "code = ANY(%(codes)s) AND code <> ALL(%(skip)s) ORDER BY id FOR UPDATE"
    )
    assert CODES.sqlite.endswith(
        "code IN (SELECT value FROM json_each(:codes))"
        " AND code NOT IN (SELECT value FROM json_each(:skip)) ORDER BY id"
    )
    assert CODES.lists == {"codes", "skip"}
    assert "::int" in Sql("SELECT :n::int").postgresql  # a cast is not a parameter


def test_lists_of_any_length_select_what_they_name(bank: Runtime, onboard: Onboard) -> None:
    onboard("acme", wallet=1_000)
    onboard("globex", wallet=2_000)
    with bank.db.write() as conn:
        both = sql.rows(conn, CODES, {"codes": ["wallet:acme", "wallet:globex"], "skip": []})
        assert [row.code for row in both] == ["wallet:acme", "wallet:globex"]
        assert both[0]._mapping == {"id": both[0].id, "code": "wallet:acme", "kind": "wallet"}
        assert both[0].id < both[1].id
        one = sql.rows(
            conn, CODES, {"codes": ["wallet:acme", "wallet:globex"], "skip": ["wallet:acme"]}
        )
        assert [row.code for row in one] == ["wallet:globex"]
        assert sql.rows(conn, CODES, {"codes": [], "skip": []}) == []


def test_writes_join_the_callers_transaction(bank: Runtime, onboard: Onboard) -> None:
    onboard("acme", wallet=1_000)
    held = sa.select(t.ledger_accounts.c.held).where(t.ledger_accounts.c.code == "wallet:acme")
    with bank.db.write() as conn:
        (wallet,) = sql.rows(conn, CODES, {"codes": ["wallet:acme"], "skip": []})
        sql.many(conn, HELD, [{"id": wallet.id, "add": 100}, {"id": wallet.id, "add": 50}])
        assert sql.run(conn, HELD, {"id": wallet.id, "add": 1}) == 1
        assert conn.execute(held).scalar_one() == 151  # SQLAlchemy sees it: one transaction
        conn.rollback()
    with bank.db.read() as conn:
        assert conn.execute(held).scalar_one() == 0  # and it went with the rollback


def test_in_a_pipeline_a_read_sees_the_writes_sent_before_it(
    bank: Runtime, onboard: Onboard
) -> None:
    onboard("acme", wallet=1_000)
    with bank.db.write() as conn:
        (wallet,) = sql.rows(conn, CODES, {"codes": ["wallet:acme"], "skip": []})
        with sql.pipeline(conn):
            sql.run(conn, HELD, {"id": wallet.id, "add": 5})
            sql.many(conn, HELD, [{"id": wallet.id, "add": 10}])
            first, second = sql.together(
                conn,
                [(HELD_NOW, {"id": wallet.id}), (CODES, {"codes": ["wallet:acme"], "skip": []})],
            )
            assert first[0].held == 15
            assert [row.code for row in second] == ["wallet:acme"]
            sql.run(conn, HELD, {"id": wallet.id, "add": 100})  # sent when the block ends
        assert sql.rows(conn, HELD_NOW, {"id": wallet.id})[0].held == 115
        conn.rollback()


def test_booleans_come_back_as_booleans(bank: Runtime, onboard: Onboard) -> None:
    partner = onboard("acme", wallet=10_000)
    session = partner.ok("session/create/rko", {"metadata": "good"})["session"]
    number = int(session["id"].removeprefix("ps_"))
    with bank.db.read() as conn:
        (row,) = sql.rows(conn, SESSIONS, {"numbers": [number]})
    assert row.rko is True


@pytest.mark.usefixtures("bank")
def test_settle_keeps_what_exists_out_of_later_collections() -> None:
    try:
        heap.settle()
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()


class Refs(NamedTuple):
    n: int
    rko: bool


REFS = Sql("SELECT n, rko FROM sessions WHERE n = ANY(:numbers) ORDER BY n", make=Refs)


def test_rows_come_back_as_the_statements_records(bank: Runtime, onboard: Onboard) -> None:
    partner = onboard("acme", wallet=10_000)
    made = [partner.ok("session/create/rko", {})["session"]["id"] for _ in range(2)]
    numbers = [int(s.removeprefix("ps_")) for s in made]
    with bank.db.read() as conn:
        found = sql.rows(conn, REFS, {"numbers": numbers})
    assert found == [Refs(numbers[0], True), Refs(numbers[1], True)]
    assert all(type(row) is Refs and row.rko is True for row in found)  # a bool, also on SQLite
    wrong = Sql("SELECT rko, n FROM sessions", make=Refs)
    with bank.db.read() as conn, pytest.raises(TypeError, match="fields"):
        sql.rows(conn, wrong)


def test_many_rows_go_in_as_one_insert_and_come_back_with_many_returning(
    bank: Runtime, onboard: Onboard
) -> None:
    onboard("acme")
    rows = [
        {"code": f"system:test{i}", "kind": "system", "project_id": None, "created_at": i}
        for i in range(5)
    ]
    ids = Sql("SELECT id FROM ledger_accounts WHERE code = :code")
    with bank.db.write() as conn:
        sql.insert(conn, t.ledger_accounts, rows)
        found = sql.many_returning(conn, ids, [{"code": r["code"]} for r in reversed(rows)])
        assert len(found) == 5
        assert [row.id for row in found] == sorted((row.id for row in found), reverse=True)
        conn.rollback()


def test_numbers_are_drawn_in_order_and_never_twice(bank: Runtime, onboard: Onboard) -> None:
    partner = onboard("acme", wallet=10_000)
    last = int(partner.ok("session/create", {})["session"]["id"].removeprefix("ps_"))
    with bank.db.write() as conn:
        drawn = numbers.draw(conn, {"sessions": 3, "payouts": 0})
    assert drawn["payouts"] == []
    assert drawn["sessions"] == sorted(drawn["sessions"])
    assert len(set(drawn["sessions"])) == 3
    assert drawn["sessions"][0] > last
    nxt = int(partner.ok("session/create", {})["session"]["id"].removeprefix("ps_"))
    assert nxt > last
