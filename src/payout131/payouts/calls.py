"""What a use case is handed: the partner's call, and what it looks things up in.

A use case takes a list of calls (a single call is a list of one) and answers each with a
``Listed`` session or the ``ApiError`` that refuses it; a refused call wrote nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Generic, TypeVar

from payout131.directory.bik import BikDirectory
from payout131.directory.fps import FpsDirectory, load_snapshot
from payout131.errors import ApiError
from payout131.payouts.records import Listed
from payout131.projects import Project
from payout131.protocol.requests import Body
from payout131.tokens.vault import Vault

__all__ = ["Answer", "Answers", "Context", "PartnerCall", "Serial", "every"]

B = TypeVar("B", bound=Body, covariant=True)

Answer = Listed | ApiError
"""A call's outcome: the session as it now stands, or why the call was refused."""

Answers = list[Answer | None]
"""A group's outcomes as they are being found, by call (None: not yet)."""


def every(answers: Answers) -> list[Answer]:
    """The group's outcomes, each call's found."""
    found = [answer for answer in answers if answer is not None]
    assert len(found) == len(answers), "every call of a group is answered"
    return found


@dataclass(frozen=True, slots=True)
class Context:
    """What the use cases look things up in besides the database."""

    directory: BikDirectory  # bank names, correspondent accounts, banks that cannot be paid
    vault: Vault  # opens tokenized accounts (confirm_information, the rail's order)
    members: FpsDirectory = field(default_factory=lambda: FpsDirectory(load_snapshot()))
    # the Faster Payments members a payout to a phone may name (PROTOCOL §9)


@dataclass(frozen=True, slots=True)
class PartnerCall(Generic[B]):
    """An authenticated partner call: who, which API version and variant, when, its body."""

    project: Project
    version: str
    rko: bool
    now: int
    body: B
    submerchant: str | None = None
    idempotency_key: str | None = None  # the call's, if it sent one (call_record.py)


class Serial(RuntimeError):
    """Calls of one group that must run one after the other (two answers to one session):
    raised before anything is written, so that the group commit runs each alone."""
