"""Sessions, payouts and refunds as the use cases hold them: one typed record per stored row.

The fields are the tables' columns (``storage/schema.py``), in the order the statements of
``payouts/store.py`` select them. Times are microseconds since the Unix epoch; JSON fields
(``draft``, ``destination``, ``recipient``…) are the exact text stored.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["VERIFICATION", "Listed", "Payout", "Refund", "Session"]

VERIFICATION = "verification"  # the kind of a payout that asks who owns a phone


class Session(NamedTuple):
    n: int
    project_id: str
    api_version: str
    rko: bool
    status: str
    submerchant: str | None
    metadata: str | None  # JSON text, as the partner sent it at create (or init)
    draft: str  # JSON text: the payout fields given at create, for start
    error_code: str | None
    error_description: str | None
    created_at: int
    updated_at: int


class Payout(NamedTuple):
    n: int
    session_n: int
    project_id: str
    status: str
    amount: int
    currency: str
    account_id: int  # the ledger account that pays (a settlement account or the wallet)
    destination: str  # JSON text: the destination as answers echo it
    recipient: str  # JSON text: the recipient as confirm_information and the rail see it
    participant_details: str | None
    customer: str | None
    metadata: str | None
    error_code: str | None
    error_description: str | None
    work: str | None  # the next background step (``states.Step``), or None
    work_at: int | None  # when it is due
    lease_owner: str | None
    lease_until: int | None
    rail: str | None
    rail_reference: str | None
    created_at: int
    updated_at: int
    finished_at: int | None
    fee: int  # the bank's fee, held with the amount
    outcome: str | None = None  # JSON text: what the rail told of the outcome (transaction_info)
    kind: str = "payout"  # or VERIFICATION (fps/customer_verification): moves no money

    @property
    def moves_money(self) -> bool:
        """Every payout holds and pays money but a customer verification."""
        return self.kind != VERIFICATION


class Refund(NamedTuple):
    n: int
    payout_n: int
    amount: int
    status: str
    created_at: int
    finished_at: int | None


class Listed(NamedTuple):
    """A session with its payouts, each with its refunds: what an answer or webhook shows."""

    session: Session
    payouts: tuple[tuple[Payout, tuple[Refund, ...]], ...]
