"""Webhooks from the bank: verify the signature, then read the event.

Bank 131 signs the exact body bytes with its private key and sends the Base64 signature in
``X-PARTNER-SIGN``. Verify *the bytes you received*, before parsing and before anything
else: never re-serialise the JSON. ::

    event = verify_and_parse(body, request.headers["X-PARTNER-SIGN"], bank_public_key)
    if isinstance(event, ReadyToConfirm):
        client.confirm(event.session.id, event.confirm_information)

Known event types become :class:`ReadyToConfirm`, :class:`PaymentFinished` and
:class:`PaymentRefunded`; any other type becomes a plain :class:`Event`, so a new event kind
never breaks a receiver. The whole body stays in ``event.raw``.
"""

from __future__ import annotations

from typing import Any

import msgspec

from payout131.client.config import BankKeySource, read_public_keys
from payout131.client.errors import SignatureError, WebhookError
from payout131.client.signing import verify
from payout131.client.types import ConfirmInformation, Model, Session, read

__all__ = [
    "Event",
    "PaymentFinished",
    "PaymentRefunded",
    "ReadyToConfirm",
    "verify_and_parse",
]


class Event(Model, frozen=True, kw_only=True):
    """A webhook of a type this SDK has no class for; ``raw`` holds all of it."""

    type: str
    session: Session | None = None


class ReadyToConfirm(Event, frozen=True, kw_only=True):
    """The payout passed checks and its funds are held: call ``confirm`` or ``cancel``.

    ``confirm_information`` (``/rko`` payouts) shows exactly what will be paid; pass it
    back unchanged to ``confirm``.
    """

    session: Session
    confirm_information: ConfirmInformation | None = None


class PaymentFinished(Event, frozen=True, kw_only=True):
    """The payout ended: see ``session.payouts[i].status`` (``succeeded`` or ``failed``)."""

    session: Session


class PaymentRefunded(Event, frozen=True, kw_only=True):
    """A succeeded payout came back from the recipient's bank: see the payout's ``refunds``."""

    session: Session


EVENT_TYPES: dict[str, type[Event]] = {
    "ready_to_confirm": ReadyToConfirm,
    "payment_finished": PaymentFinished,
    "payment_refunded": PaymentRefunded,
}


def verify_and_parse(body: bytes, signature: str | None, bank_public_key: BankKeySource) -> Event:
    """The event in ``body``, once ``signature`` proves the bank sent exactly these bytes.

    Raises :class:`SignatureError` when the signature is missing or wrong (the body is not
    even parsed), :class:`WebhookError` when a signed body is not a JSON event.
    ``bank_public_key`` is best passed loaded (``read_public_keys``): loading costs more than
    verifying. It may hold several keys (the bank's current and next, during a rotation):
    the webhook verifies with any of them.
    """
    keys = read_public_keys(bank_public_key)
    if not any(verify(key, body, signature) for key in keys):
        raise SignatureError("the webhook's X-PARTNER-SIGN does not verify with the bank's key")
    try:
        data: Any = msgspec.json.decode(body)
    except msgspec.DecodeError as exc:
        raise WebhookError(f"the webhook body is not JSON: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("type"), str):
        raise WebhookError("the webhook body is not an object with a string 'type'", raw=data)
    try:
        return read(data, EVENT_TYPES.get(data["type"], Event))
    except msgspec.ValidationError as exc:
        raise WebhookError(f"the {data['type']} webhook is malformed: {exc}", raw=data) from exc
