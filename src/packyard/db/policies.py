"""Curation rules that admins change at runtime, per upstream (`publish/policies.py`
writes them, `repository/policy_rules.py` reads them for `PolicyRepository`).

They come on top of the configuration: the effective allow-list of an
upstream is its configured globs plus these, likewise the deny-list, and a
cool-down set here replaces the configured one. An upstream is named by its
label (`UpstreamSettings.label`: its `name`, else its URL without
credentials); a row whose upstream is no longer configured is kept, shown as
such, and applies to nothing.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, Float, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from packyard.db.models import Base, UTCDateTime

RULE_KINDS = ("allow", "deny")


class UpstreamRule(Base):
    """One `allow` or `deny` name glob of one upstream, stored normalised
    (`repository.policy.normal_glob`), so that `Acme_*` and `acme-*` are one row."""

    __tablename__ = "upstream_rules"
    __table_args__ = (
        CheckConstraint("kind IN ('allow', 'deny')", name="kind"),
        UniqueConstraint("upstream", "kind", "glob", name="uq_upstream_rules_rule"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    upstream: Mapped[str] = mapped_column(String(500))
    kind: Mapped[str] = mapped_column(String(10))
    glob: Mapped[str] = mapped_column(String(255))
    added_by: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class UpstreamCooldown(Base):
    """The cool-down of one upstream as set by an admin.

    `days` None means "as configured": the row then only records who reset it.
    """

    __tablename__ = "upstream_cooldowns"

    upstream: Mapped[str] = mapped_column(String(500), primary_key=True)
    days: Mapped[float | None] = mapped_column(Float)
    set_by: Mapped[str] = mapped_column(String(255))
    set_at: Mapped[datetime] = mapped_column(UTCDateTime())


class CooldownExemption(Base):
    """One project of one upstream that the upstream's cool-down does not hold back.

    An admin's decision for an urgent release (a security fix): the project's
    files are served as soon as the upstream has them. `project` is the
    normalised name; `reason` says why, for whoever reads the audit later.
    """

    __tablename__ = "cooldown_exemptions"

    upstream: Mapped[str] = mapped_column(String(500), primary_key=True)
    project: Mapped[str] = mapped_column(String(255), primary_key=True)
    reason: Mapped[str] = mapped_column(Text)
    added_by: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
