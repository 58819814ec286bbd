"""``payout131 project key``: a partner's keys, rotated without downtime.

The partner makes a new key pair and sends its public key; ``key add`` makes it the
project's second active key, so calls signed with either verify; once the partner signs
with the new key only and ``key list`` shows the old one unused, ``key retire`` ends it.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from payout131 import project_keys
from payout131.cli.context import database, write
from payout131.client import signing
from payout131.clock import rfc3339_seconds

__all__ = ["key"]


def _when(micros: int | None) -> str:
    return "never" if micros is None else rfc3339_seconds(micros)


def read_public_key(path: Path, option: str = "--public-key") -> str:
    """The PEM text of the RSA public key at ``path``, or a one-line error naming it."""
    pem = path.read_bytes()
    try:
        signing.load_public_key(pem)
        return pem.decode("ascii")
    except (signing.KeyFormatError, UnicodeDecodeError) as exc:
        raise click.BadParameter(f"{option} {path}: {exc}") from None


@click.group()
def key() -> None:
    """A project's public keys: add the partner's next key, retire the old one."""


@key.command("list")
@click.argument("project_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_(project_id: str, as_json: bool) -> None:
    """Every key of the project: fingerprint, active or retired, added, last used."""
    with database() as db, db.read() as conn:
        keys = project_keys.list_keys(conn, project_id)
    if not keys:
        raise click.ClickException(f"no project {project_id!r}")
    if as_json:
        out = [
            {
                "fingerprint": k.fingerprint,
                "status": "active" if k.active else "retired",
                "added_at": _when(k.added_at),
                "retired_at": None if k.active else _when(k.retired_at),
                "last_used_at": None if k.last_used_at is None else _when(k.last_used_at),
            }
            for k in keys
        ]
        click.echo(json.dumps(out, indent=2))
        return
    for k in keys:
        status = "active " if k.active else "retired"
        click.echo(
            f"{k.fingerprint}  {status}  added {_when(k.added_at)}  "
            f"last used {_when(k.last_used_at)}"
            + ("" if k.active else f"  retired {_when(k.retired_at)}")
        )


@key.command("add")
@click.argument("project_id")
@click.argument("public_key", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def add(project_id: str, public_key: Path) -> None:
    """Make PUBLIC_KEY (PEM) one of the project's active keys, beside the one in use."""
    pem = read_public_key(public_key, "PUBLIC_KEY")
    with write() as (conn, now):
        try:
            added = project_keys.add_key(conn, project_id, pem, now)
        except (ValueError, LookupError) as exc:
            raise click.ClickException(str(exc)) from None
    click.echo(f"project {project_id}: key {added.fingerprint} added; calls signed with it verify")


@key.command("retire")
@click.argument("project_id")
@click.argument("fingerprint")
def retire(project_id: str, fingerprint: str) -> None:
    """Retire the key FINGERPRINT (8 or more of its hex digits): calls signed with it fail."""
    with write() as (conn, now):
        try:
            retired = project_keys.retire_key(conn, project_id, fingerprint, now)
        except (ValueError, LookupError) as exc:
            raise click.ClickException(str(exc)) from None
    click.echo(
        f"project {project_id}: key {retired.fingerprint} retired "
        f"(last used {_when(retired.last_used_at)})"
    )
