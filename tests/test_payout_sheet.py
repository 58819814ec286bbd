"""The batch's offline parts: reading a payout sheet, its keys, and the journal.

No database is involved (the sheet is checked before the bank is asked anything); the
end-to-end behaviour is in test_partner_cli.py and test_partner_batch.py on both engines.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from partner import INDIVIDUAL, ORGANISATION
from payout131.cli.batch_journal import Journal, JournalError
from payout131.cli.payout_sheet import SheetError, format_rubles, parse_rubles, read_sheet
from payout131.directory.bik import BikDirectory, load_snapshot

DIRECTORY = BikDirectory(load_snapshot())
HEADER = "recipient,bik,account,amount,purpose,inn,kpp\n"
PURPOSE = "Выплата. НДС не облагается"
ROW = f"Иванов Иван,{INDIVIDUAL['bik']},{INDIVIDUAL['account']},1500.25,{PURPOSE},,\n"


@pytest.mark.parametrize(
    ("text", "kopecks"),
    [("1500.25", 150_025), ("1500", 150_000), ("1500.2", 150_020), ("0.01", 1), ("7,50", 750)],
)
def test_rubles_become_kopecks_exactly(text: str, kopecks: int) -> None:
    assert parse_rubles(text) == kopecks
    assert parse_rubles(format_rubles(kopecks)) == kopecks


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("1500.255", "more than two decimals"),
        ("1500.250", "more than two decimals"),
        ("0", "more than zero"),
        ("0.00", "more than zero"),
        ("-5", "not an amount"),
        ("1e3", "not an amount"),
        ("1 500", "not an amount"),
        ("", "not an amount"),
        ("NaN", "not an amount"),
    ],
)
def test_bad_amounts_are_refused_naming_the_rule(text: str, rule: str) -> None:
    with pytest.raises(ValueError, match=rule):
        parse_rubles(text)


def test_format_rubles() -> None:
    assert format_rubles(150_025) == "1500.25"
    assert format_rubles(5) == "0.05"
    assert format_rubles(-5) == "-0.05"


def write(tmp_path: Path, text: str, name: str = "p.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_a_good_sheet_reads_into_rows_with_deterministic_keys(tmp_path: Path) -> None:
    org = ORGANISATION
    text = (
        HEADER
        + ROW
        + ROW
        + (
            f"ООО Вектор,{org['bik']},{org['account']},10,Оплата. НДС не облагается,"
            f"{org['inn']},{org['kpp']}\n"
        )
    )
    sheet = read_sheet(write(tmp_path, text), DIRECTORY)
    assert [row.number for row in sheet.rows] == [2, 3, 4]
    assert sheet.rows[0].amount == 150_025
    assert sheet.total == 150_025 * 2 + 1_000
    assert sheet.rows[2].inn == org["inn"]
    keys = [row.key for row in sheet.rows]
    assert len(set(keys)) == 3  # identical rows are two payouts, with two keys
    assert all(key.startswith("batch-") and len(key) <= 255 for key in keys)
    again = read_sheet(write(tmp_path, text, "copy.csv"), DIRECTORY)
    assert [row.key for row in again.rows] == keys  # the same bytes, the same keys
    changed = read_sheet(write(tmp_path, text + ROW, "more.csv"), DIRECTORY)
    assert not set(keys) & {row.key for row in changed.rows}  # another file, other keys


def test_semicolons_a_bom_blank_lines_and_any_column_order(tmp_path: Path) -> None:
    text = (
        "\ufeffAmount;Purpose;Recipient;Account;BIK\n\n"
        f"10,50;Выплата;Иванов;{INDIVIDUAL['account']};{INDIVIDUAL['bik']}\n\n"
    )
    [row] = read_sheet(write(tmp_path, text), DIRECTORY).rows
    assert (row.amount, row.recipient, row.number) == (1_050, "Иванов", 3)


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    text = (
        HEADER
        + ROW
        + f"Иванов,{INDIVIDUAL['bik']},{INDIVIDUAL['account']},1.5,Зачем?,,\n"
        + f"Иванов,999999999,{INDIVIDUAL['account']},1,Выплата,,\n"
        + f",{INDIVIDUAL['bik']},{INDIVIDUAL['account']},1,Выплата,,\n"
        + "Иванов,1,2\n"
        + f"ООО,{ORGANISATION['bik']},{ORGANISATION['account']},1,Выплата,{ORGANISATION['inn']},\n"
    )
    with pytest.raises(SheetError) as caught:
        read_sheet(write(tmp_path, text), DIRECTORY)
    problems = dict(caught.value.problems)
    assert sorted(problems) == [3, 4, 5, 6, 7]
    assert "'?'" in problems[3]
    assert problems[4].startswith("bik:")
    assert problems[5].startswith("recipient:")
    assert "fields" in problems[6]
    assert problems[7].startswith("kpp: required")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("recipient,amount,purpose\n", "a destination (bik and account, token, phone and"),
        ("recipient,bik,account,amount,purpose,colour\n", "unknown column(s): colour"),
        ("recipient,bik,account,amount\n", "missing column(s): purpose"),
        (HEADER, "no rows"),
        ("recipient,token,amount,purpose\nИванов,abc,1,x\n", "64 hex digits"),
        (
            f"recipient,token,bik,account,amount,purpose\nИ,{'a' * 64},{INDIVIDUAL['bik']},,1,x\n",
            "destination: one of bik and account, token, phone and bank_id, card or card_token"
            " (got bik, token)",
        ),
        ("recipient,card,amount\nИ,2200000000000005,1\n", "card: fails the Luhn check digit"),
        (
            "recipient,phone,bank_id,amount\nИ,79161234567,100000000004,1\n",
            "missing column(s): purpose",
        ),
        ("recipient,phone,amount,purpose\nИ,79161234567,1,x\n", "a destination"),
        (
            "recipient,phone,bank_id,amount,purpose\nИ,89161234567,100000000004,1,x\n",
            "phone: 11 digits starting with 7",
        ),
        ("recipient,card_token,amount\nИ,abc,1\n", "card_token: must be 64 hex digits"),
    ],
)
def test_unusable_sheets(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(SheetError, match=re.escape(message)):
        read_sheet(write(tmp_path, text), DIRECTORY)


def test_a_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_bytes(HEADER.encode() + "Иванов".encode("cp1251"))
    with pytest.raises(SheetError, match="not UTF-8"):
        read_sheet(path, DIRECTORY)


def test_the_journal_replays_and_survives_a_line_cut_short(tmp_path: Path) -> None:
    path = tmp_path / "r.csv.journal"
    journal = Journal.open(path, "f" * 64, "acme")
    journal.record(2, session="ps_1")
    journal.record(2, started=True)
    journal.record(3, session="ps_2")
    journal.record(3, rejected={"code": "invalid_request", "description": "x"})
    journal.record(2, outcome="succeeded", error=None)
    journal.close()
    with path.open("a") as file:
        file.write('{"row": 4, "sess')  # a kill in the middle of a write

    reopened = Journal.open(path, "f" * 64, "acme")
    assert reopened.state(2).final
    assert reopened.state(2).session == "ps_1"
    assert reopened.state(3).rejected == {"code": "invalid_request", "description": "x"}
    assert not reopened.state(4).session
    reopened.record(3, started=True)
    reopened.close()
    assert Journal.open(path, "f" * 64, "acme").state(3).rejected is None
    assert path.read_text().endswith("}\n")


def test_the_journal_belongs_to_one_file_and_one_project(tmp_path: Path) -> None:
    path = tmp_path / "r.csv.journal"
    Journal.open(path, "a" * 64, "acme").close()
    with pytest.raises(JournalError, match="another version of this file"):
        Journal.open(path, "b" * 64, "acme")
    with pytest.raises(JournalError, match="project 'acme'"):
        Journal.open(path, "a" * 64, "other")
    path.write_text('{"something": "else"}\n')
    with pytest.raises(JournalError, match="not a payout131 batch journal"):
        Journal.open(path, "a" * 64, "acme")


def test_a_sheet_pays_phones_and_cards_too(tmp_path: Path) -> None:
    token = "b" * 64
    text = (
        "recipient,bik,account,phone,bank_id,card,card_token,amount,purpose\n"
        f"Иванов Иван,{INDIVIDUAL['bik']},{INDIVIDUAL['account']},,,,,1,Выплата\n"
        "Петров Пётр,,,79161234567,100000000004,,,2,Выплата по договору\n"
        "Ivanov Ivan,,,,,2200 0000 0000 0004,,3,\n"
        f"Sidorov Sidor,,,,,,{token},4,\n"
    )
    sheet = read_sheet(write(tmp_path, text), DIRECTORY)
    account, phone, card, card_token = sheet.rows
    assert (phone.phone, phone.bank_id, phone.purpose) == (
        "79161234567",
        "100000000004",
        "Выплата по договору",
    )
    assert card.card == "2200000000000004"
    assert card.payee == "card 220000******0004"  # never the number whole
    assert "2200000000000004" not in repr(card)
    assert card_token.card_token == token
    assert len({row.key for row in sheet.rows}) == 4
    assert account.payee == INDIVIDUAL["account"]
