"""Projects handed over when their last owner left (`publish/succession.py`)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from packyard.db.models import Base, UTCDateTime

HANDOVER_REASONS = ("disabled", "directory-removed", "inactive", "retired")


class Handover(Base):
    """One project given to a successor (a user or a group) when `from_user` left.

    It is also the successor's notice: shown on their account page until they
    (or, for a group, any member) dismiss it (`seen_at`).
    """

    __tablename__ = "handovers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_name: Mapped[str] = mapped_column(String(255))
    from_user: Mapped[str] = mapped_column(String(100))
    to_user: Mapped[str | None] = mapped_column(String(100), index=True)
    to_group: Mapped[str | None] = mapped_column(String(100), index=True)
    # One of HANDOVER_REASONS.
    reason: Mapped[str] = mapped_column(String(40))
    actor: Mapped[str] = mapped_column(String(255))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
