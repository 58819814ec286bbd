"""``payout131 vault``: the keys that seal tokenized account numbers at rest."""

from __future__ import annotations

import base64

import click

from payout131.cli.context import database, settings
from payout131.tokens import account_tokens as tokens
from payout131.tokens import card_tokens
from payout131.tokens.rotation import rotate
from payout131.tokens.vault import Vault, VaultError, new_key

__all__ = ["vault"]


def _vault() -> Vault:
    conf = settings()
    return Vault(conf.vault_key_path, conf.vault_key)


@click.group()
def vault() -> None:
    """The account vault: AES-256-GCM keys in HOME/vault.key or PAYOUT131_VAULT_KEY."""


@vault.command()
def status() -> None:
    """Show the key ring (current key first) and how many accounts and cards each seals."""
    box = _vault()
    try:
        ring = box.key_ids()
    except VaultError as exc:
        raise click.ClickException(str(exc)) from None
    with database() as db, db.read() as conn:
        used = tokens.keys_in_use(conn)
        cards = card_tokens.keys_in_use(conn)
    click.echo(f"keys from {'PAYOUT131_VAULT_KEY' if box.from_environment else box.path}")
    for n, key in enumerate(ring):
        sealed = f"{used.pop(key, 0)} accounts, {cards.pop(key, 0)} cards"
        click.echo(f"  {key}{' (current)' if n == 0 else ''}: {sealed}")
    for key in sorted(used.keys() | cards.keys()):
        sealed = f"{used.get(key, 0)} accounts, {cards.get(key, 0)} cards"
        click.echo(f"  {key} (MISSING from the ring): {sealed} cannot be read")


@vault.command("rotate")
def rotate_command() -> None:
    """Seal every tokenized account under a new key and retire the old keys.

    With the key file, a new key is made and the old ones are removed from the file when
    nothing uses them. With PAYOUT131_VAULT_KEY, put a new key (`payout131 vault new-key`)
    first in the variable, keep the old ones after it, run this, then drop the old ones.
    Servers need no restart with the key file; they re-read it when it changes.
    """
    box = _vault()
    try:
        with database() as db:
            done = rotate(db, box)
    except VaultError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"current key {done.key_id}; re-sealed {done.resealed} accounts")
    if done.retired and box.from_environment:
        click.echo(f"no longer used, remove from PAYOUT131_VAULT_KEY: {', '.join(done.retired)}")
    elif done.retired:
        click.echo(f"retired keys: {', '.join(done.retired)}")


@vault.command("new-key")
def new_key_command() -> None:
    """Print a fresh Base64 key, for PAYOUT131_VAULT_KEY."""
    click.echo(base64.b64encode(new_key()).decode())
