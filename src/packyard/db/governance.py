"""Who may do what to a project, which public names may be used in-house, and the
yanks and deletions the read path must honour."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from packyard.db.models import Base, UTCDateTime

ROLES = ("owner", "maintainer")


class ProjectRole(Base):
    """An owner or maintainer of an in-house project: a user or a group, never both."""

    __tablename__ = "project_roles"
    __table_args__ = (
        CheckConstraint("role IN ('owner', 'maintainer')", name="role"),
        CheckConstraint("(user_id IS NULL) <> (group_id IS NULL)", name="user_or_group"),
        UniqueConstraint("project_id", "user_id", "group_id", name="uq_project_roles_member"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    role: Mapped[str] = mapped_column(String(20))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    group_id: Mapped[int | None] = mapped_column(ForeignKey("groups.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class AllowedName(Base):
    """A public (upstream) name an admin allowed as a new in-house project."""

    __tablename__ = "allowed_names"

    name: Mapped[str] = mapped_column(String(255), primary_key=True)  # normalised
    allowed_by: Mapped[str] = mapped_column(String(100))
    reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class DeletedFile(Base):
    """A filename that was deleted and can never be used again (as on PyPI)."""

    __tablename__ = "deleted_files"

    filename: Mapped[str] = mapped_column(String(255), primary_key=True)
    project_name: Mapped[str] = mapped_column(String(255), index=True)
    version: Mapped[str] = mapped_column(String(255))
    sha256: Mapped[str] = mapped_column(String(64))
    deleted_by: Mapped[str] = mapped_column(String(100))
    deleted_at: Mapped[datetime] = mapped_column(UTCDateTime())


class YankOverride(Base):
    """A yank (PEP 592) of an upstream file or release, decided here.

    `filename` None yanks the whole `version`. In-house files keep their yank in
    `files.yanked`; this table is for files packyard does not store itself.
    """

    __tablename__ = "yank_overrides"
    __table_args__ = (
        UniqueConstraint("project_name", "version", "filename", name="uq_yank_overrides_target"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_name: Mapped[str] = mapped_column(String(255), index=True)  # normalised
    version: Mapped[str] = mapped_column(String(255))
    filename: Mapped[str | None] = mapped_column(String(255))
    reason: Mapped[str | None] = mapped_column(Text)
    yanked_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
