"""Bank cards as a payout destination (PROTOCOL §9): the number's rules, its brand, and what
may be shown of it.

A card number is 14 to 19 digits with a valid Luhn check digit, of a brand the bank pays
to (told by its first digits, the BIN). Answers, webhooks, logs and stored payouts show a
card only as its brand, its first six digits and its last four; the number itself is kept
sealed by the vault (``tokens/card_tokens.py``) from the moment a call brings it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from payout131.errors import InvalidRequest

__all__ = [
    "BRANDS",
    "CardView",
    "brand_of",
    "check_card_number",
    "luhn_ok",
    "with_check_digit",
]

_NUMBER = re.compile(r"[0-9]{14,19}")

# (brand, first BIN prefix, last BIN prefix, prefix length): public card-scheme ranges
_RANGES = (
    ("mir", 2200, 2204, 4),
    ("mastercard", 2221, 2720, 4),
    ("mastercard", 51, 55, 2),
    ("unionpay", 62, 62, 2),
    ("visa", 4, 4, 1),
)
BRANDS = ("mir", "visa", "mastercard", "unionpay")


@dataclass(frozen=True, slots=True)
class CardView:
    """All that is ever shown of a card."""

    brand: str
    bin: str
    last4: str

    @property
    def masked(self) -> str:
        """``220000******0004``-like, for confirm_information and the simulator's books."""
        return f"{self.bin}******{self.last4}"

    def echo(self) -> dict[str, Any]:
        return {"brand": self.brand, "last4": self.last4, "bin": self.bin}

    @classmethod
    def shown(cls, fields: dict[str, Any]) -> CardView:
        """The card as ``echo`` showed it (a stored payout's recipient)."""
        return cls(fields["brand"], fields["bin"], fields["last4"])

    @classmethod
    def of(cls, number: str) -> CardView:
        brand = brand_of(number)
        assert brand is not None, "a checked number has a brand"
        return cls(brand, number[:6], number[-4:])


def luhn_ok(number: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(number)):
        digit = int(char)
        if position % 2:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return total % 10 == 0


def with_check_digit(body: str) -> str:
    """``body`` with the Luhn check digit that makes it a valid number (magic test cards)."""
    return next(body + d for d in "0123456789" if luhn_ok(body + d))


def brand_of(number: str) -> str | None:
    for brand, low, high, length in _RANGES:
        if low <= int(number[:length]) <= high:
            return brand
    return None


def check_card_number(field: str, value: object) -> str:
    """A card number the bank pays to; spaces between digit groups are allowed and dropped."""
    if not isinstance(value, str):
        raise InvalidRequest(f"{field}: must be a string of 14 to 19 digits")
    number = value.replace(" ", "")
    if not _NUMBER.fullmatch(number):
        raise InvalidRequest(
            f"{field}: must be 14 to 19 digits 0-9 (spaces between groups allowed), "
            f"got {len(number)} characters"
        )
    if not luhn_ok(number):
        raise InvalidRequest(f"{field}: fails the Luhn check digit (a mistyped card number?)")
    if brand_of(number) is None:
        raise InvalidRequest(
            f"{field}: a card of brand {', '.join(BRANDS)} (by its first digits), "
            f"not one starting {number[:4]}"
        )
    return number
