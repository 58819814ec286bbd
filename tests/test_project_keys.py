"""A partner rotates its key without a failed call (`payout131 project key add|retire`), on
both engines: two active keys verify, the CLI names each by fingerprint and tells when it
was last used, and the rules of a rotation hold."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result
from cryptography.hazmat.primitives.asymmetric import rsa

from banking import Onboard
from payout131 import project_keys
from payout131.cli import main
from payout131.client import signing
from payout131.runtime import Runtime
from payout131.storage import Database, migrate
from served import serve


class Cli:
    def __init__(self, bank: Runtime, database_url: str) -> None:
        home = str(bank.settings.home)
        self.env = {"PAYOUT131_HOME": home, "PAYOUT131_DATABASE_URL": database_url}

    def run(self, *args: str, code: int = 0) -> Result:
        result = CliRunner().invoke(main, list(args), env=self.env)
        assert result.exit_code == code, result.output
        return result


def _pem_file(tmp_path: Path, key: rsa.RSAPrivateKey, name: str) -> str:
    path = tmp_path / name
    path.write_bytes(signing.public_key_pem(key))
    return str(path)


def test_a_partner_rotates_its_key_without_a_failed_call(
    bank: Runtime,
    onboard: Onboard,
    partner_keys: list[rsa.RSAPrivateKey],
    database_url: str,
    tmp_path: Path,
) -> None:
    old, new = partner_keys[0], partner_keys[1]
    partner = onboard(key_index=0)
    cli = Cli(bank, database_url)
    old_fp, new_fp = signing.fingerprint(old), signing.fingerprint(new)
    assert partner.post("wallet/balance", {}, key=new).status_code == 401  # not yet

    added = cli.run("project", "key", "add", "acme", _pem_file(tmp_path, new, "new.pem")).output
    assert new_fp in added
    bank.projects.clear()  # the server sees the change within its cache's two seconds
    for key in (old, new, old, new):  # both verify while the partner moves over
        assert partner.post("wallet/balance", {}, key=key).status_code == 200
    bank.projects.uses.flush()
    listed = json.loads(cli.run("project", "key", "list", "acme", "--json").output)
    assert [(k["fingerprint"], k["status"]) for k in listed] == [
        (new_fp, "active"),
        (old_fp, "active"),
    ]
    assert all(k["last_used_at"] is not None for k in listed)

    # the partner signs with the new key only now; the old one is retired by a prefix
    retired = cli.run("project", "key", "retire", "acme", old_fp.removeprefix("sha256:")[:12])
    assert old_fp in retired.output
    bank.projects.clear()
    assert partner.post("wallet/balance", {}, key=new).status_code == 200
    refused = partner.post("wallet/balance", {}, key=old)
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "authentication_error"
    text = cli.run("project", "key", "list", "acme").output.splitlines()
    assert text[0].startswith(f"{new_fp}  active ")
    assert text[1].startswith(f"{old_fp}  retired ")
    assert "last used 20" in text[1]


def test_the_rules_of_a_rotation(
    bank: Runtime,
    onboard: Onboard,
    partner_keys: list[rsa.RSAPrivateKey],
    database_url: str,
    tmp_path: Path,
) -> None:
    onboard(key_index=0)
    cli = Cli(bank, database_url)
    first, second, third = (_pem_file(tmp_path, k, f"{n}.pem") for n, k in enumerate(partner_keys))
    fps = [signing.fingerprint(k).removeprefix("sha256:") for k in partner_keys]

    def error(*args: str) -> str:
        out = cli.run("project", "key", *args, code=1).output.strip()
        assert out.count("\n") == 0, out
        assert out.startswith("Error: "), out
        return out

    assert "already active" in error("add", "acme", first)
    assert "only active key" in error("retire", "acme", fps[0][:8])
    cli.run("project", "key", "add", "acme", second)
    assert "2 active keys already: retire one first" in error("add", "acme", third)
    assert "at least 8 hex digits" in error("retire", "acme", fps[0][:7])
    assert "at least 8 hex digits" in error("retire", "acme", "not-a-fingerprint")
    assert "has no key" in error("retire", "acme", fps[2][:8])
    assert "no project 'nobody'" in error("add", "nobody", third)
    assert "no project 'nobody'" in error("list", "nobody")
    folder = cli.run("project", "key", "add", "acme", str(tmp_path), code=2).output
    assert "is a directory" in folder
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a key")
    assert "PUBLIC_KEY" in cli.run("project", "key", "add", "acme", str(garbage), code=2).output

    cli.run("project", "key", "retire", "acme", f"SHA256:{fps[0][:10].upper()}")
    assert "retired already" in error("retire", "acme", fps[0][:8])
    cli.run("project", "key", "add", "acme", first)  # a retired key comes back
    with bank.db.read() as conn:
        active = {k.fingerprint for k in project_keys.list_keys(conn, "acme") if k.active}
    assert active == {f"sha256:{fps[0]}", f"sha256:{fps[1]}"}

    # `project set --public-key` replaces every key at once
    cli.run("project", "set", "acme", "--public-key", third)
    shown = json.loads(cli.run("project", "show", "acme").output)
    assert [k["fingerprint"] for k in shown["keys"]] == [f"sha256:{fps[2]}"]
    assert shown["keys"][0]["public_key"].startswith("-----BEGIN PUBLIC KEY-----")


@pytest.mark.parametrize("engine", ["sqlite", "postgresql"])
def test_migration_0015_moves_each_project_key_with_its_fingerprint(
    engine: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    partner_keys: list[rsa.RSAPrivateKey],
) -> None:
    if engine == "sqlite":
        url = f"sqlite:///{tmp_path / 'old.db'}"
    else:
        cluster = request.getfixturevalue("pg_cluster")
        cluster.create_database("m_0015")
        url = cluster.url("m_0015")
    migrate(url, to="0014")
    db = Database(url)
    pem = signing.public_key_pem(partner_keys[0]).decode()
    try:
        with db.write() as conn:
            insert = "INSERT INTO projects (id, public_key_pem, created_at) VALUES (:id, :pem, 7)"
            conn.execute(sa.text(insert), {"id": "acme", "pem": pem})
            conn.execute(sa.text(insert), {"id": "odd", "pem": "not a key"})
            conn.execute(
                sa.text(
                    "INSERT INTO ledger_accounts (code, kind, project_id, created_at)"
                    " VALUES ('wallet:acme', 'wallet', 'acme', 0)"
                )
            )
        migrate(db)
        with db.read() as conn:
            keys = {k.project_id: k for k in project_keys.list_keys(conn, "acme")}
            keys |= {k.project_id: k for k in project_keys.list_keys(conn, "odd")}
            columns = {c["name"] for c in sa.inspect(conn).get_columns("projects")}
        assert keys["acme"].fingerprint == signing.fingerprint(partner_keys[0])
        assert (keys["acme"].public_key_pem, keys["acme"].added_at) == (pem, 7)
        assert keys["acme"].active
        assert keys["acme"].last_used_at is None
        assert keys["odd"].fingerprint.startswith("sha256:")  # it verifies nothing, as before
        assert "public_key_pem" not in columns
    finally:
        db.dispose()
        if engine == "postgresql":
            request.getfixturevalue("pg_cluster").drop_database("m_0015")


def test_a_stopping_server_writes_down_the_last_uses(
    database_url: str, tmp_path: Path, partner_keys: list[rsa.RSAPrivateKey]
) -> None:
    """`last used` is written every 30 s, and once more when the server stops: an operator
    never sees as idle a key that signed a call just before a restart."""
    with serve(tmp_path, database_url) as served:
        served.register("acme", partner_keys[0])
        raw = b"{}"
        signature = signing.sign(partner_keys[0], raw)
        headers = {"X-PARTNER-PROJECT": "acme", "X-PARTNER-SIGN": signature}
        answer = httpx.post(f"{served.url}/api/v1/wallet/balance", content=raw, headers=headers)
        assert answer.status_code == 200, answer.text
    db = Database(database_url)
    try:
        with db.read() as conn:
            (key,) = project_keys.list_keys(conn, "acme")
    finally:
        db.dispose()
    assert key.last_used_at is not None
