"""Engines, sessions and schema migrations.

`create_database_engine(url)` is the one way an engine is made, so that every
SQLite connection gets the same settings; `migrate(engine)` brings the schema
to the newest Alembic revision from code, with no `alembic.ini` at runtime.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.exc import InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from packyard import faults
from packyard.errors import DatabaseUnavailable, StorageFull

# Resolved by Alembic through importlib.resources, so it works from an
# installed wheel as well as from a source checkout.
SCRIPT_LOCATION = "packyard.db:migrations"

# How long a SQLite writer waits for another writer's lock before failing.
SQLITE_BUSY_TIMEOUT_MS = 10_000

# The PostgreSQL advisory lock that migrations hold (any constant unique to
# packyard in the database; this one spells "pkyd").
MIGRATION_LOCK = 0x706B7964


def create_database_engine(url: str, **options: Any) -> Engine:
    """An engine for `url` (any SQLAlchemy URL; SQLite and PostgreSQL are tested).

    SQLite connections are set up for a server with concurrent readers and
    one writer at a time, from several processes: WAL journal (readers never
    wait for the writer), `synchronous=FULL` (a commit is on disk before it is
    acknowledged: an upload answered 200 survives a power loss), foreign keys
    enforced and a busy timeout instead of an immediate "database is locked".

    Pooled connections to a server are checked before use (`pool_pre_ping`):
    after a database restart or failover, a replica's next query reconnects
    instead of failing on a dead connection. Requests read the database only
    on a change of the serial, so the check costs the hot path nothing.

    A database that cannot be reached, or fails a query in a way a retry may
    not (`OperationalError`, `InterfaceError`: refused or lost connections,
    timeouts, locks), raises `DatabaseUnavailable` instead of the driver's
    error, reported to the fault log; a full disk under SQLite raises
    `StorageFull` (see `outage_translator`).

    `options` go to `sqlalchemy.create_engine` unchanged.
    """
    if not url.startswith("sqlite"):
        options.setdefault("pool_pre_ping", True)
    engine = create_engine(url, **options)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _configure_sqlite)
    event.listen(engine, "handle_error", outage_translator(engine))
    return engine


def outage_translator(engine: Engine) -> Callable[[ExceptionContext], None]:
    """The `handle_error` hook that turns a database outage into the domain's errors.

    `OperationalError` and `InterfaceError` (and any error SQLAlchemy sees as a
    lost connection) become `DatabaseUnavailable`, chained to the driver's
    error; SQLite's "database or disk is full" becomes `StorageFull`. Each is
    reported to the fault log (`faults.py`), once per interval with a count.
    Any other error (a constraint, a syntax error: a bug) is left alone, and
    so is a failed `pool_pre_ping`, which SQLAlchemy handles by reconnecting.
    """
    where = engine.url.render_as_string(hide_password=True)

    def translate(context: ExceptionContext) -> None:
        if context.is_pre_ping:
            return
        error = context.sqlalchemy_exception
        if not (context.is_disconnect or isinstance(error, OperationalError | InterfaceError)):
            return
        reason = str(context.original_exception).strip().split("\n", 1)[0]
        if "database or disk is full" in reason:
            full = StorageFull(f"the database {where}", "the change")
            faults.report("storage-full", where, full.message, store=where)
            raise full from context.original_exception
        faults.report("database-unavailable", where, reason, database=where)
        raise DatabaseUnavailable(reason) from context.original_exception

    return translate


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
    config = alembic_config_without_engine()
    config.attributes["engine"] = engine
    return config


def migrate(engine: Engine, revision: str = "head") -> list[str]:
    """Upgrade the schema of `engine`'s database to `revision` (default: the newest).

    Safe to call at every start, and from many processes at once: on
    PostgreSQL the migration holds an advisory lock for its transaction, so
    the others wait and then find nothing left to do. An up-to-date database
    is left unchanged.

    Returns:
        The revisions this call applied, oldest first (empty: nothing to do).

    Raises:
        sqlalchemy.exc.SQLAlchemyError: the database cannot be reached or changed.
    """
    config = alembic_config(engine)
    command.upgrade(config, revision)
    return list(config.attributes.get("applied", []))


def head_revision() -> str:
    """The newest migration this code knows."""
    head = ScriptDirectory.from_config(alembic_config_without_engine()).get_current_head()
    if head is None:
        raise RuntimeError("packyard ships no migrations")
    return head


def current_revision(engine: Engine) -> str | None:
    """The revision the database's schema is at; None if it was never migrated.

    Raises:
        sqlalchemy.exc.SQLAlchemyError: the database cannot be reached.
    """
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def schema_problem(engine: Engine, head: str) -> str | None:
    """Why the database cannot serve this code (None: it can): unreachable, or
    its schema is not at `head` (blocking: run it in a worker thread)."""
    try:
        revision = current_revision(engine)
    except DatabaseUnavailable as exc:
        return f"the database cannot be reached: {exc.reason}"
    except SQLAlchemyError as exc:
        return f"the database cannot be reached: {type(exc).__name__}: {exc}".splitlines()[0]
    if revision != head:
        shown = revision or "empty"
        return f"the schema is at revision {shown}, this version needs {head}: run packyard migrate"
    return None


def alembic_config_without_engine() -> Config:
    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    return config
