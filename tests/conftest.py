"""Shared test configuration: async tests run on asyncio through anyio's plugin;
`database_url` runs a test once on SQLite and once on a real PostgreSQL server;
`blob_store` runs a test once on the filesystem and once on a real S3 server."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from packyard.settings import Settings
from packyard.storage.base import BlobStore
from packyard.storage.location import open_blob_storage
from tests.postgres import PostgresServer, PostgresUnavailable, postgres_skipped, running_postgres
from tests.seaweedfs import SeaweedServer, seaweedfs_for_tests


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


@pytest.fixture(scope="session")
def s3_server() -> Iterator[SeaweedServer]:
    """One throwaway SeaweedFS (an S3 API server) per test session (per xdist worker).

    Fails, rather than skips, when `weed` is missing: CI must run these tests.
    `PACKYARD_TEST_S3=skip` skips them for a quick local run. Give each test a
    bucket of its own: `with s3_server.bucket() as bucket: ...`, and pass
    `s3_server.environment(bucket)` to a `packyard serve` subprocess.
    """
    with seaweedfs_for_tests() as server:
        yield server


@pytest.fixture(params=["filesystem", "s3", "s3+copies"])
def blob_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BlobStore]:
    """An empty blob store of this test's own, opened as the server opens it
    (`storage.location`): a directory under `tmp_path`, then a prefix in a new
    bucket of the session's SeaweedFS (see `tests/seaweedfs.py`), read directly
    and then through replica-local copies (`storage/local_copies.py`)."""
    if request.param == "filesystem":
        settings = Settings(data_dir=tmp_path)
        yield open_blob_storage(settings, environ={}).store("files")
        return
    server: SeaweedServer = request.getfixturevalue("s3_server")
    with server.bucket() as bucket:
        settings = Settings(
            data_dir=tmp_path, storage_url=f"s3://{bucket}/packyard", s3=server.s3_settings()
        )
        copies = request.param == "s3+copies"
        yield open_blob_storage(settings, environ={}, local_copies=copies).store("files")
