"""The simulator's magic values: which amounts play which outcome, and when.

The last two digits of the amount in kopecks choose the scenario; every other amount
succeeds. Magic amounts are ordinary amounts, so a payout that plays an outcome passes the
same validation as any other. A payout to a phone (Faster Payments) or a card may also name
a magic phone number or card number (``DESTINATIONS``), which plays a failure of its own
whatever the amount. The tables are data: the simulator, ``payout131 simulate outcomes``
(``--destinations``) and ``docs/rails.md`` are all made from them.

A scenario's clock starts when the transfer settles at the rail (submission time plus the
simulator's base latency and spread): ``delay_s`` later the outcome is reached, but first
the session shows ``error`` for ``error_s`` seconds if that is set; a returned payout comes
back ``return_after_s`` after it succeeded.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from typing import Any

from payout131.protocol.cards import with_check_digit
from payout131.rails.base import Order, Status

__all__ = [
    "CARD_CODES",
    "DESTINATIONS",
    "SCENARIOS",
    "Magic",
    "Scenario",
    "by_amount",
    "by_destination",
    "by_name",
    "destination_rows",
    "destinations_table",
    "error_codes",
    "kind_of",
    "markdown_table",
    "outcome",
    "rows",
    "transaction_info",
    "verification",
]

MINUTE, HOUR, DAY = 60, 3600, 86400
_MICROS = 1_000_000

# The error a session shows while the error scenario is being worked out.
TROUBLE = ("provider_timeout", "the recipient's bank has not answered yet; the bank keeps trying")


@dataclass(frozen=True, slots=True)
class Scenario:
    kopecks: str | None  # the amount's last two digits; None for every other amount
    name: str
    summary: str
    error_code: str | None = None
    description: str | None = None
    delay_s: int = 0
    error_s: int = 0
    return_after_s: int | None = None

    @property
    def status(self) -> str:
        return "failed" if self.error_code else "succeeded"

    @property
    def session_status(self) -> str:
        return "cancelled" if self.error_code else "accepted"

    @property
    def example_amount(self) -> int:
        return 10_000 + int(self.kopecks or "0")

    def status_at(self, settles_at: int, now: int) -> Status:
        """Where a transfer that settles at ``settles_at`` stands at ``now`` (microseconds)."""
        troubled_at = settles_at + self.delay_s * _MICROS
        outcome_at = troubled_at + self.error_s * _MICROS
        if now < troubled_at:
            return Status("pending", next_check_at=troubled_at)
        if now < outcome_at:
            code, description = TROUBLE
            return Status("pending", code, description, next_check_at=outcome_at)
        if self.error_code:
            return Status("failed", self.error_code, self.description)
        if self.return_after_s is None:
            return Status("succeeded")
        returns_at = outcome_at + self.return_after_s * _MICROS
        if now < returns_at:
            return Status("succeeded", next_check_at=returns_at)
        return Status("returned", description="the recipient's bank sent the payout back")

    def as_row(self) -> dict[str, Any]:
        return {
            "outcome": self.name,
            "amount_ends_with": self.kopecks,
            "amount": self.example_amount,
            "status": self.status,
            "session_status": self.session_status,
            "error_code": self.error_code,
            "refunded": self.return_after_s is not None,
            "delay_s": self.delay_s,
            "error_s": self.error_s,
            "refund_after_s": self.return_after_s,
            "summary": self.summary,
        }


def _failure(kopecks: str, code: str, description: str) -> Scenario:
    return Scenario(kopecks, code, f"fails with `{code}`", error_code=code, description=description)


ORDINARY = Scenario(None, "success", "succeeds after the base latency")

SCENARIOS: tuple[Scenario, ...] = (
    ORDINARY,
    Scenario("11", "slow_success", "succeeds one hour after the base latency", delay_s=HOUR),
    Scenario(
        "21",
        "error_then_success",
        "the session shows `error` for 30 minutes (payout still `in_progress`), then succeeds",
        error_s=30 * MINUTE,
    ),
    Scenario(
        "31",
        "returned",
        "succeeds, then comes back 3 days later: `payment_refunded`, money credited back",
        return_after_s=3 * DAY,
    ),
    _failure("01", "account_not_found", "the recipient's bank has no such account"),
    _failure("02", "operation_rejected", "the recipient's bank rejected the transfer"),
    _failure("03", "provider_internal_error", "the settlement provider failed internally"),
    _failure("04", "provider_timeout", "the settlement provider did not answer in time"),
    _failure(
        "05",
        "provider_exceeds_amount_limit",
        "the amount exceeds the settlement provider's limit for one transfer",
    ),
)

_BY_KOPECKS = {s.kopecks: s for s in SCENARIOS if s.kopecks is not None}


@dataclass(frozen=True, slots=True)
class Magic:
    """A phone number or card number that plays ``scenario`` whatever the amount."""

    kind: str  # "phone" (Faster Payments), "card", or "verification" (of a phone)
    value: str | None  # None: every other phone (a verification's own success)
    scenario: Scenario

    def as_row(self) -> dict[str, Any]:
        s = self.scenario
        return {
            "destination": self.kind,
            "value": self.value,
            "outcome": s.name,
            "status": s.status,
            "session_status": s.session_status,
            "error_code": s.error_code,
            "summary": s.summary,
        }


def _magic(kind: str, value: str, name: str, code: str, description: str) -> Magic:
    return Magic(kind, value, Scenario(None, name, description, code, description))


def _card(ending: str) -> str:
    return with_check_digit(f"2200000000000{ending}")  # a Mir test card: 16 digits


# A verification finds the phone's owner unless the phone is a magic one; the bank tells the
# name as the Faster Payments directory shows it: the last name by its initial.
FOUND = {"first_name": "Иван", "last_name": "И.", "middle_name": "Иванович"}
VERIFIED = Scenario(
    None, "verification_found", "the bank tells the phone owner's name (Иван Иванович И.)"
)
DESTINATIONS: tuple[Magic, ...] = (
    _magic(
        "phone",
        "79990000001",
        "fps_recipient_not_found",
        "account_not_found",
        "the chosen bank has no account for this phone number",
    ),
    _magic(
        "phone",
        "79990000002",
        "fps_bank_refused",
        "operation_rejected",
        "the recipient's bank refused the Faster Payments transfer",
    ),
    _magic(
        "phone",
        "79990000003",
        "fps_limit_exceeded",
        "provider_exceeds_amount_limit",
        "the transfer exceeds the recipient's Faster Payments limit",
    ),
    _magic("card", _card("01"), "card_expired", "card_expired", "the card has expired"),
    _magic(
        "card", _card("02"), "card_blocked", "card_blocked", "the card is blocked by its issuer"
    ),
    _magic(
        "card",
        _card("03"),
        "card_refused",
        "operation_rejected",
        "the card's issuer refused the payout",
    ),
    _magic(
        "card",
        _card("04"),
        "card_not_found",
        "account_not_found",
        "the card's issuer has no such card (closed or never issued)",
    ),
    Magic("verification", None, VERIFIED),
    _magic(
        "verification",
        "79990000001",
        "verification_not_found",
        "account_not_found",
        "the chosen bank has no customer with this phone number",
    ),
    _magic(
        "verification",
        "79990000002",
        "verification_refused",
        "operation_rejected",
        "the chosen bank refused to tell who owns the phone",
    ),
)

_BY_DESTINATION = {(m.kind, m.value): m.scenario for m in DESTINATIONS if m.value}
_BY_NAME = {s.name: s for s in (*SCENARIOS, *(m.scenario for m in DESTINATIONS))}


def by_amount(amount: int) -> Scenario:
    return _BY_KOPECKS.get(f"{amount % 100:02d}", ORDINARY)


def by_destination(kind: str, value: str | None) -> Scenario | None:
    """The scenario a magic phone or card number plays, if it is one."""
    return _BY_DESTINATION.get((kind, value or ""))


def verification(phone: str | None) -> Scenario:
    """What a verification of ``phone`` plays: a magic phone's failure, else found."""
    return by_destination("verification", phone) or VERIFIED


def by_name(name: str) -> Scenario:
    return _BY_NAME.get(name, ORDINARY)


CARD_CODES = ("card_expired", "card_blocked")  # failures only a card payout can have


def error_codes() -> tuple[str, ...]:
    """Every error code a scenario ends in, each once."""
    return tuple(dict.fromkeys(s.error_code for s in _BY_NAME.values() if s.error_code))


def rows() -> list[dict[str, Any]]:
    """The table as plain objects (``payout131 simulate outcomes --json``)."""
    return [s.as_row() for s in SCENARIOS]


def _duration(seconds: int | None) -> str:
    if not seconds:
        return "—"
    for unit, size in (("d", DAY), ("h", HOUR), ("min", MINUTE)):
        if seconds % size == 0:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"


def markdown_table() -> str:
    """The table as Markdown, exactly as ``docs/rails.md`` shows it."""
    lines = [
        "| amount ends in | e.g. send | outcome | payout | session | error code | refunded |",
        "|---|---|---|---|---|---|---|",
    ]
    for s in SCENARIOS:
        ends = f"`{s.kopecks}`" if s.kopecks else "anything else"
        code = f"`{s.error_code}`" if s.error_code else "—"
        refunded = f"yes, after {_duration(s.return_after_s)}" if s.return_after_s else "no"
        lines.append(
            f"| {ends} | `{s.example_amount}` | {s.summary} | `{s.status}` "
            f"| `{s.session_status}` | {code} | {refunded} |"
        )
    return "\n".join(lines) + "\n"


def destination_rows() -> list[dict[str, Any]]:
    """The magic phones and cards as plain objects (``simulate outcomes --destinations``)."""
    return [m.as_row() for m in DESTINATIONS]


def destinations_table() -> str:
    """The magic phones and cards as Markdown, exactly as ``docs/rails.md`` shows them."""
    lines = [
        "| pay to | number | outcome | payout | session | error code |",
        "|---|---|---|---|---|---|",
    ]
    for m in DESTINATIONS:
        s = m.scenario
        value = f"`{m.value}`" if m.value else "any other"
        code = f"`{s.error_code}`" if s.error_code else "—"
        lines.append(
            f"| {m.kind} | {value} | {s.summary} | `{s.status}` | `{s.session_status}` | {code} |"
        )
    return "\n".join(lines) + "\n"


def kind_of(order: Order) -> str | None:
    """What an order pays to: ``verify`` (a customer verification), ``card``, ``phone``, or
    None (a bank account)."""
    if order.verification:
        return "verify"
    return "card" if order.card_masked else "phone" if order.phone else None


def transaction_info(reference: str) -> dict[str, str]:
    """A succeeded card payout's card-network figures, the same on every ask: the
    retrieval reference number (12 digits) and the issuer's authorisation code (6)."""
    digest = int.from_bytes(hashlib.sha256(f"card\x00{reference}".encode()).digest()[:8], "big")
    return {"rrn": f"{digest % 10**12:012d}", "auth_code": f"{digest // 10**12 % 10**6:06d}"}


def outcome(kind: str | None, reference: str, status: Status) -> Status:
    """A simulated success as the bank learns it: a card's carries its ``transaction_info``,
    a verification's the phone owner's name."""
    if status.state not in ("succeeded", "returned"):
        return status
    if kind == "card":
        return replace(status, outcome={"transaction_info": transaction_info(reference)})
    if kind == "verify":
        return replace(status, outcome={"recipient": dict(FOUND)})
    return status
