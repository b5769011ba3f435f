"""Where a `packyard serve` subprocess keeps its state, for modules that run on several.

    with backend_environment(request, "postgresql+s3") as environment:
        server.environment.update(environment)
        ...
        stored_keys(environment, "files")   # what is in the bucket, or None

- `sqlite`: the embedded defaults (SQLite and files in the data directory);
  no variables.
- `postgresql`: a database of the session's PostgreSQL server
  (`PACKYARD_DATABASE_URL`), blobs still in the data directory.
- `postgresql+s3`: that, and a bucket of the session's SeaweedFS
  (`PACKYARD_STORAGE_URL` and the AWS variables): nothing in the data directory
  but throw-away copies of served files (`blob-copies/`, storage/local_copies.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

import obstore
import pytest
from obstore.store import S3Store

from tests.postgres import PostgresServer
from tests.seaweedfs import SeaweedServer

SQLITE = "sqlite"
POSTGRESQL = "postgresql"
POSTGRESQL_S3 = "postgresql+s3"


@contextmanager
def backend_environment(request: pytest.FixtureRequest, backend: str) -> Iterator[dict[str, str]]:
    """The variables that put a server's state on `backend` (one of the names above),
    in a database and a bucket of their own, dropped afterwards."""
    if backend == SQLITE:
        yield {}
        return
    postgres: PostgresServer = request.getfixturevalue("postgres_server")
    with postgres.database() as url:
        if backend == POSTGRESQL:
            yield {"PACKYARD_DATABASE_URL": url}
            return
        assert backend == POSTGRESQL_S3, backend
        s3: SeaweedServer = request.getfixturevalue("s3_server")
        with s3.bucket() as bucket:
            yield {"PACKYARD_DATABASE_URL": url, **s3.environment(bucket)}


def stored_keys(environment: dict[str, str], area: str) -> list[str] | None:
    """The keys (relative to the area) of every object in `area` (e.g. "files",
    "cache/files") of the bucket `environment` names; None when its blobs are
    not in a bucket (then look in the data directory)."""
    url = environment.get("PACKYARD_STORAGE_URL")
    if url is None:
        return None
    parts = urlsplit(url)
    store = S3Store(
        parts.netloc,
        endpoint=environment["AWS_ENDPOINT_URL"],
        region=environment["AWS_REGION"],
        access_key_id=environment["AWS_ACCESS_KEY_ID"],
        secret_access_key=environment["AWS_SECRET_ACCESS_KEY"],
        client_options={"allow_http": True},
    )
    prefix = "/".join(part for part in (parts.path.strip("/"), area) if part) + "/"
    return sorted(
        meta["path"].removeprefix(prefix)
        for batch in obstore.list(store, prefix=prefix)
        for meta in batch
    )
