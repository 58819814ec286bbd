"""What the rail is asked about a payout, and how that stays exactly once towards it.

A confirmed payout goes to the rail through three steps (``payouts.work``): ``execute``
(submit it), ``poll`` (ask until the outcome is known) and ``watch`` (a succeeded payout
the rail may still report returned). The reference is committed before the rail first
hears of the payout (``claims``). A payout found at ``execute`` with a reference made by an
earlier lease may have been submitted by a worker that died before recording the answer,
so the rail is asked first and the payout is submitted only if the rail has no record of
it; a reference made by this worker's own claim was never sent, and goes at once.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from prometheus_client import Counter
from sqlalchemy.engine import Connection

from payout131.payouts.records import Payout
from payout131.payouts.states import Step
from payout131.protocol import wire
from payout131.protocol.cards import CardView
from payout131.rails import UNKNOWN, Order, Rail, Status
from payout131.tokens import account_tokens, card_tokens
from payout131.tokens.vault import Vault
from payout131.worker.claims import Claimed

__all__ = ["RAIL_ANSWERS", "RAIL_STEPS", "RAIL_SUBMISSIONS", "ask", "order", "orders"]

log = logging.getLogger("payout131.work")

# /metrics: what this process asked the rail, and what it answered (``state``: pending,
# succeeded, failed, returned, unknown …)
RAIL_SUBMISSIONS = Counter(
    "payout131_rail_submissions", "Payouts submitted to the rail.", ["rail"], registry=None
)
RAIL_ANSWERS = Counter(
    "payout131_rail_answers",
    "The rail's answers to submissions and polls, by the state they tell.",
    ["rail", "state"],
    registry=None,
)

RAIL_STEPS = (Step.EXECUTE, Step.POLL, Step.WATCH)


def order(
    payout: Payout, account: str | None, test_clock: int | None = None, card: str | None = None
) -> Order:
    """What the rail is asked to pay, from the stored payout (``account``: the account
    number, ``card``: the card number, each opened from the vault when tokenized)."""
    assert payout.rail_reference is not None, "the claim gives every execute step one"
    recipient = wire.loads_field(payout.recipient)
    bank_account = wire.loads_field(payout.destination).get("bank_account")
    description = ""  # a card payout, a verification have no purpose
    if bank_account is not None:  # ru, faster_payment_system or its verification
        description = bank_account[bank_account["system_type"]].get("description", "")
    masked = CardView.shown(recipient).masked if "card_token" in recipient else None
    return Order(
        reference=payout.rail_reference,
        payout_id=wire.payout_id(payout.n),
        amount=int(payout.amount),
        currency="RUB",
        bik=recipient.get("bik") or "",
        account=account,
        token=recipient.get("token"),
        full_name=recipient["name"],
        description=description,
        test_clock=test_clock,
        phone=recipient.get("phone"),
        bank_id=recipient.get("bank_id"),
        card_number=card,
        card_masked=masked,
        verification=not payout.moves_money,
    )


def orders(conn: Connection, vault: Vault, steps: Sequence[Claimed]) -> dict[int, Order]:
    """The order of each ``execute`` step, should the rail need it (``conn`` reads the
    tokenized accounts' and cards' tokens; the vault opens them)."""
    return {
        step.payout.n: order(
            step.payout,
            account_tokens.payout_account(conn, vault, step.payout),
            step.clock,
            card_tokens.payout_card(conn, vault, step.payout),
        )
        for step in steps
        if step.step == Step.EXECUTE
    }


def ask(rail: Rail, steps: Sequence[Claimed], orders: dict[int, Order]) -> dict[int, Status]:
    """Where each step's payout stands at the rail, submitting the ``execute`` steps the
    rail has not heard of (all at once when the rail has ``submit_many``)."""
    answers: dict[int, Status] = {}
    unsent: list[int] = []
    for step in steps:
        payout = step.payout
        if payout.rail != rail.name:
            log.error(
                "payout po_%s was sent through rail %r, not %r; it will be retried",
                payout.n,
                payout.rail,
                rail.name,
            )
            continue
        status = UNKNOWN if step.fresh else rail.poll(str(payout.rail_reference))
        if step.step == Step.EXECUTE and status.state == "unknown":
            unsent.append(payout.n)
        else:
            answers[payout.n] = status
    submit_many = getattr(rail, "submit_many", None)
    if submit_many is not None and unsent:
        submitted: list[Status] = submit_many([orders[n] for n in unsent])
    else:
        submitted = [rail.submit(orders[n]) for n in unsent]
    answers.update(zip(unsent, submitted, strict=True))
    if unsent:
        RAIL_SUBMISSIONS.labels(rail.name).inc(len(unsent))
    for status in answers.values():
        RAIL_ANSWERS.labels(rail.name, status.state).inc()
    return answers
