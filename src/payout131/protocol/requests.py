"""Request bodies, decoded once at the HTTP edge into typed structures.

The whole body is parsed first (so a body that is not JSON, not UTF-8 or not an object is
refused as a whole, even in a field nobody reads), then converted into the method's
structure: a field the partner did not send is ``UNSET``, a field sent as ``null`` is
``None``, and a field nobody reads is ignored (PROTOCOL §1). The fields stay as the partner
sent them (``object``): the use cases check each with the rules of ``validation`` and
``payout_request``, and their errors name the field.
"""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec
from msgspec import UNSET, UnsetType

from payout131.errors import InvalidRequest

__all__ = [
    "DRAFT_FIELDS",
    "UNSET",
    "AccountBalanceBody",
    "AnswerBody",
    "Body",
    "Draft",
    "SessionRef",
    "StartBody",
    "TokenBody",
    "TokenInfoBody",
    "TokenizeBody",
    "UnsetType",
    "WalletBalanceBody",
    "decode",
    "given",
    "parse_body",
]

B = TypeVar("B", bound="Body")


class Body(msgspec.Struct, frozen=True):
    """A method's request body."""


class Draft(Body, frozen=True):
    """The payout fields a session may carry from ``session/create`` to its start, and
    the body of ``session/create`` and ``session/init/payout``."""

    payment_method: object = UNSET
    payout_details: object = UNSET
    amount_details: object = UNSET
    participant_details: object = UNSET
    customer: object = UNSET
    metadata: object = UNSET

    def given(self) -> dict[str, object]:
        """The payout fields present, in ``DRAFT_FIELDS`` order (``metadata`` apart)."""
        fields = {name: getattr(self, name) for name in DRAFT_FIELDS}
        return {name: value for name, value in fields.items() if value is not UNSET}


# The payout fields a session can carry from create to start (both destination spellings).
DRAFT_FIELDS = (
    "payment_method",
    "payout_details",
    "amount_details",
    "participant_details",
    "customer",
)


class StartBody(Draft, frozen=True):
    """``session/start/payout``: the session to start and the payout fields."""

    session_id: object = UNSET


class SessionRef(Body, frozen=True):
    """``session/status``."""

    session_id: object = UNSET


class AnswerBody(Body, frozen=True):
    """``session/confirm`` and ``session/cancel``: the partner's answer."""

    session_id: object = UNSET
    confirm_information: object = UNSET


class WalletBalanceBody(Body, frozen=True):
    request_datetime: object = UNSET


class AccountBalanceBody(Body, frozen=True):
    account_number: object = UNSET


class TokenBody(Body, frozen=True):
    tokenize_widget: object = UNSET


class TokenizeBody(Body, frozen=True):
    type: object = UNSET
    bank_account_ru: object = UNSET
    card: object = UNSET  # PROTOCOL §9: {"type": "card", "card": {"number"}}


class TokenInfoBody(Body, frozen=True):
    type: object = UNSET
    bank_account_ru: object = UNSET
    card: object = UNSET  # PROTOCOL §9: {"type": "card", "card": {"token"}}


def given(value: object) -> object:
    """A field as the checks read it: one the partner left out reads as null."""
    return None if value is UNSET else value


MAX_DEPTH = 32
"""How deeply a body's arrays and objects may nest: far beyond any payout's (metadata and
participant details included), far below what reading and writing it back can follow."""


def parse_body(raw: bytes) -> dict[str, Any]:
    """The request's JSON object; ``[]`` and an empty body mean ``{}`` (the PHP SDK's habit)."""
    if not raw.strip():
        return {}
    try:
        value = msgspec.json.decode(raw)
    except msgspec.DecodeError as exc:
        raise InvalidRequest(f"body: not valid JSON ({exc})") from None
    except UnicodeDecodeError as exc:
        raise InvalidRequest(f"body: not valid UTF-8 (byte {exc.start})") from None
    except RecursionError:
        raise _too_deep() from None
    if value == []:
        return {}
    if not isinstance(value, dict):
        raise InvalidRequest("body: must be a JSON object")
    # no deeper than its opening brackets are many: most bodies need no walk
    if raw.count(b"{") + raw.count(b"[") > MAX_DEPTH and _depth_beyond(value, MAX_DEPTH):
        raise _too_deep()
    return value


def _too_deep() -> InvalidRequest:
    return InvalidRequest(f"body: arrays and objects nested more than {MAX_DEPTH} deep")


def _depth_beyond(value: object, limit: int) -> bool:
    """Whether ``value`` nests arrays and objects more than ``limit`` deep."""
    level: list[dict[str, object] | list[object]] = (
        [value] if isinstance(value, dict | list) else []
    )
    for _ in range(limit):
        level = [
            child
            for node in level
            for child in (node.values() if isinstance(node, dict) else node)
            if isinstance(child, dict | list)
        ]
        if not level:
            return False
    return True


def decode(raw: bytes, body: type[B]) -> B:
    """``raw`` as the method's body structure, or the ``InvalidRequest`` naming what is wrong."""
    return msgspec.convert(parse_body(raw), body)
