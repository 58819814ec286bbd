"""The account vault: tokenized account numbers are sealed at rest, and the keys rotate.

The strongest check reads the database as an attacker with a copy would: the SQLite file
and its WAL byte for byte, or a ``pg_dump`` of the PostgreSQL database, must not hold a
tokenized account number anywhere, while an account paid without a token (the control)
is found by the same search.
"""

from __future__ import annotations

import base64
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from sqlalchemy.engine import make_url

from banking import Onboard
from partner import INDIVIDUAL, Partner
from payout131.cli import main
from payout131.protocol.validation import generate_account
from payout131.runtime import Runtime
from payout131.storage import schema as t
from payout131.tokens import rotation
from payout131.tokens.vault import (
    Sealed,
    Vault,
    VaultError,
    key_id,
    new_key,
    parse_keys,
    write_key_file,
)
from pgcluster import PORT, SUPERUSER, find_bindir
from test_tokens import BIK, COMPANY_ACCOUNT, RecordingRail, by_token, event_bodies, tokenize

SECRET = generate_account(BIK, "40702810", sequence=7_654_321)
SECRET_PERSON = generate_account(BIK, "40817810", sequence=7_654_322)
CONTROL = generate_account(BIK, "40817810", sequence=1_234_567)


def b64(key: bytes) -> str:
    return base64.b64encode(key).decode()


# The vault itself.


def test_seal_and_open(tmp_path: Path) -> None:
    write_key_file(tmp_path / "vault.key", [new_key()])
    vault = Vault(tmp_path / "vault.key")
    sealed = vault.seal(SECRET, b"row 1")
    assert SECRET.encode() not in sealed.blob
    assert sealed.key_id == vault.current_key_id
    assert vault.open(sealed, b"row 1") == SECRET
    assert vault.seal(SECRET, b"row 1").blob != sealed.blob  # a fresh nonce every time
    with pytest.raises(VaultError, match="failed authentication"):
        vault.open(sealed, b"row 2")  # moved to another row: refused
    with pytest.raises(VaultError, match="not in the key ring"):
        vault.open(Sealed("0" * 16, sealed.blob), b"row 1")


def test_key_file_is_private_and_reread_when_it_changes(tmp_path: Path) -> None:
    path = tmp_path / "vault.key"
    first, second = new_key(), new_key()
    write_key_file(path, [first])
    assert path.stat().st_mode & 0o777 == 0o600
    vault = Vault(path)
    old = vault.seal(SECRET, b"x")
    write_key_file(path, [second, first])
    assert vault.key_ids() == [key_id(second), key_id(first)]
    assert vault.seal(SECRET, b"x").key_id == key_id(second)
    assert vault.open(old, b"x") == SECRET
    assert b64(first) not in repr(vault)


def test_environment_keys_come_first_and_win(tmp_path: Path) -> None:
    one, two = new_key(), new_key()
    vault = Vault(tmp_path / "absent.key", f"{b64(one)}, {b64(two)}")
    assert vault.from_environment
    assert vault.key_ids() == [key_id(one), key_id(two)]
    assert "PAYOUT131_VAULT_KEY" in repr(vault)


def test_a_missing_or_bad_key_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(VaultError, match="run `payout131 init` or set PAYOUT131_VAULT_KEY"):
        Vault(tmp_path / "vault.key").seal(SECRET, b"")
    with pytest.raises(VaultError, match="is not Base64"):
        parse_keys("not base64!", "PAYOUT131_VAULT_KEY")
    with pytest.raises(VaultError, match="must be 32 bytes, got 16"):
        parse_keys(b64(b"0" * 16), "PAYOUT131_VAULT_KEY")
    with pytest.raises(VaultError, match="holds no key"):
        parse_keys("# only a comment\n", "vault.key")


# Nothing in clear at rest.


def _database_bytes(database_url: str) -> bytes:
    """Everything an attacker with the database would read: the files, or a full dump."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        assert url.database is not None
        files = [Path(url.database + suffix) for suffix in ("", "-wal", "-journal")]
        assert Path(url.database + "-wal").exists()  # the newest pages live in the WAL
        return b"".join(f.read_bytes() for f in files if f.exists())
    socket_dir = url.query["host"]
    assert isinstance(socket_dir, str)
    assert url.database
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    dump = subprocess.run(
        [
            find_bindir() / "pg_dump",
            f"--host={socket_dir}",
            f"--port={PORT}",
            f"--username={SUPERUSER}",
            "--no-password",
            url.database,
        ],
        capture_output=True,
        check=True,
        env=env,
        timeout=60,
    )
    return dump.stdout


def test_no_tokenized_account_in_the_database_or_its_dump(
    bank: Runtime, onboard: Onboard, database_url: str
) -> None:
    partner = onboard(account=1_000_000, wallet=1_000_000)
    key = {"X-PARTNER-IDEMPOTENCY-KEY": "tokenize-1"}
    body = {"type": "bank_account_ru", "bank_account_ru": {"bik": BIK, "account": SECRET}}
    token = partner.ok("tokenize", body, headers=key)["token"]
    person = tokenize(partner, SECRET_PERSON)["token"]
    # A two-step payout from the settlement account: its ready_to_confirm webhook shows the
    # account in full (confirm_information), so its stored body must be sealed.
    session = partner.ok("session/init/payout/rko", partner.rko_body(1_000, by_token(token)))
    bank.worker.drain()
    ready = event_bodies(bank, session["session"]["id"])[0]
    assert ready["confirm_information"]["account_details"]["recipient"]["account_number"] == SECRET
    partner.ok("session/confirm", {"session_id": session["session"]["id"]})
    ru = {"token": person, "full_name": "Иванов Иван", "description": "Выплата. НДС нет"}
    partner.ok("session/init/payout", _wallet_body(ru))
    partner.ok("session/init/payout", _wallet_body({**INDIVIDUAL, "account": CONTROL}))
    bank.worker.drain()

    stored = _database_bytes(database_url)
    assert CONTROL.encode() in stored  # the search finds an account stored in clear
    assert SECRET.encode() not in stored
    assert SECRET_PERSON.encode() not in stored
    assert f"40702***{SECRET[-4:]}".encode() in stored  # the mask is what is kept


def _wallet_body(ru: dict[str, Any]) -> dict[str, Any]:
    return {
        "payment_method": {"type": "bank_account", "bank_account": {"system_type": "ru", "ru": ru}},
        "amount_details": {"amount": 1_000, "currency": "rub"},
    }


# Rotation.


def _cli(bank: Runtime, *args: str, env: dict[str, str] | None = None) -> str:
    settings = bank.settings
    result = CliRunner().invoke(
        main,
        list(args),
        env={
            "PAYOUT131_HOME": str(settings.home),
            "PAYOUT131_DATABASE_URL": settings.database_url,
            **(env or {}),
        },
    )
    assert result.exit_code == 0, result.output
    return result.output


def _key_ids_in_use(bank: Runtime) -> set[str]:
    with bank.db.read() as conn:
        accounts = set(conn.execute(sa.select(t.account_tokens.c.key_id)).scalars())
        sealed_events = conn.execute(
            sa.select(t.events.c.body_key_id).where(t.events.c.body_key_id.is_not(None))
        )
        return accounts | set(sealed_events.scalars())


def _pending_tokenized_payout(bank: Runtime, partner: Partner) -> tuple[str, str]:
    token = tokenize(partner)["token"]
    session = partner.ok("session/init/payout/rko", partner.rko_body(1_000, by_token(token)))
    bank.worker.drain()
    return token, session["session"]["id"]


def test_rotate_reseals_everything_and_retires_the_old_key(bank: Runtime, onboard: Onboard) -> None:
    rail = RecordingRail()
    bank.worker.rail = rail
    partner = onboard(account=100_000)
    token, session_id = _pending_tokenized_payout(bank, partner)
    tokenize(partner, SECRET_PERSON)
    old = bank.vault.current_key_id
    assert _key_ids_in_use(bank) == {old}

    out = _cli(bank, "vault", "rotate")
    new = bank.vault.current_key_id  # the running server follows the key file
    assert new != old
    assert f"current key {new}; re-sealed 3 accounts" in out  # 2 accounts, 1 event
    assert f"retired keys: {old}" in out
    assert bank.vault.key_ids() == [new]
    assert _key_ids_in_use(bank) == {new}

    # Everything sealed before the rotation still opens: the webhook, the rail's account.
    ready = event_bodies(bank, session_id)[0]
    assert ready["confirm_information"]["account_details"]["recipient"]["account_number"]
    partner.ok("session/confirm", {"session_id": session_id})
    bank.worker.drain()
    assert [(o.account, o.token, o.bik) for o in rail.orders] == [(COMPANY_ACCOUNT, token, BIK)]
    status = _cli(bank, "vault", "status")
    assert f"{new} (current): 2 accounts" in status


def test_rotate_with_environment_keys(bank: Runtime, onboard: Onboard) -> None:
    partner = onboard(account=100_000)
    _pending_tokenized_payout(bank, partner)
    old = bank.settings.vault_key_path.read_text()
    fresh = _cli(bank, "vault", "new-key").strip()
    assert len(base64.b64decode(fresh)) == 32
    ring = ",".join([fresh, *(b64(k) for k in parse_keys(old, "vault.key"))])
    out = _cli(bank, "vault", "rotate", env={"PAYOUT131_VAULT_KEY": ring})
    assert "re-sealed 2 accounts" in out
    assert "no longer used, remove from PAYOUT131_VAULT_KEY" in out
    only_new = Vault(Path("/nonexistent"), fresh)
    assert _key_ids_in_use(bank) == {only_new.current_key_id}
    with bank.db.read() as conn:
        row = conn.execute(sa.select(t.account_tokens)).one()
    assert row.key_id == only_new.current_key_id


def test_rotation_is_resumable(bank: Runtime, onboard: Onboard) -> None:
    """An interrupted rotation (new key written, nothing re-sealed yet) finishes on rerun."""
    partner = onboard()
    tokenize(partner)
    path = bank.settings.vault_key_path
    keys = parse_keys(path.read_text(), "vault.key")
    write_key_file(path, [new_key(), *keys])  # as if the rotation stopped right here
    done = rotation.rotate(bank.db, bank.vault)
    assert done.resealed == 1
    assert len(done.retired) == 2
    assert bank.vault.key_ids() == [done.key_id]
    assert _key_ids_in_use(bank) == {done.key_id}
    ask = {"type": "bank_account_ru", "bank_account_ru": {"token": tokenize(partner)["token"]}}
    assert partner.ok("token/info", ask)["info"]["bik"] == BIK


def test_init_creates_the_vault_key(tmp_path: Path) -> None:
    home = tmp_path / "home"
    result = CliRunner().invoke(main, ["init"], env={"PAYOUT131_HOME": str(home)})
    assert result.exit_code == 0, result.output
    assert "created the account vault key" in result.output
    again = CliRunner().invoke(main, ["init"], env={"PAYOUT131_HOME": str(home)})
    assert "kept the account vault key" in again.output
    [key] = parse_keys((home / "vault.key").read_text(), "vault.key")
    assert b64(key) not in result.output  # the key itself is never printed
