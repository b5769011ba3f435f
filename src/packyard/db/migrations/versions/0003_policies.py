"""Curation per upstream, changed at runtime: allow/deny globs and cool-down overrides.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "upstream_rules",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("upstream", sa.String(500), nullable=False),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("glob", sa.String(255), nullable=False),
        sa.Column("added_by", sa.String(255), nullable=False),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.CheckConstraint("kind IN ('allow', 'deny')", name=op.f("ck_upstream_rules_kind")),
        sa.UniqueConstraint("upstream", "kind", "glob", name="uq_upstream_rules_rule"),
    )
    op.create_table(
        "upstream_cooldowns",
        sa.Column("upstream", sa.String(500), primary_key=True),
        sa.Column("days", sa.Float(), nullable=True),
        sa.Column("set_by", sa.String(255), nullable=False),
        sa.Column("set_at", UTC_TIME, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("upstream_cooldowns")
    op.drop_table("upstream_rules")
