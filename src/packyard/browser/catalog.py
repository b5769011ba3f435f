"""Reads of the in-house store that the read chain does not offer: the
newest releases for the home page, and a fingerprint of every project so the
search index can tell which in-house documents to rebuild.

Synchronous SQLAlchemy: call from a worker thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from packyard.db.models import File, Project
from packyard.db.serial import read_serial


@dataclass(frozen=True, slots=True)
class RecentRelease:
    name: str
    display_name: str
    version: str
    summary: str | None
    upload_time: datetime


@dataclass(frozen=True, slots=True)
class ProjectState:
    """An in-house project as the search index tracks it."""

    name: str
    display_name: str
    fingerprint: str  # changes whenever a file is added, removed or (un)yanked


class LocalCatalog:
    """The in-house store's tables, read directly."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def serial(self) -> int:
        """The store's serial (`db.serial`). Raises LookupError if not migrated."""
        with self._sessions() as session:
            return read_serial(session)

    def recent_releases(self, limit: int = 10) -> list[RecentRelease]:
        """The newest in-house (project, version) pairs by first upload, newest first;
        quarantined projects and fully yanked releases are left out."""
        uploaded = func.min(File.upload_time).label("uploaded")
        statement = (
            select(
                Project.name, Project.display_name, File.version, func.max(File.summary), uploaded
            )
            .join(File, File.project_id == Project.id)
            .where(Project.status != "quarantined", File.yanked.is_(False))
            .group_by(Project.name, Project.display_name, File.version)
            .order_by(uploaded.desc(), Project.name)
            .limit(limit)
        )
        with self._sessions() as session:
            rows = session.execute(statement).all()
        # min() keeps the column's type, so the times come back as aware UTC datetimes.
        return [RecentRelease(*row) for row in rows]

    def projects(self) -> list[ProjectState]:
        """Every in-house project with its fingerprint."""
        yanked = func.sum(func.cast(File.yanked, File.id.type))
        statement = (
            select(
                Project.name,
                Project.display_name,
                Project.status,
                func.count(File.id),
                func.coalesce(func.max(File.id), 0),
                func.coalesce(yanked, 0),
            )
            .outerjoin(File, File.project_id == Project.id)
            .group_by(Project.id, Project.name, Project.display_name, Project.status)
        )
        with self._sessions() as session:
            rows = session.execute(statement).all()
        return [
            ProjectState(name, display, f"{status}|{count}|{newest}|{yanked_count}")
            for name, display, status, count, newest, yanked_count in rows
        ]
