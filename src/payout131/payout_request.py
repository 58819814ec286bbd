"""From a partner's JSON to a checked payout instruction, or an error naming the field.

A payout's fields may arrive at ``session/create`` and at ``session/start/payout``; they are
merged (the later call wins per top-level field) and checked here, all at once, with the
rules of ``validation`` and the BIK directory. Nothing here touches the database.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from payout131 import validation as v
from payout131.bik import BikDirectory
from payout131.errors import InvalidRequest

__all__ = ["DRAFT_FIELDS", "Destination", "PayoutRequest", "parse_payout", "require_object"]

# The payout fields a session can carry from create to start (both destination spellings).
DRAFT_FIELDS = (
    "payment_method",
    "payout_details",
    "amount_details",
    "participant_details",
    "customer",
)


@dataclass(frozen=True, slots=True)
class Destination:
    """A checked Russian bank account destination; ``echo`` is what responses show."""

    bik: str
    account: str | None
    token: str | None
    full_name: str
    description: str
    inn: str | None
    kpp: str | None
    echo: dict[str, Any]


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


def _destination_field(body: Mapping[str, Any], version: str) -> str:
    """The spelling the partner used; the version's own spelling when neither is there."""
    preferred = "payout_details" if version == "v2" else "payment_method"
    other = "payment_method" if version == "v2" else "payout_details"
    return other if other in body and preferred not in body else preferred


def _parse_destination(
    path: str, value: object, party: Mapping[str, Any], directory: BikDirectory
) -> Destination:
    method = require_object(path, value)
    if method.get("type") != "bank_account":
        raise InvalidRequest(f'{path}.type: must be "bank_account", got {method.get("type")!r}')
    bank_account = require_object(f"{path}.bank_account", method.get("bank_account"))
    system = bank_account.get("system_type")
    if system == "faster_payment_system":
        raise InvalidRequest(
            f"{path}.bank_account.system_type: Faster Payments (faster_payment_system) payouts "
            'are not supported by this server yet; use system_type "ru"'
        )
    if system != "ru":
        raise InvalidRequest(f'{path}.bank_account.system_type: must be "ru", got {system!r}')
    ru_path = f"{path}.bank_account.ru"
    ru = require_object(ru_path, bank_account.get("ru"))
    if "token" in ru:
        raise InvalidRequest(
            f"{ru_path}.token: payouts to tokenized accounts are not supported by this "
            "server yet; send bik and account"
        )
    bik = v.check_bik(f"{ru_path}.bik", ru.get("bik"))
    refusal = directory.payout_refusal(bik)
    if refusal:
        raise InvalidRequest(f"{ru_path}.bik: {refusal}")
    account = v.check_recipient_account(f"{ru_path}.account", bik, ru.get("account"))
    full_name = v.check_full_name(f"{ru_path}.full_name", ru.get("full_name"))
    description = v.check_purpose(f"{ru_path}.description", ru.get("description"))
    inn, kpp = _party_ids(ru_path, ru, party, account)
    if "is_fast" in ru and not isinstance(ru["is_fast"], bool):
        raise InvalidRequest(f"{ru_path}.is_fast: must be true or false")
    echo: dict[str, Any] = {
        "bik": bik,
        "account": account,
        "full_name": full_name,
        "description": description,
    }
    echo.update({k: ru[k] for k in ("inn", "kpp", "is_fast") if k in ru})
    return Destination(
        bik=bik,
        account=account,
        token=None,
        full_name=full_name,
        description=description,
        inn=inn,
        kpp=kpp,
        echo={"type": "bank_account", "bank_account": {"system_type": "ru", "ru": echo}},
    )


def _party_ids(
    ru_path: str, ru: Mapping[str, Any], party: Mapping[str, Any], account: str
) -> tuple[str | None, str | None]:
    """INN and KPP from ``ru`` or else ``participant_details.recipient``, by account kind."""
    recipient = party.get("recipient")
    recipient = recipient if isinstance(recipient, dict) else {}
    inn_length, kpp_required = v.party_requirements(account)
    inn_path, inn = f"{ru_path}.inn", ru.get("inn")
    if inn is None and recipient.get("inn") is not None:
        inn_path, inn = "participant_details.recipient.inn", recipient["inn"]
    kpp_path, kpp = f"{ru_path}.kpp", ru.get("kpp")
    if kpp is None and recipient.get("kpp") is not None:
        kpp_path, kpp = "participant_details.recipient.kpp", recipient["kpp"]
    if inn is None and inn_length is not None:
        raise InvalidRequest(
            f"{ru_path}.inn: required for account {account[:5]}… "
            f"(a {inn_length}-digit INN of the recipient)"
        )
    if kpp is None and kpp_required:
        raise InvalidRequest(
            f"{ru_path}.kpp: required for an organisation's account {account[:5]}…"
        )
    checked_inn = None if inn is None else v.check_inn(inn_path, inn, inn_length)
    checked_kpp = None if kpp is None else v.check_kpp(kpp_path, kpp)
    return checked_inn, checked_kpp


def _parse_amount(value: object) -> tuple[int, str]:
    details = require_object("amount_details", value)
    amount = v.check_amount("amount_details.amount", details.get("amount"))
    currency = details.get("currency")
    if not isinstance(currency, str) or currency.lower() != "rub":
        raise InvalidRequest(f'amount_details.currency: must be "rub", got {currency!r}')
    return amount, currency


def parse_payout(
    body: Mapping[str, Any], version: str, rko: bool, directory: BikDirectory
) -> PayoutRequest:
    """Check every field a payout carries; raise ``InvalidRequest`` at the first bad one."""
    dest_field = _destination_field(body, version)
    if dest_field not in body:
        raise InvalidRequest(f"{dest_field}: required (where the money goes)")
    if "amount_details" not in body:
        raise InvalidRequest('amount_details: required ({"amount": <kopecks>, "currency": "rub"})')
    amount, currency = _parse_amount(body["amount_details"])
    party = body.get("participant_details")
    if party is not None:
        require_object("participant_details", party)
    party_map: Mapping[str, Any] = party or {}
    destination = _parse_destination(dest_field, body[dest_field], party_map, directory)
    sender_account = None
    if rko:
        sender = party_map.get("sender")
        if not isinstance(sender, dict) or sender.get("account") is None:
            raise InvalidRequest(
                "participant_details.sender.account: required for /rko payouts "
                "(the settlement account to pay from)"
            )
        sender_account = _optional_str("participant_details.sender.account", sender["account"])
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
