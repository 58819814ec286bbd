"""The Bank of Russia BIK directory: which banks exist and which may receive payouts.

Two input formats are read: the official ED807 file the Bank of Russia publishes every
business day (a ZIP holding ``*ED807*.xml``, or that XML bare; Windows-1251, namespace
``urn:cbr-ru:ed:v2.0``) and a flat CSV with one row per account (the shipped snapshot).
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from importlib.resources import files
from xml.etree import ElementTree

__all__ = [
    "BankEntry",
    "BikDirectory",
    "load_snapshot",
    "parse_csv",
    "parse_directory",
    "parse_ed807",
]

LIQUIDATION = "90"
"""Participant type of a bank in liquidation (the entry names its receiver or liquidator)."""

MAX_XML_BYTES = 200 * 1024 * 1024
"""The largest uncompressed ED807 accepted; today's full file is about 10 MB."""

_NS = "{urn:cbr-ru:ed:v2.0}"
_ZIP_MAGIC = b"PK\x03\x04"
_DECLARATIONS = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)
_CSV_COLUMNS = frozenset({"bic", "namep", "pttype", "account", "regulationaccounttype"})


@dataclass(frozen=True, slots=True)
class BankEntry:
    """One directory entry, reduced to what payouts need."""

    bik: str
    name: str
    english_name: str | None
    correspondent_account: str | None
    participant_type: str
    restricted: bool
    closed: bool


class BikDirectory:
    """Banks by BIK, and the rule deciding which of them can receive a payout."""

    def __init__(self, banks: Iterable[BankEntry]) -> None:
        self._banks = {bank.bik: bank for bank in banks}

    def __len__(self) -> int:
        return len(self._banks)

    def get(self, bik: str) -> BankEntry | None:
        return self._banks.get(bik)

    def banks(self) -> Iterator[BankEntry]:
        return iter(self._banks.values())

    def payout_refusal(self, bik: str) -> str | None:
        """Why ``bik`` cannot receive payouts, or None when it can."""
        bank = self._banks.get(bik)
        if bank is None:
            return f"BIK {bik} is not in the Bank of Russia directory"
        if bank.participant_type == LIQUIDATION:
            return f"BIK {bik} ({bank.name}) belongs to a bank in liquidation (participant type 90)"
        if bank.restricted:
            return f"BIK {bik} ({bank.name}) is restricted in the Bank of Russia directory"
        if bank.closed:
            return f"BIK {bik} ({bank.name}) has been excluded from the Bank of Russia directory"
        return None


@dataclass(frozen=True, slots=True)
class _Account:
    number: str
    kind: str
    closed: bool
    restricted: bool


def _correspondent(accounts: Iterable[_Account]) -> _Account | None:
    """The correspondent account (``CRSA``), an open one when there are several."""
    candidates = sorted((a for a in accounts if a.kind == "CRSA"), key=lambda a: a.closed)
    return candidates[0] if candidates else None


def _account_closed(status: str | None, date_out: str | None) -> bool:
    return status == "ACDL" or bool(date_out)


# ---- CSV: one row per account ------------------------------------------------------------


def _decode_text(data: bytes) -> str:
    for encoding in ("utf-8-sig", "cp1251"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise ValueError("not a BIK directory CSV: the file is not UTF-8 or Windows-1251 text")


def _csv_bank(bik: str, rows: list[Mapping[str, str]]) -> BankEntry:
    first = rows[0]
    accounts = [
        _Account(
            number=row["account"],
            kind=row["regulationaccounttype"],
            closed=_account_closed(row.get("accountstatus"), row.get("dateout")),
            restricted=bool(row.get("accrstr")),
        )
        for row in rows
        if row["account"]
    ]
    corr = _correspondent(accounts)
    return BankEntry(
        bik=bik,
        name=first["namep"],
        english_name=first.get("englname") or None,
        correspondent_account=corr.number if corr else None,
        participant_type=first["pttype"],
        restricted=any(row.get("rstr") for row in rows) or bool(corr and corr.restricted),
        closed=all(row.get("dateout") for row in rows)
        or any(row.get("participantstatus") == "PSDL" for row in rows)
        or bool(corr and corr.closed),
    )


def parse_csv(data: bytes) -> list[BankEntry]:
    """Banks from the flat CSV (UTF-8 or Windows-1251), one entry per BIK.

    Restrictions are read from optional ``rstr`` / ``accrstr`` columns; the shipped
    snapshot has none, so only ED807 files can mark a bank restricted.
    """
    reader = csv.DictReader(io.StringIO(_decode_text(data), newline=""))
    missing = _CSV_COLUMNS - set(reader.fieldnames or ())
    if missing:
        raise ValueError(f"not a BIK directory CSV: missing columns {sorted(missing)}")
    by_bik: dict[str, list[Mapping[str, str]]] = {}
    for row in reader:
        by_bik.setdefault(row["bic"], []).append(row)
    return [_csv_bank(bik, rows) for bik, rows in by_bik.items()]


# ---- ED807: the official XML, possibly zipped ---------------------------------------------


def _unzip_ed807(data: bytes) -> bytes:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        raise ValueError(f"not a readable ZIP file: {exc}") from None
    with archive:
        members = [
            info
            for info in archive.infolist()
            if "ED807" in info.filename.upper() and info.filename.lower().endswith(".xml")
        ]
        if len(members) != 1:
            raise ValueError(f"expected one *ED807*.xml in the ZIP, found {len(members)}")
        with archive.open(members[0]) as member:
            xml = member.read(MAX_XML_BYTES + 1)
    if len(xml) > MAX_XML_BYTES:
        raise ValueError(f"{members[0].filename} is larger than {MAX_XML_BYTES} bytes")
    return xml


def _check_xml_safe(xml: bytes) -> None:
    """Refuse what could expand or hide declarations: DTDs, entities, multi-byte encodings."""
    if b"\x00" in xml[:64]:
        raise ValueError("ED807 XML must use a single-byte or UTF-8 encoding")
    if _DECLARATIONS.search(xml):
        raise ValueError("ED807 XML must not contain DOCTYPE or ENTITY declarations")


def _xml_bank(entry: ElementTree.Element) -> BankEntry:
    bik = entry.get("BIC", "")
    info = entry.find(f"{_NS}ParticipantInfo")
    if info is None:
        raise ValueError(f"ED807 entry {bik!r} has no ParticipantInfo")
    accounts = [
        _Account(
            number=acc.get("Account", ""),
            kind=acc.get("RegulationAccountType", ""),
            closed=_account_closed(acc.get("AccountStatus"), acc.get("DateOut")),
            restricted=acc.find(f"{_NS}AccRstrList") is not None,
        )
        for acc in entry.iter(f"{_NS}Accounts")
    ]
    corr = _correspondent(accounts)
    return BankEntry(
        bik=bik,
        name=info.get("NameP", ""),
        english_name=info.get("EnglName") or None,
        correspondent_account=corr.number if corr else None,
        participant_type=info.get("PtType", ""),
        restricted=info.find(f"{_NS}RstrList") is not None or bool(corr and corr.restricted),
        closed=bool(info.get("DateOut"))
        or info.get("ParticipantStatus") == "PSDL"
        or bool(corr and corr.closed),
    )


def _parse_ed807_xml(xml: bytes) -> list[BankEntry]:
    _check_xml_safe(xml)
    banks: list[BankEntry] = []
    try:
        # S314: _check_xml_safe has refused DTDs and entities, the attack vectors of stdlib XML.
        events = ElementTree.iterparse(io.BytesIO(xml), events=("start", "end"))  # noqa: S314
        _, root = next(events)
        if root.tag != f"{_NS}ED807":
            raise ValueError(f"not an ED807 document: the root element is {root.tag}")
        for event, element in events:
            if event == "end" and element.tag == f"{_NS}BICDirectoryEntry":
                banks.append(_xml_bank(element))
                element.clear()
    except ElementTree.ParseError as exc:
        raise ValueError(f"ED807 XML is malformed: {exc}") from None
    return banks


def parse_ed807(data: bytes) -> list[BankEntry]:
    """Banks from an ED807 file: the ZIP the Bank of Russia publishes, or the bare XML."""
    if data.startswith(_ZIP_MAGIC):
        return _parse_ed807_xml(_unzip_ed807(data))
    if data.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<"):
        return _parse_ed807_xml(data)
    raise ValueError("not an ED807 file: neither a ZIP archive nor XML")


def parse_directory(data: bytes) -> list[BankEntry]:
    """Banks from any supported file: an ED807 ZIP or XML, or the flat CSV."""
    if data.startswith(_ZIP_MAGIC) or data.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<"):
        return parse_ed807(data)
    return parse_csv(data)


def load_snapshot() -> list[BankEntry]:
    """The directory snapshot shipped with the package (``data/bik-directory.csv``)."""
    return parse_csv((files("payout131.directory") / "data" / "bik-directory.csv").read_bytes())
