"""Hardening of signing in: token lineage, browser sessions, failed sign-ins, used CI tokens.

- `api_tokens.parent_id`: the token that created a token through the API; a
  token is valid only while its whole chain of parents is;
- `browser_sessions`: signed-in sessions, so that signing out ends every copy
  of a session cookie (sessions made before this revision end: sign in again);
- `sign_in_failures`: failed password sign-ins per account and per address;
- `used_ci_tokens`: the `jti` of CI ID tokens that uploaded, until they expire.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-09
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("api_tokens") as batch:
        batch.add_column(sa.Column("parent_id", sa.Integer(), nullable=True))
        batch.create_foreign_key(
            op.f("fk_api_tokens_parent_id_api_tokens"),
            "api_tokens",
            ["parent_id"],
            ["id"],
            ondelete="CASCADE",
        )
        batch.create_index(op.f("ix_api_tokens_parent_id"), ["parent_id"])
    op.create_table(
        "browser_sessions",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.Column("expires_at", UTC_TIME, nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_browser_sessions_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_browser_sessions")),
    )
    op.create_index(op.f("ix_browser_sessions_user_id"), "browser_sessions", ["user_id"])
    op.create_index(op.f("ix_browser_sessions_expires_at"), "browser_sessions", ["expires_at"])
    op.create_table(
        "sign_in_failures",
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("window_start", sa.Double(), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_sign_in_failures")),
    )
    op.create_index(op.f("ix_sign_in_failures_window_start"), "sign_in_failures", ["window_start"])
    op.create_table(
        "used_ci_tokens",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("project", sa.String(255), nullable=False),
        sa.Column("version", sa.String(255), nullable=False),
        sa.Column("expires_at", UTC_TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_used_ci_tokens")),
    )
    op.create_index(op.f("ix_used_ci_tokens_expires_at"), "used_ci_tokens", ["expires_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_used_ci_tokens_expires_at"), table_name="used_ci_tokens")
    op.drop_table("used_ci_tokens")
    op.drop_index(op.f("ix_sign_in_failures_window_start"), table_name="sign_in_failures")
    op.drop_table("sign_in_failures")
    op.drop_index(op.f("ix_browser_sessions_expires_at"), table_name="browser_sessions")
    op.drop_index(op.f("ix_browser_sessions_user_id"), table_name="browser_sessions")
    op.drop_table("browser_sessions")
    with op.batch_alter_table("api_tokens") as batch:
        batch.drop_index(op.f("ix_api_tokens_parent_id"))
        batch.drop_constraint(op.f("fk_api_tokens_parent_id_api_tokens"), type_="foreignkey")
        batch.drop_column("parent_id")
