"""Hot statements written once as SQL and run straight through the driver.

The worker's batches and the webhook dispatcher run the same dozen statements many times a
second. Through SQLAlchemy Core each execution builds its statement, computes a cache key,
expands ``IN`` lists and wraps every result row, about a tenth of a millisecond of Python
before the database sees anything. Here a statement is text, kept at module level:

    TAKEN = Sql("UPDATE payouts SET lease_owner = :owner WHERE n = ANY(:numbers)")
    raw.rows(conn, TAKEN, {"owner": owner, "numbers": [3, 5, 8]})

``:name`` is a parameter (values travel as parameters: a literal in the text must hold no
colon and no run of spaces); ``= ANY(:name)`` and ``<> ALL(:name)`` take a list. The text is
rendered once per engine: PostgreSQL gets ``%(name)s`` and the list as an array; SQLite
gets ``:name`` and the list as JSON read back by ``json_each``, so the text never changes
with a list's length, and no ``FOR UPDATE`` (its write lock, taken at ``BEGIN IMMEDIATE``,
covers every row). Rows come back as ``Row`` tuples with attribute access and a
``_mapping``, like SQLAlchemy's; SQLite's integers are turned back into booleans for the
columns named in ``booleans``. The statements run in the caller's transaction.
"""

from __future__ import annotations

import json
import re
from collections import namedtuple
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import cache
from typing import Any

from sqlalchemy.engine import Connection

__all__ = ["Row", "Sql", "many", "pipeline", "rows", "run", "together"]

_PIPELINE = "payout131.raw.pipeline"  # the open pipeline, in the connection's info

_LIST = re.compile(r"(=\s*ANY|<>\s*ALL)\(:(\w+)\)")
_LOCKS = re.compile(r"\s+FOR UPDATE(\s+OF\s+\w+)?(\s+SKIP LOCKED)?")
_PARAM = re.compile(r"(?<![:\w]):(\w+)")


class Sql:
    """One statement's text, with its rendering for each engine."""

    __slots__ = ("booleans", "lists", "postgresql", "sqlite", "text")

    def __init__(self, text: str, booleans: Iterable[str] = ()) -> None:
        self.text = " ".join(text.split())
        self.booleans = frozenset(booleans)
        self.lists = frozenset(name for _, name in _LIST.findall(self.text))
        self.postgresql = _PARAM.sub(r"%(\1)s", self.text)

        def sqlite_list(match: re.Match[str]) -> str:
            negated = "NOT " if match.group(1).startswith("<>") else ""
            return f"{negated}IN (SELECT value FROM json_each(:{match.group(2)}))"  # noqa: S608

        self.sqlite = _LOCKS.sub("", _LIST.sub(sqlite_list, self.text))

    def rendered(self, postgresql: bool) -> str:
        """The text for PostgreSQL, or for SQLite."""
        return self.postgresql if postgresql else self.sqlite

    def __repr__(self) -> str:
        return f"Sql({self.text!r})"


class Row(tuple):  # type: ignore[type-arg]
    """A result row: a tuple with its columns as attributes and in ``_mapping``."""

    __slots__ = ()
    _fields: tuple[str, ...]  # the columns (given by each query's own subclass)

    @property
    def _mapping(self) -> dict[str, Any]:
        return dict(zip(self._fields, self, strict=True))

    def _asdict(self) -> dict[str, Any]:
        return self._mapping


@cache
def _row_class(names: tuple[str, ...]) -> type[Row]:
    base = namedtuple("_Columns", names)  # type: ignore[misc]
    return type("Row", (Row, base), {"__slots__": ()})


def _driver(conn: Connection) -> tuple[Any, bool]:
    return conn.connection.driver_connection, conn.dialect.name == "postgresql"


def _params(sql: Sql, params: Mapping[str, Any], postgresql: bool) -> Mapping[str, Any]:
    if postgresql or not sql.lists:
        return params
    return {k: json.dumps(list(v)) if k in sql.lists else v for k, v in params.items()}


def _rows(sql: Sql, cursor: Any, postgresql: bool) -> list[Row]:
    if cursor.description is None:
        return []
    names = tuple(d[0] for d in cursor.description)
    make = _row_class(names)
    found = cursor.fetchall()
    if sql.booleans and not postgresql:
        flags = [i for i, name in enumerate(names) if name in sql.booleans]
        found = [
            tuple(bool(v) if i in flags and v is not None else v for i, v in enumerate(values))
            for values in found
        ]
    return [tuple.__new__(make, values) for values in found]


def rows(conn: Connection, sql: Sql, params: Mapping[str, Any] | None = None) -> list[Any]:
    """Run ``sql`` in the connection's transaction; the rows it returns (none: ``[]``)."""
    found: list[Any] = together(conn, [(sql, params or {})])[0]
    return found


def together(
    conn: Connection, statements: Sequence[tuple[Sql, Mapping[str, Any]]]
) -> list[list[Any]]:
    """Run the statements in order, then read each one's rows: a list of row lists. On
    PostgreSQL they travel to the database and back once, so none may need another's rows
    (a statement still sees what the ones before it did)."""
    driver, postgresql = _driver(conn)
    if not postgresql:  # SQLite: each statement's rows are read before the next runs
        return [
            _rows(sql, _execute(driver, sql, params, False), False) for sql, params in statements
        ]
    outer = conn.info.get(_PIPELINE)
    with _pipelined(conn, driver, outer is None and len(statements) > 1):
        cursors = [_execute(driver, sql, params, True) for sql, params in statements]
    if outer is not None:  # inside ``pipeline``: what waits goes now, these rows come back
        outer.sync()
    return [_rows(sql, cursor, True) for (sql, _), cursor in zip(statements, cursors, strict=True)]


def _execute(driver: Any, sql: Sql, params: Mapping[str, Any], postgresql: bool) -> Any:
    cursor = driver.cursor()
    cursor.execute(sql.rendered(postgresql), _params(sql, params, postgresql))
    return cursor


def run(conn: Connection, sql: Sql, params: Mapping[str, Any] | None = None) -> int:
    """Run ``sql`` for its effect; the number of rows it touched (-1 inside ``pipeline``:
    not known until the pipeline ends)."""
    driver, postgresql = _driver(conn)
    cursor = _execute(driver, sql, params or {}, postgresql)
    return -1 if conn.info.get(_PIPELINE) else int(cursor.rowcount)


def many(conn: Connection, sql: Sql, params: Sequence[Mapping[str, Any]]) -> None:
    """Run ``sql`` once for each parameter set (PostgreSQL: in one pipeline)."""
    if not params:
        return
    driver, postgresql = _driver(conn)
    driver.cursor().executemany(
        sql.rendered(postgresql), [_params(sql, p, postgresql) for p in params]
    )


@contextmanager
def pipeline(conn: Connection) -> Iterator[None]:
    """Let the statements of the block travel together: on PostgreSQL a write (``run``,
    ``many``) does not wait for the database, and the writes waiting go with the next
    statement whose rows are read, or at the end of the block, in one round trip; an error
    of any of them is raised there. SQLite runs each statement at once. Only this module's
    calls may run inside (SQLAlchemy reads results as it executes)."""
    driver, postgresql = _driver(conn)
    with _pipelined(conn, driver, postgresql):
        yield


@contextmanager
def _pipelined(conn: Connection, driver: Any, postgresql: bool) -> Iterator[None]:
    if not postgresql or conn.info.get(_PIPELINE):
        yield
        return
    try:
        with driver.pipeline() as opened:
            conn.info[_PIPELINE] = opened
            yield
    finally:
        conn.info.pop(_PIPELINE, None)
