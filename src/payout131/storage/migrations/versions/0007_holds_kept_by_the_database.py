"""the database keeps held and refuses a hold changed any other way than resolved once

Revision ID: 0007
Revises: 0006

``ledger_accounts.held`` becomes the database's to keep, as ``balance`` is (0002): placing
a hold adds its amount, resolving it takes the amount away, and the accounts' CHECK
refuses a hold the account cannot cover (available balance below zero). A hold is placed
``active`` and changes once, to ``posted`` or ``released``, touching nothing but its status
and ``resolved_at``; holds are never deleted. On PostgreSQL the triggers run once per
statement over all its rows (a group's holds cost one update of each account); SQLite runs
them per row.
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_SQLITE = [
    """CREATE TRIGGER holds_placed_active BEFORE INSERT ON holds
       WHEN NEW.status <> 'active' OR NEW.resolved_at IS NOT NULL
       BEGIN SELECT RAISE(ABORT, 'a hold is placed active'); END""",
    """CREATE TRIGGER holds_placed AFTER INSERT ON holds
       BEGIN UPDATE ledger_accounts SET held = held + NEW.amount
             WHERE id = NEW.account_id; END""",
    """CREATE TRIGGER holds_resolved_once BEFORE UPDATE ON holds
       WHEN NOT (OLD.status = 'active' AND NEW.status IN ('posted', 'released'))
         OR NEW.id <> OLD.id OR NEW.account_id <> OLD.account_id
         OR NEW.payout_n <> OLD.payout_n OR NEW.amount <> OLD.amount
         OR NEW.created_at <> OLD.created_at
       BEGIN SELECT RAISE(ABORT, 'a hold changes once, from active to posted or released');
       END""",
    """CREATE TRIGGER holds_resolved AFTER UPDATE ON holds
       BEGIN UPDATE ledger_accounts SET held = held - OLD.amount
             WHERE id = OLD.account_id; END""",
    """CREATE TRIGGER holds_kept BEFORE DELETE ON holds
       BEGIN SELECT RAISE(ABORT, 'holds are never deleted'); END""",
]

_POSTGRESQL = [
    """CREATE FUNCTION holds_placed() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN
         IF EXISTS (SELECT 1 FROM placed WHERE status <> 'active' OR resolved_at IS NOT NULL)
         THEN
           RAISE EXCEPTION 'a hold is placed active';
         END IF;
         UPDATE ledger_accounts a SET held = a.held + s.total
           FROM (SELECT account_id, SUM(amount) AS total FROM placed GROUP BY account_id) s
           WHERE a.id = s.account_id;
         RETURN NULL;
       END $$""",
    """CREATE TRIGGER holds_placed AFTER INSERT ON holds
       REFERENCING NEW TABLE AS placed FOR EACH STATEMENT EXECUTE FUNCTION holds_placed()""",
    """CREATE FUNCTION holds_resolved() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN
         IF (SELECT COUNT(*) FROM before) <> (
              SELECT COUNT(*) FROM before b JOIN after a ON a.id = b.id
              WHERE b.status = 'active' AND a.status IN ('posted', 'released')
                AND a.account_id = b.account_id AND a.payout_n = b.payout_n
                AND a.amount = b.amount AND a.created_at = b.created_at)
         THEN
           RAISE EXCEPTION 'a hold changes once, from active to posted or released';
         END IF;
         UPDATE ledger_accounts a SET held = a.held - s.total
           FROM (SELECT account_id, SUM(amount) AS total FROM before GROUP BY account_id) s
           WHERE a.id = s.account_id;
         RETURN NULL;
       END $$""",
    """CREATE TRIGGER holds_resolved AFTER UPDATE ON holds
       REFERENCING OLD TABLE AS before NEW TABLE AS after
       FOR EACH STATEMENT EXECUTE FUNCTION holds_resolved()""",
    """CREATE FUNCTION holds_kept() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN RAISE EXCEPTION 'holds are never deleted'; END $$""",
    """CREATE TRIGGER holds_kept BEFORE DELETE OR TRUNCATE ON holds
       FOR EACH STATEMENT EXECUTE FUNCTION holds_kept()""",
]


def upgrade() -> None:
    bind = op.get_bind()
    for statement in _SQLITE if bind.dialect.name == "sqlite" else _POSTGRESQL:
        op.execute(statement)


def downgrade() -> None:
    raise NotImplementedError("the ledger rules are never dropped")
