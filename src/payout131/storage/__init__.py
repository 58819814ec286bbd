"""Storage: the schema, its migrations and the database handle, for SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from payout131.storage.database import Database, normalise_url

if TYPE_CHECKING:
    from alembic.config import Config

__all__ = ["Database", "NewerSchema", "migrate", "normalise_url"]


class NewerSchema(RuntimeError):
    """The database was migrated by a newer payout131 than this one."""


_MIGRATIONS = Path(__file__).with_name("migrations")


def _upgrade(config: Config, to: str) -> None:
    from alembic import command
    from alembic.util import CommandError

    try:
        command.upgrade(config, to)
    except CommandError as exc:
        if "Can't locate revision" not in str(exc):
            raise
        raise NewerSchema(
            f"the database's schema is newer than this payout131 knows ({exc}): "
            "run the payout131 version that migrated it, or a later one"
        ) from None


def _foreign_keys(conn: Connection, state: str) -> None:
    """Turn SQLite's foreign key enforcement on or off for this connection, outside any
    transaction (where SQLite ignores the pragma). Off while migrating, as SQLite's own
    procedure for rebuilding a table asks; the migrations' transaction checks them all
    before it commits (``migrations/env.py``)."""
    assert not conn.in_transaction()
    conn.connection.driver_connection.execute(f"PRAGMA foreign_keys={state}")  # type: ignore[union-attr]


_MIGRATION_LOCK = 131_000_015  # PostgreSQL: the advisory lock a migration holds
# the newest revision: each migration's file starts with its revision id (0001, 0002, ...)
HEAD = max(  # None where the files are not at hand: then alembic is always asked
    (path.name[:4] for path in (_MIGRATIONS / "versions").glob("[0-9][0-9][0-9][0-9]_*.py")),
    default=None,
)


def _current(db: Database) -> str | None:
    """The revision the database is at; None if it has none yet."""
    try:
        with db.engine.connect() as conn:
            found = conn.execute(sa.text("SELECT version_num FROM alembic_version")).all()
    except sa.exc.DBAPIError:  # no such table: a new database
        return None
    return str(found[0][0]) if len(found) == 1 else None


def migrate(url: str | Database, to: str = "head") -> None:
    """Bring the schema at ``url`` up to the newest migration, or to revision ``to``
    (idempotent)."""
    db = url if isinstance(url, Database) else Database(url)
    try:
        # every command asks: when the store is current, answered without loading the
        # migrations (a tenth of a second of a command's start)
        if to == "head" and HEAD is not None and _current(db) == HEAD:
            return
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(_MIGRATIONS))
        with db.engine.connect() as conn:
            config.attributes["connection"] = conn
            sqlite = db.engine.dialect.name == "sqlite"
            if sqlite:  # a table rebuilt by a migration is dropped while rows refer to it
                _foreign_keys(conn, "OFF")
            else:  # servers started at once: one migrates, the others wait and find it done
                conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK})")
            try:
                _upgrade(config, to)  # on SQLite, checks every foreign key before it commits
                conn.commit()
            finally:
                if sqlite:  # the connection goes back to the pool as every other is
                    conn.rollback()
                    _foreign_keys(conn, "ON")
    finally:
        if not isinstance(url, Database):
            db.dispose()
