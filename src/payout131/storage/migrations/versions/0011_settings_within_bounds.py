"""project settings brought within the bounds every path now checks

Revision ID: 0011
Revises: 0010

An earlier version took any confirm timeout and any fixed fee. A timeout beyond 30 days
kept a project's payouts waiting, their money held, longer than any partner would (and on
SQLite its step overflowed: payouts stuck for good); a fixed fee beyond 1,000,000 rubles is
no fee a bank charges. Such values are set to the bound (``projects.CONFIRM_TIMEOUT_S``,
``projects.FEE_FIXED_MAX``) once, here; from now on nothing can store them.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

_LONGEST_CONFIRM_S = 30 * 24 * 3600
_SHORTEST_CONFIRM_S = 60
_FEE_FIXED_MAX = 100_000_000


def upgrade() -> None:
    bounds = {"longest": _LONGEST_CONFIRM_S, "shortest": _SHORTEST_CONFIRM_S, "fee": _FEE_FIXED_MAX}
    for statement in (
        "UPDATE projects SET confirm_timeout_s = :longest WHERE confirm_timeout_s > :longest",
        "UPDATE projects SET confirm_timeout_s = :shortest WHERE confirm_timeout_s < :shortest",
        "UPDATE projects SET fee_fixed = :fee WHERE fee_fixed > :fee",
    ):
        op.get_bind().execute(sa.text(statement), bounds)


def downgrade() -> None:
    raise NotImplementedError("migrations only go forward")
