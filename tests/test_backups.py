"""``payout131 backup`` and ``restore``: a backup taken while payouts are being made is
restored into a fresh home, every payout acknowledged before it began is there, the ledger
balances, and the restored vault opens what the old one sealed. On PostgreSQL the backup
holds the keys (the database is pg_dump's) and says so; a damaged or foreign file, and a
home that already holds a bank, are refused in one line."""

from __future__ import annotations

import io
import os
import sqlite3
import tarfile
import threading
import tracemalloc
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result

from banking import Onboard
from partner import payout_body
from payout131.cli import main
from payout131.ledger.check import violations
from payout131.runtime import Runtime
from payout131.settings import Settings
from payout131.storage import Database, backups
from payout131.tokens import account_tokens
from payout131.tokens.vault import Vault
from test_tokens import tokenize


def run(env: dict[str, str], *args: str, code: int = 0) -> Result:
    result = CliRunner().invoke(main, list(args), env={**env, "PAYOUT131_TRACEBACK": "1"})
    assert result.exit_code == code, result.output
    return result


def test_a_backup_under_load_restores_whole(
    bank: Runtime, onboard: Onboard, database_url: str, tmp_path: Path
) -> None:
    partner = onboard(wallet=10**9, single_request=True)
    token = tokenize(partner)["token"]
    acknowledged = [partner.ok("session/init/payout", payout_body(1_000))["session"]["id"]]
    stop = threading.Event()

    def pay() -> None:  # the server keeps taking payouts while the backup is made
        while not stop.is_set():
            partner.ok("session/init/payout", payout_body(1_000))
            bank.worker.drain()

    load = threading.Thread(target=pay)
    load.start()
    env = {"PAYOUT131_HOME": str(bank.settings.home), "PAYOUT131_DATABASE_URL": database_url}
    try:
        acknowledged.append(partner.ok("session/init/payout", payout_body(2_000))["session"]["id"])
        made = run(env, "backup", str(tmp_path / "bank.tar")).output
    finally:
        stop.set()
        load.join(30)
    archive = tmp_path / "bank.tar"
    assert archive.stat().st_mode & 0o777 == 0o600  # it holds the keys
    with tarfile.open(archive) as held:
        names = set(held.getnames())
    assert {"manifest.json", "bank-private.pem", "bank-public.pem", "vault.key"} <= names
    if not database_url.startswith("sqlite"):
        assert "payout131.db" not in names
        assert "pg_dump" in made
        fresh = {"PAYOUT131_HOME": str(tmp_path / "fresh"), "PAYOUT131_DATABASE_URL": database_url}
        assert "pg_restore" in run(fresh, "restore", str(archive)).output
        key = (tmp_path / "fresh" / "bank-private.pem").read_bytes()
        assert key == (bank.settings.home / "bank-private.pem").read_bytes()
        return
    assert "payout131.db" in names
    fresh = {"PAYOUT131_HOME": str(tmp_path / "fresh")}
    restored = run(fresh, "restore", str(archive)).output
    assert "ledger check: ok" in restored
    db = Database(f"sqlite:///{tmp_path / 'fresh' / 'payout131.db'}")
    try:
        with db.read() as conn:
            assert violations(conn) == []
            numbers = {f"ps_{n}" for n in conn.execute(sa.text("SELECT n FROM sessions")).scalars()}
            found = account_tokens.find(conn, partner.project, token)
        assert set(acknowledged) <= numbers
        assert found is not None
        vault = Vault(tmp_path / "fresh" / "vault.key")
        assert account_tokens.account_for(vault, found)  # the restored vault opens it
    finally:
        db.dispose()
    again = run(fresh, "restore", str(archive), code=1).output
    assert "already exist: restore into a fresh PAYOUT131_HOME" in again


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("flip", "is damaged"),
        ("text", "not a payout131 backup"),
        ("foreign", "holds 'notes.txt', not a payout131 backup"),
    ],
)
def test_a_damaged_or_foreign_backup_is_refused(
    bank: Runtime, tmp_path: Path, damage: str, message: str
) -> None:
    settings = bank.settings
    env = {"PAYOUT131_HOME": str(settings.home), "PAYOUT131_DATABASE_URL": settings.database}
    archive = tmp_path / "bank.tar"
    run(env, "backup", str(archive))
    if damage == "flip":
        with tarfile.open(archive) as held:
            members = {m.name: held.extractfile(m).read() for m in held.getmembers()}  # type: ignore[union-attr]
        members["bank-public.pem"] = members["bank-public.pem"].replace(b"A", b"B", 1)
        with tarfile.open(archive, "w") as out:
            for name, data in members.items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                out.addfile(info, io.BytesIO(data))
    elif damage == "text":
        archive.write_text("hello")
    else:
        with tarfile.open(archive, "w") as out:
            out.add(__file__, arcname="notes.txt")
    fresh = {"PAYOUT131_HOME": str(tmp_path / "fresh"), "PAYOUT131_DATABASE_URL": settings.database}
    refused = run(fresh, "restore", str(archive), code=1).output
    assert message in refused
    assert len(refused.strip().splitlines()) == 1
    assert not (tmp_path / "fresh" / "bank-private.pem").exists()  # nothing half-restored


def test_restore_refuses_what_would_not_stand(bank: Runtime, tmp_path: Path) -> None:
    """A leftover WAL beside the database, vault keys that are not there, or a PostgreSQL
    bank's keys into SQLite: each refused before anything is written."""
    settings = bank.settings
    env = {"PAYOUT131_HOME": str(settings.home), "PAYOUT131_DATABASE_URL": settings.database}
    fresh_home = tmp_path / "fresh"
    fresh = {"PAYOUT131_HOME": str(fresh_home)}
    keys = (settings.home / "vault.key").read_text().split("\n")
    env_keys = next(line for line in keys if line and not line.startswith("#"))
    archive = tmp_path / "env.tar"  # made with the vault keys in the environment
    run({**env, "PAYOUT131_VAULT_KEY": env_keys}, "backup", str(archive))
    with tarfile.open(archive) as held:
        assert "vault.key" not in held.getnames()
    if not settings.database.startswith("sqlite"):
        pg_fresh = {**fresh, "PAYOUT131_DATABASE_URL": settings.database}
        refused = run(pg_fresh, "restore", str(archive), code=1).output
        assert "was made with the vault keys in PAYOUT131_VAULT_KEY" in refused
        refused = run(fresh, "restore", str(archive), code=1).output  # SQLite by default
        assert "holds the keys of a PostgreSQL bank" in refused
        assert not fresh_home.exists()
        return
    refused = run(fresh, "restore", str(archive), code=1).output
    assert "was made with the vault keys in PAYOUT131_VAULT_KEY" in refused
    fresh_home.mkdir()
    (fresh_home / "payout131.db-wal").write_bytes(b"an old bank's pages")
    refused = run({**fresh, "PAYOUT131_VAULT_KEY": env_keys}, "restore", str(archive), code=1)
    assert "payout131.db-wal already exist" in refused.output
    assert sorted(p.name for p in fresh_home.iterdir()) == ["payout131.db-wal"]


def test_a_large_database_is_streamed_never_held_in_memory(tmp_path: Path) -> None:
    """A 48 MB database goes into the backup and back out through files: the process's
    Python allocations stay far below its size (they held it twice before)."""
    home = tmp_path / "home"
    env = {"PAYOUT131_HOME": str(home)}
    run(env, "init")
    database = home / "payout131.db"
    with sqlite3.connect(database) as conn:  # ballast the bank never reads
        conn.execute("CREATE TABLE ballast (b BLOB)")
        conn.executemany("INSERT INTO ballast VALUES (?)", [(os.urandom(1 << 20),)] * 48)
    conf = Settings(home=home)
    archive = tmp_path / "bank.tar"
    tracemalloc.start()
    try:
        backups.make(conf, archive)
        _, made_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        restored = backups.restore(Settings(home=tmp_path / "fresh"), archive)
        _, restored_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert archive.stat().st_size > 48 << 20
    assert restored.database is not None
    assert restored.database.stat().st_size == database.stat().st_size
    assert made_peak < 8 << 20, made_peak
    assert restored_peak < 8 << 20, restored_peak
