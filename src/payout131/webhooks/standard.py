"""The opt-in ``webhook-signature`` header of the Standard Webhooks specification.

Bank 131's own signature (``X-PARTNER-SIGN``, RSA over the body) is on every webhook. A
project may also opt in (``payout131 project set ID --standard-webhooks``) to the
symmetric signature of Standard Webhooks, which off-the-shelf verifiers check:
``v1,<base64 HMAC-SHA256>`` over ``<webhook-id>.<webhook-timestamp>.<body>``, keyed with
the project's secret (``whsec_`` and base64). Those verifiers refuse a timestamp more than
a few minutes old, so for such a project ``Webhook-Timestamp`` is the time of the attempt,
not of the event; the body, ``Webhook-Id`` and ``X-PARTNER-SIGN`` stay the same on every
attempt.

The secret is kept sealed by the account vault, like an account number (``seal_secret``):
the database never holds it in the clear.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from payout131.tokens.vault import Sealed, Vault

__all__ = ["PREFIX", "new_secret", "open_secret", "seal_secret", "sign"]

PREFIX = "whsec_"
SECRET_BYTES = 32


def new_secret() -> str:
    """A fresh secret, in the ``whsec_`` spelling partners paste into their verifier."""
    return PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def sign(secret: str, webhook_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header value for one attempt."""
    key = base64.b64decode(secret.removeprefix(PREFIX))
    signed = b"%s.%d.%s" % (webhook_id.encode(), timestamp, body)
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def _context(project_id: str) -> bytes:
    """What a sealed secret is bound to: it opens only as its own project's."""
    return f"projects\x00{project_id}\x00webhook_secret".encode()


def seal_secret(vault: Vault, project_id: str, secret: str) -> Sealed:
    """The secret as it is kept: sealed by the account vault (docs/tokens.md)."""
    return vault.seal(secret, _context(project_id))


def open_secret(vault: Vault, project_id: str, sealed: Sealed) -> str:
    return vault.open(sealed, _context(project_id))
