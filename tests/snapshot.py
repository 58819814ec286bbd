"""What the store holds: a refused request must leave all of it unchanged.

Rows are counted in every table but the record of calls (inserts), and the rows that
change in place (sessions, payouts, balances, holds, public tokens) are read whole, so an
update shows too.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from payout131.runtime import Runtime
from payout131.storage import schema as t

_MUTABLE = (t.sessions, t.payouts, t.ledger_accounts, t.holds, t.public_tokens)


# the record of calls (payouts/call_record.py) keeps a refused call by design: it is what
# the console's story shows of a refusal, not a change the refused call made
_LOGS = (t.session_calls,)


def snapshot(bank: Runtime) -> dict[str, Any]:
    tables = [table for table in t.metadata.sorted_tables if table not in _LOGS]
    counts = [sa.select(sa.func.count()).select_from(table).scalar_subquery() for table in tables]
    with bank.db.read() as conn:
        values = conn.execute(sa.select(*counts)).one()
        state: dict[str, Any] = {
            table.name: int(value) for table, value in zip(tables, values, strict=True)
        }
        for table in _MUTABLE:
            key = next(iter(table.primary_key.columns))
            state[f"{table.name}.rows"] = [
                tuple(row) for row in conn.execute(sa.select(table).order_by(key))
            ]
    return state
