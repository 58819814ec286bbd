"""rail executions, refunds and fees

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("projects", schema=None) as batch_op:
        batch_op.add_column(sa.Column("fee_bps", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(
            sa.Column("fee_fixed", sa.BigInteger(), server_default="0", nullable=False)
        )
    with op.batch_alter_table("payouts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("fee", sa.BigInteger(), server_default="0", nullable=False))
        batch_op.create_index("ix_payouts_rail_reference", ["rail_reference"], unique=True)

    op.create_table(
        "refunds",
        sa.Column("n", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("payout_n", sa.BigInteger(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("finished_at", sa.BigInteger(), nullable=True),
        sa.CheckConstraint("amount > 0", name="ck_refunds_amount"),
        sa.ForeignKeyConstraint(["payout_n"], ["payouts.n"]),
        sa.PrimaryKeyConstraint("n"),
        sa.UniqueConstraint("payout_n", name="uq_refunds_payout"),
    )
    op.create_table(
        "simulator_transfers",
        sa.Column("reference", sa.String(length=128), nullable=False),
        sa.Column("payout_id", sa.String(length=32), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("bik", sa.String(length=9), nullable=False),
        sa.Column("account", sa.String(length=20), nullable=True),
        sa.Column("scenario", sa.String(length=32), nullable=False),
        sa.Column("submissions", sa.Integer(), server_default="1", nullable=False),
        sa.Column("submitted_at", sa.BigInteger(), nullable=False),
        sa.Column("settles_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("reference"),
    )
    with op.batch_alter_table("simulator_transfers", schema=None) as batch_op:
        batch_op.create_index("ix_simulator_transfers_payout", ["payout_id"], unique=False)


def downgrade() -> None:
    raise NotImplementedError("migrations only go forward")
