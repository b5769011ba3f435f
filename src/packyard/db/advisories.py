"""Known vulnerabilities: OSV records as imported, and what the site decided about them.

A record is kept whole (`record`, the OSV JSON) because the OSV API serves it
by id exactly as imported; the columns beside it are what lookups and pages
need without parsing it. `advisory_packages` says which normalised project
names a record affects, so a page asks for its own records only.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from packyard.db.models import Base, UTCDateTime

POLICIES = ("warn", "yank", "hide", "deny")
EVERY_PROJECT = "*"
"""`AdvisoryException.project_name` for an exception that holds for every project."""


class Advisory(Base):
    """One OSV record (PYSEC, GHSA, MAL, ...), the newest `modified` imported."""

    __tablename__ = "advisories"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    modified: Mapped[datetime] = mapped_column(UTCDateTime())
    published: Mapped[datetime | None] = mapped_column(UTCDateTime())
    withdrawn: Mapped[datetime | None] = mapped_column(UTCDateTime())
    summary: Mapped[str | None] = mapped_column(Text)
    aliases: Mapped[str] = mapped_column(Text, default="[]")  # a JSON list
    record: Mapped[str] = mapped_column(Text)  # the OSV record, JSON
    imported_at: Mapped[datetime] = mapped_column(UTCDateTime())


class AdvisoryPackage(Base):
    """A PyPI project (normalised name) that an advisory's `affected` names."""

    __tablename__ = "advisory_packages"

    advisory_id: Mapped[str] = mapped_column(
        ForeignKey("advisories.id", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str] = mapped_column(String(255), primary_key=True, index=True)


class AdvisoryImport(Base):
    """One finished import; the newest id is the generation every replica follows."""

    __tablename__ = "advisory_imports"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    actor: Mapped[str] = mapped_column(String(255))
    source: Mapped[str] = mapped_column(Text)
    added: Mapped[int] = mapped_column(Integer)
    changed: Mapped[int] = mapped_column(Integer)
    withdrawn: Mapped[int] = mapped_column(Integer)
    skipped: Mapped[int] = mapped_column(Integer)


class AdvisoryException(Base):
    """A risk an admin accepted: `advisory_id` is not enforced for `project_name`
    (`EVERY_PROJECT` for all). It is still shown, marked accepted."""

    __tablename__ = "advisory_exceptions"
    __table_args__ = (
        UniqueConstraint("advisory_id", "project_name", name="uq_advisory_exceptions_target"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    advisory_id: Mapped[str] = mapped_column(String(128), index=True)
    project_name: Mapped[str] = mapped_column(String(255))
    reason: Mapped[str] = mapped_column(Text)
    accepted_by: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class AdvisoryPolicy(Base):
    """A policy set at runtime for one source: an upstream's label or `local`;
    it replaces the configured one for that source."""

    __tablename__ = "advisory_policies"
    __table_args__ = (CheckConstraint("policy IN ('warn', 'yank', 'hide', 'deny')", name="policy"),)

    source: Mapped[str] = mapped_column(String(500), primary_key=True)
    policy: Mapped[str] = mapped_column(String(10))
    set_by: Mapped[str] = mapped_column(String(255))
    set_at: Mapped[datetime] = mapped_column(UTCDateTime())


class DependencyFinding(Base):
    """An in-house release whose requirement admits only affected versions of a
    dependency (recomputed after each import and at each upload)."""

    __tablename__ = "dependency_findings"
    __table_args__ = (
        UniqueConstraint(
            "project_name", "version", "requirement", name="uq_dependency_findings_target"
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_name: Mapped[str] = mapped_column(String(255), index=True)
    version: Mapped[str] = mapped_column(String(255))
    requirement: Mapped[str] = mapped_column(Text)
    dependency: Mapped[str] = mapped_column(String(255))
    advisory_ids: Mapped[str] = mapped_column(Text)  # a JSON list
    found_at: Mapped[datetime] = mapped_column(UTCDateTime())
