"""the calls that touched a session

Revision ID: 0018
Revises: 0017

Each partner call that made, started, confirmed or cancelled a session, or that the
session refused, is kept with its method, idempotency key and answer, for the console's
story of a payout (``payouts/call_record.py``).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.create_table(
        "session_calls",
        sa.Column("id", Id, nullable=False),
        sa.Column("session_n", sa.BigInteger(), nullable=False),
        sa.Column("project_id", sa.String(64), nullable=False),
        sa.Column("method", sa.String(64), nullable=False),
        sa.Column("version", sa.String(4), nullable=False),
        sa.Column("idempotency_key", sa.String(255), nullable=True),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("error_code", sa.String(64), nullable=True),
        sa.Column("at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_session_calls_session", "session_calls", ["session_n"], unique=False)


def downgrade() -> None:
    raise NotImplementedError("migrations only go forward")
