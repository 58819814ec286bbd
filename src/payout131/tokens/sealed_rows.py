"""A table of values sealed by the vault under tokens: account tokens and card tokens.

Each row is a token, the project it belongs to, a sealed value bound to its row (the
``context``) and the id of the key that sealed it. What they share is here: finding a
project's row by its token, counting the rows each key seals, and sealing a batch held
under an older key with the current one (a vault rotation, ``tokens/rotation.py``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from payout131.tokens.vault import Sealed, Vault

__all__ = ["SealedRows"]

_SHAPE = re.compile(r"[0-9a-f]{64}")  # what every token looks like


@dataclass(frozen=True, slots=True)
class SealedRows:
    table: sa.Table
    column: str  # the sealed value's column
    context: Callable[[Any], bytes]  # what a row's value is bound to: it opens only there

    def find(self, conn: Connection, project_id: str, token: str) -> Any | None:
        """The project's row of ``token``; another project's is as unknown as a made-up
        one."""
        token = token.lower()
        if not _SHAPE.fullmatch(token):  # reliability: never query with a NUL
            return None
        c = self.table.c
        query = sa.select(self.table).where(c.token == token, c.project_id == project_id)
        return conn.execute(query).one_or_none()

    def sealed(self, row: Any) -> Sealed:
        return Sealed(row.key_id, getattr(row, self.column))

    def keys_in_use(self, conn: Connection) -> dict[str, int]:
        """How many values each vault key seals."""
        key = self.table.c.key_id
        rows = conn.execute(sa.select(key, sa.func.count()).group_by(key))
        return {str(r[0]): int(r[1]) for r in rows}

    def reseal(self, conn: Connection, vault: Vault, limit: int = 500) -> int:
        """Seal up to ``limit`` values held under an older key with the current one."""
        c = self.table.c
        rows = conn.execute(
            sa.select(self.table)
            .where(c.key_id != vault.current_key_id)
            .limit(limit)
            .with_for_update()
        ).all()
        for row in rows:
            context = self.context(row)
            sealed = vault.seal_bytes(vault.open_bytes(self.sealed(row), context), context)
            conn.execute(
                sa.update(self.table)
                .where(c.token == row.token)
                .values({self.column: sealed.blob, "key_id": sealed.key_id})
            )
        return len(rows)
