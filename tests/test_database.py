"""The store's two kinds of transaction, on both engines: what a read may see."""

from __future__ import annotations

import sqlalchemy as sa

from banking import Onboard
from payout131 import ledger
from payout131.bank import Bank
from payout131.storage import schema as t


def test_a_read_sees_one_snapshot_whatever_commits_meanwhile(bank: Bank, onboard: Onboard) -> None:
    """A session and its payouts are read by two statements (``session/status``); a commit
    landing between them must not show in the second (PostgreSQL's READ COMMITTED would)."""
    onboard("acme", wallet=5_000)
    accounts = sa.select(sa.func.count()).select_from(t.ledger_accounts)
    with bank.db.read() as conn:
        before = conn.execute(accounts).scalar_one()
        wallet = ledger.account_id(conn, "wallet:acme")
        assert wallet is not None
        with bank.db.write() as other:  # another connection commits meanwhile
            ledger.open_account(other, "later", "system", None, 0)
            ledger.topup(other, wallet, 1_000, 0)
        assert conn.execute(accounts).scalar_one() == before
        assert ledger.balance(conn, wallet).balance == 5_000
    with bank.db.read() as conn:
        assert conn.execute(accounts).scalar_one() == before + 1
        assert ledger.balance(conn, wallet).balance == 6_000
