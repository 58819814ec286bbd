"""Statements run straight through the driver (storage/raw.py), on both engines."""

from __future__ import annotations

import gc

import pytest
import sqlalchemy as sa

from banking import Onboard
from payout131.runtime import Runtime
from payout131.server import heap
from payout131.storage import schema as t
from payout131.storage import sql
from payout131.storage.sql import Sql

CODES = Sql(
    """SELECT id, code, kind FROM ledger_accounts
    WHERE code = ANY(:codes) AND code <> ALL(:skip) ORDER BY id FOR UPDATE"""
)
HELD = Sql("UPDATE ledger_accounts SET held = held + :add WHERE id = :id")
HELD_NOW = Sql("SELECT held FROM ledger_accounts WHERE id = :id")
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
