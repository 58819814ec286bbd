"""``payout131 partner``: every command against the real app, on SQLite and PostgreSQL.

The app is served on loopback with its worker running (on the test's manual clock, which
stands still: every step is due at once), and the commands run in-process through click's
runner, configured only by the ``PAYOUT131_*`` environment as a partner would configure them.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result
from cryptography.hazmat.primitives import serialization

from banking import Onboard, available
from liveserver import serve
from partner import INDIVIDUAL, ORGANISATION, Partner
from payout131.cli import main
from payout131.ledger.accounts import wallet_code
from payout131.runtime import Runtime
from payout131.storage import schema as t

PURPOSE = INDIVIDUAL["description"]
PERSON = ["--name", INDIVIDUAL["full_name"], "--bik", INDIVIDUAL["bik"]]
PERSON += ["--account", INDIVIDUAL["account"], "--purpose", PURPOSE]


@pytest.fixture
def live(bank: Runtime) -> Iterator[str]:
    """The app with its worker and webhook dispatcher running, on loopback."""
    with serve(bank.app(run_worker=True)) as url:
        yield url


class Cli:
    def __init__(self, url: str, partner: Partner, tmp_path: Path) -> None:
        key = tmp_path / f"{partner.project}.pem"
        key.write_bytes(
            partner.key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        self.env = {
            "PAYOUT131_BASE_URL": url,
            "PAYOUT131_PROJECT": partner.project,
            "PAYOUT131_PRIVATE_KEY": str(key),
        }

    def __call__(self, *args: str, code: int = 0, stdin: str | None = None) -> Result:
        result = CliRunner().invoke(main, ["partner", *args], env=self.env, input=stdin)
        assert result.exit_code == code, (result.output, result.exception)
        assert result.exception is None or isinstance(result.exception, SystemExit)
        return result


CliFor = Callable[[Partner], Cli]


@pytest.fixture
def cli_for(live: str, tmp_path: Path) -> CliFor:
    return lambda partner: Cli(live, partner, tmp_path)


def session_id(output: str) -> str:
    found = re.search(r"ps_\d+", output)
    assert found is not None, output
    return found.group(0)


# -- one payout -------------------------------------------------------------------------------


def test_pay_two_step_confirms_and_prints_the_outcome(
    bank: Runtime, onboard: Onboard, cli_for: CliFor
) -> None:
    partner = onboard(wallet=500_000)
    cli = cli_for(partner)
    out = cli("pay", *PERSON, "--amount", "1500.25").output
    assert "session/create:" in out
    assert "session/start/payout:" in out
    assert "session/confirm:" in out
    assert "succeeded: ps_" in out
    assert available(bank, wallet_code("acme")) == 500_000 - 150_025
    shown = cli("status", session_id(out)).output
    assert "accepted" in shown
    assert "succeeded 1500.25 RUB" in shown
    raw = json.loads(cli("status", session_id(out), "--json").output)  # the whole answer
    assert raw["status"] == "ok"
    assert raw["session"]["payments"][0]["amount_details"]["amount"] == 150_025
    assert "wallet acme: 3499.75 RUB" in cli("balance").output


def test_pay_no_confirm_then_confirm_and_cancel(
    bank: Runtime, onboard: Onboard, cli_for: CliFor
) -> None:
    partner = onboard(wallet=10_000)
    cli = cli_for(partner)
    first = cli("pay", *PERSON, "--amount", "30", "--no-confirm").output
    assert "waiting for confirmation: payout131 partner confirm" in first
    second = cli("--api-version", "v2", "pay", *PERSON, "--amount", "40", "--no-confirm")
    assert available(bank, wallet_code("acme")) == 3_000

    confirmed = cli("confirm", session_id(first)).output
    assert "in_progress" in confirmed
    cancelled = cli("cancel", session_id(second.output)).output
    assert "cancelled" in cancelled
    assert "session_cancelled_by_partner" in cancelled
    assert available(bank, wallet_code("acme")) == 7_000
    again = cli("cancel", session_id(second.output), code=1).output
    assert "Error: session_wrong_state:" in again


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_pay_single_request(bank: Runtime, onboard: Onboard, cli_for: CliFor, version: str) -> None:
    partner = onboard(wallet=10_000, single_request=True)
    cli = cli_for(partner)
    out = cli("--api-version", version, "pay", *PERSON, "--amount", "100", "--single-request")
    assert "session/init/payout:" in out.output
    assert "session/confirm" not in out.output
    assert "succeeded: ps_" in out.output
    assert available(bank, wallet_code("acme")) == 0


def test_pay_from_a_settlement_account(bank: Runtime, onboard: Onboard, cli_for: CliFor) -> None:
    partner = onboard(account=1_000_000)
    assert partner.account is not None
    cli = cli_for(partner)
    company = ["--name", ORGANISATION["full_name"], "--bik", ORGANISATION["bik"]]
    company += ["--account", ORGANISATION["account"], "--purpose", ORGANISATION["description"]]
    company += ["--inn", ORGANISATION["inn"], "--kpp", ORGANISATION["kpp"]]
    out = cli("pay", *company, "--amount", "2500", "--rko", "--from", partner.account).output
    assert "session/create/rko:" in out
    assert "succeeded: ps_" in out
    shown = cli("balance", "--account", partner.account).output
    assert f"account {partner.account}: 7500.00 RUB" in shown
    assert "--from ACCOUNT" in cli("pay", *company, "--amount", "1", "--rko", code=2).output


def test_tokenize_then_pay_by_token(bank: Runtime, onboard: Onboard, cli_for: CliFor) -> None:
    partner = onboard(wallet=10_000)
    cli = cli_for(partner)
    out = cli("tokenize", "--bik", INDIVIDUAL["bik"], "--account", INDIVIDUAL["account"]).output
    token = re.search(r"token: ([0-9a-f]{64})", out)
    assert token is not None
    assert "masked account: 40817***9535" in out
    paid = cli(
        "pay",
        "--name",
        INDIVIDUAL["full_name"],
        "--token",
        token.group(1),
        "--purpose",
        PURPOSE,
        "--amount",
        "99.99",
    )
    assert "succeeded: ps_" in paid.output


def test_a_failed_payout_is_an_error_exit(bank: Runtime, onboard: Onboard, cli_for: CliFor) -> None:
    partner = onboard(wallet=10_000, single_request=True)
    cli = cli_for(partner)
    out = cli("pay", *PERSON, "--amount", "10.02", code=1).output  # the simulator rejects ..02
    assert "failed: operation_rejected" in out
    assert available(bank, wallet_code("acme")) == 10_000


def test_errors_are_one_line_without_a_traceback(onboard: Onboard, cli_for: CliFor) -> None:
    partner = onboard(wallet=1_000)
    cli = cli_for(partner)
    poor = cli("pay", *PERSON, "--amount", "11", code=1).output
    assert poor.startswith("session/create:")
    assert "Error: insufficient_wallet_balance:" in poor
    assert "more than two decimals" in cli("pay", *PERSON, "--amount", "1.001", code=2).output
    assert "Error: invalid_request: session_id" in cli("status", "nonsense", code=1).output
    assert "Error: invalid_request:" in cli("status", "ps_999999", code=1).output
    both = cli("pay", *PERSON, "--token", "ab" * 32, "--amount", "1", code=2).output
    assert "not both" in both


def test_missing_configuration_names_the_option_and_the_variable(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["partner", "balance"], env={"PAYOUT131_BASE_URL": ""})
    assert result.exit_code == 2
    assert "--base-url (or PAYOUT131_BASE_URL)" in result.output
    assert "--project (or PAYOUT131_PROJECT)" in result.output
    assert "--private-key (or PAYOUT131_PRIVATE_KEY)" in result.output


# -- batches ----------------------------------------------------------------------------------


def write_sheet(path: Path, rows: list[list[str]], header: str | None = None) -> Path:
    with path.open("w", newline="", encoding="utf-8") as file:
        file.write((header or "recipient,bik,account,amount,purpose,inn,kpp") + "\n")
        csv.writer(file).writerows(rows)
    return path


def person(amount: str, n: int = 0) -> list[str]:
    return [f"{INDIVIDUAL['full_name']} {n}", INDIVIDUAL["bik"], INDIVIDUAL["account"], amount]


def rows_of(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8") as file:
        return list(csv.DictReader(file))


def payouts(bank: Runtime) -> int:
    with bank.db.read() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(t.payouts)).scalar_one())


def test_batch_two_step_pays_confirms_and_reports(
    bank: Runtime, onboard: Onboard, cli_for: CliFor, tmp_path: Path
) -> None:
    partner = onboard(wallet=1_000_000)
    cli = cli_for(partner)
    sheet = [[*person(f"{100 + n}.50", n), PURPOSE, "", ""] for n in range(10)]
    org = ORGANISATION
    sheet.append(
        [org["full_name"], org["bik"], org["account"], "1000", PURPOSE, org["inn"], org["kpp"]]
    )
    sheet.append([*person("5.02", 99), PURPOSE, "", ""])  # the simulator rejects ..02
    file = write_sheet(tmp_path / "march.csv", sheet)
    result = cli("batch", str(file), code=1)
    assert "12 rows" in result.output
    assert "Batch summary" in result.output
    assert re.search(r"succeeded\s*│\s*11\s*│\s*2050\.00", result.output), result.output
    assert re.search(r"failed\s*│\s*1\s*│\s*5\.02", result.output), result.output
    assert "1 payout(s) failed" in result.output
    results = rows_of(tmp_path / "march.results.csv")
    assert [r["status"] for r in results] == ["succeeded"] * 11 + ["failed"]
    assert results[-1]["error_code"] == "operation_rejected"
    assert results[0]["line"] == "2"
    assert results[0]["amount"] == "100.50"
    assert all(r["session_id"].startswith("ps_") for r in results)
    assert available(bank, wallet_code("acme")) == 1_000_000 - 205_000

    again = cli("batch", str(file), code=1)  # nothing more to do; failed rows stay failed
    assert "still to pay 0.00 RUB" in again.output
    assert payouts(bank) == 12


def test_batch_no_confirm_then_a_rerun_confirms(
    bank: Runtime, onboard: Onboard, cli_for: CliFor, tmp_path: Path
) -> None:
    partner = onboard(wallet=100_000)
    cli = cli_for(partner)
    file = write_sheet(
        tmp_path / "p.csv", [[*person(f"{n + 1}", n), PURPOSE, "", ""] for n in range(4)]
    )
    first = cli("batch", str(file), "--no-confirm")
    assert re.search(r"pending\s*│\s*4", first.output), first.output
    assert {r["status"] for r in rows_of(tmp_path / "p.results.csv")} == {"pending"}
    second = cli("batch", str(file))
    assert re.search(r"succeeded\s*│\s*4\s*│\s*10\.00", second.output), second.output
    assert payouts(bank) == 4


def test_batch_from_a_settlement_account_with_a_token_row(
    bank: Runtime, onboard: Onboard, cli_for: CliFor, tmp_path: Path
) -> None:
    partner = onboard(account=100_000)
    assert partner.account is not None
    cli = cli_for(partner)
    made = cli("tokenize", "--bik", INDIVIDUAL["bik"], "--account", INDIVIDUAL["account"]).output
    token = made.split()[1]
    file = tmp_path / "t.csv"
    file.write_text(
        "recipient;token;bik;account;amount;purpose\n"
        f"Петров Пётр;{token};;;10,50;{PURPOSE}\n"
        f"Иванов Иван;;{INDIVIDUAL['bik']};{INDIVIDUAL['account']};20;{PURPOSE}\n",
        encoding="utf-8-sig",
    )
    out = cli("batch", str(file), "--rko", "--from", partner.account).output
    assert re.search(r"succeeded\s*│\s*2\s*│\s*30\.50", out), out
    results = rows_of(tmp_path / "t.results.csv")
    assert results[0]["payee"].startswith("token ")
    assert available(bank, partner.account) == 100_000 - 3_050


def test_batch_refuses_a_bad_file_before_any_money_moves(
    bank: Runtime, onboard: Onboard, cli_for: CliFor, tmp_path: Path
) -> None:
    partner = onboard(wallet=100_000)
    cli = cli_for(partner)
    org = ORGANISATION
    file = write_sheet(
        tmp_path / "bad.csv",
        [
            [*person("10"), PURPOSE, "", ""],
            [*person("10.001"), PURPOSE, "", ""],
            ["Иванов", "12345", INDIVIDUAL["account"], "10", PURPOSE, "", ""],
            ["Иванов", INDIVIDUAL["bik"], "40817810400003869536", "10", PURPOSE, "", ""],
            [org["full_name"], org["bik"], org["account"], "10", PURPOSE, "", ""],
            [*person("10"), "Зачем?", "", ""],
            [*person("0"), PURPOSE, "", ""],
        ],
    )
    out = cli("batch", str(file), code=1).output
    assert "6 problem(s); nothing was paid" in out
    for line, text in [
        (3, "more than two decimals"),
        (4, "'12345' is not a BIK"),
        (5, "control key"),
        (6, "inn: required"),
        (7, "'?' at position"),
        (8, "more than zero"),
    ]:
        assert re.search(rf"{line}\s*│.*{re.escape(text)}", out), (line, text, out)
    unknown = write_sheet(
        tmp_path / "tok.csv",
        [["Иванов", "ab" * 32, "1", PURPOSE]],
        "recipient,token,amount,purpose",
    )
    assert "no such token" in cli("batch", str(unknown), code=1).output
    assert payouts(bank) == 0
    with bank.db.read() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(t.sessions)).scalar_one() == 0


def test_batch_checks_the_funds_first(
    bank: Runtime, onboard: Onboard, cli_for: CliFor, tmp_path: Path
) -> None:
    partner = onboard(wallet=1_000)
    cli = cli_for(partner)
    file = write_sheet(
        tmp_path / "p.csv", [[*person("6"), PURPOSE, "", ""], [*person("5"), PURPOSE, "", ""]]
    )
    out = cli("batch", str(file), code=1).output
    assert "the wallet has 10.00 RUB, the rows still to pay need 11.00 RUB; nothing was paid" in out
    assert "nothing was paid" in cli("batch", str(file), "--check", code=1).output
    assert payouts(bank) == 0


def test_batch_check_only_validates(
    bank: Runtime, onboard: Onboard, cli_for: CliFor, tmp_path: Path
) -> None:
    partner = onboard(wallet=10_000)
    cli = cli_for(partner)
    file = write_sheet(tmp_path / "p.csv", [[*person("6"), PURPOSE, "", ""]])
    assert "the file is ready to pay" in cli("batch", str(file), "--check").output
    assert payouts(bank) == 0


def test_batch_refuses_a_journal_of_another_version_of_the_file(
    bank: Runtime, onboard: Onboard, cli_for: CliFor, tmp_path: Path
) -> None:
    partner = onboard(wallet=10_000)
    cli = cli_for(partner)
    file = write_sheet(tmp_path / "p.csv", [[*person("6"), PURPOSE, "", ""]])
    cli("batch", str(file))
    write_sheet(file, [[*person("6"), PURPOSE, "", ""], [*person("7"), PURPOSE, "", ""]])
    out = cli("batch", str(file), code=1).output
    assert "journal of another version of this file" in out
    assert payouts(bank) == 1
    cli("batch", str(file), "--results", str(tmp_path / "p2.csv"))  # a new batch, knowingly
    assert payouts(bank) == 3


# -- one rule for amounts, errors and --json ------------------------------------------------


def test_batch_counts_the_fee_of_every_row_before_paying(
    bank: Runtime, onboard: Onboard, cli_for: CliFor, tmp_path: Path
) -> None:
    """11.00 RUB of rows and a 0.50 RUB fee on each: 11.00 RUB in the wallet is not enough,
    and nothing is paid (before, row two was refused after row one was paid)."""
    partner = onboard(wallet=1_100, fee_fixed=50)
    cli = cli_for(partner)
    file = write_sheet(
        tmp_path / "p.csv", [[*person("6"), PURPOSE, "", ""], [*person("5"), PURPOSE, "", ""]]
    )
    out = cli("batch", str(file), code=1).output
    assert "the rows still to pay need 12.00 RUB; nothing was paid" in out
    assert payouts(bank) == 0
    stated = cli("balance", "--json").output
    assert json.loads(stated)["payout_fee"] == {
        "percent_bps": 0,
        "fixed": {"amount": 50, "currency": "rub"},
    }
    no_fee = cli("batch", str(file), "--check", "--fee-bps", "0", "--fee-fixed", "0").output
    assert "the file is ready to pay" in no_fee  # a fee given on the command line wins
    part = cli("batch", str(file), "--check", "--fee-bps", "0", code=1).output
    assert "need 12.00 RUB" in part  # and the part not given is the bank's


def test_a_session_in_error_shows_its_code(
    bank: Runtime, onboard: Onboard, cli_for: CliFor
) -> None:
    partner = onboard(wallet=10_000, single_request=True)
    cli = cli_for(partner)
    out = cli("pay", *PERSON, "--amount", "10.02", code=1).output
    shown = cli("status", session_id(out)).output
    assert "error" in shown
    assert "operation_rejected" in shown


def test_json_is_the_whole_answer_on_every_command(
    bank: Runtime, onboard: Onboard, cli_for: CliFor
) -> None:
    partner = onboard(wallet=10_000)
    cli = cli_for(partner)
    first = cli("pay", *PERSON, "--amount", "1", "--no-confirm").output
    second = cli("pay", *PERSON, "--amount", "2", "--no-confirm").output
    bik, account = ORGANISATION["bik"], ORGANISATION["account"]
    for args in (
        ["status", session_id(first), "--json"],
        ["confirm", session_id(first), "--json"],
        ["cancel", session_id(second), "--json"],
        ["balance", "--json"],
        ["tokenize", "--bik", bik, "--account", account, "--json"],
    ):
        answer = json.loads(cli(*args).output)
        assert answer["status"] == "ok", args


def test_amounts_in_kopecks_are_asked_for_by_name(
    bank: Runtime, onboard: Onboard, cli_for: CliFor
) -> None:
    partner = onboard(wallet=500_000, single_request=True)
    cli = cli_for(partner)
    cli("pay", *PERSON, "--amount", "150025", "--kopecks")
    assert available(bank, wallet_code("acme")) == 500_000 - 150_025
    assert (
        "whole number of kopecks"
        in cli("pay", *PERSON, "--amount", "1500.25", "--kopecks", code=2).output
    )
    assert "more than zero" in cli("pay", *PERSON, "--amount", "0", code=2).output


# -- phones and cards (PROTOCOL §9) -------------------------------------------------------------


def test_pay_a_phone_and_a_card_tokenize_a_card_and_verify_a_phone(
    bank: Runtime, onboard: Onboard, cli_for: CliFor
) -> None:
    partner = onboard(wallet=1_000_000)
    cli = cli_for(partner)
    name = ["--name", "Иванов Иван"]
    phone = ["--phone", "79161234567", "--bank-id", "100000000004"]
    out = cli("pay", *name, *phone, "--purpose", "Выплата", "--amount", "10").output
    assert "succeeded: ps_" in out
    number = "2200000000000004\n"  # read from standard input: not in the shell's history
    card = cli("pay", *name, "--card", "-", "--amount", "5", stdin=number).output
    assert "succeeded: ps_" in card
    nothing = cli("pay", *name, "--card", "-", "--amount", "5", stdin="", code=2).output
    assert "none came" in nothing
    made = cli("tokenize", "--card", "4111111111111111").output
    assert "card: visa 411111******1111" in made
    token = made.split("token: ")[1].split()[0]
    paid = cli("pay", *name, "--card-token", token, "--amount", "2", "--single-request").output
    assert "succeeded: ps_" in paid
    assert available(bank, wallet_code("acme")) == 1_000_000 - 1_700
    failed = cli("pay", *name, "--card", "2200000000000012", "--amount", "1", code=1).output
    assert "card_expired: the card has expired" in failed

    assert "found: Иван Иванович И." in cli("verify", *phone).output
    refused = cli("verify", "--phone", "79990000001", "--bank-id", "100000000004", code=1)
    assert "account_not_found" in refused.output
    answer = json.loads(cli("verify", *phone, "--json").output)
    assert answer["session"]["payments"][0]["status"] == "succeeded"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--card", "2200000000000004", "--bik", "044525974"],
            "not both --bik/--account and --card",
        ),
        (["--phone", "79161234567", "--purpose", "x"], "give --bank-id too"),
        (["--phone", "79161234567", "--bank-id", "100000000004"], "--purpose is required"),
        ([], "give --bik and --account, --token, --phone and --bank-id, --card or --card-token"),
    ],
)
def test_pay_names_a_destination_given_wrong(
    onboard: Onboard, cli_for: CliFor, args: list[str], message: str
) -> None:
    cli = cli_for(onboard(wallet=1_000))
    out = cli("pay", "--name", "Иван", "--amount", "1", *args, code=2).output
    assert message in out


def test_batch_pays_phones_and_cards(
    bank: Runtime, onboard: Onboard, cli_for: CliFor, tmp_path: Path
) -> None:
    partner = onboard(wallet=1_000_000)
    cli = cli_for(partner)
    file = tmp_path / "mixed.csv"
    file.write_text(
        "recipient,phone,bank_id,card,amount,purpose\n"
        "Петров Пётр,79161234567,100000000004,,10,Выплата по договору\n"
        "Ivanov Ivan,,,2200 0000 0000 0004,20,\n"
        "Sidorov Sidor,,,2200000000000020,1,\n",  # a magic card: blocked
        encoding="utf-8",
    )
    result = cli("batch", str(file), code=1)
    assert "3 rows" in result.output
    results = rows_of(tmp_path / "mixed.results.csv")
    assert [r["status"] for r in results] == ["succeeded", "succeeded", "failed"]
    assert results[2]["error_code"] == "card_blocked"
    assert results[1]["payee"] == "card 220000******0004"
    assert available(bank, wallet_code("acme")) == 1_000_000 - 3_000
