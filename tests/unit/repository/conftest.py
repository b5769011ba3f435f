"""Fixtures of the repository tests: a migrated database, on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.orm import Session, sessionmaker

from packyard.db.engine import create_database_engine, migrate, session_factory_for


@pytest.fixture
def sessions(database_url: str) -> Iterator[sessionmaker[Session]]:
    """Sessions of an empty, migrated database of this test's own (`database_url`:
    once SQLite, once PostgreSQL). Every replica a test builds shares it."""
    engine = create_database_engine(database_url)
    migrate(engine)
    yield session_factory_for(engine)
    engine.dispose()
