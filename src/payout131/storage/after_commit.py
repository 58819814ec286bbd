"""Work that waits for a transaction's commit: log lines and counters of what it changed.

``later(conn, fn)`` keeps ``fn`` with the transaction ``conn`` is in; ``Database.write`` and
the group commit call ``run`` once the commit succeeded, and only then is ``fn`` called. A
transaction rolled back drops what it kept, and so does a savepoint rolled back (the group
commit runs a job that failed among others again in one), so a log line or a counter never
tells of a change the database does not hold. ``track`` hooks an engine's connections.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

__all__ = ["later", "run", "track"]

_KEY = "payout131.after_commit"  # in Connection.info: what waits for the commit
_MARKS = "payout131.after_commit.marks"  # savepoints: how many waited when each began


def later(conn: Connection, fn: Callable[[], object]) -> None:
    """Call ``fn`` once the transaction of ``conn`` commits; never if it rolls back."""
    conn.info.setdefault(_KEY, []).append(fn)


def _info(conn: Connection) -> dict[Any, Any] | None:
    """The connection's info, or None once it is invalidated (asking would reconnect)."""
    return None if conn.invalidated or conn.closed else conn.info


def run(conn: Connection) -> None:
    """Call what the just-committed transaction of ``conn`` kept. Never raises: what
    committed has happened, and its caller must not take it for a failure."""
    info = _info(conn)
    if info is None:
        return
    waiting = info.pop(_KEY, None)
    info.pop(_MARKS, None)
    for fn in waiting or ():
        with contextlib.suppress(Exception):
            fn()


def _drop(conn: Connection, *_: Any) -> None:
    info = _info(conn)
    if info is not None:
        info.pop(_KEY, None)
        info.pop(_MARKS, None)


def _savepoint(conn: Connection, name: str) -> None:
    info = _info(conn)
    if info is not None:
        info.setdefault(_MARKS, []).append(len(info.get(_KEY, ())))


def _release(conn: Connection, name: str, context: Any) -> None:
    info = _info(conn)
    if info is not None and info.get(_MARKS):
        info[_MARKS].pop()


def _undo_savepoint(conn: Connection, name: str, context: Any) -> None:
    info = _info(conn)
    if info is not None and info.get(_MARKS):
        keep = info[_MARKS].pop()
        del info.get(_KEY, [])[keep:]


def track(engine: Engine) -> None:
    """Keep what ``later`` was given in step with the transactions of ``engine``."""
    event.listen(engine, "begin", _drop)
    event.listen(engine, "rollback", _drop)
    event.listen(engine, "savepoint", _savepoint)
    event.listen(engine, "release_savepoint", _release)
    event.listen(engine, "rollback_savepoint", _undo_savepoint)
