"""From a partner's JSON to a checked payout instruction, or an error naming the field.

A payout's fields may arrive at ``session/create`` and at ``session/start/payout``; they are
merged (the later call wins per top-level field) and checked here, all at once, with the
rules of ``validation`` and the BIK directory. Nothing here touches the database.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from payout131.directory.bik import BikDirectory
from payout131.directory.fps import FpsDirectory, Member
from payout131.errors import InvalidRequest, NotFound
from payout131.protocol import validation as v
from payout131.protocol.cards import CardView, check_card_number

__all__ = [
    "BANK_ID",
    "FPS_DESCRIPTION_MAX",
    "PHONE",
    "TOKEN",
    "VERIFICATION",
    "CardGiven",
    "CardLookup",
    "Destination",
    "PayoutRequest",
    "TokenLookup",
    "TokenizedAccount",
    "TokenizedCard",
    "card_given",
    "check_bank_account",
    "destination_field",
    "parse_payout",
    "parse_verification",
    "require_object",
]


@dataclass(frozen=True, slots=True)
class Destination:
    """A checked destination; ``echo`` is what responses show. A Russian bank account
    (``bik`` and ``account`` or ``token``), a phone at a Faster Payments member
    (``phone``, ``bank_id``; ``bik`` the member's if known, else empty), or a card
    (``card``; its ``card_token``, or the ``card_number`` a call brought, which is sealed
    under a new token before anything is written)."""

    bik: str
    account: str | None
    token: str | None
    full_name: str
    description: str
    inn: str | None
    kpp: str | None
    echo: dict[str, Any]
    phone: str | None = None  # Faster Payments (PROTOCOL §9)
    bank_id: str | None = None
    bank_name: str | None = None  # the Faster Payments member's name
    card: CardView | None = None  # a card (PROTOCOL §9): all that is shown of it
    card_token: str | None = None
    card_number: str | None = field(default=None, repr=False)
    verification: bool = False  # fps/customer_verification: who owns the phone; no money


@dataclass(frozen=True, slots=True)
class TokenizedAccount:
    """What a payout needs to know of a tokenized account: never the full number."""

    token: str
    bik: str
    masked_account: str


TokenLookup = Callable[[str], TokenizedAccount | None]
"""The calling project's tokenized account for a token, or None (the caller has the store)."""


@dataclass(frozen=True, slots=True)
class TokenizedCard:
    token: str
    view: CardView


CardLookup = Callable[[str], TokenizedCard | None]
"""The calling project's card for a card token, or None."""

TOKEN = re.compile(r"[0-9a-fA-F]{64}")  # an account or card token, either case


@dataclass(frozen=True, slots=True)
class PayoutRequest:
    destination: Destination
    destination_field: str
    amount: int
    currency: str
    sender_account: str | None
    participant_details: Any
    customer: Any
    metadata: Any
    has_metadata: bool
    warnings: list[str] = field(default_factory=list)


def require_object(path: str, value: object) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidRequest(f"{path}: must be an object, got {_kind(value)}")
    return value


def _kind(value: object) -> str:
    names = {bool: "a boolean", int: "a number", float: "a number", str: "a string"}
    if value is None:
        return "null"
    if isinstance(value, list):
        return "an array"
    return names.get(type(value), type(value).__name__)


def _optional_str(path: str, value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidRequest(f"{path}: must be a string, got {_kind(value)}")
    return value


def destination_field(body: Mapping[str, Any], version: str) -> str:
    """The spelling the partner used; the version's own spelling when neither is there."""
    preferred = "payout_details" if version == "v2" else "payment_method"
    other = "payment_method" if version == "v2" else "payout_details"
    return other if other in body and preferred not in body else preferred


def check_bank_account(
    fields: Mapping[str, Any], directory: BikDirectory, prefix: str = ""
) -> tuple[str, str]:
    """``bik`` and ``account`` checked as every payout checks them (tokenize does the same).

    ``prefix`` is the path of ``fields`` in the body with its dot, e.g. ``"….ru."``.
    """
    bik = v.check_bik(f"{prefix}bik", fields.get("bik"))
    refusal = directory.payout_refusal(bik)
    if refusal:
        raise InvalidRequest(f"{prefix}bik: {refusal}")
    account = v.check_recipient_account(f"{prefix}account", bik, fields.get("account"))
    return bik, account


def _tokenized(
    ru_path: str, ru: Mapping[str, Any], directory: BikDirectory, lookup: TokenLookup | None
) -> TokenizedAccount:
    """The account behind ``ru.token``, which stands in for both ``bik`` and ``account``."""
    if ru.get("bik") is not None or ru.get("account") is not None:
        raise InvalidRequest(
            f"{ru_path}: give either token or bik and account, not both "
            "(the token already names the bank and the account)"
        )
    token = ru["token"]
    if not isinstance(token, str) or not TOKEN.fullmatch(token):
        raise InvalidRequest(
            f"{ru_path}.token: must be a token of 64 hex digits from tokenize or the widget"
        )
    found = lookup(token.lower()) if lookup else None
    if found is None:
        raise NotFound(f"{ru_path}.token: no such token")
    refusal = directory.payout_refusal(found.bik)
    if refusal:
        raise InvalidRequest(f"{ru_path}.token: the account's bank cannot be paid: {refusal}")
    return found


PHONE = re.compile(r"7[0-9]{10}")  # a Faster Payments phone
BANK_ID = re.compile(r"[0-9]{12}")  # a Faster Payments member
FPS_DESCRIPTION_MAX = 140


def _phone_at_member(
    fps_path: str, fps: Mapping[str, Any], members: FpsDirectory | None
) -> tuple[str, str, Member]:
    """``phone`` and ``bank_id`` (a Faster Payments member's) of a payout or a verification."""
    phone = fps.get("phone")
    if not isinstance(phone, str) or not PHONE.fullmatch(phone):
        raise InvalidRequest(
            f"{fps_path}.phone: 11 digits starting with 7 (e.g. 79161234567), got {_kind(phone)}"
        )
    bank_id = fps.get("bank_id")
    if not isinstance(bank_id, str) or not BANK_ID.fullmatch(bank_id):
        raise InvalidRequest(
            f"{fps_path}.bank_id: a Faster Payments member id, 12 digits (e.g. 100000000004; "
            "GET /api/v1/fps/banks lists them)"
        )
    member = members.get(bank_id) if members is not None else None
    if member is None:
        raise InvalidRequest(
            f"{fps_path}.bank_id: {bank_id} is not a Faster Payments member (or has left: "
            "GET /api/v1/fps/banks lists the members)"
        )
    return phone, bank_id, member


def _faster_payment(
    path: str,
    bank_account: Mapping[str, Any],
    party: Mapping[str, Any],
    members: FpsDirectory | None,
) -> Destination:
    """A payout to a phone at a Faster Payments member (PROTOCOL §9)."""
    fps_path = f"{path}.faster_payment_system"
    fps = require_object(fps_path, bank_account.get("faster_payment_system"))
    phone, bank_id, member = _phone_at_member(fps_path, fps, members)
    if "description" not in fps:
        raise InvalidRequest(f"{fps_path}.description: required (the payment's purpose)")
    description = v.check_purpose(
        f"{fps_path}.description", fps["description"], max_length=FPS_DESCRIPTION_MAX
    )
    name = _recipient_name(party, "a Faster Payments payout", in_parts=True)
    echo = {"phone": phone, "bank_id": bank_id, "description": description}
    return Destination(
        bik=member.bik or "",
        account=None,
        token=None,
        full_name=name,
        description=description,
        inn=None,
        kpp=None,
        echo={
            "type": "bank_account",
            "bank_account": {
                "system_type": "faster_payment_system",
                "faster_payment_system": echo,
            },
        },
        phone=phone,
        bank_id=bank_id,
        bank_name=member.ru_name,
    )


def _recipient_name(party: Mapping[str, Any], payout: str, in_parts: bool) -> str:
    """``participant_details.recipient.full_name`` (``in_parts``: or first and last name),
    which a payout to a phone or a card requires."""
    given = party.get("recipient")
    recipient = {} if given is None else require_object("participant_details.recipient", given)
    full_name = recipient.get("full_name")
    if (
        in_parts
        and full_name is None
        and recipient.get("first_name")
        and recipient.get("last_name")
    ):
        parts = (recipient.get(k) for k in ("last_name", "first_name", "middle_name"))
        full_name = " ".join(str(p) for p in parts if p)
    if full_name is None:
        alternative = " (or first_name and last_name)" if in_parts else ""
        raise InvalidRequest(
            f"participant_details.recipient.full_name: required for {payout}{alternative}"
        )
    return v.check_full_name("participant_details.recipient.full_name", full_name)


_CARD_KINDS = {"bank_card": "number", "tokenized_card": "token", "encrypted_card": "number_hash"}


@dataclass(frozen=True, slots=True)
class CardGiven:
    """A card destination's shape, checked: its number (``bank_card``), or the card token
    that names it (``tokenized_card``, ``encrypted_card``), and where that is in the body."""

    number: str | None
    token: str | None
    path: str


def card_given(path: str, method: Mapping[str, Any]) -> CardGiven:
    """The card of a destination whose ``type`` is ``card``, every field of it checked but
    a token's existence (the store's to tell)."""
    card_path = f"{path}.card"
    card = require_object(card_path, method.get("card"))
    kind = card.get("type")
    if not isinstance(kind, str) or kind not in _CARD_KINDS:
        raise InvalidRequest(
            f"{card_path}.type: must be one of {', '.join(_CARD_KINDS)}, got {kind!r}"
        )
    key = _CARD_KINDS[kind]
    given = require_object(f"{card_path}.{kind}", card.get(kind)).get(key)
    field_path = f"{card_path}.{kind}.{key}"
    if kind == "bank_card":
        return CardGiven(check_card_number(field_path, given), None, field_path)
    if not isinstance(given, str) or not TOKEN.fullmatch(given):
        raise InvalidRequest(
            f"{field_path}: must be a card token of 64 hex digits from tokenize or the widget"
        )
    return CardGiven(None, given.lower(), field_path)


def _card(
    path: str, method: Mapping[str, Any], party: Mapping[str, Any], cards: CardLookup | None
) -> Destination:
    """A payout to a bank card (PROTOCOL §9): its number, or a card token by either name."""
    given = card_given(path, method)
    number, token = given.number, None
    if number is not None:
        view = CardView.of(number)
    else:
        assert given.token is not None
        found = cards(given.token) if cards else None
        if found is None:
            raise NotFound(f"{given.path}: no such card token")
        token, view = found.token, found.view
    name = _recipient_name(party, "a card payout", in_parts=False)
    return Destination(
        bik="",
        account=None,
        token=None,
        full_name=name,
        description="",
        inn=None,
        kpp=None,
        echo={"type": "card", "card": view.echo()},
        card=view,
        card_token=token,
        card_number=number,
    )


def _bank_account(
    path: str, method: Mapping[str, Any], types: str, systems: tuple[str, ...]
) -> tuple[dict[str, Any], str]:
    """``bank_account`` of a destination and its ``system_type``, one of ``systems``
    (``types``: the destination types the caller takes, as its refusal names them)."""
    if method.get("type") != "bank_account":
        raise InvalidRequest(f"{path}.type: must be {types}, got {method.get('type')!r}")
    bank_account = require_object(f"{path}.bank_account", method.get("bank_account"))
    system = bank_account.get("system_type")
    if not isinstance(system, str) or system not in systems:
        named = " or ".join(f'"{s}"' for s in systems)
        raise InvalidRequest(f"{path}.bank_account.system_type: must be {named}, got {system!r}")
    return bank_account, system


def _parse_destination(
    path: str,
    value: object,
    party: Mapping[str, Any],
    directory: BikDirectory,
    lookup: TokenLookup | None,
    members: FpsDirectory | None = None,
    cards: CardLookup | None = None,
) -> Destination:
    method = require_object(path, value)
    if method.get("type") == "card":
        return _card(path, method, party, cards)
    bank_account, system = _bank_account(
        path, method, '"bank_account" or "card"', ("ru", "faster_payment_system")
    )
    if system == "faster_payment_system":
        return _faster_payment(f"{path}.bank_account", bank_account, party, members)
    ru_path = f"{path}.bank_account.ru"
    ru = require_object(ru_path, bank_account.get("ru"))
    token: TokenizedAccount | None = None
    if ru.get("token") is not None:
        token = _tokenized(ru_path, ru, directory, lookup)
        bik, account, kind = token.bik, None, token.masked_account
    else:
        bik, account = check_bank_account(ru, directory, f"{ru_path}.")
        kind = account
    full_name = v.check_full_name(f"{ru_path}.full_name", ru.get("full_name"))
    description = v.check_purpose(f"{ru_path}.description", ru.get("description"))
    # The bank's own example pays a token of an organisation's account with neither: the
    # account's holder is known from its tokenization; given, they are checked all the same
    inn, kpp = _party_ids(ru_path, ru, party, kind, required=token is None)
    if "is_fast" in ru and not isinstance(ru["is_fast"], bool):
        raise InvalidRequest(f"{ru_path}.is_fast: must be true or false")
    # A tokenized account is echoed as its token and mask, never as the number.
    echo: dict[str, Any] = (
        {"token": token.token, "masked_account": token.masked_account}
        if token
        else {"bik": bik, "account": account}
    )
    echo.update({"full_name": full_name, "description": description})
    echo.update({k: ru[k] for k in ("inn", "kpp", "is_fast") if k in ru})
    return Destination(
        bik=bik,
        account=account,
        token=token.token if token else None,
        full_name=full_name,
        description=description,
        inn=inn,
        kpp=kpp,
        echo={"type": "bank_account", "bank_account": {"system_type": "ru", "ru": echo}},
    )


def _party_ids(
    ru_path: str,
    ru: Mapping[str, Any],
    party: Mapping[str, Any],
    account: str,
    required: bool = True,
) -> tuple[str | None, str | None]:
    """INN and KPP from ``ru`` or else ``participant_details.recipient``, by account kind
    (``required``: the account's kind demands them; else only checked when given).

    ``account`` may be masked (``40702***0025``): only its first five digits matter here.
    """
    recipient = party.get("recipient")
    recipient = recipient if isinstance(recipient, dict) else {}
    inn_length, kpp_required = v.party_requirements(account)
    inn_path, inn = f"{ru_path}.inn", ru.get("inn")
    if inn is None and recipient.get("inn") is not None:
        inn_path, inn = "participant_details.recipient.inn", recipient["inn"]
    kpp_path, kpp = f"{ru_path}.kpp", ru.get("kpp")
    if kpp is None and recipient.get("kpp") is not None:
        kpp_path, kpp = "participant_details.recipient.kpp", recipient["kpp"]
    if inn is None and inn_length is not None and required:
        raise InvalidRequest(
            f"{ru_path}.inn: required for account {account[:5]}… "
            f"(a {inn_length}-digit INN of the recipient)"
        )
    if kpp is None and kpp_required and required:
        raise InvalidRequest(
            f"{ru_path}.kpp: required for an organisation's account {account[:5]}…"
        )
    checked_inn = None if inn is None else v.check_inn(inn_path, inn, inn_length)
    checked_kpp = None if kpp is None else v.check_kpp(kpp_path, kpp)
    return checked_inn, checked_kpp


_NAMES = ("full_name", "first_name", "middle_name", "last_name")


def _check_party_names(party: Mapping[str, Any]) -> None:
    """The names given for the sender and the recipient follow the rule of every name
    (``check_full_name``): they are echoed in answers and webhooks as given."""
    for side in ("sender", "recipient"):
        given = party.get(side)
        if not isinstance(given, dict):
            continue
        for name in _NAMES:
            if name in given:
                v.check_full_name(f"participant_details.{side}.{name}", given[name])


def _parse_amount(value: object) -> tuple[int, str]:
    details = require_object("amount_details", value)
    amount = v.check_amount("amount_details.amount", details.get("amount"))
    currency = details.get("currency")
    if not isinstance(currency, str) or currency.lower() != "rub":
        raise InvalidRequest(f'amount_details.currency: must be "rub", got {currency!r}')
    return amount, currency


def parse_payout(
    body: Mapping[str, Any],
    version: str,
    rko: bool,
    directory: BikDirectory,
    lookup: TokenLookup | None = None,
    members: FpsDirectory | None = None,
    cards: CardLookup | None = None,
) -> PayoutRequest:
    """Check every field a payout carries; raise ``InvalidRequest`` at the first bad one.

    ``lookup`` resolves ``ru.token`` and ``cards`` a card token; without them every
    token is unknown.
    """
    dest_field = destination_field(body, version)
    if dest_field not in body:
        raise InvalidRequest(f"{dest_field}: required (where the money goes)")
    if "amount_details" not in body:
        raise InvalidRequest('amount_details: required ({"amount": <kopecks>, "currency": "rub"})')
    amount, currency = _parse_amount(body["amount_details"])
    party = body.get("participant_details")
    if party is not None:
        require_object("participant_details", party)
    party_map: Mapping[str, Any] = party or {}
    _check_party_names(party_map)
    destination = _parse_destination(
        dest_field, body[dest_field], party_map, directory, lookup, members, cards
    )
    sender = party_map.get("sender")
    sender_account = None
    if isinstance(sender, dict) and sender.get("account") is not None:
        sender_account = _optional_str("participant_details.sender.account", sender["account"])
    elif rko:
        raise InvalidRequest(
            "participant_details.sender.account: required for /rko payouts "
            "(the settlement account to pay from)"
        )
    return PayoutRequest(
        destination=destination,
        destination_field=dest_field,
        amount=amount,
        currency=currency,
        sender_account=sender_account,
        participant_details=party,
        customer=body.get("customer"),
        metadata=body.get("metadata"),
        has_metadata="metadata" in body,
        warnings=v.purpose_warnings(destination.description),
    )


VERIFICATION = "faster_payment_system_verification"


def parse_verification(
    body: Mapping[str, Any], version: str, members: FpsDirectory | None
) -> PayoutRequest:
    """``fps/customer_verification`` (PROTOCOL §9): the phone and the Faster Payments member
    to ask who owns it. A verification is a payout of nothing: amount 0, no fee, no hold."""
    dest_field = destination_field(body, version)
    if dest_field not in body:
        raise InvalidRequest(f"{dest_field}: required (the phone and the bank to ask)")
    method = require_object(dest_field, body[dest_field])
    bank_account, _ = _bank_account(dest_field, method, '"bank_account"', (VERIFICATION,))
    path = f"{dest_field}.bank_account.{VERIFICATION}"
    phone, bank_id, member = _phone_at_member(
        path, require_object(path, bank_account.get(VERIFICATION)), members
    )
    party = body.get("participant_details")
    if party is not None:
        _check_party_names(require_object("participant_details", party))
    fields = {"phone": phone, "bank_id": bank_id}
    destination = Destination(
        bik=member.bik or "",
        account=None,
        token=None,
        full_name="",
        description="",
        inn=None,
        kpp=None,
        echo={
            "type": "bank_account",
            "bank_account": {"system_type": VERIFICATION, VERIFICATION: fields},
        },
        phone=phone,
        bank_id=bank_id,
        bank_name=member.ru_name,
        verification=True,
    )
    return PayoutRequest(
        destination=destination,
        destination_field=dest_field,
        amount=0,
        currency="rub",
        sender_account=None,
        participant_details=party,
        customer=body.get("customer"),
        metadata=body.get("metadata"),
        has_metadata="metadata" in body,
    )
