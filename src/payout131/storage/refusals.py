"""What the database refused, told the same way on both engines."""

from __future__ import annotations

import re
import sqlite3

import psycopg
from sqlalchemy import exc as sa_exc

__all__ = ["OUT_OF_RANGE", "REFUSED", "out_of_range", "violated_check"]

OUT_OF_RANGE = "a sum of money must stay a whole number of kopecks within 64 bits"
"""What SQLite says (migration 0008) where PostgreSQL says "bigint out of range"."""

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


def out_of_range(error: BaseException) -> bool:
    """Whether ``error`` is the database refusing a number beyond 64 bits: PostgreSQL's
    numeric overflow, SQLite's integer overflow (in ``SUM``) or its guard of money columns."""
    cause = getattr(error, "orig", None) or error
    if isinstance(cause, psycopg.errors.NumericValueOutOfRange):
        return True
    if isinstance(cause, sqlite3.Error):
        return OUT_OF_RANGE in str(cause) or "integer overflow" in str(cause)
    return isinstance(cause, OverflowError)  # a value the driver could not even send


# What a refusal by the database is raised as: by the driver (``storage/sql.py`` talks to it
# directly) or through SQLAlchemy.
REFUSED: tuple[type[Exception], ...] = (sa_exc.DBAPIError, psycopg.Error, sqlite3.Error)
