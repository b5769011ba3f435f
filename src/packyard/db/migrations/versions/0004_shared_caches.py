"""Shared caches: extracted upstream metadata, cached files' LRU, cached pages; server secrets.

The bookkeeping of these caches lived in the data directory (a JSON-lines
file, a SQLite file, JSON files); in the database every replica shares it.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "upstream_metadata",
        sa.Column("identity", sa.String(100), nullable=False),
        sa.Column("project", sa.String(255), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("blob_key", sa.String(512), nullable=False),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.PrimaryKeyConstraint("identity", name=op.f("pk_upstream_metadata")),
    )
    op.create_table(
        "cached_files",
        sa.Column("key", sa.String(512), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("last_access", sa.Double(), nullable=False),
        sa.Column("evictable", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_cached_files")),
    )
    op.create_index("ix_cached_files_lru", "cached_files", ["evictable", "last_access"])
    op.create_table(
        "cached_pages",
        sa.Column("upstream", sa.String(100), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("blob_key", sa.String(512), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("fetched_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("upstream", "name", name=op.f("pk_cached_pages")),
    )
    op.create_index(op.f("ix_cached_pages_blob_key"), "cached_pages", ["blob_key"])
    op.create_table(
        "server_secrets",
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_server_secrets")),
    )


def downgrade() -> None:
    op.drop_table("server_secrets")
    op.drop_index(op.f("ix_cached_pages_blob_key"), table_name="cached_pages")
    op.drop_table("cached_pages")
    op.drop_index("ix_cached_files_lru", table_name="cached_files")
    op.drop_table("cached_files")
    op.drop_table("upstream_metadata")
