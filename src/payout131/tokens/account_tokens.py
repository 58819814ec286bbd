"""Account tokens: a recipient's bank account as a token partners pay to.

    token (partner, signed)  ──▶ public token: single use, 24 h, bound to the project
    widget (browser) + public token ──spend──▶ account token
    tokenize (partner, signed)                ──▶ account token
    account token ──▶ token/info (masked), payouts (``ru.token``)

An account token belongs to the project that made it: to every other project it does not
exist. The account number is kept only sealed by the vault; responses, webhooks and stored
payouts carry the token and the mask (first 5 and last 4 digits). Public tokens are in
``public_tokens``.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from payout131.directory.bik import BikDirectory
from payout131.errors import InvalidRequest, NotFound
from payout131.payouts.records import Payout
from payout131.protocol import wire
from payout131.protocol.payout_request import TokenizedAccount, check_bank_account, require_object
from payout131.protocol.requests import TokenInfoBody, TokenizeBody, given
from payout131.protocol.validation import mask_account
from payout131.storage import locks
from payout131.storage import schema as t
from payout131.tokens import public_tokens
from payout131.tokens.sealed_rows import SealedRows
from payout131.tokens.vault import Sealed, Vault, VaultError

__all__ = [
    "AccountToken",
    "account_for",
    "find",
    "info",
    "keys_in_use",
    "lock_for_sealing",
    "lookup",
    "parse_info_request",
    "parse_tokenize_request",
    "payout_account",
    "reseal",
    "tokenize",
    "tokenize_by_widget",
]

_TYPE = "bank_account_ru"


@dataclass(frozen=True, slots=True)
class AccountToken:
    token: str
    project_id: str
    bik: str
    masked_account: str
    sealed: Sealed

    @property
    def view(self) -> TokenizedAccount:
        return TokenizedAccount(self.token, self.bik, self.masked_account)


def tokenize_by_widget(
    conn: Connection, vault: Vault, directory: BikDirectory, body: Mapping[str, Any], now: int
) -> AccountToken:
    """The widget's submit: ``{"public_token", "bik", "account"}``.

    The public token is spent only when the account is tokenized, so a recipient who mistyped
    can correct the form and send it again.
    """
    public_token = body.get("public_token")
    project_id, now = public_tokens.claim(conn, public_token, now)
    bik, account = check_bank_account(body, directory)
    public_tokens.spend(conn, str(public_token), now)
    return tokenize(conn, vault, project_id, bik, account, now)


def _context(token: str, project_id: str, bik: str) -> bytes:
    """What a sealed account is bound to: it opens only in its own row."""
    return f"account_tokens\x00{token}\x00{project_id}\x00{bik}".encode()


_ROWS = SealedRows(
    t.account_tokens, "account_sealed", lambda row: _context(row.token, row.project_id, row.bik)
)


def _account_fields(body: TokenizeBody | TokenInfoBody) -> dict[str, Any]:
    """``bank_account_ru`` of a body whose ``type`` names it (a card's are ``card_tokens``'s)."""
    kind = given(body.type)
    if kind != _TYPE:
        raise InvalidRequest(f'type: must be "{_TYPE}" or "card", got {kind!r}')
    return require_object(_TYPE, given(body.bank_account_ru))


def parse_tokenize_request(body: TokenizeBody, directory: BikDirectory) -> tuple[str, str]:
    """``{"type": "bank_account_ru", "bank_account_ru": {"bik", "account"}}``."""
    return check_bank_account(_account_fields(body), directory, f"{_TYPE}.")


def lock_for_sealing(conn: Connection) -> None:
    """Take the lock every sealing transaction holds, before it seals anything.

    A vault rotation retires old keys under a lock that conflicts with this one, so nothing
    is sealed with a key that is being retired. SQLite's write lock, taken when the write
    transaction begins, does the same there (``storage/locks.py``).
    """
    locks.take(conn, locks.SEALING)


def tokenize(
    conn: Connection, vault: Vault, project_id: str, bik: str, account: str, now: int
) -> AccountToken:
    """A new token for a checked account. Every call makes a new token."""
    lock_for_sealing(conn)
    token = secrets.token_hex(32)
    sealed = vault.seal(account, _context(token, project_id, bik))
    made = AccountToken(token, project_id, bik, mask_account(account), sealed)
    conn.execute(
        sa.insert(t.account_tokens).values(
            token=token,
            project_id=project_id,
            bik=bik,
            masked_account=made.masked_account,
            account_sealed=sealed.blob,
            key_id=sealed.key_id,
            created_at=now,
        )
    )
    return made


def find(conn: Connection, project_id: str, token: str) -> AccountToken | None:
    """The project's token; another project's token is as unknown as a made-up one."""
    row = _ROWS.find(conn, project_id, token)
    if row is None:
        return None
    return AccountToken(row.token, row.project_id, row.bik, row.masked_account, _ROWS.sealed(row))


def lookup(conn: Connection, project_id: str, token: str) -> TokenizedAccount | None:
    found = find(conn, project_id, token)
    return found.view if found else None


def account_for(vault: Vault, found: AccountToken) -> str:
    """The full account number: only for ``confirm_information`` and the rail."""
    return vault.open(found.sealed, _context(found.token, found.project_id, found.bik))


def parse_info_request(body: TokenInfoBody) -> str:
    """``{"type": "bank_account_ru", "bank_account_ru": {"token"}}``: the token asked about."""
    token = _account_fields(body).get("token")
    if not isinstance(token, str) or not token:
        raise InvalidRequest(f"{_TYPE}.token: required, the token tokenize or the widget gave")
    return token.lower()


def info(conn: Connection, project_id: str, token: str, directory: BikDirectory) -> dict[str, Any]:
    found = find(conn, project_id, token)
    if found is None:
        raise NotFound(f"{_TYPE}.token: no such token")
    bank = directory.get(found.bik)
    return {
        "type": _TYPE,
        "token": found.token,
        "masked_account": found.masked_account,
        "bik": found.bik,
        "bank_name": bank.name if bank else None,
    }


def keys_in_use(conn: Connection) -> dict[str, int]:
    """How many tokens each vault key seals."""
    return _ROWS.keys_in_use(conn)


def reseal(conn: Connection, vault: Vault, limit: int = 500) -> int:
    """Seal up to ``limit`` accounts held under an older key with the current one."""
    return _ROWS.reseal(conn, vault, limit)


def payout_account(conn: Connection, vault: Vault | None, payout: Payout) -> str | None:
    """The account a stored payout pays: as given, or opened from its token by the vault;
    None for a payout to a phone (Faster Payments) or a card."""
    recipient = wire.loads_field(payout.recipient)
    if recipient.get("account_number"):
        return str(recipient["account_number"])
    if recipient.get("phone") or recipient.get("card_token"):
        return None
    found = find(conn, payout.project_id, recipient["token"])
    if found is None:
        raise VaultError(f"payout po_{payout.n}: its token is missing from account_tokens")
    if vault is None:
        raise VaultError(f"payout po_{payout.n} is to a tokenized account and no vault was given")
    return account_for(vault, found)
