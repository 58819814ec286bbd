"""The store out of reach for a moment (a failover, a restart), told apart from a refusal.

During a PostgreSQL failover every connection to the old primary breaks and, for a few
seconds, no server takes writes (docs/reliability.md). That is expected, and what follows
is the same everywhere: the API answers 503 (``StoreUnavailable``) and the background loops
try again; both log one line, not a traceback.
"""

from __future__ import annotations

import logging

import psycopg
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection

__all__ = ["check", "first_line", "log_failure", "read_only", "unavailable"]


# PostgreSQL's answers that say "not here, not now" rather than "no": the connection broke
# (class 08, but for 08P01, a protocol violation: a bug of ours), the server is shutting
# down, restarting or starting (57P01-57P03), it has no connection slot left (53300, as
# every client reconnects at once after a failover), or it no longer takes writes (25006:
# an old primary, now a replica). A deadlock or a cancelled statement is not among them:
# those are about the call, not the server.
_GONE_STATES = {"57P01", "57P02", "57P03", "53300", "25006"}
_NOT_GONE = {"08P01"}


def unavailable(error: BaseException) -> bool:
    """Whether ``error`` means the store could not be reached or lost the connection, so
    that the same call may work a moment later (on the new primary): never a refusal of
    the call itself, nor a misuse of the driver. SQLite's errors are never this (its file
    does not fail over)."""
    if isinstance(error, sa_exc.TimeoutError | sa_exc.DisconnectionError):
        return True  # the pool found no connection in time / could not make one
    if isinstance(error, sa_exc.DBAPIError) and error.connection_invalidated:
        return True  # SQLAlchemy saw the connection closed or broken
    cause = getattr(error, "orig", None) or error
    if not isinstance(cause, psycopg.Error):
        return False
    state = cause.sqlstate
    if state is None:  # libpq's own: a connection attempt that failed (else see ``check``)
        pgconn = cause.pgconn
        return pgconn is not None and pgconn.status == psycopg.pq.ConnStatus.BAD
    return state in _GONE_STATES or (state.startswith("08") and state not in _NOT_GONE)


def check(conn: Connection, error: BaseException) -> None:
    """After ``error`` escaped work on ``conn``: if the connection can no longer be used
    (psycopg finds it broken or closed, a failure left it in pipeline mode with results
    unread, or it reached a server no longer taking writes), drop it from the pool and
    raise ``DisconnectionError`` from ``error``, which ``unavailable`` recognises. Call it
    before the transaction is rolled back: a connection stuck in pipeline mode cannot
    even do that, and the pool would log its failure to reset it."""
    if conn.invalidated:
        raise sa_exc.DisconnectionError(f"the connection broke: {first_line(error)}") from error
    try:
        driver = conn.connection.dbapi_connection
    except sa_exc.SQLAlchemyError:
        return
    if not isinstance(driver, psycopg.Connection):
        return  # SQLite: a file, not a connection that breaks
    stuck = driver.pgconn.pipeline_status != psycopg.pq.PipelineStatus.OFF
    if driver.broken or driver.closed or stuck or read_only(error):
        conn.invalidate(error if isinstance(error, Exception) else None)
        raise sa_exc.DisconnectionError(f"the connection broke: {first_line(error)}") from error


def read_only(error: BaseException) -> bool:
    """The connection reached a server that no longer takes writes: it must be dropped
    from the pool (it is not broken, so SQLAlchemy would keep it)."""
    cause = getattr(error, "orig", None) or error
    return isinstance(cause, psycopg.Error) and cause.sqlstate == "25006"


def first_line(error: BaseException) -> str:
    """The driver's message, first line only (PostgreSQL adds hints and context below)."""
    text = str(getattr(error, "orig", None) or error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def log_failure(log: logging.Logger, error: BaseException, message: str, *args: object) -> None:
    """Log a failure that a loop will retry: one warning while the store is out of reach,
    else the error with its traceback."""
    if unavailable(error):
        log.warning(f"{message} (the database is unavailable: %s)", *args, first_line(error))
    else:
        log.error(message, *args, exc_info=error)
