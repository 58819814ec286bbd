"""Storage: the schema, its migrations and the database handle, for SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.util import CommandError

from payout131.storage.database import Database, normalise_url

__all__ = ["Database", "NewerSchema", "migrate", "normalise_url"]


class NewerSchema(RuntimeError):
    """The database was migrated by a newer payout131 than this one."""


_MIGRATIONS = Path(__file__).with_name("migrations")


def migrate(url: str | Database, to: str = "head") -> None:
    """Bring the schema at ``url`` up to the newest migration, or to revision ``to``
    (idempotent)."""
    db = url if isinstance(url, Database) else Database(url)
    try:
        config = Config()
        config.set_main_option("script_location", str(_MIGRATIONS))
        with db.engine.connect() as conn:
            config.attributes["connection"] = conn
            try:
                command.upgrade(config, to)
            except CommandError as exc:
                if "Can't locate revision" not in str(exc):
                    raise
                raise NewerSchema(
                    f"the database's schema is newer than this payout131 knows ({exc}): "
                    "run the payout131 version that migrated it, or a later one"
                ) from None
            conn.commit()
    finally:
        if not isinstance(url, Database):
            db.dispose()
