"""The partner SDK: a client for Bank 131's payout API and webhook verification.

It works against Bank 131 itself and against a payout131 server alike; only ``base_url`` and
the keys change. It imports nothing from the rest of ``payout131``, so it can ship alone.

    from payout131.client import Amount, BankAccount, Client

    with Client() as bank:  # PAYOUT131_BASE_URL, _PROJECT, _PRIVATE_KEY from the environment
        session = bank.init_payout(
            destination=BankAccount("044525974", "40817810400003869535", "Иванов Иван Иванович",
                                    "Выплата по договору № 5015553111. НДС не облагается"),
            amount=Amount(10000),
        )
        print(session.id, session.status)

See ``docs/sdk.md`` for every method, type and exception.
"""

from payout131.client.aio import AsyncClient
from payout131.client.errors import (
    ApiConnectionError,
    AuthenticationError,
    AuthorizationError,
    Bank131Error,
    ConfigurationError,
    IdempotencyConflict,
    IdentificationError,
    InsufficientBalanceError,
    InternalServerError,
    InvalidRequestError,
    NotFoundError,
    SessionWrongStateError,
    SignatureError,
    UnexpectedResponseError,
    WebhookError,
)
from payout131.client.params import (
    BankAccount,
    Card,
    FasterPayment,
    Recipient,
    Sender,
    TokenizedAccount,
    TokenizedCard,
)
from payout131.client.receiver import Dedupe, MemoryDedupe, WebhookReceiver
from payout131.client.retry import Backoff
from payout131.client.sandbox import AsyncSandbox, Forced, PendingStep, Sandbox, TestClock
from payout131.client.sync import Client
from payout131.client.types import (
    AccountBalance,
    Amount,
    ConfirmInformation,
    ErrorInfo,
    FpsBank,
    Payout,
    PublicToken,
    Refund,
    Session,
    TokenInfo,
    Tokenized,
    TransactionInfo,
    WalletBalance,
)
from payout131.client.webhooks import (
    Event,
    PaymentFinished,
    PaymentRefunded,
    ReadyToConfirm,
    verify_and_parse,
)

__all__ = [
    "AccountBalance",
    "Amount",
    "ApiConnectionError",
    "AsyncClient",
    "AsyncSandbox",
    "AuthenticationError",
    "AuthorizationError",
    "Backoff",
    "Bank131Error",
    "BankAccount",
    "Card",
    "Client",
    "ConfigurationError",
    "ConfirmInformation",
    "Dedupe",
    "ErrorInfo",
    "Event",
    "FasterPayment",
    "Forced",
    "FpsBank",
    "IdempotencyConflict",
    "IdentificationError",
    "InsufficientBalanceError",
    "InternalServerError",
    "InvalidRequestError",
    "MemoryDedupe",
    "NotFoundError",
    "PaymentFinished",
    "PaymentRefunded",
    "Payout",
    "PendingStep",
    "PublicToken",
    "ReadyToConfirm",
    "Recipient",
    "Refund",
    "Sandbox",
    "Sender",
    "Session",
    "SessionWrongStateError",
    "SignatureError",
    "TestClock",
    "TokenInfo",
    "Tokenized",
    "TokenizedAccount",
    "TokenizedCard",
    "TransactionInfo",
    "UnexpectedResponseError",
    "WalletBalance",
    "WebhookError",
    "WebhookReceiver",
    "verify_and_parse",
]
