"""The server's error tree: every failure a partner can see, with its Bank 131 code.

Each class carries a stable ``code`` (the Bank 131 error code put in the envelope) and the
HTTP status it is answered with. The description always names the field and the rule::

    ApiError                      base; never raised itself
    ├── InvalidRequest            400 invalid_request: a field breaks a rule
    │   └── NotFound              404 invalid_request: unknown session, token or account
    ├── IdentificationError       401 identification_error: missing or unknown project
    ├── AuthenticationError       401 authentication_error: missing or bad signature
    ├── AuthorizationError        403 authorization_error: not this project's object or method
    ├── SessionWrongState         400 session_wrong_state: the call does not fit the state
    ├── IdempotencyKeyExists      400 idempotency_key_already_exists
    ├── InsufficientBalance       400 insufficient_wallet_balance
    └── InternalError             500 internal_error: our fault, details only in our log
        └── StoreUnavailable      503 internal_error: the database out of reach for a moment
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "ApiError",
    "AuthenticationError",
    "AuthorizationError",
    "IdempotencyKeyExists",
    "IdentificationError",
    "InsufficientBalance",
    "InternalError",
    "InvalidRequest",
    "NotFound",
    "SessionWrongState",
    "StoreUnavailable",
]


class ApiError(Exception):
    """A failure answered with the Bank 131 error envelope."""

    code: ClassVar[str] = "internal_error"
    status: ClassVar[int] = 500

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description

    def envelope(self) -> dict[str, Any]:
        """The response body: ``{"status": "error", "error": {"code", "description"}}``."""
        return {"status": "error", "error": {"code": self.code, "description": self.description}}


class InvalidRequest(ApiError):
    code = "invalid_request"
    status = 400


class NotFound(InvalidRequest):
    status = 404


class IdentificationError(ApiError):
    code = "identification_error"
    status = 401


class AuthenticationError(ApiError):
    code = "authentication_error"
    status = 401


class AuthorizationError(ApiError):
    code = "authorization_error"
    status = 403


class SessionWrongState(ApiError):
    code = "session_wrong_state"
    status = 400


class IdempotencyKeyExists(ApiError):
    code = "idempotency_key_already_exists"
    status = 400


class InsufficientBalance(ApiError):
    code = "insufficient_wallet_balance"
    status = 400


class InternalError(ApiError):
    code = "internal_error"
    status = 500


class StoreUnavailable(InternalError):
    """[ours] The database could not be reached or lost the connection (a failover, a
    restart): 503 with the code every partner already handles, and ``Retry-After``."""

    status = 503
    headers: ClassVar[dict[str, str]] = {"Retry-After": "1"}
