"""The BIK directory: the shipped CSV snapshot, the official ED807 file, and payout refusals."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from payout131.directory import bik
from payout131.directory.bik import (
    BankEntry,
    BikDirectory,
    load_snapshot,
    parse_csv,
    parse_directory,
    parse_ed807,
)
from payout131.protocol.validation import correspondent_key_ok

DATA = Path("/work/shared/data")
ED807_ZIP = DATA / "20201204ED01OSBR.zip"
SHARED_CSV = DATA / "bik-directory-2026-08-21.csv"

CSV_HEADER = (
    "bic,namep,pttype,participantstatus,account,regulationaccounttype,accountstatus,"
    "englname,dateout\n"
)


def ed807(entries: str, root: str = "ED807") -> bytes:
    """A bare ED807 document in Windows-1251 holding ``entries``."""
    return (
        '<?xml version="1.0" encoding="Windows-1251"?>'
        f'<{root} xmlns="urn:cbr-ru:ed:v2.0" EDNo="1">{entries}</{root}>'
    ).encode("cp1251")


def zipped(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def snapshot() -> BikDirectory:
    return BikDirectory(load_snapshot())


def official_zip() -> bytes:
    if not ED807_ZIP.exists():
        pytest.skip(f"{ED807_ZIP} (the real ED807 file) is not available")
    return ED807_ZIP.read_bytes()


@pytest.fixture(scope="module")
def official() -> BikDirectory:
    return BikDirectory(parse_ed807(official_zip()))


# ---- the shipped snapshot ---------------------------------------------------------------


def test_snapshot_has_every_entry(snapshot: BikDirectory) -> None:
    assert len(snapshot) == 1432
    assert len({bank.bik for bank in snapshot.banks()}) == 1432


def test_snapshot_is_the_shared_csv() -> None:
    if not SHARED_CSV.exists():
        pytest.skip("the shared data directory is not mounted")
    assert load_snapshot() == parse_csv(SHARED_CSV.read_bytes())


def test_snapshot_bank_131(snapshot: BikDirectory) -> None:
    bank = snapshot.get("049205131")
    assert bank == BankEntry(
        bik="049205131",
        name='АО "Банк 131"',
        english_name="Bank 131 Joint Stock Company",
        correspondent_account="30101810822029205131",
        participant_type="20",
        restricted=False,
        closed=False,
    )
    assert snapshot.payout_refusal("049205131") is None


def test_snapshot_t_bank(snapshot: BikDirectory) -> None:
    bank = snapshot.get("044525974")
    assert bank is not None
    assert bank.name == 'АО "ТБанк"'
    assert bank.correspondent_account == "30101810145250000974"
    assert snapshot.payout_refusal("044525974") is None


def test_snapshot_refuses_unknown_bik(snapshot: BikDirectory) -> None:
    assert snapshot.get("044525971") is None
    assert snapshot.payout_refusal("044525971") == (
        "BIK 044525971 is not in the Bank of Russia directory"
    )


def test_snapshot_refuses_bank_in_liquidation(snapshot: BikDirectory) -> None:
    bank = snapshot.get("044525378")
    assert bank is not None
    assert bank.participant_type == "90"
    reason = snapshot.payout_refusal("044525378")
    assert reason is not None
    assert "liquidation" in reason
    assert "ОПМ-БАНК" in reason


def test_snapshot_marks_entry_with_dateout_closed(snapshot: BikDirectory) -> None:
    bank = snapshot.get("044525246")
    assert bank is not None
    assert bank.closed
    assert sum(bank.closed for bank in snapshot.banks()) == 1


def test_snapshot_correspondent_accounts_pass_their_key(snapshot: BikDirectory) -> None:
    accounts = [(b.bik, b.correspondent_account) for b in snapshot.banks()]
    keyed = [(code, account) for code, account in accounts if account]
    assert len(keyed) == 965
    assert all(correspondent_key_ok(code, account) for code, account in keyed)


def test_snapshot_treasury_entry_has_no_correspondent_account(snapshot: BikDirectory) -> None:
    bank = snapshot.get("040397100")
    assert bank is not None
    assert bank.correspondent_account is None
    assert bank.english_name is None


# ---- CSV parsing ------------------------------------------------------------------------


def test_csv_collapses_rows_per_bik_and_takes_the_crsa_account() -> None:
    data = CSV_HEADER + (
        "044525999,Банк,20,PSAC,40116810900000000001,TRSA,ACAC,Bank,\n"
        "044525999,Банк,20,PSAC,30101810645250000999,CRSA,ACAC,Bank,\n"
        "044525998,Другой,20,PSAC,,,,,\n"
    )
    banks = parse_csv(data.encode("utf-8"))
    assert [b.bik for b in banks] == ["044525999", "044525998"]
    assert banks[0].correspondent_account == "30101810645250000999"
    assert banks[1].correspondent_account is None


def test_csv_prefers_the_open_correspondent_account() -> None:
    data = CSV_HEADER + (
        "044525999,Банк,20,PSAC,30101810345250000999,CRSA,ACDL,,2020-01-01\n"
        "044525999,Банк,20,PSAC,30101810645250000999,CRSA,ACAC,,\n"
    )
    (bank,) = parse_csv(data.encode("utf-8"))
    assert bank.correspondent_account == "30101810645250000999"
    assert not bank.closed


def test_csv_in_windows_1251_with_closed_entry() -> None:
    data = CSV_HEADER + "044525999,Закрытый банк,20,PSAC,,,,,2026-08-21\n"
    directory = BikDirectory(parse_csv(data.encode("cp1251")))
    bank = directory.get("044525999")
    assert bank is not None
    assert bank.name == "Закрытый банк"
    assert bank.closed
    reason = directory.payout_refusal("044525999")
    assert reason is not None
    assert "excluded" in reason


def test_csv_without_the_columns_is_refused() -> None:
    with pytest.raises(ValueError, match="missing columns"):
        parse_csv(b"name,value\nx,1\n")


# ---- ED807 ------------------------------------------------------------------------------


def test_ed807_zip_parses_every_entry(official: BikDirectory) -> None:
    assert len(official) == 2087


def test_ed807_names_are_decoded_from_windows_1251(official: BikDirectory) -> None:
    bank_131 = official.get("049205131")
    assert bank_131 is not None
    assert bank_131.name == 'ООО "Банк 131"'
    assert bank_131.correspondent_account == "30101810822029205131"
    assert bank_131.participant_type == "20"
    sber = official.get("044525225")
    assert sber is not None
    assert sber.name == "ПАО СБЕРБАНК"
    tinkoff = official.get("044525974")
    assert tinkoff is not None
    assert tinkoff.name == 'АО "ТИНЬКОФФ БАНК"'
    assert tinkoff.english_name == "Tinkoff Bank"
    assert official.payout_refusal("044525974") is None


def test_ed807_correspondent_accounts_pass_their_key(official: BikDirectory) -> None:
    keyed = [(b.bik, b.correspondent_account) for b in official.banks() if b.correspondent_account]
    assert len(keyed) > 1000
    assert all(correspondent_key_ok(code, account) for code, account in keyed)


def test_ed807_restrictions(official: BikDirectory) -> None:
    in_liquidation = official.get("044525597")
    assert in_liquidation is not None
    assert in_liquidation.participant_type == "90"
    assert in_liquidation.restricted
    restricted = official.get("044525487")  # a bank (type 20) with restrictions listed
    assert restricted is not None
    assert restricted.participant_type == "20"
    assert restricted.restricted
    reason = official.payout_refusal("044525487")
    assert reason is not None
    assert "restricted" in reason


def test_ed807_bare_xml_matches_the_zip() -> None:
    data = official_zip()
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        xml = archive.read("20201204_ED807_full.xml")
    assert parse_ed807(xml) == parse_ed807(data)


def test_ed807_small_document_and_closed_account() -> None:
    entry = (
        '<BICDirectoryEntry BIC="044525999"><ParticipantInfo NameP="Банк «Ёлка»" PtType="20"'
        ' ParticipantStatus="PSAC"/><Accounts Account="30101810645250000999"'
        ' RegulationAccountType="CRSA" AccountStatus="ACDL"/></BICDirectoryEntry>'
    )
    (bank,) = parse_ed807(zipped({"20260821_ED807_full.xml": ed807(entry)}))
    assert bank.name == "Банк «Ёлка»"
    assert bank.english_name is None
    assert bank.correspondent_account == "30101810645250000999"
    assert bank.closed
    assert not bank.restricted


def test_parse_directory_sniffs_each_format() -> None:
    entry = '<BICDirectoryEntry BIC="044525999"><ParticipantInfo NameP="Б" PtType="20"/>'
    xml = ed807(entry + "</BICDirectoryEntry>")
    assert [b.bik for b in parse_directory(xml)] == ["044525999"]
    assert [b.bik for b in parse_directory(zipped({"x_ED807_full.xml": xml}))] == ["044525999"]
    csv_data = (CSV_HEADER + "044525998,Банк,20,PSAC,,,,,\n").encode()
    assert [b.bik for b in parse_directory(csv_data)] == ["044525998"]


# ---- hostile or wrong input -------------------------------------------------------------

BILLION_LAUGHS = (
    b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    b'<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>'
    b'<ED807 xmlns="urn:cbr-ru:ed:v2.0">&lol2;</ED807>'
)


def test_ed807_refuses_entity_declarations() -> None:
    with pytest.raises(ValueError, match="DOCTYPE or ENTITY"):
        parse_ed807(BILLION_LAUGHS)
    with pytest.raises(ValueError, match="DOCTYPE or ENTITY"):
        parse_ed807(zipped({"a_ED807.xml": BILLION_LAUGHS}))


def test_ed807_refuses_utf16_that_could_hide_declarations() -> None:
    xml = '<?xml version="1.0" encoding="UTF-16"?><ED807 xmlns="urn:cbr-ru:ed:v2.0"/>'
    with pytest.raises(ValueError, match="encoding"):
        parse_ed807(xml.encode("utf-16-le"))
    with pytest.raises(ValueError, match="neither a ZIP archive nor XML"):
        parse_ed807(xml.encode("utf-16"))  # with a byte-order mark


def test_ed807_refuses_a_member_larger_than_the_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bik, "MAX_XML_BYTES", 1000)
    padding = "<!-- " + "x" * 5000 + " -->"
    bomb = zipped({"a_ED807.xml": ed807(padding)})
    assert len(bomb) < 1000
    with pytest.raises(ValueError, match="larger than 1000 bytes"):
        parse_ed807(bomb)


@pytest.mark.parametrize(
    ("data", "rule"),
    [
        (b"hello, world", "neither a ZIP archive nor XML"),
        (b"", "neither a ZIP archive nor XML"),
        (b"PK\x03\x04 truncated", "not a readable ZIP"),
        (zipped({"readme.txt": b"hi"}), "found 0"),
        (ed807("", root="ED999"), "root element"),
        (b"<ED807 xmlns='urn:cbr-ru:ed:v2.0'><BICDirectoryEntry", "malformed"),
        (ed807('<BICDirectoryEntry BIC="1"/>'), "no ParticipantInfo"),
    ],
)
def test_ed807_refuses_other_files(data: bytes, rule: str) -> None:
    with pytest.raises(ValueError, match=rule):
        parse_ed807(data)


def test_parse_directory_refuses_binary_garbage() -> None:
    with pytest.raises(ValueError, match="BIK directory CSV"):
        parse_directory(b"\x98\x00\xff binary")


# ---- the directory itself ---------------------------------------------------------------


def test_directory_refusal_order_and_lookup() -> None:
    def bank(
        code: str, pt: str = "20", restricted: bool = False, closed: bool = False
    ) -> BankEntry:
        return BankEntry(code, f"Bank {code}", None, None, pt, restricted, closed)

    banks = [
        bank("000000001"),
        bank("000000002", "90", restricted=True, closed=True),
        bank("000000003", closed=True),
        bank("000000004", restricted=True),
    ]
    directory = BikDirectory(banks)
    assert len(directory) == 4
    assert list(directory.banks()) == banks
    assert directory.get("000000003") == banks[2]
    assert directory.payout_refusal("000000001") is None
    assert "liquidation" in (directory.payout_refusal("000000002") or "")
    assert "excluded" in (directory.payout_refusal("000000003") or "")
    assert "restricted" in (directory.payout_refusal("000000004") or "")
