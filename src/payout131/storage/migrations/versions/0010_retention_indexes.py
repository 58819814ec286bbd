"""indexes for ``payout131 purge``

Revision ID: 0010
Revises: 0009

``purge`` deletes, in short batches, events delivered before a horizon and idempotency keys
first used before one. Without these indexes each batch would read every delivered event,
or every key, to find its few thousand: purging a large store would take quadratic time.
"""

from __future__ import annotations

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_events_delivered", "events", ["status", "delivered_at"], unique=False)
    op.create_index("ix_idempotency_keys_created", "idempotency_keys", ["created_at"])


def downgrade() -> None:
    raise NotImplementedError("migrations only go forward")
