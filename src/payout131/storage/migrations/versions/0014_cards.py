"""card payouts and customer verification (PROTOCOL §9)

Revision ID: 0014
Revises: 0013

``card_tokens`` keeps each card number sealed by the account vault (like
``account_tokens``), with what may be shown of it: brand, BIN, last four digits.
``payouts.outcome`` keeps what the rail told of a payout's outcome (JSON): a card payout's
``transaction_info``, or a verification's recipient names. ``payouts.kind`` tells a payout
from a customer verification (``fps/customer_verification``), the one payout row that
moves no money: the amount's CHECK allows zero for it alone. On SQLite the table is rebuilt
(``storage.migrate`` turns foreign keys off meanwhile and checks them all after).
``simulator_transfers.kind`` says what a simulated transfer pays to
(an account, a phone, a card).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

# a payout moves money; only a customer verification (fps/customer_verification) moves none
_AMOUNT = "amount > 0 OR (kind = 'verification' AND amount = 0 AND fee = 0)"

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "card_tokens",
        sa.Column("token", sa.String(64), nullable=False),
        sa.Column("project_id", sa.String(64), nullable=False),
        sa.Column("brand", sa.String(16), nullable=False),
        sa.Column("bin", sa.String(6), nullable=False),
        sa.Column("last4", sa.String(4), nullable=False),
        sa.Column("number_sealed", sa.LargeBinary(), nullable=False),
        sa.Column("key_id", sa.String(32), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"]),
        sa.PrimaryKeyConstraint("token"),
    )
    op.create_index("ix_card_tokens_key", "card_tokens", ["key_id"], unique=False)
    op.create_index("ix_card_tokens_project", "card_tokens", ["project_id"], unique=False)
    with op.batch_alter_table("payouts") as batch_op:
        batch_op.add_column(sa.Column("outcome", sa.Text(), nullable=True))
        batch_op.add_column(
            sa.Column("kind", sa.String(16), nullable=False, server_default="payout")
        )
        batch_op.drop_constraint("ck_payouts_amount", type_="check")
        batch_op.create_check_constraint("ck_payouts_amount", _AMOUNT)
        batch_op.create_check_constraint("ck_payouts_kind", "kind IN ('payout', 'verification')")
    op.add_column("simulator_transfers", sa.Column("kind", sa.String(8), nullable=True))


def downgrade() -> None:
    raise NotImplementedError("migrations only go forward")
