"""ledger rules the database enforces

Revision ID: 0002
Revises: 0001

The database, not only the code, refuses a ledger that does not add up:
- a transaction's entries are written first and its header row last; inserting the header
  fails unless it has at least two entries summing to zero;
- an entry cannot join a transaction whose header exists (it is closed);
- entries and transaction headers are append-only (no UPDATE, no DELETE);
- each entry moves its account's ``balance`` (so the cached balance is the entries' sum), and
  the accounts' CHECK constraint refuses a negative available balance for partner accounts.
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_SQLITE = [
    """CREATE TRIGGER ledger_entries_no_update BEFORE UPDATE ON ledger_entries
       BEGIN SELECT RAISE(ABORT, 'ledger entries are append-only'); END""",
    """CREATE TRIGGER ledger_entries_no_delete BEFORE DELETE ON ledger_entries
       BEGIN SELECT RAISE(ABORT, 'ledger entries are append-only'); END""",
    """CREATE TRIGGER ledger_transactions_no_update BEFORE UPDATE ON ledger_transactions
       BEGIN SELECT RAISE(ABORT, 'ledger transactions are append-only'); END""",
    """CREATE TRIGGER ledger_transactions_no_delete BEFORE DELETE ON ledger_transactions
       BEGIN SELECT RAISE(ABORT, 'ledger transactions are append-only'); END""",
    """CREATE TRIGGER ledger_entries_closed BEFORE INSERT ON ledger_entries
       WHEN EXISTS (SELECT 1 FROM ledger_transactions WHERE id = NEW.transaction_id)
       BEGIN SELECT RAISE(ABORT, 'ledger transaction is closed'); END""",
    """CREATE TRIGGER ledger_entries_apply AFTER INSERT ON ledger_entries
       BEGIN UPDATE ledger_accounts SET balance = balance + NEW.amount
             WHERE id = NEW.account_id; END""",
    """CREATE TRIGGER ledger_transactions_balanced BEFORE INSERT ON ledger_transactions
       WHEN (SELECT COUNT(*) FROM ledger_entries WHERE transaction_id = NEW.id) < 2
         OR (SELECT SUM(amount) FROM ledger_entries WHERE transaction_id = NEW.id) <> 0
       BEGIN SELECT RAISE(ABORT, 'ledger transaction does not balance'); END""",
]

_POSTGRESQL = [
    "CREATE SEQUENCE ledger_transaction_ids",
    """CREATE FUNCTION ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN RAISE EXCEPTION '% is append-only', TG_TABLE_NAME; END $$""",
    """CREATE TRIGGER ledger_entries_append_only BEFORE UPDATE OR DELETE ON ledger_entries
       FOR EACH ROW EXECUTE FUNCTION ledger_append_only()""",
    """CREATE TRIGGER ledger_transactions_append_only
       BEFORE UPDATE OR DELETE ON ledger_transactions
       FOR EACH ROW EXECUTE FUNCTION ledger_append_only()""",
    """CREATE FUNCTION ledger_entry_insert() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN
         IF EXISTS (SELECT 1 FROM ledger_transactions WHERE id = NEW.transaction_id) THEN
           RAISE EXCEPTION 'ledger transaction is closed';
         END IF;
         UPDATE ledger_accounts SET balance = balance + NEW.amount WHERE id = NEW.account_id;
         RETURN NEW;
       END $$""",
    """CREATE TRIGGER ledger_entries_apply BEFORE INSERT ON ledger_entries
       FOR EACH ROW EXECUTE FUNCTION ledger_entry_insert()""",
    """CREATE FUNCTION ledger_transaction_insert() RETURNS trigger LANGUAGE plpgsql AS $$
       DECLARE n integer; total numeric;
       BEGIN
         SELECT COUNT(*), COALESCE(SUM(amount), 0) INTO n, total
           FROM ledger_entries WHERE transaction_id = NEW.id;
         IF n < 2 OR total <> 0 THEN
           RAISE EXCEPTION 'ledger transaction does not balance';
         END IF;
         RETURN NEW;
       END $$""",
    """CREATE TRIGGER ledger_transactions_balanced BEFORE INSERT ON ledger_transactions
       FOR EACH ROW EXECUTE FUNCTION ledger_transaction_insert()""",
]


# The bank's own accounts: where top-ups come from, where paid-out money goes, fee income.
_SYSTEM_ACCOUNTS = """INSERT INTO ledger_accounts (code, kind, currency, balance, held, created_at)
    VALUES ('system:funding', 'system', 'RUB', 0, 0, 0),
           ('system:payouts', 'system', 'RUB', 0, 0, 0),
           ('system:fees', 'system', 'RUB', 0, 0, 0)"""


def upgrade() -> None:
    statements = _SQLITE if op.get_bind().dialect.name == "sqlite" else _POSTGRESQL
    for statement in [*statements, _SYSTEM_ACCOUNTS]:
        op.execute(statement)


def downgrade() -> None:
    raise NotImplementedError("the ledger rules are never dropped")
