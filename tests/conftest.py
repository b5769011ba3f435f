"""Shared test configuration: async tests run on asyncio through anyio's plugin;
`database_url` runs a test once on SQLite and once on a real PostgreSQL server."""

from collections.abc import Iterator

import pytest

from tests.postgres import PostgresServer, PostgresUnavailable, postgres_skipped, running_postgres


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One throwaway PostgreSQL server per test session (per xdist worker).

    Fails, rather than skips, when PostgreSQL is missing: CI must run these tests.
    `PACKYARD_TEST_POSTGRES=skip` skips them for a quick local run.
    """
    if postgres_skipped():
        pytest.skip("PACKYARD_TEST_POSTGRES=skip")
    try:
        with running_postgres() as server:
            yield server
    except PostgresUnavailable as error:
        pytest.fail(str(error), pytrace=False)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """The SQLAlchemy URL of an empty database of this test's own: a SQLite file,
    then a database on the session's PostgreSQL server (see `tests/postgres.py`)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'packyard.db'}"
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    with server.database() as url:
        yield url
