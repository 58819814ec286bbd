"""What every command needs: the settings, the store, the clock; opened once per command."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import click
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from payout131.clock import SystemClock
from payout131.settings import Settings
from payout131.storage import Database, migrate

__all__ = ["database", "settings", "write"]


def settings() -> Settings:
    ctx = click.get_current_context()
    found: Settings = ctx.find_object(Settings) or Settings.from_env()
    return found


@contextmanager
def database() -> Iterator[Database]:
    conf = settings()
    if (
        conf.database.startswith("sqlite")
        and not (conf.home / "payout131.db").exists()
        and not conf.database_url
    ):
        raise click.ClickException(f"no database in {conf.home}: run `payout131 init` first")
    db = Database(conf.database)
    try:
        try:
            migrate(db)
        except sa.exc.SQLAlchemyError as exc:
            raise click.ClickException(
                f"cannot use the database {db!r}: {_first_line(exc)}"
            ) from None
        yield db
    finally:
        db.dispose()


def _first_line(exc: BaseException) -> str:
    cause = getattr(exc, "orig", None) or exc
    return (str(cause).strip().splitlines() or [type(cause).__name__])[0]


@contextmanager
def write() -> Iterator[tuple[Connection, int]]:
    """One write transaction and the current time."""
    with database() as db, db.write() as conn:
        yield conn, SystemClock().now()
