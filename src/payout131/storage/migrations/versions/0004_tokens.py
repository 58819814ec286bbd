"""tokenized accounts and the vault

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "public_tokens",
        sa.Column("token_sha256", sa.String(length=64), nullable=False),
        sa.Column("project_id", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.Column("used_at", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"]),
        sa.PrimaryKeyConstraint("token_sha256"),
    )
    op.create_index("ix_public_tokens_expires", "public_tokens", ["expires_at"], unique=False)
    op.create_table(
        "account_tokens",
        sa.Column("token", sa.String(length=64), nullable=False),
        sa.Column("project_id", sa.String(length=64), nullable=False),
        sa.Column("bik", sa.String(length=9), nullable=False),
        sa.Column("masked_account", sa.String(length=16), nullable=False),
        sa.Column("account_sealed", sa.LargeBinary(), nullable=False),
        sa.Column("key_id", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"]),
        sa.PrimaryKeyConstraint("token"),
    )
    op.create_index("ix_account_tokens_key", "account_tokens", ["key_id"], unique=False)
    op.create_index("ix_account_tokens_project", "account_tokens", ["project_id"], unique=False)
    # An event body showing a tokenized account in full is stored sealed by the vault.
    with op.batch_alter_table("events") as batch_op:
        batch_op.add_column(sa.Column("body_key_id", sa.String(length=32), nullable=True))


def downgrade() -> None:
    raise NotImplementedError("migrations only go forward")
