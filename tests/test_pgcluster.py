"""The private PostgreSQL server behind the `database_url` fixture."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa
from psycopg import sql

from pgcluster import PgCluster, PgClusterError, find_bindir

TEMPLATE = "pgcluster_test_template"
SCHEMA = """
CREATE TABLE account (id serial PRIMARY KEY, name text NOT NULL UNIQUE);
CREATE TABLE entry (
    id serial PRIMARY KEY,
    account_id integer NOT NULL REFERENCES account (id),
    amount bigint NOT NULL
);
"""
TABLES = {"account", "entry"}


@pytest.fixture(scope="module")
def template(pg_cluster: PgCluster) -> Iterator[str]:
    """A template holding SCHEMA and no rows, like the migrated one `database_url` clones."""
    pg_cluster.create_database(TEMPLATE)
    with pg_cluster.connect(TEMPLATE) as connection:
        connection.execute(SCHEMA)
    pg_cluster.make_template(TEMPLATE)
    yield TEMPLATE
    pg_cluster.admin_execute(
        sql.SQL("ALTER DATABASE {} WITH IS_TEMPLATE false").format(sql.Identifier(TEMPLATE))
    )
    pg_cluster.drop_database(TEMPLATE)


@pytest.fixture
def clone(pg_cluster: PgCluster, template: str) -> Iterator[str]:
    yield from _cloned(pg_cluster, template, "pgcluster_test_a")


@pytest.fixture
def other_clone(pg_cluster: PgCluster, template: str) -> Iterator[str]:
    yield from _cloned(pg_cluster, template, "pgcluster_test_b")


def _cloned(cluster: PgCluster, template: str, name: str) -> Iterator[str]:
    cluster.create_database(name, template=template)
    yield name
    cluster.drop_database(name)


def test_a_clone_has_the_template_tables_and_no_rows(pg_cluster: PgCluster, clone: str) -> None:
    assert _tables(pg_cluster, clone) == TABLES
    assert _row_counts(pg_cluster, clone) == dict.fromkeys(TABLES, 0)


def test_clones_are_isolated(pg_cluster: PgCluster, clone: str, other_clone: str) -> None:
    with pg_cluster.connect(clone) as connection:
        connection.execute("INSERT INTO account (name) VALUES ('payouts')")

    assert _row_counts(pg_cluster, clone)["account"] == 1
    assert _row_counts(pg_cluster, other_clone)["account"] == 0


def test_writes_to_a_clone_leave_the_template_alone(
    pg_cluster: PgCluster, template: str, clone: str
) -> None:
    with pg_cluster.connect(clone) as connection:
        connection.execute("INSERT INTO account (name) VALUES ('payouts')")

    later = "pgcluster_test_later"
    pg_cluster.create_database(later, template=template)
    try:
        assert _row_counts(pg_cluster, later) == dict.fromkeys(TABLES, 0)
    finally:
        pg_cluster.drop_database(later)


def test_connections_go_over_the_unix_socket(pg_cluster: PgCluster, clone: str) -> None:
    url = sa.make_url(pg_cluster.url(clone))
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            server, client = connection.execute(
                sa.text("SELECT inet_server_addr(), inet_client_addr()")
            ).one()
            listen_addresses = connection.execute(sa.text("SHOW listen_addresses")).scalar()
    finally:
        engine.dispose()

    assert url.query["host"] == str(pg_cluster.socket_dir)
    assert (server, client) == (None, None)  # NULL for both ends of a unix-socket connection
    assert listen_addresses == ""
    assert (pg_cluster.socket_dir / ".s.PGSQL.5432").is_socket()


def test_dropping_a_database_ends_its_connections(pg_cluster: PgCluster, template: str) -> None:
    name = "pgcluster_test_dropped"
    pg_cluster.create_database(name, template=template)
    with pg_cluster.connect(name) as connection:
        pg_cluster.drop_database(name)

        with pytest.raises(psycopg.OperationalError):
            connection.execute("SELECT 1")

    assert name not in _databases(pg_cluster)


def test_database_url_is_migrated(database_url: str) -> None:
    engine = sa.create_engine(database_url)
    try:
        tables = sa.inspect(engine).get_table_names()
    finally:
        engine.dispose()

    assert tables, f"migrate() created no tables in {database_url}"


def test_the_newest_installed_version_is_chosen(tmp_path: Path) -> None:
    for version in ("9.6", "15", "14"):
        _fake_server_binaries(tmp_path / version / "bin")

    assert find_bindir(path="", distribution_root=tmp_path) == tmp_path / "15" / "bin"


def test_binaries_on_path_come_first(tmp_path: Path) -> None:
    on_path = tmp_path / "custom"
    _fake_server_binaries(on_path)
    _fake_server_binaries(tmp_path / "lib" / "16" / "bin")

    assert find_bindir(path=str(on_path), distribution_root=tmp_path / "lib") == on_path


def test_missing_binaries_are_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(PgClusterError, match=r"initdb, pg_ctl, postgres\) were not found"):
        find_bindir(path="", distribution_root=tmp_path)


def _fake_server_binaries(bindir: Path) -> None:
    bindir.mkdir(parents=True)
    for program in ("initdb", "pg_ctl", "postgres"):
        (bindir / program).write_text("#!/bin/sh\n", encoding="utf-8")
        (bindir / program).chmod(0o755)


def _tables(cluster: PgCluster, dbname: str) -> set[str]:
    with cluster.connect(dbname) as connection:
        rows = connection.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchall()
    return {row[0] for row in rows}


def _row_counts(cluster: PgCluster, dbname: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    with cluster.connect(dbname) as connection:
        for table in _tables(cluster, dbname):
            query = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))
            counts[table] = connection.execute(query).fetchall()[0][0]
    return counts


def _databases(cluster: PgCluster) -> set[str]:
    with cluster.connect("postgres") as connection:
        return {row[0] for row in connection.execute("SELECT datname FROM pg_database")}
