"""The migrations build exactly the schema the code queries, on both engines."""

from __future__ import annotations

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from payout131.storage import Database, migrate
from payout131.storage.schema import metadata


def test_migrated_schema_matches_the_tables(database_url: str) -> None:
    db = Database(database_url)
    try:
        migrate(db)  # again: migrating is idempotent
        with db.engine.connect() as conn:
            context = MigrationContext.configure(
                conn, opts={"compare_type": True, "compare_server_default": False}
            )
            differences = compare_metadata(context, metadata)
        assert differences == []
    finally:
        db.dispose()


def test_system_accounts_exist(database_url: str) -> None:
    db = Database(database_url)
    try:
        with db.read() as conn:
            codes = set(
                conn.execute(
                    sa.text("SELECT code FROM ledger_accounts WHERE kind = 'system'")
                ).scalars()
            )
        assert codes == {"system:funding", "system:payouts", "system:fees"}
    finally:
        db.dispose()
