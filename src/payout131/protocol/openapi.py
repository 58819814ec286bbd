"""The API's OpenAPI 3.1 description, built from the method table and typed wire shapes.

The shapes below are msgspec Structs that mirror what ``payout_request`` and ``wire`` accept
and render; msgspec turns them into JSON Schema 2020-12 (the dialect of OpenAPI 3.1). The
paths come from ``methods.METHODS``, so a method cannot be added without appearing here. The
document is committed as ``openapi.json`` next to this module and served at
``GET /openapi.json``; ``python -m payout131.protocol.openapi`` rewrites it, and a test
fails when the committed file is stale. Unknown fields are ignored by the server, so no
schema forbids them.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

from payout131.protocol import methods

__all__ = ["PATH", "document", "render"]

PATH = Path(__file__).with_name("openapi.json")

Kopecks = Annotated[int, Meta(gt=0, le=2**63 - 1, description="minor units (10000 = 100 RUB)")]
Currency = Annotated[str, Meta(pattern="^[Rr][Uu][Bb]$", description='"rub", any case')]
Bik = Annotated[str, Meta(pattern="^[0-9]{9}$", examples=["044525974"])]
Account = Annotated[str, Meta(pattern="^[0-9]{20}$", examples=["40817810400003869535"])]
Token = Annotated[str, Meta(pattern="^[0-9a-fA-F]{64}$")]
Stamp = Annotated[str, Meta(description="RFC 3339 UTC, six fraction digits, e.g. ...35.905869Z")]
SessionId = Annotated[str, Meta(examples=["ps_1"], description='"ps_<n>"')]


class AmountDetails(Struct):
    amount: Kopecks
    currency: Currency


class RuAccount(Struct):
    """A Russian bank account: ``bik`` and ``account``, or a ``token`` in their place."""

    full_name: Annotated[str, Meta(examples=["Иванов Иван Иванович"])]
    description: Annotated[str, Meta(max_length=210, examples=["Выплата по договору № 5015553111"])]
    bik: Bik | UnsetType = UNSET
    account: Account | UnsetType = UNSET
    token: Token | UnsetType = UNSET
    inn: Annotated[str, Meta(pattern="^[0-9]{10}([0-9]{2})?$")] | UnsetType = UNSET
    kpp: Annotated[str, Meta(pattern="^[0-9]{4}[0-9A-Z]{2}[0-9]{3}$")] | UnsetType = UNSET
    is_fast: bool | UnsetType = UNSET


class BankAccount(Struct, tag_field="system_type", tag="ru"):
    ru: RuAccount


class FpsAccount(Struct):
    """A phone at a Faster Payments member (PROTOCOL §9); the recipient's name goes in
    ``participant_details.recipient``."""

    phone: Annotated[str, Meta(pattern="^7[0-9]{10}$", examples=["79161234567"])]
    bank_id: Annotated[str, Meta(pattern="^[0-9]{12}$", examples=["100000000004"])]
    description: Annotated[str, Meta(max_length=140, examples=["Выплата по договору 15"])]


class FpsBankAccount(Struct, tag_field="system_type", tag="faster_payment_system"):
    faster_payment_system: FpsAccount


class Destination(Struct, tag_field="type", tag="bank_account"):
    """``payment_method`` (v1) / ``payout_details`` (v2): a bank account or a phone."""

    bank_account: BankAccount | FpsBankAccount


CardNumber = Annotated[
    str,
    Meta(
        pattern="^[0-9]{14,19}$",
        examples=["2200000000000004"],
        description="with a valid Luhn check digit; brand Mir, Visa, Mastercard or UnionPay",
    ),
]


class BankCardNumber(Struct):
    number: CardNumber


class BankCard(Struct, tag_field="type", tag="bank_card"):
    bank_card: BankCardNumber


class TokenizedCard(Struct, tag_field="type", tag="tokenized_card"):
    tokenized_card: TokenRef


class NumberHash(Struct):
    number_hash: Annotated[str, Meta(description="payout131: a card token (64 hex)")]


class EncryptedCard(Struct, tag_field="type", tag="encrypted_card"):
    encrypted_card: NumberHash


class CardDestination(Struct, tag_field="type", tag="card"):
    """A bank card (PROTOCOL §9); ``participant_details.recipient.full_name`` is required."""

    card: BankCard | TokenizedCard | EncryptedCard


class FpsPhone(Struct):
    phone: Annotated[str, Meta(pattern="^7[0-9]{10}$", examples=["79161234567"])]
    bank_id: Annotated[str, Meta(pattern="^[0-9]{12}$", examples=["100000000004"])]


class FpsVerificationAccount(
    Struct, tag_field="system_type", tag="faster_payment_system_verification"
):
    faster_payment_system_verification: FpsPhone


class VerificationDestination(Struct, tag_field="type", tag="bank_account"):
    bank_account: FpsVerificationAccount


class Party(Struct):
    account: Account | UnsetType = UNSET
    full_name: str | UnsetType = UNSET
    first_name: str | UnsetType = UNSET
    last_name: str | UnsetType = UNSET
    middle_name: str | UnsetType = UNSET
    inn: str | UnsetType = UNSET
    kpp: str | UnsetType = UNSET


class ParticipantDetails(Struct):
    """``sender.account`` is the settlement account a ``/rko`` payout is paid from."""

    sender: Party | UnsetType = UNSET
    recipient: Party | UnsetType = UNSET


class PayoutFields(Struct):
    """``session/create``: every field optional; each given field must be well formed."""

    metadata: Any = UNSET
    payment_method: Destination | CardDestination | UnsetType = UNSET
    payout_details: Destination | CardDestination | UnsetType = UNSET
    amount_details: AmountDetails | UnsetType = UNSET
    participant_details: ParticipantDetails | UnsetType = UNSET
    customer: Any = UNSET


class InitPayout(PayoutFields):
    """``session/init/payout``: a destination (either spelling) and ``amount_details``."""


class CustomerVerification(Struct):
    """``fps/customer_verification``: the phone and the member bank to ask who owns it."""

    metadata: Any = UNSET
    payment_method: VerificationDestination | UnsetType = UNSET
    payout_details: VerificationDestination | UnsetType = UNSET
    participant_details: ParticipantDetails | UnsetType = UNSET
    customer: Any = UNSET


class StartPayout(PayoutFields, kw_only=True):
    """``session/start/payout``: fields given at create may be left out."""

    session_id: SessionId


class SessionAction(Struct):
    """``session/confirm``, ``session/cancel``, ``session/status``."""

    session_id: SessionId
    confirm_information: dict[str, Any] | UnsetType = UNSET


class WalletBalanceRequest(Struct):
    request_datetime: Stamp | UnsetType = UNSET


class AccountBalanceRequest(Struct):
    account_number: Account


class TokenWidget(Struct):
    access: bool


class PublicTokenRequest(Struct):
    tokenize_widget: TokenWidget


class TokenizeAccount(Struct):
    bik: Bik
    account: Account


class TokenizeAccountRequest(Struct, tag_field="type", tag="bank_account_ru"):
    bank_account_ru: TokenizeAccount


class TokenizeCardRequest(Struct, tag_field="type", tag="card"):
    card: BankCardNumber


class TokenRef(Struct):
    token: Token


class TokenInfoAccountRequest(Struct, tag_field="type", tag="bank_account_ru"):
    bank_account_ru: TokenRef


class TokenInfoCardRequest(Struct, tag_field="type", tag="card"):
    card: TokenRef


# Responses.


class Problem(Struct):
    code: str
    description: str


class ErrorEnvelope(Struct):
    status: Literal["error"]
    error: Problem


class Refund(Struct):
    id: str
    status: str
    created_at: Stamp
    amount_details: AmountDetails
    finished_at: Stamp | UnsetType = UNSET


class ShownAccount(Struct, tag_field="type", tag="bank_account"):
    """A bank account (a tokenized one as its token and mask), a phone, or a verification."""

    bank_account: BankAccount | FpsBankAccount | FpsVerificationAccount


class CardView(Struct):
    brand: Literal["mir", "visa", "mastercard", "unionpay"]
    last4: Annotated[str, Meta(pattern="^[0-9]{4}$")]
    bin: Annotated[str, Meta(pattern="^[0-9]{6}$")]


class ShownCard(Struct, tag_field="type", tag="card"):
    """All that is ever shown of a card."""

    card: CardView


class TransactionInfo(Struct):
    rrn: Annotated[str, Meta(pattern="^[0-9]{12}$")]
    auth_code: Annotated[str, Meta(pattern="^[0-9]{6}$")]


class Payout(Struct):
    id: Annotated[str, Meta(pattern="^po_[0-9]+$")]
    status: Literal["in_progress", "pending", "succeeded", "failed"]
    created_at: Stamp
    paymentMetadata: dict[str, Any]  # Bank 131's spelling
    amount_details: AmountDetails | UnsetType = UNSET  # none on a customer verification
    finished_at: Stamp | UnsetType = UNSET
    payment_method: ShownAccount | ShownCard | UnsetType = UNSET
    payout_details: ShownAccount | ShownCard | UnsetType = UNSET
    transaction_info: TransactionInfo | UnsetType = UNSET  # a succeeded card payout
    participant_details: Any = UNSET
    customer: Any = UNSET
    metadata: Any = UNSET
    error: Problem | UnsetType = UNSET
    amounts: dict[str, Any] | UnsetType = UNSET
    refunds: list[Refund] | UnsetType = UNSET


class Session(Struct):
    """Lists payouts under ``payments`` (v1) or ``payout_list`` (v2)."""

    id: Annotated[str, Meta(pattern="^ps_[0-9]+$")]
    status: Literal["created", "in_progress", "accepted", "cancelled", "error"]
    created_at: Stamp
    updated_at: Stamp
    session_metadata: dict[str, Any]
    payments: list[Payout] | UnsetType = UNSET
    payout_list: list[Payout] | UnsetType = UNSET
    next_action: Literal["confirm"] | UnsetType = UNSET
    error: Problem | UnsetType = UNSET
    metadata: Any = UNSET


class SessionAnswer(Struct):
    status: Literal["ok"]
    session: Session


class Wallet(Struct):
    id: str
    amount_details: AmountDetails


class FixedFee(Struct):
    amount: Annotated[int, Meta(ge=0, le=100_000_000, description="kopecks; 0: none")]
    currency: Currency


class PayoutFee(Struct):
    """[ours] The bank's fee on each payout from this wallet: so a partner can count it."""

    percent_bps: Annotated[int, Meta(ge=0, le=10_000, description="of the amount; 100 = 1 %")]
    fixed: FixedFee


class WalletBalance(Struct):
    status: Literal["ok"]
    wallets: list[Wallet]
    payout_fee: PayoutFee | UnsetType = UNSET


class AccountBalance(Struct):
    current_balance: int
    available_balance: int | UnsetType = UNSET
    held: int | UnsetType = UNSET


class AccountBalanceAnswer(Struct):
    status: Literal["ok"]
    account_number: Account
    account_currency: Literal["RUB"]
    balance: AccountBalance


class PublicTokenAnswer(Struct):
    status: Literal["ok"]
    public_token: Annotated[str, Meta(pattern="^[0-9a-f]{64}$")]


class Tokenized(Struct):
    """An account's mask, or a card's brand, BIN and last four digits."""

    masked_account: str | UnsetType = UNSET
    brand: str | UnsetType = UNSET
    bin: str | UnsetType = UNSET
    last4: str | UnsetType = UNSET


class TokenizeAnswer(Struct):
    status: Literal["ok"]
    token: Token
    data: Tokenized


class TokenInfo(Struct):
    """An account token's mask and bank, or a card token's brand, BIN and last four."""

    type: Literal["bank_account_ru", "card"]
    token: Token
    masked_account: str | UnsetType = UNSET
    bik: Bik | UnsetType = UNSET
    bank_name: str | UnsetType | None = UNSET
    brand: str | UnsetType = UNSET
    bin: str | UnsetType = UNSET
    last4: str | UnsetType = UNSET


class TokenInfoAnswer(Struct):
    status: Literal["ok"]
    info: TokenInfo


# Which request and response shape each method has, by name.
SHAPES: dict[str, tuple[type[Struct], type[Struct]]] = {
    "session/create": (PayoutFields, SessionAnswer),
    "session/create/rko": (PayoutFields, SessionAnswer),
    "session/start/payout": (StartPayout, SessionAnswer),
    "session/start/payout/rko": (StartPayout, SessionAnswer),
    "session/init/payout": (InitPayout, SessionAnswer),
    "session/init/payout/rko": (InitPayout, SessionAnswer),
    "session/confirm": (SessionAction, SessionAnswer),
    "session/cancel": (SessionAction, SessionAnswer),
    "session/status": (SessionAction, SessionAnswer),
    "wallet/balance": (WalletBalanceRequest, WalletBalance),
    "report/account_balance": (AccountBalanceRequest, AccountBalanceAnswer),
    "token": (PublicTokenRequest, PublicTokenAnswer),
    "tokenize": (TokenizeAccountRequest, TokenizeAnswer),
    "token/info": (TokenInfoAccountRequest, TokenInfoAnswer),
    "fps/customer_verification": (CustomerVerification, SessionAnswer),
}
# The other request shapes a method takes (a body matches one of them).
ALTERNATIVES: dict[str, tuple[type[Struct], ...]] = {
    "tokenize": (TokenizeCardRequest,),
    "token/info": (TokenInfoCardRequest,),
}


class FpsBank(Struct):
    id: Annotated[str, Meta(pattern="^[0-9]{12}$", examples=["100000000004"])]
    eng_name: str
    ru_name: str


class FpsBanksAnswer(Struct):
    status: Literal["ok"]
    banks: list[FpsBank]


# The sandbox's own calls (docs/sandbox.md): their paths, request and answer shapes.
class SandboxClockRequest(Struct):
    """No fields: the clock is the calling project's."""


class SandboxAdvanceRequest(Struct):
    """One of ``by``, ``to`` or ``next``."""

    by: Annotated[str, Meta(pattern="^([0-9]{1,9}[smhd])+$", examples=["3d", "1h30m"])] | (
        UnsetType
    ) = UNSET
    to: Annotated[str, Meta(examples=["2027-01-18T08:00:00Z"])] | UnsetType = UNSET
    next: Literal[True] | UnsetType = UNSET
    wait: Annotated[bool, Meta(description="false: answer at once, advancing")] = True


class SandboxForceRequest(Struct):
    payout_id: Annotated[str, Meta(examples=["po_12"])]
    error_code: (
        Literal[
            "account_not_found",
            "operation_rejected",
            "provider_internal_error",
            "provider_timeout",
            "provider_exceeds_amount_limit",
            "card_expired",
            "card_blocked",
        ]
        | UnsetType
    ) = UNSET


class PendingStep(Struct):
    at: Stamp
    kind: Literal["payout", "webhook"]
    what: str
    session_id: SessionId
    payout_id: str | UnsetType = UNSET
    event_id: str | UnsetType = UNSET


class TestClock(Struct):
    id: Annotated[str, Meta(examples=["clk_1"])]
    name: str
    frozen_time: Stamp
    status: Literal["ready", "advancing", "failed"]
    projects: list[str]
    pending: list[PendingStep]
    advancing_to: Stamp | UnsetType = UNSET
    failure: str | UnsetType = UNSET


class SandboxClockAnswer(Struct):
    status: Literal["ok"]
    test_clock: TestClock


class Forced(Struct):
    payout_id: str
    outcome: Literal["succeed", "fail", "return"]
    error_code: str | None


class SandboxForceAnswer(Struct):
    status: Literal["ok"]
    forced: Forced


SANDBOX: dict[str, tuple[type[Struct], type[Struct], str]] = {
    "clock": (SandboxClockRequest, SandboxClockAnswer, "the project's test clock"),
    "clock/advance": (SandboxAdvanceRequest, SandboxClockAnswer, "move the clock forward"),
    "payout/succeed": (SandboxForceRequest, SandboxForceAnswer, "a payout at the rail succeeds"),
    "payout/fail": (SandboxForceRequest, SandboxForceAnswer, "a payout at the rail fails"),
    "payout/return": (SandboxForceRequest, SandboxForceAnswer, "a payout comes back"),
}

_ERRORS = {
    "400": "invalid_request, session_wrong_state, idempotency_key_already_exists, "
    "insufficient_wallet_balance",
    "401": "identification_error (project header) or authentication_error (signature)",
    "403": "authorization_error: another project's object, or a disabled project",
    "404": "invalid_request: no such session, token or account",
    "500": "internal_error: the server failed; details only in its log",
}

_HEADERS = [
    ("X-PARTNER-IDEMPOTENCY-KEY", "1 to 255 printable characters; a key seen before is refused"),
    ("X-PARTNER-SUBMERCHANT", "the payer's id, stored with the session"),
]


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json_content(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _responses(answer: type[Struct]) -> dict[str, Any]:
    responses: dict[str, Any] = {
        "200": {"description": "done", "content": _json_content(_ref(answer.__name__))}
    }
    for status, meaning in _ERRORS.items():
        responses[status] = {
            "description": meaning,
            "content": _json_content(_ref("ErrorEnvelope")),
        }
    return responses


def _operation(version: str, name: str, method: methods.Method) -> dict[str, Any]:
    request, answer = SHAPES[name]
    schema: dict[str, Any] = _ref(request.__name__)
    if name in ALTERNATIVES:
        schema = {"oneOf": [schema, *(_ref(s.__name__) for s in ALTERNATIVES[name])]}
    operation: dict[str, Any] = {
        "operationId": f"{version}_{name.replace('/', '_')}",
        "summary": f"{name} (see PROTOCOL.md §3)",
        "tags": ["bank131"],
        "requestBody": {"required": True, "content": _json_content(schema)},
        "responses": _responses(answer),
    }
    if method.mutating:
        text_schema = {"type": "string", "minLength": 1, "maxLength": 255}
        operation["parameters"] = [
            {"name": header, "in": "header", "required": False, "description": text}
            | {"schema": text_schema}
            for header, text in _HEADERS
        ]
    return operation


def document() -> dict[str, Any]:
    """The OpenAPI 3.1 document for every method in every version it exists in."""
    sandbox = [(request, answer) for request, answer, _ in SANDBOX.values()]
    shapes = sorted(
        {shape for pair in [*SHAPES.values(), *sandbox, *ALTERNATIVES.values()] for shape in pair}
        | {FpsBanksAnswer},
        key=lambda s: s.__name__,
    )
    _, components = msgspec.json.schema_components(
        [*shapes, ErrorEnvelope], ref_template="#/components/schemas/{name}"
    )
    paths: dict[str, Any] = {}
    for name, method in sorted(methods.METHODS.items()):
        for version in method.versions:
            paths[f"/api/{version}/{name}"] = {"post": _operation(version, name, method)}
    for name, (request, answer, summary) in SANDBOX.items():
        paths[f"/api/sandbox/{name}"] = {
            "post": {
                "operationId": f"sandbox_{name.replace('/', '_')}",
                "summary": f"{summary} (sandbox mode only; docs/sandbox.md)",
                "tags": ["sandbox"],
                "requestBody": {
                    "required": True,
                    "content": _json_content(_ref(request.__name__)),
                },
                "responses": _responses(answer),
            }
        }
    responses = _responses(FpsBanksAnswer)
    del responses["404"]  # nothing it names can be missing
    responses["400"] = {
        "description": "invalid_request: a body that is not JSON",
        "content": _json_content(_ref("ErrorEnvelope")),
    }
    paths["/api/v1/fps/banks"] = {
        "get": {
            "operationId": "v1_fps_banks",
            "summary": "fps/banks: the Faster Payments members (PROTOCOL §9); signed over "
            "the body sent, [] or none",
            "tags": ["bank131"],
            "responses": responses,
        }
    }
    paths["/health"] = {
        "get": {
            "operationId": "health",
            "summary": "liveness",
            "security": [],
            "responses": {"200": {"description": "serving"}},
        }
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "payout131: Bank 131's partner payout API",
            "version": "1",
            "description": "Every call is signed (a POST, but GET fps/banks): X-PARTNER-SIGN is "
            "the Base64 RSA "
            "(PKCS#1 v1.5, SHA-256) signature of the exact body bytes with the partner's key.",
        },
        "tags": [
            {"name": "bank131", "description": "Bank 131's partner payout API"},
            {
                "name": "sandbox",
                "description": "payout131's sandbox: test clocks and forced outcomes; not at "
                "Bank 131, and authorization_error in production mode",
            },
        ],
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "project": {"type": "apiKey", "in": "header", "name": "X-PARTNER-PROJECT"},
                "signature": {"type": "apiKey", "in": "header", "name": "X-PARTNER-SIGN"},
            },
        },
        "security": [{"project": [], "signature": []}],
    }


def render() -> str:
    """The document as the committed file holds it."""
    return json.dumps(document(), ensure_ascii=False, indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    PATH.write_text(render(), encoding="utf-8")
    sys.stdout.write(f"wrote {PATH}\n")
