"""queues stay fast as they age; the ledger moves a balance once per statement

Revision ID: 0019
Revises: 0018

- ``ix_events_waiting``: the events still to deliver, in the order the dispatcher claims
  them (``next_attempt_at, id``), and only those. ``ix_events_due`` (status first) also held
  every event that had waited since the last vacuum: under load the claim's bitmap scan
  visited thousands of them for a few dozen live ones (2 ms a claim, the database's
  dearest statement per payout; docs/benchmarks.md, eleventh round). An ordered scan of the
  partial index stops at the claim's limit and marks the dead entries it passes.
- ``ix_session_calls_at``: ``payout131 purge`` finds old recorded calls by ``at``.
- PostgreSQL: an entry still refuses to join a closed transaction row by row, but the
  balances move once per statement (``AFTER INSERT ... FOR EACH STATEMENT`` over the new
  rows), the accounts locked in id order first. A batch of payouts posted to one hot
  account updated its row once per entry, each update walking the versions the statement
  had made before it. The accounts' CHECK still refuses a negative available balance: the
  statement fails as a whole. SQLite keeps its row trigger (one writer, no row versions).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

_WAITING = "status IN ('pending', 'failed')"

_POSTGRESQL = [
    "DROP TRIGGER ledger_entries_apply ON ledger_entries",
    "DROP FUNCTION ledger_entry_insert()",
    """CREATE FUNCTION ledger_entry_open() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN
         IF EXISTS (SELECT 1 FROM ledger_transactions WHERE id = NEW.transaction_id) THEN
           RAISE EXCEPTION 'ledger transaction is closed';
         END IF;
         RETURN NEW;
       END $$""",
    """CREATE TRIGGER ledger_entries_open BEFORE INSERT ON ledger_entries
       FOR EACH ROW EXECUTE FUNCTION ledger_entry_open()""",
    """CREATE FUNCTION ledger_entries_apply() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN
         PERFORM 1 FROM ledger_accounts
           WHERE id IN (SELECT account_id FROM added) ORDER BY id FOR UPDATE;
         UPDATE ledger_accounts a SET balance = a.balance + s.total
           FROM (SELECT account_id, SUM(amount) AS total FROM added GROUP BY account_id) s
           WHERE a.id = s.account_id;
         RETURN NULL;
       END $$""",
    """CREATE TRIGGER ledger_entries_apply AFTER INSERT ON ledger_entries
       REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION ledger_entries_apply()""",
]


def upgrade() -> None:
    op.create_index(
        "ix_events_waiting",
        "events",
        ["next_attempt_at", "id"],
        postgresql_where=sa.text(_WAITING),
        sqlite_where=sa.text(_WAITING),
    )
    op.create_index("ix_session_calls_at", "session_calls", ["at"])
    if op.get_bind().dialect.name == "postgresql":
        for statement in _POSTGRESQL:
            op.execute(statement)


def downgrade() -> None:
    raise NotImplementedError("migrations only go forward")
