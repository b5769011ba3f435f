"""Sign-in with the organisation: users linked to a directory (an OpenID Connect
provider, LDAP), groups and memberships kept by the directory, and the hand-overs
of projects whose last owner left (`db/accounts.py`, `db/handovers.py`).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_TIME = sa.DateTime(timezone=True)
LOCAL = sa.text("'local'")


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("email", sa.Text(), nullable=True))
        batch.add_column(sa.Column("full_name", sa.Text(), nullable=True))
        batch.add_column(sa.Column("directory", sa.String(40), nullable=True))
        batch.add_column(sa.Column("subject", sa.String(255), nullable=True))
        batch.add_column(sa.Column("manager", sa.String(100), nullable=True))
        batch.add_column(sa.Column("last_sign_in_at", UTC_TIME, nullable=True))
        batch.add_column(sa.Column("directory_checked_at", UTC_TIME, nullable=True))
        batch.add_column(
            sa.Column("groups_stale", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.add_column(sa.Column("directory_removed_at", UTC_TIME, nullable=True))
        batch.add_column(sa.Column("claimed_groups", sa.Text(), nullable=True))
        batch.create_unique_constraint("uq_users_directory_subject", ["directory", "subject"])
    with op.batch_alter_table("groups") as batch:
        batch.add_column(sa.Column("source", sa.String(20), nullable=False, server_default=LOCAL))
    with op.batch_alter_table("group_members") as batch:
        batch.add_column(sa.Column("source", sa.String(20), nullable=False, server_default=LOCAL))
    op.create_table(
        "handovers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_name", sa.String(255), nullable=False),
        sa.Column("from_user", sa.String(100), nullable=False),
        sa.Column("to_user", sa.String(100), nullable=True),
        sa.Column("to_group", sa.String(100), nullable=True),
        sa.Column("reason", sa.String(40), nullable=False),
        sa.Column("actor", sa.String(255), nullable=False),
        sa.Column("at", UTC_TIME, nullable=False),
        sa.Column("seen_at", UTC_TIME, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_handovers")),
    )
    op.create_index(op.f("ix_handovers_to_user"), "handovers", ["to_user"])
    op.create_index(op.f("ix_handovers_to_group"), "handovers", ["to_group"])


def downgrade() -> None:
    op.drop_index(op.f("ix_handovers_to_group"), table_name="handovers")
    op.drop_index(op.f("ix_handovers_to_user"), table_name="handovers")
    op.drop_table("handovers")
    with op.batch_alter_table("group_members") as batch:
        batch.drop_column("source")
    with op.batch_alter_table("groups") as batch:
        batch.drop_column("source")
    with op.batch_alter_table("users") as batch:
        batch.drop_constraint("uq_users_directory_subject", type_="unique")
        for column in (
            "claimed_groups",
            "directory_removed_at",
            "groups_stale",
            "directory_checked_at",
            "last_sign_in_at",
            "manager",
            "subject",
            "directory",
            "full_name",
            "email",
        ):
            batch.drop_column(column)
