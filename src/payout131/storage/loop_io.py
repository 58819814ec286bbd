"""Synchronous database code run on the event loop, its waits for PostgreSQL handed to the loop.

The store's code is plain functions of a SQLAlchemy connection. Run in a worker thread,
each statement's wait for PostgreSQL ends with that thread asking for the interpreter lock
back, which the event loop's thread holds while it serves HTTP: a read the database answers
in a fraction of a millisecond costs the caller a millisecond or more, and the thread hop
there and back costs CPU besides (docs/benchmarks.md, seventh round). ``run`` runs the same
function on the event loop's own thread, in a greenlet: when psycopg would wait on the
socket, the greenlet hands the wait to the loop (``add_reader``, through psycopg's own
``wait_async``) and the loop goes on serving until the database answers.

Nothing else changes: SQLAlchemy, its pool and ``storage/raw.py`` see an ordinary
synchronous psycopg connection, since every PostgreSQL connection of a ``Database`` is a
``LoopConnection``; in a thread, or outside ``run``, it waits the way psycopg always does.

What a caller of ``run`` must keep in mind:

- The function must not block in any other way. SQLite (whose driver cannot hand a wait to
  a loop), rails and files stay in threads; so does opening a new connection, which the
  pool does rarely.
- Bound the number of concurrent ``run`` calls that take a connection below the pool's
  size (the server's read limiter): a checkout that found the pool empty would block the
  loop until a thread gave one back.
- A cancelled caller does not stop the function midway (as with a worker thread): a
  statement abandoned half-read would leave its connection unusable.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import anyio
import psycopg
from psycopg import waiting
from sqlalchemy.util.concurrency import await_, greenlet_spawn, in_greenlet

__all__ = ["LoopConnection", "run"]

T = TypeVar("T")


class LoopConnection(psycopg.Connection[Any]):
    """A psycopg connection that waits on the event loop when ``run`` runs its caller."""

    def wait(self, gen: Any, interval: float = 0.1, timeout: float | None = None) -> Any:
        if not in_greenlet():
            return super().wait(gen, interval, timeout)
        return await_(waiting.wait_async(gen, self.pgconn.socket, interval, timeout))


async def run(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` on this event loop's thread; its waits for PostgreSQL let the loop go
    on. Runs to its end even if the caller is cancelled."""
    with anyio.CancelScope(shield=True):
        result = await greenlet_spawn(fn, *args)
    return result  # noqa: RET504 (mypy: the scope could swallow, so the return is outside)
