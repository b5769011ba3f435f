"""PEP 740 attestations: each file's verified provenance and its summary, each
project's attestation requirement, and the provenance documents of upstream
files kept (`db/models.py`).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("files", sa.Column("provenance", sa.Text(), nullable=True))
    op.add_column("files", sa.Column("provenance_publisher", sa.Text(), nullable=True))
    op.add_column("projects", sa.Column("attestation_requirement", sa.String(8), nullable=True))
    op.create_table(
        "upstream_provenance",
        sa.Column("identity", sa.String(100), nullable=False),
        sa.Column("project", sa.String(255), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("blob_key", sa.String(512), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("identity", name=op.f("pk_upstream_provenance")),
    )


def downgrade() -> None:
    op.drop_table("upstream_provenance")
    with op.batch_alter_table("projects") as batch:
        batch.drop_column("attestation_requirement")
    with op.batch_alter_table("files") as batch:
        batch.drop_column("provenance_publisher")
        batch.drop_column("provenance")
