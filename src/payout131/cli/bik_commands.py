"""``payout131 bik``: the Bank of Russia BIK directory the validators check against."""

from __future__ import annotations

from pathlib import Path

import click

from payout131.cli.context import write
from payout131.directory.bik import parse_directory
from payout131.directory.table import replace_directory

__all__ = ["bik"]


@click.group()
def bik() -> None:
    """The BIK directory (a snapshot ships with the package)."""


@bik.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def import_(file: Path) -> None:
    """Load an official ED807 file (ZIP or XML) or a directory CSV, replacing the current one.

    A running server reads the directory at start: restart it to use the new one.
    """
    try:
        banks = parse_directory(file.read_bytes())
    except ValueError as exc:
        raise click.ClickException(f"{file}: {exc}") from None
    with write() as (conn, _):
        count = replace_directory(conn, banks)
    click.echo(f"imported {count} banks from {file}")
