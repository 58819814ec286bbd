"""Fixtures shared by the whole suite.

`database_url` runs a test once per engine, each time against a fresh database migrated to
the current schema:

- `sqlite`: a new file in the test's `tmp_path`, migrated by `payout131.storage.migrate`;
- `postgresql`: a copy of a template database that was migrated once per run, made with
  `CREATE DATABASE ... TEMPLATE` (milliseconds) in a private server (`pgcluster.PgCluster`)
  that the first PostgreSQL test starts and the end of the run removes.

Without PostgreSQL server binaries the PostgreSQL tests fail rather than skip: the suite
exists to prove both engines.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from browsers import browser, chromium  # noqa: F401 (fixtures: the browser tests')
from pgcluster import PgCluster, PgClusterError

ENGINES = ["sqlite", "postgresql"]
TEMPLATE_DATABASE = "payout131_template"

_database_numbers = itertools.count(1)


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    """The run's private PostgreSQL server, started on first use."""
    try:
        with PgCluster() as cluster:
            yield cluster
    except PgClusterError as error:
        message = f"PostgreSQL is needed for the postgresql tests: {error}"
        raise pytest.fail.Exception(message, pytrace=False) from None


@pytest.fixture(scope="session")
def pg_template(pg_cluster: PgCluster) -> str:
    """The name of a database migrated to the current schema, for tests to clone."""
    from payout131.storage import migrate  # here, so that collection never needs storage

    pg_cluster.create_database(TEMPLATE_DATABASE)
    migrate(pg_cluster.url(TEMPLATE_DATABASE))
    pg_cluster.make_template(TEMPLATE_DATABASE)
    return TEMPLATE_DATABASE


@pytest.fixture(params=ENGINES, ids=ENGINES)
def database_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A SQLAlchemy URL of a fresh, migrated database; the test runs once per engine."""
    if request.param == "sqlite":
        yield _sqlite_database(request.getfixturevalue("tmp_path"))
        return
    cluster: PgCluster = request.getfixturevalue("pg_cluster")
    template: str = request.getfixturevalue("pg_template")
    name = f"t_{next(_database_numbers)}"
    cluster.create_database(name, template=template)
    yield cluster.url(name)
    cluster.drop_database(name)


def _sqlite_database(directory: Path) -> str:
    from payout131.storage import migrate

    url = f"sqlite:///{directory / 'payout131.db'}"
    migrate(url)
    return url


pytest_plugins = ["banking"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked ``slow`` first. ``--dist worksteal`` (scripts/test) gives each worker a
    run of the list and lets an idle one take tests from another's: the slow ones start
    at once, on the first worker, and the rest is shared out around them, instead of one
    of them starting last and finishing alone."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)  # a stable sort
