"""``payout131 backup FILE`` and ``payout131 restore FILE`` (docs/operations.md)."""

from __future__ import annotations

from pathlib import Path

import click

from payout131.cli.context import settings
from payout131.ledger.check import violations
from payout131.storage import Database, migrate
from payout131.storage.backups import BackupError, make, restore, undo

__all__ = ["backup_command", "restore_command"]


@click.command("backup")
@click.argument("file", type=click.Path(dir_okay=False, writable=True, path_type=Path))
def backup_command(file: Path) -> None:
    """Write a backup of the bank to FILE: the database (SQLite, copied online and
    consistent while the server runs) and the bank's and the vault's keys. FILE holds
    secrets: it is made readable by its owner only; keep it as you keep the keys.

    On PostgreSQL dump the database with pg_dump (docs/operations.md); FILE then holds the
    keys alone.
    """
    try:
        made = make(settings(), file)
    except (BackupError, OSError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"backup {made.path}: {', '.join(made.members)}")
    if not made.database:
        click.echo(
            "the database is PostgreSQL: dump it with pg_dump --format=custom "
            "(docs/operations.md); this file holds the keys"
        )


@click.command("restore")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def restore_command(file: Path) -> None:
    """Restore the backup FILE into PAYOUT131_HOME, which must not hold a bank yet; then
    migrate the restored database to this version and run the ledger check."""
    conf = settings()
    try:
        restored = restore(conf, file)
    except (BackupError, OSError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"restored {', '.join(restored.members)} into {conf.home}")
    if restored.database is None:  # the keys of a PostgreSQL bank
        click.echo("the database is the one pg_restore filled (docs/operations.md)")
        return
    db = Database(conf.database)
    try:
        migrate(db)
        with db.read() as conn:
            problems = violations(conn)
    except Exception:
        db.dispose()
        undo(restored)  # so that it can be tried again, with what it needs
        raise
    db.dispose()
    if problems:
        undo(restored)
        raise click.ClickException(
            f"the restored ledger does not balance ({problems[0]}): nothing was kept"
        )
    click.echo("ledger check: ok")
