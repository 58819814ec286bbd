"""A payout sheet: the CSV that ``payout131 partner batch`` pays, read and checked offline.

Columns (header names, any order, case-insensitive)::

    recipient   the recipient's full name
    bik         the recipient's bank, 9 digits            ┐
    account     the recipient's account, 20 digits        ┘ where the money goes: one of
    token       an account token from tokenize or the widget    these five in each row
    phone       a phone, 11 digits from 7                 ┐ Faster Payments
    bank_id     the phone's bank, a member id (12 digits) ┘
    card        a card number, 14 to 19 digits
    card_token  a card token from tokenize or the widget
    amount      rubles with kopecks: 1500.25 (or 1500,25); at most two decimals
    purpose     the payment purpose (at most 210 characters, no ? or !; 140 to a phone);
                not needed by a card
    inn, kpp    optional; required by the account's kind (organisation: both; sole trader: inn)

Every row is checked with the same rules the server applies (``protocol.validation`` and the
packaged BIK directory), and all problems are reported together, so a sheet either goes as a
whole or not at all. Amounts are parsed with ``Decimal``, never a float.

Each row has an idempotency key derived from the file: SHA-256 of the file's bytes, the row
number and the row's content. The same file gives the same keys on every run, which is what
lets a rerun after an interruption pay no row twice.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation
from pathlib import Path

from payout131.directory.bik import BikDirectory
from payout131.errors import InvalidRequest
from payout131.protocol import validation
from payout131.protocol.cards import CardView, check_card_number
from payout131.protocol.payout_request import BANK_ID, FPS_DESCRIPTION_MAX, PHONE, TOKEN

__all__ = [
    "COLUMNS",
    "Row",
    "Sheet",
    "SheetError",
    "check_party",
    "format_rubles",
    "parse_rubles",
    "read_sheet",
]

COLUMNS = (
    "recipient",
    "bik",
    "account",
    "token",
    "phone",
    "bank_id",
    "card",
    "card_token",
    "amount",
    "purpose",
    "inn",
    "kpp",
)
_REQUIRED = ("recipient", "amount")
_CARDS = {"card", "card_token"}  # the destinations that need no purpose
_DESTINATIONS = "bik and account, token, phone and bank_id, card or card_token"
_RUBLES = re.compile(r"[0-9]+(?:\.[0-9]+)?")
MAX_ROWS = 100_000


class SheetError(ValueError):
    """The sheet cannot be paid; ``problems`` lists (line, message), line 0 for the file."""

    def __init__(self, problems: list[tuple[int, str]]) -> None:
        self.problems = problems
        shown = "; ".join(f"line {line}: {text}" if line else text for line, text in problems[:3])
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        super().__init__(shown + more)


@dataclass(frozen=True, slots=True)
class Row:
    """One payout of the sheet; ``number`` is its line in the file (the header is line 1)."""

    number: int
    recipient: str
    amount: int  # kopecks
    purpose: str
    bik: str | None = None
    account: str | None = None
    token: str | None = None
    inn: str | None = None
    kpp: str | None = None
    key: str = ""  # the idempotency key of the payout
    phone: str | None = None  # Faster Payments, at the member ``bank_id``
    bank_id: str | None = None
    card: str | None = field(default=None, repr=False)
    card_token: str | None = None

    @property
    def payee(self) -> str:
        """Where the money goes, for tables: the account, the phone, the card masked, or the
        token's first characters (a card number is never shown whole)."""
        if self.account:
            return self.account
        if self.phone:
            return f"phone {self.phone} at {self.bank_id}"
        if self.card:
            return f"card {CardView.of(self.card).masked}"
        if self.card_token:
            return f"card token {self.card_token[:12]}…"
        return f"token {(self.token or '')[:12]}…"


@dataclass(frozen=True, slots=True)
class Sheet:
    path: Path
    sha256: str  # of the file's bytes: the batch's identity
    rows: tuple[Row, ...]

    @property
    def total(self) -> int:
        return sum(row.amount for row in self.rows)


def parse_rubles(text: str) -> int:
    """Kopecks in ``text``, an amount of rubles like ``1500``, ``1500.2`` or ``1500,25``.

    Raises ``ValueError`` naming the rule: digits with an optional decimal point (or a
    comma), at most two decimals, more than zero.
    """
    cleaned = text.strip()
    if "," in cleaned and "." not in cleaned:
        cleaned = cleaned.replace(",", ".", 1)
    if not _RUBLES.fullmatch(cleaned):
        raise ValueError(f"{text.strip()!r} is not an amount of rubles like 1500.25")
    try:
        rubles = Decimal(cleaned)
    except InvalidOperation:  # the pattern above makes this unreachable; kept for safety
        raise ValueError(f"{text.strip()!r} is not an amount of rubles like 1500.25") from None
    exponent = rubles.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -2:
        raise ValueError(f"{text.strip()!r} has more than two decimals (kopecks)")
    kopecks = int(rubles * 100)
    if kopecks <= 0:
        raise ValueError(f"{text.strip()!r}: the amount must be more than zero")
    return kopecks


def format_rubles(kopecks: int) -> str:
    """``150025`` → ``1500.25``."""
    sign = "-" if kopecks < 0 else ""
    rubles, rest = divmod(abs(kopecks), 100)
    return f"{sign}{rubles}.{rest:02d}"


def read_sheet(path: Path, directory: BikDirectory) -> Sheet:
    """The sheet at ``path`` with every row checked; raises ``SheetError`` listing problems."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SheetError([(0, f"cannot read {path}: {exc.strerror}")]) from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SheetError([(0, f"{path} is not UTF-8 text (byte {exc.start})")]) from None
    digest = hashlib.sha256(data).hexdigest()
    records = _records(text)
    problems: list[tuple[int, str]] = []
    rows: list[Row] = []
    for number, record in records:
        try:
            row = _row(number, record, directory)
        except ValueError as exc:
            problems.append((number, str(exc)))
            continue
        rows.append(_with_key(row, digest))
    if not rows and not problems:
        problems.append((0, f"{path} has no rows under its header"))
    if problems:
        raise SheetError(problems)
    return Sheet(path=path, sha256=digest, rows=tuple(rows))


def _records(text: str) -> list[tuple[int, dict[str, str]]]:
    """(line number, {column: value}) for each non-empty data row; checks the header."""
    first = text.split("\n", 1)[0]
    delimiter = ";" if first.count(";") > first.count(",") else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    header = [name.strip().lower() for name in next(reader, [])]
    unknown = [name for name in header if name not in COLUMNS]
    missing = [name for name in _REQUIRED if name not in header]
    if not ({"token", "card", "card_token"} & set(header)) and not (
        {"bik", "account"} <= set(header) or {"phone", "bank_id"} <= set(header)
    ):
        missing.append(f"a destination ({_DESTINATIONS})")
    if "purpose" not in header and not set(header) & _CARDS:
        missing.append("purpose")
    if unknown or missing or len(set(header)) != len(header):
        raise SheetError([(1, _header_problem(header, unknown, missing))])
    records = []
    for values in reader:
        number = reader.line_num
        if not any(value.strip() for value in values):
            continue
        if len(values) != len(header):
            records.append((number, {"": f"has {len(values)} fields, the header {len(header)}"}))
            continue
        records.append((number, dict(zip(header, (v.strip() for v in values), strict=True))))
        if len(records) > MAX_ROWS:
            raise SheetError([(number, f"more than {MAX_ROWS} rows: split the sheet")])
    return records


def _header_problem(header: list[str], unknown: list[str], missing: list[str]) -> str:
    if not header:
        return "the file is empty: the first line must name the columns"
    parts = []
    if missing:
        parts.append(f"missing column(s): {', '.join(missing)}")
    if unknown:
        parts.append(f"unknown column(s): {', '.join(unknown)}")
    if len(set(header)) != len(header):
        parts.append("a column is named twice")
    return f"header: {'; '.join(parts)} (columns: {', '.join(COLUMNS)})"


def _row(number: int, record: Mapping[str, str], directory: BikDirectory) -> Row:
    """One row checked as the server would check it; ``ValueError`` names the column."""
    if "" in record:
        raise ValueError(record[""])
    try:
        amount = parse_rubles(record["amount"])
    except ValueError as exc:
        raise ValueError(f"amount: {exc}") from None
    try:
        recipient = validation.check_full_name("recipient", record["recipient"])
        row = _payee(number, recipient, amount, record, directory)
        inn = record.get("inn") or None
        kpp = record.get("kpp") or None
        if row.account is not None:
            check_party(row.account, inn, kpp)
        else:  # the account's kind is known once the token is looked up; formats only here
            inn = None if inn is None else validation.check_inn("inn", inn)
            kpp = None if kpp is None else validation.check_kpp("kpp", kpp)
    except InvalidRequest as exc:
        raise ValueError(exc.description) from None
    return replace(row, inn=inn, kpp=kpp)


def _payee(
    number: int, recipient: str, amount: int, record: Mapping[str, str], directory: BikDirectory
) -> Row:
    """The row's destination, from the one kind of destination column it fills."""
    given = [
        name
        for name in ("bik", "account", "token", "phone", "bank_id", "card", "card_token")
        if record.get(name)
    ]
    kinds = {_KIND[name] for name in given}
    if len(kinds) != 1:
        found = f"got {', '.join(given)}" if given else "got none"
        raise InvalidRequest(f"destination: one of {_DESTINATIONS} ({found})")
    (kind,) = kinds
    text = record.get("purpose") or ""
    if kind == "card":
        if record.get("card"):
            return Row(
                number, recipient, amount, text, card=check_card_number("card", record["card"])
            )
        token = record["card_token"]
        if not TOKEN.fullmatch(token):
            raise InvalidRequest("card_token: must be 64 hex digits, as tokenize returns it")
        return Row(number, recipient, amount, text, card_token=token.lower())
    if kind == "phone":
        purpose = validation.check_purpose("purpose", text, max_length=FPS_DESCRIPTION_MAX)
        phone, bank_id = record.get("phone") or "", record.get("bank_id") or ""
        if not PHONE.fullmatch(phone):
            raise InvalidRequest("phone: 11 digits starting with 7 (e.g. 79161234567)")
        if not BANK_ID.fullmatch(bank_id):
            raise InvalidRequest("bank_id: a Faster Payments member id, 12 digits")
        return Row(number, recipient, amount, purpose, phone=phone, bank_id=bank_id)
    purpose = validation.check_purpose("purpose", text)
    if kind == "token":
        token = record["token"]
        if not TOKEN.fullmatch(token):
            raise InvalidRequest("token: must be 64 hex digits, as tokenize returns it")
        return Row(number, recipient, amount, purpose, token=token.lower())
    bik = validation.check_bik("bik", record.get("bik"))
    refusal = directory.payout_refusal(bik)
    if refusal:
        raise InvalidRequest(f"bik: {refusal}")
    account = validation.check_recipient_account("account", bik, record.get("account"))
    return Row(number, recipient, amount, purpose, bik=bik, account=account)


_KIND = {
    "bik": "account",
    "account": "account",
    "token": "token",
    "phone": "phone",
    "bank_id": "phone",
    "card": "card",
    "card_token": "card",
}


def check_party(account: str, inn: str | None, kpp: str | None, required: bool = True) -> None:
    """INN and KPP as the account's kind requires (see ``validation.party_requirements``);
    without ``required`` (a token's account, as the server decides in ``payout_request``)
    only checked when given.

    ``account`` may be masked (``40702***0025``): only its first five digits matter.
    """
    inn_length, kpp_required = validation.party_requirements(account)
    if inn is None and inn_length is not None and required:
        raise InvalidRequest(f"inn: required for account {account[:5]}… ({inn_length} digits)")
    if kpp is None and kpp_required and required:
        raise InvalidRequest(f"kpp: required for an organisation's account {account[:5]}…")
    if inn is not None:
        validation.check_inn("inn", inn, inn_length)
    if kpp is not None:
        validation.check_kpp("kpp", kpp)


def _with_key(row: Row, file_sha256: str) -> Row:
    content = "\x1f".join(
        str(value)
        for value in (row.recipient, row.amount, row.purpose, row.bik, row.account, row.token)
    )
    others = (row.phone, row.bank_id, row.card, row.card_token)
    if any(others):  # a row paying a phone or a card; older rows keep the keys they had
        content += "\x1f" + "\x1f".join(str(value) for value in others)
    material = f"payout131-batch\n{file_sha256}\n{row.number}\n{content}".encode()
    key = "batch-" + hashlib.sha256(material).hexdigest()
    return replace(row, key=key)
