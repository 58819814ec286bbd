"""Statements written once as SQL and run straight through the driver, on both engines.

The use cases run the same few dozen statements many times a second. Through SQLAlchemy
Core each execution builds its statement, computes a cache key, expands ``IN`` lists and
wraps every result row, about a tenth of a millisecond of Python before the database sees
anything. Here a statement is text, kept at module level:

    TAKEN = Sql("UPDATE payouts SET lease_owner = :owner WHERE n = ANY(:numbers)")
    sql.rows(conn, TAKEN, {"owner": owner, "numbers": [3, 5, 8]})

``:name`` is a parameter (values travel as parameters: a literal in the text must hold no
colon and no run of spaces); ``= ANY(:name)`` and ``<> ALL(:name)`` take a list. The text is
rendered once per engine: PostgreSQL gets ``%(name)s`` and the list as an array; SQLite
gets ``:name`` and the list as JSON read back by ``json_each``, so the text never changes
with a list's length, and no ``FOR UPDATE`` (its write lock, taken at ``BEGIN IMMEDIATE``,
covers every row).

Rows come back as ``Row`` tuples with attribute access and a ``_mapping``, like
SQLAlchemy's, or as the statement's own record type (``Sql(..., make=Payout)``: a
``NamedTuple`` whose fields are the statement's columns, in order). SQLite keeps booleans
as integers; they are turned back into booleans here, and nowhere else: the columns named
in ``booleans`` and the record fields annotated ``bool``.

``insert`` writes many rows of a table as one statement on PostgreSQL (``unnest`` of one
array per column: one plan, one firing of each statement trigger) and row by row, in
process, on SQLite. The statements run in the caller's transaction.
"""

from __future__ import annotations

import json
import re
import typing
from collections import namedtuple
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import cache
from typing import Any, Generic, TypeVar, overload

import psycopg
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.engine import Connection

__all__ = [
    "Row",
    "Sql",
    "columns",
    "flush",
    "insert",
    "is_postgresql",
    "many",
    "many_returning",
    "pipeline",
    "rows",
    "run",
    "together",
]

R = TypeVar("R")
_PIPELINE = "payout131.sql.pipeline"  # the open pipeline, in the connection's info

_LIST = re.compile(r"(=\s*ANY|<>\s*ALL)\(:(\w+)\)")
_LOCKS = re.compile(r"\s+FOR UPDATE(\s+OF\s+\w+)?(\s+SKIP LOCKED)?")
_PARAM = re.compile(r"(?<![:\w]):(\w+)")


class Sql(Generic[R]):
    """One statement's text, with its rendering for each engine and its row type."""

    __slots__ = ("booleans", "lists", "make", "names", "postgresql", "sqlite", "text")

    @overload
    def __init__(self: Sql[Any], text: str, booleans: Iterable[str] = ()) -> None: ...
    @overload
    def __init__(
        self: Sql[R], text: str, booleans: Iterable[str] = (), *, make: type[R]
    ) -> None: ...
    def __init__(
        self, text: str, booleans: Iterable[str] = (), *, make: type[Any] | None = None
    ) -> None:
        self.text = " ".join(text.split())
        self.make = make
        self.names: tuple[str, ...] | None = None  # its columns, once a result has shown them
        self.booleans = frozenset(booleans) | (_boolean_fields(make) if make else frozenset())
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


def _boolean_fields(make: type[Any]) -> frozenset[str]:
    hints = typing.get_type_hints(make)
    return frozenset(name for name, hint in hints.items() if hint is bool)


def columns(record: type[Any], table: str = "", alias: str = "") -> str:
    """A record's fields as a select list: ``n, status, ...``; with ``table`` ``p`` and
    ``alias`` ``p_``, ``p.n AS p_n, p.status AS p_status, ...`` (a join's columns)."""
    fields: tuple[str, ...] = record._fields
    if not table:
        return ", ".join(fields)
    return ", ".join(f"{table}.{name} AS {alias}{name}" for name in fields)


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


_checked: set[tuple[tuple[str, ...], type[Any]]] = set()


def _maker(names: tuple[str, ...], make: type[Any] | None) -> type[Any]:
    if make is None:
        return _row_class(names)
    if (names, make) not in _checked:
        if tuple(make._fields) != names:
            raise TypeError(f"{make.__name__} has fields {make._fields}, the statement {names}")
        _checked.add((names, make))
    return make


def is_postgresql(conn: Connection) -> bool:
    return conn.dialect.name == "postgresql"


def _driver(conn: Connection) -> tuple[Any, bool]:
    return conn.connection.driver_connection, is_postgresql(conn)


def _params(sql: Sql[Any], params: Mapping[str, Any], postgresql: bool) -> Mapping[str, Any]:
    if postgresql or not sql.lists:
        return params
    return {k: json.dumps(list(v)) if k in sql.lists else v for k, v in params.items()}


def _made(sql: Sql[Any], names: tuple[str, ...], found: list[Any], postgresql: bool) -> list[Any]:
    make = _maker(names, sql.make)
    if sql.booleans and not postgresql:
        flags = [i for i, name in enumerate(names) if name in sql.booleans]
        found = [
            tuple(bool(v) if i in flags and v is not None else v for i, v in enumerate(values))
            for values in found
        ]
    return [tuple.__new__(make, values) for values in found]


def _rows(sql: Sql[Any], cursor: Any, postgresql: bool) -> list[Any]:
    if postgresql:  # psycopg makes an object per column for its description: read it once
        result = cursor.pgresult
        if result is None or not result.nfields:
            return []
        names = sql.names
        if names is None or len(names) != result.nfields:
            names = sql.names = tuple(d[0] for d in cursor.description)
    elif cursor.description is None:
        return []
    else:
        names = tuple(d[0] for d in cursor.description)
    return _made(sql, names, cursor.fetchall(), postgresql)


def rows(conn: Connection, sql: Sql[R], params: Mapping[str, Any] | None = None) -> list[R]:
    """Run ``sql`` in the connection's transaction; the rows it returns (none: ``[]``)."""
    found: list[R] = together(conn, [(sql, params or {})])[0]
    return found


def together(
    conn: Connection, statements: Sequence[tuple[Sql[Any], Mapping[str, Any]]]
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


def _execute(driver: Any, sql: Sql[Any], params: Mapping[str, Any], postgresql: bool) -> Any:
    cursor = driver.cursor()
    cursor.execute(sql.rendered(postgresql), _params(sql, params, postgresql))
    return cursor


def run(conn: Connection, sql: Sql[Any], params: Mapping[str, Any] | None = None) -> int:
    """Run ``sql`` for its effect; the number of rows it touched (-1 inside ``pipeline``:
    not known until the pipeline ends)."""
    driver, postgresql = _driver(conn)
    cursor = _execute(driver, sql, params or {}, postgresql)
    return -1 if conn.info.get(_PIPELINE) else int(cursor.rowcount)


def many(conn: Connection, sql: Sql[Any], params: Sequence[Mapping[str, Any]]) -> None:
    """Run ``sql`` once for each parameter set (PostgreSQL: in one pipeline)."""
    if not params:
        return
    driver, postgresql = _driver(conn)
    driver.cursor().executemany(
        sql.rendered(postgresql), [_params(sql, p, postgresql) for p in params]
    )


def many_returning(conn: Connection, sql: Sql[R], params: Sequence[Mapping[str, Any]]) -> list[R]:
    """``many``, with the rows each run returns, in the order given (one trip)."""
    if not params:
        return []
    driver, postgresql = _driver(conn)
    text = sql.rendered(postgresql)
    cursor = driver.cursor()
    found: list[Any] = []
    try:
        if postgresql:
            outer = conn.info.get(_PIPELINE)
            cursor.executemany(text, [_params(sql, p, True) for p in params], returning=True)
            if outer is not None:
                outer.sync()
            while True:
                found.extend(cursor.fetchall())
                if not cursor.nextset():
                    break
        else:
            for p in params:
                found.extend(cursor.execute(text, _params(sql, p, False)).fetchall())
        names = tuple(d[0] for d in cursor.description)
    finally:
        cursor.close()
    return _made(sql, names, found, postgresql)


@cache
def _insert(table: sa.Table, names: tuple[str, ...], postgresql: bool) -> str:
    listed = ", ".join(names)
    if not postgresql:
        marks = ", ".join(f":{name}" for name in names)
        return f"INSERT INTO {table.name} ({listed}) VALUES ({marks})"  # noqa: S608
    dialect = pg.dialect()  # type: ignore[no-untyped-call]  # SQLAlchemy's, untyped
    arrays = ", ".join(
        f"CAST(%({name})s AS {table.c[name].type.compile(dialect=dialect)}[])" for name in names
    )
    return f"INSERT INTO {table.name} ({listed}) SELECT * FROM unnest({arrays})"  # noqa: S608


def insert(conn: Connection, table: sa.Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert ``rows`` (each with the same keys) into ``table``: on PostgreSQL one statement
    whatever their number, so each statement trigger fires once for all of them."""
    if not rows:
        return
    names = tuple(rows[0])
    driver, postgresql = _driver(conn)
    text = _insert(table, names, postgresql)
    if postgresql:
        driver.cursor().execute(text, {name: [row[name] for row in rows] for name in names})
    else:
        driver.cursor().executemany(text, rows)


def flush(conn: Connection) -> None:
    """Inside ``pipeline``: send what waits now, so that its error is raised here."""
    outer = conn.info.get(_PIPELINE)
    if outer is not None:
        outer.sync()


@contextmanager
def pipeline(conn: Connection) -> Iterator[None]:
    """Let the statements of the block travel together: on PostgreSQL a write (``run``,
    ``many``, ``insert``) does not wait for the database, and the writes waiting go with the
    next statement whose rows are read, or at the end of the block, in one round trip; an
    error of any of them is raised there. SQLite runs each statement at once. Only this
    module's calls may run inside (SQLAlchemy reads results as it executes)."""
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
    except BaseException:
        if driver.pgconn.pipeline_status != psycopg.pq.PipelineStatus.OFF:
            # left in pipeline mode with results unread (its connection failed
            # mid-pipeline, a failover): not even a ROLLBACK can be sent on it. Closed,
            # SQLAlchemy takes it for the broken connection it is and drops it, where it
            # would otherwise try to reset it and log the failure with a traceback
            driver.close()
        raise
    finally:
        conn.info.pop(_PIPELINE, None)
