"""The operator CLI: every command, on both engines, through click's runner."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from payout131.cli import main
from payout131.cli.main import COMMANDS
from payout131.client import signing
from payout131.protocol import validation

SHARED = Path(__file__).resolve().parents[2] / "shared"


class Operator:
    def __init__(self, home: Path, database_url: str) -> None:
        self.env = {"PAYOUT131_HOME": str(home), "PAYOUT131_DATABASE_URL": database_url}
        self.runner = CliRunner()

    def run(self, *args: str, code: int = 0) -> Result:
        result = self.runner.invoke(main, list(args), env=self.env, catch_exceptions=False)
        assert result.exit_code == code, result.output
        return result


@pytest.fixture
def operator(tmp_path: Path, database_url: str) -> Operator:
    op = Operator(tmp_path / "home", database_url)
    op.run("init")
    return op


def test_init_makes_keys_and_bank_key_prints_them(operator: Operator, tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert (home / "bank-private.pem").stat().st_mode & 0o777 == 0o600
    printed = operator.run("bank-key").output
    assert printed.startswith("-----BEGIN PUBLIC KEY-----")
    signing.load_public_key(printed.encode())
    assert "kept the bank's key pair" in operator.run("init").output  # idempotent


def test_project_lifecycle(operator: Operator, public_key: Path) -> None:
    operator.run(
        "project",
        "add",
        "acme",
        "--public-key",
        str(public_key),
        "--webhook-url",
        "http://127.0.0.1:9/hook",
        "--inn",
        "7707083893",
    )
    shown = json.loads(operator.run("project", "show", "acme").output)
    assert shown["webhook_url"] == "http://127.0.0.1:9/hook"
    assert shown["single_request"] is False
    assert shown["inn"] == "7707083893"
    operator.run(
        "project",
        "set",
        "acme",
        "--single-request",
        "--legal-name",
        "ООО Акме",
        "--kpp",
        "773601001",
    )
    shown = json.loads(operator.run("project", "show", "acme").output)
    assert shown["single_request"] is True
    assert shown["legal_name"] == "ООО Акме"
    assert (
        "already exists"
        in operator.run("project", "add", "acme", "--public-key", str(public_key), code=1).output
    )
    assert "no project" in operator.run("project", "show", "nobody", code=1).output
    assert "INN" in operator.run("project", "set", "acme", "--inn", "7707083894", code=2).output


def test_bad_public_key_is_refused(operator: Operator, tmp_path: Path) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("not a key")
    assert (
        "not a readable PEM public key"
        in operator.run("project", "add", "x", "--public-key", str(junk), code=2).output
    )


def test_accounts_wallets_and_ledger(operator: Operator, public_key: Path) -> None:
    operator.run("project", "add", "acme", "--public-key", str(public_key))
    number = operator.run("account", "open", "acme").output.strip()
    assert number.startswith("40702810")
    assert validation.account_key_ok("049205131", number)
    assert (
        operator.run("account", "open", "acme", "--number", "40702810300200000013").output.strip()
        == "40702810300200000013"
    )
    assert (
        "control key"
        in operator.run(
            "account", "open", "acme", "--number", "40702810300200000014", code=2
        ).output
    )
    assert (
        "already exists"
        in operator.run(
            "account", "open", "acme", "--number", "40702810300200000013", code=1
        ).output
    )
    assert "no project" in operator.run("account", "open", "nobody", code=1).output
    assert "balance 150000" in operator.run("account", "topup", number, "150000").output
    assert (
        "no settlement account"
        in operator.run("account", "topup", "40702810300200000099", "1", code=1).output
    )
    operator.run("account", "topup", number, "0", code=2)
    operator.run("wallet", "topup", "acme", "5000")
    assert "no project" in operator.run("wallet", "topup", "nobody", "5000", code=1).output
    assert "ledger ok" in operator.run("ledger", "check").output


def test_bik_import_of_the_official_file(operator: Operator) -> None:
    imported = operator.run("bik", "import", str(SHARED / "data" / "20201204ED01OSBR.zip")).output
    assert "imported" in imported
    count = int(imported.split()[1])
    assert count > 1000


def test_bik_import_refuses_junk(operator: Operator, tmp_path: Path) -> None:
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"\x00\x01 nothing to see")
    operator.run("bik", "import", str(junk), code=1)


def test_every_command_has_help_and_is_documented() -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    for path, command in _commands(main, ()):
        text = CliRunner().invoke(main, [*path, "--help"]).output
        assert command.help, path
        assert "Usage:" in text
        assert f"payout131 {' '.join(path)}" in readme, f"README does not document {' '.join(path)}"


def test_every_lazy_command_is_listed_and_loads() -> None:
    listed = main.list_commands(click.Context(main))
    assert set(COMMANDS) <= set(listed)
    assert {"init", "serve", "bank-key"} <= set(listed)
    for name in COMMANDS:
        command = main.get_command(click.Context(main), name)
        assert isinstance(command, click.Command)
        assert command.name == name  # its own name, as --help and usage spell it
    assert main.list_commands(click.Context(main)) == sorted(set(listed))  # loaded: once


def test_a_partner_command_does_not_load_the_servers_storage() -> None:
    """``payout131 partner ...`` starts without SQLAlchemy, Alembic or psycopg."""
    script = (
        "import sys\n"
        "from payout131.cli import main\n"
        "try:\n"
        "    main(['partner', 'status', '--help'])\n"
        "except SystemExit as done:\n"
        "    assert done.code == 0, done.code\n"
        "heavy = sorted({'sqlalchemy', 'alembic', 'psycopg'} & set(sys.modules))\n"
        "print('loaded:', heavy)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    assert "Usage: " in done.stdout
    assert "loaded: []" in done.stdout


def _commands(
    group: click.Group, prefix: tuple[str, ...]
) -> list[tuple[tuple[str, ...], click.Command]]:
    found = []
    context = click.Context(group)
    for name in group.list_commands(context):  # the lazy ones too: imported here
        command = group.get_command(context, name)
        assert command is not None, name
        path = (*prefix, name)
        if isinstance(command, click.Group):
            found.extend(_commands(command, path))
        else:
            found.append((path, command))
    return found
