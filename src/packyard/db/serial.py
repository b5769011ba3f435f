"""The store's serial: how readers learn, cheaply, that the data they cached changed.

Every write that changes what the index serves calls `bump_serial(session)`
in its own transaction, so the new serial becomes visible exactly when the
write does, to every process that shares the database (DESIGN §3: cache
invalidation lives in the database, not in process memory).
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from packyard.db.models import Change

SERIAL_ROW = 1
"""The id of the one row of `changes` (inserted by the first migration)."""


def bump_serial(session: Session) -> int:
    """Advance the serial inside `session`'s transaction and return the new value.

    Call it in the same transaction as the write, before committing. The row
    lock it takes also serialises concurrent writers, which is what keeps the
    serial strictly increasing across processes.

    Raises:
        LookupError: the `changes` row is missing (the database was not migrated).
    """
    new = session.execute(
        update(Change)
        .where(Change.id == SERIAL_ROW)
        .values(serial=Change.serial + 1, changed_at=datetime.now(UTC))
        .returning(Change.serial)
    ).scalar_one_or_none()
    if new is None:
        raise LookupError("the changes table has no serial row: run the migrations")
    return new


def read_serial(session: Session) -> int:
    """The current serial as `session` sees it.

    Raises:
        LookupError: the `changes` row is missing (the database was not migrated).
    """
    serial = session.scalar(select(Change.serial).where(Change.id == SERIAL_ROW))
    if serial is None:
        raise LookupError("the changes table has no serial row: run the migrations")
    return serial
