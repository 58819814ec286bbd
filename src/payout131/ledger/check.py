"""``payout131 ledger check``: every balance recomputed from the entries, every hold counted.

The database keeps ``balance`` and ``held`` as the entries and the holds are written; this
recomputes both from scratch and lists every place where they, or a transaction, do not
add up. A clean ledger gives an empty list.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from payout131.storage import schema as t

__all__ = ["ORPHANS", "violations"]

# entries whose transaction is missing. NOT EXISTS, not NOT IN: PostgreSQL hashes a NOT IN
# list only while it fits in work_mem; past that (about a million transactions) it rescans
# the list for every entry, and the check of a million payouts ran for hours
ORPHANS = (
    sa.select(sa.func.count())
    .select_from(t.ledger_entries)
    .where(~sa.exists().where(t.ledger_transactions.c.id == t.ledger_entries.c.transaction_id))
)


def violations(conn: Connection) -> list[str]:
    """Recompute every balance from the entries; return each violation found."""
    problems: list[str] = []
    a, e, h = t.ledger_accounts, t.ledger_entries, t.holds
    sums = (
        sa.select(e.c.account_id, sa.func.sum(e.c.amount).label("total"))
        .group_by(e.c.account_id)
        .subquery()
    )
    active = (
        sa.select(h.c.account_id, sa.func.sum(h.c.amount).label("total"))
        .where(h.c.status == "active")
        .group_by(h.c.account_id)
        .subquery()
    )
    rows = conn.execute(
        sa.select(
            a.c.code,
            a.c.kind,
            a.c.balance,
            a.c.held,
            sa.func.coalesce(sums.c.total, 0).label("entries"),
            sa.func.coalesce(active.c.total, 0).label("holds"),
        )
        .outerjoin(sums, sums.c.account_id == a.c.id)
        .outerjoin(active, active.c.account_id == a.c.id)
    )
    for row in rows:
        if int(row.balance) != int(row.entries):
            problems.append(
                f"{row.code}: balance {row.balance} kopecks but entries sum to {row.entries}"
            )
        if int(row.held) != int(row.holds):
            problems.append(
                f"{row.code}: held {row.held} kopecks but active holds sum to {row.holds}"
            )
        if row.kind != "system" and int(row.balance) - int(row.held) < 0:
            problems.append(f"{row.code}: available balance is negative")
    unbalanced = conn.execute(
        sa.select(e.c.transaction_id, sa.func.sum(e.c.amount))
        .group_by(e.c.transaction_id)
        .having(sa.func.sum(e.c.amount) != 0)
    )
    problems.extend(
        f"transaction {txn}: entries sum to {total} kopecks, not 0" for txn, total in unbalanced
    )
    orphans = conn.execute(ORPHANS).scalar_one()
    if orphans:
        problems.append(f"{orphans} entries belong to no transaction")
    return problems
