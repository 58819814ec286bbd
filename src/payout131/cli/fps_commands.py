"""``payout131 fps``: the Faster Payments (SBP) member directory (PROTOCOL §9)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from payout131.cli.context import database, write
from payout131.directory.fps import parse_csv
from payout131.directory.table import load_members, replace_members

__all__ = ["fps"]


@click.group()
def fps() -> None:
    """The SBP member directory (a snapshot ships with the package)."""


@fps.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def import_(file: Path) -> None:
    """Load a member list CSV (member_id,ru_name,eng_name,bik,logo_url), replacing the
    current one.

    A running server reads the directory at start: restart it to use the new one.
    """
    try:
        members = parse_csv(file.read_bytes())
    except ValueError as exc:
        raise click.ClickException(f"{file}: {exc}") from None
    with write() as (conn, _):
        count = replace_members(conn, members)
    click.echo(f"imported {count} SBP members from {file}")


@fps.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the members as a JSON list.")
def list_(as_json: bool) -> None:
    """Print the members: id, Russian name, English name."""
    with database() as db, db.read() as conn:
        members = list(load_members(conn).members())
    if as_json:
        out = [{**m.as_json(), "bik": m.bik} for m in members]
        click.echo(json.dumps(out, ensure_ascii=False, indent=2))
        return
    for m in members:
        click.echo(f"{m.id}  {m.ru_name}  ({m.eng_name})")
