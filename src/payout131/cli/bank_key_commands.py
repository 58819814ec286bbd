"""``payout131 bank-key``: the key that signs webhooks, published and rotated.

A rotation, step by step (docs/operations.md): ``rotate --at TIME`` makes the next key;
``bank-key`` publishes both; partners install the next key; at TIME webhooks are signed
with it; ``finish`` then drops the old one.
"""

from __future__ import annotations

import json

import click

from payout131.cli.context import settings
from payout131.client import signing
from payout131.clock import SystemClock, rfc3339_seconds
from payout131.webhooks import bank_key as keyring
from payout131.webhooks.bank_key import PublishedKeys, RotationError

__all__ = ["bank_key"]


def _keys() -> PublishedKeys:
    try:
        return keyring.load_published(settings().home)
    except (FileNotFoundError, RotationError, signing.KeyFormatError) as exc:
        raise click.ClickException(str(exc)) from None


def _at(text: str) -> int:
    try:
        return keyring.parse_at(text, SystemClock().now())
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--at") from None


_AT = click.option(
    "--at",
    "at",
    required=True,
    help="When the next key starts signing: an RFC 3339 time with its offset "
    "(2026-12-10T09:00:00Z) or 'now'.",
)


@click.group(invoke_without_command=True)
@click.pass_context
def bank_key(ctx: click.Context) -> None:
    """Print the bank's public key(s) (PEM): partners verify webhooks with them. During a
    rotation both are printed, the one signing now first."""
    if ctx.invoked_subcommand is not None:
        return
    now = SystemClock().now()
    for key in _keys().published(now):
        click.echo(signing.public_key_pem(key).decode(), nl=False)


@bank_key.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def status(as_json: bool) -> None:
    """Which key signs now, and the rotation under way: fingerprints and the switch time."""
    keys, now = _keys(), SystemClock().now()
    signs = keys.signing_key(now)
    out = {
        "signing": signing.fingerprint(signs),
        "current": signing.fingerprint(keys.current),
        "next": None if keys.next is None else signing.fingerprint(keys.next),
        "switch_at": None if keys.switch_at is None else rfc3339_seconds(keys.switch_at),
        "switched": keys.next is not None and signs is keys.next,
    }
    if as_json:
        click.echo(json.dumps(out, indent=2))
        return
    click.echo(f"current  {out['current']}" + ("  (signs now)" if signs is keys.current else ""))
    if keys.next is not None:
        state = "signs now" if out["switched"] else "published, not signing yet"
        click.echo(f"next     {out['next']}  ({state})")
        click.echo(f"switch   {out['switch_at']}")
        if out["switched"]:
            click.echo("the rotation has switched: `payout131 bank-key finish` drops the old key")
    else:
        click.echo("no rotation under way")


@bank_key.command("rotate")
@_AT
def rotate(at: str) -> None:
    """Make the next key pair, to sign webhooks from --at; publish it to partners first."""
    when = _at(at)
    try:
        keys = keyring.rotate(settings().home, when)
    except (RotationError, FileNotFoundError) as exc:
        raise click.ClickException(str(exc)) from None
    assert keys.next is not None
    click.echo(
        f"next key {signing.fingerprint(keys.next)} signs webhooks from {rfc3339_seconds(when)}; "
        "give partners both keys now (`payout131 bank-key`)"
    )


@bank_key.command("switch")
@_AT
def switch(at: str) -> None:
    """Move the waiting rotation's switch to --at (earlier or later)."""
    when = _at(at)
    try:
        keyring.reschedule(settings().home, when)
    except (RotationError, FileNotFoundError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"the next key signs webhooks from {rfc3339_seconds(when)}")


@bank_key.command("cancel")
def cancel() -> None:
    """Drop the waiting rotation's next key, before it signs anything."""
    try:
        keyring.cancel(settings().home)
    except (RotationError, FileNotFoundError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo("rotation cancelled: the current key goes on signing")


@bank_key.command("finish")
def finish() -> None:
    """After the switch: make the next key the current one and drop the old."""
    try:
        keys = keyring.finish(settings().home)
    except (RotationError, FileNotFoundError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"rotation finished: {signing.fingerprint(keys.current)} is the bank's key")
