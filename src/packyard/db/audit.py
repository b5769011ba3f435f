"""The audit trail: one row per upload, yank, deletion, ownership change and refusal."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from packyard.db.models import Base, UTCDateTime


class AuditEvent(Base):
    """Who did what, when and from where; `outcome` is `ok` or `refused`.

    `detail` is a JSON object as text (portable across SQLite and PostgreSQL).
    """

    __tablename__ = "audit_events"
    __table_args__ = (CheckConstraint("outcome IN ('ok', 'refused')", name="outcome"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    # e.g. "user:alice", "token:alice/pky_ab12", "ci:gitlab.example/group/app", "cli:root"
    actor: Mapped[str] = mapped_column(String(255))
    action: Mapped[str] = mapped_column(String(50), index=True)
    outcome: Mapped[str] = mapped_column(String(10))
    project_name: Mapped[str | None] = mapped_column(String(255), index=True)
    version: Mapped[str | None] = mapped_column(String(255))
    filename: Mapped[str | None] = mapped_column(String(255))
    client_ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(Text)
    detail: Mapped[str] = mapped_column(Text, default="{}")
