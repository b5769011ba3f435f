"""READMEs rendered once per distribution file, kept for every replica.

Rendering Markdown or reStructuredText is the dearest thing a page view can
do; done on a view, the first anonymous visitor of each release pays for it
in every replica. A distribution file never changes (its filename is never
reused, its sha256 names it), so neither does its README: rendered once, at
upload or at the first view, it is kept here under the file's sha256.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import String, Text, select
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from packyard.db.models import Base, UTCDateTime, upsert


class RenderedReadme(Base):
    """The sanitised HTML of the README of the file whose sha256 is `file_sha256`."""

    __tablename__ = "rendered_readmes"

    file_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    html: Mapped[str] = mapped_column(Text)
    rendered_at: Mapped[datetime] = mapped_column(UTCDateTime())


def find_readme(sessions: sessionmaker[Session], file_sha256: str) -> str | None:
    """The kept HTML of the file's README, or None.

    Raises:
        sqlalchemy.exc.SQLAlchemyError: the database cannot be read.
    """
    with sessions() as session:
        return session.scalar(
            select(RenderedReadme.html).where(RenderedReadme.file_sha256 == file_sha256)
        )


def keep_readme(sessions: sessionmaker[Session], file_sha256: str, html: str) -> None:
    """Keep `html` as the file's README; a replica that kept it first wins (the same HTML).

    Raises:
        sqlalchemy.exc.SQLAlchemyError: the row could not be written.
    """
    with sessions.begin() as session:
        row = {"file_sha256": file_sha256, "html": html, "rendered_at": datetime.now(UTC)}
        insert = upsert(session, RenderedReadme).values(**row)
        session.execute(insert.on_conflict_do_nothing(index_elements=["file_sha256"]))
