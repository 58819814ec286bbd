"""One narrow handle on the store: engines, pragmas and the two kinds of transaction.

SQLite runs in WAL mode and takes the write lock up front (``BEGIN IMMEDIATE``) for every
write transaction, so two writers never deadlock on a lock upgrade. PostgreSQL writes at READ
COMMITTED and serialises money through row locks (``UPDATE ... WHERE``) and constraints;
it reads at REPEATABLE READ (one snapshot per read transaction).
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import anyio
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

from payout131.storage import after_commit, loop_io, outages
from payout131.storage.loop_io import LoopConnection
from payout131.storage.outages import read_only

__all__ = ["Database", "normalise_url"]

T = TypeVar("T")
log = logging.getLogger(__name__)


def normalise_url(url: str) -> str:
    """Accept ``postgresql://`` and ``postgres://`` and use the psycopg 3 driver for them."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _private_file(url: str) -> None:
    """Create the SQLite file readable by its owner only (0600), as the keys are, before
    SQLite creates it with the process's umask (its journal files follow its mode). A file
    of ours that an earlier version made readable by others is made private too."""
    database = sa.engine.make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    path = Path(database)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):  # made meanwhile: it is someone else's
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    for each in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        with contextlib.suppress(FileNotFoundError):
            found = each.stat()
            if found.st_mode & 0o077 and found.st_uid == os.getuid():
                each.chmod(0o600)
                log.warning("%s was readable by others: now by its owner only (0600)", each)


def _sqlite_engine(url: str) -> Engine:
    _private_file(url)
    engine = sa.create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": 30, "isolation_level": None},
        pool_size=16,  # the API's read threads, its writer, the worker and the dispatcher
        max_overflow=16,
    )

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")

    return engine


# A pooled connection unused for longer than this is pinged before it is handed out.
PING_IDLE_S = 1.0
_IDLE_SINCE = "payout131.idle_since"


def _ping_when_idle(engine: Engine) -> None:
    """Ping a PostgreSQL connection at checkout only if it sat idle in the pool.

    SQLAlchemy's ``pool_pre_ping`` pings at every checkout: a round trip before each
    transaction, most of a millisecond under load (benchmarks). A connection returned
    a moment ago is as alive as a ping would show; one that waited (through a database
    restart, say) is pinged, and a dead one is replaced before anybody uses it. A
    connection that dies in between fails its statement, and SQLAlchemy then drops every
    connection of the pool made before, as it does with pre-ping.
    """

    @event.listens_for(engine, "checkin")
    def _checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info[_IDLE_SINCE] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get(_IDLE_SINCE)
        if since is None or time.monotonic() - since < PING_IDLE_S:
            return  # new, or back a moment ago
        try:
            alive = engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:  # the pool makes a new connection
            raise sa.exc.DisconnectionError(str(exc)) from exc
        if not alive:
            raise sa.exc.DisconnectionError("the connection did not answer a ping")


def _loop_connections(engine: Engine) -> None:
    """Open every connection as a ``LoopConnection``: under ``loop_io.run`` it waits on the
    event loop, anywhere else it is psycopg's own."""

    @event.listens_for(engine, "do_connect")
    def _connect(_dialect: Any, _record: Any, cargs: Any, cparams: Any) -> Any:
        return LoopConnection.connect(*cargs, **cparams)


def _drop_when_gone(engine: Engine) -> None:
    """A connection that reached a server no longer taking writes (an old primary, now a
    replica: possible for a moment through a proxy during a failover) is dropped from the
    pool with every older one, as a broken connection is, so the next try connects anew."""

    @event.listens_for(engine, "handle_error")
    def _gone(context: Any) -> None:
        if read_only(context.original_exception):
            context.is_disconnect = True


class Database:
    """The store behind every use case: ``write()`` and ``read()`` transactions."""

    def __init__(self, url: str, *, pool_size: int = 10) -> None:
        self.url = normalise_url(url)
        if self.url.startswith("sqlite"):
            self.engine = _sqlite_engine(self.url)
        else:
            self.engine = sa.create_engine(self.url, pool_size=pool_size, max_overflow=pool_size)
            _ping_when_idle(self.engine)
            _drop_when_gone(self.engine)
            _loop_connections(self.engine)
        after_commit.track(self.engine)  # log lines and counts wait for the commit
        self.dialect: str = self.engine.dialect.name

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    @property
    def writers(self) -> int:
        """How many write transactions of one process are worth running at once: SQLite
        has one writer at a time (more would wait in its busy handler); PostgreSQL more."""
        return 1 if self.is_sqlite else 4

    async def read_async(
        self,
        fn: Callable[[Connection], T],
        limiter: anyio.CapacityLimiter,
        *,
        one_statement: bool = False,
    ) -> T:
        """``fn`` in a read transaction, from an event loop, at most ``limiter`` at once
        (``one_statement``: ``fn`` runs a single statement, see ``read``).

        On PostgreSQL it runs on the loop's own thread, its waits for the database handed
        to the loop (``loop_io``: no thread hop, no wait for the GIL when PostgreSQL
        answers); SQLite's driver cannot hand a wait to a loop, so there it runs in a worker
        thread. ``limiter`` must stay below the pool's size (see ``loop_io``)."""

        def read() -> T:
            with self.read(one_statement) as conn:
                return fn(conn)

        if self.is_sqlite:
            return await anyio.to_thread.run_sync(read, limiter=limiter)
        async with limiter:
            return await loop_io.run(read)

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A transaction that will write: committed on exit, rolled back on error."""
        with self.engine.connect() as conn:
            if self.is_sqlite:
                conn = conn.execution_options(sqlite_begin="IMMEDIATE")
            with conn.begin():
                try:
                    yield conn
                except Exception as exc:
                    outages.check(conn, exc)  # a broken connection: dropped, not rolled back
                    raise
            after_commit.run(conn)  # the log lines and counts of what it changed

    @contextmanager
    def read(self, one_statement: bool = False) -> Iterator[Connection]:
        """A read-only transaction: one snapshot for all its statements, on both engines.

        (PostgreSQL's READ COMMITTED would give each statement its own snapshot, so a
        session and its payouts read one after the other could come from either side of a
        commit; REPEATABLE READ, set on the driver's connection without a round trip, does
        not. SQLite's read transaction in WAL mode is a snapshot already.)

        With ``one_statement`` the caller promises to run a single statement, which is a
        snapshot by itself: on PostgreSQL it then runs outside a transaction, without the
        ``BEGIN`` and ``COMMIT`` round trips (docs/benchmarks.md, twelfth round)."""
        with self.engine.connect() as conn:
            if not self.is_sqlite:
                level = "AUTOCOMMIT" if one_statement else "REPEATABLE READ"
                conn = conn.execution_options(isolation_level=level)
            with conn.begin():
                try:
                    yield conn
                except Exception as exc:
                    outages.check(conn, exc)
                    raise

    def dispose(self) -> None:
        self.engine.dispose()

    def __repr__(self) -> str:  # never show credentials
        return f"Database({self.engine.url.render_as_string(hide_password=True)!r})"
