"""Secrets every replica must share, kept in the database (`server_secrets`).

A secret made by one replica and kept in its own data directory would sign
cookies that every other replica rejects, and would be lost with the
directory. The first replica to need a secret makes it; an insert that loses
the race to another replica's is ignored, and both read the winner's.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from packyard.db.models import ServerSecret, upsert


def shared_secret(sessions: sessionmaker[Session], name: str, initial: str | None = None) -> str:
    """The secret called `name`, made now if no replica made it before: `initial`
    if given (an older installation's secret, adopted), else 256 random bits.

    Raises:
        sqlalchemy.exc.SQLAlchemyError: the database cannot be read or written.
    """
    with sessions.begin() as session:
        value = session.scalar(select(ServerSecret.value).where(ServerSecret.name == name))
        if value is not None:
            return value
        made = initial or secrets.token_urlsafe(32)
        row = {"name": name, "value": made, "created_at": datetime.now(UTC)}
        session.execute(upsert(session, ServerSecret).values(**row).on_conflict_do_nothing())
    with sessions() as session:
        return session.scalars(select(ServerSecret.value).where(ServerSecret.name == name)).one()
