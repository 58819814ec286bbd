"""What the bank answers: typed, immutable values read from Bank 131's JSON.

Every value keeps the JSON object it was read from in ``.raw`` (unknown fields included), so
nothing the bank sends is lost when this SDK is older than the API. Unknown fields never
break decoding; statuses are plain strings for the same reason:

- session ``status``: ``created``, ``in_progress``, ``accepted``, ``cancelled``, ``error``
  (``error`` is not final: the bank is still working out the outcome);
- payout ``status``: ``in_progress``, ``pending`` (waiting for confirm or cancel),
  ``succeeded``, ``failed`` (see ``error.code``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypeVar

import msgspec

__all__ = [
    "AccountBalance",
    "AccountDetails",
    "Amount",
    "ConfirmInformation",
    "ErrorInfo",
    "FpsBank",
    "Model",
    "Party",
    "Payout",
    "PublicToken",
    "Refund",
    "Session",
    "TokenInfo",
    "Tokenized",
    "TransactionInfo",
    "Wallet",
    "WalletBalance",
]

M = TypeVar("M", bound="Model")


class Model(msgspec.Struct, frozen=True, dict=True):
    """Base of the answer types: a frozen struct that remembers its JSON in ``raw``."""

    @property
    def raw(self) -> dict[str, Any]:
        """The JSON object this value was read from (empty for values built in code)."""
        raw: dict[str, Any] = self.__dict__.get("_raw", {})
        return raw

    @property
    def answer(self) -> dict[str, Any]:
        """The bank's whole answer this value came from, envelope and all (``raw`` for a
        value that is the whole answer; empty for values built in code)."""
        answer: dict[str, Any] = self.__dict__.get("_answer", self.raw)
        return answer


class FpsBank(Model, frozen=True):
    """A Faster Payments (SBP) member: ``id`` is a payout's ``bank_id``."""

    id: str
    eng_name: str = ""
    ru_name: str = ""


class Amount(Model, frozen=True):
    """Money in minor units: ``Amount(10000)`` is 100 rubles. Never a float."""

    amount: int
    currency: str = "rub"

    def __post_init__(self) -> None:
        if type(self.amount) is not int:
            raise TypeError(f"amount must be an int of minor units, not {self.amount!r}")


class ErrorInfo(Model, frozen=True):
    code: str
    description: str = ""


class Refund(Model, frozen=True):
    id: str
    status: str | None = None
    created_at: datetime | None = None
    amount_details: Amount | None = None


class TransactionInfo(Model, frozen=True):
    """A succeeded card payout's card-network figures."""

    rrn: str | None = None
    auth_code: str | None = None


class Payout(Model, frozen=True):
    id: str
    status: str
    created_at: datetime | None = None
    finished_at: datetime | None = None
    payment_method: dict[str, Any] | None = None
    payout_details: dict[str, Any] | None = None
    amount_details: Amount | None = None
    participant_details: dict[str, Any] | None = None
    customer: Any = None
    metadata: Any = None
    payment_metadata: Any = msgspec.field(default=None, name="paymentMetadata")
    error: ErrorInfo | None = None
    refunds: list[Refund] = msgspec.field(default_factory=list)
    transaction_info: TransactionInfo | None = None  # a succeeded card payout

    @property
    def destination(self) -> dict[str, Any] | None:
        """The destination, whichever the version calls it (``payment_method`` in v1)."""
        return self.payment_method if self.payment_method is not None else self.payout_details


class Session(Model, frozen=True):
    id: str
    status: str
    created_at: datetime | None = None
    updated_at: datetime | None = None
    next_action: str | None = None
    error: ErrorInfo | None = None
    metadata: Any = None
    session_metadata: Any = None
    payments: list[Payout] | None = None
    payout_list: list[Payout] | None = None

    @property
    def payouts(self) -> list[Payout]:
        """The payouts, from ``payments`` (v1) or ``payout_list`` (v2)."""
        return self.payments or self.payout_list or []


class Party(Model, frozen=True):
    """One side of ``confirm_information``: an account, or (the recipient of a Faster
    Payments payout) a ``phone`` at the member ``bank_id``."""

    account_number: str | None = None
    phone: str | None = None
    bank_id: str | None = None
    name: str | None = None
    bank_name: str | None = None
    bik: str | None = None
    correspondent_account_number: str | None = None
    inn: str | None = None
    kpp: str | None = None


class AccountDetails(Model, frozen=True):
    sender: Party
    recipient: Party


class ConfirmInformation(Model, frozen=True):
    """What a ``/rko`` payout will pay, shown once with ``ready_to_confirm`` for checking."""

    account_details: AccountDetails


class Wallet(Model, frozen=True):
    id: str
    amount_details: Amount


class WalletBalance(Model, frozen=True):
    wallets: list[Wallet]


class _Balance(Model, frozen=True):
    current_balance: int


class AccountBalance(Model, frozen=True):
    account_number: str
    account_currency: str
    balance: _Balance

    @property
    def current_balance(self) -> int:
        """The settlement account's balance in minor units."""
        return self.balance.current_balance


class PublicToken(Model, frozen=True):
    """A single-use token for the tokenization widget."""

    public_token: str


class _MaskedAccount(Model, frozen=True):
    """What may be shown of what was tokenized: an account's mask, or a card's brand, BIN
    and last four digits."""

    masked_account: str | None = None
    brand: str | None = None
    bin: str | None = None
    last4: str | None = None


class Tokenized(Model, frozen=True):
    token: str
    data: _MaskedAccount = msgspec.field(default_factory=_MaskedAccount)

    @property
    def masked_account(self) -> str | None:
        return self.data.masked_account


class TokenInfo(Model, frozen=True):
    type: str  # "bank_account_ru" or "card"
    token: str | None = None
    masked_account: str | None = None
    bik: str | None = None
    bank_name: str | None = None
    brand: str | None = None  # a card's
    bin: str | None = None
    last4: str | None = None


def read(data: Any, cls: type[M]) -> M:
    """Decode ``data`` (parsed JSON) as ``cls``; raises ``msgspec.ValidationError``."""
    value = msgspec.convert(data, cls)
    _remember(value, data)
    return value


def _remember(value: Model, data: dict[str, Any]) -> None:
    value.__dict__["_raw"] = data
    for field in msgspec.structs.fields(value):
        child, child_data = getattr(value, field.name), data.get(field.encode_name)
        if isinstance(child, Model) and isinstance(child_data, dict):
            _remember(child, child_data)
        elif isinstance(child, list) and isinstance(child_data, list):
            for item, item_data in zip(child, child_data, strict=False):
                if isinstance(item, Model) and isinstance(item_data, dict):
                    _remember(item, item_data)
