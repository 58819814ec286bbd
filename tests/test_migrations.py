"""The migrations build exactly the schema the code queries, on both engines."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from payout131 import projects, storage
from payout131.storage import Database, migrate
from payout131.storage.schema import metadata
from pgcluster import PgCluster

MIGRATIONS = Path(storage.__file__).with_name("migrations")


def test_migrated_schema_matches_the_tables(database_url: str) -> None:
    db = Database(database_url)
    try:
        migrate(db)  # again: migrating is idempotent
        with db.engine.connect() as conn:
            context = MigrationContext.configure(
                conn, opts={"compare_type": True, "compare_server_default": False}
            )
            differences = compare_metadata(context, metadata)
        assert differences == []
    finally:
        db.dispose()


def test_system_accounts_exist(database_url: str) -> None:
    db = Database(database_url)
    try:
        with db.read() as conn:
            codes = set(
                conn.execute(
                    sa.text("SELECT code FROM ledger_accounts WHERE kind = 'system'")
                ).scalars()
            )
        assert codes == {"system:funding", "system:payouts", "system:fees"}
    finally:
        db.dispose()


@pytest.mark.parametrize("engine", ["sqlite", "postgresql"])
def test_settings_stored_out_of_bounds_are_brought_within_them(
    engine: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Migration 0011: what an earlier version let be stored is set to the bound."""
    if engine == "sqlite":
        url = f"sqlite:///{tmp_path / 'old.db'}"
    else:
        cluster: PgCluster = request.getfixturevalue("pg_cluster")
        cluster.create_database("m_0011")
        url = cluster.url("m_0011")
    migrate(url, to="0010")
    db = Database(url)
    try:
        with db.write() as conn:
            for n, (timeout, fee) in enumerate([(2 * 10**9, 10**15), (1, 0), (3600, 500)]):
                conn.execute(
                    sa.text(
                        "INSERT INTO projects (id, public_key_pem, created_at, confirm_timeout_s,"
                        " fee_fixed) VALUES (:id, 'pem', 0, :timeout, :fee)"
                    ),
                    {"id": f"p{n}", "timeout": timeout, "fee": fee},
                )
        migrate(db)
        with db.read() as conn:
            rows = conn.execute(
                sa.text("SELECT confirm_timeout_s, fee_fixed FROM projects ORDER BY id")
            ).all()
        low, high = projects.CONFIRM_TIMEOUT_S
        assert [tuple(r) for r in rows] == [
            (high, projects.FEE_FIXED_MAX),
            (low, 0),
            (3600, 500),
        ]
    finally:
        db.dispose()
        if engine == "postgresql":
            request.getfixturevalue("pg_cluster").drop_database("m_0011")


_ROWS_0013 = [
    "INSERT INTO projects (id, public_key_pem, created_at) VALUES ('p', 'pem', 0)",
    "INSERT INTO ledger_accounts (code, kind, project_id, created_at)"
    " VALUES ('wallet:p', 'wallet', 'p', 0)",
    "INSERT INTO sessions (n, project_id, api_version, rko, status, created_at, updated_at)"
    " VALUES (1, 'p', 'v1', false, 'accepted', 0, 0)",
    "INSERT INTO payouts (n, session_n, project_id, status, amount, currency, account_id,"
    " destination, recipient, created_at, updated_at)"
    " SELECT 1, 1, 'p', 'succeeded', 500, 'rub', id, '{}', '{}', 0, 0 FROM ledger_accounts"
    " WHERE code = 'wallet:p'",
    "INSERT INTO refunds (n, payout_n, amount, status, created_at)"
    " VALUES (1, 1, 500, 'accepted', 0)",
]


@pytest.mark.parametrize("engine", ["sqlite", "postgresql"])
def test_payouts_rebuilt_for_verifications_keep_their_rows_and_rules(
    engine: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Migration 0014: the payouts table takes a kind (and on SQLite is rebuilt while a
    refund refers to a payout); only a verification may have a zero amount."""
    if engine == "sqlite":
        url = f"sqlite:///{tmp_path / 'old.db'}"
    else:
        cluster: PgCluster = request.getfixturevalue("pg_cluster")
        cluster.create_database("m_0014")
        url = cluster.url("m_0014")
    migrate(url, to="0013")
    db = Database(url)
    try:
        with db.write() as conn:
            for statement in _ROWS_0013:
                conn.execute(sa.text(statement))
        migrate(db)
        with db.read() as conn:
            payout = conn.execute(sa.text("SELECT n, amount, kind FROM payouts")).one()
            assert tuple(payout) == (1, 500, "payout")
            assert conn.execute(sa.text("SELECT payout_n FROM refunds")).scalar_one() == 1
            if engine == "sqlite":  # enforcement is back on for the connections made after
                assert conn.execute(sa.text("PRAGMA foreign_keys")).scalar_one() == 1
        zero = (
            "INSERT INTO payouts (n, session_n, project_id, status, amount, fee, currency,"
            " account_id, destination, recipient, created_at, updated_at, kind)"
            " SELECT 2, 2, 'p', 'in_progress', 0, :fee, 'rub', id, '{}', '{}', 0, 0, :kind"
            " FROM ledger_accounts WHERE code = 'wallet:p'"
        )
        with db.write() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO sessions (n, project_id, api_version, rko, status, created_at,"
                    " updated_at) VALUES (2, 'p', 'v1', false, 'in_progress', 0, 0)"
                )
            )
        for refused in ({"kind": "payout", "fee": 0}, {"kind": "verification", "fee": 1}):
            with pytest.raises(sa.exc.IntegrityError), db.write() as conn:
                conn.execute(sa.text(zero), refused)
        with db.write() as conn:
            conn.execute(sa.text(zero), {"kind": "verification", "fee": 0})
    finally:
        db.dispose()
        if engine == "postgresql":
            request.getfixturevalue("pg_cluster").drop_database("m_0014")


def test_a_sqlite_migration_that_would_orphan_rows_is_undone(tmp_path: Path) -> None:
    """SQLite migrates with foreign keys off (a rebuilt table is dropped while rows refer
    to it): they are all checked before the migration commits, and a failure undoes it."""
    path = tmp_path / "old.db"
    migrate(f"sqlite:///{path}", to="0013")
    raw = sqlite3.connect(path)  # a row without its parent, as only a broken file has
    raw.execute(
        "INSERT INTO refunds (n, payout_n, amount, status, created_at)"
        " VALUES (1, 99, 1, 'accepted', 0)"
    )
    raw.commit()
    raw.close()
    with pytest.raises(RuntimeError, match="rows without their parents"):
        migrate(f"sqlite:///{path}")
    raw = sqlite3.connect(path)
    try:
        assert raw.execute("SELECT version_num FROM alembic_version").fetchone() == ("0013",)
    finally:
        raw.close()


def test_servers_started_at_once_migrate_once(request: pytest.FixtureRequest) -> None:
    """Several servers starting on one new PostgreSQL database: one migrates under an
    advisory lock, the others wait for it and find the schema done."""
    cluster: PgCluster = request.getfixturevalue("pg_cluster")
    cluster.create_database("m_race")
    url = cluster.url("m_race")
    failures: list[BaseException] = []

    def start() -> None:
        try:
            migrate(url)
        except BaseException as exc:  # noqa: BLE001 (reported below)
            failures.append(exc)

    try:
        threads = [threading.Thread(target=start) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert not any(thread.is_alive() for thread in threads), "a migration never ended"
        assert failures == []
        db = Database(url)
        try:
            with db.read() as conn:
                versions = conn.execute(sa.text("SELECT version_num FROM alembic_version"))
                head = ScriptDirectory(str(MIGRATIONS)).get_current_head()
                assert [row.version_num for row in versions] == [head]
                assert conn.execute(sa.text("SELECT count(*) FROM projects")).scalar_one() == 0
        finally:
            db.dispose()
    finally:
        cluster.drop_database("m_race")
