"""Store code run on the event loop (``storage/loop_io.py``): while PostgreSQL works, the loop
goes on; errors and cancellation leave the connection as good as a thread would."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import anyio
import pytest
import sqlalchemy as sa

from payout131.storage import loop_io
from payout131.storage.database import Database


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url, pool_size=1)  # one connection: a spoilt one shows
    yield database
    database.dispose()


@pytest.fixture
def pg(db: Database) -> Database:
    if db.is_sqlite:
        pytest.skip("SQLite's driver cannot hand a wait to the loop; its reads stay in threads")
    return db


def _sleep(db: Database, seconds: float) -> int:
    with db.read() as conn:
        conn.execute(sa.text("SELECT pg_sleep(:s)"), {"s": seconds})
        return threading.get_ident()


def test_the_loop_runs_on_while_postgresql_answers(pg: Database) -> None:
    ticks: list[float] = []

    async def main() -> int:
        async def tick() -> None:
            while True:
                ticks.append(anyio.current_time())
                await anyio.sleep(0.01)

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(tick)
            await anyio.sleep(0.02)
            before = len(ticks)
            thread = await loop_io.run(_sleep, pg, 0.3)
            during = len(ticks) - before
            tasks.cancel_scope.cancel()
        assert during >= 10, f"the loop ticked {during} times in 0.3 s"
        return thread

    assert anyio.run(main) == threading.get_ident()  # the loop's own thread, no worker


def test_a_result_and_an_error_reach_the_caller_on_both_engines(db: Database) -> None:
    def answer() -> int:
        with db.read() as conn:
            return int(conn.execute(sa.text("SELECT 41 + 1")).scalar_one())

    def fail() -> None:
        with db.read() as conn:
            conn.execute(sa.text("SELECT * FROM no_such_table"))

    async def main() -> None:
        assert await loop_io.run(answer) == 42
        with pytest.raises(sa.exc.DBAPIError, match="no_such_table"):
            await loop_io.run(fail)
        assert await loop_io.run(answer) == 42  # the pool's one connection is fine

    anyio.run(main)


def test_a_cancelled_caller_lets_the_statement_finish_and_the_connection_stays_good(
    pg: Database,
) -> None:
    finished: list[int] = []

    def slow() -> None:
        _sleep(pg, 0.2)
        finished.append(1)

    async def main() -> float:
        with anyio.move_on_after(0.05) as scope:
            await loop_io.run(slow)
        assert scope.cancelled_caught or scope.cancel_called
        assert finished == [1]  # not abandoned midway
        started = anyio.current_time()
        await loop_io.run(_sleep, pg, 0)  # the same (only) connection answers at once
        return anyio.current_time() - started

    assert anyio.run(main) < 1.0
    with pg.read() as conn:  # and in a thread, as ever
        assert conn.execute(sa.text("SELECT 1")).scalar_one() == 1
