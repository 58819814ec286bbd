"""Storage: the schema, its migrations and the database handle, for SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from payout131.storage.database import Database, normalise_url

__all__ = ["Database", "migrate", "normalise_url"]

_MIGRATIONS = Path(__file__).with_name("migrations")


def migrate(url: str | Database) -> None:
    """Bring the schema at ``url`` up to the newest migration (idempotent)."""
    db = url if isinstance(url, Database) else Database(url)
    try:
        config = Config()
        config.set_main_option("script_location", str(_MIGRATIONS))
        with db.engine.connect() as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, "head")
            conn.commit()
    finally:
        if not isinstance(url, Database):
            db.dispose()
