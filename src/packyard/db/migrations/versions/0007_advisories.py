"""Known vulnerabilities: OSV records, their imports, accepted risks, runtime
policies and the findings on in-house releases' requirements (`db/advisories.py`).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "advisories",
        sa.Column("id", sa.String(128), nullable=False),
        sa.Column("modified", UTC_TIME, nullable=False),
        sa.Column("published", UTC_TIME, nullable=True),
        sa.Column("withdrawn", UTC_TIME, nullable=True),
        sa.Column("summary", sa.Text(), nullable=True),
        sa.Column("aliases", sa.Text(), nullable=False),
        sa.Column("record", sa.Text(), nullable=False),
        sa.Column("imported_at", UTC_TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_advisories")),
    )
    op.create_table(
        "advisory_packages",
        sa.Column("advisory_id", sa.String(128), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.ForeignKeyConstraint(
            ["advisory_id"],
            ["advisories.id"],
            name=op.f("fk_advisory_packages_advisory_id_advisories"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("advisory_id", "name", name=op.f("pk_advisory_packages")),
    )
    op.create_index(op.f("ix_advisory_packages_name"), "advisory_packages", ["name"])
    op.create_table(
        "advisory_imports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", UTC_TIME, nullable=False),
        sa.Column("actor", sa.String(255), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("added", sa.Integer(), nullable=False),
        sa.Column("changed", sa.Integer(), nullable=False),
        sa.Column("withdrawn", sa.Integer(), nullable=False),
        sa.Column("skipped", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_advisory_imports")),
    )
    op.create_table(
        "advisory_exceptions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("advisory_id", sa.String(128), nullable=False),
        sa.Column("project_name", sa.String(255), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("accepted_by", sa.String(255), nullable=False),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_advisory_exceptions")),
        sa.UniqueConstraint("advisory_id", "project_name", name="uq_advisory_exceptions_target"),
    )
    op.create_index(
        op.f("ix_advisory_exceptions_advisory_id"), "advisory_exceptions", ["advisory_id"]
    )
    op.create_table(
        "advisory_policies",
        sa.Column("source", sa.String(500), nullable=False),
        sa.Column("policy", sa.String(10), nullable=False),
        sa.Column("set_by", sa.String(255), nullable=False),
        sa.Column("set_at", UTC_TIME, nullable=False),
        sa.CheckConstraint(
            "policy IN ('warn', 'yank', 'hide', 'deny')", name=op.f("ck_advisory_policies_policy")
        ),
        sa.PrimaryKeyConstraint("source", name=op.f("pk_advisory_policies")),
    )
    op.create_table(
        "dependency_findings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_name", sa.String(255), nullable=False),
        sa.Column("version", sa.String(255), nullable=False),
        sa.Column("requirement", sa.Text(), nullable=False),
        sa.Column("dependency", sa.String(255), nullable=False),
        sa.Column("advisory_ids", sa.Text(), nullable=False),
        sa.Column("found_at", UTC_TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dependency_findings")),
        sa.UniqueConstraint(
            "project_name", "version", "requirement", name="uq_dependency_findings_target"
        ),
    )
    op.create_index(
        op.f("ix_dependency_findings_project_name"), "dependency_findings", ["project_name"]
    )


def downgrade() -> None:
    op.drop_table("dependency_findings")
    op.drop_table("advisory_policies")
    op.drop_table("advisory_exceptions")
    op.drop_table("advisory_imports")
    op.drop_table("advisory_packages")
    op.drop_table("advisories")
