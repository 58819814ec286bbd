"""Pure validators for Russian bank details: BIK, account, INN, KPP, purpose, amount.

Each ``check_*`` function takes the field path (for the message) and the raw JSON value,
returns the clean value, or raises :class:`InvalidRequest` whose description starts with the
field path and names the rule. The rules and their sources are in ``DOMAIN.md``.
"""

from __future__ import annotations

import re
import secrets
import unicodedata
from datetime import datetime

from payout131.errors import InvalidRequest

__all__ = [
    "MAX_KOPECKS",
    "PAYOUT_PREFIXES",
    "SETTLEMENT_PREFIXES",
    "account_key_ok",
    "check_amount",
    "check_bik",
    "check_datetime",
    "check_full_name",
    "check_inn",
    "check_kpp",
    "check_purpose",
    "check_recipient_account",
    "check_settlement_account",
    "correspondent_key_ok",
    "generate_account",
    "id_number",
    "mask_account",
    "party_requirements",
    "purpose_warnings",
    "whole_number",
]

SETTLEMENT_PREFIXES = ("40702810", "40701810", "40502810", "40802810")
"""Ruble settlement accounts of organisations (407…, 405…) and sole traders (40802…)."""

PAYOUT_PREFIXES = (
    "40817810",
    *(f"4230{n}810" for n in range(1, 8)),
    *SETTLEMENT_PREFIXES,
)
"""Accounts a payout may be sent to: individuals, their deposits, sole traders, organisations."""

_KEY_WEIGHTS = (7, 1, 3)
_INN10_WEIGHTS = (2, 4, 10, 3, 5, 9, 4, 6, 8)
_INN11_WEIGHTS = (7, *_INN10_WEIGHTS)
_INN12_WEIGHTS = (3, *_INN11_WEIGHTS)
_KPP = re.compile(r"[0-9]{4}[0-9A-Z]{2}[0-9]{3}")
_VAT = re.compile(r"\b(НДС|VAT)\b", re.IGNORECASE)
MAX_KOPECKS = 2**63 - 1
"""The largest amount, balance or sum of money stored: a signed 64-bit integer."""
_FULL_NAME_MAX = 255
# Unicode categories a name may not hold: control, format, surrogate, private use,
# unassigned, and the line and paragraph separators (U+2028, U+2029)
_NOT_IN_NAMES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def _digits(value: str, length: int) -> bool:
    return len(value) == length and value.isascii() and value.isdigit()


def whole_number(text: str, max_digits: int = 18) -> int | None:
    """``text`` as a whole number when it is 1 to ``max_digits`` ASCII digits, else None.

    ``str.isdigit`` and ``int`` also take other scripts' digits (``٢``, ``２``),
    superscripts (``²``) and underscores; a number read from a request, a header, an id or
    a setting is ASCII digits only."""
    if not (0 < len(text) <= max_digits and text.isascii() and text.isdigit()):
        return None
    return int(text)


def id_number(text: str) -> int | None:
    """The number of an id (``ps_22``, ``evt_7``) written the one way the bank writes it:
    ASCII digits without a leading zero; else None (``ps_022`` names no session)."""
    n = whole_number(text)
    return n if n is not None and n > 0 and str(n) == text else None


def _key_sum(prefix: str, account: str) -> int:
    digits = prefix + account
    return sum(int(d) * _KEY_WEIGHTS[i % 3] for i, d in enumerate(digits))


def check_bik(field: str, value: object) -> str:
    """A BIK: exactly 9 ASCII digits (any leading digits; ``04`` is not required)."""
    if not isinstance(value, str):
        raise InvalidRequest(f"{field}: must be a string of 9 digits")
    if not _digits(value, 9):
        raise InvalidRequest(f"{field}: {value!r} is not a BIK (must be exactly 9 digits)")
    return value


def account_key_ok(bik: str, account: str) -> bool:
    """The 1997 control key of an account held at a bank (prefix: last 3 digits of the BIK)."""
    if not (_digits(bik, 9) and _digits(account, 20)):
        return False
    return _key_sum(bik[-3:], account) % 10 == 0


def correspondent_key_ok(bik: str, account: str) -> bool:
    """A correspondent account ``301…`` of the bank ``bik``, held at a Bank of Russia division.

    The key prefix is ``0`` + BIK digits 5–6, and the account ends with the BIK's last 3 digits.
    """
    if not (_digits(bik, 9) and _digits(account, 20)):
        return False
    if not (account.startswith("301") and account.endswith(bik[-3:])):
        return False
    return _key_sum("0" + bik[4:6], account) % 10 == 0


def _check_account(field: str, bik: str, value: object, prefixes: tuple[str, ...]) -> str:
    if not isinstance(value, str):
        raise InvalidRequest(f"{field}: must be a string of 20 digits")
    if not _digits(value, 20):
        raise InvalidRequest(f"{field}: {value!r} is not an account number (must be 20 digits)")
    if not value.startswith(prefixes):
        allowed = ", ".join(prefixes)
        raise InvalidRequest(f"{field}: {value} has a prefix that is not allowed here ({allowed})")
    if not account_key_ok(bik, value):
        raise InvalidRequest(f"{field}: {value} fails the control key for BIK {bik}")
    return value


def check_recipient_account(field: str, bik: str, value: object) -> str:
    """An account a payout may go to, at the bank ``bik`` (already checked with check_bik)."""
    return _check_account(field, bik, value, PAYOUT_PREFIXES)


def check_settlement_account(field: str, bik: str, value: object) -> str:
    """A ruble settlement account of an organisation or sole trader, at the bank ``bik``."""
    return _check_account(field, bik, value, SETTLEMENT_PREFIXES)


def party_requirements(account: str) -> tuple[int | None, bool]:
    """(INN length required, KPP required) for the holder of ``account``."""
    if account.startswith("40802"):
        return 12, False
    if account.startswith(("40702", "40701", "40502")):
        return 10, True
    return None, False


def _inn_digit(digits: str, weights: tuple[int, ...]) -> str:
    return str(sum(int(d) * w for d, w in zip(digits, weights, strict=True)) % 11 % 10)


def _inn_checksum_ok(inn: str) -> bool:
    if len(inn) == 10:
        return inn[9] == _inn_digit(inn[:9], _INN10_WEIGHTS)
    return inn[10] == _inn_digit(inn[:10], _INN11_WEIGHTS) and inn[11] == _inn_digit(
        inn[:11], _INN12_WEIGHTS
    )


def check_inn(field: str, value: object, length: int | None = None) -> str:
    """An INN: 10 digits (organisation) or 12 (individual), not ``00…``, check digits valid."""
    if not isinstance(value, str):
        raise InvalidRequest(f"{field}: must be a string of 10 or 12 digits")
    lengths = (length,) if length else (10, 12)
    if not any(_digits(value, n) for n in lengths):
        wanted = " or ".join(str(n) for n in lengths)
        raise InvalidRequest(f"{field}: {value!r} is not an INN (must be {wanted} digits here)")
    if value.startswith("00"):
        raise InvalidRequest(f"{field}: {value} is not an INN (must not start with 00)")
    if not _inn_checksum_ok(value):
        raise InvalidRequest(f"{field}: {value} fails the INN check digit")
    return value


def check_kpp(field: str, value: object) -> str:
    """A KPP: 4 digits, 2 digits or capital Latin letters, 3 digits."""
    if not isinstance(value, str):
        raise InvalidRequest(f"{field}: must be a string of 9 characters")
    if not _KPP.fullmatch(value):
        raise InvalidRequest(
            f"{field}: {value!r} is not a KPP (4 digits, 2 digits or capital letters A-Z, 3 digits)"
        )
    return value


def _purpose_char_ok(char: str) -> bool:
    return (
        " " <= char <= "~"
        or "А" <= char <= "я"  # А..я is the Russian alphabet without Ё/ё
        or char in "Ёё№"
    )


def check_purpose(field: str, value: object, max_length: int = 210) -> str:
    """A payment purpose, returned with white space normalised (runs → one space, trimmed).

    Positions in messages are 1-based and count characters of the normalised text.
    """
    if not isinstance(value, str):
        raise InvalidRequest(f"{field}: must be a string")
    text = " ".join(value.split())
    if not text:
        raise InvalidRequest(f"{field}: must not be empty")
    if len(text) > max_length:
        raise InvalidRequest(f"{field}: is {len(text)} characters long, at most {max_length}")
    for position, char in enumerate(text, start=1):
        if char in "?!":
            raise InvalidRequest(f"{field}: {char!r} at position {position} is not allowed")
        if not _purpose_char_ok(char):
            raise InvalidRequest(
                f"{field}: character U+{ord(char):04X} at position {position} is not allowed"
                " (only printable ASCII, Cyrillic letters and №)"
            )
    return text


def purpose_warnings(text: str) -> list[str]:
    """Advice on a valid purpose: it should state the VAT treatment."""
    if _VAT.search(text):
        return []
    return ['the payment purpose does not state the VAT treatment (e.g. "НДС не облагается")']


def check_amount(field: str, value: object) -> int:
    """An amount in minor units: a JSON integer, positive, within signed 64 bits."""
    if isinstance(value, bool):
        raise InvalidRequest(f"{field}: must be an integer number of minor units, not a boolean")
    if isinstance(value, float):
        raise InvalidRequest(f"{field}: must be an integer number of minor units, not {value!r}")
    if isinstance(value, str):
        raise InvalidRequest(f"{field}: must be a JSON integer, not the string {value[:30]!r}")
    if not isinstance(value, int):
        raise InvalidRequest(f"{field}: must be an integer number of minor units")
    if value <= 0:
        raise InvalidRequest(f"{field}: must be greater than zero, got {value}")
    if value > MAX_KOPECKS:
        raise InvalidRequest(f"{field}: is too large (at most {MAX_KOPECKS})")
    return int(value)


_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?"
    r"([Zz]|[+-][0-9]{2}:[0-9]{2})"
)


def check_datetime(field: str, value: object) -> str:
    """An RFC 3339 date-time: a date, a time and an offset (``2025-02-20T08:42:35Z``)."""
    if isinstance(value, str) and _RFC3339.fullmatch(value):
        try:
            datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
        except ValueError:
            pass
        else:
            return value
    raise InvalidRequest(f"{field}: must be an RFC 3339 date-time like 2025-02-20T08:42:35Z")


def check_full_name(field: str, value: object) -> str:
    """A holder's name: non-empty after trimming, at most 255 characters; returned trimmed."""
    if not isinstance(value, str):
        raise InvalidRequest(f"{field}: must be a string")
    name = value.strip()
    if not name:
        raise InvalidRequest(f"{field}: must not be empty")
    if len(name) > _FULL_NAME_MAX:
        raise InvalidRequest(f"{field}: is {len(name)} characters long, at most {_FULL_NAME_MAX}")
    for position, char in enumerate(name, start=1):  # reliability: no NUL, tab, line break…
        if unicodedata.category(char) in _NOT_IN_NAMES:
            raise InvalidRequest(
                f"{field}: character U+{ord(char):04X} at position {position} is not allowed"
                " (control, format and line or paragraph separator characters)"
            )
    return name


def generate_account(bik: str, prefix: str = "40702810", sequence: int | None = None) -> str:
    """A valid account at ``bik``: prefix + key + branch ``0000`` + 7-digit sequence."""
    if not (_digits(bik, 9) and _digits(prefix, 8)):
        raise ValueError(f"need a 9-digit BIK and an 8-digit prefix, got {bik!r}, {prefix!r}")
    if sequence is None:
        sequence = secrets.randbelow(10**7)
    if not 0 <= sequence < 10**7:
        raise ValueError(f"sequence must have at most 7 digits, got {sequence}")
    unkeyed = f"{prefix}00000{sequence:07d}"
    key = _key_sum(bik[-3:], unkeyed) % 10 * 3 % 10  # the key digit has weight 3
    return f"{prefix}{key}{unkeyed[9:]}"


def mask_account(account: str) -> str:
    """First 5 and last 4 digits: ``40702***0025``; anything too short is masked whole."""
    if len(account) < 10:
        return "***"
    return f"{account[:5]}***{account[-4:]}"
