"""a project's Standard Webhooks secret kept sealed by the vault

Revision ID: 0009
Revises: 0008

The secret is kept like an account number: sealed by the account vault
(``webhook_secret_sealed``, with the id of the key that sealed it). A secret kept in the
clear by an earlier version (``webhook_secret``) is sealed, and its clear copy emptied, when
a server starts, ``payout131 init`` runs, the secret is set again or the vault is rotated
(``projects.seal_webhook_secrets``): the migration has no vault key to do it with.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("projects", schema=None) as batch_op:
        batch_op.add_column(sa.Column("webhook_secret_sealed", sa.LargeBinary(), nullable=True))
        batch_op.add_column(sa.Column("webhook_secret_key_id", sa.String(length=32), nullable=True))


def downgrade() -> None:
    raise NotImplementedError("migrations only go forward")
