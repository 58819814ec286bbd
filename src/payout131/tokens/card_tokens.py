"""Card tokens: a card number kept sealed by the vault, named by a token (PROTOCOL §9).

    tokenize {"type": "card"} (partner, signed)  ──▶ card token
    widget (card form) + public token ──spend──▶ card token
    a payout to ``bank_card.number``            ──▶ card token (made as the payout opens)
    card token ──▶ token/info, payouts (``tokenized_card.token``,
                   ``encrypted_card.number_hash``)

Every card number a call brings is sealed here before anything else is written, so the
database holds no card number in clear: payouts, session drafts and webhooks name the
token and show the brand, BIN and last four digits. A card token belongs to the project
that made it; to every other project it does not exist. The number is opened only to be
handed to the rail.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from payout131.errors import InvalidRequest, NotFound
from payout131.payouts.records import Payout
from payout131.protocol import wire
from payout131.protocol.cards import CardView, check_card_number
from payout131.protocol.payout_request import TokenizedCard, require_object
from payout131.protocol.requests import TokenInfoBody, TokenizeBody, given
from payout131.storage import locks
from payout131.storage import schema as t
from payout131.tokens import public_tokens
from payout131.tokens.sealed_rows import SealedRows
from payout131.tokens.vault import Sealed, Vault, VaultError

__all__ = [
    "CardToken",
    "find",
    "info",
    "keys_in_use",
    "lookup",
    "number_for",
    "parse_info_request",
    "parse_tokenize_request",
    "payout_card",
    "reseal",
    "sealed_destination",
    "tokenize",
    "tokenize_by_widget",
]


@dataclass(frozen=True, slots=True)
class CardToken:
    token: str
    project_id: str
    view: CardView
    sealed: Sealed


def _context(token: str, project_id: str) -> bytes:
    """What a sealed number is bound to: it opens only in its own row."""
    return f"card_tokens\x00{token}\x00{project_id}".encode()


_ROWS = SealedRows(t.card_tokens, "number_sealed", lambda row: _context(row.token, row.project_id))


def tokenize(conn: Connection, vault: Vault, project_id: str, number: str, now: int) -> CardToken:
    """A new token for a checked card number (``cards.check_card_number``)."""
    locks.take(conn, locks.SEALING)  # a vault rotation waits for sealers (storage/locks.py)
    token = secrets.token_hex(32)
    sealed = vault.seal(number, _context(token, project_id))
    view = CardView.of(number)
    conn.execute(
        sa.insert(t.card_tokens).values(
            token=token,
            project_id=project_id,
            brand=view.brand,
            bin=view.bin,
            last4=view.last4,
            number_sealed=sealed.blob,
            key_id=sealed.key_id,
            created_at=now,
        )
    )
    return CardToken(token, project_id, view, sealed)


def find(conn: Connection, project_id: str, token: str) -> CardToken | None:
    """The project's card token; another project's is as unknown as a made-up one."""
    row = _ROWS.find(conn, project_id, token)
    if row is None:
        return None
    view = CardView(row.brand, row.bin, row.last4)
    return CardToken(row.token, row.project_id, view, _ROWS.sealed(row))


def number_for(vault: Vault, found: CardToken) -> str:
    """The card number, for the rail alone."""
    return vault.open(found.sealed, _context(found.token, found.project_id))


def info(conn: Connection, project_id: str, token: str, field: str) -> dict[str, Any]:
    found = find(conn, project_id, token)
    if found is None:
        raise NotFound(f"{field}: no such token")
    return {"type": "card", "token": found.token, **found.view.echo()}


def keys_in_use(conn: Connection) -> dict[str, int]:
    return _ROWS.keys_in_use(conn)


def reseal(conn: Connection, vault: Vault, limit: int = 500) -> int:
    """Seal up to ``limit`` card numbers held under an older key with the current one."""
    return _ROWS.reseal(conn, vault, limit)


def lookup(conn: Connection, project_id: str, token: str) -> TokenizedCard | None:
    found = find(conn, project_id, token)
    return TokenizedCard(found.token, found.view) if found else None


def sealed_destination(token: str) -> dict[str, Any]:
    """The destination a call's card number is replaced by wherever the call is kept (a
    session's draft): the token it was sealed under."""
    return {"type": "card", "card": {"type": "tokenized_card", "tokenized_card": {"token": token}}}


def payout_card(conn: Connection, vault: Vault, payout: Payout) -> str | None:
    """The card number a stored payout pays, opened by the vault (for the rail); None for
    a payout that is not to a card."""
    token = wire.loads_field(payout.recipient).get("card_token")
    if token is None:
        return None
    found = find(conn, payout.project_id, token)
    if found is None:
        raise VaultError(f"payout po_{payout.n}: its card token is missing from card_tokens")
    return number_for(vault, found)


def _card_fields(body: TokenizeBody | TokenInfoBody) -> dict[str, Any]:
    return require_object("card", given(body.card))


def parse_tokenize_request(body: TokenizeBody) -> str:
    """``{"type": "card", "card": {"number"}}``: the card number, checked."""
    return check_card_number("card.number", _card_fields(body).get("number"))


def parse_info_request(body: TokenInfoBody) -> str:
    """``{"type": "card", "card": {"token"}}``: the card token asked about."""
    token = _card_fields(body).get("token")
    if not isinstance(token, str) or not token:
        raise InvalidRequest("card.token: required, the card token tokenize or the widget gave")
    return token


def tokenize_by_widget(
    conn: Connection, vault: Vault, body: Mapping[str, Any], now: int
) -> CardToken:
    """The widget's card form: ``{"public_token", "card_number"}``. The public token is
    spent only when the card is tokenized, so a mistyped number can be corrected."""
    public_token = body.get("public_token")
    project_id, now = public_tokens.claim(conn, public_token, now)
    number = check_card_number("card_number", body.get("card_number"))
    public_tokens.spend(conn, str(public_token), now)
    return tokenize(conn, vault, project_id, number, now)
