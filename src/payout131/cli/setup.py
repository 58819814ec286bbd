"""``payout131 init``: the data directory, the database, the bank's keys, a demo project."""

from __future__ import annotations

import os
from pathlib import Path

import click
import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from payout131 import projects
from payout131.client import signing
from payout131.clock import SystemClock
from payout131.directory.bik import load_snapshot
from payout131.directory.table import replace_directory
from payout131.ledger import accounts, book
from payout131.settings import Settings
from payout131.storage import Database, migrate
from payout131.storage import schema as t
from payout131.tokens.vault import Vault, ensure_key_file
from payout131.webhooks.bank_key import ensure_bank_keys

__all__ = ["initialise"]

DEMO_PROJECT = "demo"
DEMO_FUNDS = 100_000_000  # one million rubles, in kopecks


def initialise(conf: Settings, *, demo: bool) -> None:
    conf.home.mkdir(parents=True, exist_ok=True)
    made = ensure_bank_keys(conf.bank_private_key_path, conf.bank_public_key_path)
    click.echo(f"{'created' if made else 'kept'} the bank's key pair in {conf.home}")
    if conf.vault_key:
        click.echo("the account vault uses the keys in PAYOUT131_VAULT_KEY")
    else:
        made = ensure_key_file(conf.vault_key_path)
        click.echo(f"{'created' if made else 'kept'} the account vault key {conf.vault_key_path}")
    db = Database(conf.database)
    try:
        migrate(db)
        with db.write() as conn:
            if (
                conn.execute(sa.select(sa.func.count()).select_from(t.bik_directory)).scalar_one()
                == 0
            ):
                count = replace_directory(conn, load_snapshot())
                click.echo(f"loaded the packaged BIK directory ({count} banks)")
        if conf.vault_key or conf.vault_key_path.exists():
            with db.write() as conn:  # a secret an earlier version kept in the clear
                sealed = projects.seal_webhook_secrets(
                    conn, Vault(conf.vault_key_path, conf.vault_key), reseal=False
                )
            if sealed:
                click.echo(f"sealed {sealed} Standard Webhooks secret(s) kept in the clear")
        click.echo(f"database ready: {db!r}")
        if demo:
            _demo_project(db, conf.home / "demo")
    finally:
        db.dispose()


def _demo_project(db: Database, folder: Path) -> None:
    """A project with its own key, a funded wallet and a funded settlement account."""
    now = SystemClock().now()
    with db.write() as conn:
        if projects.get_project(conn, DEMO_PROJECT) is not None:
            click.echo(f"demo project kept; its key is in {folder}")
            return
        folder.mkdir(parents=True, exist_ok=True)
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        private = folder / "partner-private.pem"
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        private.unlink(missing_ok=True)  # a key of an earlier demo project, now gone
        fd = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # private from birth
        with os.fdopen(fd, "wb") as out:
            out.write(pem)
        public = signing.public_key_pem(key)
        (folder / "partner-public.pem").write_bytes(public)
        projects.add_project(
            conn,
            DEMO_PROJECT,
            public.decode(),
            now,
            legal_name='ООО "Демо"',
            inn="7707083893",
            kpp="773601001",
        )
        number = accounts.open_settlement_account(conn, DEMO_PROJECT, now)
        account = accounts.account_id(conn, number)
        assert account is not None
        book.topup(conn, account, DEMO_FUNDS, now)
        book.topup_wallet(conn, DEMO_PROJECT, DEMO_FUNDS, now)
    click.echo(
        f"demo project {DEMO_PROJECT!r}: private key {private}, settlement account {number}, "
        f"wallet and account funded with {DEMO_FUNDS // 100} RUB each"
    )
