"""The in-house store: projects, files and the serial.

Revision ID: 0001
Revises:
Create Date: 2026-08-20
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    _create_projects()
    _create_files()
    _create_changes()


def _create_projects() -> None:
    op.create_table(
        "projects",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("display_name", sa.String(255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(20), server_default="active", nullable=False),
        sa.Column("status_reason", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "status IN ('active', 'archived', 'quarantined', 'deprecated')",
            name=op.f("ck_projects_status"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_projects")),
        sa.UniqueConstraint("name", name=op.f("uq_projects_name")),
    )


def _create_files() -> None:
    op.create_table(
        "files",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("filename", sa.String(255), nullable=False),
        sa.Column("version", sa.String(255), nullable=False),
        sa.Column("packagetype", sa.String(20), nullable=False),
        sa.Column("python_version", sa.String(100), nullable=False),
        sa.Column("requires_python", sa.Text(), nullable=True),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("blake2_256", sa.String(64), nullable=False),
        sa.Column("md5", sa.String(32), nullable=False),
        sa.Column("upload_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("blob_key", sa.String(512), nullable=False),
        sa.Column("metadata_sha256", sa.String(64), nullable=True),
        sa.Column("metadata_blob_key", sa.String(512), nullable=True),
        sa.Column("yanked", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("yanked_reason", sa.Text(), nullable=True),
        sa.Column("summary", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "packagetype IN ('bdist_wheel', 'sdist')", name=op.f("ck_files_packagetype")
        ),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_files_project_id_projects")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_files")),
        sa.UniqueConstraint("filename", name=op.f("uq_files_filename")),
        sa.UniqueConstraint("blake2_256", name=op.f("uq_files_blake2_256")),
    )
    op.create_index(op.f("ix_files_project_id"), "files", ["project_id"])


def _create_changes() -> None:
    changes = op.create_table(
        "changes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("serial", sa.BigInteger(), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_changes")),
    )
    # The one serial row that every write bumps (packyard.db.serial).
    op.bulk_insert(changes, [{"id": 1, "serial": 0, "changed_at": datetime.now(UTC)}])


def downgrade() -> None:
    op.drop_table("changes")
    op.drop_index(op.f("ix_files_project_id"), table_name="files")
    op.drop_table("files")
    op.drop_table("projects")
