"""test clocks: sandbox time a partner can move (docs/sandbox.md)

Revision ID: 0012
Revises: 0011

A test clock is a frozen time that moves only when told to; a project bound to one
(``projects.test_clock``) runs all its time on it. The simulator rail keeps each transfer's
time on the clock of the payout's project (``simulator_transfers.test_clock``) and records
an outcome forced by hand (``forced``, ``forced_code``). The columns refer to clocks without
a foreign key: SQLite can only add one by copying ``projects``, which every other table
refers to; deleting a clock checks that no project is bound to it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.create_table(
        "test_clocks",
        sa.Column("n", Id, primary_key=True),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("frozen_time", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False, server_default="ready"),
        sa.Column("advance_to", sa.BigInteger(), nullable=True),
        sa.Column("failure", sa.Text(), nullable=True),
        sa.Column("runner", sa.String(64), nullable=True),
        sa.Column("runner_until", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.CheckConstraint(
            "status IN ('ready', 'advancing', 'failed')", name="ck_test_clocks_status"
        ),
    )
    op.add_column("projects", sa.Column("test_clock", sa.BigInteger(), nullable=True))
    op.create_index("ix_projects_test_clock", "projects", ["test_clock"])
    # what is due on a clock, found without reading a project's finished payouts
    op.create_index(
        "ix_payouts_project_work",
        "payouts",
        ["project_id", "work_at"],
        postgresql_where=sa.text("work IS NOT NULL"),
        sqlite_where=sa.text("work IS NOT NULL"),
    )
    op.add_column("simulator_transfers", sa.Column("test_clock", sa.BigInteger(), nullable=True))
    op.add_column("simulator_transfers", sa.Column("forced", sa.String(16), nullable=True))
    op.add_column("simulator_transfers", sa.Column("forced_code", sa.String(64), nullable=True))


def downgrade() -> None:
    raise NotImplementedError("migrations only go forward")
