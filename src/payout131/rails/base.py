"""The seam where money leaves the bank: a rail carries confirmed payouts out.

The bank hands a rail an ``Order`` under a ``reference`` it chose and committed before the
call. The rail answers with a ``Status``: at once (``submit``), later when asked (``poll``),
or by calling the bank back (``payout131.settlement.report``). Failures carry Bank 131
error codes.

A rail's contract, which the worker relies on for exactly-once execution:

- ``submit`` is idempotent per reference: the same reference twice is one transfer, and the
  second call answers with the state of the first;
- ``poll`` answers ``unknown`` for a reference it never received, so after a crash the bank
  can tell "submitted, answer lost" from "never submitted" and submit only in the second case.

States: ``pending`` (still moving; ``error_code`` set means the bank's session shows
``error`` meanwhile), ``succeeded`` (paid; a ``next_check_at`` asks the bank to keep
watching for a return until then), ``failed`` (with the Bank 131 ``error_code``),
``returned`` (paid, then sent back by the recipient's bank), ``unknown``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

__all__ = ["UNKNOWN", "Order", "Rail", "State", "Status"]

State = Literal["unknown", "pending", "succeeded", "failed", "returned"]


@dataclass(frozen=True, slots=True)
class Order:
    """A confirmed payout as a rail sees it: who gets how much, under which reference."""

    reference: str
    payout_id: str
    amount: int
    currency: str
    bik: str
    account: str | None
    token: str | None
    full_name: str
    description: str
    # the sandbox's test clock the payout's project runs on (docs/sandbox.md): a simulated
    # rail keeps the transfer's time by it; a real rail ignores it
    test_clock: int | None = None
    # Faster Payments (PROTOCOL §9): a phone at a member bank, instead of bik and account
    phone: str | None = None
    bank_id: str | None = None
    # a card (PROTOCOL §9): its number, opened from the vault for the rail alone, and all
    # that may be shown of it (a rail's own records keep only that)
    card_number: str | None = field(default=None, repr=False)
    card_masked: str | None = None
    # a customer verification (PROTOCOL §9): ask the phone's bank who owns it, pay nothing;
    # a success tells the owner's name in ``Status.outcome`` ({"recipient": {...}})
    verification: bool = False


@dataclass(frozen=True, slots=True)
class Status:
    """Where a payout stands at the rail."""

    state: State
    error_code: str | None = None
    description: str | None = None
    next_check_at: int | None = None  # microseconds; when the bank should ask again
    returned_amount: int | None = None  # a return of less than the whole payout
    # what the bank keeps of a success: a card payout's ``transaction_info`` (rrn,
    # auth_code), a verification's ``recipient`` (first_name, last_name, middle_name)
    outcome: dict[str, Any] | None = None


UNKNOWN = Status("unknown")


class Rail(Protocol):
    """A settlement rail, selected by ``name`` in the settings (``PAYOUT131_RAIL``)."""

    name: str

    def submit(self, order: Order) -> Status:
        """Send the payout, or answer for the earlier send under the same reference."""
        ...

    def poll(self, reference: str) -> Status:
        """The state of the payout sent under ``reference`` (``unknown`` if never sent)."""
        ...
