"""Everything the SDK raises, one class per failure kind.

Every exception carries ``code`` (the Bank 131 error code, or the SDK's own code for failures
that never reached the bank), ``description``, ``http_status`` (``None`` when there was no
answer), ``idempotency_key`` (the key the call was sent with, if any) and ``raw`` (the decoded
answer, when there was one)::

    Bank131Error                   base; catch it to catch everything below
    ├── ConfigurationError         a setting is missing or unreadable; nothing was sent
    ├── ApiConnectionError         no answer after all retries (network error or timeout):
    │                              the outcome of a mutating call is UNKNOWN
    ├── UnexpectedResponseError    an answer that is not Bank 131's JSON envelope
    ├── InvalidRequestError        400 invalid_request: a field breaks a rule
    │   └── NotFoundError          404 invalid_request: unknown session or token
    ├── IdentificationError        401 identification_error: missing or unknown project
    ├── AuthenticationError        401 authentication_error: missing or bad signature
    ├── AuthorizationError         403 authorization_error: not this project's method or object
    ├── SessionWrongStateError     400 session_wrong_state: the call does not fit the state
    ├── IdempotencyConflict        400 idempotency_key_already_exists: see below
    ├── InsufficientBalanceError   400 insufficient_wallet_balance
    ├── InternalServerError        5xx internal_error (after all retries)
    └── WebhookError               a webhook body that is not a JSON event
        └── SignatureError         a webhook whose X-PARTNER-SIGN does not verify

``IdempotencyConflict`` is not a plain failure. Bank 131 answers a key it has seen before
with this error and does not repeat the operation. When it comes back on one of the SDK's own
retries (``retried`` is true), the first attempt most likely reached the bank and the
operation may well have succeeded: read its outcome with ``status(session_id)`` (or wait for
the webhook) instead of starting it again. The key is in ``idempotency_key``.
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "ApiConnectionError",
    "AuthenticationError",
    "AuthorizationError",
    "Bank131Error",
    "ConfigurationError",
    "IdempotencyConflict",
    "IdentificationError",
    "InsufficientBalanceError",
    "InternalServerError",
    "InvalidRequestError",
    "NotFoundError",
    "SessionWrongStateError",
    "SignatureError",
    "UnexpectedResponseError",
    "WebhookError",
]


class Bank131Error(Exception):
    """Base of every SDK exception; raised itself for an error code the SDK does not know."""

    default_code: ClassVar[str] = "error"

    def __init__(
        self,
        description: str,
        *,
        code: str | None = None,
        http_status: int | None = None,
        idempotency_key: str | None = None,
        raw: Any = None,
    ) -> None:
        self.code = code or self.default_code
        self.description = description
        self.http_status = http_status
        self.idempotency_key = idempotency_key
        self.raw = raw
        super().__init__(f"[{self.code}] {description}")


class ConfigurationError(Bank131Error):
    default_code = "configuration_error"


class ApiConnectionError(Bank131Error):
    default_code = "connection_error"


class UnexpectedResponseError(Bank131Error):
    default_code = "unexpected_response"


class InvalidRequestError(Bank131Error):
    default_code = "invalid_request"


class NotFoundError(InvalidRequestError):
    pass


class IdentificationError(Bank131Error):
    default_code = "identification_error"


class AuthenticationError(Bank131Error):
    default_code = "authentication_error"


class AuthorizationError(Bank131Error):
    default_code = "authorization_error"


class SessionWrongStateError(Bank131Error):
    default_code = "session_wrong_state"


class IdempotencyConflict(Bank131Error):
    """The bank has seen this idempotency key; the earlier attempt may have succeeded."""

    default_code = "idempotency_key_already_exists"

    def __init__(self, description: str, *, retried: bool = False, **kwargs: Any) -> None:
        self.retried = retried
        if retried:
            description = (
                f"{description} (the SDK retried this call with the same idempotency key, so "
                "an earlier attempt reached the bank and may have succeeded: check the outcome "
                "with status() before trying again)"
            )
        super().__init__(description, **kwargs)


class InsufficientBalanceError(Bank131Error):
    default_code = "insufficient_wallet_balance"


class InternalServerError(Bank131Error):
    default_code = "internal_error"


class WebhookError(Bank131Error):
    default_code = "webhook_error"


class SignatureError(WebhookError):
    default_code = "signature_error"


_BY_CODE: dict[str, type[Bank131Error]] = {
    cls.default_code: cls
    for cls in (
        InvalidRequestError,
        IdentificationError,
        AuthenticationError,
        AuthorizationError,
        SessionWrongStateError,
        IdempotencyConflict,
        InsufficientBalanceError,
        InternalServerError,
    )
}


def error_from_answer(
    http_status: int, body: Any, *, idempotency_key: str | None, retried: bool
) -> Bank131Error:
    """The exception for a failed answer: by the envelope's ``error.code``, else by status."""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict) or not isinstance(error.get("code"), str):
        return _error_without_envelope(http_status, body, idempotency_key)
    code: str = error["code"]
    description = str(error.get("description") or code)
    cls = _BY_CODE.get(code, Bank131Error)
    if cls is InvalidRequestError and http_status == 404:
        cls = NotFoundError
    extra: dict[str, Any] = {"retried": retried} if cls is IdempotencyConflict else {}
    return cls(
        description,
        code=code,
        http_status=http_status,
        idempotency_key=idempotency_key,
        raw=body,
        **extra,
    )


def _error_without_envelope(
    http_status: int, body: Any, idempotency_key: str | None
) -> Bank131Error:
    cls = InternalServerError if http_status >= 500 else UnexpectedResponseError
    return cls(
        f"HTTP {http_status} without a Bank 131 error envelope",
        http_status=http_status,
        idempotency_key=idempotency_key,
        raw=body,
    )
