"""Usage counts rolled up per UTC day (`usage_project_days`, `usage_site_days`,
`usage_projects`: `db/usage.py`).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "usage_project_days",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("project_name", sa.String(length=255), nullable=False),
        sa.Column("downloads", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("day", "project_name", name=op.f("pk_usage_project_days")),
    )
    op.create_index(
        "ix_usage_project_days_project_day",
        "usage_project_days",
        ["project_name", "day", "downloads"],
    )
    op.create_table(
        "usage_projects",
        sa.Column("project_name", sa.String(length=255), nullable=False),
        sa.Column("last_day", sa.Date(), nullable=False),
        sa.PrimaryKeyConstraint("project_name", name=op.f("pk_usage_projects")),
    )
    op.create_index(op.f("ix_usage_projects_last_day"), "usage_projects", ["last_day"])
    op.create_table(
        "usage_site_days",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("downloads", sa.Integer(), nullable=False),
        sa.Column("uploads", sa.Integer(), nullable=False),
        sa.Column("cache_hits", sa.Integer(), nullable=False),
        sa.Column("cache_misses", sa.Integer(), nullable=False),
        sa.Column("upstream_errors", sa.Integer(), nullable=False),
        sa.Column("upstream_seconds", sa.Float(), nullable=False),
        sa.Column("upstream_requests", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("day", name=op.f("pk_usage_site_days")),
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_usage_projects_last_day"), table_name="usage_projects")
    op.drop_table("usage_projects")
    op.drop_table("usage_site_days")
    op.drop_index("ix_usage_project_days_project_day", table_name="usage_project_days")
    op.drop_table("usage_project_days")
