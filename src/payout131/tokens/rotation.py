"""Vault key rotation: seal every tokenized account and card under a new key, then retire
the old ones.

With the key file: a new key goes first in the file (running servers re-read it and seal
new accounts with it), every account is re-sealed in batches, and once none is left under
an old key the file is rewritten with the new key alone. That last check and the rewrite
happen under a lock that tokenizing also takes, so no account can be sealed with a key
that is being retired. An interrupted rotation is finished by running it again.

With ``PAYOUT131_VAULT_KEY`` the operator puts the new key first in the variable (keeping
the old ones after it) for every process; the rotation re-seals everything under it and
says which keys are no longer used and can be removed from the variable.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.engine import Connection

from payout131 import projects
from payout131.storage import Database, locks
from payout131.tokens import account_tokens as tokens
from payout131.tokens import card_tokens
from payout131.tokens.vault import Vault, key_id, new_key, parse_keys, write_key_file
from payout131.webhooks import events

__all__ = ["Rotation", "rotate"]


@dataclass(frozen=True, slots=True)
class Rotation:
    key_id: str
    resealed: int
    retired: list[str]


def _reseal_once(conn: Connection, vault: Vault) -> int:
    """One batch of each kind of sealed value held under an older key, sealed anew."""
    done = tokens.reseal(conn, vault) + card_tokens.reseal(conn, vault)
    done += events.reseal(conn, vault)
    return done + projects.seal_webhook_secrets(conn, vault)


def _reseal_all(db: Database, vault: Vault) -> int:
    total = 0
    while True:
        with db.write() as conn:
            done = _reseal_once(conn, vault)
        total += done
        if not done:
            return total


def rotate(db: Database, vault: Vault, key: bytes | None = None) -> Rotation:
    """Rotate to ``key`` (a fresh one by default); with environment keys, to the first."""
    if vault.from_environment:
        resealed = _reseal_all(db, vault)
        unused = [k for k in vault.key_ids() if k != vault.current_key_id]
        return Rotation(vault.current_key_id, resealed, unused)
    old = parse_keys(vault.path.read_text(), str(vault.path))
    key = key or new_key()
    write_key_file(vault.path, [key, *old])
    resealed = 0
    while True:
        resealed += _reseal_all(db, vault)
        with db.write() as conn:
            locks.take(conn, locks.RETIRING)
            late = _reseal_once(conn, vault)
            resealed += late
            if not late:
                write_key_file(vault.path, [key])
                break
    retired = [key_id(k) for k in old if key_id(k) != key_id(key)]
    return Rotation(key_id(key), resealed, retired)
