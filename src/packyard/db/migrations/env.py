"""Alembic environment: runs migrations on the engine that `db.engine.migrate` passes in.

There is no `alembic.ini`: the configuration is built in code
(`db.engine.alembic_config`), and the engine travels in
`config.attributes["engine"]`. Offline (SQL script) mode is not supported.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Engine

from packyard.db import (  # noqa: F401 - registers their tables
    accounts,
    advisories,
    audit,
    governance,
    handovers,
    policies,
    readmes,
    sign_ins,
    usage,
)
from packyard.db.engine import MIGRATION_LOCK
from packyard.db.models import Base

engine = context.config.attributes.get("engine")
if not isinstance(engine, Engine):
    raise RuntimeError("run migrations through packyard.db.engine.migrate(engine)")
if context.is_offline_mode():
    raise RuntimeError("packyard migrations run online only")

with engine.connect() as connection:
    # `db.engine.migrate` collects the revisions this run applied.
    applied: list[str] = context.config.attributes.setdefault("applied", [])
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        on_version_apply=lambda step, **_: applied.extend(step.up_revision_ids),
        # SQLite cannot ALTER most things in place; batch mode copies the table.
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            # Replicas started at once queue here; each then reads the schema's
            # revision afresh, so only the first one migrates (`db.engine.migrate`).
            connection.exec_driver_sql("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        context.run_migrations()
