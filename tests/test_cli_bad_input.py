"""Every CLI command, given bad input, says what is wrong in one line: never a traceback.

The commands are found by walking the command tree, so a new one is tried too. Each is run
with an unknown option, with every typed option out of its range or of the wrong kind, and
with awkward text (empty, a newline, other scripts' digits, very long) in the arguments it
checks before doing anything; a bad input may also be accepted (an empty project filter
lists nothing), but never with a traceback. Then the environment: a bad setting, a database
of another engine, a database that is not there.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from partner import INDIVIDUAL
from payout131.cli import main
from payout131.client import signing

RUNNING = {"serve", "worker", "demo", "bench", "chaos"}  # would run on a good text value
OFFLINE = {"amount", "bik", "account", "inn", "kpp", "metadata", "token", "fee_fixed", "sender"}
TEXT = ["", "a\nb", "ps_¹", "٢٢", "x" * 300]
NUMBERS = ["abc", "-99999999999999999999", "99999999999999999999", "1e400", "١"]


def _leaves(command: click.Command, path: list[str]) -> Iterator[tuple[list[str], click.Command]]:
    if isinstance(command, click.Group):
        ctx = click.Context(command)
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            assert sub is not None
            yield from _leaves(sub, [*path, name])
    else:
        yield path, command


LEAVES = list(_leaves(main, []))


class Home:
    """An initialised home with a project ``acme``, its account, and files to name."""

    def __init__(self, folder: Path, database_url: str, key: Path) -> None:
        self.env = {
            "PAYOUT131_HOME": str(folder / "home"),
            "PAYOUT131_DATABASE_URL": database_url,
            "PAYOUT131_BASE_URL": "http://127.0.0.1:9",
            "PAYOUT131_PROJECT": "acme",
            "PAYOUT131_PRIVATE_KEY": str(folder / "partner.pem"),
            "PAYOUT131_TRACEBACK": "1",  # a failure no command foresaw is raised: a defect
        }
        self.run("init")
        self.run("project", "add", "acme", "--public-key", str(key))
        self.account = self.run("account", "open", "acme").output.strip()
        sheet = folder / "sheet.csv"
        sheet.write_text(
            "recipient,bik,account,amount,purpose\n"
            f"{INDIVIDUAL['full_name']},{INDIVIDUAL['bik']},{INDIVIDUAL['account']},1,"
            f"{INDIVIDUAL['description']}\n",
            encoding="utf-8",
        )
        self.good = {
            "project_id": "acme",
            "number": self.account,
            "amount": "1",
            "session_id": "ps_1",
            "payout_id": "po_1",
            "clock_id": "clk_1",
            "event_id": "evt_1",
            "file": str(sheet),
            "public_key": str(key),
            "fingerprint": "sha256:" + "0" * 64,
            "bik": INDIVIDUAL["bik"],
            "account": INDIVIDUAL["account"],
            "full_name": INDIVIDUAL["full_name"],
            "description": INDIVIDUAL["description"],
            "missing_path": str(folder / "no" / "such" / "file"),
        }

    def run(self, *args: str) -> Result:
        result = CliRunner().invoke(main, list(args), env=self.env)
        assert result.exit_code == 0, result.output
        return result


@pytest.fixture
def home(
    tmp_path: Path,
    database_url: str,
    partner_keys: list,  # type: ignore[type-arg]
    monkeypatch: pytest.MonkeyPatch,
) -> Home:
    monkeypatch.chdir(tmp_path)  # what a command accepted by mistake writes lands here
    key = tmp_path / "partner.pub.pem"
    key.write_bytes(signing.public_key_pem(partner_keys[0]))
    (tmp_path / "partner.pem").write_bytes(b"")  # the partner commands fail before using it
    return Home(tmp_path, database_url, key)


def _one_line_error(result: Result, what: str) -> None:
    """Exit 0 (the input was fine), or 1 or 2 with one ``Error:`` line; an exception no
    command foresaw (raised, with ``PAYOUT131_TRACEBACK=1``) fails the test."""
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        what,
        result.exception,
    )
    assert "Traceback" not in result.output, (what, result.output)
    if result.exit_code == 0:
        return  # the input was acceptable
    assert result.exit_code in (1, 2), (what, result.exit_code, result.output)
    last = [line for line in result.output.splitlines() if line.strip()][-1]
    assert last.startswith("Error: "), (what, result.output)


def _variants(
    command: click.Command, good: dict[str, str], partner: bool = False
) -> Iterator[tuple[str, list[str]]]:
    """Bad invocations of ``command`` (``partner``: one that calls the bank): a name for
    each and its arguments."""
    required = []
    for param in command.params:
        if isinstance(param, click.Argument):
            required.append(good.get(param.name or "", "x"))
        elif param.required:
            required += [param.opts[0], good.get(param.name or "", "x")]
    yield "an unknown option", [*required, "--no-such-option"]
    for param in command.params:
        name = param.name or ""
        if isinstance(param, click.Option) and param.is_flag:
            continue
        kind = param.type
        if isinstance(kind, click.types._NumberParamTypeBase):
            values = NUMBERS
        elif isinstance(kind, click.Choice):
            values = ["nonsense", ""]
        elif isinstance(kind, click.Path):
            values = [good["missing_path"], ""]
        elif command.name in RUNNING or (partner and name not in OFFLINE):
            continue  # good text would start it for real, or reach for the bank
        else:
            values = TEXT
        for value in values:
            if isinstance(param, click.Argument):
                args = [value if a == good.get(name, "x") else a for a in required]
                if value not in args:  # the argument is optional
                    args = [*required, value]
            else:
                args = [*_without(required, param.opts[0]), param.opts[0], value]
            yield f"{param.human_readable_name}={value[:20]!r}", args


def _without(args: list[str], flag: str) -> list[str]:
    if flag not in args:
        return args
    at = args.index(flag)
    return args[:at] + args[at + 2 :]


@pytest.mark.parametrize("leaf", LEAVES, ids=lambda leaf: " ".join(leaf[0]))
def test_every_command_answers_bad_input_in_one_line(
    home: Home, leaf: tuple[list[str], click.Command]
) -> None:
    path, command = leaf
    tried = 0
    for what, args in _variants(command, home.good, partner=path[0] == "partner"):
        result = CliRunner().invoke(main, [*path, *args], env=home.env)
        _one_line_error(result, f"{' '.join(path)}: {what}")
        tried += 1
    assert tried >= 1


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("PAYOUT131_MAX_BODY_BYTES", "abc"),
        ("PAYOUT131_MAX_BODY_BYTES", "0"),
        ("PAYOUT131_MAX_BODY_BYTES", "-1"),
        ("PAYOUT131_DATABASE_URL", "mysql://root@localhost/payout131"),
        ("PAYOUT131_WEBHOOK_SCHEDULE", "0,99999999d"),
        ("PAYOUT131_RETAIN_KEYS", "1h"),
    ],
)
def test_a_bad_setting_is_named_by_every_command(variable: str, value: str) -> None:
    for path, _ in LEAVES:
        if path[0] == "partner":
            continue  # the partner's side reads no server settings
        env = {variable: value, "PAYOUT131_TRACEBACK": "1"}
        result = CliRunner().invoke(main, [*path], env=env)
        _one_line_error(result, " ".join(path))
        assert result.exit_code == 1
        assert f"Error: {variable}: " in result.output


def test_a_database_that_is_not_there_is_one_line(tmp_path: Path) -> None:
    env = {
        "PAYOUT131_HOME": str(tmp_path),
        "PAYOUT131_DATABASE_URL": "postgresql://nobody@127.0.0.1:9/payout131",
        "PAYOUT131_TRACEBACK": "1",
    }
    for args in (
        ["init"],
        ["project", "show", "acme"],
        ["ledger", "check"],
        ["webhooks", "list"],
        ["purge"],
        ["vault", "status"],
        ["serve"],
        ["worker"],
    ):
        result = CliRunner().invoke(main, args, env=env)
        _one_line_error(result, " ".join(args))
        assert result.exit_code == 1, result.output
        assert "database" in result.output.lower(), result.output


def _fails(home: Home, *args: str, code: int) -> str:
    result = CliRunner().invoke(main, list(args), env=home.env)
    _one_line_error(result, " ".join(args))
    assert result.exit_code == code, result.output
    return result.output


def test_only_a_settlement_account_is_topped_up(home: Home) -> None:
    for code in ("system:fees", "system:funding", "wallet:acme", "40817810400003869535"):
        assert "no settlement account" in _fails(home, "account", "topup", code, "1", code=1)
    huge = "92233720368547758.07"  # 2^63 - 1 kopecks: the most a balance can hold
    home.run("account", "topup", home.account, huge)
    out = _fails(home, "account", "topup", home.account, "0.01", code=1)
    assert "beyond 9223372036854775807 kopecks" in out
    assert "from 0.01 to" in _fails(home, "wallet", "topup", "acme", "92233720368547758.08", code=2)


@pytest.mark.parametrize("project_id", ["", " acme", "проект", "a\nb", "a b"])
def test_a_project_id_no_partner_could_send_is_refused(home: Home, project_id: str) -> None:
    key = home.good["public_key"]
    out = _fails(home, "project", "add", project_id, "--public-key", key, code=1)
    assert "X-PARTNER-PROJECT" in out


def test_serve_refuses_a_port_it_cannot_listen_on(home: Home) -> None:
    for port in ("99999", "0", "-1", "８１３１"):
        assert "--port" in _fails(home, "serve", "--port", port, code=2)


def test_the_database_file_and_keys_are_private(home: Home) -> None:
    folder = Path(home.env["PAYOUT131_HOME"])
    for name in ("bank-private.pem", "vault.key"):
        assert (folder / name).stat().st_mode & 0o777 == 0o600, name
    url = home.env["PAYOUT131_DATABASE_URL"]
    if url.startswith("sqlite"):
        assert Path(url.removeprefix("sqlite:///")).stat().st_mode & 0o777 == 0o600
