"""Fixtures of the advisories tests: the real PyPA snapshot, records read from it,
and a migrated database on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import yaml
from sqlalchemy.orm import Session, sessionmaker

from packyard.advisories.records import OsvRecord, read_record
from packyard.db.engine import create_database_engine, migrate, session_factory_for
from tests.advisory_data import SNAPSHOT as SNAPSHOT  # re-exported for the tests here

# shared/ lies beside the checkout (here and in CI); the data is used as it is.
SNAPSHOT_FILES = 2661  # YAML records; the two with a non-PEP 440 `fixed` are skipped
SNAPSHOT_SKIPPED = {"binderhub/PYSEC-2021-371.yaml", "steam/PYSEC-2019-125.yaml"}


def raw(origin: str) -> dict[str, object]:
    """One record of the snapshot as YAML reads it, e.g. `raw("py/PYSEC-2022-42969.yaml")`."""
    loaded: dict[str, object] = yaml.safe_load((SNAPSHOT / origin).read_bytes())
    return loaded


def snapshot_record(origin: str) -> OsvRecord:
    return read_record(raw(origin))


@pytest.fixture
def sessions(database_url: str) -> Iterator[sessionmaker[Session]]:
    """Sessions of an empty, migrated database of this test's own (once SQLite,
    once PostgreSQL)."""
    engine = create_database_engine(database_url)
    migrate(engine)
    yield session_factory_for(engine)
    engine.dispose()
