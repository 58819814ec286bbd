"""What the database refused, told the same way on both engines."""

from __future__ import annotations

import re
import sqlite3

import psycopg
from sqlalchemy import exc as sa_exc

__all__ = ["REFUSED", "violated_check"]

_SQLITE_CHECK = re.compile(r"CHECK constraint failed: (\w+)")


def violated_check(error: BaseException) -> str | None:
    """The name of the CHECK constraint ``error`` reports violated, or None.

    ``error`` may come from the driver or wrapped by SQLAlchemy (its ``orig``)."""
    cause = getattr(error, "orig", None) or error
    if isinstance(cause, psycopg.errors.CheckViolation):
        return cause.diag.constraint_name
    if isinstance(cause, sqlite3.IntegrityError):
        found = _SQLITE_CHECK.search(str(cause))
        return found.group(1) if found else None
    return None


# What a refusal by the database is raised as: by the driver (``storage/sql.py`` talks to it
# directly) or through SQLAlchemy.
REFUSED: tuple[type[Exception], ...] = (sa_exc.DBAPIError, psycopg.Error, sqlite3.Error)
