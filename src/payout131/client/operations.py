"""The Bank 131 methods, written once for ``Client`` and ``AsyncClient``.

Each method here builds a :class:`~payout131.client._http.MethodCall` (path, body, how to read the
answer, idempotency key); ``@operation`` makes it a method that also sends the call:
``Client().status(...)`` returns a ``Session``, ``AsyncClient().status(...)`` an awaitable
of one.

Mutating methods take ``idempotency_key``; when it is ``None`` a random UUID4 is used. The
key stays the same on the SDK's own retries. Reads (``status``, ``wallet_balance``,
``account_balance``, ``token_info``) are sent without one.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar, Unpack

import msgspec

from payout131.client._http import MethodCall, operation
from payout131.client.config import Options, Settings
from payout131.client.errors import ConfigurationError
from payout131.client.params import Destination, PayoutExtras, PayoutFields, payout_fields
from payout131.client.types import (
    AccountBalance,
    Amount,
    ConfirmInformation,
    FpsBank,
    Model,
    PublicToken,
    Session,
    TokenInfo,
    Tokenized,
    WalletBalance,
    read,
)
from payout131.client.webhooks import Event, verify_and_parse

__all__ = ["Operations"]

M = TypeVar("M", bound=Model)


class Operations:
    """Settings and every Bank 131 method; subclasses add ``_send`` (sync or async)."""

    def __init__(self, transport: object, http_client: object, options: Options) -> None:
        if transport is not None and http_client is not None:
            raise ConfigurationError("pass transport= or http_client=, not both")
        self.settings = Settings.resolve(**options)

    def __repr__(self) -> str:
        s = self.settings
        return (
            f"{type(self).__name__}(base_url={s.base_url!r}, project={s.project!r}, "
            f"api_version={s.api_version!r})"
        )

    # -- sessions ------------------------------------------------------------------------

    @operation
    def create_session(
        self,
        *,
        rko: bool = False,
        idempotency_key: str | None = None,
        **fields: Unpack[PayoutFields],
    ) -> MethodCall[Session]:
        """Open a session (``session/create``, or ``session/create/rko`` with ``rko=True``)."""
        return self._session_call(
            "create", rko, payout_fields(self.settings.api_version, **fields), idempotency_key
        )

    @operation
    def start_payout(
        self,
        session_id: str,
        *,
        rko: bool = False,
        idempotency_key: str | None = None,
        **fields: Unpack[PayoutFields],
    ) -> MethodCall[Session]:
        """Start the session's payout (``session/start/payout[/rko]``).

        Fields given to ``create_session`` may be left out. ``rko=True`` pays from the
        settlement account named by ``sender=Sender(account)``.
        """
        body = {"session_id": session_id, **payout_fields(self.settings.api_version, **fields)}
        return self._session_call("start/payout", rko, body, idempotency_key)

    @operation
    def init_payout(
        self,
        *,
        destination: Destination,
        amount: Amount,
        rko: bool = False,
        idempotency_key: str | None = None,
        **fields: Unpack[PayoutExtras],
    ) -> MethodCall[Session]:
        """Create a session and start its payout in one call (``session/init/payout[/rko]``)."""
        body = payout_fields(
            self.settings.api_version, destination=destination, amount=amount, **fields
        )
        return self._session_call("init/payout", rko, body, idempotency_key)

    @operation
    def confirm(
        self,
        session_id: str,
        confirm_information: ConfirmInformation | Mapping[str, Any] | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> MethodCall[Session]:
        """Confirm a payout waiting for the partner (after ``ready_to_confirm``).

        Pass ``confirm_information`` as the webhook delivered it (the typed value or its dict).
        """
        body = _with_confirm_information(session_id, confirm_information)
        return self._session_call("confirm", False, body, idempotency_key)

    @operation
    def cancel(
        self,
        session_id: str,
        confirm_information: ConfirmInformation | Mapping[str, Any] | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> MethodCall[Session]:
        """Cancel a payout waiting for the partner; it ends ``failed``, its hold released."""
        body = _with_confirm_information(session_id, confirm_information)
        return self._session_call("cancel", False, body, idempotency_key)

    @operation
    def status(self, session_id: str) -> MethodCall[Session]:
        """The session as it is now, with ``next_action`` while the bank waits for you."""
        body = {"session_id": session_id}
        return MethodCall(self._session_path("status"), body, _member("session", Session))

    # -- balances ------------------------------------------------------------------------

    @operation
    def wallet_balance(
        self, request_datetime: datetime | str | None = None
    ) -> MethodCall[WalletBalance]:
        """The collateral wallets' balances (``wallet/balance``), as of now by default."""
        moment = request_datetime or datetime.now(UTC)
        if isinstance(moment, datetime):
            moment = _rfc3339(moment)
        return MethodCall(
            "/api/v1/wallet/balance", {"request_datetime": moment}, _whole(WalletBalance)
        )

    @operation
    def account_balance(self, account_number: str) -> MethodCall[AccountBalance]:
        """A settlement account's balance (``report/account_balance``)."""
        body = {"account_number": account_number}
        return MethodCall("/api/v1/report/account_balance", body, _whole(AccountBalance))

    # -- tokens --------------------------------------------------------------------------

    @operation
    def public_token(self, *, idempotency_key: str | None = None) -> MethodCall[PublicToken]:
        """A single-use public token for the tokenization widget (``token``)."""
        body = {"tokenize_widget": {"access": True}}
        return MethodCall("/api/v1/token", body, _whole(PublicToken), _key(idempotency_key))

    @operation
    def tokenize(
        self, bik: str, account: str, *, idempotency_key: str | None = None
    ) -> MethodCall[Tokenized]:
        """Exchange a bank account for a token usable in ``TokenizedAccount`` (``tokenize``)."""
        body = {"type": "bank_account_ru", "bank_account_ru": {"bik": bik, "account": account}}
        return MethodCall("/api/v1/tokenize", body, _whole(Tokenized), _key(idempotency_key))

    @operation
    def token_info(self, token: str) -> MethodCall[TokenInfo]:
        """The masked account, BIK and bank behind a token (``token/info``)."""
        body = {"type": "bank_account_ru", "bank_account_ru": {"token": token}}
        return MethodCall("/api/v1/token/info", body, _member("info", TokenInfo))

    @operation
    def tokenize_card(
        self, number: str, *, idempotency_key: str | None = None
    ) -> MethodCall[Tokenized]:
        """Exchange a card number for a token usable in ``TokenizedCard`` (``tokenize``)."""
        body = {"type": "card", "card": {"number": number}}
        return MethodCall("/api/v1/tokenize", body, _whole(Tokenized), _key(idempotency_key))

    @operation
    def card_token_info(self, token: str) -> MethodCall[TokenInfo]:
        """The brand, BIN and last four digits behind a card token (``token/info``)."""
        body = {"type": "card", "card": {"token": token}}
        return MethodCall("/api/v1/token/info", body, _member("info", TokenInfo))

    # -- Faster Payments ------------------------------------------------------------------

    @operation
    def fps_banks(self) -> MethodCall[list[FpsBank]]:
        """The Faster Payments (SBP) members a payout to a phone can go to (``fps/banks``, a
        GET with the body ``[]``, signed, as the bank's PHP SDK sends it)."""
        return MethodCall("/api/v1/fps/banks", [], _banks, http_method="GET")

    @operation
    def verify_customer(
        self,
        phone: str,
        bank_id: str,
        *,
        idempotency_key: str | None = None,
        **fields: Unpack[PayoutExtras],
    ) -> MethodCall[Session]:
        """Ask the bank ``bank_id`` who owns ``phone`` before paying it
        (``fps/customer_verification``). The answer is a session ``in_progress``; the owner's
        name comes in its payout's ``participant_details.recipient`` when it is known (a
        ``payment_finished`` webhook, or ``status``), or a failure if the bank has no such
        customer or will not tell."""
        version = self.settings.api_version
        body = payout_fields(version, destination=_verification(phone, bank_id), **fields)
        path = f"/api/{version}/fps/customer_verification"
        return MethodCall(path, body, _member("session", Session), _key(idempotency_key))

    # -- webhooks ------------------------------------------------------------------------

    def parse_webhook(self, body: bytes, signature: str | None) -> Event:
        """Verify a webhook with the configured ``bank_public_key`` and read its event."""
        return verify_and_parse(body, signature, self.settings.require_bank_public_keys())

    def _session_call(
        self, action: str, rko: bool, body: dict[str, Any], idempotency_key: str | None
    ) -> MethodCall[Session]:
        path = self._session_path(action + ("/rko" if rko else ""))
        return MethodCall(path, body, _member("session", Session), _key(idempotency_key))

    def _session_path(self, action: str) -> str:
        return f"/api/{self.settings.api_version}/session/{action}"


def _key(given: str | None) -> str:
    return given if given is not None else str(uuid.uuid4())


def _member(name: str, cls: type[M]) -> Callable[[dict[str, Any]], M]:
    def member(body: dict[str, Any]) -> M:
        value = read(body.get(name), cls)
        value.__dict__["_answer"] = body  # the envelope, for ``Model.answer``
        return value

    return member


def _banks(body: dict[str, Any]) -> list[FpsBank]:
    found = body.get("banks")
    if not isinstance(found, list):
        raise msgspec.ValidationError("banks: expected an array")
    banks = [read(bank, FpsBank) for bank in found]
    for bank in banks:
        bank.__dict__["_answer"] = body
    return banks


def _whole(cls: type[M]) -> Callable[[dict[str, Any]], M]:
    return lambda body: read(body, cls)


def _rfc3339(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("request_datetime must be timezone-aware")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _with_confirm_information(
    session_id: str, info: ConfirmInformation | Mapping[str, Any] | None
) -> dict[str, Any]:
    body: dict[str, Any] = {"session_id": session_id}
    if isinstance(info, ConfirmInformation):
        body["confirm_information"] = info.raw or msgspec.to_builtins(info)
    elif info is not None:
        body["confirm_information"] = dict(info)
    return body


def _verification(phone: str, bank_id: str) -> dict[str, Any]:
    kind = "faster_payment_system_verification"
    fields = {"phone": phone, "bank_id": bank_id}
    return {"type": "bank_account", "bank_account": {"system_type": kind, kind: fields}}
