"""Alembic environment: runs on the connection that ``payout131.storage.migrate`` hands in."""

from __future__ import annotations

from alembic import context

from payout131.storage.schema import metadata

connection = context.config.attributes["connection"]
# Both engines change their schema inside a transaction: the whole upgrade commits at once,
# or nothing of it does (alembic would commit each step on SQLite otherwise).
context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=True,
    transactional_ddl=True,
)
with context.begin_transaction():
    context.run_migrations()
    if connection.dialect.name == "sqlite":  # migrated with foreign keys off (storage.migrate)
        broken = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
        if broken:  # undone: nothing of the migration is kept
            raise RuntimeError(f"the migration would leave rows without their parents: {broken}")
