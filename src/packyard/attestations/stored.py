"""The provenance objects of in-house files, as verified at upload (`files.provenance`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import anyio.to_thread
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from packyard.db.models import File


def stored_provenance(sessions: sessionmaker[Session]) -> Callable[[str], Awaitable[str | None]]:
    """A reader of the provenance object of an in-house file, by filename (None: none)."""

    def load(filename: str) -> str | None:
        with sessions() as session:
            return session.scalar(select(File.provenance).where(File.filename == filename))

    async def provenance(filename: str) -> str | None:
        return await anyio.to_thread.run_sync(load, filename)

    return provenance
