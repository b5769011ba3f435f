"""The schema, the engine settings and the serial."""

from __future__ import annotations

import importlib
import pkgutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError, StatementError

import packyard.db
from packyard.db.engine import migrate
from packyard.db.models import Base, Project
from packyard.db.serial import bump_serial, read_serial
from tests.builders import make_local_store


def import_every_model_module() -> None:
    """Models may live in any module of `packyard.db`: load them all, so the check
    below doesn't depend on which modules other tests happened to import."""
    for module in pkgutil.iter_modules(packyard.db.__path__, "packyard.db."):
        importlib.import_module(module.name)


def test_migrations_create_exactly_the_models(tmp_path: Path, database_url: str) -> None:
    import_every_model_module()
    local = make_local_store(tmp_path, database_url)
    with local.engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []


def test_migrating_twice_changes_nothing(tmp_path: Path, database_url: str) -> None:
    local = make_local_store(tmp_path, database_url)
    migrate(local.engine)
    with local.sessions() as session:
        assert read_serial(session) == 0


def test_sqlite_connections_are_set_up_for_concurrent_use(tmp_path: Path) -> None:
    local = make_local_store(tmp_path)
    with local.engine.connect() as connection:
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert connection.execute(text("PRAGMA busy_timeout")).scalar() == 10_000


def test_bump_serial_advances_within_the_transaction(tmp_path: Path, database_url: str) -> None:
    local = make_local_store(tmp_path, database_url)
    with local.sessions.begin() as session:
        assert bump_serial(session) == 1
        assert bump_serial(session) == 2
    with local.sessions.begin() as session:
        bump_serial(session)
        session.rollback()
    with local.sessions() as session:
        assert read_serial(session) == 2


def test_timestamps_come_back_aware_in_utc(tmp_path: Path, database_url: str) -> None:
    local = make_local_store(tmp_path, database_url)
    created = datetime(2026, 8, 1, 12, 30, tzinfo=UTC)
    with local.sessions.begin() as session:
        session.add(Project(name="acme", display_name="Acme", created_at=created))
    with local.sessions() as session:
        project = session.scalars(select(Project)).one()
    assert project.created_at == created
    assert project.created_at.tzinfo is not None
    assert project.status == "active"


def test_naive_timestamps_are_refused(tmp_path: Path, database_url: str) -> None:
    local = make_local_store(tmp_path, database_url)
    with pytest.raises(StatementError), local.sessions.begin() as session:
        session.add(Project(name="acme", display_name="Acme", created_at=datetime(2026, 1, 1)))


def test_project_names_are_unique_and_statuses_checked(tmp_path: Path, database_url: str) -> None:
    local = make_local_store(tmp_path, database_url)
    now = datetime.now(UTC)
    with local.sessions.begin() as session:
        session.add(Project(name="acme", display_name="Acme", created_at=now))
    with pytest.raises(IntegrityError), local.sessions.begin() as session:
        session.add(Project(name="acme", display_name="ACME", created_at=now))
    with pytest.raises(IntegrityError), local.sessions.begin() as session:
        session.add(Project(name="other", display_name="o", created_at=now, status="gone"))
