"""What a partner sends: typed request values and their Bank 131 JSON.

The destination is called ``payment_method`` in v1 and ``payout_details`` in v2; that
renaming happens here and nowhere else, in :func:`payout_fields`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, TypedDict

import msgspec

from payout131.client.types import Amount

__all__ = [
    "ApiVersion",
    "BankAccount",
    "Card",
    "Destination",
    "FasterPayment",
    "PayoutExtras",
    "PayoutFields",
    "Recipient",
    "Sender",
    "TokenizedAccount",
    "TokenizedCard",
    "payout_fields",
]

ApiVersion = Literal["v1", "v2"]


class _Params(msgspec.Struct, frozen=True, omit_defaults=True):
    def to_wire(self) -> dict[str, Any]:
        wire: dict[str, Any] = msgspec.to_builtins(self)
        return wire


class _RuAccount(_Params, frozen=True, omit_defaults=True):
    def to_wire(self) -> dict[str, Any]:
        ru = super().to_wire()
        return {"type": "bank_account", "bank_account": {"system_type": "ru", "ru": ru}}


class BankAccount(_RuAccount, frozen=True, omit_defaults=True):
    """A Russian bank account given in the open: BIK (9 digits) and account (20 digits).

    ``description`` is the payment purpose (at most 210 characters, no ``?`` or ``!``);
    ``inn`` is required for sole traders and organisations, ``kpp`` for organisations.
    """

    bik: str
    account: str
    full_name: str
    description: str
    inn: str | None = None
    kpp: str | None = None
    is_fast: bool | None = None


class TokenizedAccount(_RuAccount, frozen=True, omit_defaults=True):
    """A Russian bank account known by the token the widget or ``tokenize()`` returned."""

    token: str
    full_name: str
    description: str
    inn: str | None = None
    kpp: str | None = None
    is_fast: bool | None = None


class FasterPayment(_Params, frozen=True, omit_defaults=True):
    """A phone at a Faster Payments (SBP) member bank: ``phone`` is 11 digits starting with 7,
    ``bank_id`` a member's 12-digit id (``fps_banks()``), ``description`` at most 140
    characters. The recipient's name goes in ``recipient=Recipient(full_name=...)``."""

    phone: str
    bank_id: str
    description: str

    def to_wire(self) -> dict[str, Any]:
        return {
            "type": "bank_account",
            "bank_account": {
                "system_type": "faster_payment_system",
                "faster_payment_system": super().to_wire(),
            },
        }


class Card(_Params, frozen=True, omit_defaults=True):
    """A bank card by its number (14 to 19 digits, Luhn-checked by the bank). The recipient's
    full name, as in the passport, goes in ``recipient=Recipient(full_name=...)``."""

    number: str

    def __repr__(self) -> str:  # never the whole number, in a log or a traceback
        digits = self.number.replace(" ", "")
        shown = f"{digits[:6]}******{digits[-4:]}" if len(digits) >= 13 else "****"
        return f"Card({shown})"

    def __rich_repr__(self) -> Any:  # rich (a dependency) prints fields by this
        yield repr(self)

    def to_wire(self) -> dict[str, Any]:
        return {"type": "card", "card": {"type": "bank_card", "bank_card": {"number": self.number}}}


class TokenizedCard(_Params, frozen=True, omit_defaults=True):
    """A card by the token ``tokenize`` gave (``tokenized_card``), or with ``widget=True``
    by the hash the card widget handed over (``encrypted_card``)."""

    token: str
    widget: bool = False

    def to_wire(self) -> dict[str, Any]:
        if self.widget:
            kind, fields = "encrypted_card", {"number_hash": self.token}
        else:
            kind, fields = "tokenized_card", {"token": self.token}
        return {"type": "card", "card": {"type": kind, kind: fields}}


Destination = (
    BankAccount | TokenizedAccount | FasterPayment | Card | TokenizedCard | Mapping[str, Any]
)
"""A typed account, or the destination object as raw JSON for kinds this SDK lacks."""


class Sender(_Params, frozen=True, omit_defaults=True):
    """The partner's settlement account to debit; required by the ``rko`` variants."""

    account: str


class Recipient(_Params, frozen=True, omit_defaults=True):
    full_name: str | None = None
    inn: str | None = None
    kpp: str | None = None
    first_name: str | None = None  # the name in parts, as Faster Payments may take it
    last_name: str | None = None
    middle_name: str | None = None


class PayoutExtras(TypedDict, total=False):
    """Optional payout fields, keyword arguments of ``create_session``, ``start_payout`` and
    ``init_payout``. ``customer`` and ``metadata`` (any JSON value) are stored and echoed."""

    sender: Sender
    recipient: Recipient
    customer: Mapping[str, Any]
    metadata: Any


class PayoutFields(PayoutExtras, total=False):
    """All payout fields; ``create_session`` and ``start_payout`` may leave any out."""

    destination: Destination
    amount: Amount


def payout_fields(
    version: ApiVersion,
    *,
    destination: Destination | None = None,
    amount: Amount | None = None,
    sender: Sender | None = None,
    recipient: Recipient | None = None,
    customer: Mapping[str, Any] | None = None,
    metadata: Any = None,
) -> dict[str, Any]:
    """The body fields of a payout, named for ``version``; ``None`` means "leave out".

    Takes the keywords of :class:`PayoutFields` and nothing else, so a misspelt keyword
    fails here at run time as it fails under a type checker.
    """
    fields: dict[str, Any] = {}
    if destination is not None:
        key = "payment_method" if version == "v1" else "payout_details"
        fields[key] = (
            dict(destination) if isinstance(destination, Mapping) else destination.to_wire()
        )
    if amount is not None:
        fields["amount_details"] = {"amount": amount.amount, "currency": amount.currency}
    participants = {
        role: party.to_wire()
        for role, party in (("sender", sender), ("recipient", recipient))
        if party is not None
    }
    if participants:
        fields["participant_details"] = participants
    if customer is not None:
        fields["customer"] = dict(customer)
    if metadata is not None:
        fields["metadata"] = metadata
    return fields
