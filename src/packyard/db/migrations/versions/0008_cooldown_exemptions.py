"""Projects an upstream's cool-down does not hold back, set by an admin
(`db/policies.py`'s `CooldownExemption`).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "cooldown_exemptions",
        sa.Column("upstream", sa.String(500), nullable=False),
        sa.Column("project", sa.String(255), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("added_by", sa.String(255), nullable=False),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.PrimaryKeyConstraint("upstream", "project", name=op.f("pk_cooldown_exemptions")),
    )


def downgrade() -> None:
    op.drop_table("cooldown_exemptions")
