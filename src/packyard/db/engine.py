"""Engines, sessions and schema migrations.

`create_database_engine(url)` is the one way an engine is made, so that every
SQLite connection gets the same settings; `migrate(engine)` brings the schema
to the newest Alembic revision from code, with no `alembic.ini` at runtime.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

# Resolved by Alembic through importlib.resources, so it works from an
# installed wheel as well as from a source checkout.
SCRIPT_LOCATION = "packyard.db:migrations"

# How long a SQLite writer waits for another writer's lock before failing.
SQLITE_BUSY_TIMEOUT_MS = 10_000


def create_database_engine(url: str, **options: Any) -> Engine:
    """An engine for `url` (any SQLAlchemy URL; SQLite and PostgreSQL are tested).

    SQLite connections are set up for a server with concurrent readers and
    one writer at a time, from several processes: WAL journal (readers never
    wait for the writer), `synchronous=FULL` (a commit is on disk before it is
    acknowledged: an upload answered 200 survives a power loss), foreign keys
    enforced and a busy timeout instead of an immediate "database is locked".

    `options` go to `sqlalchemy.create_engine` unchanged.
    """
    engine = create_engine(url, **options)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _configure_sqlite)
    return engine


def _configure_sqlite(connection: sqlite3.Connection, _record: object) -> None:
    cursor = connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = FULL")
        cursor.execute("PRAGMA foreign_keys = ON")
    finally:
        cursor.close()


def session_factory_for(engine: Engine) -> sessionmaker[Session]:
    """Sessions bound to `engine`; objects stay readable after commit."""
    return sessionmaker(engine, expire_on_commit=False)


def alembic_config(engine: Engine) -> Config:
    """An Alembic configuration for `engine`, built in code (no `alembic.ini`)."""
    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    config.attributes["engine"] = engine
    return config


def migrate(engine: Engine, revision: str = "head") -> None:
    """Upgrade the schema of `engine`'s database to `revision` (default: the newest).

    Safe to call at every start: an up-to-date database is left unchanged.

    Raises:
        sqlalchemy.exc.SQLAlchemyError: the database cannot be reached or changed.
    """
    command.upgrade(alembic_config(engine), revision)
