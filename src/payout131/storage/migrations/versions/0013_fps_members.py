"""the Faster Payments (SBP) member directory (PROTOCOL §9)

Revision ID: 0013
Revises: 0012

Like the BIK directory: empty until ``payout131 fps import`` fills it; while it is empty the
snapshot shipped with the package is used.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "fps_members",
        sa.Column("id", sa.String(12), primary_key=True),
        sa.Column("ru_name", sa.Text(), nullable=False),
        sa.Column("eng_name", sa.Text(), nullable=False),
        sa.Column("bik", sa.String(9), nullable=True),
        sa.Column("logo_url", sa.Text(), nullable=True),
    )


def downgrade() -> None:
    raise NotImplementedError("migrations only go forward")
