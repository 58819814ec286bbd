"""indexes for an operator's lists: a project's payouts newest first, a payout's ledger

Revision ID: 0016
Revises: 0015

``payout131 payouts list --project P`` pages newest first by payout number (keyset): the
index on ``(project_id, n)`` serves it without sorting the project's payouts, and replaces
the one on ``project_id`` alone (its prefix). ``payouts show`` finds a payout's ledger
transactions by ``payout_n``. Neither column ever changes, so neither index costs a status
change anything. ``--error CODE`` finds the failed payouts by a partial index that holds
only payouts with an error code (written once, when a payout fails).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_payouts_project_n", "payouts", ["project_id", "n"], unique=False)
    op.drop_index("ix_payouts_project", table_name="payouts")
    op.create_index(
        "ix_ledger_transactions_payout", "ledger_transactions", ["payout_n"], unique=False
    )
    op.create_index(
        "ix_payouts_error",
        "payouts",
        ["error_code", "n"],
        unique=False,
        postgresql_where=sa.text("error_code IS NOT NULL"),
        sqlite_where=sa.text("error_code IS NOT NULL"),
    )


def downgrade() -> None:
    raise NotImplementedError("migrations only go forward")
