"""The migrations build exactly the schema the code queries, on both engines."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from payout131 import projects
from payout131.storage import Database, migrate
from payout131.storage.schema import metadata
from pgcluster import PgCluster


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
