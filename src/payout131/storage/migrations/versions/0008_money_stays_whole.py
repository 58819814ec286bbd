"""money stays a whole number of kopecks within 64 bits

Revision ID: 0008
Revises: 0007

PostgreSQL refuses a ``bigint`` beyond 64 bits by itself ("bigint out of range"). SQLite
turns an integer sum that overflows into a floating-point number and stores it: kopecks
would be lost and every later check would fail. Here SQLite refuses it too: an account's
``balance`` or ``held`` must stay an integer.
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_SQLITE = [
    """CREATE TRIGGER ledger_accounts_whole BEFORE UPDATE OF balance, held ON ledger_accounts
       WHEN typeof(NEW.balance) <> 'integer' OR typeof(NEW.held) <> 'integer'
       BEGIN SELECT RAISE(ABORT,
         'a sum of money must stay a whole number of kopecks within 64 bits'); END""",
]


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for statement in _SQLITE:
            op.execute(statement)


def downgrade() -> None:
    raise NotImplementedError("the ledger rules are never dropped")
